"""Loading configs: schema defaults, error messages with key path and line,
duplicate keys, typo suggestions, and the schema shipped inside the package."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from arb.config import ConfigError, load_config, parse_config, schema
from arb.guard import GuardLimits

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs" / "live").glob("*.yaml"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yaml")
    assert info.value.problems
    return info.value.problems


def test_defaults_are_the_spec_safe_defaults():
    config = parse_config("pairs: [{asset: BTC}]\n")
    assert config.limits == GuardLimits(enabled=False, dry_run_scale=0.01, allowed_symbols=(),
                                        min_account_balance=50.0, max_daily_loss=20.0,
                                        max_notional_per_trade=50.0)
    assert config.limits.enabled is False
    assert config.mode == "paper"
    assert config.reference_currency == "USDT"
    assert config.paper_run_guards is False
    assert (config.local_exchange, config.reference_exchange) == ("upbit", "binance")
    assert (config.fx_exchange, config.fx_symbol) == ("upbit", "KRW-USDT")


def test_defaults_live_in_the_schema_and_nowhere_else():
    live = schema()["properties"]["live_trading"]["properties"]
    assert {k: v["default"] for k, v in live.items()} == {
        "enabled": False, "dry_run_scale": 0.01, "allowed_symbols": [],
        "min_account_balance": 50.0, "max_daily_loss": 20.0, "max_notional_per_trade": 50.0}
    # GuardLimits() is what a caller gets without a config: the same values.
    assert parse_config("pairs: [{asset: BTC}]\n").limits == GuardLimits()


def test_given_values_override_defaults_and_are_not_shared():
    a = parse_config("pairs: [{asset: BTC}]\nlive_trading: {allowed_symbols: [KRW-BTC]}\n")
    b = parse_config("pairs: [{asset: BTC}]\n")
    assert a.limits.allowed_symbols == ("KRW-BTC",)
    assert b.limits.allowed_symbols == ()
    assert a.limits.max_daily_loss == 20.0


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.assets


def test_shipped_trading_config_has_the_safe_defaults():
    config = load_config(ROOT / "configs" / "live" / "arbitrage_live_upbit_binance_trading.yaml")
    assert config.mode == "live_trading"
    assert config.limits == GuardLimits()


def test_errors_carry_key_path_and_line():
    text = ("mode: paper\n"
            "pairs:\n"
            "  - asset: BTC\n"
            "  - asset: eth\n"
            "live_trading:\n"
            "  enabled: false\n"
            "  max_daily_loss: -3\n"
            "strategy:\n"
            "  max_open_trades: many\n")
    found = problems(text)
    assert "live_trading.max_daily_loss (line 7): must be > 0, got -3" in found
    assert "strategy.max_open_trades (line 9): must be integer, got a string" in found
    assert any(p.startswith("pairs[1].asset (line 4): ") for p in found)
    assert len(found) == 3  # every problem at once, not one per attempt


def test_semantic_errors_carry_lines_too():
    found = problems("pairs: [{asset: BTC}]\nstrategy:\n  entry_premium_pct: 0.5\n  exit_premium_pct: 0.8\n")
    assert found == ["strategy.exit_premium_pct (line 4): must be below entry_premium_pct (0.8 >= 0.5), "
                     "or every trade would close at once"]


def test_duplicate_keys_are_errors_at_any_depth():
    found = problems("pairs: [{asset: BTC}]\nlive_trading:\n  max_daily_loss: 20\n  max_daily_loss: 2000\n")
    assert found == ["live_trading.max_daily_loss (line 4): key given twice"]
    found = problems("pairs: [{asset: BTC}]\npairs: [{asset: ETH}]\n")
    assert found == ["pairs (line 2): key given twice"]


@pytest.mark.parametrize("text,expected", [
    ("live_trading: {max_daily_los: 5}", "live_trading.max_daily_los (line 2): unknown key (did you mean 'max_daily_loss'?)"),
    ("live_trading: {dry_run_scal: 0.1}", "did you mean 'dry_run_scale'?"),
    ("strategy: {entry_premium: 1.0}", "did you mean 'entry_premium_pct'?"),
    ("stratgy: {}", "stratgy (line 2): unknown key (did you mean 'strategy'?)"),
    ("guards: {max_daily_loss: {max_loss: 5}}", "built-in rules take their limits from the live_trading section"),
])
def test_typos_get_a_suggestion(text, expected):
    found = problems("pairs: [{asset: BTC}]\n" + text + "\n")
    assert any(expected in p for p in found), found


def test_unknown_key_without_a_near_match_lists_the_known_ones():
    found = problems("pairs: [{asset: BTC}]\nlive_trading: {zzz: 1}\n")
    assert len(found) == 1
    assert "known keys: enabled, dry_run_scale, allowed_symbols" in found[0]


def test_secret_values_are_never_in_messages():
    secret = "sk-live-9F3kQ2mX7pL0aZ8vB6nC4xR1"
    for text in (f"pairs: [{{asset: BTC}}]\nexchanges: {{upbit: {{secret_key: {secret}}}}}\n",
                 f"pairs: [{{asset: BTC}}]\nexchanges: {{upbit: {{api_key_env: {secret}}}}}\n",
                 f"pairs: [{{asset: BTC}}]\nexchanges: {{upbit: {{rest_url: {secret}}}}}\n",
                 f"pairs: [{{asset: BTC}}]\nmode: {secret}\n",
                 f"pairs: [{{asset: {secret}}}]\n"):
        with pytest.raises(ConfigError) as info:
            parse_config(text)
        assert secret not in str(info.value) and secret not in info.value.report()
        assert secret[:12] not in str(info.value)


def test_non_finite_numbers_are_refused():
    found = problems("pairs: [{asset: BTC}]\nlive_trading: {max_daily_loss: .nan}\n")
    assert found == ["live_trading.max_daily_loss (line 2): must be a finite number, got nan"]


def test_yaml_aliases_and_merge_keys_still_work():
    config = parse_config("pairs: [{asset: BTC}]\n"
                          "strategy: {trade_notional: &n 40}\n"
                          "live_trading: {max_notional_per_trade: *n}\n"
                          "exchanges:\n"
                          "  upbit: &ex {taker_fee: 0.0005, timeout_s: 5}\n"
                          "  binance:\n"
                          "    <<: *ex\n"
                          "    taker_fee: 0.001\n")
    assert config.limits.max_notional_per_trade == 40
    assert dict(config.exchanges["binance"]) == {"taker_fee": 0.001, "timeout_s": 5}


def test_recursive_aliases_and_alias_bombs_are_refused():
    assert problems("pairs: &p [*p]\n") == ["pairs[0] (line 1): an alias refers to itself (recursive YAML)"]
    bomb = "pairs: [{asset: BTC}]\nmarket:\n  options:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 7):
        bomb += f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    assert any("expands to more than" in p for p in problems(bomb))


def test_keys_that_are_not_text_are_refused():
    assert problems("pairs: [{asset: BTC}]\nlive_trading: {on: true}\n") == \
        ["live_trading.on (line 2): key is not text (YAML reads it as bool); quote it or fix it"]


def test_scenario_names_in_the_schema_match_the_simulator():
    from arb_paper.scenarios import SCENARIOS
    scenario = schema()["properties"]["market"]["properties"]["simulator"]["properties"]["scenario"]
    assert sorted(scenario["enum"]) == sorted(SCENARIOS)
    assert scenario["default"] in SCENARIOS


def test_builtin_rule_names_in_the_schema_match_the_essential_rules():
    from arb.guard import ESSENTIAL_RULES
    rules = schema()["properties"]["guards"]["properties"]
    no_options = [name for name, sub in rules.items() if sub == {"$ref": "#/$defs/builtin_rule"}]
    assert sorted(no_options) == sorted(ESSENTIAL_RULES)


def test_optional_builtin_rules_in_the_schema_match_the_installed_ones():
    from arb.plugins import CORE_DISTRIBUTION, load_registry
    optional = sorted(name for name, reg in load_registry().guard_rules.items()
                      if reg.spec.optional and reg.plugin.distribution == CORE_DISTRIBUTION)
    rules = schema()["properties"]["guards"]["properties"]
    assert sorted(name for name, sub in rules.items() if "$ref" not in sub) == optional


def test_schema_ships_inside_the_package():
    resource = resources.files("arb.schemas").joinpath("config.schema.json")
    assert resource.is_file()
    shipped = json.loads(resource.read_text(encoding="utf-8"))
    assert shipped == schema()
    assert shipped["$schema"].startswith("https://json-schema.org/draft/2020-12")
    assert shipped["additionalProperties"] is False  # unknown top-level keys are errors


def test_schema_is_a_valid_json_schema():
    import jsonschema
    jsonschema.Draft202012Validator.check_schema(schema())


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffpairs: [{asset: BTC}]\n".encode("utf-8"))
    assert load_config(bom).assets == ("BTC",)  # a UTF-8 BOM (Windows editors) is fine
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"pairs: [{asset: BTC}]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"line 2: not UTF-8 text"):
        load_config(latin)


def test_report_lists_every_problem():
    with pytest.raises(ConfigError) as info:
        parse_config("pairs: []\nmode: x\n", "c.yaml")
    report = info.value.report()
    assert report.splitlines()[0] == "config error in c.yaml:"
    assert len(report.splitlines()) == 3
