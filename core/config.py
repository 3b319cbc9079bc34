"""Loading a YAML config: parse, validate against the JSON Schema, fill defaults.

Every problem is reported as ``path (line N): message`` and nothing runs on
a config with a problem.  Defaults live in the schema only, so the schema
file is the one place that says what an omitted key means.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from arb.guard import GuardLimits

MODES = ("paper", "live_readonly", "live_trading")
LIVE_MODES = ("live_readonly", "live_trading")

# A key named like this holds a secret; only environment variable names may.
_SECRET_KEY = re.compile(r"(secret|api_?key|access_?key|password|passphrase|token)(_?key)?$", re.IGNORECASE)


class ConfigError(ValueError):
    """A config that must not be run; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def report(self) -> str:
        lines = [f"config error in {self.source}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class StrategySettings:
    entry_premium_pct: float
    exit_premium_pct: float
    trade_notional: float
    max_open_trades: int
    max_book_age_ms: float
    max_levels: int


@dataclass(frozen=True)
class LegRiskSettings:
    """The ``leg_risk`` section: what to do when one leg of a pair fills and
    the other does not (see :mod:`arb.legrisk`)."""

    policy: str = "unwind"          # "unwind" | "retry"
    max_retries: int = 2            # repair orders sent per unhedged plan, at most
    max_slippage_pct: float = 1.0   # repair limit price: at most this far beyond the best price


@dataclass(frozen=True)
class JournalSettings:
    """The ``journal`` section; ``path`` as written (None: the default location),
    resolved by :func:`arb.journal.journal_path` when a session opens it."""

    enabled: bool = True
    path: str | None = None
    base_dir: str = ""  # the config file's folder: a relative path is read from there


@dataclass(frozen=True)
class MetricsSettings:
    """``monitoring.metrics``: the Prometheus endpoint (see :mod:`arb.metrics`)."""

    enabled: bool | None = None     # None: on in the live modes, off in paper
    host: str = "127.0.0.1"
    port: int = 9464                # 0: any free port
    linger_s: float = 15.0          # serving on after a halted session, for a last scrape


@dataclass(frozen=True)
class Config:
    source: str
    mode: str
    reference_currency: str
    local_exchange: str
    reference_exchange: str
    assets: tuple[str, ...]
    fx_exchange: str
    fx_symbol: str
    fx_assumed_rate: float
    exchanges: Mapping[str, Mapping[str, Any]]
    strategy: StrategySettings
    market_source: str
    market_options: Mapping[str, Any]
    paper_balances: Mapping[str, Mapping[str, float]]
    paper_run_guards: bool
    limits: GuardLimits
    guard_options: Mapping[str, Mapping[str, Any]]
    log_level: str
    log_format: str
    raw: Mapping[str, Any]
    journal: JournalSettings = JournalSettings()
    #: Where the trading day starts, in ms after 00:00 UTC (``session.trading_day_start_utc``).
    day_start_ms: int = 0
    leg_risk: LegRiskSettings = LegRiskSettings()
    metrics: MetricsSettings = MetricsSettings()

    def with_mode(self, mode: str | None) -> Config:
        if mode is None or mode == self.mode:
            return self
        if mode not in MODES:
            raise ConfigError(self.source, [f"mode {mode!r} is not one of {', '.join(MODES)}"])
        return _replace(self, mode=mode)

    @property
    def exchange_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.local_exchange, self.reference_exchange, self.fx_exchange)))


