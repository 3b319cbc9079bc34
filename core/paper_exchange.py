"""Simulated order execution for paper mode.

Orders behave like immediate-or-cancel limit orders: they sweep the current
book up to their limit price, pay the market's taker fee in the quote
currency, and whatever the book cannot fill is cancelled.  The exchange's
own rules and our balances are enforced, as a real exchange would.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

from arb.book import OrderBook
from arb.models import Fill, MarketRules, Order, OrderIntent, OrderStatus, Side

_DUST = 1e-12


class PaperExchange:
    def __init__(self, balances: Mapping[str, Mapping[str, float]],
                 rules: Mapping[tuple[str, str], MarketRules], books: Mapping[tuple[str, str], OrderBook]):
        self._balances = {ex: dict(assets) for ex, assets in balances.items()}
        self._rules = rules
        self._books = books
        self._ids = itertools.count(1)
        self.orders_sent = 0
        self.orders_filled = 0
        self.orders_rejected = 0
        self.orders_cancelled = 0

    def free_balances(self, exchange: str) -> dict[str, float]:
        return self._balances.setdefault(exchange, {})

    def active_orders(self) -> int:
        return 0  # immediate-or-cancel: nothing rests on a simulated book

    def submit(self, legs: Sequence[OrderIntent], now_ms: float) -> list[Order]:
        return [self._execute(intent, now_ms) for intent in legs]

    def _execute(self, intent: OrderIntent, now_ms: float) -> Order:
        self.orders_sent += 1
        order_id = f"paper-{next(self._ids)}"
        rules = self._rules[(intent.exchange, intent.symbol)]
        problem = rules.violation(intent.quantity, intent.limit_price)
        if problem:
            return self._reject(intent, order_id, problem)
        balances = self.free_balances(intent.exchange)
        book = self._books.get((intent.exchange, intent.symbol))
        if book is None:
            return self._reject(intent, order_id, "no market data for this symbol")
        fills = self._sweep(intent, book, rules.taker_fee, now_ms)
        qty = sum(f.quantity for f in fills)
        quote = sum(f.quantity * f.price for f in fills)
        fees = sum(f.fee for f in fills)
        if intent.side is Side.BUY:
            if balances.get(rules.quote, 0.0) < quote + fees:
                return self._reject(intent, order_id, f"insufficient {rules.quote} balance")
            balances[rules.quote] = balances.get(rules.quote, 0.0) - quote - fees
            balances[rules.base] = balances.get(rules.base, 0.0) + qty
        else:
            if balances.get(rules.base, 0.0) < qty:
                return self._reject(intent, order_id, f"insufficient {rules.base} balance")
            balances[rules.base] = balances.get(rules.base, 0.0) - qty
            balances[rules.quote] = balances.get(rules.quote, 0.0) + quote - fees
        filled_all = intent.quantity - qty <= _DUST * max(1.0, intent.quantity)
        if filled_all:
            self.orders_filled += 1
        else:
            self.orders_cancelled += 1
        status = OrderStatus.FILLED if filled_all else OrderStatus.CANCELED
        return Order(intent, order_id, status, fills, "" if filled_all else "book could not fill it all")

    @staticmethod
    def _sweep(intent: OrderIntent, book: OrderBook, fee_rate: float, now_ms: float) -> list[Fill]:
        buying = intent.side is Side.BUY
        levels = book.asks if buying else book.bids
        remaining = intent.quantity
        fills = []
        for price, size in levels:
            if (buying and price > intent.limit_price) or (not buying and price < intent.limit_price):
                break
            take = size if size < remaining else remaining
            fills.append(Fill(take, price, take * price * fee_rate, now_ms))
            remaining -= take
            if remaining <= _DUST:
                break
        return fills

    def _reject(self, intent: OrderIntent, order_id: str, reason: str) -> Order:
        self.orders_rejected += 1
        return Order(intent, order_id, OrderStatus.REJECTED, [], reason)
