"""The "replay" market source: books recorded as JSON lines, played back.

One object per line::

    {"exchange": "upbit", "symbol": "KRW-BTC", "ts_ms": 1767225600000,
     "bids": [[133000000, 0.05], ...], "asks": [[133001000, 0.04], ...]}

Lines are read lazily so long recordings do not have to fit in memory; a
malformed line therefore surfaces when playback reaches it, naming its line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

from arb.book import Level, OrderBook
from arb.specs import SourceRequest

from arb_paper.clock import Pacer


class ReplaySource:
    """Implements :class:`arb.specs.MarketSource`."""

    def __init__(self, request: SourceRequest):
        self._request = request
        options = request.options
        path = options.get("path")
        if not isinstance(path, (str, Path)) or not str(path):
            raise ValueError("replay source needs option 'path': a JSON-lines file of recorded books")
        self.path = Path(path)
        try:
            with self.path.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(f"replay file {str(self.path)!r} cannot be read: {exc.strerror or exc}") from None
        realtime = options.get("realtime", False)
        if not isinstance(realtime, bool):
            raise ValueError(f"replay option realtime must be true or false, got {realtime!r}")
        self.realtime = realtime
        self._wanted = {(m.exchange, m.symbol) for p in request.pairs for m in (p.local, p.reference)}
        self._wanted.add((request.fx.exchange, request.fx.symbol))

    def close(self) -> None:
        self._request.stop.set()

    def events(self) -> Iterator[OrderBook | None]:
        pacer = Pacer(self._request.stop, self.realtime)
        first_ts: float | None = None
        last_ts = -math.inf
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                book = parse_line(line, number, self.path)
                # The source contract is time order; a shuffled file would make
                # books look fresher than they were, so refuse it rather than guess.
                if book.exchange_ts_ms < last_ts:
                    raise ValueError(f"{self.path}: line {number}: ts_ms {book.exchange_ts_ms:g} "
                                     f"goes back in time (previous line had {last_ts:g})")
                last_ts = book.exchange_ts_ms
                if (book.exchange, book.symbol) not in self._wanted:
                    continue
                if first_ts is None:
                    first_ts = book.exchange_ts_ms
                if not pacer.wait_until((book.exchange_ts_ms - first_ts) / 1000.0):
                    return
                book.received_ms = pacer.received_ms(book.exchange_ts_ms)
                yield book


def parse_line(line: str, number: int, path: Path | str = "replay") -> OrderBook:
    """One recorded book; ``ValueError`` naming the line when it is malformed."""
    where = f"{path}: line {number}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("exchange", "symbol"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
    ts = obj.get("ts_ms")
    if not _is_number(ts):
        raise ValueError(f"{where}: 'ts_ms' must be a number, got {ts!r}")
    return OrderBook(obj["exchange"], obj["symbol"], _levels(obj.get("bids"), "bids", where),
                     _levels(obj.get("asks"), "asks", where), received_ms=float(ts), exchange_ts_ms=float(ts))


def _levels(raw: Any, key: str, where: str) -> list[Level]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: {key!r} must be a list of [price, qty] pairs")
    levels: list[Level] = []
    for i, level in enumerate(raw):
        if (not isinstance(level, (list, tuple)) or len(level) != 2
                or not all(_is_number(v) and v > 0 for v in level)):
            raise ValueError(f"{where}: {key}[{i}] must be [price, qty] with positive numbers, got {level!r}")
        levels.append((float(level[0]), float(level[1])))
    return levels


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
