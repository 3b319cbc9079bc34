"""Realized PnL from the cash each leg really moved, per trading day (UTC).

Every expected figure below is worked out by hand from the fills: a sell
brings in price × qty − fee, a buy costs price × qty + fee, and KRW amounts
are turned into USDT at the FX rate of the plan that sent the leg.
"""

from __future__ import annotations

import calendar

import pytest

from arb.models import Fill, Order, OrderIntent, OrderStatus, Side
from arb.plugins import load_registry
from arb.portfolio import Portfolio, cashflow, trading_day
from arb.specs import Market, PairMarkets
from arb.strategy import Direction, Pair, Plan

REGISTRY = load_registry()
QUOTES = {("upbit", "KRW-BTC"): "KRW", ("binance", "BTCUSDT"): "USDT"}


def utc_ms(year, month, day, hour=0, minute=0, second=0) -> float:
    return calendar.timegm((year, month, day, hour, minute, second)) * 1000.0


def market(exchange: str, asset: str) -> Market:
    spec = REGISTRY.exchange(exchange)
    symbol = spec.symbol_for(asset)
    return Market(exchange, symbol, spec.paper_rules(symbol))


PAIR = Pair(PairMarkets("BTC", market("upbit", "BTC"), market("binance", "BTC")))


def filled(exchange, symbol, side, qty, price, fee_rate) -> Order:
    intent = OrderIntent(exchange, symbol, side, qty, price, price, f"id-{exchange}-{side.value}")
    return Order(intent, "x", OrderStatus.FILLED, [Fill(qty, price, qty * price * fee_rate, 0.0)])


def plan(kind, fx, legs, direction=Direction.SELL_LOCAL, premium=0.0, trade_id=0) -> Plan:
    return Plan(kind, "BTC", direction, legs[0].intent.quantity, tuple(o.intent for o in legs), premium,
                premium, fx, trade_id)


def open_sell_local(portfolio: Portfolio, now_ms: float):
    # FX 1,400. Sell 0.01 BTC on Upbit at 140,000,000 KRW: +1,400,000 − 700 fee
    # = 1,399,300 KRW = 999.50 USDT.  Buy 0.01 on Binance at 97,000:
    # −970 − 0.97 fee = −970.97 USDT.  Open cash flow: +28.53 USDT.
    orders = [filled("upbit", "KRW-BTC", Side.SELL, 0.01, 140_000_000, 0.0005),
              filled("binance", "BTCUSDT", Side.BUY, 0.01, 97_000, 0.001)]
    return portfolio.open(plan("open", 1400.0, orders, premium=3.0), orders, now_ms)


def close_sell_local(portfolio: Portfolio, trade, now_ms: float, fx: float = 1350.0):
    # FX 1,350 now. Buy back 0.01 on Upbit at 132,300,000: −1,323,000 − 661.5
    # fee = −1,323,661.5 KRW = −980.49 USDT.  Sell 0.01 on Binance at 98,000:
    # +980 − 0.98 = +979.02.  Close cash flow: −1.47 USDT.
    orders = [filled("upbit", "KRW-BTC", Side.BUY, 0.01, 132_300_000, 0.0005),
              filled("binance", "BTCUSDT", Side.SELL, 0.01, 98_000, 0.001)]
    return portfolio.close(trade, plan("close", fx, orders, premium=0.0, trade_id=trade.id), orders, now_ms)


def test_cashflow_of_each_leg():
    sell = filled("upbit", "KRW-BTC", Side.SELL, 0.01, 140_000_000, 0.0005)
    buy = filled("binance", "BTCUSDT", Side.BUY, 0.01, 97_000, 0.001)
    assert cashflow(sell, 1400.0, "KRW", "KRW") == pytest.approx(999.5)
    assert cashflow(buy, 1400.0, "KRW", "USDT") == pytest.approx(-970.97)   # FX ignored for USDT


def test_round_trip_realized_pnl_with_each_legs_fx():
    p = Portfolio("KRW", QUOTES)
    t0 = utc_ms(2024, 3, 1, 10)
    trade = open_sell_local(p, t0)
    assert trade.open_cashflow == pytest.approx(28.53)
    assert trade.quantity == 0.01
    assert p.trades_opened == 1 and list(p.open_trades) == [trade.id]

    pnl = close_sell_local(p, trade, t0 + 60_000)
    # 28.53 − 1.47; converting the close at the open's 1,400 would give 25.1275
    assert pnl == pytest.approx(27.06)
    assert trade.realized_pnl == pytest.approx(27.06)
    assert p.realized_pnl == pytest.approx(27.06)
    assert p.trades_closed == 1
    assert p.open_trades == {}
    assert trade.closed_ms == t0 + 60_000


