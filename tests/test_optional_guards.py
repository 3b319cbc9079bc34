"""The optional built-in guard rules: stale_data, premium_sanity, open_exposure
and order_rate.

Each is an ordinary plugin module of ``arb_guards`` registered with
``optional=True``: installed with arb, out of the chain until a config says
``guards.<name>.enabled: true``.  They are tested the way a third-party rule
would be: alone, inside the chain built from the installed entry points,
through ``arb plugins``, ``arb validate-config`` and a paper session.
"""

from __future__ import annotations

import importlib
import json
import math
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from arb.guard import ESSENTIAL_RULES, GuardChainError, GuardLimits
from arb.plugins import CORE_DISTRIBUTION, build_guard_chain, load_registry
from arb.specs import Market, PairMarkets, SourceRequest
from arb.testing import order_check, run_arb

#: Each optional rule with the order it declares and its default options.
OPTIONAL = {
    "stale_data": (15, {"max_age_ms": 1000.0}),
    "premium_sanity": (25, {"max_premium_pct": 10.0}),
    "open_exposure": (55, {"max_open_notional": 200.0}),
    "order_rate": (65, {"max_orders_per_minute": 20}),
}
ALL_ON = ["enabled", "stale_data", "allowed_symbols", "premium_sanity", "min_account_balance",
          "max_daily_loss", "max_notional_per_trade", "open_exposure", "order_rate"]

LIVE = GuardLimits(enabled=True, allowed_symbols=("KRW-BTC", "BTCUSDT"))
EXIT_OK, EXIT_USAGE = 0, 2


def build(name: str, **options):
    """The rule object, straight from its module's ``build``."""
    return importlib.import_module(f"arb_guards.{name}").build(LIVE, options)


def chain(registry, rule_options):
    return build_guard_chain(registry, LIVE, rule_options, require_essential=True)


def on(name: str, **options) -> dict:
    return {name: {"enabled": True, **options}}


def assert_vetoed_by(decision, name: str) -> None:
    assert not decision.allowed
    assert decision.rule == name
    assert decision.reason
    assert decision.session_stop is False


# --- registration, order, switching on ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIONAL))
def test_each_rule_is_an_optional_builtin_at_its_order(arb_registry, name):
    reg = arb_registry.guard_rules[name]
    assert reg.spec.order == OPTIONAL[name][0]
    assert reg.spec.optional is True
    assert reg.plugin.distribution == CORE_DISTRIBUTION
    assert reg.plugin.name == "guard-" + name.replace("_", "-")
    assert reg.plugin.module == f"arb_guards.{name}"
    assert name not in ESSENTIAL_RULES


def test_none_runs_unless_switched_on(arb_registry):
    assert chain(arb_registry, {}).names == list(ESSENTIAL_RULES)
    # Options alone, or enabled: false, do not switch a rule on.
    options_only = {name: dict(defaults) for name, (_, defaults) in OPTIONAL.items()}
    assert chain(arb_registry, options_only).names == list(ESSENTIAL_RULES)
    switched_off = {name: {"enabled": False} for name in OPTIONAL}
    assert chain(arb_registry, switched_off).names == list(ESSENTIAL_RULES)


@pytest.mark.parametrize("name", sorted(OPTIONAL))
def test_switched_on_a_rule_takes_its_place_among_the_five(arb_registry, name):
    names = chain(arb_registry, on(name)).names
    assert names == [n for n in ALL_ON if n in ESSENTIAL_RULES or n == name]
    assert chain(arb_registry, on(name)).evaluate(order_check()).allowed


def test_all_four_switched_on(arb_registry):
    every = build_guard_chain(arb_registry, LIVE, {name: {"enabled": True} for name in OPTIONAL},
                              require_essential=True)
    assert every.names == ALL_ON
    assert [rule.order for rule in every.rules] == [10, 15, 20, 25, 30, 40, 50, 55, 65]
    result = every.evaluate(order_check(), all_rules=True)
    assert [d.rule for d in result.decisions] == ALL_ON
    assert result.allowed


