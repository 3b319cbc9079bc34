"""The paper exchange: IOC limit orders swept against the current book.

Rules are the installed plugins' (Binance BTCUSDT: 0.1% fee, 1e-5 step, 5
USDT minimum; Upbit KRW-BTC: 0.05% fee, 5,000 KRW minimum).
"""

from __future__ import annotations

import pytest

from arb.book import OrderBook
from arb.models import OrderIntent, OrderStatus, Side
from arb.paper_exchange import PaperExchange
from arb.plugins import load_registry

REGISTRY = load_registry()
BN = ("binance", "BTCUSDT")
UP = ("upbit", "KRW-BTC")
RULES = {BN: REGISTRY.exchange("binance").paper_rules("BTCUSDT"),
         UP: REGISTRY.exchange("upbit").paper_rules("KRW-BTC")}


def books():
    return {
        BN: OrderBook("binance", "BTCUSDT", [(99_990.0, 0.5), (99_980.0, 0.5), (99_900.0, 1.0)],
                      [(100_000.0, 0.5), (100_010.0, 0.5), (100_100.0, 1.0)], 0.0),
        UP: OrderBook("upbit", "KRW-BTC", [(140_000_000.0, 0.2)], [(140_100_000.0, 0.2)], 0.0),
    }


def exchange(**balances):
    default = {"binance": {"USDT": 200_000.0, "BTC": 2.0}, "upbit": {"KRW": 1e9, "BTC": 1.0}}
    default.update(balances)
    return PaperExchange(default, RULES, books())


def intent(key, side, qty, limit, cid="c-1"):
    return OrderIntent(key[0], key[1], side, qty, limit, limit, cid)


def test_buy_sweeps_up_to_the_limit_and_pays_fees_in_quote():
    ex = exchange()
    [order] = ex.submit([intent(BN, Side.BUY, 0.8, 100_010.0)], 5.0)
    assert order.status is OrderStatus.FILLED
    # 0.5 @ 100,000 + 0.3 @ 100,010 = 50,000 + 30,003 = 80,003 USDT, fee 80.003
    assert [(f.quantity, f.price) for f in order.fills] == [(0.5, 100_000.0), (pytest.approx(0.3), 100_010.0)]
    assert order.quote_amount == pytest.approx(80_003.0)
    assert order.fees == pytest.approx(80.003)
    assert all(f.ts_ms == 5.0 for f in order.fills)
    bal = ex.free_balances("binance")
    assert bal["USDT"] == pytest.approx(200_000 - 80_003 - 80.003)
    assert bal["BTC"] == pytest.approx(2.8)
    assert (ex.orders_sent, ex.orders_filled, ex.orders_rejected) == (1, 1, 0)
    assert ex.active_orders() == 0


def test_sell_sweeps_down_to_the_limit():
    ex = exchange()
    [order] = ex.submit([intent(BN, Side.SELL, 1.0, 99_980.0)], 0.0)
    assert order.status is OrderStatus.FILLED
    # 0.5 @ 99,990 + 0.5 @ 99,980 = 99,985 USDT, fee 99.985
    assert order.quote_amount == pytest.approx(99_985.0)
    bal = ex.free_balances("binance")
    assert bal["BTC"] == pytest.approx(1.0)
    assert bal["USDT"] == pytest.approx(200_000 + 99_985 - 99.985)


def test_upbit_sell_credits_krw_less_fee():
    ex = exchange()
    [order] = ex.submit([intent(UP, Side.SELL, 0.1, 140_000_000.0)], 0.0)
    # 0.1 × 140,000,000 = 14,000,000 KRW, fee 7,000
    assert order.status is OrderStatus.FILLED
    assert ex.free_balances("upbit") == pytest.approx({"KRW": 1e9 + 14_000_000 - 7_000, "BTC": 0.9})


