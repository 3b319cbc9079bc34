"""Upbit JSON -> arb values (books, orders, fills, balances, market rules).

Quotation replies carry JSON numbers, Exchange replies decimal strings; both
go through :func:`num`.  Fees are always in KRW (the quote currency).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Mapping

from arb.book import Level, OrderBook
from arb.exchange import Balance
from arb.models import Fill, MarketRules, Order, OrderIntent, OrderStatus, Side

from arb_upbit.rules import KRW_TICK_TABLE, krw_market_rules

EXCHANGE = "upbit"


def num(value: Any, default: float = 0.0) -> float:
    if value is None or value == "":
        return default
    return float(value)


def ts_ms(created_at: str | None) -> float:
    """``2025-07-01T12:00:00+09:00`` -> epoch ms (0 when absent or unreadable)."""
    if not created_at:
        return 0.0
    try:
        return datetime.fromisoformat(created_at).timestamp() * 1000.0
    except ValueError:
        return 0.0


# --- order books -------------------------------------------------------------------

def parse_orderbook(item: Mapping[str, Any], received_ms: float) -> OrderBook:
    """One ``/v1/orderbook`` item or WebSocket ``orderbook`` message (DEFAULT format)."""
    units = item.get("orderbook_units") or []
    bids: list[Level] = []
    asks: list[Level] = []
    for unit in units:
        # Units pair the i-th bid with the i-th ask; a thin side shows zeros.
        bid_price, bid_size = num(unit.get("bid_price")), num(unit.get("bid_size"))
        ask_price, ask_size = num(unit.get("ask_price")), num(unit.get("ask_size"))
        if bid_price > 0 and bid_size > 0:
            bids.append((bid_price, bid_size))
        if ask_price > 0 and ask_size > 0:
            asks.append((ask_price, ask_size))
    bids.sort(key=lambda level: -level[0])
    asks.sort(key=lambda level: level[0])
    return OrderBook(EXCHANGE, str(item.get("market") or item.get("code")), bids, asks,
                     received_ms=received_ms, exchange_ts_ms=num(item.get("timestamp")))


# --- balances ----------------------------------------------------------------------

def parse_balances(items: list[Mapping[str, Any]]) -> dict[str, Balance]:
    return {str(a["currency"]): Balance(str(a["currency"]), num(a.get("balance")), num(a.get("locked")))
            for a in items}


# --- orders ------------------------------------------------------------------------

_SIDES = {"bid": Side.BUY, "ask": Side.SELL}
_STATES = {"wait", "watch", "done", "cancel"}


def _status(state: str, executed: float) -> OrderStatus:
    if state == "done":
        return OrderStatus.FILLED
    if state == "cancel":
        # A cancelled order may carry fills (IOC remainder, market buy refund).
        return OrderStatus.CANCELED
    return OrderStatus.PARTIALLY_FILLED if executed > 0 else OrderStatus.NEW


def _fills(item: Mapping[str, Any]) -> list[Fill]:
    paid_fee = num(item.get("paid_fee"))
    trades = item.get("trades") or []
    if trades:
        funds = [num(t.get("funds")) or num(t.get("price")) * num(t.get("volume")) for t in trades]
        total = sum(funds)
        # Upbit reports one fee per order; each fill gets its share by value.
        return [Fill(num(t.get("volume")), num(t.get("price")),
                     paid_fee * f / total if total else 0.0, ts_ms(t.get("created_at")))
                for t, f in zip(trades, funds)]
    executed = num(item.get("executed_volume"))
    if executed <= 0:
        return []
    # List endpoints carry no trades: one summary fill at the average price.
    executed_funds = num(item.get("executed_funds"))
    price = executed_funds / executed if executed_funds else num(item.get("price"))
    return [Fill(executed, price, paid_fee, ts_ms(item.get("created_at")))]


#: Upbit's market order types: ``price`` buys for a KRW sum, ``market`` sells a volume.
MARKET_ORD_TYPES = ("price", "market")


def _executed_funds(item: Mapping[str, Any]) -> float | None:
    """KRW traded so far, or None when the reply does not say."""
    trades = item.get("trades")
    if trades:
        return sum(num(t.get("funds")) or num(t.get("price")) * num(t.get("volume")) for t in trades)
    if item.get("executed_funds") is not None:
        return num(item.get("executed_funds"))
    return None


def intent_from(item: Mapping[str, Any]) -> OrderIntent:
    """The intent an order object describes, for orders we did not place in this process.

    A market order names no unit price (and a market buy no volume either):
    its rebuilt intent carries what was executed, at the average fill price
    (zero while nothing has filled).
    """
    side = _SIDES[str(item.get("side"))]
    identifier = str(item.get("identifier") or "")
    if item.get("ord_type") not in MARKET_ORD_TYPES:
        price = num(item.get("price"))
        return OrderIntent(EXCHANGE, str(item.get("market")), side, num(item.get("volume")), price, price,
                           identifier)
    executed = num(item.get("executed_volume"))
    quantity = num(item.get("volume")) if item.get("ord_type") == "market" else executed
    funds = _executed_funds(item)
    price = funds / executed if executed and funds else 0.0
    return OrderIntent(EXCHANGE, str(item.get("market")), side, quantity, price, price, identifier, "market")


def _unspent_below_a_tick(item: Mapping[str, Any], executed: float) -> float | None:
    """A cancelled market buy's unspent KRW, if it is less than one price tick; else None.

    Upbit truncates a market buy's volume to eight decimals and cancels the
    order to refund the KRW it could not spend, so a market buy that bought
    all it could usually ends ``cancel``, not ``done``.  Less than one tick
    left (at the average fill price) means it did fill; more means it was
    cut short (by self-trade prevention, or a cancel while it waited).
    """
    if item.get("ord_type") != "price" or executed <= 0:
        return None
    funds = _executed_funds(item)
    if funds is None:
        return None   # nothing says how much is left: do not claim a fill
    unspent = max(0.0, num(item.get("price")) - funds)
    market = str(item.get("market"))
    # Upbit's published KRW bands: a market's own tick (KRW-USDT) is not in the reply.
    tick = krw_market_rules(market).tick_for(funds / executed) if market.startswith("KRW-") else 0.0
    return unspent if unspent < tick or unspent == 0 else None


def parse_order(item: Mapping[str, Any], intent: OrderIntent | None = None) -> Order:
    """An Upbit order object; ``intent`` is ours when we placed it, else rebuilt from the reply."""
    state = item.get("state")
    if state not in _STATES or not item.get("uuid"):
        raise ValueError(f"not an Upbit order (state {state!r})")
    fills = _fills(item)
    executed = num(item.get("executed_volume"))
    status = _status(state, executed)
    reason = ""
    if state == "cancel":
        unspent = _unspent_below_a_tick(item, executed)
        if unspent is not None:
            status = OrderStatus.FILLED
            reason = f"market buy filled; Upbit refunded the {unspent:.8g} KRW it could not spend"
        else:
            reason = "cancelled after a partial fill" if executed > 0 else "cancelled without a fill"
    return Order(intent or intent_from(item), str(item.get("uuid")), status, fills, reason)


# --- market rules ------------------------------------------------------------------

def tick_table_for(symbol: str, tick_size: float, price: float | None) -> tuple[tuple[float, float], ...]:
    """KRW markets tick by price band; Upbit reports only the band the price is in now.

    We keep the published band table and put the reported tick into the
    current band, so a market with its own tick (KRW-USDT) is honoured and a
    price that later crosses a band still gets that band's tick.
    """
    if not symbol.startswith("KRW-") or price is None or price <= 0:
        return ((0.0, tick_size),)
    band = next(i for i, (floor_price, _) in enumerate(KRW_TICK_TABLE) if price >= floor_price)
    return tuple((floor_price, tick_size if i == band else tick)
                 for i, (floor_price, tick) in enumerate(KRW_TICK_TABLE))


def market_rules(symbol: str, *, tick_size: float | None, price: float | None,
                 chance: Mapping[str, Any] | None, fallback_fee: float) -> MarketRules:
    """Rules from ``/v1/orderbook/instruments`` (+ the price now) and ``/v1/orders/chance``."""
    rules = krw_market_rules(symbol, taker_fee=fallback_fee)
    if tick_size:
        rules = replace(rules, tick_table=tick_table_for(symbol, tick_size, price))
    if chance:
        market = chance.get("market") or {}
        bid = market.get("bid") or {}
        rules = replace(rules,
                        taker_fee=num(chance.get("bid_fee"), rules.taker_fee),
                        min_notional=num(bid.get("min_total"), rules.min_notional),
                        max_notional=num(market.get("max_total"), rules.max_notional))
    return rules
