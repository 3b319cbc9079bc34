"""Upbit market orders: the client's bodies, the emulator's matching and refusals, parsing.

Upbit buys at market by KRW spend (``ord_type`` ``price``, no volume) and
sells at market by volume (``ord_type`` ``market``, no price).  Every amount
below is worked out by hand from the emulator's default KRW-BTC book: asks
from 140,000,000 KRW up, bids from 139,999,000 down, 1,000 KRW apart, 0.05
BTC a level; fee 0.05 %; 10,000,000 KRW and 0.1 BTC to start.
"""

from __future__ import annotations

import pytest
import requests

from arb.errors import InsufficientFunds, OrderRejected
from arb.models import OrderIntent, OrderStatus, Side

from arb_upbit.auth import Credentials, json_body
from arb_upbit.orders import market_buy_spend
from arb_upbit.parse import parse_order
from arb_upbit.testing import client_for, running_emulator

from emulated import lose_upbit_order_answer, upbit_client, upbit_emu  # noqa: F401 (fixtures client, emu)

pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is")

BTC = "KRW-BTC"
BEST_ASK = 140_000_000.0
BEST_BID = 139_999_000.0


def market(side: Side, qty: float, worst_price: float, coid: str, symbol: str = BTC) -> OrderIntent:
    return OrderIntent("upbit", symbol, side, qty, worst_price, worst_price, coid, "market")


def post_raw(emu, body: dict[str, str]) -> requests.Response:
    """POST /v1/orders exactly as given, signed, bypassing the client's body builder."""
    data, hashed = json_body(body)
    creds = Credentials(emu.access_key, emu.secret_key)
    return requests.post(f"{emu.rest_url}/v1/orders", data=data, timeout=5,
                         headers={"Authorization": creds.authorization(hashed),
                                  "Content-Type": "application/json; charset=utf-8"})


# --- the intent --------------------------------------------------------------------

def test_order_type_defaults_to_limit_and_refuses_anything_else():
    positional = OrderIntent("upbit", BTC, Side.BUY, 0.01, BEST_ASK, BEST_ASK, "x-1")
    assert positional.order_type == "limit"
    with pytest.raises(ValueError, match="order_type"):
        OrderIntent("upbit", BTC, Side.BUY, 0.01, BEST_ASK, BEST_ASK, "x-2", "stop")


def test_the_spend_is_worked_out_on_decimals_and_rounded_down():
    # As floats 0.57 × 5,000,000 is 2,849,999.9999999995, which would floor a whole KRW short.
    assert market_buy_spend("0.57000000", 5_000_000.0) == "2850000"
    assert market_buy_spend("0.06000000", 140_001_000.0) == "8400060"
    assert market_buy_spend("0.00001234", 140_001_000.0) == "1727"   # 1727.61234 rounded down


# --- market buy ----------------------------------------------------------------------

def test_market_buy_spends_quantity_times_worst_price_and_reports_filled(client, emu):
    order = client.place_order(market(Side.BUY, 0.06, BEST_ASK + 1000, "mbuy-1"))
    # 0.06 × 140,001,000 = 8,400,060 KRW to spend, sent as price with no volume.
    sent = emu.requests_to("POST", "/v1/orders")[0].json()
    assert sent == {"market": BTC, "side": "bid", "price": "8400060", "ord_type": "price",
                    "identifier": "mbuy-1"}
    # 0.05 BTC at 140,000,000 (7,000,000 KRW), then 1,400,060 / 140,001,000 = 0.0100003571…
    # cut to eight decimals: 0.01000035 BTC for 1,400,059.00035 KRW; 0.99965 KRW is refunded.
    assert order.filled_qty == pytest.approx(0.06000035)
    spent = 7_000_000 + 1_400_059.00035
    assert order.quote_amount == pytest.approx(spent)
    assert order.fees == pytest.approx(spent * 0.0005)   # 4,200.029500175
    # Upbit ends the order "cancel" because of the refund; less than a tick left is a fill.
    [on_exchange] = emu.orders_with_identifier("mbuy-1")
    assert on_exchange["state"] == "cancel" and on_exchange["volume"] is None
    assert order.status is OrderStatus.FILLED and "0.99965 KRW" in order.reason
    assert order.intent.order_type == "market" and order.intent.quantity == 0.06
    assert emu.balance("KRW") == (pytest.approx(10_000_000 - spent - spent * 0.0005), 0.0)   # 1,595,740.970149825
    assert emu.balance("BTC") == (pytest.approx(0.16000035), 0.0)
    detailed = client.get_order(BTC, "mbuy-1")   # GET /v1/order carries the trades
    assert [(f.quantity, f.price) for f in detailed.fills] == [(0.05, BEST_ASK), (0.01000035, BEST_ASK + 1000)]
    assert detailed.status is OrderStatus.FILLED and detailed.intent.order_type == "market"


