"""The built-in paper market sources: simulator scenarios and replay.

Requests are built from the installed exchange plugins' own specs, so these
tests check the books against the very rules paper mode enforces.
"""

from __future__ import annotations

import json
import threading
import time
from itertools import groupby
from typing import Any, Iterable

import pytest

from arb.book import OrderBook
from arb.models import floor_to_step
from arb.plugins import PluginRegistry, load_registry
from arb.specs import Market, PairMarkets, SourceRequest

from arb_paper.scenarios import SCENARIOS

ASSETS = ("BTC", "ETH", "XRP", "SOL")


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return load_registry()


def _market(registry: PluginRegistry, exchange: str, asset: str) -> Market:
    spec = registry.exchange(exchange)
    symbol = spec.symbol_for(asset)
    return Market(exchange, symbol, spec.paper_rules(symbol))


def make_request(registry: PluginRegistry, assets: Iterable[str] = ASSETS,
                 stop: threading.Event | None = None, **options: Any) -> SourceRequest:
    pairs = tuple(PairMarkets(a, _market(registry, "upbit", a), _market(registry, "binance", a)) for a in assets)
    return SourceRequest(pairs, _market(registry, "upbit", "USDT"), options, stop or threading.Event())


def simulate(registry: PluginRegistry, assets: Iterable[str] = ASSETS, **options: Any) -> list[OrderBook]:
    options = {"realtime": False, "duration_s": 5.0, **options}
    source = registry.market_source("simulator").build(make_request(registry, assets, **options))
    return list(source.events())


def as_tuples(books: list[OrderBook]) -> list[tuple]:
    return [(b.exchange, b.symbol, b.received_ms, tuple(b.bids), tuple(b.asks)) for b in books]


def premiums(books: list[OrderBook], asset: str) -> list[float]:
    """Per step: sell KRW at the local best bid, buy at the reference best ask."""
    series = []
    for _, step in groupby(books, key=lambda b: b.received_ms):
        by_symbol = {b.symbol: b for b in step}
        fx = by_symbol["KRW-USDT"].mid
        local, ref = by_symbol[f"KRW-{asset}"], by_symbol[f"{asset}USDT"]
        series.append(local.best_bid / fx / ref.best_ask - 1.0)
    return series


def round_trips(series: list[float], high: float, low: float) -> int:
    """Times the premium went above ``high`` and then back below ``low``."""
    count, above = 0, False
    for p in series:
        if not above and p > high:
            above = True
        elif above and p < low:
            above, count = False, count + 1
    return count


def test_plugin_registers_both_sources(registry: PluginRegistry) -> None:
    assert {"simulator", "replay"} <= set(registry.market_sources)
    assert registry.market_sources["simulator"].plugin.name == "simulator"


def test_same_seed_same_books_different_seed_different(registry: PluginRegistry) -> None:
    first = as_tuples(simulate(registry, seed=11))
    assert first == as_tuples(simulate(registry, seed=11))
    assert first != as_tuples(simulate(registry, seed=12))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_books_obey_exchange_rules(registry: PluginRegistry, scenario: str) -> None:
    books = simulate(registry, assets=(*ASSETS, "DOGE", "ADA", "ZZZ"), scenario=scenario, duration_s=10.0)
    rules = {(m.exchange, m.symbol): m.rules
             for m in [*(mk for p in make_request(registry, (*ASSETS, "DOGE", "ADA", "ZZZ")).pairs
                         for mk in (p.local, p.reference)), _market(registry, "upbit", "USDT")]}
    assert len(books) == 100 * len(rules)
    for book in books:
        r = rules[(book.exchange, book.symbol)]
        assert book.problem() is None, (book.symbol, book.problem())
        assert len(book.bids) == len(book.asks) == 10
        bid_prices = [p for p, _ in book.bids]
        ask_prices = [p for p, _ in book.asks]
        assert bid_prices == sorted(bid_prices, reverse=True) and len(set(bid_prices)) == 10
        assert ask_prices == sorted(ask_prices) and len(set(ask_prices)) == 10
        assert book.best_ask - book.best_bid >= r.tick_for(book.best_bid) * (1 - 1e-6)
        for price, qty in [*book.bids, *book.asks]:
            assert price > 0 and floor_to_step(price, r.tick_for(price)) == price, (book.symbol, price)
            assert qty > 0 and r.round_qty(qty) == qty, (book.symbol, qty)
            assert r.violation(qty, price) is None, (book.symbol, r.violation(qty, price))


