"""The emulator's WebSocket side: partial-depth streams, as Binance serves them.

``/stream?streams=a/b`` (combined, each message wrapped in
``{"stream", "data"}``) or ``/ws/<stream>`` (raw).  Each connection gets a
snapshot of its books on subscribe and again whenever one changes; live
``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` requests work too.
"""

from __future__ import annotations

import json
import queue
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

if TYPE_CHECKING:
    from arb_binance.emulator import BinanceEmulator

_DEPTH = re.compile(r"^([a-z0-9]+)@depth(5|10|20)(?:@(?:100|1000)ms)?$")
_CLOSE = object()
_POLL_S = 0.01


@dataclass
class _Subscriber:
    conn: ServerConnection
    combined: bool
    streams: dict[str, tuple[str, int]] = field(default_factory=dict)   # name -> (SYMBOL, levels)
    outbox: queue.Queue = field(default_factory=queue.Queue)


class StreamHub:
    def __init__(self, emulator: BinanceEmulator):
        self._emulator = emulator
        self._subscribers: list[_Subscriber] = []
        self._closed = False

    # --- called by the emulator ------------------------------------------------------

    def publish(self, symbol: str) -> None:
        with self._emulator.lock:
            for sub in self._subscribers:
                for name, (sym, _) in sub.streams.items():
                    if sym == symbol:
                        sub.outbox.put(self._message(sub, name))

    def server_shutdown(self, server_ms: int, close: bool) -> None:
        with self._emulator.lock:
            for sub in self._subscribers:
                sub.outbox.put({"e": "serverShutdown", "E": server_ms})
                if close:
                    sub.outbox.put(_CLOSE)

    def close(self) -> None:
        self._closed = True

    # --- one connection (runs in the WebSocket server's handler thread) ----------------

    def serve(self, conn: ServerConnection) -> None:
        parts = urlsplit(conn.request.path if conn.request else "")
        if parts.path == "/stream":
            sub = _Subscriber(conn, combined=True)
            names = parse_qs(parts.query).get("streams", [""])[0].split("/")
        elif parts.path.startswith("/ws/"):
            sub = _Subscriber(conn, combined=False)
            names = parts.path[len("/ws/"):].split("/")
        else:
            conn.close(1008, "unknown path")
            return
        with self._emulator.lock:
            self._subscribe(sub, names)
            self._subscribers.append(sub)
        try:
            self._pump(sub)
        except (ConnectionClosed, OSError):
            pass   # dropped by the client or by drop_websockets()
        finally:
            with self._emulator.lock:
                self._subscribers.remove(sub)

    def _pump(self, sub: _Subscriber) -> None:
        while not self._closed:
            try:
                item = sub.outbox.get(timeout=_POLL_S)
            except queue.Empty:
                item = None
            if item is _CLOSE:
                sub.conn.close()
                return
            if item is not None:
                sub.conn.send(json.dumps(item))
            try:
                incoming = sub.conn.recv(timeout=0)
            except TimeoutError:
                continue
            self._control(sub, incoming)

    def _control(self, sub: _Subscriber, raw: str | bytes) -> None:
        try:
            request = json.loads(raw)
            method, request_id = request["method"], request.get("id")
        except (ValueError, KeyError, TypeError):
            sub.outbox.put({"error": {"code": 3, "msg": "Invalid JSON"}})
            return
        with self._emulator.lock:
            if method == "SUBSCRIBE":
                self._subscribe(sub, request.get("params", []))
                result: Any = None
            elif method == "UNSUBSCRIBE":
                for name in request.get("params", []):
                    sub.streams.pop(name, None)
                result = None
            elif method == "LIST_SUBSCRIPTIONS":
                result = list(sub.streams)
            else:
                sub.outbox.put({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                                "id": request_id})
                return
        sub.outbox.put({"result": result, "id": request_id})

    def _subscribe(self, sub: _Subscriber, names: list[str]) -> None:
        for name in names:
            match = _DEPTH.match(name)
            symbol = match.group(1).upper() if match else ""
            if symbol in self._emulator.market.symbols:
                sub.streams[name] = (symbol, int(match.group(2)))
                sub.outbox.put(self._message(sub, name))

    def _message(self, sub: _Subscriber, name: str) -> dict[str, Any]:
        symbol, levels = sub.streams[name]
        data = self._emulator.market.depth(symbol, levels)
        return {"stream": name, "data": data} if sub.combined else data