def test_data_rules_decide_before_the_money_rules(arb_registry):
    """Old data or an absurd premium is the cause; a breached limit computed
    from those prices is a symptom.  The first veto is the one recorded."""
    every = chain(arb_registry, {name: {"enabled": True} for name in OPTIONAL})
    bad = order_check(data_age_ms=5000.0, premium_pct=40.0, balance=1.0, notional=1000.0)
    assert every.evaluate(bad).veto.rule == "stale_data"
    assert every.evaluate(order_check(premium_pct=40.0, balance=1.0)).veto.rule == "premium_sanity"
    # ``enabled`` still has the first word.
    off = build_guard_chain(arb_registry, GuardLimits(enabled=False, allowed_symbols=("BTCUSDT",)),
                            on("stale_data"), require_essential=False)
    assert off.evaluate(bad).veto.rule == "enabled"


# --- stale_data -----------------------------------------------------------------------------


def test_stale_data_allows_data_exactly_max_age_ms_old():
    rule = build("stale_data", max_age_ms=500)
    assert rule.check(order_check(data_age_ms=0.0)).allowed
    assert rule.check(order_check(data_age_ms=500.0)).allowed


@pytest.mark.parametrize("age", [500.001, 10_000.0, math.inf, math.nan])
def test_stale_data_vetoes_older_data_and_nan(age):
    decision = build("stale_data", max_age_ms=500).check(order_check(data_age_ms=age))
    assert_vetoed_by(decision, "stale_data")


def test_stale_data_says_how_old_and_what_the_limit_is():
    reason = build("stale_data", max_age_ms=500).check(order_check(data_age_ms=1234.0)).reason
    assert "1234 ms" in reason and "max_age_ms 500" in reason and "BTCUSDT" in reason


def test_stale_data_defaults_to_one_second():
    rule = build("stale_data")
    assert rule.check(order_check(data_age_ms=1000.0)).allowed
    assert not rule.check(order_check(data_age_ms=1000.5)).allowed


# --- premium_sanity -------------------------------------------------------------------------


@pytest.mark.parametrize("premium", [0.0, 3.2, 10.0, -10.0])
def test_premium_sanity_allows_premiums_up_to_the_bound_either_way(premium):
    assert build("premium_sanity", max_premium_pct=10).check(order_check(premium_pct=premium)).allowed


@pytest.mark.parametrize("premium", [10.01, -10.01, 250.0, math.inf, math.nan])
def test_premium_sanity_vetoes_beyond_the_bound_and_nan(premium):
    decision = build("premium_sanity", max_premium_pct=10).check(order_check(premium_pct=premium))
    assert_vetoed_by(decision, "premium_sanity")


def test_premium_sanity_reason_names_the_premium_and_the_bound():
    reason = build("premium_sanity").check(order_check(premium_pct=31.5)).reason
    assert "31.5%" in reason and "10%" in reason and "bad price" in reason


# --- open_exposure --------------------------------------------------------------------------


def test_open_exposure_allows_reaching_the_cap_exactly():
    rule = build("open_exposure", max_open_notional=200)
    assert rule.check(order_check(open_notional=0.0, notional=9.5)).allowed
    assert rule.check(order_check(open_notional=190.5, notional=9.5)).allowed


@pytest.mark.parametrize("open_notional, notional", [
    (190.51, 9.5),            # just past the cap
    (0.0, 200.01),            # one order past it on its own
    (math.nan, 9.5),
    (0.0, math.nan),
    (-50.0, 9.5),             # a negative exposure is a bug upstream, not headroom
])
def test_open_exposure_vetoes_beyond_the_cap_and_bad_inputs(open_notional, notional):
    rule = build("open_exposure", max_open_notional=200)
    assert_vetoed_by(rule.check(order_check(open_notional=open_notional, notional=notional)), "open_exposure")


def test_open_exposure_reason_shows_the_sum():
    reason = build("open_exposure").check(order_check(open_notional=195.0, notional=9.5)).reason
    assert "195.00 + order 9.50 = 204.50 on binance" in reason and "200.00" in reason


def test_open_notional_defaults_to_zero_for_rules_that_predate_it():
    assert order_check().open_notional == 0.0


# --- order_rate -----------------------------------------------------------------------------

T0 = 1_767_225_600_000.0


