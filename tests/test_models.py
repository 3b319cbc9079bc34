"""Market rules as the exchanges publish them: ticks, lot steps, minimums.

Rules come from the installed exchange plugins (Upbit KRW, Binance USDT), so
these tests check what paper mode enforces and what the planner rounds to.
Expected values are read off the exchanges' published tables by hand.
"""

from __future__ import annotations

import pytest

from arb.models import (Fill, Order, OrderIntent, OrderStatus, Side, ceil_to_step, floor_to_step,
                        step_decimals)
from arb.plugins import load_registry

REGISTRY = load_registry()
UPBIT = REGISTRY.exchange("upbit").paper_rules("KRW-BTC")
BINANCE = REGISTRY.exchange("binance").paper_rules("BTCUSDT")
BINANCE_XRP = REGISTRY.exchange("binance").paper_rules("XRPUSDT")


# --- Upbit KRW tick table ------------------------------------------------------------


@pytest.mark.parametrize("price, tick", [
    (95_000_000, 1000),      # BTC
    (2_000_000, 1000),
    (1_000_000, 1000),       # band boundary belongs to the upper band
    (999_999, 500),
    (750_000, 500),
    (500_000, 500),
    (250_000, 100),
    (75_000, 50),
    (25_000, 10),
    (7_500, 5),
    (1_400, 1),              # the KRW-USDT rate
    (150, 1),
    (50, 0.1),
    (5, 0.01),
    (0.5, 0.001),
    (0.05, 0.0001),
    (0.005, 0.00001),
])
def test_upbit_tick_for_price(price, tick):
    assert UPBIT.tick_for(price) == tick


def test_binance_tick_is_flat():
    assert BINANCE.tick_for(95_000.0) == 0.01
    assert BINANCE.tick_for(0.5) == 0.01


# --- price rounding: never worse than asked -------------------------------------------


@pytest.mark.parametrize("rules, price, side, expected", [
    (UPBIT, 95_123_456, Side.BUY, 95_123_000),     # a buy limit never goes higher
    (UPBIT, 95_123_456, Side.SELL, 95_124_000),    # a sell limit never goes lower
    (UPBIT, 95_123_000, Side.BUY, 95_123_000),     # already on the tick: unchanged
    (UPBIT, 95_123_000, Side.SELL, 95_123_000),
    (UPBIT, 750_250, Side.BUY, 750_000),
    (UPBIT, 750_250, Side.SELL, 750_500),
    (UPBIT, 1_400.4, Side.BUY, 1_400),
    (UPBIT, 1_400.4, Side.SELL, 1_401),
    (BINANCE, 95_000.123, Side.BUY, 95_000.12),
    (BINANCE, 95_000.123, Side.SELL, 95_000.13),
    (BINANCE, 95_000.10, Side.SELL, 95_000.10),
])
def test_round_price_never_worse_than_asked(rules, price, side, expected):
    rounded = rules.round_price(price, side)
    assert rounded == pytest.approx(expected, abs=1e-9)
    if side is Side.BUY:
        assert rounded <= price
    else:
        assert rounded >= price


# --- quantity rounding: always down, immune to float noise ----------------------------


@pytest.mark.parametrize("rules, qty, expected", [
    (BINANCE, 0.123456789, 0.12345),
    (BINANCE, 0.00001999, 0.00001),
    (BINANCE, 0.000009, 0.0),
    (UPBIT, 0.123456789, 0.12345678),
    (BINANCE_XRP, 12.39, 12.3),
])
def test_round_qty_floors(rules, qty, expected):
    assert rules.round_qty(qty) == expected


def test_value_already_on_a_fine_step_stays():
    # 0.6240644 / 1e-8 is 62406439.99999999 or 62406440.00000001 in floats
    assert floor_to_step(0.6240644, 1e-8) == 0.6240644
    assert UPBIT.round_qty(0.6240644) == 0.6240644
    assert UPBIT.violation(0.6240644, 95_000_000) is None


def test_float_noise_just_below_a_step_is_that_step():
    assert floor_to_step(0.29999999999, 0.1) == 0.3
    assert floor_to_step(0.1 + 0.2, 0.1) == 0.3          # 0.30000000000000004
    assert ceil_to_step(0.30000000001, 0.1) == 0.3


