"""The live Binance client against the emulator, over real HTTP on 127.0.0.1.

Waits that would take real minutes (rate-limit windows, Retry-After, bans)
run on a fake clock shared by the client and the emulator; the only real
waits are the short transport timeouts of the fault tests.
"""

from __future__ import annotations

import json
import logging

import pytest

from arb.emulation import Fault
from arb.errors import (AuthError, Banned, ExchangeError, ExchangeUnavailable, InsufficientFunds,
                        OrderRejected, OutcomeUnknown, RateLimited, UnknownOrder)
from arb.models import OrderIntent, OrderStatus, Side
from arb.plugins import load_registry

from arb_binance import parse
from arb_binance.client import BinanceClient
from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator
from arb_binance.errors import error_for
from arb_binance.ratelimit import RateLimiter
from arb_binance.rules import usdt_market_rules

from emulated import binance_client, binance_emulator, binance_make_client  # noqa: F401 (fixtures)

ORDER = "/api/v3/order"


class FakeClock:
    """Seconds since the epoch that only move when someone sleeps."""

    def __init__(self, start: float = 1_800_000_005.0):
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def intent(qty: float, price: float, side: Side = Side.BUY, cid: str = "arb-test-1",
           symbol: str = "BTCUSDT", order_type: str = "limit") -> OrderIntent:
    return OrderIntent("binance", symbol, side, qty, price, price, cid, order_type)


# --- market data ----------------------------------------------------------------------


def test_market_rules_come_from_exchange_info_and_the_account_fee(client, emulator):
    rules = client.market_rules(["BTCUSDT", "XRPUSDT"])
    btc, xrp = rules["BTCUSDT"], rules["XRPUSDT"]
    assert (btc.base, btc.quote, btc.tick_for(50000)) == ("BTC", "USDT", 0.01)
    assert (btc.lot_step, btc.min_qty) == (1e-05, 1e-05)
    assert (btc.min_notional, btc.max_notional, btc.taker_fee) == (5.0, 9_000_000.0, 0.001)
    assert (xrp.tick_for(0.5), xrp.lot_step) == (0.0001, 0.1)
    assert emulator.requests_to("GET", "/api/v3/account"), "the fee is read from the account"


def test_without_keys_rules_use_the_default_fee_and_touch_no_account(make_client, emulator):
    rules = make_client(keys=False).market_rules(["ETHUSDT"])
    assert rules["ETHUSDT"].taker_fee == 0.001 and rules["ETHUSDT"].lot_step == 0.0001
    assert not emulator.requests_to("GET", "/api/v3/account")


def test_unknown_symbol_is_refused_with_its_code(client):
    with pytest.raises(ExchangeError) as info:
        client.market_rules(["NOPEUSDT"])
    assert info.value.code == -1121 and "Invalid symbol." in str(info.value)


def test_order_book_and_server_time(client, emulator):
    book = client.order_book("BTCUSDT", depth=5)
    assert book.bids == [(50000.0, 0.5), (49990.0, 1.0)] and book.asks[0] == (50010.0, 0.2)
    assert book.exchange == "binance" and book.received_ms > 0
    assert abs(client.server_time_ms() - emulator.server_ms()) < 1000


def test_balances_free_and_locked(client):
    balances = client.balances()
    assert balances["USDT"].free == 100000.0 and balances["BTC"].free == 1.0
    assert balances["BTC"].locked == 0.0


def test_public_only_client_refuses_account_calls_without_sending(make_client, emulator):
    with pytest.raises(AuthError):
        make_client(keys=False).balances()
    assert not emulator.requests_to("GET", "/api/v3/account")
    assert make_client(keys=False).key_warnings() == []


# --- clock ----------------------------------------------------------------------------


def test_a_skewed_exchange_clock_is_measured_and_applied(client, emulator):
    emulator.server_offset_ms = 3000.0   # beyond the 1000 ms Binance tolerates ahead
    assert client.balances()["USDT"].free == 100000.0
    assert client.clock_offset_ms == pytest.approx(3000.0, abs=250)


def test_a_timestamp_refusal_resyncs_the_clock_and_retries_a_read(client, emulator):
    client.balances()                     # offset measured at 0
    emulator.server_offset_ms = -20_000   # the exchange's clock jumps back 20 s
    assert client.balances()["USDT"].free == 100000.0
    assert client.clock_offset_ms == pytest.approx(-20_000.0, abs=250)


