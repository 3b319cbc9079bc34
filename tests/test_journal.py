"""The journal's own parts: migrations, the two write paths, what start-up reads back.

Sessions that run end to end (and get killed) are in test_journal_sessions.py.
"""

from __future__ import annotations

import sqlite3
import time
from types import SimpleNamespace

import pytest

from arb.config import ConfigError, JournalSettings, parse_config
from arb.events import Event, EventBus
from arb.guard import CheckResult, Decision, OrderCheck, PlanResult
from arb.journal import Journal, connect, default_path, journal_path
from arb.journal_queries import DAY_MS, day_window, stops_in_force, today_realized_pnl
from arb.journal_schema import LATEST, MIGRATIONS, JournalError, Migration, current_version, migrate
from arb.models import Fill, Order, OrderIntent, OrderStatus, Side

NOW = time.time() * 1000.0


def open_journal(tmp_path, *, mode="paper", clock="wall", session="s1", durable=False, **kw) -> Journal:
    return Journal(tmp_path / "j.sqlite", session_id=session, mode=mode, clock=clock, durable=durable, **kw)


def rows(path, sql, *args):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def intent(coid: str, exchange="upbit", symbol="KRW-BTC", side=Side.SELL) -> OrderIntent:
    return OrderIntent(exchange, symbol, side, 0.001, 135_000_000.0, 135_000_000.0, coid)


def plan(kind="open", asset="BTC", legs=("c1", "c2"), trade_id=0):
    return SimpleNamespace(kind=kind, asset=asset, trade_id=trade_id, legs=tuple(intent(c) for c in legs),
                           direction=SimpleNamespace(value="sell_local"), quantity=0.001, premium_pct=1.2,
                           net_premium_pct=1.0, fx_rate=1400.0)


def blocked(rule="max_notional_per_trade", reason="too big", stop=False) -> PlanResult:
    check = OrderCheck("upbit", "KRW-BTC", Side.SELL, 0.001, 1.0, 60.0, 100.0, 0.0)
    veto = Decision.veto(rule, reason, session_stop=stop)
    return PlanResult([CheckResult(check, [veto])], veto)


# --- schema and migrations ---------------------------------------------------------------


def test_a_new_journal_is_at_the_latest_version_in_wal_mode(tmp_path):
    conn = connect(tmp_path / "sub" / "j.sqlite", create=True)
    try:
        assert current_version(conn) == LATEST
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = conn.execute("SELECT version, description FROM schema_version").fetchall()
        assert [v for v, _ in versions] == [m.version for m in MIGRATIONS]
    finally:
        conn.close()


def test_migrations_apply_in_order_and_keep_the_data(tmp_path):
    path = tmp_path / "j.sqlite"
    connect(path, create=True).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("INSERT INTO operator_actions (ts_ms, action, operator, reason) VALUES (1, 'x', 'me', 'why')")
    later = MIGRATIONS + (
        Migration(LATEST + 1, "a note on sessions", ("ALTER TABLE sessions ADD COLUMN note TEXT",)),
        Migration(LATEST + 2, "an index on the note", ("CREATE INDEX sessions_by_note ON sessions (note)",)),
    )
    assert migrate(conn, "test", later) == LATEST + 2
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")][-2:] == \
        [LATEST + 1, LATEST + 2]
    assert conn.execute("SELECT reason FROM operator_actions").fetchone() == ("why",)
    assert migrate(conn, "test", later) == LATEST + 2  # nothing left to do
    conn.close()


def test_a_failing_migration_leaves_the_version_before_it(tmp_path):
    path = tmp_path / "j.sqlite"
    connect(path, create=True).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    broken = MIGRATIONS + (Migration(LATEST + 1, "half done", ("CREATE TABLE half (a)", "NOT SQL AT ALL")),)
    with pytest.raises(sqlite3.Error):
        migrate(conn, "test", broken)
    assert current_version(conn) == LATEST
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    conn.close()


def test_a_journal_from_a_newer_arb_is_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    connect(path, create=True).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("INSERT INTO schema_version VALUES (?, 0, 'from the future')", (LATEST + 5,))
    conn.close()
    with pytest.raises(JournalError, match=rf"schema version {LATEST + 5}, newer than this arb knows"):
        connect(path, create=True)