def test_buy_local_round_trip():
    # FX 1,400. Buy 0.01 on Upbit at 135,800,000 (97,000 USDT): −1,358,000 −
    # 679 = −1,358,679 KRW = −970.485 USDT; sell 0.01 on Binance at 100,000:
    # +1,000 − 1 = 999.  Open: +28.515.
    p = Portfolio("KRW", QUOTES)
    opens = [filled("binance", "BTCUSDT", Side.SELL, 0.01, 100_000, 0.001),
             filled("upbit", "KRW-BTC", Side.BUY, 0.01, 135_800_000, 0.0005)]
    trade = p.open(plan("open", 1400.0, opens, Direction.BUY_LOCAL), opens, 0.0)
    assert trade.open_cashflow == pytest.approx(28.515)
    # Close at FX 1,400: buy back Binance at 98,500: −985 − 0.985 = −985.985;
    # sell Upbit at 137,900,000 (98,500 USDT): 1,379,000 − 689.5 = 1,378,310.5
    # KRW = 984.5075 USDT.  Close: −1.4775.  PnL: 27.0375.
    closes = [filled("binance", "BTCUSDT", Side.BUY, 0.01, 98_500, 0.001),
              filled("upbit", "KRW-BTC", Side.SELL, 0.01, 137_900_000, 0.0005)]
    pnl = p.close(trade, plan("close", 1400.0, closes, Direction.BUY_LOCAL, trade_id=trade.id), closes, 1.0)
    assert pnl == pytest.approx(27.0375)


def test_pnl_by_trading_day_utc():
    p = Portfolio("KRW", QUOTES)
    late = utc_ms(2024, 3, 1, 23, 59, 59)
    early = utc_ms(2024, 3, 2, 0, 0, 1)
    close_sell_local(p, open_sell_local(p, late - 60_000), late)
    close_sell_local(p, open_sell_local(p, late), early)
    # A losing one the same day: close at FX 1,300 makes the Upbit buy-back
    # −1,323,661.5 / 1,300 = −1,018.20115…; close flow −39.18115…
    close_sell_local(p, open_sell_local(p, early), early + 1, fx=1300.0)
    loss = 28.53 - 1_323_661.5 / 1300 + 979.02
    assert p.realized_by_day == pytest.approx({"2024-03-01": 27.06, "2024-03-02": 27.06 + loss})
    assert p.realized_today(utc_ms(2024, 3, 1, 12)) == pytest.approx(27.06)
    assert p.realized_today(utc_ms(2024, 3, 2, 12)) == pytest.approx(27.06 + loss)
    assert p.realized_today(utc_ms(2024, 3, 3, 12)) == 0.0
    assert p.realized_pnl == pytest.approx(2 * 27.06 + loss)


def test_trading_day():
    assert trading_day(utc_ms(2024, 2, 29, 23, 59, 59)) == "2024-02-29"
    assert trading_day(utc_ms(2024, 3, 1)) == "2024-03-01"
    # with the day starting at 09:00 UTC
    nine = 9 * 3_600_000
    assert trading_day(utc_ms(2024, 3, 1, 8, 59), nine) == "2024-02-29"
    assert trading_day(utc_ms(2024, 3, 1, 9, 0), nine) == "2024-03-01"


def test_unrealized_estimate_at_top_of_book():
    p = Portfolio("KRW", QUOTES)
    trade = open_sell_local(p, 0.0)
    # Closing now: buy 0.01 on Upbit at the 137,200,000 ask (FX 1,400 → 98,000
    # USDT) with 0.05% fee = −980.49; sell 0.01 on Binance at the 98,000 bid
    # with 0.1% fee = +979.02.  28.53 − 980.49 + 979.02 = 27.06.
    value = Portfolio.unrealized(trade, PAIR, local_bid=137_100_000, local_ask=137_200_000,
                                 ref_bid=98_000, ref_ask=98_010, fx=1400.0)
    assert value == pytest.approx(27.06)
    # a BUY_LOCAL trade sells Upbit at its bid and buys Binance at its ask
    opens = [filled("binance", "BTCUSDT", Side.SELL, 0.01, 100_000, 0.001),
             filled("upbit", "KRW-BTC", Side.BUY, 0.01, 135_800_000, 0.0005)]
    t2 = p.open(plan("open", 1400.0, opens, Direction.BUY_LOCAL), opens, 0.0)
    value = Portfolio.unrealized(t2, PAIR, local_bid=137_900_000, local_ask=138_000_000,
                                 ref_bid=98_490, ref_ask=98_500, fx=1400.0)
    assert value == pytest.approx(27.0375)


def test_partially_filled_open_records_the_smaller_quantity():
    p = Portfolio("KRW", QUOTES)
    orders = [filled("upbit", "KRW-BTC", Side.SELL, 0.01, 140_000_000, 0.0005),
              filled("binance", "BTCUSDT", Side.BUY, 0.008, 97_000, 0.001)]
    trade = p.open(plan("open", 1400.0, orders), orders, 0.0)
    assert trade.quantity == 0.008
