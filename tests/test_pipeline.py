"""The order pipeline: guard chain on every leg, dry_run_scale, gateway.

Gateways here are the real PaperExchange (so "nothing was sent" is read off
the exchange itself: orders_sent and balances) or a recorder that counts
calls.  Guard chains are built from the installed plugins, as sessions build
them.
"""

from __future__ import annotations

import pytest

from arb.book import OrderBook
from arb.events import EventBus
from arb.guard import GuardLimits
from arb.models import OrderIntent, Side
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import build_guard_chain, load_registry
from arb.scaling import scale_legs, scaled_quantity
from arb.strategy import Direction, Plan

REGISTRY = load_registry()
BN = ("binance", "BTCUSDT")
UP = ("upbit", "KRW-BTC")
RULES = {BN: REGISTRY.exchange("binance").paper_rules("BTCUSDT"),
         UP: REGISTRY.exchange("upbit").paper_rules("KRW-BTC")}
FX = 1400.0
BALANCES = {"binance": {"USDT": 1_000_000.0, "BTC": 5.0}, "upbit": {"KRW": 1e10, "BTC": 5.0}}


def limits(**overrides) -> GuardLimits:
    values = dict(enabled=True, dry_run_scale=0.01, allowed_symbols=("KRW-BTC", "BTCUSDT"),
                  min_account_balance=50.0, max_daily_loss=20.0, max_notional_per_trade=1_000_000.0)
    values.update(overrides)
    return GuardLimits(**values)


def chain(**overrides):
    return build_guard_chain(REGISTRY, limits(**overrides), {}, require_essential=True)


def books():
    return {BN: OrderBook("binance", "BTCUSDT", [(99_990.0, 5.0)], [(100_000.0, 5.0)], 0.0),
            UP: OrderBook("upbit", "KRW-BTC", [(144_200_000.0, 5.0)], [(144_300_000.0, 5.0)], 0.0)}


def paper() -> PaperExchange:
    return PaperExchange(BALANCES, RULES, books())


def snapshot(ex: PaperExchange):
    return {name: dict(ex.free_balances(name)) for name in ("binance", "upbit")}


def open_plan(qty: float = 1.0, kind: str = "open") -> Plan:
    legs = (OrderIntent("upbit", "KRW-BTC", Side.SELL, qty, 144_200_000.0, 144_200_000.0, "t-1"),
            OrderIntent("binance", "BTCUSDT", Side.BUY, qty, 100_000.0, 100_000.0, "t-2"))
    return Plan(kind, "BTC", Direction.SELL_LOCAL, qty, legs, 3.0, 2.85, FX)


class Recorder:
    def __init__(self):
        self.calls = []

    def submit(self, legs, now_ms):
        self.calls.append(list(legs))
        return []

    def free_balances(self, exchange):
        return {}

    def active_orders(self):
        return 0


def pipeline(mode="live_trading", gateway=None, guard=None, daily_pnl=0.0, scale=0.01, events=None,
             use_chain=True):
    return OrderPipeline(mode=mode, gateway=gateway if gateway is not None else paper(),
                         chain=(guard if guard is not None else chain()) if use_chain else None,
                         rules=RULES, local_quote="KRW", events=events or EventBus(),
                         equity=lambda exchange: 10_000.0, daily_pnl=lambda: daily_pnl,
                         dry_run_scale=scale)


# --- construction ---------------------------------------------------------------------


def test_live_trading_needs_a_chain():
    with pytest.raises(ValueError, match="guard chain"):
        OrderPipeline(mode="live_trading", gateway=paper(), chain=None, rules=RULES, local_quote="KRW",
                      events=EventBus(), equity=lambda e: 0.0, daily_pnl=lambda: 0.0, dry_run_scale=0.01)


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5])
def test_live_trading_refuses_a_scale_outside_0_1(scale):
    with pytest.raises(ValueError, match="dry_run_scale"):
        pipeline(scale=scale)


def test_paper_needs_no_chain():
    p = pipeline(mode="paper", use_chain=False)
    assert p.chain is None and p.dry_run_scale is None


# --- vetoes ---------------------------------------------------------------------------


