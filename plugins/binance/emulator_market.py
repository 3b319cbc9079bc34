"""The emulated Binance spot market: books, balances, LIMIT and MARKET matching.

Decimal throughout, as the exchange works on exact decimals: a test that
checks balances to the last satoshi must not trip over float noise.  Errors
are raised as :class:`ApiError` carrying Binance's HTTP status, code and
message, so the HTTP layer only has to write them out.

A MARKET order takes ``quantity`` (base) or ``quoteOrderQty`` (quote to
spend or receive), never both, and no ``price`` or ``timeInForce`` (-1106).
It walks the book from the best level; what the book cannot fill expires.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from arb_binance.rules import KNOWN_FILTERS, MIN_NOTIONAL_USDT, TAKER_FEE

D = Decimal
PLACES = D("0.00000001")
COMMISSION = D(str(TAKER_FEE))
Level = tuple[float, float]
DEFAULT_BALANCES = {"USDT": "10000", "BTC": "1", "ETH": "10", "XRP": "10000", "BNB": "0"}


def fmt(value: Decimal) -> str:
    """Binance writes decimals with 8 places: ``"0.01000000"``."""
    return format(value.quantize(PLACES, rounding=ROUND_DOWN), "f")   # str() would write zero as 0E-8


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _missing(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


@dataclass(frozen=True)
class SymbolInfo:
    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_notional: Decimal = D(str(MIN_NOTIONAL_USDT))
    max_notional: Decimal = D("9000000")
    min_price: Decimal = D("0.01")
    max_price: Decimal = D("1000000")
    max_qty: Decimal = D("9000")

    @classmethod
    def usdt(cls, symbol: str) -> SymbolInfo:
        tick, step = KNOWN_FILTERS[symbol]
        tick_d = D(str(tick))
        return cls(symbol, symbol[:-4], "USDT", tick_d, D(str(step)), min_price=tick_d,
                   max_qty=D("9000000") if step >= 1 else D("9000"))

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(self.min_price), "maxPrice": fmt(self.max_price),
             "tickSize": fmt(self.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(self.step), "maxQty": fmt(self.max_qty),
             "stepSize": fmt(self.step)},
            {"filterType": "NOTIONAL", "minNotional": fmt(self.min_notional), "applyMinToMarket": True,
             "maxNotional": fmt(self.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5},
        ]


@dataclass
class EmulatedOrder:
    order_id: int
    client_id: str
    info: SymbolInfo
    side: str
    tif: str
    price: Decimal
    qty: Decimal
    time_ms: int
    executed: Decimal = D(0)
    quote: Decimal = D(0)
    status: str = "NEW"
    update_ms: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    type: str = "LIMIT"
    quote_order_qty: Decimal = D(0)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def as_json(self) -> dict[str, Any]:
        """The query-order shape (GET /api/v3/order, openOrders)."""
        return {
            "symbol": self.info.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_id, "price": fmt(self.price), "origQty": fmt(self.qty),
            "executedQty": fmt(self.executed), "cummulativeQuoteQty": fmt(self.quote),
            "status": self.status, "timeInForce": self.tif, "type": self.type, "side": self.side,
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms, "isWorking": True, "workingTime": self.time_ms,
            "origQuoteOrderQty": fmt(self.quote_order_qty), "selfTradePreventionMode": "EXPIRE_MAKER",
        }


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    text = params.get(name)
    if not text:
        raise _missing(name)
    try:
        value = D(text)
    except InvalidOperation:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if value.as_tuple().exponent < -8:
        raise ApiError(400, -1111, f"Parameter '{name}' has too much precision.")
    return value


def _walk(levels: list[list[Decimal]], step: Decimal, qty: Decimal | None,
          quote_qty: Decimal | None) -> tuple[list[tuple[Decimal, Decimal]], bool]:
    """The fills a MARKET order would get from ``levels`` (best first), and
    whether the book ran out before the order was done.

    With ``quote_qty`` each level takes the whole lot steps the quote left
    still pays for; what is left below one step stays unspent.
    """
    plan: list[tuple[Decimal, Decimal]] = []
    left = qty if qty is not None else quote_qty
    for price, available in levels:
        if qty is not None:
            take = min(available, left)
        else:
            take = min(available, (left / price / step).to_integral_value(rounding=ROUND_DOWN) * step)
        if take <= 0:
            return plan, False
        plan.append((price, take))
        left -= take if qty is not None else take * price
        if qty is not None and left == 0:
            return plan, False
    if quote_qty is not None and plan and left < plan[-1][0] * step:
        return plan, False   # the last level took all the quote could still buy
    return plan, True


class EmulatedMarket:
    def __init__(self, symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT", "XRPUSDT"),
                 balances: Mapping[str, str | float] | None = None):
        self.symbols = {s: SymbolInfo.usdt(s) for s in symbols}
        # symbol -> (bids best first, asks best first) of [price, quantity]
        self.books: dict[str, tuple[list[list[Decimal]], list[list[Decimal]]]] = {
            s: ([], []) for s in self.symbols}
        self.update_ids = dict.fromkeys(self.symbols, 1000)
        self.balances: dict[str, list[Decimal]] = {}
        for asset, amount in (balances or DEFAULT_BALANCES).items():
            self.balances[asset] = [D(str(amount)), D(0)]
        self.orders: list[EmulatedOrder] = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)

    def info(self, symbol: str | None) -> SymbolInfo:
        if not symbol:
            raise _missing("symbol")
        if symbol not in self.symbols:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.symbols[symbol]

    # --- books -----------------------------------------------------------------

    def set_book(self, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.info(symbol)
        self.books[symbol] = ([[D(str(p)), D(str(q))] for p, q in bids],
                              [[D(str(p)), D(str(q))] for p, q in asks])
        self.update_ids[symbol] += 1

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        bids, asks = self.books[self.info(symbol).symbol]
        return {"lastUpdateId": self.update_ids[symbol],
                "bids": [[fmt(p), fmt(q)] for p, q in bids[:limit]],
                "asks": [[fmt(p), fmt(q)] for p, q in asks[:limit]]}

    # --- balances --------------------------------------------------------------

    def balance(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [D(0), D(0)])

    def account_balances(self, omit_zero: bool) -> list[dict[str, str]]:
        return [{"asset": a, "free": fmt(free), "locked": fmt(locked)}
                for a, (free, locked) in self.balances.items() if not (omit_zero and free == 0 and locked == 0)]

    # --- orders ----------------------------------------------------------------

    def new_order(self, params: Mapping[str, str], now_ms: int) -> EmulatedOrder:
        """Validate like Binance (parameters, filters, balance), then match."""
        info = self.info(params.get("symbol"))
        side = params.get("side") or ""
        if side not in ("BUY", "SELL"):
            raise _missing("side") if not side else \
                ApiError(400, -1100, "Illegal characters found in parameter 'side'.")
        kind = params.get("type") or ""
        if kind == "MARKET":
            return self._new_market_order(info, side, params, now_ms)
        if kind != "LIMIT":
            raise ApiError(400, -1116, "Invalid orderType.")  # only LIMIT and MARKET are emulated
        tif = params.get("timeInForce")
        if not tif:
            raise _missing("timeInForce")
        if tif not in ("GTC", "IOC", "FOK"):
            raise ApiError(400, -1115, "Invalid timeInForce.")
        qty, price = _decimal(params, "quantity"), _decimal(params, "price")
        if price < info.min_price or price > info.max_price or price % info.tick:
            raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty < info.step or qty > info.max_qty or qty % info.step:
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        if not info.min_notional <= qty * price <= info.max_notional:
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")
        client_id = self._client_id(params)
        pay_asset, pay_amount = (info.quote, qty * price) if side == "BUY" else (info.base, qty)
        if self.balance(pay_asset)[0] < pay_amount:
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")
        order = EmulatedOrder(next(self._order_ids), client_id, info, side, tif, price, qty, now_ms)
        self._match(order)
        self.orders.append(order)
        return order

    def _client_id(self, params: Mapping[str, str]) -> str:
        client_id = params.get("newClientOrderId") or f"emu{secrets.token_hex(8)}"
        if any(o.client_id == client_id and o.is_open for o in self.orders):
            raise ApiError(400, -2010, "Duplicate order sent.")
        return client_id

    def _new_market_order(self, info: SymbolInfo, side: str, params: Mapping[str, str],
                          now_ms: int) -> EmulatedOrder:
        for name in ("timeInForce", "price"):
            if params.get(name):
                raise ApiError(400, -1106, f"Parameter '{name}' sent when not required.")
        if params.get("quantity") and params.get("quoteOrderQty"):
            raise ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
        if not params.get("quantity") and not params.get("quoteOrderQty"):
            raise ApiError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        bids, asks = self.books[info.symbol]
        levels = asks if side == "BUY" else bids
        if params.get("quantity"):
            qty, quote_qty = _decimal(params, "quantity"), None
            if qty < info.step or qty > info.max_qty or qty % info.step:
                raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
            # Binance values a MARKET order at its recent average price; the
            # emulator has no trade history, so it uses the first level it hits.
            if levels and qty * levels[0][0] < info.min_notional:
                raise ApiError(400, -1013, "Filter failure: NOTIONAL")
        else:
            qty, quote_qty = None, _decimal(params, "quoteOrderQty")
            if quote_qty < info.min_notional:
                raise ApiError(400, -1013, "Filter failure: NOTIONAL")
        client_id = self._client_id(params)
        plan, book_short = _walk(levels, info.step, qty, quote_qty)
        filled = sum((take for _, take in plan), D(0))
        cost = sum((price * take for price, take in plan), D(0))
        # What it names must be there; a BUY by quantity must pay what the book will charge.
        if side == "BUY":
            pay_asset, pay_amount = info.quote, cost if quote_qty is None else quote_qty
        else:
            pay_asset, pay_amount = info.base, filled if qty is None else qty
        if self.balance(pay_asset)[0] < pay_amount:
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")
        # A quoteOrderQty order reports the quantity it came to as its origQty.
        order = EmulatedOrder(next(self._order_ids), client_id, info, side, "GTC", D(0),
                              filled if qty is None else qty, now_ms, type="MARKET",
                              quote_order_qty=quote_qty or D(0))
        for price, take in plan:   # the plan runs down the levels from the top
            self._trade(order, price, take)
            levels[0][1] -= take
            if levels[0][1] == 0:
                levels.pop(0)
        if order.executed:
            self.update_ids[info.symbol] += 1
        order.status = "EXPIRED" if book_short or not order.executed else "FILLED"
        self.orders.append(order)
        return order

    def _match(self, order: EmulatedOrder) -> None:
        info = order.info
        bids, asks = self.books[info.symbol]
        levels = asks if order.side == "BUY" else bids
        crosses = (lambda px: px <= order.price) if order.side == "BUY" else (lambda px: px >= order.price)
        if order.tif == "FOK" and sum(q for p, q in levels if crosses(p)) < order.qty:
            order.status = "EXPIRED"
            return
        remaining = order.qty
        while levels and remaining > 0 and crosses(levels[0][0]):
            price, available = levels[0]
            take = min(available, remaining)
            self._trade(order, price, take)
            remaining -= take
            levels[0][1] -= take
            if levels[0][1] == 0:
                levels.pop(0)
        if order.executed:
            self.update_ids[info.symbol] += 1
        if remaining == 0:
            order.status = "FILLED"
        elif order.tif == "GTC":
            # Rests, locking what it may still spend.  Resting orders are not
            # matched against later book changes: tests move books directly.
            order.status = "PARTIALLY_FILLED" if order.executed else "NEW"
            asset, amount = self._reserved(order, remaining)
            self._move(asset, -amount, +amount)
        else:
            order.status = "EXPIRED"

    def _trade(self, order: EmulatedOrder, price: Decimal, qty: Decimal) -> None:
        info = order.info
        quote = price * qty
        # The fee is taken from what is received: base on a BUY, quote on a SELL.
        if order.side == "BUY":
            commission, commission_asset = (qty * COMMISSION).quantize(PLACES), info.base
            self._move(info.quote, -quote, 0)
            self._move(info.base, qty - commission, 0)
        else:
            commission, commission_asset = (quote * COMMISSION).quantize(PLACES), info.quote
            self._move(info.base, -qty, 0)
            self._move(info.quote, quote - commission, 0)
        order.executed += qty
        order.quote += quote
        order.fills.append({"price": fmt(price), "qty": fmt(qty), "commission": fmt(commission),
                            "commissionAsset": commission_asset, "tradeId": next(self._trade_ids)})

    @staticmethod
    def _reserved(order: EmulatedOrder, remaining: Decimal) -> tuple[str, Decimal]:
        """What a resting order keeps locked for its unfilled ``remaining``."""
        if order.side == "BUY":
            return order.info.quote, remaining * order.price
        return order.info.base, remaining

    def _move(self, asset: str, free: Decimal, locked: Decimal) -> None:
        entry = self.balance(asset)
        entry[0] += free
        entry[1] += locked

    def find(self, symbol: str | None, params: Mapping[str, str]) -> EmulatedOrder | None:
        info = self.info(symbol)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise ApiError(400, -1102,
                           "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        for order in reversed(self.orders):   # a reused client id finds the latest
            if order.info is info and (str(order.order_id) == order_id or order.client_id == client_id):
                return order
        return None

    def cancel(self, symbol: str | None, params: Mapping[str, str], now_ms: int) -> EmulatedOrder:
        order = self.find(symbol, params)
        if order is None or not order.is_open:
            raise ApiError(400, -2011, "Unknown order sent.")
        asset, amount = self._reserved(order, order.qty - order.executed)
        self._move(asset, +amount, -amount)
        order.status, order.update_ms = "CANCELED", now_ms
        return order

    def open_orders(self, symbol: str | None) -> list[EmulatedOrder]:
        info = self.info(symbol) if symbol else None
        return [o for o in self.orders if o.is_open and (info is None or o.info is info)]