def test_round_qty_on_large_upbit_quantities_still_floors():
    # Ten units on an 8-decimal step are 1e9 steps: rounding must not turn
    # into round-to-nearest there (we would trade more than approved).
    assert UPBIT.round_qty(10.000000007) == 10.0
    assert UPBIT.round_qty(10_000.000000055) == 10_000.00000005
    assert UPBIT.round_qty(5.000000006) == 5.0
    assert UPBIT.round_qty(123.45678901) == 123.45678901   # on step: stays


def test_large_quantity_off_the_lot_step_is_a_violation():
    assert "lot step" in UPBIT.violation(10.000000005, 95_000_000)


def test_step_decimals_and_formatting():
    assert step_decimals(1e-8) == 8
    assert step_decimals(0.00001) == 5
    assert step_decimals(1000.0) == 0
    assert step_decimals(0.1) == 1
    assert BINANCE.format_qty(0.1 + 0.2) == "0.30000"
    assert UPBIT.format_price(95_123_000.0) == "95123000"
    assert BINANCE.format_price(95_000.1) == "95000.10"
    with pytest.raises(ValueError):
        step_decimals(0.0)


# --- what the exchanges refuse --------------------------------------------------------


def test_upbit_minimum_order_is_5000_krw():
    # 0.00005 BTC at 95,000,000 KRW = 4,750 KRW
    problem = UPBIT.violation(0.00005, 95_000_000)
    assert problem is not None
    assert "below upbit minimum 5000 KRW" in problem
    assert "4750" in problem
    # 0.00006 BTC = 5,700 KRW is fine
    assert UPBIT.violation(0.00006, 95_000_000) is None


def test_binance_minimum_order_is_5_usdt():
    # 0.00004 BTC at 100,000 USDT = 4 USDT
    problem = BINANCE.violation(0.00004, 100_000)
    assert problem is not None
    assert "below binance minimum 5 USDT" in problem
    assert BINANCE.violation(0.00005, 100_000) is None        # exactly 5 USDT


def test_below_minimum_quantity():
    problem = BINANCE.violation(0.000001, 100_000)
    assert problem is not None and "below binance minimum 1e-05 BTC" in problem


def test_not_on_the_lot_step():
    problem = BINANCE.violation(0.000015, 1_000_000)
    assert problem is not None and "not a multiple of the lot step 1e-05" in problem
    assert "lot step" in BINANCE_XRP.violation(10.05, 2.5)
    assert BINANCE_XRP.violation(10.1, 2.5) is None


def test_above_maximum_order_value():
    # Upbit caps one KRW order at 1,000,000,000 KRW: 11 BTC at 95M = 1.045B KRW
    problem = UPBIT.violation(11, 95_000_000)
    assert problem is not None and "above upbit maximum 1e+09 KRW" in problem
    assert UPBIT.violation(10, 95_000_000) is None             # 950M KRW


def test_non_positive_quantity():
    assert "not positive" in BINANCE.violation(0.0, 100_000)
    assert "not positive" in UPBIT.violation(-0.1, 95_000_000)


# --- orders ---------------------------------------------------------------------------


def test_side_opposite():
    assert Side.BUY.opposite is Side.SELL
    assert Side.SELL.opposite is Side.BUY


def test_order_aggregates_its_fills():
    intent = OrderIntent("binance", "BTCUSDT", Side.BUY, 0.3, 101.0, 100.5, "t-1")
    order = Order(intent, "x-1", OrderStatus.FILLED,
                  [Fill(0.1, 100.0, 0.01, 1.0), Fill(0.2, 101.0, 0.0202, 1.0)])
    assert order.filled_qty == pytest.approx(0.3)
    assert order.quote_amount == pytest.approx(10.0 + 20.2)
    assert order.fees == pytest.approx(0.0302)
    assert order.avg_price == pytest.approx(30.2 / 0.3)
    assert Order(intent, "x-2", OrderStatus.REJECTED).avg_price == 0.0


def test_final_statuses():
    assert OrderStatus.FILLED.is_final and OrderStatus.CANCELED.is_final and OrderStatus.REJECTED.is_final
    assert not OrderStatus.NEW.is_final and not OrderStatus.PARTIALLY_FILLED.is_final
