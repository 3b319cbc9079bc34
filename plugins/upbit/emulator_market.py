"""The exchange side of the Upbit emulator: taking orders and matching them.

Pure state, no HTTP: :mod:`arb_upbit.emulator` calls it under its lock; the
accounts, books and orders it changes are in :mod:`arb_upbit.emulator_records`.
Amounts are Decimals as on the exchange, rendered as decimal strings the way
the Exchange API does.  Orders match against the visible book and take
liquidity out of it; fees (0.05 %) are charged in KRW: bids reserve
``price × volume × (1 + fee)`` up front, asks pay out of the proceeds.

Besides ``limit`` orders, Upbit's two market types: ``price`` (a bid naming
the KRW to spend in ``price``, no volume) and ``market`` (an ask naming its
``volume``, no price).  A market bid buys level by level with volumes cut to
eight decimals and refunds what it could not spend, ending ``cancel`` unless
the sum was spent exactly (then ``done``), as Upbit's FAQ describes.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, Iterable

from arb_upbit.emulator_records import KST, ZERO, Account, Book, EmuError, EmuOrder, dec, krw_tick, ladder, text
from arb_upbit.rules import MAX_ORDER_KRW, MIN_ORDER_KRW, TAKER_FEE

# The emulator's HTTP side imports the records' names from here, with the market.
__all__ = ["KST", "Account", "Book", "EmuError", "EmuOrder", "UpbitMarket", "dec", "krw_tick", "ladder", "text"]

VOLUME_PLACES = Decimal("1e-8")
#: Upbit refuses a market order larger than what this many book levels hold.
MARKET_DEPTH_LEVELS = 30


class UpbitMarket:
    def __init__(self, balances: dict[str, float], fee_rate: float = TAKER_FEE,
                 min_total: float = MIN_ORDER_KRW, tick_overrides: dict[str, float] | None = None):
        self.fee = dec(fee_rate)
        self.min_total = dec(min_total)
        self.max_total = dec(MAX_ORDER_KRW)
        self.tick_overrides = {m: dec(t) for m, t in (tick_overrides or {}).items()}
        self.accounts: dict[str, Account] = {c: Account(dec(v)) for c, v in balances.items()}
        self.books: dict[str, Book] = {}
        self.orders: dict[str, EmuOrder] = {}
        self.by_identifier: dict[str, str] = {}
        self.used_identifiers: set[str] = set()
        self.hold_queries = 0
        self.offline: set[str] = set()
        self.changed: set[str] = set()   # markets whose book changed since the last publish

    # --- books -------------------------------------------------------------------

    def tick(self, market: str, price: Decimal) -> Decimal:
        override = self.tick_overrides.get(market)
        return override if override is not None else krw_tick(price)

    def set_book(self, market: str, bids: Iterable, asks: Iterable) -> None:
        book = Book(sorted(([dec(p), dec(s)] for p, s in bids), key=lambda lv: -lv[0]),
                    sorted(([dec(p), dec(s)] for p, s in asks), key=lambda lv: lv[0]))
        old = self.books.get(market)
        self.books[market] = book
        self.touch(market, old.timestamp if old else 0)

    def touch(self, market: str, previous: int | None = None) -> None:
        book = self.books[market]
        last = book.timestamp if previous is None else previous
        book.timestamp = max(int(time.time() * 1000), last + 1)  # strictly increasing per market
        self.changed.add(market)

    def move(self, market: str, bps: float) -> None:
        """Shift the whole book by ``bps`` basis points, snapped to the tick."""
        book = self.books[market]
        factor = 1 + dec(bps) / 10_000

        def snap(price: Decimal) -> Decimal:
            moved = price * factor
            tick = self.tick(market, moved)
            return (moved / tick).to_integral_value() * tick

        self.set_book(market, [(snap(p), s) for p, s in book.bids], [(snap(p), s) for p, s in book.asks])

    def units(self, market: str, count: int) -> list[dict[str, float]]:
        book = self.books[market]
        rows = max(len(book.bids), len(book.asks))
        units = []
        for i in range(min(count, rows)):
            ask = book.asks[i] if i < len(book.asks) else [ZERO, ZERO]
            bid = book.bids[i] if i < len(book.bids) else [ZERO, ZERO]
            units.append({"ask_price": float(ask[0]), "bid_price": float(bid[0]),
                          "ask_size": float(ask[1]), "bid_size": float(bid[1])})
        return units

    # --- orders ------------------------------------------------------------------

    def account(self, currency: str) -> Account:
        return self.accounts.setdefault(currency, Account())

    def create(self, body: dict[str, Any]) -> EmuOrder:
        identifier = body.get("identifier")
        if identifier is not None:
            # Upbit refuses an identifier used before, even by a request that failed.
            if identifier in self.used_identifiers:
                raise EmuError(400, "duplicated_identifier", "identifier already used")
            self.used_identifiers.add(identifier)
        market, side = body.get("market"), body.get("side")
        if market not in self.books:
            raise EmuError(404, "notfoundmarket", "market not found")
        if market in self.offline:
            raise EmuError(403, "market_offline", "market is offline")
        ord_type = body.get("ord_type")
        if side not in ("bid", "ask") or ord_type not in ("limit", "price", "market"):
            raise EmuError(400, "validation_error", "emulator supports limit, price and market orders only")
        tif = body.get("time_in_force")
        if tif not in (None, "ioc", "fok"):
            raise EmuError(400, "invalid_time_in_force", "time_in_force must be ioc or fok")
        if ord_type == "limit":
            price, volume, total = self._limit_terms(body, market, side)
        else:
            price, volume, total = self._market_terms(body, market, side, ord_type)
        if total < self.min_total:
            raise EmuError(400, f"under_min_total_{side}", f"minimum order is {text(self.min_total)} KRW")
        if total > self.max_total:
            raise EmuError(400, f"over_krw_funds_{side}", "maximum order is 1,000,000,000 KRW")
        quote, base = market.split("-", 1)
        reserved_fee = total * self.fee if side == "bid" else ZERO
        need = total + reserved_fee if side == "bid" else volume
        wallet = self.account(quote if side == "bid" else base)
        if wallet.balance < need:
            raise EmuError(400, f"insufficient_funds_{side}", "not enough free balance")
        wallet.balance -= need
        wallet.locked += need
        order = EmuOrder(str(uuidlib.uuid4()), identifier, market, side, price, volume, tif,
                         datetime.now(KST).isoformat(timespec="seconds"), reserved_fee, need, ord_type=ord_type)
        self.orders[order.uuid] = order
        if identifier is not None:
            self.by_identifier[identifier] = order.uuid
        if self.hold_queries > 0:
            order.held_queries = self.hold_queries
        else:
            self.match(order)
        return order

    def _limit_terms(self, body: dict[str, Any], market: str, side: str) -> tuple[Decimal, Decimal, Decimal]:
        try:
            price, volume = dec(body["price"]), dec(body["volume"])
        except (KeyError, ArithmeticError, ValueError):
            raise EmuError(400, f"create_{side}_error", "price and volume are required decimals") from None
        if price <= 0 or volume <= 0 or volume != volume.quantize(VOLUME_PLACES):
            raise EmuError(400, f"create_{side}_error", "bad price or volume")
        if price % self.tick(market, price):
            raise EmuError(400, f"invalid_price_{side}", "price is not on the tick")
        return price, volume, price * volume

    def _market_terms(self, body: dict[str, Any], market: str, side: str,
                      ord_type: str) -> tuple[Decimal | None, Decimal | None, Decimal]:
        """A market bid (``price``) names only the KRW to spend, a market ask (``market``) only its volume."""
        error = f"create_{side}_error"
        wanted = "bid" if ord_type == "price" else "ask"
        if side != wanted:
            raise EmuError(400, error, f"ord_type {ord_type} is for {wanted} orders only")
        if body.get("time_in_force") is not None:
            # Upbit lists no time_in_force for market orders (the error name is our guess).
            raise EmuError(400, "invalid_time_in_force", "market orders take no time_in_force")
        book = self.books[market]
        if ord_type == "price":
            if body.get("volume") is not None:
                raise EmuError(400, error, "a market bid takes price (the KRW to spend) and no volume")
            spend = self._positive(body.get("price"), error, "price")
            depth = sum((p * q for p, q in book.asks[:MARKET_DEPTH_LEVELS]), ZERO)
            if spend > depth:
                # Refused up front, as Upbit does since 2025-05-07 (the error name is our guess).
                raise EmuError(400, error, "the order exceeds what the top 30 asks hold")
            return spend, None, spend
        if body.get("price") is not None:
            raise EmuError(400, error, "a market ask takes volume and no price")
        volume = self._positive(body.get("volume"), error, "volume")
        if volume != volume.quantize(VOLUME_PLACES):
            raise EmuError(400, error, "volume has more than eight decimals")
        if volume > sum((q for _, q in book.bids[:MARKET_DEPTH_LEVELS]), ZERO):
            raise EmuError(400, error, "the order exceeds what the top 30 bids hold")
        # Its value is judged at the best bid, the first price it would get.
        return None, volume, volume * (book.bids[0][0] if book.bids else ZERO)

    @staticmethod
    def _positive(value: Any, error: str, name: str) -> Decimal:
        try:
            amount = dec(value)
        except (ArithmeticError, ValueError, TypeError):
            raise EmuError(400, error, f"{name} is a required decimal") from None
        if not amount > 0:
            raise EmuError(400, error, f"{name} must be positive")
        return amount

    def find(self, uuid: str | None, identifier: str | None) -> EmuOrder:
        key = uuid or (self.by_identifier.get(identifier) if identifier else None)
        order = self.orders.get(key) if key else None
        if order is None:
            raise EmuError(404, "order_not_found", "order not found")
        return order

    def match(self, order: EmuOrder) -> None:
        """Fill against the book; an IOC/FOK or market remainder is cancelled and unlocked."""
        if order.ord_type == "price":
            self._match_spend(order)
            return
        book = self.books[order.market]
        levels = book.asks if order.side == "bid" else book.bids
        crosses = order.crosses
        fillable = sum((s for p, s in levels if crosses(p)), ZERO)
        if order.time_in_force == "fok" and fillable < order.volume:
            levels = []
        quote, base = order.market.split("-", 1)
        remaining = order.volume - order.executed
        touched = False
        for level in list(levels):
            if remaining <= 0 or not crosses(level[0]):
                break
            take = min(level[1], remaining)
            self._fill(order, level[0], take, quote, base)
            level[1] -= take
            remaining -= take
            touched = True
            if level[1] <= 0:
                levels.remove(level)
        if touched:
            self.touch(order.market)
        if remaining <= 0:
            self._finish(order, "done", quote, base)
        elif order.time_in_force in ("ioc", "fok") or order.ord_type == "market":
            self._finish(order, "cancel", quote, base)

    def _match_spend(self, order: EmuOrder) -> None:
        """A market bid: buy up the asks with its KRW, each volume cut to eight decimals."""
        book = self.books[order.market]
        quote, base = order.market.split("-", 1)
        left = order.price - order.funds
        touched = False
        for level in list(book.asks):
            volume = min(level[1], (left / level[0]).quantize(VOLUME_PLACES, rounding=ROUND_DOWN))
            if volume <= 0:
                break
            self._fill(order, level[0], volume, quote, base)
            left -= level[0] * volume
            level[1] -= volume
            touched = True
            if level[1] <= 0:
                book.asks.remove(level)
        if touched:
            self.touch(order.market)
        # What could not be spent (less than 1e-8 of a coin, usually) is refunded.
        self._finish(order, "done" if left == 0 else "cancel", quote, base)

    def _fill(self, order: EmuOrder, price: Decimal, volume: Decimal, quote: str, base: str) -> None:
        funds = price * volume
        fee = funds * self.fee
        if order.side == "bid":
            self.account(quote).locked -= funds + fee
            order.locked -= funds + fee
            coin = self.account(base)
            held = coin.balance + coin.locked
            coin.avg_buy_price = (coin.avg_buy_price * held + funds) / (held + volume)
            coin.balance += volume
        else:
            self.account(base).locked -= volume
            order.locked -= volume
            self.account(quote).balance += funds - fee
        order.executed += volume
        order.paid_fee += fee
        order.trades.append({"market": order.market, "uuid": str(uuidlib.uuid4()), "price": text(price),
                             "volume": text(volume), "funds": text(funds), "trend": "up" if order.side == "bid"
                             else "down", "created_at": datetime.now(KST).isoformat(timespec="seconds"),
                             "side": order.side})

    def _finish(self, order: EmuOrder, state: str, quote: str, base: str) -> None:
        # Whatever is still locked for the order (price improvement, the
        # unfilled remainder, its reserved fee) goes back to the free balance.
        wallet = self.account(quote if order.side == "bid" else base)
        wallet.locked -= order.locked
        wallet.balance += order.locked
        order.locked = ZERO
        order.state = state

    def looked_up(self, order: EmuOrder) -> None:
        """A held order matches once it has been looked up ``held_queries`` times."""
        if order.held_queries > 0:
            order.held_queries -= 1
            if order.held_queries == 0 and order.state == "wait":
                self.match(order)

    def cancel(self, order: EmuOrder) -> dict[str, Any]:
        if order.state not in ("wait", "watch"):
            raise EmuError(400, "validation_error", f"order is already {order.state}")
        reply = order.to_json(fee_rate=self.fee)  # Upbit answers with the state before the cancel
        quote, base = order.market.split("-", 1)
        self._finish(order, "cancel", quote, base)
        return reply

    def accounts_json(self) -> list[dict[str, Any]]:
        return [{"currency": c, "balance": text(a.balance), "locked": text(a.locked),
                 "avg_buy_price": text(a.avg_buy_price), "avg_buy_price_modified": False,
                 "unit_currency": "KRW"}
                for c, a in self.accounts.items() if c == "KRW" or a.balance or a.locked]