def test_market_buy_that_spends_its_sum_exactly_ends_done():
    with running_emulator() as emu:   # KRW-ETH: asks from 5,000,000 KRW, 1 ETH a level
        client = client_for(emu)
        order = client.place_order(market(Side.BUY, 0.57, 5_000_000.0, "mbuy-eth", "KRW-ETH"))
        client.close()
        assert emu.requests_to("POST", "/v1/orders")[0].json()["price"] == "2850000"
        assert emu.orders_with_identifier("mbuy-eth")[0]["state"] == "done"
        assert emu.balance("KRW") == (pytest.approx(10_000_000 - 2_850_000 - 1_425), 0.0)
        assert emu.balance("ETH") == (pytest.approx(1.57), 0.0)
    assert order.status is OrderStatus.FILLED and order.reason == ""
    assert order.filled_qty == pytest.approx(0.57) and order.avg_price == 5_000_000


# A market buy held before matching is followed like a limit order: test_upbit_client.py.


def test_a_market_buy_cancelled_while_waiting_is_cancelled_without_fills(emu):
    client = client_for(emu, settle_s=0.1)
    emu.hold_orders(1000)
    order = client.place_order(market(Side.BUY, 0.01, BEST_ASK, "mbuy-rest"))
    assert order.status is OrderStatus.NEW
    assert emu.balance("KRW")[1] == pytest.approx(1_400_000 * 1.0005)   # the spend and its fee are locked
    cancelled = client.cancel_order(BTC, "mbuy-rest")
    client.close()
    assert cancelled.status is OrderStatus.CANCELED and cancelled.fills == []
    assert emu.balance("KRW") == (pytest.approx(10_000_000), 0.0)


# --- market sell ---------------------------------------------------------------------

def test_market_sell_sends_volume_only_and_walks_the_bids(client, emu):
    order = client.place_order(market(Side.SELL, 0.07, BEST_BID - 1000, "msell-1"))
    sent = emu.requests_to("POST", "/v1/orders")[0].json()
    assert sent == {"market": BTC, "side": "ask", "volume": "0.07000000", "ord_type": "market",
                    "identifier": "msell-1"}
    assert order.status is OrderStatus.FILLED and order.reason == ""
    proceeds = 0.05 * BEST_BID + 0.02 * (BEST_BID - 1000)   # 6,999,950 + 2,799,960 = 9,799,910
    assert order.filled_qty == pytest.approx(0.07) and order.quote_amount == pytest.approx(proceeds)
    assert order.fees == pytest.approx(proceeds * 0.0005)
    detailed = client.get_order(BTC, "msell-1")
    assert [(f.quantity, f.price) for f in detailed.fills] == [(0.05, BEST_BID), (0.02, BEST_BID - 1000)]
    assert emu.balance("KRW") == (pytest.approx(10_000_000 + proceeds * 0.9995), 0.0)   # 19,795,010.045
    assert emu.balance("BTC") == (pytest.approx(0.03), 0.0)


def test_market_sell_volume_is_rounded_down_to_eight_decimals(client, emu):
    client.place_order(market(Side.SELL, 0.0500000099, BEST_BID, "msell-2"))
    assert emu.requests_to("POST", "/v1/orders")[0].json()["volume"] == "0.05000000"


@pytest.mark.parametrize("order, error, name", [
    (market(Side.BUY, 0.00003, BEST_ASK, "small-mb"), OrderRejected, "under_min_total_bid"),    # 4,200 KRW
    (market(Side.SELL, 0.00003, BEST_BID, "small-ms"), OrderRejected, "under_min_total_ask"),
    (market(Side.BUY, 0.1, BEST_ASK, "big-mb"), InsufficientFunds, "insufficient_funds_bid"),   # 14,000,000 KRW
    (market(Side.SELL, 0.5, BEST_BID, "big-ms"), InsufficientFunds, "insufficient_funds_ask"),
])
def test_market_orders_are_refused_like_limit_orders(client, emu, order, error, name):
    with pytest.raises(error) as caught:
        client.place_order(order)
    assert caught.value.code == name and caught.value.status == 400
    assert emu.balance("KRW") == (10_000_000, 0.0) and emu.balance("BTC") == (pytest.approx(0.1), 0.0)


# --- the emulator refuses what Upbit refuses -----------------------------------------

