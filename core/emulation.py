"""Building blocks for exchange emulators used in tests.

An emulator is a real HTTP server and a real WebSocket server on 127.0.0.1
(ephemeral ports), so adapters are tested over the same protocols they speak
to the exchange.  Exchange plugins subclass :class:`ExchangeEmulator` and
add the exchange's routes, auth checks and matching.  Faults are queued per
route and consumed one request at a time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from websockets.sync.server import ServerConnection, serve


@dataclass
class Request:
    method: str
    path: str
    query: str            # the raw query string, exactly as sent
    body: bytes
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None                 # JSON-encoded unless bytes or str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """What to do to the next request matching ``method`` and ``path``.

    kinds: ``status`` (answer ``status`` with ``body`` and ``headers`` without
    processing), ``status_after`` (process, then answer ``status`` anyway:
    the work is done but the client hears an error), ``timeout`` (process the request, then stall ``delay_s``
    before answering: the client gives up although the work is done),
    ``malformed`` (process, answer 200 with broken JSON), ``drop`` (process,
    close the connection without an answer).
    """

    method: str
    path: str
    kind: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 2.0


Route = Callable[[Request], Response]


class ExchangeEmulator:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self.ws_connections: set[ServerConnection] = set()
        self._http: ThreadingHTTPServer | None = None
        self._ws = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> "ExchangeEmulator":
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._ws = serve(self._ws_entry, "127.0.0.1", 0, compression=None, ping_interval=None)
        # A short poll interval makes stop() prompt; tests start and stop many.
        for target in (lambda: self._http.serve_forever(poll_interval=0.05), self._ws.serve_forever):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self._ws is not None:
            self._ws.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def rest_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def ws_port(self) -> int:
        return self._ws.socket.getsockname()[1]

    # --- faults ----------------------------------------------------------------

    def inject(self, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([fault] * times)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.method == method and fault.path == path:
                    return self.faults.pop(i)
        return None

    def drop_websockets(self) -> None:
        """Close every WebSocket connection abruptly, as a network fault would."""
        for conn in list(self.ws_connections):
            try:
                conn.socket.close()
            except OSError:
                pass

    # --- WebSocket -------------------------------------------------------------

    def _ws_entry(self, conn: ServerConnection) -> None:
        with self.lock:
            self.ws_connections.add(conn)
        try:
            self.handle_websocket(conn)
        finally:
            with self.lock:
                self.ws_connections.discard(conn)

    def handle_websocket(self, conn: ServerConnection) -> None:  # pragma: no cover - subclass hook
        conn.close()

    def requests_to(self, method: str, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]


def _handler_for(emulator: ExchangeEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle on, the
        # second waits for an ACK and every answer costs ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, parts.path, parts.query, body,
                              {k.lower(): v for k, v in self.headers.items()})
            with emulator.lock:
                emulator.requests.append(request)
            fault = emulator._take_fault(self.command, parts.path)
            if fault is not None and fault.kind == "status":
                self._send(Response(fault.status, fault.body, dict(fault.headers)))
                return
            route = emulator.routes.get((self.command, parts.path))
            response = route(request) if route else Response(404, {"error": "no such route"})
            if fault is None:
                self._send(response)
            elif fault.kind == "timeout":
                time.sleep(fault.delay_s)
                self._send(response)
            elif fault.kind == "status_after":
                self._send(Response(fault.status, fault.body, dict(fault.headers)))
            elif fault.kind == "malformed":
                self._send(Response(200, b'{"unterminated": ', response.headers))
            elif fault.kind == "drop":
                self.close_connection = True
                self.connection.close()

        def _send(self, response: Response) -> None:
            body = response.body
            if isinstance(body, str):
                payload = body.encode()
                ctype = "text/plain; charset=utf-8"
            elif isinstance(body, bytes):
                payload = body
                ctype = "application/json"
            else:
                payload = json.dumps(body).encode()
                ctype = "application/json;charset=UTF-8"
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout tests): nothing to do

        do_GET = do_POST = do_DELETE = do_PUT = _serve

    return Handler