# --- orders ---------------------------------------------------------------------------


def test_ioc_buy_fills_and_moves_balances(client, emulator):
    order = client.place_order(intent(0.3, 50020.0))
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.3)
    assert [(f.quantity, f.price) for f in order.fills] == [(0.2, 50010.0), (0.1, 50020.0)]
    # Commission was taken in BTC (received asset) and is reported in USDT.
    assert order.fees == pytest.approx(0.001 * (0.2 * 50010 + 0.1 * 50020))
    balances = client.balances()
    assert balances["USDT"].free == pytest.approx(100000 - (0.2 * 50010 + 0.1 * 50020))
    assert balances["BTC"].free == pytest.approx(1 + 0.3 - 0.0003)
    sent = emulator.requests_to("POST", ORDER)[0]
    assert b"type=LIMIT" in sent.body and b"timeInForce=IOC" in sent.body
    assert b"quantity=0.30000&price=50020.00" in sent.body and b"newOrderRespType=FULL" in sent.body


def test_ioc_sell_pays_the_fee_in_quote(client):
    order = client.place_order(intent(0.1, 50000.0, Side.SELL))
    assert order.status is OrderStatus.FILLED
    assert order.fees == pytest.approx(0.001 * 0.1 * 50000)
    assert client.balances()["USDT"].free == pytest.approx(100000 + 5000 - 5)


def test_partial_fill_is_canceled_with_its_fills(client):
    order = client.place_order(intent(0.5, 50010.0))
    assert order.status is OrderStatus.CANCELED
    assert order.filled_qty == pytest.approx(0.2) and order.avg_price == 50010.0
    assert "expired" in order.reason


def test_nothing_at_the_limit_is_canceled_without_fills(client):
    order = client.place_order(intent(0.1, 50000.0))
    assert order.status is OrderStatus.CANCELED and order.fills == []


@pytest.mark.parametrize("order_intent, error, code, text", [
    (intent(0.00001, 50010.0), OrderRejected, -1013, "Filter failure: NOTIONAL"),
    (intent(3.0, 50010.0, cid="big"), InsufficientFunds, -2010, "insufficient balance"),
    (intent(0.1, 1e-9, side=Side.SELL), OrderRejected, -1013, "Filter failure: PRICE_FILTER"),
], ids=["notional", "insufficient", "price"])
def test_rejections_are_typed_and_keep_the_code(client, order_intent, error, code, text):
    with pytest.raises(error) as info:
        client.place_order(order_intent)
    assert info.value.code == code and text in info.value.exchange_message


def test_duplicate_open_client_id_cancel_and_open_orders(client, emulator):
    with emulator.lock:   # a resting GTC order holding the client id we reuse
        emulator.market.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                   "quantity": "0.01", "price": "40000", "newClientOrderId": "dup"}, 0)
    with pytest.raises(OrderRejected) as info:
        client.place_order(intent(0.01, 50010.0, cid="dup"))
    assert info.value.code == -2010 and "Duplicate order sent." in str(info.value)
    [resting] = client.open_orders(["BTCUSDT"])
    assert resting.intent.client_order_id == "dup" and resting.status is OrderStatus.NEW
    assert client.balances()["USDT"].locked == pytest.approx(400.0)
    canceled = client.cancel_order("BTCUSDT", "dup")
    assert canceled.status is OrderStatus.CANCELED and canceled.intent.client_order_id == "dup"
    assert client.open_orders(["BTCUSDT"]) == [] and client.balances()["USDT"].locked == 0.0
    with pytest.raises(UnknownOrder) as info:
        client.cancel_order("BTCUSDT", "dup")
    assert info.value.code == -2011


def test_get_order_finds_by_client_id_or_says_none(client):
    client.place_order(intent(0.1, 50010.0, cid="known"))
    found = client.get_order("BTCUSDT", "known")
    assert found is not None and found.status is OrderStatus.FILLED and found.filled_qty == pytest.approx(0.1)
    assert found.fills[0].price == 50010.0 and found.fees == pytest.approx(0.001 * 5001)
    assert client.get_order("BTCUSDT", "never-sent") is None


# --- auth and secrets -----------------------------------------------------------------