def test_partial_fill_is_canceled_with_its_fills():
    ex = exchange()
    # limit 100,010 reaches 1.0 BTC of the 1.5 asked
    [order] = ex.submit([intent(BN, Side.BUY, 1.5, 100_010.0)], 0.0)
    assert order.status is OrderStatus.CANCELED
    assert order.filled_qty == pytest.approx(1.0)
    assert len(order.fills) == 2
    assert order.reason
    bal = ex.free_balances("binance")
    # 50,000 + 50,005 = 100,005 and 100.005 fee
    assert bal["USDT"] == pytest.approx(200_000 - 100_005 - 100.005)
    assert bal["BTC"] == pytest.approx(3.0)
    assert ex.orders_filled == 0


def test_limit_away_from_the_book_fills_nothing():
    ex = exchange()
    [order] = ex.submit([intent(BN, Side.BUY, 0.1, 99_000.0)], 0.0)
    assert order.status is OrderStatus.CANCELED
    assert order.fills == []
    assert ex.free_balances("binance") == {"USDT": 200_000.0, "BTC": 2.0}


def test_buy_without_enough_quote_is_rejected_and_changes_nothing():
    # 0.5 BTC costs 50,000 + 50 fee; 50,000 is not enough
    ex = exchange(binance={"USDT": 50_000.0})
    [order] = ex.submit([intent(BN, Side.BUY, 0.5, 100_000.0)], 0.0)
    assert order.status is OrderStatus.REJECTED
    assert "insufficient USDT" in order.reason
    assert order.fills == []
    assert ex.free_balances("binance") == {"USDT": 50_000.0}
    assert ex.orders_rejected == 1


def test_sell_without_enough_base_is_rejected_and_changes_nothing():
    ex = exchange(upbit={"KRW": 0.0, "BTC": 0.05})
    [order] = ex.submit([intent(UP, Side.SELL, 0.1, 140_000_000.0)], 0.0)
    assert order.status is OrderStatus.REJECTED
    assert "insufficient BTC" in order.reason
    assert ex.free_balances("upbit") == {"KRW": 0.0, "BTC": 0.05}


@pytest.mark.parametrize("qty, limit, words", [
    (0.00004, 100_000.0, "below binance minimum 5 USDT"),     # 4 USDT
    (0.000015, 100_000.0, "lot step"),
    (0.0, 100_000.0, "not positive"),
])
def test_rule_violation_is_rejected(qty, limit, words):
    ex = exchange()
    [order] = ex.submit([intent(BN, Side.BUY, qty, limit)], 0.0)
    assert order.status is OrderStatus.REJECTED
    assert words in order.reason
    assert ex.free_balances("binance") == {"USDT": 200_000.0, "BTC": 2.0}


def test_upbit_below_5000_krw_is_rejected():
    ex = exchange()
    # 0.00003 × 140,000,000 = 4,200 KRW
    [order] = ex.submit([intent(UP, Side.SELL, 0.00003, 140_000_000.0)], 0.0)
    assert order.status is OrderStatus.REJECTED
    assert "below upbit minimum 5000 KRW" in order.reason


def test_no_book_is_rejected():
    ex = PaperExchange({"binance": {"USDT": 1000.0}}, RULES, {})
    [order] = ex.submit([intent(BN, Side.BUY, 0.001, 100_000.0)], 0.0)
    assert order.status is OrderStatus.REJECTED
    assert "no market data" in order.reason


def test_both_legs_execute_in_order_with_distinct_ids():
    ex = exchange()
    orders = ex.submit([intent(UP, Side.SELL, 0.001, 140_000_000.0, "a"),
                        intent(BN, Side.BUY, 0.001, 100_000.0, "b")], 0.0)
    assert [o.intent.client_order_id for o in orders] == ["a", "b"]
    assert len({o.exchange_order_id for o in orders}) == 2
    assert all(o.status is OrderStatus.FILLED for o in orders)
    assert ex.orders_sent == 2


def test_initial_balances_are_copied():
    initial = {"binance": {"USDT": 200_000.0}}
    ex = PaperExchange(initial, RULES, books())
    ex.submit([intent(BN, Side.BUY, 0.1, 100_000.0)], 0.0)
    assert initial == {"binance": {"USDT": 200_000.0}}
