"""The event-driven core: every book update re-prices the pairs it touches.

One update in, at most one plan per pair out.  The hot path does no I/O and
no logging; anything worth keeping leaves through the event bus.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from arb.book import OrderBook
from arb.config import LegRiskSettings, StrategySettings
from arb.events import EventBus
from arb.legrisk import LegExposure, LegRiskPolicy
from arb.models import Order, OrderStatus, Side
from arb.pipeline import OrderPipeline
from arb.portfolio import Portfolio, Trade, cashflow
from arb.specs import Market, PairMarkets
from arb.strategy import Pair, Plan, Pricer

log = logging.getLogger("arb.engine")

Key = tuple[str, str]


class Engine:
    def __init__(self, pairs: Sequence[PairMarkets], fx: Market, settings: StrategySettings,
                 pricer: Pricer, portfolio: Portfolio, events: EventBus, reference_currency: str,
                 leg_risk: LegRiskSettings | None = None):
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
        self.book_updates: dict[Key, int] = {}  # per market, for /metrics
        self.busy_ns = 0
        self.now_ms = 0.0
        self.halted: str | None = None          # session over: no order of any kind
        self.entries_halted: str | None = None  # exposure open or exchange ban: no new trades
        # Trades whose close went out one-legged and did not end closed:
        # re-sending the close would repeat the leg that did fill, so they are
        # never closed automatically again.
        self.stuck_trades: set[int] = set()
        rules = {(m.exchange, m.symbol): m.rules for pair in self.pairs for m in (pair.local, pair.reference)}
        self.leg_risk = LegRiskPolicy(leg_risk or LegRiskSettings(), rules, pricer.client_id)
        #: Unhedged plans not yet flat, oldest first (given-up ones stay until the end).
        self.exposures: list[LegExposure] = []
        self._repairing: list[LegExposure] = []  # those the policy still acts on
        self._banned: str | None = None
        # Exposure or a ban blocks entries whatever else writes entries_halted
        # (the session halts them too, and lifts only its own reason).
        self._entries_blocked = False
        self._halt_text: str | None = None
        self._by_asset = {pair.asset: pair for pair in self.pairs}
        self._unusable: dict[Key, str] = {}
        # Valuations are asked for per guarded leg; one update prices them once.
        self._valued_at = -1
        self._equity: dict[str, float] = {}
        self._unrealized = 0.0
        self._valued_fx = 0.0
        # (exchange, asset) -> (book key, quoted locally) its holding is valued
        # on, or None when no pair trades it; the pairs never change.
        self._valued_on: dict[tuple[str, str], tuple[Key, bool] | None] = {}

    def attach(self, pipeline: OrderPipeline) -> None:
        self.pipeline = pipeline
        pipeline.open_notional = self.open_notional

    def on_book(self, book: OrderBook) -> None:
        started = time.perf_counter_ns()
        key = (book.exchange, book.symbol)
        self.books[key] = book
        self.updates += 1
        self.book_updates[key] = self.book_updates.get(key, 0) + 1
        self.now_ms = book.received_ms
        # Judge each book once, when it arrives, rather than on every use.
        bids, asks = book.bids, book.asks
        if bids and asks and bids[0][0] < asks[0][0]:
            if self._unusable:
                self._unusable.pop(key, None)
        else:
            self._unusable[key] = "crossed book" if bids and asks else "empty book"
        if self._repairing and self.halted is None:
            self._repair_on(key, book)
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
        try:
            local = books[pair.local_key]
            ref = books[pair.reference_key]
            fx_book = books[self.fx_key]
        except KeyError:  # not every book has arrived yet
            return
        # min() of the three, spelled out: this runs for every pair an update touches.
        oldest = local.received_ms
        if ref.received_ms < oldest:
            oldest = ref.received_ms
        if fx_book.received_ms < oldest:
            oldest = fx_book.received_ms
        pricer = self.pricer
        if self.now_ms - oldest > self.max_age_ms:
            pricer._skip("stale book")
            return
        unusable = self._unusable
        if unusable:
            problem = unusable.get(pair.local_key) or unusable.get(pair.reference_key) or unusable.get(self.fx_key)
            if problem:
                pricer._skip(problem)
                return
        fx = (fx_book.bids[0][0] + fx_book.asks[0][0]) * 0.5
        # No trade open at all is the usual case, and then none for this asset.
        portfolio = self.portfolio
        open_here = portfolio.open_for(pair.asset) if portfolio.open_trades else ()
        for trade in open_here:
            if trade.id in self.stuck_trades:
                continue
            plan = pricer.exit_plan(pair, trade.id, trade.direction, trade.quantity, local, ref, fx)
            if plan is not None:
                plan.data_ms = oldest
                self._close(trade, plan)
                if self.halted:
                    return
        if len(open_here) >= self.max_open or self.entries_halted or self._entries_blocked:
            return
        direction = pricer.entry_direction(pair, local, ref, fx)
        if direction is None:
            return  # most updates: balances are read only for an opportunity
        gateway = self.pipeline.gateway
        plan = pricer.open_plan(pair, direction, local, ref, fx, gateway.free_balances(pair.local.exchange),
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
            if banned and not self._banned:
                self._banned = banned
                self._update_entries_halted()
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
            self._unhedged(plan, orders)

    def _close(self, trade: Trade, plan: Plan) -> None:
        orders = self._send(plan)
        if not orders:
            return
        if _hedged(orders, len(plan.legs)):
            pnl = self.portfolio.close(trade, plan, orders, self.now_ms)
            self.events.publish("trade_closed", self.now_ms, trade=trade, plan=plan, pnl=pnl)
        else:
            self.stuck_trades.add(trade.id)
            self._unhedged(plan, orders)

    # --- leg risk: off the hot path, only after a one-legged result ----------------------

    def _unhedged(self, plan: Plan, orders: list[Order]) -> None:
        exposure = self.leg_risk.assess(plan, orders)
        self._valued_at = -1  # positions changed within this update
        if self.leg_risk.is_flat(exposure) and not exposure.given_up:
            # Both legs moved alike (both refused, or both part-filled the same).
            self._settle(exposure, announce=False)
            return
        self.exposures.append(exposure)
        self._update_entries_halted()
        log.error("[ARB_EXPOSURE] %s; no new trades until flat (policy %s)", exposure.describe(),
                  self.leg_risk.policy)
        self.events.publish("leg_unhedged", self.now_ms, asset=plan.asset, plan=plan, orders=orders,
                            exposure=self.exposure(), policy=self.leg_risk.policy, detail=exposure.describe())
        if exposure.given_up:
            self._give_up(exposure)
            return
        self._repairing.append(exposure)
        self._repair(exposure, self._usable_book(self.leg_risk.repair_key(exposure)))

    def _repair_on(self, key: Key, book: OrderBook) -> None:
        """A fresh book of a market a repair waits for: try again on it."""
        for exposure in list(self._repairing):
            if self.leg_risk.repair_key(exposure) == key and book.received_ms > exposure.last_try_ms:
                self._repair(exposure, None if key in self._unusable else book)
                if self.halted is not None:
                    return

    def _repair(self, exposure: LegExposure, book: OrderBook | None) -> None:
        plan = self.leg_risk.next_repair(exposure, book, self.fx_rate(), self.now_ms)
        if plan is None:
            if exposure.given_up:
                self._give_up(exposure)
            return
        orders = self._send(plan)
        blocked = "" if orders else (self.pipeline.last_block_reason or "not sent")
        self.leg_risk.record(exposure, plan, orders[0] if orders else None, blocked)
        self._valued_at = -1
        self.events.publish("leg_repair", self.now_ms, asset=plan.asset, plan=plan, orders=orders or [],
                            exposure=self.exposure(), detail=exposure.reason)
        if self.leg_risk.is_flat(exposure):
            self._repairing.remove(exposure)
            self.exposures.remove(exposure)
            self._settle(exposure, announce=True)
        elif exposure.given_up:
            self._give_up(exposure)
        else:
            log.warning("[ARB_EXPOSURE] %s", exposure.describe())

    def _settle(self, exposure: LegExposure, announce: bool) -> None:
        """Book a flat exposure: a smaller trade, a (partial) close, or a loss;
        ``announce`` when it had halted entries."""
        plan, orders, qty, now = exposure.plan, exposure.orders, exposure.hedged_qty, self.now_ms
        if plan.kind == "open":
            if qty > 0:
                trade = self.portfolio.open(plan, orders, now, quantity=qty)
                self.events.publish("trade_opened", now, trade=trade, plan=plan)
            else:
                self.portfolio.settle_flat(plan, orders, now)
        else:
            trade = self.portfolio.open_trades.get(plan.trade_id)
            if trade is None:  # pragma: no cover - a close plan always names an open trade
                self.portfolio.settle_flat(plan, orders, now)
            elif qty >= trade.quantity * (1 - 1e-9):
                pnl = self.portfolio.close(trade, plan, orders, now)
                self.stuck_trades.discard(trade.id)
                self.events.publish("trade_closed", now, trade=trade, plan=plan, pnl=pnl)
            else:
                if qty > 0:
                    self.portfolio.close(trade, plan, orders, now, quantity=qty)
                else:
                    self.portfolio.settle_flat(plan, orders, now)
                if exposure.repairs:
                    # Closing again could fail the same way and pay for another
                    # unwind each time: this one waits for a person.
                    log.error("[ARB_EXPOSURE] trade %d is hedged again (%g %s open) after its close was "
                              "unwound; it is not closed automatically", trade.id, trade.quantity, trade.asset)
                else:
                    self.stuck_trades.discard(trade.id)
        self._update_entries_halted()
        if announce:
            detail = f"{plan.kind} of {plan.asset} is flat after {exposure.repairs} repair order(s)"
            log.warning("[ARB_EXPOSURE] %s%s", detail, "" if self._entries_blocked else "; entries resume")
            self.events.publish("exposure_flat", now, asset=plan.asset, plan=plan, orders=orders,
                                exposure=self.exposure(), detail=detail)

    def _give_up(self, exposure: LegExposure) -> None:
        if exposure in self._repairing:
            self._repairing.remove(exposure)
        self._update_entries_halted()
        log.error("[ARB_EXPOSURE] %s; the policy gives up: entries stay halted until a person makes it flat",
                  exposure.describe())
        self.events.publish("leg_exposure", self.now_ms, asset=exposure.asset, plan=exposure.plan,
                            orders=exposure.orders, exposure=self.exposure(), detail=exposure.describe())

    def _update_entries_halted(self) -> None:
        reasons = [self._banned] if self._banned else []
        reasons += [e.describe() for e in self.exposures]
        text = "; ".join(reasons) or None
        self._entries_blocked = text is not None
        if self.entries_halted is None or self.entries_halted == self._halt_text:
            self.entries_halted = text
        # else the session halted entries for its own reason: that stays shown
        # (and lifted by the session); _entries_blocked still holds ours.
        self._halt_text = text

    def _usable_book(self, key: Key) -> OrderBook | None:
        book = self.books.get(key)
        if book is None or key in self._unusable or self.now_ms - book.received_ms > self.max_age_ms:
            return None
        return book

    def exposure(self) -> dict[str, dict[str, float]]:
        """Open unhedged quantity per asset and exchange: + held, − owed."""
        out: dict[str, dict[str, float]] = {}
        for exposure in self.exposures:
            for exchange, qty in exposure.position().items():
                per_asset = out.setdefault(exposure.asset, {})
                per_asset[exchange] = round(per_asset.get(exchange, 0.0) + qty, 12)
        return out

    def exposure_detail(self) -> str:
        return "; ".join(e.describe() for e in self.exposures)

    @property
    def entries_blocked(self) -> bool:
        """True while an exposure or an exchange ban blocks new trades, even
        when ``entries_halted`` shows a reason the session set instead."""
        return self._entries_blocked

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
        self._valued_at = self.updates
        self._equity.clear()
        self._valued_fx = self.fx_rate()
        self._unrealized = self._compute_unrealized()

    def equity(self, exchange: str) -> float:
        """Account value on ``exchange`` in the reference currency, at book mids.

        Assets we hold no book for are left out: the figure errs low, which
        can only make the balance rule stricter.
        """
        if self._valued_at != self.updates:
            self._fresh_valuations()
        value = self._equity.get(exchange)
        if value is None:
            value = self._equity[exchange] = self._compute_equity(exchange)
        return value

    def _compute_equity(self, exchange: str) -> float:
        fx = self._valued_fx
        total = 0.0
        reference, local_quote = self.reference_currency, self.local_quote
        books, unusable, valued_on = self.books, self._unusable, self._valued_on
        for asset, amount in self.pipeline.gateway.free_balances(exchange).items():
            if not amount:
                continue
            if asset == reference:
                total += amount
            elif not fx:
                continue
            elif asset == local_quote:
                total += amount / fx
            else:
                try:
                    market = valued_on[exchange, asset]
                except KeyError:
                    market = self._valuation_market(exchange, asset)
                if market is None:
                    continue
                key, local_quoted = market
                book = books.get(key)
                if book is None or key in unusable:
                    continue
                price = (book.bids[0][0] + book.asks[0][0]) * 0.5
                total += amount * (price / fx if local_quoted else price)
        return total

    def _valuation_market(self, exchange: str, asset: str) -> tuple[Key, bool] | None:
        pair = self._by_asset.get(asset)
        market = None
        if pair is not None:
            chosen = pair.local if pair.local.exchange == exchange else pair.reference
            market = ((chosen.exchange, chosen.symbol), chosen.rules.quote == self.local_quote)
        self._valued_on[exchange, asset] = market
        return market

    def unrealized_pnl(self) -> float:
        if self._valued_at != self.updates:
            self._fresh_valuations()
        return self._unrealized

    def unrealized_pnl_uncached(self) -> float:
        """:meth:`unrealized_pnl` priced afresh without touching the valuation
        cache, for readers on other threads (the metrics scrape): a write from
        there would race the guard checks that read the cache."""
        return self._compute_unrealized()

    def _compute_unrealized(self) -> float:
        if not self.portfolio.open_trades and not self.exposures:
            return 0.0
        fx = self.fx_rate()
        total = self._exposure_value(fx) if self.exposures else 0.0
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

    def _exposure_value(self, fx: float) -> float:
        """What the unhedged plans brought in so far plus what their positions
        would fetch at the top of the books (bid if held, ask if owed)."""
        if not fx:
            return 0.0
        total = 0.0
        local_quote, quote_of = self.portfolio.local_quote, self.portfolio.quote_of
        for exposure in self.exposures:
            for order in exposure.orders:
                intent = order.intent
                total += cashflow(order, exposure.plan.fx_rate, local_quote, quote_of[(intent.exchange, intent.symbol)])
            for leg, moved in zip(exposure.legs, exposure.filled):
                key = (leg.exchange, leg.symbol)
                book = self.books.get(key)
                if not moved or book is None or key in self._unusable:
                    continue
                held = moved if leg.side is Side.BUY else -moved
                price = book.bids[0][0] if held > 0 else book.asks[0][0]
                total += held * (price / fx if quote_of[key] == local_quote else price)
        return total

    def open_notional(self, exchange: str) -> float:
        """Reference-currency value open on ``exchange`` now, at book mids: the
        leg there of every open trade, and every unhedged quantity there."""
        if not (self.portfolio.open_trades or self.exposures):
            return 0.0  # asked for every guarded leg: the usual answer comes first
        fx = self.fx_rate()
        if not fx:
            return 0.0
        total = 0.0
        for trade in self.portfolio.open_trades.values():
            pair = self._by_asset[trade.asset]
            key = pair.local_key if pair.local.exchange == exchange else pair.reference_key
            if key[0] == exchange:
                total += trade.quantity * self._mid_in_reference(key, fx)
        for exposure in self.exposures:
            qty = exposure.position().get(exchange)
            if qty:
                pair = self._by_asset[exposure.asset]
                key = pair.local_key if pair.local.exchange == exchange else pair.reference_key
                total += abs(qty) * self._mid_in_reference(key, fx)
        return total

    def _mid_in_reference(self, key: Key, fx: float) -> float:
        price = self._mid(key)
        if price is None:
            return 0.0
        return price / fx if self.portfolio.quote_of[key] == self.portfolio.local_quote else price

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