def test_order_rate_allows_exactly_the_maximum_in_a_minute_then_vetoes():
    rule = build("order_rate", max_orders_per_minute=3)
    assert [rule.check(order_check(now_ms=T0 + i)).allowed for i in range(3)] == [True, True, True]
    decision = rule.check(order_check(now_ms=T0 + 3))
    assert_vetoed_by(decision, "order_rate")
    assert "3 orders approved on binance" in decision.reason and "max_orders_per_minute is 3" in decision.reason


def test_order_rate_window_slides_on_the_session_clock():
    rule = build("order_rate", max_orders_per_minute=2)
    assert rule.check(order_check(now_ms=T0)).allowed
    assert rule.check(order_check(now_ms=T0 + 30_000)).allowed
    # The first approval counts until T0 + 60 s, exclusive.
    assert not rule.check(order_check(now_ms=T0 + 59_999)).allowed
    assert rule.check(order_check(now_ms=T0 + 60_000)).allowed
    # Now T0 + 30 s and T0 + 60 s are in the window.
    assert not rule.check(order_check(now_ms=T0 + 89_999)).allowed
    assert rule.check(order_check(now_ms=T0 + 90_000)).allowed


def test_order_rate_counts_each_exchange_on_its_own():
    rule = build("order_rate", max_orders_per_minute=1)
    assert rule.check(order_check(exchange="binance", now_ms=T0)).allowed
    assert rule.check(order_check(exchange="upbit", symbol="KRW-BTC", now_ms=T0)).allowed
    assert not rule.check(order_check(exchange="binance", now_ms=T0 + 1)).allowed
    assert not rule.check(order_check(exchange="upbit", symbol="KRW-BTC", now_ms=T0 + 1)).allowed


def test_order_rate_does_not_count_its_own_vetoes():
    rule = build("order_rate", max_orders_per_minute=1)
    assert rule.check(order_check(now_ms=T0)).allowed
    for second in range(1, 60):
        assert not rule.check(order_check(now_ms=T0 + second * 1000)).allowed
    assert rule.check(order_check(now_ms=T0 + 60_000)).allowed


@pytest.mark.parametrize("now", [math.nan, math.inf])
def test_order_rate_vetoes_a_clock_that_is_not_a_time(now):
    rule = build("order_rate", max_orders_per_minute=5)
    assert_vetoed_by(rule.check(order_check(now_ms=now)), "order_rate")
    assert rule.check(order_check(now_ms=T0)).allowed  # and it was not counted


def test_order_rate_counts_approvals_it_gave_even_if_the_plan_is_not_sent(arb_registry):
    """Documented and conservative: the upbit leg passes the whole chain, the
    binance leg is vetoed, so nothing is sent; the upbit approval still counts."""
    limits = GuardLimits(enabled=True, allowed_symbols=("KRW-BTC", "BTCUSDT"), min_account_balance=50.0)
    rate = build_guard_chain(arb_registry, limits, on("order_rate", max_orders_per_minute=1),
                             require_essential=True)
    upbit = order_check(exchange="upbit", symbol="KRW-BTC", now_ms=T0)
    poor_binance = order_check(balance=10.0, now_ms=T0)
    first = rate.check_plan([upbit, poor_binance])
    assert first.veto.rule == "min_account_balance"
    second = rate.check_plan([order_check(exchange="upbit", symbol="KRW-BTC", now_ms=T0 + 1000),
                              order_check(now_ms=T0 + 1000)])
    assert second.veto.rule == "order_rate"
    assert rate.summary()["blocked_by_rule"] == {"min_account_balance": 1, "order_rate": 1}


def test_order_rate_state_belongs_to_one_chain(arb_registry):
    options = on("order_rate", max_orders_per_minute=1)
    first, second = chain(arb_registry, options), chain(arb_registry, options)
    assert first.evaluate(order_check()).allowed
    assert not first.evaluate(order_check()).allowed
    assert second.evaluate(order_check()).allowed


# --- options ----------------------------------------------------------------------------------