@pytest.mark.parametrize("body, name", [
    ({"side": "bid", "ord_type": "price", "price": "10000", "volume": "0.001"}, "create_bid_error"),
    ({"side": "bid", "ord_type": "price"}, "create_bid_error"),
    ({"side": "ask", "ord_type": "market", "volume": "0.001", "price": "140000000"}, "create_ask_error"),
    ({"side": "ask", "ord_type": "market"}, "create_ask_error"),
    ({"side": "ask", "ord_type": "price", "price": "10000"}, "create_ask_error"),
    ({"side": "bid", "ord_type": "market", "volume": "0.001"}, "create_bid_error"),
], ids=["bid-with-volume", "bid-without-price", "ask-with-price", "ask-without-volume",
        "price-type-on-ask", "market-type-on-bid"])
def test_a_wrong_market_order_combination_is_a_400_with_upbits_name(emu, body, name):
    answer = post_raw(emu, {"market": BTC, **body, "identifier": "bad-1"})
    assert answer.status_code == 400 and answer.json()["error"]["name"] == name
    assert emu.orders_with_identifier("bad-1") == []
    assert emu.balance("KRW") == (10_000_000, 0.0)


def test_a_market_buy_beyond_the_visible_asks_is_refused(emu):
    # 15 levels × 0.05 BTC ≈ 105,005,250 KRW of asks; more than that is refused up front.
    with emu.lock:
        emu.market.account("KRW").balance += 200_000_000
    answer = post_raw(emu, {"market": BTC, "side": "bid", "ord_type": "price", "price": "110000000",
                            "identifier": "too-deep"})
    assert answer.status_code == 400 and answer.json()["error"]["name"] == "create_bid_error"
    assert emu.orders_with_identifier("too-deep") == []


# --- never a duplicate order ---------------------------------------------------------

@lose_upbit_order_answer
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_a_lost_market_order_answer_is_settled_by_lookup_never_by_resending(emu, lose_answer, side):
    client = client_for(emu, timeout_s=0.3)
    lose_answer(emu)
    order = client.place_order(market(side, 0.01, BEST_ASK if side is Side.BUY else BEST_BID, "lost-m"))
    client.close()
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.01)
    assert order.intent.order_type == "market" and order.intent.client_order_id == "lost-m"
    assert len(emu.requests_to("POST", "/v1/orders")) == 1
    assert len(emu.orders_with_identifier("lost-m")) == 1
    assert emu.requests_to("GET", "/v1/order")[0].query == "identifier=lost-m"


# --- parsing -----------------------------------------------------------------------

def _market_buy(state: str, spend: str, trades: list[tuple[str, str]], **extra) -> dict:
    """A GET /v1/order reply for a market buy of ``spend`` KRW with (price, volume) trades."""
    volume = sum(float(v) for _, v in trades)
    return {"uuid": "u-1", "side": "bid", "ord_type": "price", "price": spend, "state": state,
            "market": BTC, "created_at": "2025-07-01T12:00:00+09:00", "volume": None,
            "remaining_volume": None, "executed_volume": f"{volume:.8f}", "paid_fee": "0",
            "identifier": "p-1",
            "trades": [{"price": p, "volume": v, "funds": str(float(p) * float(v)),
                        "created_at": "2025-07-01T12:00:00+09:00"} for p, v in trades], **extra}


def test_a_cancelled_market_buy_with_a_tick_or_more_unspent_is_cancelled_with_its_fills():
    # 1,000 KRW (one tick at 140,000,000) was not spent: something cut the order short.
    order = parse_order(_market_buy("cancel", "7001000", [("140000000", "0.05")]))
    assert order.status is OrderStatus.CANCELED and order.filled_qty == pytest.approx(0.05)
    assert order.reason == "cancelled after a partial fill"


def test_a_cancelled_market_buy_with_less_than_a_tick_unspent_is_filled():
    order = parse_order(_market_buy("cancel", "7000999", [("140000000", "0.05")]))
    assert order.status is OrderStatus.FILLED and "999 KRW" in order.reason


def test_a_cancelled_market_buy_that_does_not_say_what_it_spent_is_not_called_filled():
    item = _market_buy("cancel", "7000001", [("140000000", "0.05")])
    del item["trades"]   # a cancel reply: neither trades nor executed_funds
    assert parse_order(item).status is OrderStatus.CANCELED


def test_a_market_order_found_by_lookup_rebuilds_a_market_intent():
    order = parse_order(_market_buy("done", "7000000", [("140000000", "0.05")]))
    intent = order.intent
    assert (intent.order_type, intent.side, intent.client_order_id) == ("market", Side.BUY, "p-1")
    assert intent.quantity == pytest.approx(0.05) and intent.limit_price == pytest.approx(BEST_ASK)
    sell = parse_order({"uuid": "u-2", "side": "ask", "ord_type": "market", "price": None, "state": "wait",
                        "market": BTC, "volume": "0.02", "executed_volume": "0"})
    assert sell.status is OrderStatus.NEW
    assert (sell.intent.order_type, sell.intent.quantity, sell.intent.limit_price) == ("market", 0.02, 0.0)
