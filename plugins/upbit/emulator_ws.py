"""The Upbit emulator's public WebSocket: subscriptions, snapshots, pushes, PING.

A client sends Upbit's request array (ticket, type objects, format); it gets
one SNAPSHOT message per code (unless ``is_only_realtime``), then a REALTIME
message whenever that book changes (unless ``is_only_snapshot``).  The text
``PING`` is answered ``{"status":"UP"}``.  Books go out as binary frames, as
Upbit sends them, unless the feed is told to use text.
"""

from __future__ import annotations

import json
import threading
from typing import Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

#: (market, depth, stream_type) -> the JSON text of one orderbook message
MessageFor = Callable[[str, int, str], str]


def parse_subscription(frame: str | bytes) -> tuple[dict[str, int], bool, bool]:
    """Upbit's request array -> ({market: depth}, send a snapshot, keep streaming).

    Raises ValueError named after Upbit's error (WRONG_FORMAT, NO_TICKET...)."""
    try:
        request = json.loads(frame)
    except ValueError:
        raise ValueError("WRONG_FORMAT") from None
    if not isinstance(request, list) or not request:
        raise ValueError("WRONG_FORMAT")
    if not any(isinstance(part, dict) and "ticket" in part for part in request):
        raise ValueError("NO_TICKET")
    types = [part for part in request if isinstance(part, dict) and "type" in part]
    if not types:
        raise ValueError("NO_TYPE")
    codes: dict[str, int] = {}
    snapshot, realtime = True, True
    for part in types:
        if part["type"] != "orderbook":
            continue  # the emulator serves order books only
        if not part.get("codes"):
            raise ValueError("NO_CODES")
        for code in part["codes"]:
            if not isinstance(code, str) or code != code.upper():
                raise ValueError("INVALID_PARAM")
            market, _, unit = code.partition(".")
            codes[market] = int(unit) if unit in ("1", "5", "15", "30") else 30
        snapshot = not part.get("is_only_realtime", False)
        realtime = not part.get("is_only_snapshot", False)
    return codes, snapshot, realtime


class BookFeed:
    """Per-connection subscriptions; ``lock`` is the emulator's, guarding the books."""

    def __init__(self, lock: threading.RLock, message_for: MessageFor, known: Callable[[str], bool],
                 binary: bool = True):
        self._lock = lock
        self._message_for = message_for
        self._known = known
        self.binary = binary
        self._subs: dict[ServerConnection, dict[str, int]] = {}
        self._send_locks: dict[ServerConnection, threading.Lock] = {}

    def serve(self, conn: ServerConnection) -> None:
        """Run one connection until it closes."""
        self._send_locks[conn] = threading.Lock()
        try:
            while True:
                frame = conn.recv()
                if frame in ("PING", b"PING"):
                    self._send(conn, json.dumps({"status": "UP"}), text_frame=True)
                    continue
                try:
                    codes, snapshot, realtime = parse_subscription(frame)
                except ValueError as exc:
                    error = {"error": {"name": str(exc), "message": f"bad request: {exc}"}}
                    self._send(conn, json.dumps(error), text_frame=True)
                    return
                with self._lock:
                    codes = {m: d for m, d in codes.items() if self._known(m)}
                    if realtime:
                        self._subs[conn] = codes
                    else:
                        self._subs.pop(conn, None)
                    first = [self._message_for(m, d, "SNAPSHOT") for m, d in codes.items()] if snapshot else []
                for message in first:
                    self._send(conn, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._subs.pop(conn, None)
            self._send_locks.pop(conn, None)

    def publish(self, markets: set[str]) -> None:
        """Push the current book of each changed market to its subscribers."""
        if not markets:
            return
        with self._lock:
            outgoing = [(conn, self._message_for(m, codes[m], "REALTIME"))
                        for conn, codes in self._subs.items() for m in markets if m in codes]
        for conn, message in outgoing:
            self._send(conn, message)

    def _send(self, conn: ServerConnection, message: str, *, text_frame: bool = False) -> None:
        lock = self._send_locks.get(conn)
        if lock is None:
            return
        payload: str | bytes = message if text_frame or not self.binary else message.encode()
        try:
            with lock:  # pushes come from HTTP threads and test code at once
                conn.send(payload)
        except (ConnectionClosed, OSError):
            pass  # the connection's own reader loop cleans up