BAD_OPTIONS = [
    ("stale_data", {"max_age": 500}),
    ("stale_data", {"max_age_ms": 0}),
    ("stale_data", {"max_age_ms": -1}),
    ("stale_data", {"max_age_ms": "500ms"}),
    ("stale_data", {"max_age_ms": True}),
    ("stale_data", {"max_age_ms": math.nan}),
    ("premium_sanity", {"max_premium": 10}),
    ("premium_sanity", {"max_premium_pct": 0}),
    ("premium_sanity", {"max_premium_pct": math.inf}),
    ("premium_sanity", {"max_premium_pct": "10%"}),
    ("open_exposure", {"max_notional": 200}),
    ("open_exposure", {"max_open_notional": -200}),
    ("open_exposure", {"max_open_notional": None}),
    ("order_rate", {"max_orders_per_second": 1}),
    ("order_rate", {"max_orders_per_minute": 0}),
    ("order_rate", {"max_orders_per_minute": 2.5}),
    ("order_rate", {"max_orders_per_minute": True}),
    ("order_rate", {"max_orders_per_minute": "20"}),
]


@pytest.mark.parametrize("name, options", BAD_OPTIONS, ids=lambda v: str(v))
def test_bad_options_are_value_errors_naming_the_option(name, options):
    with pytest.raises(ValueError) as raised:
        build(name, **options)
    assert next(iter(options)) in str(raised.value)


@pytest.mark.parametrize("name, options", BAD_OPTIONS, ids=lambda v: str(v))
def test_bad_options_stop_the_chain_from_being_built(arb_registry, name, options):
    with pytest.raises(GuardChainError, match=rf"guard rule '{name}' could not be built from its options"):
        chain(arb_registry, on(name, **options))


def test_unknown_option_error_lists_what_the_rule_takes():
    with pytest.raises(ValueError, match=r"unknown option\(s\) max_age; stale_data takes max_age_ms"):
        build("stale_data", max_age=500)


def test_whole_number_floats_are_accepted_as_a_count():
    # JSON Schema's "integer" lets 20.0 through; the rule agrees with it.
    rule = build("order_rate", max_orders_per_minute=1.0)
    assert rule.check(order_check()).allowed
    assert not rule.check(order_check()).allowed


# --- through the arb command ------------------------------------------------------------------


def plugin_rows(stdout: str) -> list[dict[str, str]]:
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("┃"))
    columns = [cell.strip() for cell in header.strip("┃").split("┃")]
    return [dict(zip(columns, (cell.strip() for cell in line.strip("│").split("│"))))
            for line in lines if line.startswith("│")]


