"""Start-up reconciliation and the inherited position, against both emulators.

An "earlier session" is written the way a live_trading session writes it
(the Journal class: session row, order intents, maybe a state) and then
crashes (no end recorded); its orders are placed at the emulators over HTTP
by the real clients, or straight into an emulator's book for orders the
journal never saw.  Then `arb run --mode live_trading` starts, and the
verdict is read off the emulators (which orders were cancelled, how many
orders arrived) and the journal.

Market: Upbit 2 % dear (95,000 USDT x 1,400 KRW/USDT x 1.02), so a session
free to trade opens a pair at once; 40 USDT per leg x dry_run_scale 0.5.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from arb.cli import app
from arb.emulation import Fault
from arb.journal import Journal
from arb.legrisk import OUTCOME_UNKNOWN
from arb.models import Order, OrderIntent, OrderStatus, Side
from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator
from arb_upbit.emulator import UpbitEmulator
from arb_upbit.testing import client_for
from emulated import (DEAR_KRW, PAR_KRW, binance_client_for, binance_posts, kill_9_once_both_have_orders,
                      premium_exchanges, running, set_upbit_btc, upbit_posts, write_live_config)

UPBIT_ACCESS, UPBIT_SECRET = "rec-upbit-access-key-000000000000000001", "rec-upbit-secret-key-000000000000000002"
EARLIER = "c0ffee01"          # the crashed session's id: its orders are arbc0ffee01-N
QTY = 0.0002
KEY_ENV = {"R_UPBIT_KEY": UPBIT_ACCESS, "R_UPBIT_SECRET": UPBIT_SECRET,
           "R_BINANCE_KEY": EMULATOR_API_KEY, "R_BINANCE_SECRET": EMULATOR_SECRET_KEY}


@pytest.fixture
def exchanges():
    with running(*premium_exchanges(access_key=UPBIT_ACCESS, secret_key=UPBIT_SECRET)) as both:
        yield both


@pytest.fixture
def clients(exchanges):
    upbit, binance = exchanges
    up = client_for(upbit, settle_s=0.2)
    bn = binance_client_for(binance)
    up.market_rules(["KRW-BTC"])
    bn.market_rules(["BTCUSDT"])
    try:
        yield up, bn
    finally:
        up.close()
        bn.close()


def write_config(tmp_path: Path, upbit: UpbitEmulator, binance: BinanceEmulator) -> Path:
    cfg = tmp_path / "live.yaml"
    env = write_live_config(cfg, upbit, binance, "R", strategy={"max_book_age_ms": 60_000},
                            journal={"path": str(tmp_path / "journal.sqlite")})
    assert env == KEY_ENV
    return cfg


def arb(*args: str):
    result = CliRunner().invoke(app, list(args), env=KEY_ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def run(tmp_path: Path, cfg: Path, seconds: float = 2.0, mode: str = "live_trading"):
    summary = tmp_path / "summary.json"
    summary.unlink(missing_ok=True)
    result = arb("run", "--config", str(cfg), "--mode", mode, "--max-runtime-seconds", str(seconds),
                 "--summary-json", str(summary))
    return result, (json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else None)


def intent(n: int, exchange: str, side: Side, price: float) -> OrderIntent:
    symbol = "KRW-BTC" if exchange == "upbit" else "BTCUSDT"
    return OrderIntent(exchange, symbol, side, QTY, price, price, f"arb{EARLIER}-{n}")


def crashed_session(journal: Path, intents: list[OrderIntent], states: tuple[Order, ...] = ()) -> None:
    """What a live_trading session leaves when it dies mid-order: its intents, maybe a state, no end."""
    j = Journal(journal, session_id=EARLIER, mode="live_trading", clock="wall", durable=False)
    j.start_session("earlier.yaml", 0.0, "")
    j.record_intents(SimpleNamespace(kind="open", asset="BTC", trade_id=1), intents, time.time() * 1000)
    for order in states:
        j.order_update(order)
    j.close()


def rest_on_binance(binance: BinanceEmulator, client_id: str, price: str = "90000") -> None:
    """A GTC buy under the book, as some process placed it: it rests."""
    with binance.lock:
        binance.market.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                  "quantity": "0.00021", "price": price, "newClientOrderId": client_id},
                                 binance.server_ms())


def binance_status(binance: BinanceEmulator, client_id: str) -> str:
    [order] = binance.orders_with_client_id(client_id)
    return order.status


def posts(upbit: UpbitEmulator, binance: BinanceEmulator) -> int:
    return len(upbit_posts(upbit)) + len(binance_posts(binance))


def query(journal: Path, sql: str, *args):
    with sqlite3.connect(journal) as db:
        return db.execute(sql, args).fetchall()


def last_states(journal: Path) -> dict[str, tuple[str, float]]:
    rows = query(journal, "SELECT client_order_id, status, filled_qty FROM order_states ORDER BY id")
    return {cid: (status, filled) for cid, status, filled in rows}


def test_every_leftover_is_settled_before_anything_is_sent(tmp_path, exchanges, clients):
    """Must not be lost: a fill that happened while arb was down, an order
    left open (it is cancelled), an order of ours the journal never saw."""
    upbit, binance = exchanges
    up, bn = clients
    journal = tmp_path / "journal.sqlite"
    filled_upbit = intent(1, "upbit", Side.SELL, DEAR_KRW)            # sent, filled, the answer never journaled
    filled_binance = intent(2, "binance", Side.BUY, 95_000.0)         # sent, filled
    never_sent = intent(3, "binance", Side.BUY, 95_000.0)             # died before the POST
    lost_answer = intent(4, "upbit", Side.SELL, DEAR_KRW)             # journaled "outcome unknown"; it filled
    held = intent(5, "upbit", Side.SELL, DEAR_KRW)                    # accepted, still open at the crash
    assert up.place_order(filled_upbit).status is OrderStatus.FILLED
    assert bn.place_order(filled_binance).status is OrderStatus.FILLED
    assert up.place_order(lost_answer).status is OrderStatus.FILLED
    upbit.hold_orders(1_000_000)
    assert not up.place_order(held).status.is_final
    upbit.hold_orders(0)
    rest_on_binance(binance, f"arb{EARLIER}-9")                       # ours, but its journal is gone
    rest_on_binance(binance, "web_manual_1")                          # placed by a person: not ours
    crashed_session(journal, [filled_upbit, filled_binance, never_sent, lost_answer, held],
                    (Order(lost_answer, "", OrderStatus.REJECTED, [], f"{OUTCOME_UNKNOWN}: upbit: timed out"),))
    sent_before = posts(upbit, binance)

    result, summary = run(tmp_path, write_config(tmp_path, upbit, binance))

    assert result.exit_code == 0, result.stdout + result.stderr
    rec = summary["reconciliation"]
    assert rec["counts"] == {"recorded": 3, "cancelled": 2, "not placed": 1}
    assert rec["adopted"] == 1 and rec["others_open"] == 1 and rec["unknown"] == []
    # At the exchanges: the open ones of ours are cancelled, the person's order is untouched.
    [held_now] = upbit.orders_with_identifier(held.client_order_id)
    assert held_now["state"] == "cancel"
    assert binance_status(binance, f"arb{EARLIER}-9") == "CANCELED"
    assert binance_status(binance, "web_manual_1") == "NEW"
    # In the journal: every one of them final, fills included.
    states = last_states(journal)
    assert states[filled_upbit.client_order_id] == ("filled", pytest.approx(QTY))
    assert states[filled_binance.client_order_id] == ("filled", pytest.approx(QTY))
    assert states[lost_answer.client_order_id] == ("filled", pytest.approx(QTY))
    assert states[never_sent.client_order_id] == ("rejected", 0.0)
    assert states[held.client_order_id] == ("canceled", 0.0)
    assert states[f"arb{EARLIER}-9"][0] == "canceled"
    assert query(journal, "SELECT plan_kind FROM order_intents WHERE client_order_id = ?",
                 f"arb{EARLIER}-9") == [("adopted",)]
    # Two Upbit sells and one Binance buy filled: 0.0002 BTC short, unhedged.
    # The premium is there, yet nothing new was sent.
    assert summary["inherited_exposure"] == {"BTC": pytest.approx(-QTY)}
    assert "unhedged position left by earlier live_trading sessions" in summary["entries_refused"]
    assert posts(upbit, binance) == sent_before
    assert summary["trades_opened"] == 0
    # ...and a person reading the summary is told.
    printed = " ".join(result.stdout.split())
    assert "start-up reconciliation" in printed and "new trades refused" in printed


def test_an_unhedged_position_holds_entries_until_the_operator_clears_it(tmp_path, exchanges, clients):
    upbit, binance = exchanges
    up, _ = clients
    journal = tmp_path / "journal.sqlite"
    sold = intent(1, "upbit", Side.SELL, DEAR_KRW)
    refused = intent(2, "binance", Side.BUY, 95_000.0)
    assert up.place_order(sold).status is OrderStatus.FILLED
    crashed_session(journal, [sold, refused], (Order(refused, "", OrderStatus.REJECTED, [], "insufficient balance"),))
    cfg = write_config(tmp_path, upbit, binance)

    _, summary = run(tmp_path, cfg)
    assert summary["inherited_exposure"] == {"BTC": pytest.approx(-QTY)}
    assert summary["trades_opened"] == 0
    # A restart changes nothing: the position is on record, not in memory.
    _, summary = run(tmp_path, cfg)
    assert summary["trades_opened"] == 0 and posts(upbit, binance) == 1

    # Monitoring sees it too (the session built and run in-process, as `arb run` does).
    from arb.config import load_config
    from arb.metrics import SessionCollector
    from arb.plugins import load_registry
    from arb.session import build_session

    with pytest.MonkeyPatch.context() as env:
        for name, value in KEY_ENV.items():
            env.setenv(name, value)
        session = build_session(load_config(cfg), load_registry())
        collector = SessionCollector(session)
        session.run(0.5)
    [family] = [f for f in collector.collect() if f.name == "arb_inherited_exposure_quantity"]
    assert {s.labels["asset"]: s.value for s in family.samples} == {"BTC": pytest.approx(-QTY)}

    shown = arb("journal", "exposure", "--path", str(journal), "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["net"] == {"BTC": pytest.approx(-QTY)}
    assert arb("journal", "clear-exposure", "--path", str(journal), "--reason", " ").exit_code == 2
    wrong = arb("journal", "clear-exposure", "--path", str(journal), "--reason", "x", "--asset", "ETH")
    assert wrong.exit_code == 2 and "no live position was ever journaled for ETH" in wrong.stderr
    cleared = arb("journal", "clear-exposure", "--path", str(journal), "--reason", "bought 0.0002 BTC back by hand")
    assert cleared.exit_code == 0 and "cleared BTC -0.0002" in cleared.stdout
    assert query(journal, "SELECT action, reason FROM operator_actions") == \
        [("clear_exposure", "bought 0.0002 BTC back by hand")]

    _, summary = run(tmp_path, cfg, seconds=3.0)
    assert summary["inherited_exposure"] == {} and summary["entries_refused"] == ""
    assert summary["trades_opened"] == 1 and posts(upbit, binance) == 3


def test_a_restart_adopts_the_open_pair_and_closes_it_when_the_premium_is_gone(tmp_path, exchanges):
    """Must not be orphaned: a hedged pair an earlier session opened and did not close."""
    upbit, binance = exchanges
    journal = tmp_path / "journal.sqlite"
    cfg = write_config(tmp_path, upbit, binance)
    _, first = run(tmp_path, cfg)
    assert first["trades_opened"] == 1 and first["open_trades"] == 1  # the premium never came back down
    # Adopted by a session that does not get to close it either: the next one adopts it again.
    _, between = run(tmp_path, cfg)
    assert between["trades_adopted"] == 1 and between["open_trades"] == 1 and between["trades_opened"] == 0
    assert posts(upbit, binance) == 2  # the adopted pair fills max_open_trades: nothing new opened
    set_upbit_btc(upbit, PAR_KRW)

    result, second = run(tmp_path, cfg, seconds=3.0)

    assert second["trades_adopted"] == 1 and second["trades_opened"] == 0 and second["trades_closed"] == 1
    assert "1 adopted from earlier sessions" in " ".join(result.stdout.split())
    assert posts(upbit, binance) == 4  # the pair's two legs, then its two closing legs
    [(owner, closed, adopted_by, pnl)] = query(
        journal, "SELECT session_id, closed_ms IS NOT NULL, adopted_by, realized_pnl FROM trades")
    assert owner == first["session_id"] and closed == 1 and adopted_by == f"{second['session_id']}/1"
    assert pnl == pytest.approx(second["realized_pnl"], abs=1e-6) and pnl != 0
    assert second["inherited_exposure"] == {}
    _, third = run(tmp_path, cfg)
    assert third["trades_adopted"] == 0 and posts(upbit, binance) == 4


def test_live_readonly_records_but_never_cancels(tmp_path, exchanges, clients):
    upbit, binance = exchanges
    up, _ = clients
    journal = tmp_path / "journal.sqlite"
    held = intent(1, "upbit", Side.SELL, DEAR_KRW)
    upbit.hold_orders(1_000_000)
    up.place_order(held)
    upbit.hold_orders(0)
    rest_on_binance(binance, f"arb{EARLIER}-2")
    crashed_session(journal, [held])

    result, summary = run(tmp_path, write_config(tmp_path, upbit, binance), mode="live_readonly")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert summary["reconciliation"]["counts"] == {"left open": 2}
    assert not upbit.requests_to("DELETE", "/v1/order") and not binance.requests_to("DELETE", "/api/v3/order")
    assert binance_status(binance, f"arb{EARLIER}-2") == "NEW"
    assert posts(upbit, binance) == 1


def test_an_order_the_exchange_cannot_settle_keeps_live_trading_from_starting(tmp_path, exchanges):
    upbit, binance = exchanges
    journal = tmp_path / "journal.sqlite"
    crashed_session(journal, [intent(1, "binance", Side.BUY, 95_000.0)])
    for path in ("/api/v3/openOrders", "/api/v3/order"):
        binance.inject(Fault("GET", path, "status", 503, {"code": -1001, "msg": "Internal error; unable to process "
                                                                                  "your request. Please try again."}),
                       times=1000)

    result, _ = run(tmp_path, write_config(tmp_path, upbit, binance))

    assert result.exit_code == 1
    assert "start-up reconciliation could not settle" in result.stderr
    assert f"arb{EARLIER}-1" in result.stderr and "Nothing is sent" in result.stderr
    assert posts(upbit, binance) == 0
    # Still unsettled on record, so the next start tries again.
    assert last_states(journal) == {}


def test_a_second_live_trading_session_on_one_journal_is_refused(tmp_path, exchanges):
    upbit, binance = exchanges
    journal = tmp_path / "journal.sqlite"
    rest_on_binance(binance, f"arb{EARLIER}-1")   # the running session's open order
    crashed_session(journal, [])
    # Its process is alive (the command line names arb, as `arb run` does).
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "arb"])
    try:
        query(journal, "UPDATE sessions SET pid = ?", sibling.pid)
        result, _ = run(tmp_path, write_config(tmp_path, upbit, binance))
    finally:
        sibling.kill()
        sibling.wait()
    assert result.exit_code == 1
    assert f"live_trading session {EARLIER} (pid {sibling.pid}" in result.stderr and "Stop it first" in result.stderr
    assert binance_status(binance, f"arb{EARLIER}-1") == "NEW"
    assert posts(upbit, binance) == 0


def test_kill_9_mid_pair_then_restart_settles_every_order_before_new_ones(tmp_path, exchanges):
    """Must not be lost: any order the killed session sent, and what it filled.
    Must not be doubled: no order is sent twice, none before the leftovers are settled."""
    upbit, binance = exchanges
    journal = tmp_path / "journal.sqlite"
    cfg = write_config(tmp_path, upbit, binance)
    kill_9_once_both_have_orders(cfg, upbit, binance, KEY_ENV)
    killed = {row[0] for row in query(journal, "SELECT client_order_id FROM order_intents")}
    upbit_before, binance_before = len(upbit.requests), len(binance.requests)

    result, summary = run(tmp_path, cfg, seconds=3.0)

    assert result.exit_code == 0, result.stdout + result.stderr
    states = last_states(journal)
    for cid in killed:
        assert states[cid][0] in ("filled", "canceled", "rejected"), (cid, states.get(cid))
        exchange_filled = sum(float(o["executed_volume"]) for o in upbit.orders_with_identifier(cid)) + \
            sum(float(o.executed) for o in binance.orders_with_client_id(cid))
        assert states[cid][1] == pytest.approx(exchange_filled)
    upbit_ids = [p["identifier"] for p in upbit_posts(upbit)]
    binance_ids = [p["newClientOrderId"] for p in binance_posts(binance)]
    assert len(upbit_ids) == len(set(upbit_ids)) and len(binance_ids) == len(set(binance_ids))
    # The restart listed each exchange's open orders before it sent anything.
    for emulator, listing, order_path in ((upbit, "/v1/orders/open", "/v1/orders"),
                                          (binance, "/api/v3/openOrders", "/api/v3/order")):
        after = emulator.requests[upbit_before if emulator is upbit else binance_before:]
        paths = [(r.method, r.path) for r in after]
        assert ("GET", listing) in paths
        if ("POST", order_path) in paths:
            assert paths.index(("GET", listing)) < paths.index(("POST", order_path))
    assert summary["reconciliation"]["unknown"] == []
