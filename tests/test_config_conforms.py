"""The quick schema check that spares a valid config the jsonschema import.

It may only say "valid" where jsonschema finds nothing wrong; whatever it
is unsure of goes to jsonschema, which explains the problems.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
from hypothesis import HealthCheck, given, settings, strategies as st

from arb.config_schema import conforms, schema
from arb.config_yaml import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(schema())


def _load(path: Path):
    return parse_yaml(path.read_text(encoding="utf-8-sig"), str(path))[0]


def _agrees(data) -> None:
    if conforms(data):
        assert not list(VALIDATOR.iter_errors(data)), data


def test_shipped_configs_take_the_quick_path():
    # A schema keyword the quick check does not know would send every config
    # to jsonschema again: correct, but the start-up saving would be gone.
    assert SHIPPED
    for path in SHIPPED:
        assert conforms(_load(path)), path


def test_bad_config_corpus():
    checked = 0
    for path in sorted((ROOT / "tests" / "bad_configs").glob("*.yaml")):
        try:
            data = _load(path)
        except Exception:  # refused before the schema: nothing to compare
            continue
        _agrees(data)
        checked += 1
    assert checked >= 10


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.sampled_from([0, 1, -1, 0.0, 1.0, 5.0, 1e9]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["paper", "live_trading", "upbit", "binance", "BTC", "KRW-BTC", "BTCUSDT", "USDT",
                     "UPBIT_SECRET_KEY", "simulator", "sideways", "webhook", "Bad Name", "", "x" * 40]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(
        ["enabled", "path", "asset", "type", "url_env", "max_age_s", "rest_url"])), inner, max_size=4)),
    max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _mutate(data, path, how, value):
    data = copy.deepcopy(data)
    if not path:
        return value if how == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    elif how == "add" and isinstance(parent, list):
        parent.append(value)
    elif how == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SHIPPED), st.data(), st.sampled_from(["replace", "delete", "add", "duplicate"]), values)
def test_quick_check_never_accepts_what_jsonschema_refuses(path, data, how, value):
    base = _load(path)
    where = data.draw(st.sampled_from(list(_paths(base))))
    _agrees(_mutate(base, where, how, value))


def test_values_jsonschema_reads_differently_from_python():
    base = _load(SHIPPED[0])
    # 1 == True and 1 == 1.0 in Python, not in jsonschema; NaN compares false both ways.
    for value in (True, 1.0, math.nan, -math.inf, [1, True], ["a", "a"]):
        for key in ("reference_currency", "mode"):
            _agrees({**base, key: value})
        _agrees({**base, "pairs": value})
