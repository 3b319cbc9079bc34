"""Pricing the premium on the depth a trade needs, and turning it into plans.

Direction names say what happens on the local (KRW) venue: ``sell_local``
sells where the kimchi premium makes the asset dear and buys it on the
reference venue; ``buy_local`` is the reverse.  Every price is compared in
the reference currency; local prices are divided by the FX rate (local
currency per reference unit).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from enum import Enum

from arb.book import OrderBook, Walk, depth, walk
from arb.config import StrategySettings
from arb.models import OrderIntent, Side, floor_to_step, new_intent, on_step
from arb.specs import Market, PairMarkets


_SELL, _BUY = Side.SELL, Side.BUY

# Binance takes client order ids of up to 36 characters of [A-Za-z0-9-_.]
# (Upbit 64); the prefix leaves room for "-" and an 11-digit counter.
_MAX_PREFIX = 24
_ID_PREFIX = re.compile(rf"[A-Za-z0-9-]{{1,{_MAX_PREFIX}}}")


class Direction(str, Enum):
    SELL_LOCAL = "sell_local"
    BUY_LOCAL = "buy_local"


@dataclass(slots=True)
class Plan:
    """Two legs meant to go out together: both are approved or neither."""

    kind: str                      # "open" | "close"
    asset: str
    direction: Direction
    quantity: float
    legs: tuple[OrderIntent, OrderIntent]
    premium_pct: float             # gross, at the prices the legs expect
    net_premium_pct: float         # after both taker fees
    fx_rate: float
    trade_id: int = 0              # the open trade a close plan unwinds
    data_ms: float = 0.0           # receipt time of the oldest book it was priced on


class _Venue:
    """One market as an opening leg sees it, with its limit prices remembered.

    A limit price is a book level rounded to the market's tick; the same few
    levels come back update after update, and rounding one costs more than
    the rest of pricing a leg, so each (price, side) is rounded once.
    """

    __slots__ = ("exchange", "symbol", "rules", "fee", "quote", "limits")

    _MAX_REMEMBERED = 1024  # per side; forgotten all at once beyond it

    def __init__(self, market: Market):
        self.exchange = market.exchange
        self.symbol = market.symbol
        self.rules = market.rules
        self.fee = market.rules.taker_fee
        self.quote = market.rules.quote
        self.limits: dict[Side, dict[float, float]] = {Side.SELL: {}, Side.BUY: {}}

    def limit_price(self, price: float, side: Side) -> float:
        """``rules.round_price(price, side)``, remembered."""
        known = self.limits[side]
        rounded = known.get(price)
        if rounded is None:
            if len(known) >= self._MAX_REMEMBERED:
                known.clear()
            rounded = known[price] = self.rules.round_price(price, side)
        return rounded


class Pair:
    """Static facts about one asset's two markets, computed once."""

    __slots__ = ("asset", "local", "reference", "lot_step", "fee_local", "fee_reference",
                 "local_key", "reference_key", "local_venue", "reference_venue")

    def __init__(self, markets: PairMarkets):
        self.asset = markets.asset
        self.local = markets.local
        self.reference = markets.reference
        self.local_key = (markets.local.exchange, markets.local.symbol)
        self.reference_key = (markets.reference.exchange, markets.reference.symbol)
        # One quantity for both legs keeps the pair hedged; it must fit the
        # coarser of the two lot steps (steps are powers of ten).
        self.lot_step = max(markets.local.rules.lot_step, markets.reference.rules.lot_step)
        self.fee_local = markets.local.rules.taker_fee
        self.fee_reference = markets.reference.rules.taker_fee
        self.local_venue = _Venue(markets.local)
        self.reference_venue = _Venue(markets.reference)


