"""The config's JSON Schema: validation with readable messages, and defaults.

Defaults live in the schema only (``schemas/config.schema.json``), so it is
the one place that says what an omitted key means.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, Mapping

from arb.config_errors import where
from arb.config_values import SECRET_KEY

if TYPE_CHECKING:
    import jsonschema


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files("arb.schemas").joinpath("config.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def schema_problems(data: dict[str, Any], lines: Mapping[str, int]) -> list[str]:
    if conforms(data):
        return []
    problems = []
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = _dotted(error.absolute_path)
        problems.extend(_describe(error, path, lines))
    # ``exchanges.upbit`` matches both its property and the name pattern, so
    # one mistake can be reported twice.
    return list(dict.fromkeys(problems))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    # jsonschema takes longer to import than the rest of config loading
    # together, so only a config that does not conform pays for it.
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def conforms(data: Any) -> bool:
    """True only if ``data`` is valid against the schema, as jsonschema would find it.

    False means invalid *or* not decided here: a value of a type YAML does not
    produce for JSON, or a schema keyword not handled below.  Either way
    jsonschema then decides and says why, so this check only has to be
    sound, never complete.
    """
    root = schema()
    return _conforms(root, data, root)


def _conforms(node: Any, value: Any, root: Mapping[str, Any]) -> bool:
    if node is True:
        return True
    if not isinstance(node, dict) or type(value) not in _PLAIN:
        return False
    if type(value) is dict and any(type(key) is not str for key in value):
        return False
    for keyword, argument in node.items():
        check = _KEYWORDS.get(keyword)
        if check is None:
            if keyword not in _ANNOTATIONS:
                return False
        elif not check(argument, value, node, root):
            return False
    return True


_PLAIN = (dict, list, str, int, float, bool, type(None))
_SCALARS = (str, int, float, bool, type(None))
_TYPES = {"object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),),
          # Stricter than jsonschema (which also takes 5.0 as an integer): a
          # float there is left to jsonschema to decide.
          "integer": (int,), "number": (int, float)}
_LOCAL_REF = re.compile(r"#(/[A-Za-z0-9_$-]+)+")
#: Keywords that assert nothing.  No format checker is given to jsonschema,
#: so ``format`` is only an annotation there too.
_ANNOTATIONS = frozenset({"$schema", "$defs", "$comment", "title", "description", "default", "examples", "format"})


def _number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _additional(argument: Any, value: dict, node: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    # What jsonschema counts as additional: the patterns joined, as it does.
    known = node.get("properties", {})
    patterns = "|".join(node.get("patternProperties", {}))
    extras = [key for key in value if key not in known and not (patterns and re.search(patterns, key))]
    if isinstance(argument, dict):
        return all(_conforms(argument, value[key], root) for key in extras)
    return bool(argument) or not extras


def _unique(argument: Any, value: Any) -> bool:
    if not argument or type(value) is not list:
        return True
    # jsonschema's equality is not Python's (1 == True, 1 == 1.0 differ
    # there); texts compare the same in both.
    return all(type(item) is str for item in value) and len(set(value)) == len(value)


def _ref(argument: Any, value: Any, root: Mapping[str, Any]) -> bool:
    # Only plain "#/a/b" pointers, read the same by JSON Pointer and by _ref_target.
    if not isinstance(argument, str) or not _LOCAL_REF.fullmatch(argument):
        return False
    try:
        target = _ref_target(argument)
    except (KeyError, TypeError):
        return False
    return _conforms(target, value, root)


_KEYWORDS: dict[str, Callable[[Any, Any, Mapping[str, Any], Mapping[str, Any]], bool]] = {
    "type": lambda a, v, n, r: any(type(v) in _TYPES.get(t, ()) for t in (a if isinstance(a, list) else [a])),
    "enum": lambda a, v, n, r: type(v) in _SCALARS and any(type(e) is type(v) and e == v for e in a),
    "properties": lambda a, v, n, r: type(v) is not dict or all(
        _conforms(sub, v[key], r) for key, sub in a.items() if key in v),
    "patternProperties": lambda a, v, n, r: type(v) is not dict or all(
        _conforms(sub, item, r) for pattern, sub in a.items() for key, item in v.items() if re.search(pattern, key)),
    "additionalProperties": lambda a, v, n, r: type(v) is not dict or _additional(a, v, n, r),
    "propertyNames": lambda a, v, n, r: type(v) is not dict or all(_conforms(a, key, r) for key in v),
    "required": lambda a, v, n, r: type(v) is not dict or all(key in v for key in a),
    "items": lambda a, v, n, r: type(v) is not list or all(_conforms(a, item, r) for item in v),
    "minItems": lambda a, v, n, r: type(v) is not list or len(v) >= a,
    "maxItems": lambda a, v, n, r: type(v) is not list or len(v) <= a,
    "uniqueItems": lambda a, v, n, r: _unique(a, v),
    "minLength": lambda a, v, n, r: type(v) is not str or len(v) >= a,
    "pattern": lambda a, v, n, r: type(v) is not str or re.search(a, v) is not None,
    # Written as jsonschema compares, so a NaN fares the same in both.
    "minimum": lambda a, v, n, r: not _number(v) or not v < a,
    "maximum": lambda a, v, n, r: not _number(v) or not v > a,
    "exclusiveMinimum": lambda a, v, n, r: not _number(v) or not v <= a,
    "exclusiveMaximum": lambda a, v, n, r: not _number(v) or not v >= a,
    "$ref": lambda a, v, n, r: _ref(a, v, r),
    # An $id below the root would change what "#/..." refers to.
    "$id": lambda a, v, n, r: n is r,
}


def _dotted(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: jsonschema.ValidationError, path: str, lines: Mapping[str, int]) -> list[str]:
    # Messages are built here, not taken from jsonschema, because its text
    # quotes the offending value and that value may be a pasted secret.
    kind = error.validator
    if kind == "additionalProperties":
        return _unknown_keys(error, path, lines)
    place = where(path, lines)
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [f"{place}: missing required key {', '.join(missing)}"]
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        hint = ""
        if isinstance(error.instance, str) and expected in ("number", "integer") and _numeric_text(error.instance):
            hint = (" that looks like a number: YAML reads 5e1 as text and needs the form 5.0e+1;"
                    " writing the plain number (50) is clearest")
        return [f"{place}: must be {expected}, got {_type_name(error.instance)}{hint}"]
    if kind == "enum":
        return [f"{place}: must be one of {', '.join(map(str, error.validator_value))}"]
    if kind == "pattern":
        if path.endswith("_env"):
            return [f"{place}: must be the NAME of an environment variable (like UPBIT_SECRET_KEY), "
                    "not the secret itself"]
        return [f"{place}: {_short(error.instance)} does not have the expected form ({error.validator_value})"]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return [f"{place}: must be {bounds[kind]} {error.validator_value}, got {_short(error.instance)}"]
    if kind == "minItems":
        return [f"{place}: must list at least {error.validator_value} item(s), got {len(error.instance)}"]
    if kind == "maxItems":
        return [f"{place}: must list at most {error.validator_value} items, got {len(error.instance)}"]
    if kind == "uniqueItems":
        return [f"{place}: lists the same entry twice"]
    if kind == "minLength":
        return [f"{place}: must not be empty"]
    if kind == "propertyNames":
        return [f"{place}: has a key that is not a lower_snake_case name"]
    return [f"{place}: invalid ({kind})"]


def _unknown_keys(error: jsonschema.ValidationError, path: str, lines: Mapping[str, int]) -> list[str]:
    """One problem per unknown key, with the nearest known key as a hint for a typo."""
    known = list(error.schema.get("properties", {}))
    out = []
    for key in sorted(str(k) for k in error.instance if str(k) not in known):
        if error.schema.get("patternProperties") and any(
                re.match(p, key) for p in error.schema["patternProperties"]):
            continue
        if SECRET_KEY.search(key):
            continue  # reported by value_problems, wherever it is
        child = f"{path}.{key}" if path else key
        hint = difflib.get_close_matches(key, known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(known)})"
        if path.startswith("guards.") and path.count(".") == 1:
            suggestion += "; built-in rules take their limits from the live_trading section"
        out.append(f"{where(child, lines)}: unknown key{suggestion}")
    return out


def _numeric_text(text: str) -> bool:
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false",
            type(None): "nothing (null)"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    # Short on purpose: a value in the wrong place may be a pasted secret, and
    # a few characters identify a typo without giving a key away.
    if isinstance(value, str) and len(value) > 12:
        return f"a {len(value)}-character text"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def apply_defaults(node_schema: Mapping[str, Any], data: Any) -> None:
    """Fill omitted keys from the schema's ``default`` values, recursively."""
    node_schema = _resolve(node_schema)
    if isinstance(data, dict):
        for key, sub in node_schema.get("properties", {}).items():
            sub = _resolve(sub)
            if key not in data and "default" in sub:
                data[key] = copy.deepcopy(sub["default"])
            if key in data:
                apply_defaults(sub, data[key])
        for pattern, sub in node_schema.get("patternProperties", {}).items():
            for key, value in data.items():
                if key not in node_schema.get("properties", {}) and re.match(pattern, key):
                    apply_defaults(sub, value)
    elif isinstance(data, list) and isinstance(node_schema.get("items"), dict):
        for item in data:
            apply_defaults(node_schema["items"], item)


def _resolve(node_schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node_schema.get("$ref")
    if not ref:
        return node_schema
    merged = dict(_ref_target(ref))
    merged.update({k: v for k, v in node_schema.items() if k != "$ref"})
    return merged


def _ref_target(ref: str) -> Any:
    target: Any = schema()
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return target
