"""The live modes' moving parts against the emulators: merged book streams
that recover from dropped sockets, and a gateway that never doubles an order."""

from __future__ import annotations

import threading
import time

import pytest

from arb.emulation import Fault
from arb.live import LiveGateway, LiveMarketSource
from arb.models import OrderIntent, OrderStatus, Side
from arb_binance.client import BinanceClient
from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator
from arb_upbit.emulator import UpbitEmulator
from arb_upbit.testing import client_for

DEADLINE_S = 15.0


@pytest.fixture
def upbit():
    emulator = UpbitEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def binance():
    emulator = BinanceEmulator()
    emulator.set_book("BTCUSDT", [(94_990.0, 1.0)], [(95_000.0, 1.0)])
    emulator.start()
    yield emulator
    emulator.stop()


def binance_client(emulator: BinanceEmulator, **kw) -> BinanceClient:
    return BinanceClient(emulator.rest_url, emulator.ws_url, api_key=EMULATOR_API_KEY,
                         secret_key=EMULATOR_SECRET_KEY, **kw)


def drain_until(source_events, condition, deadline_s: float = DEADLINE_S) -> list:
    """Pull from the merged feed until ``condition(seen)`` holds (bounded)."""
    seen = []
    end = time.monotonic() + deadline_s
    for book in source_events:
        if book is not None:
            seen.append(book)
        if condition(seen) or time.monotonic() > end:
            break
    return seen


def test_merged_feed_recovers_after_both_exchanges_drop_their_sockets(upbit, binance):
    clients = {"upbit": client_for(upbit), "binance": binance_client(binance)}
    stop = threading.Event()
    source = LiveMarketSource(clients, {"upbit": ["KRW-BTC", "KRW-USDT"], "binance": ["BTCUSDT"]}, stop)
    events = source.events()
    try:
        first = drain_until(events, lambda seen: {b.exchange for b in seen} == {"upbit", "binance"})
        assert {b.exchange for b in first} == {"upbit", "binance"}
        upbit.drop_websockets()
        binance.drop_websockets()
        # After the drop every stream reconnects and fills the gap with a REST
        # snapshot, so fresh books from both arrive again.
        mark = time.time() * 1000
        again = drain_until(events, lambda seen: {b.exchange for b in seen if b.received_ms > mark}
                            == {"upbit", "binance"} and all(s["reconnects"] >= 1 for s in source.status().values()))
        assert {b.exchange for b in again if b.received_ms > mark} == {"upbit", "binance"}
        assert all(s["reconnects"] >= 1 for s in source.status().values()), source.status()
        assert source.disconnects >= 2
    finally:
        source.close()
        for client in clients.values():
            client.close()


def intent(exchange: str, symbol: str, side: Side, qty: float, price: float, cid: str) -> OrderIntent:
    return OrderIntent(exchange, symbol, side, qty, price, price, cid)


def test_gateway_under_a_timed_out_order_post_sends_each_leg_once(upbit, binance):
    # Both exchanges create the orders but answer too late for our timeout.
    upbit.inject(Fault("POST", "/v1/orders", "timeout", delay_s=1.0))
    binance.inject(Fault("POST", "/api/v3/order", "timeout", delay_s=1.0))
    clients = {"upbit": client_for(upbit, timeout_s=0.3), "binance": binance_client(binance, timeout_s=0.3)}
    gateway = LiveGateway(clients, follow_timeout_s=3.0)
    gateway.refresh_balances()
    best_bid = upbit.market.books["KRW-BTC"].bids[0][0] if hasattr(upbit.market.books["KRW-BTC"], "bids") else None
    book = clients["upbit"].order_book("KRW-BTC")
    legs = (intent("upbit", "KRW-BTC", Side.SELL, 0.001, book.best_bid, "arbe2etimeout-1"),
            intent("binance", "BTCUSDT", Side.BUY, 0.001, 95_000.0, "arbe2etimeout-2"))
    try:
        orders = gateway.submit(legs, now_ms=0.0)
    finally:
        gateway.close()
    assert best_bid is None or best_bid > 0
    assert [o.status for o in orders] == [OrderStatus.FILLED, OrderStatus.FILLED]
    assert len(upbit.orders_with_identifier("arbe2etimeout-1")) == 1
    assert len(binance.orders_with_client_id("arbe2etimeout-2")) == 1
    assert len(upbit.requests_to("POST", "/v1/orders")) == 1
    assert len(binance.requests_to("POST", "/api/v3/order")) == 1


def test_gateway_follows_an_accepted_but_unmatched_upbit_order_until_done(upbit):
    upbit.hold_orders(3)  # stays `wait` for three lookups, as a real accepted order can
    client = client_for(upbit)
    gateway = LiveGateway({"upbit": client}, poll_interval_s=0.01)
    book = client.order_book("KRW-BTC")
    try:
        [order] = gateway.submit([intent("upbit", "KRW-BTC", Side.SELL, 0.001, book.best_bid, "arbe2ehold-1")], 0.0)
    finally:
        gateway.close()
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.001)
    assert gateway.orders_filled == 1 and gateway.active_orders() == 0


def test_gateway_snaps_to_the_lot_step_and_refuses_locally_below_the_minimum(upbit):
    client = client_for(upbit)
    rules = client.market_rules(["KRW-BTC"])
    gateway = LiveGateway({"upbit": client}, rules={("upbit", "KRW-BTC"): rules["KRW-BTC"]})
    book = client.order_book("KRW-BTC")
    try:
        # 0.00001 BTC at ~140M KRW is ~1,400 KRW, below Upbit's 5,000 KRW minimum.
        [tiny] = gateway.submit([intent("upbit", "KRW-BTC", Side.SELL, 0.00001, book.best_bid, "arbe2etiny-1")], 0.0)
        # A quantity off the 1e-8 step is floored before it is sent, never rounded up.
        [snapped] = gateway.submit([intent("upbit", "KRW-BTC", Side.SELL, 0.001000009, book.best_bid,
                                           "arbe2esnap-1")], 0.0)
    finally:
        gateway.close()
    assert tiny.status is OrderStatus.REJECTED and "refused locally" in tiny.reason and "minimum" in tiny.reason
    assert upbit.orders_with_identifier("arbe2etiny-1") == []
    assert snapped.intent.quantity == pytest.approx(0.00100000)
    [sent] = upbit.requests_to("POST", "/v1/orders")
    assert sent.json()["volume"] == "0.00100000"
