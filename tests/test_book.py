"""Order books: walking the depth an order needs, and refusing insane books."""

from __future__ import annotations

import pytest

from arb.book import OrderBook, depth, quantity_for_quote, walk

ASKS = [(100.0, 0.5), (101.0, 1.0), (103.0, 2.0)]
BIDS = [(99.0, 0.5), (98.0, 1.0), (96.0, 2.0)]


def book(bids=BIDS, asks=ASKS, received_ms=1_000.0) -> OrderBook:
    return OrderBook("binance", "BTCUSDT", list(bids), list(asks), received_ms)


def test_walk_within_the_top_level():
    w = walk(ASKS, 0.2)
    assert w.quantity == pytest.approx(0.2)
    assert w.avg_price == 100.0
    assert w.worst_price == 100.0


def test_walk_across_levels():
    # 0.5 @ 100 + 1.0 @ 101 + 0.5 @ 103 = 50 + 101 + 51.5 = 202.5 for 2.0
    w = walk(ASKS, 2.0)
    assert w.quantity == pytest.approx(2.0)
    assert w.avg_price == pytest.approx(202.5 / 2.0)
    assert w.worst_price == 103.0


def test_walk_bids_worst_is_the_lowest_touched():
    # 0.5 @ 99 + 0.5 @ 98 = 98.5 average
    w = walk(BIDS, 1.0)
    assert w.avg_price == pytest.approx(98.5)
    assert w.worst_price == 98.0


def test_walk_exactly_a_level_boundary_stops_there():
    w = walk(ASKS, 1.5)
    assert w.worst_price == 101.0
    assert w.avg_price == pytest.approx((50 + 101) / 1.5)


def test_walk_beyond_visible_depth_is_partial():
    # all 3.5 visible: 50 + 101 + 206 = 357
    w = walk(ASKS, 10.0)
    assert w.quantity == pytest.approx(3.5)
    assert w.avg_price == pytest.approx(357 / 3.5)
    assert w.worst_price == 103.0


def test_walk_float_noise_does_not_touch_a_level_not_needed():
    # 0.1 + 0.3 leaves 5e-17 "remaining" in floats: that is not a reason to
    # reach for the third level (a worse limit price), nor a partial walk.
    levels = [(100.0, 0.1), (101.0, 0.3), (150.0, 5.0)]
    w = walk(levels, 0.4)
    assert w.worst_price == 101.0
    assert w.quantity == 0.4
    assert w.avg_price == pytest.approx((10.0 + 30.3) / 0.4)
    # and without a third level, the two levels are enough for all of it
    assert walk(levels[:2], 0.4).quantity == 0.4


def test_walk_empty_book_and_zero_quantity():
    assert walk([], 1.0).quantity == 0.0
    assert walk([], 1.0).avg_price == 0.0
    assert walk(ASKS, 0.0).quantity == 0.0


def test_depth_counts_only_max_levels():
    assert depth(ASKS, 1) == 0.5
    assert depth(ASKS, 2) == 1.5
    assert depth(ASKS, 10) == 3.5
    assert depth([], 5) == 0.0


def test_quantity_for_quote():
    # 30 USDT at 100 = 0.3
    assert quantity_for_quote(ASKS, 30.0) == pytest.approx(0.3)
    # 50 buys the first level, 101 the second, 10.3 more buys 0.1 @ 103
    assert quantity_for_quote(ASKS, 50 + 101 + 10.3) == pytest.approx(1.6)
    # more than the book holds: everything visible
    assert quantity_for_quote(ASKS, 1e9) == pytest.approx(3.5)


def test_top_of_book_and_mid():
    b = book()
    assert b.best_bid == 99.0
    assert b.best_ask == 100.0
    assert b.mid == 99.5
    assert b.age_ms(1_250.0) == 250.0


def test_sane_book_has_no_problem():
    assert book().problem() is None


@pytest.mark.parametrize("bids, asks", [([], ASKS), (BIDS, []), ([], [])])
def test_empty_side_is_a_problem(bids, asks):
    b = book(bids, asks)
    assert b.problem() == "empty book"
    assert b.best_bid == (bids[0][0] if bids else 0.0)
    assert b.best_ask == (asks[0][0] if asks else 0.0)


@pytest.mark.parametrize("bids", [[(100.5, 1.0)], [(100.0, 1.0)]])
def test_crossed_or_locked_book_is_a_problem(bids):
    assert book(bids=bids).problem() == "crossed book"