@pytest.mark.parametrize("what", ["directory", "not_sqlite", "missing"])
def test_unusable_files_are_a_clear_error(tmp_path, what):
    path = {"directory": tmp_path, "not_sqlite": tmp_path / "notes.txt", "missing": tmp_path / "none.sqlite"}[what]
    if what == "not_sqlite":
        path.write_text("hello, I am not a database\n" * 100)
    with pytest.raises(JournalError) as info:
        connect(path, create=False)
    assert str(path) in str(info.value)
    assert not (tmp_path / "none.sqlite").exists()  # reading never creates a journal


def test_default_path_follows_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_path() == tmp_path / "state" / "arb" / "journal.sqlite"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "state" / "arb" / "journal.sqlite"
    assert journal_path(JournalSettings(path=None)) == default_path()


def test_configured_paths_expand_and_are_relative_to_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNALS", str(tmp_path / "j"))
    config = tmp_path / "conf" / "c.yaml"
    config.parent.mkdir()
    config.write_text("pairs: [{asset: BTC}]\njournal: {path: books/j.sqlite}\n")
    from arb.config import load_config
    assert journal_path(load_config(config).journal) == tmp_path / "conf" / "books" / "j.sqlite"
    assert journal_path(JournalSettings(path="$JOURNALS/x.sqlite")) == tmp_path / "j" / "x.sqlite"
    assert journal_path(JournalSettings(path="~/x.sqlite")).is_absolute()


def test_journal_and_trading_day_settings(tmp_path):
    config = parse_config("pairs: [{asset: BTC}]\n")
    assert config.journal.enabled is True and config.journal.path is None
    assert config.day_start_ms == 0
    config = parse_config("pairs: [{asset: BTC}]\nsession: {trading_day_start_utc: '09:30'}\n"
                          "journal: {enabled: false, path: /x/j.sqlite}\n")
    assert config.day_start_ms == (9 * 60 + 30) * 60_000
    assert config.journal == JournalSettings(enabled=False, path="/x/j.sqlite", base_dir="")
    for bad in ("24:00", "9:30", "noon"):
        with pytest.raises(ConfigError, match="session.trading_day_start_utc"):
            parse_config(f"pairs: [{{asset: BTC}}]\nsession: {{trading_day_start_utc: '{bad}'}}\n")
    with pytest.raises(ConfigError, match="journal.pathh"):
        parse_config("pairs: [{asset: BTC}]\njournal: {pathh: x}\n")


def test_trading_day_window_follows_the_configured_start():
    nine = 9 * 3_600_000
    day = 1_767_225_600_000  # 2026-01-01T00:00Z
    assert day_window(day + 5, 0) == (day, day + DAY_MS)
    assert day_window(day + nine - 1, nine) == (day - DAY_MS + nine, day + nine)
    assert day_window(day + nine, nine) == (day + nine, day + DAY_MS + nine)


# --- the write paths -----------------------------------------------------------------------


def test_intents_are_on_disk_when_recording_returns(tmp_path):
    journal = open_journal(tmp_path)
    try:
        journal.record_intents(plan(), plan().legs, NOW)
        # No flush: another connection sees them at once.
        assert rows(journal.path, "SELECT client_order_id, side, quantity FROM order_intents ORDER BY 1") == \
            [("c1", "sell", 0.001), ("c2", "sell", 0.001)]
    finally:
        journal.close()


@pytest.mark.parametrize("durable, level", [(True, 2), (False, 1)], ids=["live_trading", "paper"])
def test_intent_commits_fsync_when_money_is_real(tmp_path, durable, level):
    journal = open_journal(tmp_path, durable=durable)
    try:
        assert journal._sync.execute("PRAGMA synchronous").fetchone()[0] == level  # 2 FULL, 1 NORMAL
        assert journal._sync.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    finally:
        journal.close()