def test_veto_on_one_leg_sends_neither():
    ex = paper()
    before = snapshot(ex)
    seen = []
    bus = EventBus()
    bus.subscribe(seen.append)
    # Upbit's leg passes; BTCUSDT is not whitelisted, so Binance's leg is vetoed
    p = pipeline(gateway=ex, guard=chain(allowed_symbols=("KRW-BTC",)), events=bus)
    assert p.execute(open_plan(), 1.0) is None
    assert ex.orders_sent == 0
    assert snapshot(ex) == before
    assert p.plans_blocked == 1
    assert p.last_block_reason.startswith("allowed_symbols:")
    assert "BTCUSDT" in p.last_block_reason
    assert p.stop_reason is None
    assert [e.kind for e in seen] == ["plan_blocked"]
    assert p.chain.stats.checks == 2          # both legs were checked


def test_veto_on_the_first_leg_sends_neither():
    ex = paper()
    p = pipeline(gateway=ex, guard=chain(allowed_symbols=("BTCUSDT",)))
    assert p.execute(open_plan(), 1.0) is None
    assert ex.orders_sent == 0


def test_notional_is_judged_in_usdt_at_fx():
    # the Upbit leg: 0.001 × 144,200,000 KRW / 1,400 = 103 USDT; Binance 100
    ex = paper()
    p = pipeline(gateway=ex, guard=chain(max_notional_per_trade=102.0), scale=1.0)
    assert p.execute(open_plan(0.001), 1.0) is None
    assert "max_notional_per_trade" in p.last_block_reason and "103.00" in p.last_block_reason
    assert ex.orders_sent == 0
    ex2 = paper()
    p2 = pipeline(gateway=ex2, guard=chain(max_notional_per_trade=103.5), scale=1.0)
    assert len(p2.execute(open_plan(0.001), 1.0)) == 2
    assert ex2.orders_sent == 2


def test_daily_loss_veto_requests_a_session_stop():
    ex = paper()
    seen = []
    bus = EventBus()
    bus.subscribe(seen.append)
    p = pipeline(gateway=ex, daily_pnl=-25.0, events=bus)
    assert p.execute(open_plan(), 1.0) is None
    assert p.stop_reason is not None
    assert "max_daily_loss" in p.stop_reason
    assert ex.orders_sent == 0
    assert [e.kind for e in seen] == ["plan_blocked", "session_stop"]


def test_disabled_live_trading_blocks_with_its_reason():
    ex = paper()
    p = pipeline(gateway=ex, guard=chain(enabled=False))
    assert p.execute(open_plan(), 1.0) is None
    assert p.last_block_reason == "enabled: live_trading.enabled=False"
    assert p.stop_reason is None
    assert ex.orders_sent == 0


# --- live_readonly --------------------------------------------------------------------


def test_live_readonly_never_calls_the_gateway_and_counts_shadow_trades():
    rec = Recorder()
    seen = []
    bus = EventBus()
    bus.subscribe(seen.append)
    p = pipeline(mode="live_readonly", gateway=rec, use_chain=False, events=bus)
    assert p.execute(open_plan(), 1.0) is None
    assert p.execute(open_plan(kind="close"), 2.0) is None
    assert rec.calls == []
    assert p.shadow_trades == 2
    assert [e.kind for e in seen] == ["shadow_trade", "shadow_trade"]


def test_live_readonly_with_a_chain_still_sends_nothing():
    ex = paper()
    p = pipeline(mode="live_readonly", gateway=ex)
    assert p.execute(open_plan(), 1.0) is None
    assert ex.orders_sent == 0
    assert p.shadow_trades == 1


# --- dry_run_scale --------------------------------------------------------------------


def test_live_trading_scales_opening_plans():
    # design note: 1.0 BTC approved → 0.01 BTC sent at scale 0.01
    rec = Recorder()
    p = pipeline(gateway=rec, scale=0.01)
    p.execute(open_plan(1.0), 1.0)
    [legs] = rec.calls
    assert [leg.quantity for leg in legs] == [0.01, 0.01]
    # everything else about the legs is unchanged
    assert [leg.client_order_id for leg in legs] == ["t-1", "t-2"]
    assert [leg.limit_price for leg in legs] == [144_200_000.0, 100_000.0]