class Pricer:
    """Finds entry and exit plans; pure apart from the id counter."""

    def __init__(self, settings: StrategySettings, id_prefix: str):
        if not _ID_PREFIX.fullmatch(id_prefix):
            raise ValueError(f"client order id prefix {id_prefix!r} must be 1-{_MAX_PREFIX} characters "
                             "of A-Z, a-z, 0-9 and '-'")
        self.entry = settings.entry_premium_pct / 100.0
        self.exit = settings.exit_premium_pct / 100.0
        self.trade_notional = settings.trade_notional
        self.max_levels = settings.max_levels
        self._ids = itertools.count(1)
        self._prefix = id_prefix
        self.last_premium: dict[str, float] = {}
        self.skips: dict[str, int] = {}

    def _skip(self, reason: str) -> None:
        self.skips[reason] = self.skips.get(reason, 0) + 1

    def client_id(self) -> str:
        # Short and [A-Za-z0-9-] only: fits Binance's 36 and Upbit's 64 characters.
        return f"{self._prefix}-{next(self._ids)}"

    def entry_plan(self, pair: Pair, local: OrderBook, ref: OrderBook, fx: float,
                   free_local: dict[str, float], free_ref: dict[str, float]) -> Plan | None:
        direction = self.entry_direction(pair, local, ref, fx)
        if direction is None:
            return None
        return self.open_plan(pair, direction, local, ref, fx, free_local, free_ref)

    def entry_direction(self, pair: Pair, local: OrderBook, ref: OrderBook, fx: float) -> Direction | None:
        """The direction worth pricing on depth, or None; records the premium shown.

        Top of book bounds what any depth can give (deeper levels are only
        worse), so most updates stop here, before balances are even read.
        """
        local_bid = local.bids[0][0] / fx
        ref_ask = ref.asks[0][0]
        self.last_premium[pair.asset] = local_bid / ref_ask - 1
        if local_bid * (1 - pair.fee_local) / (ref_ask * (1 + pair.fee_reference)) - 1 >= self.entry:
            return Direction.SELL_LOCAL
        if ref.bids[0][0] * (1 - pair.fee_reference) / ((local.asks[0][0] / fx) * (1 + pair.fee_local)) - 1 \
                >= self.entry:
            return Direction.BUY_LOCAL
        return None

    def open_plan(self, pair: Pair, direction: Direction, local: OrderBook, ref: OrderBook, fx: float,
                  free_local: dict[str, float], free_ref: dict[str, float]) -> Plan | None:
        """The plan :meth:`reference_open` gives, for less.

        The same arithmetic in the same order, with the helpers it calls on
        every opportunity written in line and limit prices remembered (see
        :class:`_Venue`).  Only the outcome with a plan is handled here:
        otherwise :meth:`reference_open` runs and says why.  The two are held
        to identical plans over random books, balances and settings
        (tests/test_fast_paths.py).
        """
        if direction is Direction.SELL_LOCAL:
            sell_levels, buy_levels, sell_fx, buy_fx = local.bids, ref.asks, fx, 1.0
            sell, buy = pair.local_venue, pair.reference_venue
            base_free = free_local.get(pair.asset, 0.0)
            quote_free = free_ref.get(buy.quote, 0.0)
        else:
            sell_levels, buy_levels, sell_fx, buy_fx = ref.bids, local.asks, 1.0, fx
            sell, buy = pair.reference_venue, pair.local_venue
            base_free = free_ref.get(pair.asset, 0.0)
            quote_free = free_local.get(buy.quote, 0.0)
        fee_buy = buy.fee
        max_levels = self.max_levels
        sell_depth = buy_depth = 0.0
        for _, size in sell_levels[:max_levels]:
            sell_depth += size
        for _, size in buy_levels[:max_levels]:
            buy_depth += size
        buy_top, buy_top_size = buy_levels[0]
        qty = min(self.trade_notional / (buy_top / buy_fx), sell_depth, buy_depth, base_free)
        # walk() of a quantity the best level holds, in line: that level's
        # price is the worst, and the average is its cost over the quantity
        # (computed as walk() does, which need not give back the price).
        if buy_top_size >= qty > 0:
            cost = qty * ((0.0 + qty * buy_top) / qty) * (1 + fee_buy)
        else:
            cost = qty * walk(buy_levels, qty)[1] * (1 + fee_buy)
        if cost > quote_free:
            qty *= quote_free / cost * 0.99
        step = pair.lot_step
        qty = floor_to_step(qty, step)
        if qty > base_free:
            qty = floor_to_step(qty - step, step)
        if qty > 0:
            sell_worst, sell_top_size = sell_levels[0]
            if sell_top_size >= qty:
                sell_avg = (0.0 + qty * sell_worst) / qty
            else:
                _, sell_avg, sell_worst = walk(sell_levels, qty)
            if buy_top_size >= qty:
                buy_avg, buy_worst = (0.0 + qty * buy_top) / qty, buy_top
            else:
                _, buy_avg, buy_worst = walk(buy_levels, qty)
            sell_rules, buy_rules = sell.rules, buy.rules
            sell_notional, buy_notional = qty * sell_worst, qty * buy_worst
            # rules.violation(qty, price) is None, for a positive qty, spelled out.
            if not (qty < sell_rules.min_qty or not on_step(qty, sell_rules.lot_step)
                    or sell_notional < sell_rules.min_notional or sell_notional > sell_rules.max_notional
                    or qty < buy_rules.min_qty or not on_step(qty, buy_rules.lot_step)
                    or buy_notional < buy_rules.min_notional or buy_notional > buy_rules.max_notional):
                sell_px = sell_avg / sell_fx
                buy_px = buy_avg / buy_fx
                net = sell_px * (1 - sell.fee) / (buy_px * (1 + fee_buy)) - 1
                if not net < self.entry:
                    prefix, ids = self._prefix, self._ids
                    legs = (new_intent(sell.exchange, sell.symbol, _SELL, qty, sell.limit_price(sell_worst, _SELL),
                                       sell_avg, f"{prefix}-{next(ids)}"),
                            new_intent(buy.exchange, buy.symbol, _BUY, qty, buy.limit_price(buy_worst, _BUY),
                                       buy_avg, f"{prefix}-{next(ids)}"))
                    return Plan("open", pair.asset, direction, qty, legs, (sell_px / buy_px - 1) * 100, net * 100,
                                fx)
        return self.reference_open(pair, direction, local, ref, fx, free_local, free_ref)

    def reference_open(self, pair: Pair, direction: Direction, local: OrderBook, ref: OrderBook, fx: float,
                       free_local: dict[str, float], free_ref: dict[str, float]) -> Plan | None:
        """Size and price an entry in ``direction`` on the depth it needs."""
        if direction is Direction.SELL_LOCAL:
            sell_levels, buy_levels = local.bids, ref.asks
            sell_fx, buy_fx = fx, 1.0
            sell_market, buy_market = pair.local, pair.reference
            base_free = free_local.get(pair.asset, 0.0)
            quote_free = free_ref.get(pair.reference.rules.quote, 0.0)
        else:
            sell_levels, buy_levels = ref.bids, local.asks
            sell_fx, buy_fx = 1.0, fx
            sell_market, buy_market = pair.reference, pair.local
            base_free = free_ref.get(pair.asset, 0.0)
            quote_free = free_local.get(pair.local.rules.quote, 0.0)
        fee_sell, fee_buy = sell_market.rules.taker_fee, buy_market.rules.taker_fee
        buy_top = buy_levels[0][0]
        qty = min(self.trade_notional / (buy_top / buy_fx),
                  depth(sell_levels, self.max_levels), depth(buy_levels, self.max_levels), base_free)
        cost = qty * walk(buy_levels, qty).avg_price * (1 + fee_buy)
        if cost > quote_free:
            qty *= quote_free / cost * 0.99
        qty = floor_to_step(qty, pair.lot_step)
        if qty > base_free:
            # Flooring absorbs float noise, which may land a hair above a
            # noisy balance (0.29999999999999993 → 0.3); the exchange would
            # refuse that sale, so take one step less.
            qty = floor_to_step(qty - pair.lot_step, pair.lot_step)
        if qty <= 0:
            self._skip("insufficient balance" if base_free <= 0 or quote_free <= 0 else "below minimum")
            return None
        # Priced on the quantity actually sent, so the limit prices reach no
        # deeper than it needs.
        sell_walk = walk(sell_levels, qty)
        buy_walk = walk(buy_levels, qty)
        problem = (sell_market.rules.violation(qty, sell_walk.worst_price)
                   or buy_market.rules.violation(qty, buy_walk.worst_price))
        if problem:
            self._skip("below minimum")
            return None
        sell_px = sell_walk.avg_price / sell_fx
        buy_px = buy_walk.avg_price / buy_fx
        net = sell_px * (1 - fee_sell) / (buy_px * (1 + fee_buy)) - 1
        if net < self.entry:
            self._skip("premium gone at depth")
            return None
        legs = (self._leg(sell_market, Side.SELL, qty, sell_walk), self._leg(buy_market, Side.BUY, qty, buy_walk))
        return Plan("open", pair.asset, direction, qty, legs, (sell_px / buy_px - 1) * 100, net * 100, fx)

    def _leg(self, market: Market, side: Side, qty: float, swept: Walk) -> OrderIntent:
        """The order for one leg: limit at the worst level the quantity reaches, on the tick."""
        return new_intent(market.exchange, market.symbol, side, qty, market.rules.round_price(swept.worst_price, side),
                          swept.avg_price, self.client_id())

    def exit_plan(self, pair: Pair, trade_id: int, direction: Direction, qty: float,
                  local: OrderBook, ref: OrderBook, fx: float) -> Plan | None:
        """Close when the premium we sold has come back to the exit threshold.

        The premium is measured the way it was opened (dear venue over cheap
        venue) at the prices that close it: the dear venue's asks, where we
        buy back, against the cheap venue's bids, where we sell.
        """
        if direction is Direction.SELL_LOCAL:
            buy_levels, sell_levels = local.asks, ref.bids
            buy_fx, sell_fx = fx, 1.0
            buy_market, sell_market = pair.local, pair.reference
        else:
            buy_levels, sell_levels = ref.asks, local.bids
            buy_fx, sell_fx = 1.0, fx
            buy_market, sell_market = pair.reference, pair.local
        if (buy_levels[0][0] / buy_fx) / (sell_levels[0][0] / sell_fx) - 1 > self.exit:
            return None
        buy_walk = walk(buy_levels, qty)
        sell_walk = walk(sell_levels, qty)
        if buy_walk.quantity < qty or sell_walk.quantity < qty:
            self._skip("insufficient depth to close")
            return None
        premium = (buy_walk.avg_price / buy_fx) / (sell_walk.avg_price / sell_fx) - 1
        if premium > self.exit:
            return None
        legs = (self._leg(buy_market, Side.BUY, qty, buy_walk), self._leg(sell_market, Side.SELL, qty, sell_walk))
        fees = buy_market.rules.taker_fee + sell_market.rules.taker_fee
        return Plan("close", pair.asset, direction, qty, legs, premium * 100, (premium + fees) * 100, fx,
                    trade_id)
