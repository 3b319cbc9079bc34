"""Binance's JSON shapes as arb's values.

Binance writes every decimal as a string; they become floats only here,
at the edge, after which arb's rounding (MarketRules) keeps them honest.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping

from arb.book import OrderBook
from arb.errors import ExchangeError
from arb.models import Fill, MarketRules, Order, OrderIntent, OrderStatus, Side

from arb_binance.errors import EXCHANGE

log = logging.getLogger("arb.binance")

# Binance order states → ours.  An IOC order's unfilled remainder ends
# EXPIRED; for the engine that is a cancellation, with whatever did fill.
_STATUS = {
    "NEW": OrderStatus.NEW,
    "PENDING_NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.CANCELED,
    "EXPIRED_IN_MATCH": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
}


def market_rules(info: Mapping[str, Any], taker_fee: float) -> dict[str, MarketRules]:
    """Rules for every symbol in an ``/api/v3/exchangeInfo`` answer."""
    rules = {}
    for entry in info.get("symbols", []):
        symbol = entry["symbol"]
        if entry.get("status", "TRADING") != "TRADING":
            log.warning("binance %s status is %s: orders will be refused", symbol, entry.get("status"))
        filters = {f["filterType"]: f for f in entry.get("filters", [])}
        try:
            tick = float(filters["PRICE_FILTER"]["tickSize"])
            lot = filters["LOT_SIZE"]
        except KeyError as missing:
            raise ExchangeError(EXCHANGE, f"exchangeInfo for {symbol} lacks {missing}") from None
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        max_notional = float(notional.get("maxNotional") or 0) or math.inf  # 0 disables the rule
        rules[symbol] = MarketRules(
            exchange=EXCHANGE, symbol=symbol, base=entry["baseAsset"], quote=entry["quoteAsset"],
            tick_table=((0.0, tick),), lot_step=float(lot["stepSize"]), min_qty=float(lot["minQty"]),
            min_notional=float(notional.get("minNotional") or 0), taker_fee=taker_fee,
            max_notional=max_notional,
        )
    return rules


def levels(raw: Iterable[Iterable[str]]) -> list[tuple[float, float]]:
    return [(float(price), float(qty)) for price, qty, *_ in raw]


def book(symbol: str, data: Mapping[str, Any], received_ms: float) -> OrderBook:
    """A ``/api/v3/depth`` answer or a ``@depthN`` stream payload (same shape)."""
    return OrderBook(EXCHANGE, symbol, levels(data["bids"]), levels(data["asks"]), received_ms)


def _side(text: str) -> Side:
    return Side.BUY if text == "BUY" else Side.SELL


def intent_of(data: Mapping[str, Any]) -> OrderIntent:
    """The intent an order answer describes, for orders we did not place in
    this process (lookups, cancels, open orders).

    A MARKET order's ``price`` is zero; its intent carries the average fill
    price instead (zero while nothing has filled)."""
    client_id = data.get("origClientOrderId") or data.get("clientOrderId", "")
    qty = float(data.get("origQty") or 0)
    if data.get("type") == "MARKET":
        executed = float(data.get("executedQty") or 0)
        quote = float(data.get("cummulativeQuoteQty") or 0)
        price = quote / executed if executed > 0 and quote > 0 else 0.0
        return OrderIntent(EXCHANGE, data["symbol"], _side(data["side"]), qty, price, price, client_id, "market")
    price = float(data.get("price") or 0)
    return OrderIntent(EXCHANGE, data["symbol"], _side(data["side"]), qty, price, price, client_id)


def fee_in_quote(commission: float, asset: str, price: float, qty: float, rules: MarketRules) -> float:
    if asset == rules.quote:
        return commission
    if asset == rules.base:        # a BUY pays in the base asset it receives
        return commission * price
    # Paid in a third asset (BNB with the fee discount on): valuing it would
    # need that asset's price, which this answer does not carry, so this is
    # an estimate at the full taker rate (a little above what was charged).
    return rules.taker_fee * price * qty


def order(data: Mapping[str, Any], rules: MarketRules, intent: OrderIntent | None = None) -> Order:
    """An order answer: FULL new-order (with ``fills[]``), query, or cancel."""
    intent = intent or intent_of(data)
    executed = float(data.get("executedQty") or 0)
    raw_status = data.get("status", "")
    status = _STATUS.get(raw_status)
    if status is None:
        raise ExchangeError(EXCHANGE, f"order {intent.client_order_id}: unknown status {raw_status!r}")
    ts = float(data.get("transactTime") or data.get("updateTime") or data.get("time") or 0)
    if data.get("fills"):
        fills = [_fill(item, rules, ts) for item in data["fills"]]
    elif executed > 0:
        fills = [_aggregate_fill(data, executed, rules, ts)]
    else:
        fills = []
    reason = ""
    if raw_status == "EXPIRED" and data.get("type") == "MARKET":
        # A MARKET order has no price to miss: it expires only when the book runs out.
        reason = "market order ran out of liquidity" if executed > 0 else "expired unfilled: the book was empty"
    elif raw_status in ("EXPIRED", "EXPIRED_IN_MATCH"):
        reason = ("IOC remainder expired" if executed > 0
                  else "expired unfilled: nothing at the limit price")
    elif raw_status == "REJECTED":
        reason = "rejected by Binance"
    return Order(intent, str(data.get("orderId", "")), status, fills, reason)


def _fill(item: Mapping[str, Any], rules: MarketRules, ts: float) -> Fill:
    price, qty = float(item["price"]), float(item["qty"])
    fee = fee_in_quote(float(item.get("commission") or 0), item.get("commissionAsset", ""), price, qty, rules)
    return Fill(qty, price, fee, ts)


def _aggregate_fill(data: Mapping[str, Any], executed: float, rules: MarketRules, ts: float) -> Fill:
    # A query answer carries totals only, no commission: the average price
    # from cummulativeQuoteQty (negative = unknown on old orders, then the
    # limit price), and the fee estimated at the taker rate.
    quote = float(data.get("cummulativeQuoteQty") or -1)
    price = quote / executed if quote >= 0 else float(data.get("price") or 0)
    return Fill(executed, price, rules.taker_fee * price * executed, ts)
