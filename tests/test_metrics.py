"""The metrics endpoint, the dashboard and alert rules that depend on it, and a
real Prometheus scraping a paper session until its alert fires.

Scrapes are parsed with prometheus_client's own text parser.  A metric the
dashboard or an alert rule names must exist in a real scrape, so renaming
one breaks a test here rather than a dashboard at 3 a.m.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from arb.config import parse_config
from arb.metrics import DIRECTIONS, ORDER_STATUSES, attach_metrics, detach_metrics, metrics_enabled, \
    start_metrics_server
from arb.plugins import load_registry
from arb.session import build_session
from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator
from arb_upbit.emulator import UpbitEmulator

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "arb-overview.json"
ALL_SYMBOLS = ["KRW-BTC", "BTCUSDT", "KRW-ETH", "ETHUSDT", "KRW-XRP", "XRPUSDT"]
MARKETS = {("upbit", "KRW-USDT"), ("upbit", "KRW-BTC"), ("binance", "BTCUSDT"), ("upbit", "KRW-ETH"),
           ("binance", "ETHUSDT"), ("upbit", "KRW-XRP"), ("binance", "XRPUSDT")}
RULES = {"enabled", "allowed_symbols", "min_account_balance", "max_daily_loss", "max_notional_per_trade"}
#: Only the live modes have exchange clients and streams: these have samples
#: in the live scrape (against the emulators), and none in paper.
LIVE_ONLY = {"arb_websocket_connected", "arb_websocket_reconnects_total", "arb_websocket_disconnects_total",
             "arb_rest_fallback_snapshots_total", "arb_ratelimit_used", "arb_ratelimit_limit",
             "arb_ratelimit_remaining", "arb_ratelimit_headroom_ratio", "arb_ratelimit_ban_remaining_seconds"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def paper_config(*, realtime: bool = False, duration_s: float | None = 90, max_daily_loss: float = 20.0,
                 updates_per_second: float = 10, metrics: dict | None = None):
    """test_cli_run's rehearsal: cycle scenario, three pairs, guards on paper orders."""
    simulator = {"scenario": "cycle", "seed": 7, "updates_per_second": updates_per_second, "realtime": realtime,
                 "duration_s": duration_s}
    return parse_config(json.dumps({
        "mode": "paper",
        "pairs": [{"asset": "BTC"}, {"asset": "ETH"}, {"asset": "XRP"}],
        "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 40},
        "market": {"source": "simulator", "simulator": simulator},
        "paper": {"run_guards": True},
        "journal": {"enabled": False},
        "live_trading": {"enabled": True, "allowed_symbols": ALL_SYMBOLS, "max_daily_loss": max_daily_loss},
        "monitoring": {"metrics": metrics or {}},
    }))


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode("utf-8")
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(families: dict, sample_name: str) -> dict:
    """{labels as a sorted tuple of pairs: value} of one sample name."""
    out = {}
    for family in families.values():
        for sample in family.samples:
            if sample.name == sample_name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(families: dict, sample_name: str, **labels) -> float:
    return values(families, sample_name)[tuple(sorted(labels.items()))]


def sample_names(families: dict) -> set[str]:
    return {s.name for family in families.values() for s in family.samples}


