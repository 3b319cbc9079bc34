"""Binance MARKET orders: the client's parameters, the emulator's matching and refusals.

The book and balances are emulated.py's, shared with test_binance_client.py:
bids 0.5 BTC at 50,000 and 1.0 at 49,990; asks 0.2 at 50,010 and 0.3 at
50,020; 100,000 USDT and 1 BTC.  The 0.1 % commission is taken from what is received (BTC on a
BUY, USDT on a SELL).  Every expected amount below is worked out by hand.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import pytest
import requests

from arb.errors import InsufficientFunds, OrderRejected
from arb.models import OrderIntent, OrderStatus, Side

from arb_binance.auth import Signer
from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator

from emulated import binance_client, binance_emulator, binance_make_client  # noqa: F401 (fixtures)

ORDER = "/api/v3/order"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def market(qty: float, worst_price: float, side: Side = Side.BUY, cid: str = "mkt-1") -> OrderIntent:
    return OrderIntent("binance", "BTCUSDT", side, qty, worst_price, worst_price, cid, "market")


def sent_params(emulator: BinanceEmulator) -> list[tuple[str, str]]:
    """The last new-order request's parameters, without the signing ones."""
    body = emulator.requests_to("POST", ORDER)[-1].body.decode()
    return [(k, v) for k, v in parse_qsl(body) if k not in ("recvWindow", "timestamp", "signature")]


def post_raw(emulator: BinanceEmulator, params: list[tuple[str, str]]) -> requests.Response:
    """A signed new-order request with exactly ``params``, bypassing the client."""
    signer = Signer(EMULATOR_API_KEY, EMULATOR_SECRET_KEY)
    signed = signer.sign((), params, int(time.time() * 1000))
    return requests.post(f"{emulator.rest_url}{ORDER}", data=signed.body,
                         headers={**FORM, **signer.headers}, timeout=5)


# --- through the client --------------------------------------------------------------


def test_market_buy_sends_quantity_only_and_walks_the_asks(client, emulator):
    order = client.place_order(market(0.3, 50020.0, cid="mbuy-1"))
    assert sent_params(emulator) == [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"),
                                     ("quantity", "0.30000"), ("newClientOrderId", "mbuy-1"),
                                     ("newOrderRespType", "FULL")]
    assert order.status is OrderStatus.FILLED and order.reason == ""
    assert [(f.quantity, f.price) for f in order.fills] == [(0.2, 50010.0), (0.1, 50020.0)]
    # 10,002 + 5,002 USDT; 0.0003 BTC commission, reported at its fill prices: 10.002 + 5.002.
    assert order.quote_amount == pytest.approx(15004.0) and order.fees == pytest.approx(15.004)
    balances = client.balances()
    assert balances["USDT"].free == pytest.approx(84996.0) and balances["BTC"].free == pytest.approx(1.2997)
    [placed] = emulator.orders_with_client_id("mbuy-1")
    assert (placed.type, placed.status, placed.as_json()["price"]) == ("MARKET", "FILLED", "0.00000000")


def test_market_quantity_is_rounded_down_to_the_lot_step(client, emulator):
    # Formatting alone would round 0.300009 up to 0.30001 and buy more than approved.
    client.place_order(market(0.300009, 50020.0))
    assert ("quantity", "0.30000") in sent_params(emulator)


def test_market_sell_walks_the_bids_and_pays_the_fee_in_quote(client):
    order = client.place_order(market(0.6, 49990.0, Side.SELL, "msell-1"))
    assert order.status is OrderStatus.FILLED
    assert [(f.quantity, f.price) for f in order.fills] == [(0.5, 50000.0), (0.1, 49990.0)]
    assert order.fees == pytest.approx(29.999)   # 0.1 % of 25,000 + 4,999
    balances = client.balances()
    assert balances["USDT"].free == pytest.approx(100000 + 29999 - 29.999)
    assert balances["BTC"].free == pytest.approx(0.4)


