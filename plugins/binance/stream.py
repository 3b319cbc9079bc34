"""Top-20 order book snapshots over one combined WebSocket stream.

``<symbol>@depth20@100ms`` sends the whole top 20 every 100 ms, so there is
no diff sequence to keep: any message can replace the book.  What a drop
loses is only time, and that gap is filled by a REST snapshot per symbol
right after every (re)connect.  Stream messages older than that snapshot
(``lastUpdateId`` below it) are skipped so the book never goes backwards.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Sequence

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from arb.backoff import Backoff
from arb.book import OrderBook
from arb.errors import ExchangeError

from arb_binance import parse

log = logging.getLogger("arb.binance")

DEPTH_STREAM = "depth20@100ms"
STREAM_LEVELS = 20

Snapshot = Callable[[str, int], tuple[OrderBook, int]]   # (symbol, depth) -> (book, lastUpdateId)


def stream_url(ws_url: str, symbols: Sequence[str]) -> str:
    names = "/".join(f"{symbol.lower()}@{DEPTH_STREAM}" for symbol in symbols)
    return f"{ws_url.rstrip('/')}/stream?streams={names}"


class BinanceBookStream:
    def __init__(self, ws_url: str, symbols: Sequence[str], on_book: Callable[[OrderBook], None],
                 on_status: Callable[[str, str], None], snapshot: Snapshot, *,
                 backoff: Backoff | None = None, open_timeout_s: float = 10.0, stop_timeout_s: float = 5.0):
        if not symbols:
            raise ValueError("binance book stream: no symbols")
        self.url = stream_url(ws_url, symbols)
        self._by_stream = {f"{s.lower()}@{DEPTH_STREAM}": s.upper() for s in symbols}
        self._on_book = on_book
        self._on_status = on_status
        self._snapshot = snapshot
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=30.0)
        self._open_timeout_s = open_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: ClientConnection | None = None
        self._snapshot_ids: dict[str, int] = {}
        self.connected = False
        self.reconnects = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="binance-book-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            ws.close()            # wakes the reader thread
        if self._thread is not None:
            self._thread.join(timeout=self._stop_timeout_s)
            if self._thread.is_alive():
                log.warning("binance book stream did not stop within %.0f s", self._stop_timeout_s)

    # --- the reader thread ------------------------------------------------------------

    def _run(self) -> None:
        ever_connected = False
        while not self._stopping.is_set():
            try:
                with connect(self.url, open_timeout=self._open_timeout_s, close_timeout=1.0,
                             max_size=2**22) as ws:
                    self._ws = ws
                    if self._stopping.is_set():
                        break
                    if ever_connected:
                        self.reconnects += 1
                    ever_connected = True
                    self.connected = True
                    self._backoff.reset()
                    self._status("connected", f"{len(self._by_stream)} streams")
                    self._fill_gap()
                    detail = self._read(ws)
            except (OSError, TimeoutError, WebSocketException) as exc:
                detail = type(exc).__name__
            except Exception:  # never let the feed thread die: log, reconnect
                log.exception("binance book stream failed")
                detail = "internal error"
            finally:
                self._ws = None
            if self.connected:
                self.connected = False
                self._status("disconnected", detail)
            if self._stopping.is_set():
                break
            delay = self._backoff.next_delay()
            self._status("reconnecting", f"in {delay:.2f} s")
            self._stopping.wait(delay)

    def _read(self, ws: ClientConnection) -> str:
        """Deliver messages until the connection ends; returns why it ended."""
        for raw in ws:
            try:
                message = json.loads(raw)
            except ValueError:
                log.warning("binance stream: unreadable message skipped")
                continue
            data = message.get("data", message) if isinstance(message, dict) else None
            if not isinstance(data, dict):
                continue
            if data.get("e") == "serverShutdown":
                # Binance is about to drop us: leave now and reconnect to
                # another server rather than wait for the cut.
                return "serverShutdown"
            symbol = self._by_stream.get(message.get("stream", ""))
            if symbol is None or "bids" not in data:
                continue
            try:
                if int(data.get("lastUpdateId", 0)) < self._snapshot_ids.get(symbol, 0):
                    continue
                book = parse.book(symbol, data, time.time() * 1000.0)
            except (TypeError, ValueError, KeyError):
                log.warning("binance stream: malformed %s book skipped", symbol)
                continue
            self._deliver(book)
        return "closed by server" if not self._stopping.is_set() else "stopped"

    def _fill_gap(self) -> None:
        for symbol in self._by_stream.values():
            if self._stopping.is_set():
                return
            try:
                book, update_id = self._snapshot(symbol, STREAM_LEVELS)
            except ExchangeError as exc:
                log.warning("binance %s REST snapshot after connect failed: %s", symbol, exc)
                continue
            self._snapshot_ids[symbol] = update_id
            self._deliver(book)

    def _deliver(self, book: OrderBook) -> None:
        try:
            self._on_book(book)
        except Exception:  # a consumer's bug must not kill the feed
            log.exception("binance book consumer failed on %s", book.symbol)

    def _status(self, state: str, detail: str) -> None:
        try:
            self._on_status(state, detail)
        except Exception:
            log.exception("binance stream status consumer failed")