@contextmanager
def serving(session):
    server = start_metrics_server(session, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def running(session, max_runtime_s: float = 60.0):
    """The session runs on a thread; leaving stops it and waits for its end."""
    outcome: dict = {}

    def run():
        try:
            outcome["reason"] = session.run(max_runtime_s)
        except BaseException as exc:  # pragma: no cover - surfaced below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="arb-test-session", daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        session.stop_event.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the session did not stop"
        assert "error" not in outcome, outcome.get("error")


def wait_for(condition, timeout_s: float = 20.0, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout_s} s")
        time.sleep(interval_s)


# --- scrapes shared by several tests ----------------------------------------------------


@pytest.fixture(scope="module")
def paper_scrape():
    """A whole 90-simulated-second rehearsal (trades opened and closed),
    scraped after it ended: the server keeps serving until closed."""
    session = build_session(paper_config(), load_registry())
    with serving(session) as server:
        assert session.run() == "market data ended"
        return scrape(server.url)


@pytest.fixture(scope="module")
def live_scrape(tmp_path_factory):
    """live_trading against both exchange emulators, scraped once the opening
    pair has filled (streams up, rate limiters counting)."""
    upbit = UpbitEmulator(access_key="m-upbit-access-key-000000000000000001",
                          secret_key="m-upbit-secret-key-000000000000000002",
                          balances={"KRW": 5_000_000.0, "BTC": 0.05, "USDT": 0.0}, books={})
    binance = BinanceEmulator(balances={"USDT": "2000", "BTC": "0.05"})
    # Upbit 2 % dear: 95,000 USDT × 1,400 KRW/USDT × 1.02.
    upbit.set_book("KRW-BTC", ladder(135_660_000, -1000, 0.05), ladder(135_661_000, 1000, 0.05))
    upbit.set_book("KRW-USDT", ladder(1399, -1, 5000), ladder(1401, 1, 5000))
    binance.set_book("BTCUSDT", ladder(94_990.0, -10.0, 1.0), ladder(95_000.0, 10.0, 1.0))
    upbit.start()
    binance.start()
    env = {"M_UPBIT_KEY": upbit.access_key, "M_UPBIT_SECRET": upbit.secret_key,
           "M_BINANCE_KEY": EMULATOR_API_KEY, "M_BINANCE_SECRET": EMULATOR_SECRET_KEY}
    config = parse_config(json.dumps({
        "mode": "live_trading",
        "pairs": [{"asset": "BTC"}],
        "exchanges": {
            "upbit": {"rest_url": upbit.rest_url, "ws_url": upbit.ws_url,
                      "api_key_env": "M_UPBIT_KEY", "secret_key_env": "M_UPBIT_SECRET"},
            "binance": {"rest_url": binance.rest_url, "ws_url": binance.ws_url,
                        "api_key_env": "M_BINANCE_KEY", "secret_key_env": "M_BINANCE_SECRET"},
        },
        "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 40},
        "live_trading": {"enabled": True, "dry_run_scale": 0.5, "allowed_symbols": ["KRW-BTC", "BTCUSDT"]},
        "journal": {"path": str(tmp_path_factory.mktemp("live-journal") / "journal.sqlite")},
        "monitoring": {"metrics": {"port": 0}},
    }))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, secret in env.items():
                patch.setenv(name, secret)
            session = build_session(config, load_registry())
        server = attach_metrics(session)  # on by default in the live modes
        assert server is not None and session.extra["metrics_server"] is server
        try:
            with running(session):
                def filled():
                    families = scrape(server.url)
                    done = values(families, "arb_orders_total")
                    filled_legs = sum(v for labels, v in done.items() if ("status", "filled") in labels)
                    return families if filled_legs >= 2 else None
                during = wait_for(filled, timeout_s=30, interval_s=0.2)
            after = scrape(server.url)
        finally:
            server.close()
        return during, after
    finally:
        upbit.stop()
        binance.stop()


def ladder(best: float, step: float, size: float, levels: int = 10) -> list[tuple[float, float]]:
    return [(best + i * step, size) for i in range(levels)]


# --- the endpoint ------------------------------------------------------------------------


def test_a_paper_run_is_scraped_while_it_runs_and_after_it_ends():
    session = build_session(paper_config(realtime=True, duration_s=None, updates_per_second=50),
                            load_registry())
    with serving(session) as server:
        with running(session):
            def every_market_seen():
                families = scrape(server.url)
                updates = values(families, "arb_book_updates_total")
                return families if len(updates) == len(MARKETS) and all(updates.values()) else None
            during = wait_for(every_market_seen)
        after = scrape(server.url)
    assert value(during, "arb_up") == 1
    assert value(during, "arb_session_running") == 1
    assert value(during, "arb_session_info", mode="paper", session_id=session.session_id,
                 version=__import__("arb").__version__) == 1
    markets = {(dict(k)["exchange"], dict(k)["symbol"]) for k in values(during, "arb_book_updates_total")}
    assert markets == MARKETS
    # Realtime books are stamped with the wall clock: their age is real and small.
    ages = values(during, "arb_book_age_seconds")
    assert len(ages) == len(MARKETS) and all(0 <= age < 5 for age in ages.values())
    premiums = values(during, "arb_premium_ratio")
    assert {(dict(k)["asset"], dict(k)["direction"]) for k in premiums} == \
        {(asset, d) for asset in ("BTC", "ETH", "XRP") for d in DIRECTIONS}
    assert all(-0.5 < p < 0.5 for p in premiums.values())
    assert value(during, "process_resident_memory_bytes") > 0
    # After the end the endpoint still answers, with the final state.
    assert value(after, "arb_session_running") == 0
    assert sum(values(after, "arb_book_updates_total").values()) == session.engine.updates
    assert value(after, "arb_metrics_collect_errors_total") == 0


def test_scraping_hard_during_a_run_changes_nothing_the_session_does():
    plain = build_session(paper_config(), load_registry())
    plain.run()
    watched = build_session(paper_config(), load_registry())
    scrapes = 0
    with serving(watched) as server:
        with running(watched) as outcome:
            while "reason" not in outcome and scrapes < 200:
                scrape(server.url)
                scrapes += 1
        final = scrape(server.url)
    assert scrapes >= 1
    assert value(final, "arb_metrics_collect_errors_total") == 0
    for name in ("updates", "busy_ns"):
        assert getattr(watched.engine, name) > 0
    assert watched.engine.updates == plain.engine.updates
    assert watched.engine.portfolio.trades_opened == plain.engine.portfolio.trades_opened
    assert watched.engine.portfolio.realized_pnl == pytest.approx(plain.engine.portfolio.realized_pnl)


def test_paper_rehearsal_figures_match_the_session(paper_scrape):
    families = paper_scrape
    assert value(families, "arb_session_stopped_by_guard") == 0
    opened = value(families, "arb_trades_opened_total")
    closed = value(families, "arb_trades_closed_total")
    assert opened >= 2 and 1 <= closed <= opened
    # Each opening and closing is two legs, one per exchange, all filled on paper.
    for exchange in ("upbit", "binance"):
        assert value(families, "arb_orders_sent_total", exchange=exchange) == opened + closed
        assert value(families, "arb_orders_total", exchange=exchange, status="filled") == opened + closed
        for status in ORDER_STATUSES:
            assert ("status", status) in {p for k in values(families, "arb_orders_total") for p in k}
    assert value(families, "arb_guard_checks_total", outcome="allowed") == 2 * (opened + closed)
    assert value(families, "arb_guard_checks_total", outcome="blocked") == 0
    assert {dict(k)["rule"] for k in values(families, "arb_guard_blocks_total")} == RULES
    assert value(families, "arb_order_round_trip_seconds_count") == opened + closed
    # Simulated (not wall-clock) receipt times: tick-to-order is not measured.
    assert value(families, "arb_tick_to_order_seconds_count") == 0
    assert value(families, "arb_pnl_realized_usdt") != 0
    assert value(families, "arb_limit_max_daily_loss_usdt") == 20
    assert value(families, "arb_strategy_entry_premium_ratio") == pytest.approx(0.01)
    assert value(families, "arb_balance", exchange="binance", asset="USDT") > 0
    assert value(families, "arb_exchange_banned", exchange="upbit") == 0
    assert sum(values(families, "arb_leg_exposure_quantity").values()) == 0


def test_a_guard_stop_shows_in_the_scrape():
    session = build_session(paper_config(max_daily_loss=0.01), load_registry())
    with serving(session) as server:
        assert session.run() == "session_stop"
        families = scrape(server.url)
    assert value(families, "arb_session_stopped_by_guard") == 1
    assert value(families, "arb_session_halted") == 1
    assert value(families, "arb_guard_session_stops_total") == 1
    assert value(families, "arb_guard_blocks_total", rule="max_daily_loss") >= 1
    assert value(families, "arb_pnl_today_usdt") < -0.01


def test_live_modes_show_streams_rate_limits_and_order_timings(live_scrape):
    during, after = live_scrape
    for exchange in ("upbit", "binance"):
        assert value(during, "arb_websocket_connected", exchange=exchange) == 1
        assert value(during, "arb_websocket_reconnects_total", exchange=exchange) == 0
        assert value(during, "arb_orders_total", exchange=exchange, status="filled") == 1
        assert value(during, "arb_exchange_banned", exchange=exchange) == 0
        assert value(during, "arb_ratelimit_ban_remaining_seconds", exchange=exchange) == 0
    headroom = values(during, "arb_ratelimit_headroom_ratio")
    buckets = {(dict(k)["exchange"], dict(k)["bucket"]) for k in headroom}
    assert {("binance", "request_weight_1m"), ("binance", "orders_10s"), ("upbit", "order")} <= buckets
    assert all(0 <= h <= 1 for h in headroom.values())
    assert value(during, "arb_ratelimit_limit", exchange="upbit", bucket="order") == 12
    assert value(during, "arb_ratelimit_used", exchange="binance", bucket="request_weight_1m") > 0
    # Live books carry wall-clock receipt times: tick-to-order is measured.
    assert value(during, "arb_tick_to_order_seconds_count") == 1
    assert 0 < value(during, "arb_tick_to_order_seconds_sum") < 5
    assert value(during, "arb_order_round_trip_seconds_count") == 1
    assert value(after, "arb_session_running") == 0
    assert value(after, "arb_websocket_connected", exchange="upbit") == 0


# --- names -----------------------------------------------------------------------------

LABELS = {"exchange", "symbol", "asset", "rule", "direction", "status", "outcome", "reason", "bucket",
          "mode", "session_id", "version", "le"}
TIME_WORDS = ("_age", "_time", "latency", "uptime", "round_trip", "tick_to_order", "busy", "duration")


def test_names_follow_prometheus_conventions(paper_scrape, live_scrape):
    families = {**paper_scrape, **live_scrape[0]}
    arb = {name: f for name, f in families.items() if name.startswith("arb_")}
    assert len(arb) >= 50
    others = set(families) - set(arb)
    assert all(name.startswith(("process_", "python_")) for name in others), others
    for name, family in arb.items():
        names = {s.name for s in family.samples}
        if family.type == "counter":
            assert all(n.endswith("_total") for n in names), name
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        if family.type == "histogram":
            assert name.endswith("_seconds"), f"{name}: time histograms are in seconds"
        if any(word in name for word in TIME_WORDS):
            assert name.removesuffix("_total").endswith("_seconds"), f"{name}: base unit is seconds"
        if any(word in name for word in ("_pnl_", "notional", "arb_limit_")):
            assert name.endswith("_usdt"), f"{name}: money is in the reference currency"
        if "premium" in name:
            assert name.endswith("_ratio"), f"{name}: a premium is a ratio"
        assert family.documentation, f"{name} has no help text"
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, f"{name}: unexpected label {set(sample.labels) - LABELS}"


def test_label_values_are_bounded_by_the_config(paper_scrape):
    seen: dict[str, set] = {}
    for family in paper_scrape.values():
        if family.name.startswith("arb_"):
            for sample in family.samples:
                for label, val in sample.labels.items():
                    seen.setdefault(label, set()).add(val)
    assert seen["exchange"] == {"upbit", "binance"}
    assert seen["symbol"] == {symbol for _, symbol in MARKETS}
    assert seen["asset"] <= {"BTC", "ETH", "XRP", "KRW", "USDT"}
    assert seen["rule"] == RULES
    assert seen["direction"] == set(DIRECTIONS)
    assert seen["status"] == set(ORDER_STATUSES)
    assert seen["outcome"] == {"allowed", "blocked"}
    assert len(seen.get("reason", ())) < 10


# --- the dashboard and the alert rules --------------------------------------------------


def _strings(node, keys: tuple[str, ...]):
    if isinstance(node, dict):
        for key, val in node.items():
            if key in keys and isinstance(val, str):
                yield val
            else:
                yield from _strings(val, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, keys)


def referenced_metrics() -> dict[str, set[str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    texts = {
        "dashboard": list(_strings(dashboard, ("expr", "query", "definition"))),
        "alerts": list(_strings(rules, ("expr", "summary", "description"))),
    }
    return {where: {n for t in found for n in re.findall(r"\barb_[a-z0-9_]+", t)} for where, found in texts.items()}


def test_every_metric_the_dashboard_and_alerts_use_is_in_a_real_scrape(paper_scrape, live_scrape):
    refs = referenced_metrics()
    assert len(refs["dashboard"]) >= 25 and len(refs["alerts"]) >= 10
    histograms = {name for name, f in {**paper_scrape, **live_scrape[0]}.items() if f.type == "histogram"}

    def known(scraped: dict) -> set[str]:
        names = sample_names(scraped)
        return names | {h + suffix for h in histograms for suffix in HISTOGRAM_SUFFIXES if h + "_count" in names}

    in_paper, in_live = known(paper_scrape), known(live_scrape[0])
    for where, names in refs.items():
        missing = names - in_paper - in_live
        assert not missing, f"{where} uses metrics no scrape has: {sorted(missing)}"
        # What a paper scrape lacks must be live-only by nature, not by accident.
        assert names - in_paper <= LIVE_ONLY, sorted(names - in_paper - LIVE_ONLY)
    assert {name for name in LIVE_ONLY if name in in_paper} == set()


def test_the_dashboard_and_provisioning_fit_together():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/arb.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert dashboard["uid"] == "arb-overview"
    used = {json.dumps(d, sort_keys=True) for d in _datasources(dashboard)}
    assert used == {json.dumps({"type": "prometheus", "uid": uid}, sort_keys=True)}
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("premium", "daily-loss limit", "guard blocks by rule", "orders", "fill ratio", "tick to order",
                  "round trip", "book age", "rate-limit headroom", "reconnects"):
        assert topic in titles, topic
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert provider["providers"][0]["options"]["path"] in mounts
    assert "./prometheus:/etc/prometheus" in " ".join(compose["services"]["prometheus"]["volumes"])
    config = parse_config((DEPLOY / "arb/paper.yaml").read_text(), "deploy/arb/paper.yaml")
    assert config.mode == "paper" and config.metrics.enabled is True and config.metrics.host == "0.0.0.0"
    target = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert target["static_configs"][0]["targets"] == [f"arb:{config.metrics.port}"]


def _datasources(node):
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for val in node.values():
            yield from _datasources(val)
    elif isinstance(node, list):
        for item in node:
            yield from _datasources(item)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: .ci/run installs it (apt-get install prometheus, Debian's package); "
                    "install that package to run these tests")
    return path


@pytest.mark.parametrize("args", [("check", "rules", "alerts.yml"), ("check", "config", "prometheus.yml"),
                                  ("test", "rules", "alerts_test.yml")], ids=" ".join)
def test_promtool_accepts_the_rules_and_the_scrape_config(args):
    proc = subprocess.run([promtool(), *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_a_paper_run_and_fires_when_a_guard_stops_it(tmp_path):
    prometheus = shutil.which("prometheus")
    promtool()
    if prometheus is None:
        pytest.fail("prometheus is missing: .ci/run installs it (apt-get install prometheus, Debian's package)")
    session = build_session(paper_config(max_daily_loss=0.01), load_registry())
    with serving(session) as server:
        assert session.run() == "session_stop"
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "arb", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
        }), encoding="utf-8")
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def firing():
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    alerts = api(port, "/api/v1/alerts")["alerts"]
                except OSError:
                    return None  # not listening yet
                return [a for a in alerts if a["labels"]["alertname"] == "ArbSessionStoppedByGuard"
                        and a["state"] == "firing"]
            alert = wait_for(firing, timeout_s=60, interval_s=0.25)[0]
            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["instance"] == f"127.0.0.1:{server.port}"
            # Prometheus parsed the scrape: the blocking rule is there by name.
            result = api(port, "/api/v1/query?query=arb_guard_blocks_total%7Brule%3D%22max_daily_loss%22%7D")
            assert float(result["result"][0]["value"][1]) >= 1
            targets = api(port, "/api/v1/targets")["activeTargets"]
            assert [t["health"] for t in targets] == ["up"]
            rules = [r for group in api(port, "/api/v1/rules")["groups"] for r in group["rules"]]
            assert len(rules) == len(yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"])
            assert [r["name"] for r in rules if r["health"] == "err"] == []
            # Every dashboard query is PromQL this Prometheus accepts (api()
            # checks the status); those that need neither a live exchange nor
            # a few scrapes of history (rate, increase) already have data.
            dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
            empty = []
            for expr in _strings(dashboard, ("expr",)):
                promql = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
                if not api(port, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))["result"]:
                    empty.append(expr)
            assert [e for e in empty if "[" not in e and not any(name in e for name in LIVE_ONLY)] == []
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(timeout=10)
            log.close()


# --- config and the session's hooks -----------------------------------------------------


@pytest.mark.parametrize("enabled, mode, expected", [
    (None, "paper", False), (None, "live_readonly", True), (None, "live_trading", True),
    (True, "paper", True), (False, "live_trading", False)])
def test_metrics_are_on_by_default_in_the_live_modes_only(enabled, mode, expected):
    config = paper_config(metrics={"enabled": enabled})
    assert metrics_enabled(config, mode) is expected


def test_attach_starts_only_when_asked_and_detach_lingers_after_a_guard_stop():
    quiet = build_session(paper_config(), load_registry())
    assert attach_metrics(quiet) is None and "metrics_server" not in quiet.extra
    detach_metrics(quiet)  # nothing to close: no error

    session = build_session(paper_config(max_daily_loss=0.01, metrics={"enabled": True, "port": 0, "linger_s": 7}),
                            load_registry())
    server = attach_metrics(session)
    assert server is not None and server.host == "127.0.0.1" and server.port > 0
    session.run()
    waited = []

    def wait(seconds):
        waited.append(seconds)
        assert value(scrape(server.url), "arb_session_stopped_by_guard") == 1  # still serving meanwhile

    detach_metrics(session, wait=wait)
    assert waited == [7] and "metrics_server" not in session.extra
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)


def test_a_port_in_use_is_a_session_error():
    from arb.session import SessionError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        session = build_session(paper_config(metrics={"enabled": True, "port": port}), load_registry())
        with pytest.raises(SessionError, match=f"monitoring.metrics: cannot listen on 127.0.0.1:{port}"):
            attach_metrics(session)


def test_several_servers_run_side_by_side():
    first = build_session(paper_config(), load_registry())
    second = build_session(paper_config(), load_registry())
    with serving(first) as a, serving(second) as b:
        assert a.port != b.port
        ids = {dict(k)["session_id"] for url in (a.url, b.url) for k in values(scrape(url), "arb_session_info")}
    assert ids == {first.session_id, second.session_id}
