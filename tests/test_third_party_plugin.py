"""A third-party guard rule, installed the way pip installs it, seen through
the ``arb`` command: listed, ordered, run, vetoing, and refused when it
clashes with a built-in or cannot be imported.

The rule is the example package of docs/plugins.md
(``docs/examples/arb-max-trade-fraction``), written as a real distribution
(``.dist-info`` with entry points) into ``tmp_path`` and put on PYTHONPATH.
Entry points are read once per process, so the CLI runs in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from arb.guard import GuardLimits
from arb.plugins import PluginError, build_guard_chain
from arb.testing import order_check, run_arb, write_distribution

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "arb-max-trade-fraction"
MODULE = "arb_max_trade_fraction"
RULE = "max_trade_fraction"

BUILTIN_CHAIN = [("enabled", 10), ("allowed_symbols", 20), ("min_account_balance", 30),
                 ("max_daily_loss", 40), ("max_notional_per_trade", 50)]
CHAIN_WITH_RULE = [*BUILTIN_CHAIN[:3], (RULE, 35), *BUILTIN_CHAIN[3:]]

EXIT_OK, EXIT_USAGE, EXIT_GUARD = 0, 2, 3


# --- installing distributions --------------------------------------------------------


def example_project() -> dict:
    return tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def install_example(root: Path) -> Path:
    """The example package as pip would leave it: name, version and entry
    points from its own pyproject.toml, its module from its own file."""
    project = example_project()
    return write_distribution(root, project["name"], project["version"],
                              {f"{MODULE}.py": (EXAMPLE / f"{MODULE}.py").read_text(encoding="utf-8")},
                              project["entry-points"]["arb"].items())


def install_plugin(root: Path, dist: str, entry_point: str, module: str, source: str) -> Path:
    return write_distribution(root, dist, "0.3.0", {f"{module}.py": textwrap.dedent(source)},
                              [(entry_point, module)])


def rule_module(rule_name: str, order: int) -> str:
    return textwrap.dedent(f"""
        import arb
        from arb.guard import Decision
        from arb.specs import GuardRuleSpec


        class Rule:
            name = {rule_name!r}
            order = {order}

            def check(self, order):
                return Decision.allow(self.name)


        @arb.hookimpl
        def arb_register_guard_rules(register):
            register(GuardRuleSpec({rule_name!r}, {order}, lambda limits, options: Rule()))
        """)


def plugin_rows(stdout: str) -> list[dict[str, str]]:
    """The rows of the ``arb plugins`` table, keyed by column header."""
    lines = stdout.splitlines()
    header = next((line for line in lines if line.startswith("┃")), None)
    assert header is not None, f"no table in the output of `arb plugins`:\n{stdout}"
    columns = [cell.strip() for cell in header.strip("┃").split("┃")]
    rows = []
    for line in lines:
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            assert len(cells) == len(columns), line
            rows.append(dict(zip(columns, cells)))
    return rows


def verdicts(stdout: str) -> list[tuple[str, int, str, str]]:
    """``(rule, order, allow|VETO, rest of line)`` for each rule ``arb check-order`` ran."""
    found = re.findall(r"^\s+(\d+)\s+([a-z][a-z0-9_]*)\s+(allow|VETO)\b[ \t]*(.*)$", stdout, re.M)
    return [(name, int(order), verdict, rest) for order, name, verdict, rest in found]


def assert_clean_refusal(result: subprocess.CompletedProcess, *needles: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_USAGE, output
    assert "Traceback" not in output, output
    message = " ".join(result.stderr.split())
    assert message.startswith("error:"), output
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    assert "┃" not in result.stdout, "nothing may be listed when loading failed"
    return message


@pytest.fixture
def example_root(tmp_path: Path) -> Path:
    return install_example(tmp_path / "site")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # Away from the repository, so only what is installed (and PYTHONPATH) counts.
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- arb plugins -----------------------------------------------------------------------


def test_arb_plugins_lists_the_installed_rule_with_order_version_and_origin(example_root, workdir):
    result = run_arb("plugins", path=[example_root], cwd=workdir)
    assert result.returncode == EXIT_OK, result.stderr
    rows = plugin_rows(result.stdout)
    mine = [row for row in rows if row["provides"] == RULE]
    assert len(mine) == 1, result.stdout
    row = mine[0]
    project = example_project()
    assert row["plugin"] == "max-trade-fraction"
    assert row["kind"] == "guard_rule"
    assert row["order"] == "35"
    assert row["mandatory"] == "no"
    assert row["version"] == project["version"] == "1.0.0"
    assert row["origin"] == f"{project['name']} ({MODULE})"
    # The built-ins are still there, still from arb, and the table is in chain order.
    guard_rows = [row for row in rows if row["kind"] == "guard_rule" and row["mandatory"] != "optional"]
    assert [(r["provides"], int(r["order"])) for r in guard_rows] == CHAIN_WITH_RULE
    for r in guard_rows:
        if r["provides"] != RULE:
            assert r["origin"].startswith("arb (") and r["mandatory"] == "yes", r


def test_without_the_distribution_the_rule_is_not_listed(workdir):
    result = run_arb("plugins", cwd=workdir)
    assert result.returncode == EXIT_OK, result.stderr
    rows = plugin_rows(result.stdout)
    assert RULE not in {row["provides"] for row in rows}
    assert [(r["provides"], int(r["order"])) for r in rows
            if r["kind"] == "guard_rule" and r["mandatory"] != "optional"] == BUILTIN_CHAIN


# --- arb check-order -------------------------------------------------------------------


CHECK_CONFIG = textwrap.dedent("""\
    mode: live_trading
    pairs:
      - asset: BTC
    live_trading:
      enabled: true
      allowed_symbols: [KRW-BTC, BTCUSDT]
      min_account_balance: 50.0
      max_daily_loss: 20.0
      max_notional_per_trade: 50.0
    guards:
      max_trade_fraction:
        max_fraction: 0.1
    """)

# 0.0001 BTC at 95,000 USDT: 9.5 USDT, within every built-in limit above.
ORDER_ARGS = ("--symbol", "BTCUSDT", "--side", "buy", "--quantity", "0.0001", "--price", "95000")


def test_check_order_runs_the_rule_between_balance_and_daily_loss_and_it_vetoes(example_root, workdir):
    config = write_config(workdir / "check.yaml", CHECK_CONFIG)
    result = run_arb("check-order", "--config", str(config), *ORDER_ARGS, "--balance", "60", cwd=workdir,
                     path=[example_root])
    assert result.returncode == EXIT_GUARD, result.stdout + result.stderr
    ran = verdicts(result.stdout)
    assert [(name, order) for name, order, _, _ in ran] == CHAIN_WITH_RULE, result.stdout
    vetoes = [(name, rest) for name, _, verdict, rest in ran if verdict == "VETO"]
    assert [name for name, _ in vetoes] == [RULE], result.stdout
    reason = vetoes[0][1]
    assert "notional 9.50 is more than 0.1 of the 60.00 balance on binance (limit 6.00)" in reason
    assert reason.endswith("<- first veto, decides")
    assert result.stdout.count("first veto") == 1
    assert f"result: BLOCKED by {RULE}" in result.stdout


def test_check_order_with_a_larger_balance_passes_the_same_rule(example_root, workdir):
    # The same order and config: only the balance differs, so the veto above was the rule's.
    config = write_config(workdir / "check.yaml", CHECK_CONFIG)
    result = run_arb("check-order", "--config", str(config), *ORDER_ARGS, "--balance", "1000", cwd=workdir,
                     path=[example_root])
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    ran = verdicts(result.stdout)
    assert [(name, order, verdict) for name, order, verdict, _ in ran] == \
        [(name, order, "allow") for name, order in CHAIN_WITH_RULE]
    assert "result: ALLOWED" in result.stdout


def test_check_order_refuses_options_for_a_rule_that_is_not_installed(workdir):
    config = write_config(workdir / "check.yaml", CHECK_CONFIG)
    result = run_arb("check-order", "--config", str(config), *ORDER_ARGS, "--balance", "60", cwd=workdir)
    message = assert_clean_refusal(result, RULE, "no such rule is installed")
    assert "first veto" not in result.stdout, message


# --- clashes and broken plugins ------------------------------------------------------------


def test_a_distribution_registering_a_rule_named_enabled_is_refused(tmp_path, workdir):
    root = install_plugin(tmp_path / "site", "arb-impostor", "impostor", "arb_impostor", rule_module("enabled", 35))
    result = run_arb("plugins", path=[root], cwd=workdir)
    assert_clean_refusal(result, "guard rule 'enabled'", "'guard-enabled' (arb)", "'impostor' (arb-impostor)")


def test_a_plugin_named_like_a_builtin_plugin_is_refused(tmp_path, workdir):
    root = install_plugin(tmp_path / "site", "arb-impostor", "guard-enabled", "arb_impostor",
                          rule_module("harmless", 36))
    result = run_arb("plugins", path=[root], cwd=workdir)
    assert_clean_refusal(result, "two plugins are named 'guard-enabled'", "arb-impostor", "from arb")


def test_a_rule_taking_a_builtin_order_is_refused(tmp_path, workdir):
    root = install_plugin(tmp_path / "site", "arb-squatter", "squatter", "arb_squatter",
                          rule_module("squatter", 40))
    result = run_arb("plugins", path=[root], cwd=workdir)
    assert_clean_refusal(result, "'max_daily_loss' (arb)", "'squatter' (arb-squatter)", "both want order 40")


@pytest.mark.parametrize("source, error", [
    ("import arb_helpers_that_were_never_installed\n", "ModuleNotFoundError"),
    ("raise RuntimeError('ARB_BROKEN_TOKEN is not set')\n", "ARB_BROKEN_TOKEN is not set"),
    ("def arb_register_guard_rules(register:\n", "SyntaxError"),
], ids=["missing-dependency", "raises-on-import", "syntax-error"])
def test_a_plugin_that_fails_to_import_is_refused_naming_plugin_and_distribution(tmp_path, workdir, source, error):
    root = install_plugin(tmp_path / "site", "arb-broken", "broken", "arb_broken", source)
    result = run_arb("plugins", path=[root], cwd=workdir)
    assert_clean_refusal(result, "plugin 'broken' from arb-broken failed to load", error)


def test_a_hook_without_hookimpl_is_refused_naming_plugin_and_distribution(tmp_path, workdir):
    source = rule_module("forgotten", 37).replace("@arb.hookimpl\n", "")
    root = install_plugin(tmp_path / "site", "arb-forgetful", "forgetful", "arb_forgetful", source)
    result = run_arb("plugins", path=[root], cwd=workdir)
    assert_clean_refusal(result, "plugin 'forgetful' from arb-forgetful defines arb_register_guard_rules",
                         "@arb.hookimpl")


# --- a paper session -------------------------------------------------------------------


PAPER_CONFIG = textwrap.dedent("""\
    mode: paper
    pairs:
      - asset: BTC
      - asset: ETH
    market:
      source: simulator
      simulator: {scenario: cycle, seed: 7, updates_per_second: 10, realtime: false, duration_s: 60}
    paper:
      run_guards: true
    live_trading:
      enabled: true
      allowed_symbols: [KRW-BTC, BTCUSDT, KRW-ETH, ETHUSDT]
    """)


def run_paper(workdir: Path, config_text: str, path: list[Path]) -> dict:
    config = write_config(workdir / "paper.yaml", config_text)
    summary = workdir / "summary.json"
    result = run_arb("run", "--config", str(config), "--summary-json", str(summary), "--log-level", "ERROR",
                     cwd=workdir, path=path)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    return json.loads(summary.read_text(encoding="utf-8"))


def test_paper_session_without_the_rule_trades(workdir):
    # The control for the test below: this market and these limits do let plans through.
    summary = run_paper(workdir, PAPER_CONFIG, path=[])
    assert summary["trades_opened"] > 0
    assert summary["guard"]["allowed"] > 0
    assert summary["guard"]["blocked_by_rule"] == {}


def test_paper_session_with_a_vetoing_rule_blocks_every_plan(example_root, workdir):
    config = PAPER_CONFIG + "guards:\n  max_trade_fraction: {max_fraction: 0.001}\n"
    summary = run_paper(workdir, config, path=[example_root])
    guard = summary["guard"]
    assert guard["active"] is True
    assert guard["rules"] == [name for name, _ in CHAIN_WITH_RULE]
    assert guard["checks"] > 0
    assert guard["allowed"] == 0
    assert guard["blocked_by_rule"] == {RULE: guard["checks"]}
    assert summary["plans_blocked"] > 0
    assert summary["trades_opened"] == 0
    assert summary["orders"]["sent"] == 0
    assert guard["session_stops"] == 0 and summary["exit_reason"] == "market data ended"


# --- the pytest plugin, as a plugin author uses it ------------------------------------------


def load_example_module():
    spec = importlib.util.spec_from_file_location(MODULE, EXAMPLE / f"{MODULE}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIMITS = GuardLimits(enabled=True, allowed_symbols=("BTCUSDT",))


def test_arb_registry_fixture_holds_the_installed_builtins(arb_registry):
    rules = {name: (reg.spec.order, reg.plugin.distribution) for name, reg in arb_registry.guard_rules.items()}
    for name, order in BUILTIN_CHAIN:
        assert rules[name] == (order, "arb")
    assert {"upbit", "binance"} <= set(arb_registry.exchanges)


def test_arb_registry_fixture_is_fresh_for_each_use(arb_registry, arb_registry_with):
    with_rule = arb_registry_with(("max-trade-fraction", load_example_module()))
    assert RULE in with_rule.guard_rules
    assert RULE not in arb_registry.guard_rules
    assert with_rule is not arb_registry_with()


def test_arb_registry_with_adds_an_in_process_plugin_to_the_chain(arb_registry_with):
    registry = arb_registry_with(("max-trade-fraction", load_example_module()))
    reg = registry.guard_rules[RULE]
    assert (reg.spec.order, reg.plugin.name, reg.plugin.distribution) == \
        (35, "max-trade-fraction", "(registered in process)")
    chain = build_guard_chain(registry, LIMITS, {RULE: {"max_fraction": 0.1}}, require_essential=True)
    assert [(r.name, r.order) for r in chain.rules] == CHAIN_WITH_RULE
    assert chain.evaluate(order_check(notional=5.0, balance=100.0)).allowed
    vetoed = chain.evaluate(order_check(notional=20.0, balance=100.0))
    assert vetoed.veto is not None and vetoed.veto.rule == RULE
    assert [d.rule for d in vetoed.decisions] == [name for name, _ in CHAIN_WITH_RULE[:4]]


def test_arb_registry_with_can_leave_the_installed_plugins_out(arb_registry_with):
    registry = arb_registry_with(("max-trade-fraction", load_example_module()), entry_points=False)
    assert list(registry.guard_rules) == [RULE]
    assert registry.exchanges == {} and registry.market_sources == {}


def test_arb_registry_with_refuses_a_hook_without_hookimpl(arb_registry_with):
    class Forgetful:
        def arb_register_guard_rules(self, register):
            raise AssertionError("an undecorated hook must never be called")

    with pytest.raises(PluginError, match=r"'forgetful'.*without the @arb.hookimpl decorator"):
        arb_registry_with(("forgetful", Forgetful()))


def test_order_check_helper_is_allowed_by_the_builtin_chain(arb_registry):
    chain = build_guard_chain(arb_registry, LIMITS, {}, require_essential=True)
    assert chain.evaluate(order_check()).allowed
    assert chain.evaluate(order_check(balance=20.0)).veto.rule == "min_account_balance"


def test_the_example_packages_own_tests_pass_once_it_is_installed(tmp_path):
    """What a plugin author runs: their tests, with arb's fixtures arriving
    through the pytest11 entry point, and their package installed."""
    root = install_example(tmp_path / "site")
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    for relative in ("pyproject.toml", "tests/test_max_trade_fraction.py"):
        (project / relative).write_text((EXAMPLE / relative).read_text(encoding="utf-8"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(root)
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "test_installed_package_is_found_through_its_entry_point PASSED" in output
    assert "test_runs_between_balance_and_daily_loss PASSED" in output