def test_full_scale_sends_the_approved_quantity():
    rec = Recorder()
    pipeline(gateway=rec, scale=1.0).execute(open_plan(1.0), 1.0)
    assert [leg.quantity for leg in rec.calls[0]] == [1.0, 1.0]


def test_closing_plans_are_not_scaled():
    # a close unwinds what was really opened (already scaled)
    rec = Recorder()
    pipeline(gateway=rec, scale=0.01).execute(open_plan(0.01, kind="close"), 1.0)
    assert [leg.quantity for leg in rec.calls[0]] == [0.01, 0.01]


def test_paper_never_scales():
    ex = paper()
    orders = pipeline(mode="paper", gateway=ex, use_chain=False, scale=0.01).execute(open_plan(1.0), 1.0)
    assert [o.filled_qty for o in orders] == [1.0, 1.0]


def test_paper_with_rehearsal_guards_does_not_scale():
    rec = Recorder()
    pipeline(mode="paper", gateway=rec, scale=0.01).execute(open_plan(1.0), 1.0)
    assert [leg.quantity for leg in rec.calls[0]] == [1.0, 1.0]


def test_scaled_below_minimum_is_skipped_with_a_reason():
    # 0.001 × 0.01 = 0.00001 BTC: 1,442 KRW on Upbit, under its 5,000 KRW minimum
    ex = paper()
    seen = []
    bus = EventBus()
    bus.subscribe(seen.append)
    p = pipeline(gateway=ex, scale=0.01, events=bus)
    assert p.execute(open_plan(0.001), 1.0) is None
    assert ex.orders_sent == 0
    assert p.plans_skipped == 1
    reason = p.last_block_reason
    assert "dry_run_scale 0.01" in reason
    assert "0.001 becomes 1e-05 BTC" in reason
    assert "order value 1442 KRW below upbit minimum 5000 KRW" in reason
    assert "not sent" in reason
    # The guards approved it (that decision is published for the record);
    # scaling then stopped it before anything was submitted.
    assert [e.kind for e in seen] == ["plan_allowed", "plan_skipped"]


def test_scaled_below_the_other_legs_minimum_is_skipped_too():
    # 0.004 × 0.01 = 0.00004 BTC: 5,768 KRW passes Upbit, 4 USDT fails Binance
    ex = paper()
    p = pipeline(gateway=ex, scale=0.01)
    assert p.execute(open_plan(0.004), 1.0) is None
    assert ex.orders_sent == 0
    assert "order value 4 USDT below binance minimum 5 USDT" in p.last_block_reason


# --- scaling on its own ---------------------------------------------------------------


def test_scaled_quantity_design_note_cases():
    assert scaled_quantity(1.0, 0.01, 0.00001) == 0.01
    assert scaled_quantity(1.0, 1.0, 0.00001) == 1.0


def test_scaled_quantity_rounds_down_to_the_step():
    # 0.123456 × 0.1 = 0.0123456 → 0.01234 on a 1e-5 step
    assert scaled_quantity(0.123456, 0.1, 0.00001) == 0.01234
    # 0.3 × 0.1 = 0.030000000000000002 in floats: still 0.03
    assert scaled_quantity(0.3, 0.1, 0.00001) == 0.03


def test_scale_legs_uses_the_coarser_lot_step_for_both_legs():
    legs = (OrderIntent("upbit", "KRW-BTC", Side.SELL, 0.123456, 144_200_000.0, 144_200_000.0, "a"),
            OrderIntent("binance", "BTCUSDT", Side.BUY, 0.123456, 100_000.0, 100_000.0, "b"))
    scaled, problem = scale_legs(legs, 0.1, [RULES[UP], RULES[BN]])
    assert problem is None
    # Upbit alone could take 0.0123456; Binance's 1e-5 step decides for both
    assert [leg.quantity for leg in scaled] == [0.01234, 0.01234]


def test_scale_legs_to_zero_is_refused():
    legs = open_plan(0.00001).legs
    scaled, problem = scale_legs(legs, 0.01, [RULES[UP], RULES[BN]])
    assert scaled == legs
    assert "becomes 0" in problem and "not positive" in problem