def _replace(config: Config, **changes: Any) -> Config:
    from dataclasses import replace
    return replace(config, **changes)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files("arb.schemas").joinpath("config.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


#: Nodes a config may expand to, aliases included: a few hundred is normal;
#: this only stops "billion laughs" alias bombs before anything walks them.
MAX_NODES = 100_000


def load_config(path: str | Path) -> Config:
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(source, ["is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror or exc.__class__.__name__}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, [f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be "
                                   "decoded); save the file as UTF-8"]) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    data, lines = _parse_yaml(text, source)
    problems = _value_problems(data, "", lines) + _schema_problems(data, lines)
    problems = list(dict.fromkeys(problems))
    if problems:
        raise ConfigError(source, problems)
    apply_defaults(schema(), data)
    config = _build(data, source)
    problems = _semantic_problems(config, lines)
    if problems:
        raise ConfigError(source, problems)
    return config


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[str, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(source, ["the file is empty: a config needs at least `pairs` "
                                       "(see configs/live/*.yaml)"])
        if not isinstance(node, yaml.MappingNode):
            got = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            raise ConfigError(source, [f"the top level must be a mapping of keys, got {got} "
                                       "(see configs/live/*.yaml)"])
        lines: dict[str, int] = {}
        problems: list[str] = []
        _index_lines(node, "", lines, problems, set(), [0])
        if problems:
            raise ConfigError(source, problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        # Never str(exc): it quotes the offending line, which may hold a secret.
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) \
            or getattr(exc, "reason", None) or type(exc).__name__
        raise ConfigError(source, [f"not valid YAML: {where}{problem}"]) from None
    except RecursionError:  # pragma: no cover - _Loader stops far earlier
        raise ConfigError(source, ["not a usable config: nested too deeply"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):  # pragma: no cover - the node check above decides
        raise ConfigError(source, ["the top level must be a mapping of keys (see configs/live/*.yaml)"])
    return data, lines


#: A config is a few levels deep; this stops absurd nesting before PyYAML
#: (recursive, and slow on deep flow collections) runs out of stack.
MAX_DEPTH = 32


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than :data:`MAX_DEPTH`."""

    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int], problems: list[str],
                 active: set[int], budget: list[int]) -> None:
    """Record the line of every key; a key given twice is an error, since
    YAML would silently keep the last one (a doubled safety limit).  Keys that
    are not text, recursive aliases and alias bombs are errors too."""
    budget[0] += 1
    if budget[0] > MAX_NODES:
        if budget[0] == MAX_NODES + 1:
            problems.append(f"the config expands to more than {MAX_NODES} values "
                            "(aliases?); refusing to read it")
        return
    if id(node) in active:
        problems.append(f"{path or '(top level)'} (line {node.start_mark.line + 1}): "
                        "an alias refers to itself (recursive YAML)")
        return
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return
    active.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    _index_lines(value_node, path, lines, problems, active, budget)
                    continue
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "(a list or mapping)"
                    problems.append(f"{path + '.' if path else ''}{shown} (line {line}): key is not text "
                                    f"(YAML reads it as {key_node.tag.rsplit(':', 1)[-1]}); quote it or fix it")
                    continue
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in seen:
                    problems.append(f"{child} (line {line}): key given twice")
                seen.add(key)
                lines.setdefault(child, line)
                _index_lines(value_node, child, lines, problems, active, budget)
        else:
            for i, item in enumerate(node.value):
                child = f"{path}[{i}]"
                lines.setdefault(child, item.start_mark.line + 1)
                _index_lines(item, child, lines, problems, active, budget)
    finally:
        active.discard(id(node))


def _looks_like_secret_value(value: str) -> bool:
    """An ``*_env`` value that matches the variable-name pattern but reads like
    a key (``AKIAIOSFODNN7EXAMPLE``): long, digits in it, no underscore."""
    return len(value) >= 16 and "_" not in value and any(c.isdigit() for c in value)


def _value_problems(data: Any, path: str, lines: Mapping[str, int]) -> list[str]:
    """Checks the schema cannot express: secrets anywhere (free-form option
    sections included) and numbers that are not finite (``.nan`` passes every
    JSON Schema bound and would switch a limit off)."""
    problems: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            key = str(key)
            child = f"{path}.{key}" if path else key
            if _SECRET_KEY.search(key):
                problems.append(f"{_where(child, lines)}: looks like a secret; secrets are read only from "
                                f"environment variables: put the variable's NAME in api_key_env / secret_key_env")
                continue
            if key.endswith("_env") and isinstance(value, str) and _looks_like_secret_value(value):
                problems.append(f"{_where(child, lines)}: looks like a secret value, not the NAME of an "
                                "environment variable (like UPBIT_SECRET_KEY); secrets never go in a config")
                continue
            problems += _value_problems(value, child, lines)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            problems += _value_problems(item, f"{path}[{i}]", lines)
    elif isinstance(data, float) and not math.isfinite(data):
        problems.append(f"{_where(path, lines)}: must be a finite number, got {data}")
    return problems


def _dotted(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(path: str, lines: Mapping[str, int]) -> str:
    probe = path
    while probe:
        if probe in lines:
            return f"{path or '(top level)'} (line {lines[probe]})"
        probe = probe.rsplit(".", 1)[0] if "." in probe else ""
    return path or "(top level)"


def _schema_problems(data: dict[str, Any], lines: Mapping[str, int]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = _dotted(error.absolute_path)
        problems.extend(_describe(error, path, lines))
    # ``exchanges.upbit`` matches both its property and the name pattern, so
    # one mistake can be reported twice.
    return list(dict.fromkeys(problems))


def _describe(error: jsonschema.ValidationError, path: str, lines: Mapping[str, int]) -> list[str]:
    # Messages are built here, not taken from jsonschema, because its text
    # quotes the offending value and that value may be a pasted secret.
    kind = error.validator
    if kind == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        out = []
        for key in sorted(str(k) for k in error.instance if str(k) not in known):
            if error.schema.get("patternProperties") and any(
                    re.match(p, key) for p in error.schema["patternProperties"]):
                continue
            if _SECRET_KEY.search(key):
                continue  # reported by _value_problems, wherever it is
            child = f"{path}.{key}" if path else key
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(known)})"
            if path.startswith("guards.") and path.count(".") == 1:
                suggestion += "; built-in rules take their limits from the live_trading section"
            out.append(f"{_where(child, lines)}: unknown key{suggestion}")
        return out
    where = _where(path, lines)
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [f"{where}: missing required key {', '.join(missing)}"]
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        hint = ""
        if isinstance(error.instance, str) and expected in ("number", "integer") and _numeric_text(error.instance):
            hint = (" that looks like a number: YAML reads 5e1 as text and needs the form 5.0e+1;"
                    " writing the plain number (50) is clearest")
        return [f"{where}: must be {expected}, got {_type_name(error.instance)}{hint}"]
    if kind == "enum":
        return [f"{where}: must be one of {', '.join(map(str, error.validator_value))}"]
    if kind == "pattern":
        if path.endswith("_env"):
            return [f"{where}: must be the NAME of an environment variable (like UPBIT_SECRET_KEY), "
                    "not the secret itself"]
        return [f"{where}: {_short(error.instance)} does not have the expected form ({error.validator_value})"]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return [f"{where}: must be {bounds[kind]} {error.validator_value}, got {_short(error.instance)}"]
    if kind == "minItems":
        return [f"{where}: must list at least {error.validator_value} item(s), got {len(error.instance)}"]
    if kind == "maxItems":
        return [f"{where}: must list at most {error.validator_value} items, got {len(error.instance)}"]
    if kind == "uniqueItems":
        return [f"{where}: lists the same entry twice"]
    if kind == "minLength":
        return [f"{where}: must not be empty"]
    if kind == "propertyNames":
        return [f"{where}: has a key that is not a lower_snake_case name"]
    return [f"{where}: invalid ({kind})"]


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
    target: Any = schema()
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    merged = dict(target)
    merged.update({k: v for k, v in node_schema.items() if k != "$ref"})
    return merged


def _build(data: dict[str, Any], source: str) -> Config:
    strategy = data["strategy"]
    market = data["market"]
    source_name = market["source"]
    options = market.get(source_name, market["options"]) if source_name in ("simulator", "replay") \
        else market["options"]
    lt = data["live_trading"]
    return Config(
        source=source,
        mode=data["mode"],
        reference_currency=data["reference_currency"],
        local_exchange=data["venues"]["local"],
        reference_exchange=data["venues"]["reference"],
        assets=tuple(p["asset"] for p in data["pairs"]),
        fx_exchange=data["fx"]["exchange"],
        fx_symbol=data["fx"]["symbol"],
        fx_assumed_rate=float(data["fx"]["assumed_rate"]),
        exchanges=data["exchanges"],
        strategy=StrategySettings(
            entry_premium_pct=float(strategy["entry_premium_pct"]),
            exit_premium_pct=float(strategy["exit_premium_pct"]),
            trade_notional=float(strategy["trade_notional"]),
            max_open_trades=int(strategy["max_open_trades"]),
            max_book_age_ms=float(strategy["max_book_age_ms"]),
            max_levels=int(strategy["max_levels"]),
        ),
        market_source=source_name,
        market_options=dict(options),
        paper_balances=data["paper"]["balances"],
        paper_run_guards=bool(data["paper"]["run_guards"]),
        limits=GuardLimits(
            enabled=lt["enabled"],
            dry_run_scale=float(lt["dry_run_scale"]),
            allowed_symbols=tuple(lt["allowed_symbols"]),
            min_account_balance=float(lt["min_account_balance"]),
            max_daily_loss=float(lt["max_daily_loss"]),
            max_notional_per_trade=float(lt["max_notional_per_trade"]),
        ),
        guard_options=data["guards"],
        log_level=data["logging"]["level"],
        log_format=data["logging"]["format"],
        raw=data,
        journal=JournalSettings(enabled=bool(data["journal"]["enabled"]), path=data["journal"]["path"],
                                base_dir=_base_dir(source)),
        day_start_ms=_day_start_ms(data["session"]["trading_day_start_utc"]),
        leg_risk=LegRiskSettings(
            policy=data["leg_risk"]["policy"],
            max_retries=int(data["leg_risk"]["max_retries"]),
            max_slippage_pct=float(data["leg_risk"]["max_slippage_pct"]),
        ),
        metrics=MetricsSettings(**data["monitoring"]["metrics"]),
    )


def _base_dir(source: str) -> str:
    path = Path(source)
    return str(path.resolve().parent) if path.is_file() else ""


def _day_start_ms(text: str) -> int:
    """``"HH:MM"`` (the schema checked the form) → ms after 00:00 UTC."""
    hours, minutes = text.split(":")
    return (int(hours) * 60 + int(minutes)) * 60_000


def _semantic_problems(config: Config, lines: Mapping[str, int]) -> list[str]:
    problems = []
    s = config.strategy
    if s.exit_premium_pct >= s.entry_premium_pct:
        problems.append(f"{_where('strategy.exit_premium_pct', lines)}: must be below entry_premium_pct "
                        f"({s.exit_premium_pct} >= {s.entry_premium_pct}), or every trade would close at once")
    if len(set(config.assets)) != len(config.assets):
        dup = sorted({a for a in config.assets if config.assets.count(a) > 1})
        problems.append(f"{_where('pairs', lines)}: asset(s) listed twice: {', '.join(dup)}")
    if config.local_exchange == config.reference_exchange:
        problems.append(f"{_where('venues', lines)}: local and reference must be different exchanges")
    if config.market_source == "replay" and "replay" not in config.raw["market"]:
        problems.append(f"{_where('market.source', lines)}: source replay needs a market.replay.path")
    return problems
