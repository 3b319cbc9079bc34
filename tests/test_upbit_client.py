"""UpbitClient against the Upbit emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from urllib.parse import unquote

import pytest
import requests

from arb.emulation import Fault
from arb.errors import (AuthError, Banned, ExchangeUnavailable, InsufficientFunds, OrderRejected,
                        OutcomeUnknown, RateLimited)
from arb.models import OrderIntent, OrderStatus, Side
from arb.plugins import load_registry

from arb_upbit.auth import Credentials, hash_text, json_body, query_pairs, wire_query
from arb_upbit.client import UpbitClient
from arb_upbit.errormap import error_for
from arb_upbit.ratelimit import RateLimiter, parse_remaining
from arb_upbit.testing import client_for, running_emulator

from emulated import lose_upbit_order_answer, upbit_client, upbit_emu  # noqa: F401 (fixtures client, emu)

pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is")

BTC = "KRW-BTC"
BEST_ASK = 140_000_000.0   # the emulator's default KRW-BTC book: 0.05 BTC per level, 1,000 KRW apart
BEST_BID = 139_999_000.0


def intent(side: Side, qty: float, price: float, coid: str, symbol: str = BTC,
           order_type: str = "limit") -> OrderIntent:
    return OrderIntent("upbit", symbol, side, qty, price, price, coid, order_type)


# --- market data -------------------------------------------------------------------

def test_market_rules_read_tick_fee_and_minimum_from_the_exchange():
    with running_emulator(fee_rate=0.0004, tick_overrides={"KRW-USDT": 0.5}) as emu:
        client = client_for(emu)
        rules = client.market_rules(["KRW-BTC", "krw-usdt"])
        client.close()
    btc, usdt = rules["KRW-BTC"], rules["KRW-USDT"]
    assert btc.tick_for(BEST_BID) == 1000 and btc.min_notional == 5000 and btc.max_notional == 1e9
    assert btc.taker_fee == pytest.approx(0.0004)  # from /v1/orders/chance, not the published default
    # KRW-USDT's own tick replaces its band only; other bands keep Upbit's table.
    assert usdt.tick_for(1400) == 0.5 and usdt.format_price(1400.5) == "1400.5"
    assert usdt.tick_for(140_000_000) == 1000
    assert usdt.base == "USDT" and usdt.quote == "KRW"


def test_market_rules_without_keys_use_published_defaults(emu):
    client = client_for(emu, keys=False, fallback_fee=0.0007)
    rules = client.market_rules([BTC])[BTC]
    client.close()
    assert rules.taker_fee == pytest.approx(0.0007) and rules.min_notional == 5000
    assert emu.requests_to("GET", "/v1/orders/chance") == []


def test_order_book_snapshot(client, emu):
    before = time.time() * 1000
    book = client.order_book(BTC, depth=5)
    assert (book.exchange, book.symbol) == ("upbit", BTC)
    assert book.best_bid == BEST_BID and book.best_ask == BEST_ASK
    assert len(book.bids) == len(book.asks) == 5
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert before <= book.received_ms <= time.time() * 1000
    assert book.exchange_ts_ms == emu.market.books[BTC].timestamp
    assert emu.requests_to("GET", "/v1/orderbook")[-1].query == "markets=KRW-BTC&count=5"


def test_no_clock_endpoint(client):
    assert client.server_time_ms() is None


def test_balances(client):
    balances = client.balances()
    assert balances["KRW"].free == 10_000_000 and balances["KRW"].locked == 0
    assert balances["BTC"].free == pytest.approx(0.1)


# --- orders ------------------------------------------------------------------------

def test_ioc_buy_fills_and_moves_balances(client, emu):
    order = client.place_order(intent(Side.BUY, 0.07, BEST_ASK + 1000, "buy-1"))
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.07)
    funds = 0.05 * BEST_ASK + 0.02 * (BEST_ASK + 1000)
    assert order.quote_amount == pytest.approx(funds)
    assert order.fees == pytest.approx(funds * 0.0005)
    sent = emu.requests_to("POST", "/v1/orders")[0].json()
    assert sent == {"market": BTC, "side": "bid", "volume": "0.07000000", "price": "140001000",
                    "ord_type": "limit", "time_in_force": "ioc", "identifier": "buy-1"}
    balances = client.balances()
    assert balances["KRW"].free == pytest.approx(10_000_000 - funds * 1.0005)
    assert balances["KRW"].locked == 0
    assert balances["BTC"].free == pytest.approx(0.17)
    detailed = client.get_order(BTC, "buy-1")
    assert [f.price for f in detailed.fills] == [BEST_ASK, BEST_ASK + 1000]
    assert detailed.fees == pytest.approx(order.fees)


def test_partial_fill_ends_cancelled_with_its_fills(client, emu):
    order = client.place_order(intent(Side.SELL, 0.08, BEST_BID, "sell-1"))
    assert order.status is OrderStatus.CANCELED and order.status.is_final
    assert order.filled_qty == pytest.approx(0.05)   # one level at the limit, the rest cancelled
    assert order.fees == pytest.approx(0.05 * BEST_BID * 0.0005)
    assert emu.balance("BTC") == (pytest.approx(0.05), 0.0)   # the unfilled 0.03 is unlocked
    assert emu.balance("KRW")[0] == pytest.approx(10_000_000 + 0.05 * BEST_BID * 0.9995)


@pytest.mark.parametrize("order_type", ["limit", "market"])
def test_order_accepted_before_matching_is_followed_until_done(client, emu, order_type):
    emu.hold_orders(3)   # stays "wait" until looked up three times
    order = client.place_order(intent(Side.BUY, 0.01, BEST_ASK, "held-1", order_type=order_type))
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.01)
    assert len(emu.requests_to("GET", "/v1/order")) >= 3
    assert len(emu.requests_to("POST", "/v1/orders")) == 1


def test_open_orders_and_cancel(emu):
    client = client_for(emu, settle_s=0.1)
    emu.hold_orders(1000)
    order = client.place_order(intent(Side.BUY, 0.01, BEST_ASK, "rest-1"))
    assert order.status is OrderStatus.NEW
    assert emu.balance("KRW")[1] > 0
    assert [o.intent.client_order_id for o in client.open_orders([BTC])] == ["rest-1"]
    # The array parameter is repeated and passed the server's query_hash check.  (urllib3
    # percent-encodes the brackets on the wire, as Upbit's own requests-based sample does.)
    assert unquote(emu.requests_to("GET", "/v1/orders/open")[-1].query).count("states[]=") == 2
    cancelled = client.cancel_order(BTC, "rest-1")
    assert cancelled.status is OrderStatus.CANCELED and cancelled.filled_qty == 0
    assert emu.balance("KRW") == (pytest.approx(10_000_000), 0.0)
    assert client.open_orders([BTC]) == []
    assert client.get_order(BTC, "never-sent") is None
    client.close()


@pytest.mark.parametrize("order, error, name", [
    (intent(Side.BUY, 0.00003, BEST_ASK, "small-1"), OrderRejected, "under_min_total_bid"),
    (intent(Side.SELL, 0.00003, BEST_BID, "small-2"), OrderRejected, "under_min_total_ask"),
    (intent(Side.BUY, 1.0, BEST_ASK, "big-1"), InsufficientFunds, "insufficient_funds_bid"),
    (intent(Side.SELL, 5.0, BEST_BID, "big-2"), InsufficientFunds, "insufficient_funds_ask"),
])
def test_rejections_are_typed_and_keep_the_exchange_name(client, order, error, name):
    with pytest.raises(error) as caught:
        client.place_order(order)
    assert caught.value.code == name and caught.value.status == 400
    assert name in str(caught.value)


def test_a_reused_identifier_is_refused(client, emu):
    client.place_order(intent(Side.BUY, 0.001, BEST_ASK, "dup-1"))
    with pytest.raises(OrderRejected) as caught:
        client.place_order(intent(Side.BUY, 0.001, BEST_ASK, "dup-1"))
    assert caught.value.code == "duplicated_identifier"
    assert len(emu.orders_with_identifier("dup-1")) == 1


# --- never a duplicate order ---------------------------------------------------------

@lose_upbit_order_answer
def test_lost_answer_is_settled_by_lookup_never_by_resending(emu, lose_answer):
    client = client_for(emu, timeout_s=0.3)
    lose_answer(emu)
    order = client.place_order(intent(Side.BUY, 0.01, BEST_ASK, "lost-1"))
    client.close()
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.01)
    assert order.intent.client_order_id == "lost-1"
    assert len(emu.requests_to("POST", "/v1/orders")) == 1
    assert len(emu.orders_with_identifier("lost-1")) == 1
    assert emu.requests_to("GET", "/v1/order")[0].query == "identifier=lost-1"


@pytest.mark.parametrize("status, body", [
    (500, {"error": {"name": "server_error", "message": "oops"}}),
    (201, {"uuid": "half-an-order"}),   # a "created" reply without the order's fields
], ids=["500-unprocessed", "201-garbled"])
def test_unsettled_outcome_raises_outcome_unknown_without_resending(client, emu, status, body):
    emu.inject(Fault("POST", "/v1/orders", "status", status=status, body=body))
    with pytest.raises(OutcomeUnknown) as caught:
        client.place_order(intent(Side.BUY, 0.01, BEST_ASK, "gone-1"))
    assert "not re-sent" in str(caught.value)
    assert len(emu.requests_to("POST", "/v1/orders")) == 1
    assert len(emu.requests_to("GET", "/v1/order")) >= 2
    assert emu.orders_with_identifier("gone-1") == []


# --- auth ------------------------------------------------------------------------

def test_wrong_secret_is_an_auth_error_that_leaks_nothing(emu, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-secret-do-not-print-1234"
    client = client_for(emu, secret_key=secret)
    with pytest.raises(AuthError) as caught:
        client.balances()
    client.close()
    assert (caught.value.code, caught.value.status) == ("jwt_verification", 401)
    token = emu.requests_to("GET", "/v1/accounts")[0].headers["authorization"].split()[1]
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert secret not in text and token not in text and emu.access_key not in text


def test_missing_keys_refuse_private_calls_locally(emu):
    client = client_for(emu, keys=False)
    with pytest.raises(AuthError, match="no API key configured"):
        client.balances()
    assert client.key_warnings() == []
    client.close()
    assert emu.requests_to("GET", "/v1/accounts") == []


def test_each_request_has_its_own_nonce_and_a_reused_one_is_refused(client, emu):
    client.balances()
    client.balances()
    tokens = [r.headers["authorization"] for r in emu.requests_to("GET", "/v1/accounts")]
    assert len(set(tokens)) == 2
    creds = Credentials(emu.access_key, emu.secret_key)
    replay = {"Authorization": creds.authorization(None)}
    first = requests.get(f"{emu.rest_url}/v1/accounts", headers=replay, timeout=2)
    again = requests.get(f"{emu.rest_url}/v1/accounts", headers=replay, timeout=2)
    assert first.status_code == 200
    assert again.status_code == 401 and again.json()["error"]["name"] == "nonce_used"


def test_query_hash_must_match_what_arrives(emu):
    creds = Credentials(emu.access_key, emu.secret_key)
    pairs = query_pairs({"market": BTC, "states[]": ["wait", "watch"]})
    url = f"{emu.rest_url}/v1/orders/open?{wire_query(pairs)}"
    good = requests.get(url, headers={"Authorization": creds.authorization(hash_text(pairs))}, timeout=2)
    assert good.status_code == 200
    other = hash_text(query_pairs({"market": BTC, "states[]": ["wait"]}))
    bad = requests.get(url, headers={"Authorization": creds.authorization(other)}, timeout=2)
    assert bad.status_code == 401 and bad.json()["error"]["name"] == "invalid_query_payload"
    body, text = json_body({"market": BTC, "side": "bid", "volume": "0.001", "price": "140000000",
                            "ord_type": "limit", "identifier": "hash-1"})
    forged = requests.post(f"{emu.rest_url}/v1/orders", data=body, timeout=2,
                           headers={"Authorization": creds.authorization(text.replace("0.001", "0.002")),
                                    "Content-Type": "application/json; charset=utf-8"})
    assert forged.status_code == 401 and forged.json()["error"]["name"] == "invalid_query_payload"
    assert emu.orders_with_identifier("hash-1") == []


def test_no_request_carries_an_origin_header(client, emu):
    client.market_rules([BTC])
    client.balances()
    assert emu.requests and all("origin" not in r.headers for r in emu.requests)


def test_key_warnings_report_an_expiring_key():
    with running_emulator(key_expires_in_days=5) as emu:
        client = client_for(emu)
        warnings = client.key_warnings()
        client.close()
    assert len(warnings) == 1 and "expires in" in warnings[0]


def test_key_warnings_are_empty_for_a_fresh_key(client):
    assert client.key_warnings() == []


# --- rate limits -----------------------------------------------------------------

def test_429_on_a_read_is_retried_after_waiting(client, emu):
    emu.inject(Fault("GET", "/v1/accounts", "status", status=429, body="Too many API requests."))
    assert client.balances()["KRW"].free == 10_000_000
    first, second = emu.request_times("GET", "/v1/accounts")
    assert second - first >= 0.9


def test_418_bans_and_nothing_more_is_sent(client, emu):
    emu.inject(Fault("GET", "/v1/accounts", "status", status=418,
                     body={"error": {"name": 418, "message": "blocked for 30 seconds"}}))
    with pytest.raises(Banned) as caught:
        client.balances()
    assert caught.value.retry_after_s == pytest.approx(30, abs=1)
    seen = len(emu.requests)
    for call in (lambda: client.order_book(BTC), client.balances,
                 lambda: client.place_order(intent(Side.BUY, 0.01, BEST_ASK, "after-ban"))):
        with pytest.raises(Banned):
            call()
    assert len(emu.requests) == seen


def test_a_burst_of_book_reads_stays_within_ten_per_second(client, emu):
    for _ in range(30):
        client.order_book(BTC)
    times = emu.request_times("GET", "/v1/orderbook")
    assert len(times) == 30
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 10
    assert emu.pace._strikes == 0   # the emulator never had to answer 429


# --- pieces ------------------------------------------------------------------------

def test_error_mapping_keeps_the_name():
    cases = [
        (401, '{"error":{"name":"nonce_used","message":"x"}}', AuthError, "nonce_used"),
        (403, '{"error":{"name":"out_of_scope","message":"x"}}', AuthError, "out_of_scope"),
        (403, '{"error":{"name":"market_offline","message":"x"}}', ExchangeUnavailable, "market_offline"),
        (400, '{"error":{"name":"invalid_price_ask","message":"x"}}', OrderRejected, "invalid_price_ask"),
        (400, '{"error":{"name":"create_bid_error","message":"x"}}', OrderRejected, "create_bid_error"),
        (429, "Too many API requests.", RateLimited, None),
        (503, "<html>maintenance</html>", ExchangeUnavailable, None),
    ]
    for status, text, kind, name in cases:
        error = error_for(status, text, {}, what="GET /v1/x")
        assert type(error) is kind and error.code == name and error.status == status
    banned = error_for(418, '{"error":{"name":418,"message":"blocked"}}', {"Retry-After": "12"}, what="GET /v1/x")
    assert isinstance(banned, Banned) and banned.retry_after_s == 12


def test_rate_limiter_honours_the_servers_remaining_count():
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(clock=lambda: clock[0], sleep=sleep, margin_s=0.0)
    assert parse_remaining("group=default; min=1800; sec=29") == ("default", 29)
    limiter.acquire("default")
    limiter.observe("default", "group=default; min=1800; sec=0")
    limiter.acquire("default")   # the server said none left: wait out its second
    assert slept == [pytest.approx(1.0)]
    assert limiter.too_many("order") == 1.0 and limiter.too_many("order") == 2.0
    limiter.succeeded("order")
    limiter.ban(30)
    with pytest.raises(Banned):
        limiter.acquire("orderbook")


def test_create_client_from_the_registered_spec(emu):
    spec = load_registry().exchange("upbit")
    client = spec.create_client({"rest_url": emu.rest_url, "ws_url": emu.ws_url, "timeout_s": 1.5},
                                {"api_key": emu.access_key, "secret_key": emu.secret_key})
    assert isinstance(client, UpbitClient) and client.name == "upbit"
    assert client.balances()["KRW"].free == 10_000_000
    client.close()
    public = spec.create_client({"rest_url": emu.rest_url}, {})
    assert public.order_book(BTC).best_bid == BEST_BID
    with pytest.raises(AuthError):
        public.balances()
    public.close()
    with pytest.raises(AuthError):
        spec.create_client({}, {"api_key": "only-one"})


def test_emulator_counts_per_group_and_answers_a_real_429(emu):
    url = f"{emu.rest_url}/v1/orderbook?markets=KRW-BTC"
    with requests.Session() as session:
        replies = [session.get(url, timeout=2) for _ in range(11)]
    assert parse_remaining(replies[0].headers["Remaining-Req"]) == ("orderbook", 9)
    if replies[-1].status_code == 429:   # eleven within one second: the usual case
        assert replies[-1].text == "Too many API requests."
        assert parse_remaining(replies[-1].headers["Remaining-Req"]) == ("orderbook", 0)
        assert error_for(429, replies[-1].text, replies[-1].headers, what="GET /v1/orderbook").code is None
    else:   # a very slow machine spread them over more than a second
        assert all(r.status_code == 200 for r in replies)