def test_bad_secret_is_an_auth_error_that_leaks_nothing(make_client, emulator, caplog):
    caplog.set_level(logging.DEBUG)
    arb_logger = logging.getLogger("arb")   # captured even if a CLI test stopped propagation
    arb_logger.addHandler(caplog.handler)
    secret = "definitely-not-the-secret-0123456789"
    client = make_client(secret_key=secret)
    try:
        with pytest.raises(AuthError) as info:
            client.balances()
    finally:
        arb_logger.removeHandler(caplog.handler)
    assert "GET /api/v3/account" in caplog.text, "the request was logged, so the check means something"
    assert info.value.code == -1022 and info.value.status == 400
    signature = emulator.requests_to("GET", "/api/v3/account")[0].query.rsplit("signature=", 1)[1]
    for text in (str(info.value), repr(info.value), caplog.text, repr(client)):
        assert secret not in text and signature not in text and EMULATOR_API_KEY not in text


def test_unknown_api_key_is_an_auth_error(make_client):
    with pytest.raises(AuthError) as info:
        make_client(api_key="someone-elses-key").balances()
    assert info.value.code == -2015 and info.value.status == 401


def test_key_warnings(make_client, emulator):
    client = make_client()
    assert client.key_warnings() == []
    emulator.withdrawals_enabled = True
    emulator.ip_restricted = False
    warnings = client.key_warnings()
    assert any("withdraw" in w for w in warnings) and any("IP" in w for w in warnings)
    emulator.inject(Fault("GET", "/sapi/v1/account/apiRestrictions", "status", 404, "<html>Not Found</html>"),
                    times=10)
    [warning] = client.key_warnings()
    assert "could not check" in warning


# --- an order is never sent twice -----------------------------------------------------


@pytest.mark.parametrize("order_type", ["limit", "market"])
@pytest.mark.parametrize("fault", ["timeout", "drop", "malformed"])
def test_unclear_answer_is_settled_by_lookup_not_resend(make_client, emulator, fault, order_type):
    client = make_client(timeout_s=0.3)
    client.market_rules(["BTCUSDT"])
    emulator.inject(Fault("POST", ORDER, fault, delay_s=1.0))
    order = client.place_order(intent(0.1, 50010.0, cid=f"once-{fault}", order_type=order_type))
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.1)
    assert order.intent.order_type == order_type and order.intent.client_order_id == f"once-{fault}"
    assert len(emulator.requests_to("POST", ORDER)) == 1
    assert len(emulator.orders_with_client_id(f"once-{fault}")) == 1
    assert f"origClientOrderId=once-{fault}" in emulator.requests_to("GET", ORDER)[0].query, "it was looked up"


@pytest.mark.parametrize("status, body", [
    (500, None),
    (503, {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; "
                                 "execution status unknown."}),
], ids=["500", "-1007"])
def test_error_after_processing_is_settled_by_lookup(client, emulator, status, body):
    emulator.inject_after_processing("POST", ORDER, status, body)
    order = client.place_order(intent(0.5, 50010.0, cid="processed"))
    assert order.status is OrderStatus.CANCELED and order.filled_qty == pytest.approx(0.2)
    assert len(emulator.requests_to("POST", ORDER)) == 1
    assert len(emulator.orders_with_client_id("processed")) == 1


@pytest.mark.parametrize("order_type", ["limit", "market"])
def test_unprocessed_503_that_lookups_cannot_find_is_outcome_unknown(client, emulator, order_type):
    client.market_rules(["BTCUSDT"])
    emulator.inject(Fault("POST", ORDER, "status", 503, {"code": -1000, "msg": "Service unavailable"}))
    with pytest.raises(OutcomeUnknown) as info:
        client.place_order(intent(0.1, 50010.0, cid="lost", order_type=order_type))
    assert "not re-sent" in str(info.value)
    assert len(emulator.requests_to("POST", ORDER)) == 1
    assert len(emulator.requests_to("GET", ORDER)) >= 2, "looked up more than once"
    assert emulator.orders_with_client_id("lost") == []


def test_a_rate_limited_order_is_not_resent(client, emulator):
    client.market_rules(["BTCUSDT"])
    emulator.inject(Fault("POST", ORDER, "status", 429, {"code": -1015, "msg": "Too many new orders."},
                          {"Retry-After": "1"}))
    with pytest.raises(RateLimited):
        client.place_order(intent(0.1, 50010.0))
    assert len(emulator.requests_to("POST", ORDER)) == 1 and not emulator.market.orders