def test_queued_events_only_enqueue_on_the_engine_thread(tmp_path):
    journal = open_journal(tmp_path)
    locker = sqlite3.connect(str(journal.path), isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # any write now would wait for this
        started = time.perf_counter()
        for _ in range(200):
            journal(Event("plan_blocked", NOW, {"plan": plan(), "result": blocked()}))
            journal(Event("leg_exposure", NOW, {"detail": "unhedged"}))
        assert time.perf_counter() - started < 0.5  # nothing waited on the locked database
        locker.execute("COMMIT")
        assert journal.flush()
        assert rows(journal.path, "SELECT count FROM guard_decisions") == [(200,)]
        assert rows(journal.path, "SELECT COUNT(*) FROM events WHERE kind = 'leg_exposure'") == [(200,)]
    finally:
        locker.close()
        journal.close()


def test_repeated_refusals_share_a_row_and_allowed_plans_do_not(tmp_path):
    journal = open_journal(tmp_path)
    try:
        for i in range(5):
            journal(Event("plan_blocked", NOW + i, {"plan": plan(), "result": blocked(reason=f"{60 + i} > 50")}))
        journal(Event("plan_blocked", NOW + 9, {"plan": plan(), "result": blocked("enabled", "off")}))
        journal(Event("plan_blocked", NOW + 10, {"plan": plan(asset="ETH"), "result": blocked()}))
        ok = PlanResult([], None)
        journal(Event("plan_allowed", NOW + 11, {"plan": plan(), "result": ok}))
        journal(Event("plan_allowed", NOW + 12, {"plan": plan(), "result": ok}))
        journal(Event("plan_skipped", NOW + 13, {"plan": plan(), "reason": "below the minimum"}))
        journal(Event("shadow_trade", NOW + 14, {"plan": plan(asset="XRP")}))
        journal.flush()
        got = rows(journal.path, "SELECT outcome, asset, rule, reason, count, ts_ms, last_ms FROM guard_decisions "
                                 "ORDER BY id")
    finally:
        journal.close()
    assert got == [("blocked", "BTC", "max_notional_per_trade", "64 > 50", 5, NOW, NOW + 4),
                   ("blocked", "BTC", "enabled", "off", 1, NOW + 9, NOW + 9),
                   ("blocked", "ETH", "max_notional_per_trade", "too big", 1, NOW + 10, NOW + 10),
                   ("allowed", "BTC", None, None, 1, NOW + 11, NOW + 11),
                   ("allowed", "BTC", None, None, 1, NOW + 12, NOW + 12),
                   ("skipped", "BTC", "dry_run_scale", "below the minimum", 1, NOW + 13, NOW + 13),
                   ("shadow", "XRP", None, "live_readonly: orders are never sent", 1, NOW + 14, NOW + 14)]


def test_order_states_and_fills_are_journaled_once_each(tmp_path):
    journal = open_journal(tmp_path)
    try:
        order = Order(intent("c1"), "ex-1", OrderStatus.NEW, [])
        journal.order_update(order)
        part = Order(intent("c1"), "ex-1", OrderStatus.PARTIALLY_FILLED, [Fill(0.0004, 1.0, 0.01, NOW)])
        journal.order_update(part)
        done = Order(intent("c1"), "ex-1", OrderStatus.FILLED,
                     [Fill(0.0004, 1.0, 0.01, NOW), Fill(0.0006, 2.0, 0.02, NOW + 1)])
        journal.order_update(done)
        journal(Event("orders_done", NOW, {"plan": plan(), "orders": [done]}))  # the same final state again
        journal.flush()
        states = rows(journal.path, "SELECT status, filled_qty, avg_price, fees FROM order_states ORDER BY id")
        fills = rows(journal.path, "SELECT seq, quantity, price FROM fills ORDER BY seq")
    finally:
        journal.close()
    assert [s[0] for s in states] == ["new", "partially_filled", "filled"]
    assert states[-1][1:] == pytest.approx((0.001, 1.6, 0.03))
    assert fills == [(0, 0.0004, 1.0), (1, 0.0006, 2.0)]


def test_realized_pnl_is_journaled_whatever_booked_it(tmp_path):
    journal = open_journal(tmp_path)
    realized = [0.0]
    journal.realized = lambda: realized[0]
    try:
        journal(Event("plan_allowed", NOW, {"plan": plan(), "result": PlanResult([], None)}))
        realized[0] = -1.5
        journal(Event("leg_repair", NOW + 1, {"detail": "unwound"}))  # a kind the journal has no table for
        realized[0] = -1.0
        journal.end_session("max_runtime", {"realized_pnl": -1.0})
        journal.flush()
        got = rows(journal.path, "SELECT amount, source FROM pnl ORDER BY id")
    finally:
        journal.close()
    assert got == [(-1.5, "leg_repair"), (0.5, "session_end")]


class CountingGateway:
    def __init__(self):
        self.sent = []

    def submit(self, legs, now_ms):
        self.sent.extend(legs)
        return []

    def free_balances(self, exchange):
        return {}

    def active_orders(self):
        return 0


def test_an_order_that_cannot_be_journaled_is_not_sent_and_the_session_stops(tmp_path):
    from arb.pipeline import OrderPipeline

    journal = open_journal(tmp_path, mode="live_readonly")
    reasons, stops = [], []
    journal.on_failure = reasons.append
    bus = EventBus()
    bus.subscribe(journal)
    bus.subscribe(lambda e: stops.append(e.data) if e.kind == "session_stop" else None)
    gateway = CountingGateway()
    pipeline = OrderPipeline(mode="paper", gateway=gateway, chain=None, rules={}, local_quote="KRW", events=bus,
                             equity=lambda exchange: 0.0, daily_pnl=lambda: 0.0)
    pipeline.recorders.append(journal.record_intents)
    try:
        journal._sync.execute("PRAGMA query_only = ON")  # every write now fails
        assert pipeline.execute(plan(), NOW) is None
        assert gateway.sent == []  # fail closed: not one leg left
        assert len(reasons) == 1 and "journal cannot record orders" in reasons[0]
        assert pipeline.stop_reason and "nothing was sent" in pipeline.stop_reason
        assert [s["rule"] for s in stops] == ["journal"]
        # Once writable again the pipeline would send: the refusal came from the journal alone.
        journal._sync.execute("PRAGMA query_only = OFF")
        pipeline.execute(plan(legs=("c3", "c4")), NOW)
        assert [leg.client_order_id for leg in gateway.sent] == ["c3", "c4"]
    finally:
        journal._sync.execute("PRAGMA query_only = OFF")
        journal.close()


# --- what a new session reads back --------------------------------------------------------------


def seed(path, *, session, mode="paper", clock="wall", pnl=(), stops=()):
    conn = connect(path, create=True)
    conn.execute("INSERT INTO sessions (id, mode, clock, config, started_ms) VALUES (?, ?, ?, 'c.yaml', ?)",
                 (session, mode, clock, NOW))
    for ts, amount in pnl:
        conn.execute("INSERT INTO pnl (session_id, ts_ms, trading_day, amount, source) VALUES (?, ?, 'd', ?, 't')",
                     (session, ts, amount))
    for ts, rule, cleared in stops:
        conn.execute("INSERT INTO session_stops (session_id, ts_ms, trading_day, mode, clock, rule, reason, cleared_ms) "
                     "VALUES (?, ?, 'd', ?, ?, ?, 'r', ?)", (session, ts, mode, clock, rule, cleared))
    conn.close()


def test_only_this_days_wall_clock_pnl_and_stops_of_the_same_mode_carry_over(tmp_path):
    path = tmp_path / "j.sqlite"
    start, end = day_window(NOW, 0)
    seed(path, session="a", pnl=[(start, -2.0), (NOW, -1.0), (start - 1, -100.0), (end, -100.0)],
         stops=[(NOW, "max_daily_loss", None), (NOW, "order_rate", None)])
    seed(path, session="b", pnl=[(NOW, 0.5)], stops=[(NOW - 1, "max_daily_loss", NOW)])  # cleared
    seed(path, session="sim", clock="simulated", pnl=[(NOW, -50.0)], stops=[(NOW, "max_daily_loss", None)])
    seed(path, session="live", mode="live_trading", pnl=[(NOW, -7.0)], stops=[(start - 1, "max_daily_loss", None)])
    conn = connect(path, create=False)
    try:
        assert today_realized_pnl(conn, "paper", start, end) == pytest.approx(-2.5)
        assert today_realized_pnl(conn, "live_trading", start, end) == pytest.approx(-7.0)
        assert [s["session_id"] for s in stops_in_force(conn, "paper", start, end, ("max_daily_loss",))] == ["a"]
        assert stops_in_force(conn, "live_trading", start, end, ("max_daily_loss",)) == []  # yesterday's
    finally:
        conn.close()
