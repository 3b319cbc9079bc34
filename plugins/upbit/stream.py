"""Upbit order books over the public WebSocket, kept alive by a daemon thread.

Each Upbit ``orderbook`` message is a full top-N snapshot (no sequence
numbers), so recovering from a drop only needs a resubscription plus one REST
snapshot per symbol for whatever changed while we were away.  Books older
than one already delivered for the same symbol are dropped, so the REST
snapshot and queued WebSocket messages cannot move a symbol back in time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any, Callable, Sequence

from websockets.sync.client import ClientConnection, connect

from arb.backoff import Backoff
from arb.book import OrderBook

from arb_upbit.parse import parse_orderbook

log = logging.getLogger(__name__)

#: Upbit accepts 1, 5, 15 or 30 levels per code; anything else means 30.
DEPTHS = (1, 5, 15, 30)


def subscribe_message(symbols: Sequence[str], depth: int) -> str:
    if depth not in DEPTHS:
        raise ValueError(f"Upbit streams {DEPTHS} levels, not {depth}")
    codes = [f"{s.upper()}.{depth}" for s in symbols]
    return json.dumps([{"ticket": str(uuid.uuid4())}, {"type": "orderbook", "codes": codes},
                       {"format": "DEFAULT"}])


def decode(frame: str | bytes) -> Any:
    """Upbit sends binary frames holding UTF-8 JSON (and text frames for some replies)."""
    return json.loads(frame.decode("utf-8") if isinstance(frame, bytes) else frame)


class UpbitBookStream:
    """Implements :class:`arb.exchange.BookStream` for Upbit."""

    def __init__(self, ws_url: str, symbols: Sequence[str], on_book: Callable[[OrderBook], None],
                 on_status: Callable[[str, str], None], snapshot: Callable[[str], OrderBook], *,
                 depth: int = 15, backoff: Backoff | None = None, open_timeout_s: float = 5.0,
                 ping_interval_s: float = 20.0, on_close: Callable[[], None] | None = None):
        self.ws_url = ws_url
        self.symbols = [s.upper() for s in symbols]
        self.depth = depth
        self.connected = False
        self.reconnects = 0
        self._on_book = on_book
        self._on_status = on_status
        self._snapshot = snapshot
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=30.0)
        self._open_timeout_s = open_timeout_s
        self._ping_interval_s = ping_interval_s
        self._on_close = on_close
        self._stop = threading.Event()
        self._conn: ClientConnection | None = None
        self._thread: threading.Thread | None = None
        self._last_ts: dict[str, float] = {}
        subscribe_message(self.symbols, depth)  # fail now on a bad depth, not in the thread

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="upbit-books", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.close()  # wakes recv() in the stream thread
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._on_close is not None:
            self._on_close()

    # --- the stream thread -----------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            detail = "stopped"
            try:
                self._session()
            except Exception as exc:  # any failure (refused, dropped, garbled) means: reconnect
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            finally:
                self._conn = None
                if self.connected:
                    self.connected = False
                    self._status("disconnected", detail)
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            self.reconnects += 1
            self._status("reconnecting", f"attempt {self.reconnects} in {delay:.2f} s")
            self._stop.wait(delay)

    def _session(self) -> None:
        # No Origin header: Upbit limits browser-like connections to one per 10 s.
        with connect(self.ws_url, open_timeout=self._open_timeout_s, ping_interval=self._ping_interval_s,
                     ping_timeout=self._ping_interval_s, close_timeout=1.0) as conn:
            self._conn = conn
            if self._stop.is_set():
                return
            conn.send(subscribe_message(self.symbols, self.depth))
            self.connected = True
            self._backoff.reset()
            self._status("connected", f"{self.ws_url} ({len(self.symbols)} symbols)")
            self._fill_gap()
            while not self._stop.is_set():
                try:
                    frame = conn.recv(timeout=1.0)
                except TimeoutError:
                    continue
                self._handle(decode(frame))

    def _fill_gap(self) -> None:
        for symbol in self.symbols:
            if self._stop.is_set():
                return
            try:
                book = self._snapshot(symbol)
            except Exception as exc:  # a failed snapshot must not end the stream
                log.warning("REST snapshot of %s after connect failed: %s", symbol, exc)
                continue
            self._deliver(book)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if "error" in message:
            error = message["error"] or {}
            raise ValueError(f"Upbit refused the subscription: {error.get('name')} {error.get('message')}")
        if message.get("type") == "orderbook":
            self._deliver(parse_orderbook(message, received_ms=time.time() * 1000.0))
        # Anything else ({"status": "UP"} answers to PING...) needs no action.

    def _deliver(self, book: OrderBook) -> None:
        last = self._last_ts.get(book.symbol, 0.0)
        if book.exchange_ts_ms and book.exchange_ts_ms < last:
            return
        self._last_ts[book.symbol] = max(last, book.exchange_ts_ms)
        try:
            self._on_book(book)
        except Exception:  # the consumer's bug must not kill the market-data thread
            log.exception("on_book failed for %s", book.symbol)

    def _status(self, state: str, detail: str) -> None:
        try:
            self._on_status(state, detail)
        except Exception:
            log.exception("on_status failed")
