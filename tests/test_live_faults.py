"""`arb run --mode live_trading` under exchange faults, against both emulators.

Each test runs the real CLI as a subprocess on 127.0.0.1, breaks something
at the exchange side (read bursts of 5xx and 429, an unreadable or late
answer to an order, dropped WebSockets, a leg that fills in part), lets the
session trade, then stops it with a signal as a person would.  The verdict
comes from what the emulators hold: how many orders each received, with
which client ids and sizes, and what was filled.

Market: Upbit 2% dear (95,000 USDT × 1,400 KRW/USDT × 1.02), Binance ask
95,000; 40 USDT per leg → 0.00042 BTC, × dry_run_scale 0.5 = 0.00021 BTC.
Book age is not the subject here, so books may be old (max_book_age_ms 60 s)
and a test need not keep every book fresh while it moves one.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from arb.emulation import Fault
from arb.live import LiveGateway
from arb.models import OrderIntent, OrderStatus, Side
from arb_binance.emulator import BinanceEmulator
from arb_upbit.emulator import UpbitEmulator
from arb_upbit.testing import client_for

from emulated import (DEAR_KRW, PAR_KRW, arb_run, binance_posts, ladder, premium_exchanges, running, set_upbit_btc,
                      upbit_posts, write_live_config)

UPBIT_ACCESS, UPBIT_SECRET = "flt-upbit-access-key-000000000000000001", "flt-upbit-secret-key-000000000000000002"
MAX_RUNTIME_S = 45        # the session's own bound; every test stops it well before
WAIT_S = 25               # for any one thing to happen
POLL_S = 0.02
QTY = "0.00021"


@pytest.fixture
def exchanges():
    with running(*premium_exchanges(access_key=UPBIT_ACCESS, secret_key=UPBIT_SECRET)) as both:
        yield both


class ArbRun:
    """One ``arb run`` subprocess, its output in files (no pipe can fill up)."""

    def __init__(self, tmp_path: Path, upbit: UpbitEmulator, binance: BinanceEmulator, *,
                 timeout_s: float | None = None):
        timeouts = {} if timeout_s is None else {name: {"timeout_s": timeout_s} for name in ("upbit", "binance")}
        path = tmp_path / "live.yaml"
        self.keys = write_live_config(path, upbit, binance, "FLT", exchanges=timeouts,
                                      strategy={"max_book_age_ms": 60_000})
        self.summary_path = tmp_path / "summary.json"
        self.stdout_path, self.stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        env = {**os.environ, **self.keys,
               # anything the session keeps between runs stays in this test's directory
               "XDG_STATE_HOME": str(tmp_path / "state")}
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                arb_run(path, "--log-level", "INFO", "--max-runtime-seconds", str(MAX_RUNTIME_S),
                        "--summary-json", str(self.summary_path)),
                env=env, stdout=out, stderr=err)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, what: str, condition) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"arb exited ({self.proc.returncode}) before {what}:\n{self.stderr[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"timed out waiting for {what}:\n{self.stderr[-3000:]}")
            time.sleep(POLL_S)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, dict]:
        """Signal once, as a person pressing Ctrl-C would; the session must end on its own."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"arb did not stop within {WAIT_S} s of {signal.Signals(sig).name}:\n{self.stderr[-3000:]}")
        stderr = self.stderr
        for secret in self.keys.values():
            assert secret not in stderr and secret not in self.stdout_path.read_text(encoding="utf-8")
        assert "Traceback" not in stderr, stderr[-3000:]
        assert self.summary_path.exists(), stderr[-3000:]
        return code, json.loads(self.summary_path.read_text(encoding="utf-8"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def arb_runs():
    runs: list[ArbRun] = []
    yield runs
    for run in runs:   # a failed test must not leave a trading process behind
        run.kill()


def start(arb_runs, *args, **kwargs) -> ArbRun:
    run = ArbRun(*args, **kwargs)
    arb_runs.append(run)
    return run


# --- what the exchanges hold ----------------------------------------------------------


def upbit_orders(upbit: UpbitEmulator) -> list[dict]:
    with upbit.lock:
        return [o.to_json(with_trades=True) for o in upbit.market.orders.values()]


def assert_each_order_once(upbit: UpbitEmulator, binance: BinanceEmulator) -> None:
    """No order was sent twice: one POST per client id, one order per POST."""
    upbit_ids = [p["identifier"] for p in upbit_posts(upbit)]
    binance_ids = [p["newClientOrderId"] for p in binance_posts(binance)]
    assert len(set(upbit_ids)) == len(upbit_ids) and len(set(binance_ids)) == len(binance_ids)
    for identifier in upbit_ids:
        assert len(upbit.orders_with_identifier(identifier)) == 1
    for client_id in binance_ids:
        assert len(binance.orders_with_client_id(client_id)) <= 1   # a refused order is not kept
    assert len(upbit_orders(upbit)) == len(upbit_ids)


# --- faults on reads ------------------------------------------------------------------


def test_bursts_of_5xx_and_429_on_reads_neither_crash_nor_duplicate(tmp_path, exchanges, arb_runs):
    upbit, binance = exchanges
    busy = {"Retry-After": "1"}
    # At start-up: rules, balances and the first book snapshots each meet a
    # burst the read retries ride out.
    for fault in (Fault("GET", "/v1/accounts", "status", 500), Fault("GET", "/v1/accounts", "status", 429, "slow down"),
                  Fault("GET", "/v1/orderbook", "status", 503), Fault("GET", "/v1/orderbook", "status", 502)):
        upbit.inject(fault)
    for fault in (Fault("GET", "/api/v3/account", "status", 503), Fault("GET", "/api/v3/account", "status", 429,
                                                                        {"code": -1003, "msg": "busy"}, busy),
                  Fault("GET", "/api/v3/depth", "status", 500), Fault("GET", "/api/v3/depth", "status", 504)):
        binance.inject(fault)
    run = start(arb_runs, tmp_path, upbit, binance)
    run.wait_for("the opening pair", lambda: len(upbit_orders(upbit)) == 1 and len(binance.market.orders) == 1)

    # Mid-session: the balance reads after the closing pair fail for longer
    # than any retry; the session must carry on without them.
    upbit.inject(Fault("GET", "/v1/accounts", "status", 503), times=8)
    binance.inject(Fault("GET", "/api/v3/account", "status", 500), times=8)
    set_upbit_btc(upbit, PAR_KRW)
    run.wait_for("the closing pair", lambda: len(upbit_orders(upbit)) == 2 and len(binance.market.orders) == 2)
    code, summary = run.stop(signal.SIGTERM)

    assert code == 0, run.stderr[-3000:]
    # what must not be lost: each order exactly once, both pairs accounted for
    assert_each_order_once(upbit, binance)
    assert [(p["side"], p["volume"]) for p in upbit_posts(upbit)] == [("ask", "0.00021000"), ("bid", "0.00021000")]
    assert [(p["side"], p["quantity"]) for p in binance_posts(binance)] == [("BUY", QTY), ("SELL", QTY)]
    assert summary["trades_opened"] == 1 and summary["trades_closed"] == 1
    assert summary["orders"]["sent"] == 4 and summary["orders"]["filled"] == 4
    assert summary["exposure"] == {} and summary["active_orders"] == 0
    # the faults were met, not skipped: every one of them was answered
    assert upbit.faults == [] or all(f.path == "/v1/accounts" for f in upbit.faults)
    assert binance.faults == [] or all(f.path == "/api/v3/account" for f in binance.faults)
    assert "could not refresh balances after orders" in run.stderr


# --- faults on the order POST ---------------------------------------------------------


@pytest.mark.parametrize("upbit_fault, binance_fault", [("malformed", "timeout"), ("timeout", "malformed")])
def test_an_unclear_order_answer_is_looked_up_not_sent_again(tmp_path, exchanges, arb_runs, upbit_fault,
                                                            binance_fault):
    upbit, binance = exchanges
    # The exchange takes the order, then answers with broken JSON, or too late
    # for our 1 s timeout: either way the order exists and must be found.
    upbit.inject(Fault("POST", "/v1/orders", upbit_fault, delay_s=2.0))
    binance.inject(Fault("POST", "/api/v3/order", binance_fault, delay_s=2.0))
    run = start(arb_runs, tmp_path, upbit, binance, timeout_s=1.0)
    run.wait_for("the opening pair and its lookups",
                 lambda: len(upbit_orders(upbit)) == 1 and len(binance.market.orders) == 1
                 and upbit.requests_to("GET", "/v1/order") and binance.requests_to("GET", "/api/v3/order"))
    code, summary = run.stop()

    assert code == 0, run.stderr[-3000:]
    [upbit_post] = upbit_posts(upbit)
    [binance_post] = binance_posts(binance)
    # looked up by the client id it was sent with
    assert any(f"identifier={upbit_post['identifier']}" in r.query for r in upbit.requests_to("GET", "/v1/order"))
    assert any(f"origClientOrderId={binance_post['newClientOrderId']}" in r.query
               for r in binance.requests_to("GET", "/api/v3/order"))
    [upbit_order] = upbit.orders_with_identifier(upbit_post["identifier"])
    [binance_order] = binance.orders_with_client_id(binance_post["newClientOrderId"])
    assert upbit_order["state"] == "done" and binance_order.status == "FILLED"
    assert summary["trades_opened"] == 1 and summary["exposure"] == {}
    assert summary["orders"]["sent"] == 2 and summary["orders"]["filled"] == 2


# --- streams --------------------------------------------------------------------------


def connection_ids(emulator) -> set[int]:
    with emulator.lock:
        return {id(c) for c in emulator.ws_connections}


def test_websocket_drop_mid_session_reconnects_and_trading_continues(tmp_path, exchanges, arb_runs):
    upbit, binance = exchanges
    run = start(arb_runs, tmp_path, upbit, binance)
    run.wait_for("the opening pair", lambda: len(upbit_orders(upbit)) == 1 and len(binance.market.orders) == 1)
    before = {"upbit": connection_ids(upbit), "binance": connection_ids(binance)}
    assert before["upbit"] and before["binance"]
    upbit.drop_websockets()
    binance.drop_websockets()
    run.wait_for("both streams to reconnect",
                 lambda: connection_ids(upbit) - before["upbit"] and connection_ids(binance) - before["binance"])
    # The premium goes away after the drop: only a reconnected stream (or the
    # REST bridge) can tell the session, which must then close the trade.
    set_upbit_btc(upbit, PAR_KRW)
    run.wait_for("the closing pair", lambda: len(upbit_orders(upbit)) == 2 and len(binance.market.orders) == 2)
    code, summary = run.stop()

    assert code == 0, run.stderr[-3000:]
    assert summary["trades_opened"] == 1 and summary["trades_closed"] == 1
    assert_each_order_once(upbit, binance)
    stderr = run.stderr
    for name in ("upbit", "binance"):
        assert stderr.count(f"{name} stream connected") >= 2, stderr[-3000:]
    assert "stream disconnected" in stderr or "stream reconnecting" in stderr


# --- leg risk -------------------------------------------------------------------------


def test_a_partly_filled_leg_is_unwound_by_the_policy(tmp_path, exchanges, arb_runs):
    upbit, binance = exchanges
    market = binance.market
    taken = []
    place = market.new_order

    def someone_was_faster(params, now_ms):
        # Just before our buy matches, another trader takes all but 0.0001
        # BTC of what sat under our limit; the stream has not told us yet.
        if params.get("side") == "BUY" and not taken:
            taken.append(True)
            market.set_book("BTCUSDT", ladder(94_990.0, -10.0, 1.0), [(95_000.0, 0.0001), (96_000.0, 1.0)])
        return place(params, now_ms)

    market.new_order = someone_was_faster
    run = start(arb_runs, tmp_path, upbit, binance)
    run.wait_for("the unwind", lambda: len(upbit_orders(upbit)) == 2)
    code, summary = run.stop()

    assert code == 0, run.stderr[-3000:]
    [buy] = binance.market.orders
    assert buy.side == "BUY" and buy.qty == Decimal(QTY) and buy.executed == Decimal("0.0001")
    assert buy.status == "EXPIRED"    # IOC: the rest was not there at our price
    sell, unwind = upbit_posts(upbit)
    assert (sell["side"], sell["volume"]) == ("ask", "0.00021000")
    # the unwind buys back exactly what the Binance buy did not cover, as a limit IOC
    assert (unwind["side"], unwind["volume"], unwind["ord_type"], unwind["time_in_force"]) == \
        ("bid", "0.00011000", "limit", "ioc")
    assert unwind["identifier"] != sell["identifier"]
    for post in (sell, unwind):
        [order] = upbit.orders_with_identifier(post["identifier"])
        assert order["state"] == "done"
    assert_each_order_once(upbit, binance)
    # what must not be lost: the hedged 0.0001 is a trade, nothing is left unhedged
    assert summary["trades_opened"] == 1 and summary["exposure"] == {}
    assert summary["entries_halted"] == ""
    assert upbit.balance("BTC")[0] == pytest.approx(0.05 - 0.0001)
    assert "[ARB_EXPOSURE] unhedged open of BTC" in run.stderr


# --- shutdown -------------------------------------------------------------------------
#
# An Upbit order can be accepted and not yet matched ("wait"); emulated here by
# holding every order.  Whatever ends the session, it must not stay open.


def test_one_signal_cancels_the_open_order_and_prints_the_summary(tmp_path, exchanges, arb_runs):
    upbit, binance = exchanges
    upbit.hold_orders(1_000_000)
    run = start(arb_runs, tmp_path, upbit, binance)
    run.wait_for("an accepted Upbit order", lambda: upbit_orders(upbit))
    code, summary = run.stop(signal.SIGTERM)

    assert code == 0, run.stderr[-3000:]
    [order] = upbit_orders(upbit)
    assert order["state"] == "cancel" and order["executed_volume"] == "0"
    assert len(upbit.requests_to("DELETE", "/v1/order")) == 1
    assert summary["active_orders"] == 0 and summary["exit_reason"] == "interrupted"
    # the Binance leg filled alone: the policy sold it back, and nothing is left unhedged
    assert [(p["side"], p["quantity"]) for p in binance_posts(binance)] == [("BUY", QTY), ("SELL", QTY)]
    assert summary["exposure"] == {} and summary["trades_opened"] == 0
    assert "Session summary" in run.stdout_path.read_text(encoding="utf-8")


def test_a_second_signal_exits_at_once_and_still_cancels_the_open_order(tmp_path, exchanges, arb_runs):
    upbit, binance = exchanges
    upbit.hold_orders(1_000_000)
    run = start(arb_runs, tmp_path, upbit, binance)
    run.wait_for("an accepted Upbit order", lambda: upbit_orders(upbit))
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("the first signal to be seen", lambda: "received SIGINT" in run.stderr)
    signalled = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    code = run.proc.wait(timeout=WAIT_S)
    assert time.monotonic() - signalled < 5.0
    assert code == 128 + signal.SIGINT
    [order] = upbit_orders(upbit)
    assert order["state"] == "cancel"
    assert "Traceback" not in run.stderr
    for journal in (tmp_path / "state").rglob("*.sqlite"):
        with sqlite3.connect(journal) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def held_order_gateway(upbit: UpbitEmulator, **kwargs) -> tuple[LiveGateway, dict, threading.Thread]:
    upbit.hold_orders(1_000_000)
    client = client_for(upbit)
    rules = client.market_rules(["KRW-BTC"])
    gateway = LiveGateway({"upbit": client}, rules={("upbit", "KRW-BTC"): rules["KRW-BTC"]},
                          follow_timeout_s=30.0, poll_interval_s=0.01, **kwargs)
    intent = OrderIntent("upbit", "KRW-BTC", Side.SELL, 0.0002, DEAR_KRW, DEAR_KRW, "arbheld-1")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(orders=gateway.submit([intent], 0.0)), daemon=True)
    worker.start()
    deadline = time.monotonic() + WAIT_S
    while not gateway.active_orders() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert gateway.active_orders() == 1
    return gateway, result, worker


def test_gateway_stop_request_cancels_a_followed_order_at_once(exchanges):
    upbit, _ = exchanges
    stop = threading.Event()
    gateway, result, worker = held_order_gateway(upbit, stop=stop)
    try:
        stopped = time.monotonic()
        stop.set()                    # the session's stop event, shared with the gateway
        worker.join(timeout=WAIT_S)
        assert not worker.is_alive() and time.monotonic() - stopped < 5.0   # not the 30 s follow timeout
    finally:
        gateway.close()
    [order] = result["orders"]
    assert order.status is OrderStatus.CANCELED and order.filled_qty == 0
    assert len(upbit.requests_to("DELETE", "/v1/order")) == 1
    assert upbit.balance("BTC") == (pytest.approx(0.05), pytest.approx(0.0))


def test_gateway_cancel_open_orders_then_close_leaves_nothing_open(exchanges):
    upbit, _ = exchanges
    gateway, result, worker = held_order_gateway(upbit)
    # The cancel goes out from here or from the order's own follower (a stop
    # request wakes it too), never from both.
    assert gateway.cancel_open_orders() in (0, 1)
    gateway.close()
    worker.join(timeout=WAIT_S)
    assert not worker.is_alive()
    [order] = upbit.orders_with_identifier("arbheld-1")
    assert order["state"] == "cancel"
    assert len(upbit.requests_to("DELETE", "/v1/order")) == 1
    assert gateway.orders_cancelled == 1 and gateway.active_orders() == 0


def test_gateway_close_alone_cancels_an_order_still_open(exchanges):
    upbit, _ = exchanges
    gateway, result, worker = held_order_gateway(upbit)
    gateway.close()                   # no cancel_open_orders first: close must not leave it open
    worker.join(timeout=WAIT_S)
    [order] = upbit.orders_with_identifier("arbheld-1")
    assert order["state"] == "cancel"