def test_level_values_give_depth_in_usdt(registry: PluginRegistry) -> None:
    def values(books: list[OrderBook]) -> list[float]:
        return [p * q for b in books if b.exchange == "binance" for p, q in [*b.bids, *b.asks]]

    cycle, violent = values(simulate(registry, scenario="cycle")), values(simulate(registry, scenario="violent"))
    assert 1_900 <= min(cycle) and max(cycle) <= 30_500  # asks sit a little above the mid
    assert sorted(violent)[len(violent) // 2] * 3 < sorted(cycle)[len(cycle) // 2]


def test_duration_ends_stream_with_expected_count(registry: PluginRegistry) -> None:
    books = simulate(registry, assets=("BTC", "XRP"), duration_s=2.0, updates_per_second=5.0, start_ms=1_000)
    assert len(books) == 2 * 5 * (1 + 2 * 2)
    stamps = sorted({b.received_ms for b in books})
    assert stamps == [1_000 + 200 * k for k in range(10)]


class SpyStop(threading.Event):
    """A stop event that records waits and ends them at once instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.set()
        return True


def test_realtime_with_stop_set_ends_without_waiting(registry: PluginRegistry) -> None:
    stop = SpyStop()
    stop.set()
    source = registry.market_source("simulator").build(make_request(registry, stop=stop, realtime=True))
    assert list(source.events()) == []
    assert stop.waits == []


def test_realtime_paces_on_stop_event_and_stamps_wall_clock(registry: PluginRegistry) -> None:
    stop = SpyStop()
    source = registry.market_source("simulator").build(
        make_request(registry, assets=("BTC",), stop=stop, realtime=True, updates_per_second=4.0))
    before = time.time() * 1000
    books = list(source.events())  # the first step is due at once; the second waits and is stopped
    assert len(books) == 3
    assert len(stop.waits) == 1 and 0 < stop.waits[0] <= 0.25
    assert all(before <= b.received_ms <= time.time() * 1000 for b in books)


def test_close_sets_stop(registry: PluginRegistry) -> None:
    request = make_request(registry, realtime=False, duration_s=5.0)  # a broken close() fails, not hangs
    source = registry.market_source("simulator").build(request)
    events = source.events()
    next(events)
    source.close()
    assert request.stop.is_set()
    assert len(list(events)) < 2 * len(ASSETS) + 1  # at most the rest of the current step


def test_cycle_opens_and_closes_several_times_a_minute(registry: PluginRegistry) -> None:
    books = simulate(registry, assets=("BTC", "XRP"), scenario="cycle", duration_s=60.0)
    for asset in ("BTC", "XRP"):
        series = premiums(books, asset)
        assert max(series) > 0.02 and min(series) < -0.002
        assert round_trips(series, high=0.012, low=0.003) >= 2, asset


def test_flat_never_reaches_one_percent(registry: PluginRegistry) -> None:
    books = simulate(registry, scenario="flat", duration_s=120.0)
    for asset in ASSETS:
        series = premiums(books, asset)
        assert max(series) < 0.01
        assert 0.001 < sum(series) / len(series) < 0.005


def test_violent_jumps(registry: PluginRegistry) -> None:
    books = simulate(registry, assets=("ETH",), scenario="violent", duration_s=120.0)
    series = premiums(books, "ETH")
    jumps = [abs(b - a) for a, b in zip(series, series[1:])]
    assert max(jumps) > 0.02
    assert max(series) > 0.03 and min(series) < -0.01


def test_unknown_scenario_lists_known_names(registry: PluginRegistry) -> None:
    with pytest.raises(ValueError) as info:
        simulate(registry, scenario="sideways")
    message = str(info.value)
    assert "sideways" in message and all(name in message for name in SCENARIOS)


@pytest.mark.parametrize("options", [{"updates_per_second": 0}, {"levels": 0}, {"seed": "x"},
                                     {"start_prices": {"BTC": -1}}, {"realtime": "yes"}])
def test_bad_options_are_value_errors(registry: PluginRegistry, options: dict) -> None:
    with pytest.raises(ValueError):
        simulate(registry, **options)


def _replay(registry: PluginRegistry, **options: Any) -> list[OrderBook]:
    source = registry.market_source("replay").build(make_request(registry, assets=("BTC",), **options))
    return list(source.events())


def test_replay_round_trips_and_skips_unrequested_markets(registry: PluginRegistry, tmp_path) -> None:
    recorded = [b for b in simulate(registry, assets=("BTC", "ETH"), duration_s=1.0)]
    path = tmp_path / "books.jsonl"
    path.write_text("\n".join(json.dumps({"exchange": b.exchange, "symbol": b.symbol, "ts_ms": b.received_ms,
                                          "bids": b.bids, "asks": b.asks}) for b in recorded) + "\n\n")
    played = _replay(registry, path=str(path))
    expected = [b for b in recorded if "ETH" not in b.symbol]
    assert len(played) == len(expected) == 10 * 3
    assert as_tuples(played) == as_tuples(expected)


def test_replay_names_malformed_line(registry: PluginRegistry, tmp_path) -> None:
    good = json.dumps({"exchange": "binance", "symbol": "BTCUSDT", "ts_ms": 1,
                       "bids": [[1.0, 1.0]], "asks": [[2.0, 1.0]]})
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n{good}\n{{\"exchange\": \"binance\", \"symbol\": \"BTCUSDT\"}}\n")
    with pytest.raises(ValueError, match=r"line 3\b"):
        _replay(registry, path=str(path))


@pytest.mark.parametrize("path", [None, "does/not/exist.jsonl"])
def test_replay_requires_readable_path(registry: PluginRegistry, path: str | None) -> None:
    options = {} if path is None else {"path": path}
    with pytest.raises(ValueError, match="path" if path is None else "cannot be read"):
        _replay(registry, **options)


def test_replay_refuses_books_going_back_in_time(registry: PluginRegistry, tmp_path) -> None:
    lines = [json.dumps({"exchange": "binance", "symbol": "BTCUSDT", "ts_ms": ts,
                         "bids": [[1.0, 1.0]], "asks": [[2.0, 1.0]]}) for ts in (5, 9, 7)]
    path = tmp_path / "shuffled.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"line 3\b.*back in time"):
        _replay(registry, path=str(path))


def test_replay_realtime_paces_by_recorded_gaps(registry: PluginRegistry, tmp_path) -> None:
    def line(symbol: str, ts: int) -> str:
        return json.dumps({"exchange": "binance", "symbol": symbol, "ts_ms": ts,
                           "bids": [[1.0, 1.0]], "asks": [[2.0, 1.0]]})

    path = tmp_path / "paced.jsonl"
    path.write_text("\n".join([line("ETHUSDT", 0), line("BTCUSDT", 1_000), line("BTCUSDT", 1_000),
                               line("BTCUSDT", 1_500)]))
    stop = SpyStop()
    before = time.time() * 1000
    played = _replay(registry, path=str(path), realtime=True, stop=stop)
    # ETHUSDT was not requested, so the clock starts at the first BTCUSDT book.
    assert [b.exchange_ts_ms for b in played] == [1_000, 1_000]
    assert len(stop.waits) == 1 and 0.4 < stop.waits[0] <= 0.5
    assert all(b.received_ms >= before for b in played)
