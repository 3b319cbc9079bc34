"""An Upbit emulator speaking the real protocol on 127.0.0.1, for tests.

REST routes use Upbit's paths, parameters, field names and shapes (Exchange
decimals as strings, Quotation numbers as JSON numbers), verify JWTs as
Upbit does, count requests per rate-limit group (``Remaining-Req``, real 429s
and a 418 ban), and answer errors as ``{"error": {"name", "message"}}``.
The WebSocket endpoint takes Upbit's subscription array and pushes
``orderbook`` snapshots whenever a subscribed book changes.

    with UpbitEmulator() as emu:
        client = UpbitClient(emu.rest_url, emu.ws_url, access_key=emu.access_key, secret_key=emu.secret_key)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from websockets.sync.server import ServerConnection

from arb.emulation import ExchangeEmulator, Request, Response

from arb_upbit.emulator_auth import PaceCounter, verify_token
from arb_upbit.emulator_market import KST, EmuError, UpbitMarket, ladder, text
from arb_upbit.emulator_ws import BookFeed
from arb_upbit.ratelimit import group_for

#: market -> (mid price, tick, levels, size per level)
DEFAULT_BOOKS = {
    "KRW-BTC": (140_000_000.0, 1000.0, 15, 0.05),
    "KRW-ETH": (5_000_000.0, 1000.0, 15, 1.0),
    "KRW-USDT": (1_400.0, 1.0, 15, 1000.0),
}
DEFAULT_BALANCES = {"KRW": 10_000_000.0, "BTC": 0.1, "ETH": 1.0, "USDT": 1000.0}


class TimedRequests(list):
    """The base class's request log, with each request's arrival time (monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Request) -> None:
        self.times.append(time.monotonic())
        super().append(item)


@dataclass
class _AfterFault:
    method: str
    path: str
    status: int


