"""The event-driven core: every book update re-prices the pairs it touches.

One update in, at most one plan per pair out.  The hot path does no I/O and
no logging; anything worth keeping leaves through the event bus.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from arb.book import OrderBook
from arb.config import StrategySettings
from arb.events import EventBus
from arb.models import Order, OrderStatus
from arb.pipeline import OrderPipeline
from arb.portfolio import Portfolio, Trade
from arb.specs import Market, PairMarkets
from arb.strategy import Pair, Plan, Pricer

log = logging.getLogger("arb.engine")

Key = tuple[str, str]


class Engine:
    def __init__(self, pairs: Sequence[PairMarkets], fx: Market, settings: StrategySettings,
                 pricer: Pricer, portfolio: Portfolio, events: EventBus, reference_currency: str):
        self.books: dict[Key, OrderBook] = {}
        self.pairs = [Pair(p) for p in pairs]
        self.fx_key: Key = (fx.exchange, fx.symbol)
        self.index: dict[Key, list[Pair]] = {}
        for pair in self.pairs:
            for market in (pair.local, pair.reference):
                self.index.setdefault((market.exchange, market.symbol), []).append(pair)
        self.index.setdefault(self.fx_key, []).extend(self.pairs)
        self.max_age_ms = settings.max_book_age_ms
        self.max_open = settings.max_open_trades
        self.pricer = pricer
        self.portfolio = portfolio
        self.events = events
        self.reference_currency = reference_currency
        self.local_quote = pairs[0].local.rules.quote if pairs else ""
        self.pipeline: OrderPipeline | None = None
        self.updates = 0
        self.busy_ns = 0
        self.now_ms = 0.0
        self.halted: str | None = None          # session over: no order of any kind
        self.entries_halted: str | None = None  # exposure open: no new trades
        # Trades whose close went out one-legged: re-sending the close would
        # repeat the leg that did fill, so they wait for a person.
        self.stuck_trades: set[int] = set()
        self._by_asset = {pair.asset: pair for pair in self.pairs}
        self._unusable: dict[Key, str] = {}
        # Valuations are asked for per guarded leg; one update prices them once.
        self._valued_at = -1
        self._equity: dict[str, float] = {}
        self._unrealized = 0.0

    def attach(self, pipeline: OrderPipeline) -> None:
        self.pipeline = pipeline

    def on_book(self, book: OrderBook) -> None:
        started = time.perf_counter_ns()
        key = (book.exchange, book.symbol)
        self.books[key] = book
        self.updates += 1
        self.now_ms = book.received_ms
        # Judge each book once, when it arrives, rather than on every use.
        bids, asks = book.bids, book.asks
        if bids and asks and bids[0][0] < asks[0][0]:
            if self._unusable:
                self._unusable.pop(key, None)
        else:
            self._unusable[key] = "crossed book" if bids and asks else "empty book"
        pairs = self.index.get(key)
        if pairs and self.halted is None:
            for pair in pairs:
                self._evaluate(pair)
                if self.halted is not None:
                    # A session stop ends trading now, not after the other
                    # pairs this update touches (an FX tick touches them all).
                    break
        self.busy_ns += time.perf_counter_ns() - started

    def _evaluate(self, pair: Pair) -> None:
        books = self.books
        local = books.get(pair.local_key)
        ref = books.get(pair.reference_key)
        fx_book = books.get(self.fx_key)
        if local is None or ref is None or fx_book is None:
            return
        oldest = min(local.received_ms, ref.received_ms, fx_book.received_ms)
        if self.now_ms - oldest > self.max_age_ms:
            self.pricer._skip("stale book")
            return
        unusable = self._unusable
        if unusable:
            problem = unusable.get(pair.local_key) or unusable.get(pair.reference_key) or unusable.get(self.fx_key)
            if problem:
                self.pricer._skip(problem)
                return
        fx = (fx_book.bids[0][0] + fx_book.asks[0][0]) * 0.5
        open_here = self.portfolio.open_for(pair.asset)
        for trade in open_here:
            if trade.id in self.stuck_trades:
                continue
            plan = self.pricer.exit_plan(pair, trade.id, trade.direction, trade.quantity, local, ref, fx)
            if plan is not None:
                plan.data_ms = oldest
                self._close(trade, plan)
                if self.halted:
                    return
        if len(open_here) >= self.max_open or self.entries_halted:
            return
        gateway = self.pipeline.gateway
        plan = self.pricer.entry_plan(pair, local, ref, fx,
                                      gateway.free_balances(pair.local.exchange),
                                      gateway.free_balances(pair.reference.exchange))
        if plan is not None:
            plan.data_ms = oldest
            self._open(plan)

    def _send(self, plan: Plan) -> list[Order] | None:
        orders = self.pipeline.execute(plan, self.now_ms)
        if self.pipeline.stop_reason and self.halted is None:
            self.halted = self.pipeline.stop_reason
        if orders is not None:
            # An exchange that banned us (HTTP 418) takes no more orders:
            # open nothing new until a person has looked.
            banned = getattr(self.pipeline.gateway, "halted", None)
            if banned and not self.entries_halted:
                self.entries_halted = banned
                self.events.publish("exchange_banned", self.now_ms, detail=banned)
        return orders

    def _open(self, plan: Plan) -> None:
        orders = self._send(plan)
        if not orders:
            return
        if _hedged(orders, len(plan.legs)):
            trade = self.portfolio.open(plan, orders, self.now_ms)
            self.events.publish("trade_opened", self.now_ms, trade=trade, plan=plan)
        else:
            self._exposure(plan, orders)

    def _close(self, trade: Trade, plan: Plan) -> None:
        orders = self._send(plan)
        if not orders:
            return
        if _hedged(orders, len(plan.legs)):
            pnl = self.portfolio.close(trade, plan, orders, self.now_ms)
            self.events.publish("trade_closed", self.now_ms, trade=trade, plan=plan, pnl=pnl)
        else:
            self.stuck_trades.add(trade.id)
            self._exposure(plan, orders)

    def _exposure(self, plan: Plan, orders: list[Order]) -> None:
        # One leg done, the other not: the pair is no longer hedged.  Stop
        # opening trades until a person (or the leg-risk policy) makes it flat.
        detail = ", ".join(f"{o.intent.exchange} {o.intent.side.value} {o.filled_qty:g}/{o.intent.quantity:g} "
                           f"{o.status.value}{' (' + o.reason + ')' if o.reason else ''}" for o in orders)
        self.entries_halted = f"unhedged {plan.kind} of {plan.asset}: {detail}"
        log.error("[ARB_EXPOSURE] %s; no new trades", self.entries_halted)
        self.events.publish("leg_exposure", self.now_ms, plan=plan, orders=orders, detail=self.entries_halted)

    # --- valuations the guards judge -------------------------------------------------

    def fx_rate(self) -> float:
        book = self.books.get(self.fx_key)
        return book.mid if book is not None and self.fx_key not in self._unusable else 0.0

    def _mid(self, key: Key) -> float | None:
        book = self.books.get(key)
        if book is None or key in self._unusable:
            return None
        return (book.bids[0][0] + book.asks[0][0]) * 0.5

    def _fresh_valuations(self) -> None:
        if self._valued_at != self.updates:
            self._valued_at = self.updates
            self._equity.clear()
            self._unrealized = self._compute_unrealized()

    def equity(self, exchange: str) -> float:
        """Account value on ``exchange`` in the reference currency, at book mids.

        Assets we hold no book for are left out: the figure errs low, which
        can only make the balance rule stricter.
        """
        self._fresh_valuations()
        value = self._equity.get(exchange)
        if value is None:
            value = self._equity[exchange] = self._compute_equity(exchange)
        return value

    def _compute_equity(self, exchange: str) -> float:
        fx = self.fx_rate()
        total = 0.0
        for asset, amount in self.pipeline.gateway.free_balances(exchange).items():
            if not amount:
                continue
            if asset == self.reference_currency:
                total += amount
            elif not fx:
                continue
            elif asset == self.local_quote:
                total += amount / fx
            else:
                pair = self._by_asset.get(asset)
                if pair is None:
                    continue
                market = pair.local if pair.local.exchange == exchange else pair.reference
                price = self._mid((market.exchange, market.symbol))
                if price is not None:
                    total += amount * (price / fx if market.rules.quote == self.local_quote else price)
        return total

    def unrealized_pnl(self) -> float:
        self._fresh_valuations()
        return self._unrealized

    def _compute_unrealized(self) -> float:
        if not self.portfolio.open_trades:
            return 0.0
        fx = self.fx_rate()
        total = 0.0
        for trade in self.portfolio.open_trades.values():
            pair = self._by_asset[trade.asset]
            local = self.books.get(pair.local_key)
            ref = self.books.get(pair.reference_key)
            if local is None or ref is None or not fx or pair.local_key in self._unusable \
                    or pair.reference_key in self._unusable:
                continue
            total += Portfolio.unrealized(trade, pair, local.best_bid, local.best_ask,
                                          ref.best_bid, ref.best_ask, fx)
        return total

    def daily_pnl(self) -> float:
        """Today's realized PnL plus what the open trades would realize now."""
        return self.portfolio.realized_today(self.now_ms) + self.unrealized_pnl()

    def premiums(self) -> dict[str, float]:
        return {asset: value * 100 for asset, value in self.pricer.last_premium.items()}


def _hedged(orders: list[Order], legs: int) -> bool:
    """An order for every leg, each filled in full, all for the same quantity.

    Judged on what was sent, not on the plan: in live_trading the legs carry
    the plan's quantity × dry_run_scale.
    """
    if len(orders) != legs:
        return False
    quantity = orders[0].intent.quantity
    tolerance = 1e-12 * max(1.0, quantity)
    return all(o.status is OrderStatus.FILLED and abs(o.intent.quantity - quantity) <= tolerance
               and abs(o.filled_qty - quantity) <= tolerance for o in orders)