# --- rate limits ----------------------------------------------------------------------


def test_429_on_a_read_is_retried_after_retry_after(make_client, emulator, clock):
    client = make_client(clock=clock.time, sleep=clock.sleep)
    emulator.inject(Fault("GET", "/api/v3/depth", "status", 429,
                          {"code": -1003, "msg": "Too much request weight used"}, {"Retry-After": "7"}))
    assert client.order_book("BTCUSDT").best_bid == 50000.0
    assert len(emulator.requests_to("GET", "/api/v3/depth")) == 2
    assert sum(clock.sleeps) >= 7.0, "the retry waited at least as long as told"


def test_418_bans_every_request_until_retry_after(make_client, emulator, clock):
    client = make_client(clock=clock.time, sleep=clock.sleep)
    emulator.inject(Fault("GET", "/api/v3/depth", "status", 418,
                          {"code": -1003, "msg": "Way too much request weight used; IP banned"},
                          {"Retry-After": "120"}))
    with pytest.raises(Banned) as info:
        client.order_book("BTCUSDT")
    assert info.value.retry_after_s == 120.0
    seen = len(emulator.requests)
    for call in (lambda: client.order_book("BTCUSDT"), client.balances, client.server_time_ms,
                 lambda: client.place_order(intent(0.1, 50010.0))):
        with pytest.raises(Banned):
            call()
    assert len(emulator.requests) == seen, "nothing reached the exchange during the ban"
    clock.now += 121
    assert client.order_book("BTCUSDT").best_ask == 50010.0


def test_a_burst_stays_under_the_weight_limit(make_client, clock):
    with BinanceEmulator(weight_limit=100, clock=clock.time) as emulator:
        emulator.set_book("BTCUSDT", [(50000.0, 1.0)], [(50010.0, 1.0)])
        client = make_client(emu=emulator, clock=clock.time, sleep=clock.sleep, weight_per_minute=100)
        for _ in range(40):                                  # 40 x weight 5 = two minutes' worth
            assert client.order_book("BTCUSDT").best_bid == 50000.0
        assert emulator.rate_limit_answers == []
        assert len(emulator.requests_to("GET", "/api/v3/depth")) == 40
        assert clock.sleeps and max(clock.sleeps) <= 60.0


def test_an_order_burst_stays_under_the_order_count_limit(make_client, clock):
    with BinanceEmulator(order_limit_10s=5, clock=clock.time) as emulator:
        emulator.set_book("XRPUSDT", [(0.5000, 100000)], [(0.5001, 100000)])
        client = make_client(emu=emulator, clock=clock.time, sleep=clock.sleep, orders_per_10s=5)
        for n in range(8):
            order = client.place_order(intent(20.0, 0.5001, cid=f"burst-{n}", symbol="XRPUSDT"))
            assert order.status is OrderStatus.FILLED
        assert emulator.rate_limit_answers == []
        assert any(s > 0 for s in clock.sleeps)


def test_rate_limit_wait_beyond_the_bound_refuses_to_send(make_client, emulator, clock):
    client = make_client(clock=clock.time, sleep=lambda s: None, weight_per_minute=10)
    client.order_book("BTCUSDT")             # weight 5 of the 9 allowed
    with pytest.raises(RateLimited):
        client.order_book("BTCUSDT")         # the no-op sleep never rolls the window
    assert len(emulator.requests_to("GET", "/api/v3/depth")) == 1


# --- wiring ---------------------------------------------------------------------------


def test_create_client_from_the_registered_spec(emulator):
    spec = load_registry().exchange("binance")
    assert spec.create_client is not None
    client = spec.create_client({"rest_url": emulator.rest_url, "ws_url": emulator.ws_url, "timeout_s": 1,
                                 "recv_window_ms": 3000},
                                {"api_key": EMULATOR_API_KEY, "secret_key": EMULATOR_SECRET_KEY})
    try:
        assert isinstance(client, BinanceClient) and client.name == "binance"
        assert client.balances()["USDT"].free == 100000.0
        assert "recvWindow=3000" in emulator.requests_to("GET", "/api/v3/account")[0].query
    finally:
        client.close()
    public = spec.create_client({"rest_url": emulator.rest_url}, {})
    try:
        assert public.order_book("BTCUSDT").best_bid == 50000.0
        with pytest.raises(AuthError):
            public.balances()
    finally:
        public.close()
    with pytest.raises(ValueError):
        spec.create_client({}, {"api_key": "only-half"})


