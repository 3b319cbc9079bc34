"""``arb check-order``: the live guard chain on one order, without trading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arb.cli import app

ROOT = Path(__file__).resolve().parents[1]
TRADING = ROOT / "configs" / "live" / "arbitrage_live_upbit_binance_trading.yaml"
RULES = [(10, "enabled"), (20, "allowed_symbols"), (30, "min_account_balance"), (40, "max_daily_loss"),
         (50, "max_notional_per_trade")]
RULE_LINE = re.compile(r"^\s+(\d+)\s+(\w+)\s+(allow|VETO)\b(.*)$")


@pytest.fixture
def config(tmp_path) -> Path:
    data = {
        "mode": "live_trading",
        "pairs": [{"asset": "BTC"}, {"asset": "ETH"}],
        "live_trading": {"enabled": True, "dry_run_scale": 0.5, "allowed_symbols": ["KRW-BTC", "BTCUSDT"]},
    }
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def check(config: Path, *args: str):
    result = CliRunner().invoke(app, ["check-order", "--config", str(config), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def verdicts(output: str) -> list[tuple[int, str, str, str]]:
    return [(int(m[1]), m[2], m[3], m[4]) for m in map(RULE_LINE.match, output.splitlines()) if m]


def order(symbol="BTCUSDT", side="buy", quantity="0.0005", price="95000", *extra: str) -> list[str]:
    return ["--symbol", symbol, "--side", side, "--quantity", quantity, "--price", price, *extra]


def test_allowed_order_exits_0_and_shows_the_scaled_quantity(config):
    result = check(config, *order())
    assert result.exit_code == 0, result.output
    rows = verdicts(result.stdout)
    assert [(o, n) for o, n, _, _ in rows] == RULES
    assert all(v == "allow" for _, _, v, _ in rows)
    # 0.0005 BTC x 0.5, on Binance's 0.00001 lot step: 0.00025 BTC = 23.75 USDT, above the 5 USDT minimum.
    assert "after dry_run_scale 0.5: quantity 0.00025 would be sent" in result.stdout
    assert "notional=47.50" in result.stdout
    assert result.stdout.rstrip().endswith("result: ALLOWED")
    assert "first veto" not in result.stdout


def test_scaled_below_the_minimum_is_allowed_but_not_sent(tmp_path):
    data = {"pairs": [{"asset": "BTC"}],
            "live_trading": {"enabled": True, "allowed_symbols": ["KRW-BTC", "BTCUSDT"]}}  # scale 0.01
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = check(path, *order())
    assert result.exit_code == 0
    assert re.search(r"after dry_run_scale 0.01: quantity 0.00000 would not be sent: .+", result.stdout)


def test_symbol_off_the_whitelist_is_vetoed_with_exit_3(config):
    result = check(config, *order(symbol="ETHUSDT", quantity="0.01", price="3500"))
    assert result.exit_code == 3, result.output
    rows = verdicts(result.stdout)
    assert [(o, n) for o, n, _, _ in rows] == RULES
    marked = [n for _, n, _, rest in rows if "<- first veto, decides" in rest]
    assert marked == ["allowed_symbols"]
    by_name = {n: (v, rest) for _, n, v, rest in rows}
    assert by_name["allowed_symbols"][0] == "VETO"
    assert "ETHUSDT is not in allowed_symbols" in by_name["allowed_symbols"][1]
    assert by_name["enabled"][0] == "allow"
    assert "result: BLOCKED by allowed_symbols" in result.stdout


def test_daily_loss_veto_is_marked_and_stops_the_session(config):
    result = check(config, *order(), "--daily-pnl", "-25")
    assert result.exit_code == 3, result.output
    rows = {n: (v, rest) for _, n, v, rest in verdicts(result.stdout)}
    verdict, rest = rows["max_daily_loss"]
    assert verdict == "VETO"
    assert "(session stop)" in rest and "<- first veto, decides" in rest
    assert "daily PnL -25.00 breaches max_daily_loss 20.00" in rest
    assert all(v == "allow" for n, (v, _) in rows.items() if n != "max_daily_loss")
    assert "result: BLOCKED by max_daily_loss" in result.stdout


def test_daily_loss_exactly_at_the_limit_is_allowed(config):
    result = check(config, *order(), "--daily-pnl", "-20")
    assert result.exit_code == 0, result.output


def test_every_rule_is_judged_and_only_the_first_veto_is_marked():
    # The shipped trading config: disabled AND an empty whitelist.  Both veto; enabled decides.
    result = check(TRADING, *order(), "--balance", "10")
    assert result.exit_code == 3
    rows = verdicts(result.stdout)
    assert [(o, n) for o, n, _, _ in rows] == RULES
    assert [n for _, n, v, _ in rows if v == "VETO"] == ["enabled", "allowed_symbols", "min_account_balance"]
    assert [n for _, n, _, rest in rows if "first veto" in rest] == ["enabled"]
    assert "live_trading.enabled=False" in rows[0][3]
    assert "result: BLOCKED by enabled" in result.stdout


def test_krw_order_is_judged_in_usdt(config):
    result = check(config, *order("KRW-BTC", "sell", "0.0003", "133000000", "--fx-rate", "1330"))
    assert result.exit_code == 0, result.output
    assert "notional=30.00" in result.stdout  # 0.0003 x 133,000,000 KRW / 1330 KRW per USDT
    assert "at 1330 KRW/USDT" in result.stdout


def test_notional_cap_vetoes_a_big_order(config):
    result = check(config, *order(quantity="0.01"))  # 950 USDT
    assert result.exit_code == 3
    rows = {n: (v, rest) for _, n, v, rest in verdicts(result.stdout)}
    assert rows["max_notional_per_trade"][0] == "VETO"
    assert "first veto" in rows["max_notional_per_trade"][1]


def test_unknown_symbol_is_exit_2(config):
    result = check(config, *order(symbol="DOGEUSDT"))
    assert result.exit_code == 2
    assert "'DOGEUSDT' is not a market of this config" in result.stderr
    assert "BTCUSDT" in result.stderr  # lists what is known
    assert not verdicts(result.stdout)


@pytest.mark.parametrize("flag,value", [("--quantity", "0"), ("--quantity", "-1"), ("--quantity", "nan"),
                                        ("--quantity", "inf"), ("--price", "0"), ("--price", "-5"),
                                        ("--fx-rate", "0"), ("--daily-pnl", "nan"), ("--balance", "inf")])
def test_bad_numbers_are_exit_2(config, flag, value):
    args = dict(zip(["--symbol", "--side", "--quantity", "--price"], ["BTCUSDT", "buy", "0.0005", "95000"]))
    args[flag] = value
    result = check(config, *[x for pair in args.items() for x in pair])
    assert result.exit_code == 2, result.output
    assert flag in result.stderr
    assert not verdicts(result.stdout)


def test_bad_side_is_exit_2(config):
    result = check(config, *order(side="hold"))
    assert result.exit_code == 2


def test_bad_config_is_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("pairs: [{asset: BTC}]\nlive_trading: {dry_run_scale: 0}\n", encoding="utf-8")
    result = check(path, *order())
    assert result.exit_code == 2
    assert "live_trading.dry_run_scale (line 2): must be > 0" in result.stderr


def test_config_that_disables_a_builtin_rule_is_refused(tmp_path):
    path = tmp_path / "disabled.yaml"
    path.write_text("pairs: [{asset: BTC}]\nguards: {max_daily_loss: {enabled: false}}\n", encoding="utf-8")
    result = check(path, *order())
    assert result.exit_code == 2
    assert "max_daily_loss is disabled in the config" in result.stderr
