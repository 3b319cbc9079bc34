"""Open trades, realized and unrealized PnL, PnL per trading day.

PnL is in the reference currency.  A leg's cash flow is converted at the FX
rate in force when it filled, so a closed pair's PnL is what it really
brought in, fees included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from arb.models import Order, Side
from arb.strategy import Direction, Pair, Plan

_DAY_MS = 86_400_000


def trading_day(ts_ms: float, day_start_ms: int = 0) -> str:
    """The trading day (UTC date) a timestamp belongs to; the boundary is
    ``day_start_ms`` after midnight UTC."""
    return time.strftime("%Y-%m-%d", time.gmtime((ts_ms - day_start_ms) / 1000.0))


def cashflow(order: Order, fx: float, local_quote: str, quote: str) -> float:
    """What a filled order added to (+) or took from (−) our reference-currency cash."""
    amount = order.quote_amount
    signed = amount - order.fees if order.intent.side is Side.SELL else -(amount + order.fees)
    return signed / fx if quote == local_quote else signed


@dataclass(slots=True)
class Trade:
    id: int
    asset: str
    direction: Direction
    quantity: float
    opened_ms: float
    entry_premium_pct: float
    open_cashflow: float
    open_orders: list[Order]
    close_orders: list[Order] = field(default_factory=list)
    closed_ms: float = 0.0
    exit_premium_pct: float = 0.0
    realized_pnl: float = 0.0


class Portfolio:
    def __init__(self, local_quote: str, quote_of: dict[tuple[str, str], str], day_start_ms: int = 0):
        self.local_quote = local_quote
        self.quote_of = quote_of
        self.day_start_ms = day_start_ms
        self.open_trades: dict[int, Trade] = {}
        self.trades_opened = 0
        self.trades_closed = 0
        self.trades_adopted = 0
        self.realized_pnl = 0.0
        self.realized_by_day: dict[str, float] = {}
        self._next_id = 1
        self._by_asset: dict[str, tuple[Trade, ...]] = {}
        self._day_from_ms = float("inf")
        self._day_key = ""

    def _flow(self, order: Order, fx: float) -> float:
        return cashflow(order, fx, self.local_quote,
                        self.quote_of[(order.intent.exchange, order.intent.symbol)])

    def open(self, plan: Plan, orders: list[Order], now_ms: float, quantity: float | None = None) -> Trade:
        """A hedged pair from ``orders``.  ``quantity`` is the hedged size when
        ``orders`` include leg-risk repairs; by default the smaller leg's fill."""
        qty = min(o.filled_qty for o in orders) if quantity is None else quantity
        flow = sum(self._flow(o, plan.fx_rate) for o in orders)
        trade = Trade(self._next_id, plan.asset, plan.direction, qty, now_ms, plan.premium_pct, flow, orders)
        self._next_id += 1
        self.open_trades[trade.id] = trade
        self._by_asset[trade.asset] = self._by_asset.get(trade.asset, ()) + (trade,)
        self.trades_opened += 1
        return trade

    def adopt(self, asset: str, direction: Direction, quantity: float, opened_ms: float, entry_premium_pct: float,
              open_cashflow: float) -> Trade:
        """A hedged pair an earlier session opened and never closed: from now
        on this portfolio closes it, and realizes its whole PnL when it does.
        Not counted as opened here; its orders belong to the earlier session."""
        trade = Trade(self._next_id, asset, direction, quantity, opened_ms, entry_premium_pct, open_cashflow, [])
        self._next_id += 1
        self.open_trades[trade.id] = trade
        self._by_asset[asset] = self._by_asset.get(asset, ()) + (trade,)
        self.trades_adopted += 1
        return trade

    def close(self, trade: Trade, plan: Plan, orders: list[Order], now_ms: float,
              quantity: float | None = None) -> float:
        """Close ``trade``, or only ``quantity`` of it: the rest stays open and
        keeps its share of the opening cash flow."""
        flow = sum(self._flow(o, plan.fx_rate) for o in orders)
        if quantity is not None and quantity < trade.quantity * (1 - 1e-9):
            share = trade.open_cashflow * quantity / trade.quantity
            trade.quantity = round(trade.quantity - quantity, 12)
            trade.open_cashflow -= share
            trade.close_orders = trade.close_orders + orders
            self._realize(share + flow, now_ms)
            return share + flow
        trade.close_orders = orders
        trade.closed_ms = now_ms
        trade.exit_premium_pct = plan.premium_pct
        trade.realized_pnl = trade.open_cashflow + flow
        del self.open_trades[trade.id]
        self._by_asset[trade.asset] = tuple(t for t in self._by_asset[trade.asset] if t.id != trade.id)
        self.trades_closed += 1
        self._realize(trade.realized_pnl, now_ms)
        return trade.realized_pnl

    def settle_flat(self, plan: Plan, orders: list[Order], now_ms: float) -> float:
        """Book the cash flow of orders that left no position (a one-legged
        plan unwound to flat): fees and spread paid are a realized loss."""
        flow = sum(self._flow(o, plan.fx_rate) for o in orders)
        self._realize(flow, now_ms)
        return flow

    def _realize(self, pnl: float, now_ms: float) -> None:
        self.realized_pnl += pnl
        day = trading_day(now_ms, self.day_start_ms)
        self.realized_by_day[day] = self.realized_by_day.get(day, 0.0) + pnl

    def realized_today(self, now_ms: float) -> float:
        # Asked on every guarded order: the day's key is worked out once a day.
        if not self._day_from_ms <= now_ms < self._day_from_ms + _DAY_MS:
            self._day_from_ms = (now_ms - self.day_start_ms) // _DAY_MS * _DAY_MS + self.day_start_ms
            self._day_key = trading_day(now_ms, self.day_start_ms)
        return self.realized_by_day.get(self._day_key, 0.0)

    def open_for(self, asset: str) -> tuple[Trade, ...]:
        return self._by_asset.get(asset, ())

    @staticmethod
    def unrealized(trade: Trade, pair: Pair, local_bid: float, local_ask: float,
                   ref_bid: float, ref_ask: float, fx: float) -> float:
        """What closing ``trade`` at the top of the books would realize now."""
        q = trade.quantity
        if trade.direction is Direction.SELL_LOCAL:
            close = -q * local_ask / fx * (1 + pair.fee_local) + q * ref_bid * (1 - pair.fee_reference)
        else:
            close = q * local_bid / fx * (1 - pair.fee_local) - q * ref_ask * (1 + pair.fee_reference)
        return trade.open_cashflow + close