def test_arb_plugins_lists_them_as_optional_in_chain_order(tmp_path):
    result = run_arb("plugins", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    guard_rows = [row for row in plugin_rows(result.stdout) if row["kind"] == "guard_rule"]
    assert [row["provides"] for row in guard_rows] == ALL_ON
    for row in guard_rows:
        expected = "optional" if row["provides"] in OPTIONAL else "yes"
        assert row["mandatory"] == expected, row
        assert row["origin"] == f"arb (arb_guards.{row['provides']})"
        if row["provides"] in OPTIONAL:
            assert int(row["order"]) == OPTIONAL[row["provides"]][0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize("name, section, key, message", [
    ("stale_data", "{enabled: true, max_age: 500}", "guards.stale_data.max_age",
     "unknown key (did you mean 'max_age_ms'?)"),
    ("order_rate", "{enabled: true, max_orders_per_minute: 0}", "guards.order_rate.max_orders_per_minute",
     "must be >= 1"),
    ("premium_sanity", "{enabled: yes, max_premium_pct: ten}", "guards.premium_sanity.max_premium_pct",
     "must be number"),
    ("open_exposure", "{max_open_notional: 0}", "guards.open_exposure.max_open_notional", "must be > 0"),
])
def test_validate_config_refuses_a_bad_option_naming_the_key(tmp_path, name, section, key, message):
    config = write(tmp_path / "bad.yaml", f"""\
        pairs: [{{asset: BTC}}]
        guards:
          {name}: {section}
        """)
    result = run_arb("validate-config", str(config), cwd=tmp_path)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert key in result.stderr and message in result.stderr, result.stderr


def test_validate_config_accepts_the_options_of_every_optional_rule(tmp_path):
    config = write(tmp_path / "good.yaml", """\
        pairs: [{asset: BTC}]
        guards:
          stale_data: {enabled: true, max_age_ms: 750}
          premium_sanity: {enabled: true, max_premium_pct: 8.5}
          open_exposure: {enabled: true, max_open_notional: 150}
          order_rate: {enabled: true, max_orders_per_minute: 12}
        """)
    result = run_arb("validate-config", str(config), cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr


# --- a paper session ------------------------------------------------------------------------

PAPER = {
    "mode": "paper",
    "pairs": [{"asset": "BTC"}, {"asset": "ETH"}],
    "paper": {"run_guards": True},
    "live_trading": {"enabled": True, "allowed_symbols": ["KRW-BTC", "BTCUSDT", "KRW-ETH", "ETHUSDT"]},
}
SIMULATOR_OPTIONS = {"scenario": "cycle", "seed": 7, "updates_per_second": 10, "realtime": False, "duration_s": 60}
SIMULATOR = {"source": "simulator", "simulator": SIMULATOR_OPTIONS}


def run_paper(workdir: Path, market: dict, guards: dict) -> dict:
    config = workdir / "paper.yaml"
    config.write_text(yaml.safe_dump({**PAPER, "market": market, "guards": guards}), encoding="utf-8")
    summary = workdir / "summary.json"
    result = run_arb("run", "--config", str(config), "--summary-json", str(summary), "--log-level", "ERROR",
                     cwd=workdir)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    return json.loads(summary.read_text(encoding="utf-8"))


def staggered_recording(path: Path) -> Path:
    """The simulator's books, replayed with each book of a step 1 ms after the
    one before it.  The simulator stamps every book of a step with the same
    time, so a plan priced when the last of them arrives is 0 ms old; here
    every plan is priced on data at least 2 ms old."""
    registry = load_registry()

    def market(exchange: str, asset: str) -> Market:
        symbol = registry.exchange(exchange).symbol_for(asset)
        return Market(exchange, symbol, registry.exchange(exchange).paper_rules(symbol))

    pairs = tuple(PairMarkets(a, market("upbit", a), market("binance", a)) for a in ("BTC", "ETH"))
    source = registry.market_source("simulator").build(
        SourceRequest(pairs, market("upbit", "USDT"), SIMULATOR_OPTIONS, threading.Event()))
    lines, step, index = [], None, 0
    for book in source.events():
        index = index + 1 if book.received_ms == step else 0
        step = book.received_ms
        lines.append(json.dumps({"exchange": book.exchange, "symbol": book.symbol, "ts_ms": step + index,
                                 "bids": book.bids, "asks": book.asks}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return staggered_recording(tmp_path_factory.mktemp("replay") / "books.jsonl")


def test_paper_session_with_stale_data_blocks_every_plan(recording, tmp_path):
    replay = {"source": "replay", "replay": {"path": str(recording)}}
    # The control: the same market, the rule switched on with a generous limit, trades.
    control = run_paper(tmp_path, replay, on("stale_data", max_age_ms=1000))
    assert control["trades_opened"] > 0
    assert control["guard"]["blocked_by_rule"] == {}

    summary = run_paper(tmp_path, replay, on("stale_data", max_age_ms=1))
    guard = summary["guard"]
    assert guard["rules"] == ["enabled", "stale_data", *ESSENTIAL_RULES[1:]]
    assert guard["checks"] > 0
    assert guard["allowed"] == 0
    assert guard["blocked_by_rule"] == {"stale_data": guard["checks"]}
    assert summary["plans_blocked"] > 0
    assert summary["trades_opened"] == 0
    assert summary["orders"]["sent"] == 0
    assert guard["session_stops"] == 0


def test_paper_session_on_the_simulator_blocks_plans_priced_on_old_data(tmp_path):
    """On the simulator every book of a step shares one timestamp: plans priced
    when a step's last book arrives are 0 ms old and pass, the rest are 100 ms
    old and are blocked.  Only stale_data blocks anything."""
    summary = run_paper(tmp_path, SIMULATOR, on("stale_data", max_age_ms=1))
    guard = summary["guard"]
    assert guard["rules"] == ["enabled", "stale_data", *ESSENTIAL_RULES[1:]]
    assert guard["blocked_by_rule"].keys() == {"stale_data"}
    assert guard["blocked_by_rule"]["stale_data"] == guard["blocked"] > 0
    assert guard["checks"] == guard["allowed"] + guard["blocked"]