def test_market_order_beyond_the_book_expires_with_what_it_got(client):
    order = client.place_order(market(0.6, 50020.0, cid="mbuy-deep"))
    assert order.status is OrderStatus.CANCELED and order.reason == "market order ran out of liquidity"
    assert order.filled_qty == pytest.approx(0.5) and order.quote_amount == pytest.approx(10002 + 15006)
    balances = client.balances()
    assert balances["USDT"].free == pytest.approx(100000 - 25008) and balances["BTC"].free == pytest.approx(1.4995)


def test_a_market_order_found_by_lookup_carries_a_market_intent(client):
    client.place_order(market(0.3, 50020.0, cid="mbuy-2"))
    found = client.get_order("BTCUSDT", "mbuy-2")
    assert found.status is OrderStatus.FILLED and found.intent.order_type == "market"
    assert found.intent.quantity == pytest.approx(0.3)
    assert found.intent.limit_price == pytest.approx(15004 / 0.3)   # the average fill price


@pytest.mark.parametrize("order_intent, error, code, text", [
    (market(0.00001, 50010.0), OrderRejected, -1013, "Filter failure: NOTIONAL"),   # 0.50 USDT
    (market(1.2, 49990.0, Side.SELL), InsufficientFunds, -2010, "insufficient balance"),
], ids=["notional", "insufficient"])
def test_market_rejections_are_typed_and_keep_the_code(client, emulator, order_intent, error, code, text):
    with pytest.raises(error) as info:
        client.place_order(order_intent)
    assert info.value.code == code and text in info.value.exchange_message
    assert not emulator.market.orders


# --- the emulator refuses what Binance refuses ---------------------------------------


@pytest.mark.parametrize("extra, code, msg", [
    ([("quantity", "0.1"), ("timeInForce", "IOC")], -1106, "Parameter 'timeInForce' sent when not required."),
    ([("quantity", "0.1"), ("price", "50010.00")], -1106, "Parameter 'price' sent when not required."),
    ([("quantity", "0.1"), ("quoteOrderQty", "5000")], -1106,
     "Parameter 'quoteOrderQty' sent when not required."),
    ([], -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
], ids=["timeInForce", "price", "both-quantities", "no-quantity"])
def test_a_wrong_market_order_is_refused_with_binances_code(emulator, extra, code, msg):
    answer = post_raw(emulator, [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), *extra,
                                 ("newClientOrderId", "bad-1")])
    assert (answer.status_code, answer.json()) == (400, {"code": code, "msg": msg})
    assert emulator.orders_with_client_id("bad-1") == []
    assert emulator.market.balance("USDT") == [100000, 0]


def test_emulator_market_buy_by_quote_order_qty(emulator):
    # 12,000 USDT: 0.2 BTC at 50,010 (10,002), then 1,998 / 50,020 = 0.039944… → 0.03994 BTC
    # (1,997.7988); the 0.2012 USDT left cannot pay for one more 0.00001 step.
    answer = post_raw(emulator, [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"),
                                 ("quoteOrderQty", "12000"), ("newClientOrderId", "quote-1")])
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "FILLED" and body["type"] == "MARKET"
    assert (body["origQty"], body["executedQty"]) == ("0.23994000", "0.23994000")
    assert (body["cummulativeQuoteQty"], body["origQuoteOrderQty"]) == ("11999.79880000", "12000.00000000")
    assert float(emulator.market.balance("USDT")[0]) == pytest.approx(100000 - 11999.7988)


# --- an order is never sent twice ----------------------------------------------------


# A market order whose answer is lost, or that no lookup finds, is settled like
# a limit one: test_binance_client.py runs those cases for both.


def test_a_market_order_answered_minus_1007_after_processing_is_not_resent(client, emulator):
    emulator.inject_after_processing("POST", ORDER, 503, {
        "code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; "
                              "execution status unknown."})
    order = client.place_order(market(0.6, 49990.0, Side.SELL, "processed"))
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.6)
    assert len(emulator.requests_to("POST", ORDER)) == 1
    assert len(emulator.orders_with_client_id("processed")) == 1
    assert client.balances()["BTC"].free == pytest.approx(0.4)   # sold once, not twice