class UpbitEmulator(ExchangeEmulator):
    def __init__(self, *, access_key: str = "emu-access-key-0001", secret_key: str = "emu-secret-key-not-real",
                 balances: dict[str, float] | None = None,
                 books: dict[str, tuple[float, float, int, float]] | None = None,
                 fee_rate: float = 0.0005, tick_overrides: dict[str, float] | None = None,
                 limits: dict[str, tuple[int, float]] | None = None, ban_after: int = 5, ban_s: float = 2.0,
                 ws_binary: bool = True, key_expires_in_days: float = 200.0):
        super().__init__()
        self.requests = TimedRequests()
        self.access_key = access_key
        self.secret_key = secret_key
        self.market = UpbitMarket(dict(DEFAULT_BALANCES if balances is None else balances), fee_rate,
                                  tick_overrides=tick_overrides)
        for symbol, (mid, tick, levels, size) in (DEFAULT_BOOKS if books is None else books).items():
            self.market.set_book(symbol, *ladder(mid, tick, levels, size))
        self.market.changed.clear()
        self.pace = PaceCounter(limits, ban_after=ban_after, ban_s=ban_s)
        self.used_nonces: set[str] = set()
        self.key_expire_at = datetime.now(KST) + timedelta(days=key_expires_in_days)
        self._after_faults: list[_AfterFault] = []
        self.feed = BookFeed(self.lock, self._ws_message, lambda m: m in self.market.books, binary=ws_binary)
        for method, path, handler, private in (
            ("GET", "/v1/market/all", self._market_all, False),
            ("GET", "/v1/orderbook/instruments", self._instruments, False),
            ("GET", "/v1/orderbook", self._orderbook, False),
            ("GET", "/v1/accounts", self._accounts, True),
            ("GET", "/v1/orders/chance", self._chance, True),
            ("POST", "/v1/orders", self._create_order, True),
            ("GET", "/v1/order", self._get_order, True),
            ("DELETE", "/v1/order", self._cancel_order, True),
            ("GET", "/v1/orders/open", self._open_orders, True),
            ("GET", "/v1/api_keys", self._api_keys, True),
        ):
            self.routes[(method, path)] = self._route(method, path, handler, private)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/websocket/v1"

    # --- test controls -----------------------------------------------------------

    def set_book(self, symbol: str, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        with self.lock:
            self.market.set_book(symbol, bids, asks)
        self._publish_changes()

    def move(self, symbol: str, bps: float) -> None:
        """Shift ``symbol``'s book by ``bps`` basis points (pushes it to subscribers)."""
        with self.lock:
            self.market.move(symbol, bps)
        self._publish_changes()

    def hold_orders(self, lookups: int) -> None:
        """New orders stay ``wait`` (accepted, unmatched) until looked up ``lookups`` times; 0 ends it."""
        with self.lock:
            self.market.hold_queries = lookups

    def answer_after_processing(self, method: str, path: str, status: int = 500) -> None:
        """Process the next matching request, then answer ``status`` as if the server failed."""
        with self.lock:
            self._after_faults.append(_AfterFault(method, path, status))

    def balance(self, currency: str) -> tuple[float, float]:
        """(free, locked) of ``currency``."""
        with self.lock:
            account = self.market.account(currency)
            return float(account.balance), float(account.locked)

    def orders_with_identifier(self, identifier: str) -> list[dict[str, Any]]:
        with self.lock:
            return [o.to_json(with_trades=True) for o in self.market.orders.values() if o.identifier == identifier]

    def request_times(self, method: str, path: str) -> list[float]:
        with self.lock:
            return [t for t, r in zip(self.requests.times, self.requests) if r.method == method and r.path == path]

    # --- request plumbing --------------------------------------------------------

    def _route(self, method: str, path: str, handler: Callable[[Request, dict], tuple[int, Any]],
               private: bool) -> Callable[[Request], Response]:
        group = group_for(method, path)

        def route(request: Request) -> Response:
            with self.lock:
                response = self._answer(request, group, handler, private)
            self._publish_changes()
            return response

        return route

    def _answer(self, request: Request, group: str, handler, private: bool) -> Response:
        # Browser-like requests (with Origin) get Upbit's separate 1-per-10-s budget.
        pace_group = "origin" if "origin" in request.headers else group
        if pace_group == "origin":
            self.pace.limits.setdefault("origin", (1, 10.0))
        remaining, refusal = self.pace.take(pace_group)
        headers = {"Remaining-Req": f"group={group}; min=1800; sec={remaining}"}
        if refusal is not None:
            if refusal["status"] == 429:
                return Response(429, refusal["message"], headers)  # plain text, as users report
            return Response(418, {"error": {"name": 418, "message": refusal["message"]}}, headers)
        try:
            if private:
                verify_token(request.headers, request.method, request.query, request.body,
                             {self.access_key: self.secret_key}, self.used_nonces)
            if request.method == "DELETE" and request.body:
                raise EmuError(400, "QUERY_PARAMETER_NOT_SUPPORTED", "DELETE takes query parameters only")
            status, body = handler(request, parse_qs(request.query, keep_blank_values=True))
        except EmuError as exc:
            return Response(exc.status, exc.body(), headers)
        except (ValueError, KeyError, TypeError) as exc:
            # A malformed parameter still gets Upbit's error shape, not a dropped connection.
            return Response(400, {"error": {"name": "validation_error", "message": type(exc).__name__}}, headers)
        for i, fault in enumerate(self._after_faults):
            if fault.method == request.method and fault.path == request.path:
                del self._after_faults[i]
                return Response(fault.status, {"error": {"name": "server_error", "message": "internal error"}},
                                headers)
        return Response(status, body, headers)

    # --- quotation routes ----------------------------------------------------------

    def _markets(self, query: dict) -> list[str]:
        markets = [m for m in ",".join(query.get("markets", [])).split(",") if m]
        unknown = [m for m in markets if m not in self.market.books]
        if not markets or unknown:
            raise EmuError(404, 404, "Code not found")
        return markets

    def _market_all(self, request: Request, query: dict) -> tuple[int, Any]:
        return 200, [{"market": m, "korean_name": m, "english_name": m,
                      "market_event": {"warning": False, "caution": {}}} for m in self.market.books]

    def _instruments(self, request: Request, query: dict) -> tuple[int, Any]:
        items = []
        for m in self._markets(query):
            book = self.market.books[m]
            price = book.bids[0][0] if book.bids else (book.asks[0][0] if book.asks else 0)
            items.append({"market": m, "quote_currency": m.split("-")[0],
                          "tick_size": text(self.market.tick(m, price)), "supported_levels": [0]})
        return 200, items

    def orderbook_item(self, symbol: str, count: int = 30) -> dict[str, Any]:
        units = self.market.units(symbol, count)
        return {"market": symbol, "timestamp": self.market.books[symbol].timestamp,
                "total_ask_size": sum(u["ask_size"] for u in units),
                "total_bid_size": sum(u["bid_size"] for u in units), "orderbook_units": units, "level": 0}

    def _orderbook(self, request: Request, query: dict) -> tuple[int, Any]:
        try:
            count = int(query.get("count", ["30"])[0])
        except ValueError:
            raise EmuError(400, 400, "count must be an integer") from None
        return 200, [self.orderbook_item(m, max(1, min(30, count))) for m in self._markets(query)]

    # --- exchange routes -----------------------------------------------------------

    def _accounts(self, request: Request, query: dict) -> tuple[int, Any]:
        return 200, self.market.accounts_json()

    def _chance(self, request: Request, query: dict) -> tuple[int, Any]:
        symbol = query.get("market", [""])[0]
        if symbol not in self.market.books:
            raise EmuError(404, "notfoundmarket", "market not found")
        quote, base = symbol.split("-", 1)
        fee = text(self.market.fee)

        def account(currency: str) -> dict[str, Any]:
            a = self.market.account(currency)
            return {"currency": currency, "balance": text(a.balance), "locked": text(a.locked),
                    "avg_buy_price": text(a.avg_buy_price), "avg_buy_price_modified": False,
                    "unit_currency": "KRW"}

        return 200, {
            "bid_fee": fee, "ask_fee": fee, "maker_bid_fee": fee, "maker_ask_fee": fee,
            "market": {"id": symbol, "name": f"{base}/{quote}", "order_types": ["limit"],
                       "order_sides": ["ask", "bid"], "bid_types": ["limit", "price", "best_fok", "best_ioc"],
                       "ask_types": ["limit", "market", "best_fok", "best_ioc"],
                       "bid": {"currency": quote, "min_total": text(self.market.min_total)},
                       "ask": {"currency": quote, "min_total": text(self.market.min_total)},
                       "max_total": text(self.market.max_total), "state": "active"},
            "bid_account": account(quote), "ask_account": account(base),
        }

    def _create_order(self, request: Request, query: dict) -> tuple[int, Any]:
        try:
            body = request.json()
        except ValueError:
            raise EmuError(400, "bad_request", "body is not JSON") from None
        if not isinstance(body, dict):
            raise EmuError(400, "bad_request", "body must be a JSON object")
        order = self.market.create(body)
        return 201, order.to_json(fee_rate=self.market.fee)

    def _lookup(self, query: dict):
        uuid = query.get("uuid", [None])[0]
        identifier = query.get("identifier", [None])[0]
        if not uuid and not identifier:
            raise EmuError(400, "validation_error", "uuid or identifier is required")
        return self.market.find(uuid, identifier)

    def _get_order(self, request: Request, query: dict) -> tuple[int, Any]:
        order = self._lookup(query)
        self.market.looked_up(order)
        return 200, order.to_json(with_trades=True, fee_rate=self.market.fee)

    def _cancel_order(self, request: Request, query: dict) -> tuple[int, Any]:
        return 200, self.market.cancel(self._lookup(query))

    def _open_orders(self, request: Request, query: dict) -> tuple[int, Any]:
        states = set(query.get("states[]", []) or query.get("state", []) or ["wait", "watch"])
        symbol = query.get("market", [None])[0]
        limit = max(1, min(100, int(query.get("limit", ["100"])[0])))
        orders = [o for o in self.market.orders.values()
                  if o.state in states and (symbol is None or o.market == symbol)]
        orders.sort(key=lambda o: o.created_at, reverse=True)
        return 200, [o.to_json(fee_rate=self.market.fee) for o in orders[:limit]]

    def _api_keys(self, request: Request, query: dict) -> tuple[int, Any]:
        return 200, [{"access_key": self.access_key, "expire_at": self.key_expire_at.isoformat(timespec="seconds")}]

    # --- WebSocket -----------------------------------------------------------------

    def handle_websocket(self, conn: ServerConnection) -> None:
        self.feed.serve(conn)

    def _ws_message(self, symbol: str, depth: int, stream_type: str) -> str:
        item = self.orderbook_item(symbol, depth)
        del item["market"]
        return json.dumps({"type": "orderbook", "code": symbol, **item, "stream_type": stream_type})

    def _publish_changes(self) -> None:
        with self.lock:
            changed, self.market.changed = self.market.changed, set()
        self.feed.publish(changed)