def test_transport_failures_are_exchange_unavailable(make_client, emulator):
    client = make_client()
    emulator.inject(Fault("GET", "/api/v3/depth", "status", 502, "<html>Bad Gateway</html>"), times=4)
    with pytest.raises(ExchangeUnavailable) as info:
        client.order_book("BTCUSDT")
    assert info.value.status == 502


def test_a_timestamp_refusal_of_an_order_is_not_resent(client, emulator):
    client.market_rules(["BTCUSDT"])          # clock measured at offset 0
    emulator.server_offset_ms = -20_000
    with pytest.raises(OrderRejected) as info:
        client.place_order(intent(0.1, 50010.0, cid="late"))
    assert info.value.code == -1021
    assert len(emulator.requests_to("POST", ORDER)) == 1 and emulator.orders_with_client_id("late") == []
    assert client.clock_offset_ms == pytest.approx(-20_000.0, abs=250), "re-synced for the next order"
    assert client.place_order(intent(0.1, 50010.0, cid="on-time")).status is OrderStatus.FILLED


# --- parsing and limiter details (no emulator) ----------------------------------------


def test_commission_in_bnb_is_estimated_at_the_taker_rate():
    answer = {"symbol": "BTCUSDT", "orderId": 7, "clientOrderId": "bnb", "transactTime": 1, "side": "BUY",
              "price": "50000.00", "origQty": "0.2", "executedQty": "0.1", "cummulativeQuoteQty": "5000",
              "status": "EXPIRED",
              "fills": [{"price": "50000.00", "qty": "0.1", "commission": "0.0071", "commissionAsset": "BNB",
                         "tradeId": 1}]}
    order = parse.order(answer, usdt_market_rules("BTCUSDT"))
    assert order.status is OrderStatus.CANCELED and order.filled_qty == 0.1
    assert order.fees == pytest.approx(0.001 * 5000)
    assert order.intent.client_order_id == "bnb" and order.exchange_order_id == "7"


def test_limiter_ignores_counts_from_a_previous_window():
    clock = FakeClock(start=1_800_000_000.0 + 59.9)
    limiter = RateLimiter(weight_per_minute=100, clock=clock.time, sleep=clock.sleep)
    sent_at = limiter.acquire(5)
    clock.now += 0.2                                    # the answer arrives in the next minute
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "89"}, sent_at)
    limiter.acquire(80)                                 # fits: the new window is empty
    assert clock.sleeps == []
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "89"}, clock.now)
    limiter.acquire(5)                                  # 89 + 5 > 90: waits for the next minute
    assert clock.sleeps and clock.sleeps[0] == pytest.approx(59.9)


@pytest.mark.parametrize("status, body, headers, error, retry_after", [
    (400, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, {}, AuthError, None),
    (401, {"code": -2014, "msg": "API-key format invalid."}, {}, AuthError, None),
    (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}, {},
     InsufficientFunds, None),
    (400, {"code": -2010, "msg": "Market is closed."}, {}, OrderRejected, None),
    (400, {"code": -1111, "msg": "Parameter 'quantity' has too much precision."}, {}, OrderRejected, None),
    (400, {"code": -2011, "msg": "Unknown order sent."}, {}, UnknownOrder, None),
    (400, {"code": -2013, "msg": "Order does not exist."}, {}, UnknownOrder, None),
    (429, {"code": -1003, "msg": "Too much request weight used"}, {"Retry-After": "12"}, RateLimited, 12.0),
    (418, {"code": -1003, "msg": "IP banned"}, {}, Banned, 120.0),
    (403, "<html>Request blocked</html>", {}, ExchangeUnavailable, None),
    (503, {"code": -1007, "msg": "Timeout waiting for response from backend server."}, {},
     ExchangeUnavailable, None),
])
def test_error_mapping(status, body, headers, error, retry_after):
    text = body if isinstance(body, str) else json.dumps(body)
    exc = error_for(status, headers, text, "GET /api/v3/x")
    assert type(exc) is error and exc.status == status
    if isinstance(body, dict):
        assert exc.code == body["code"] and body["msg"] in str(exc)
    if retry_after is not None:
        assert exc.retry_after_s == retry_after
