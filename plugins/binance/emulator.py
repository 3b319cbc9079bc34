"""A Binance spot emulator that speaks the real protocol on 127.0.0.1.

REST: the endpoints the client uses, with Binance's field names and shapes
(decimals as strings), HMAC verification exactly as Binance does it (query
and body concatenated, ``signature`` taken out), the timestamp window,
request-weight accounting with real 429s and 418 bans, order-count
headers, and ``{"code", "msg"}`` error bodies.  WebSocket: combined
``/stream?streams=<symbol>@depth20@100ms/...`` pushing top-N snapshots on
subscribe and whenever a book changes.

Besides the base class's faults (answer without processing, stall, break
the body, drop), :meth:`BinanceEmulator.inject_after_processing` answers
with an error *after* the request took effect, the case a client must
settle by looking the order up.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from arb.emulation import ExchangeEmulator, Request, Response

from arb_binance.emulator_gate import EmulatedLimits, authenticate
from arb_binance.emulator_market import COMMISSION, ApiError, EmulatedMarket, EmulatedOrder, Level, fmt
from arb_binance.emulator_ws import StreamHub

EMULATOR_API_KEY = "emulator-api-key-0123456789"
EMULATOR_SECRET_KEY = "emulator-secret-key-abcdefghij"

Handler = Callable[[dict[str, str], int], Any]


def _depth_weight(params: Mapping[str, str]) -> int:
    limit = int(params.get("limit") or 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class BinanceEmulator(ExchangeEmulator):
    def __init__(self, *, api_key: str = EMULATOR_API_KEY, secret_key: str = EMULATOR_SECRET_KEY,
                 balances: Mapping[str, str | float] | None = None, weight_limit: int = 6000,
                 order_limit_10s: int = 50, ban_s: float = 120.0, clock: Callable[[], float] = time.time,
                 withdrawals_enabled: bool = False, ip_restricted: bool = True):
        super().__init__()
        self.api_key, self.secret_key = api_key, secret_key
        self.market = EmulatedMarket(balances=balances)
        self.clock = clock
        self.withdrawals_enabled, self.ip_restricted = withdrawals_enabled, ip_restricted
        #: Added to our clock to make the server's: a skewed exchange clock.
        self.server_offset_ms = 0.0
        self.hub = StreamHub(self)
        self.limits = EmulatedLimits(weight_limit, order_limit_10s, ban_s)
        self._after_processing: list[tuple[str, str, Response]] = []
        self._add_routes()

    # --- test controls ------------------------------------------------------------

    def set_book(self, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        with self.lock:
            self.market.set_book(symbol, bids, asks)
            self.hub.publish(symbol)

    def inject_after_processing(self, method: str, path: str, status: int = 500, body: Any = None,
                                times: int = 1) -> None:
        """Process the next matching request, then answer ``status`` and ``body``
        instead of the real answer (e.g. a 503 or -1007 after the order was made)."""
        if body is None:
            body = {"code": -1000, "msg": "An unknown error occurred while processing the request."}
        with self.lock:
            self._after_processing += [(method, path, Response(status, body))] * times

    def server_shutdown(self, close: bool = False) -> None:
        """Send every stream client the ``serverShutdown`` event (and drop them if ``close``)."""
        self.hub.server_shutdown(self.server_ms(), close)

    def orders_with_client_id(self, client_order_id: str) -> list[EmulatedOrder]:
        with self.lock:
            return [o for o in self.market.orders if o.client_id == client_order_id]

    @property
    def rate_limit_answers(self) -> list[int]:
        """HTTP status of every 429 / 418 sent so far."""
        return self.limits.answers

    def server_ms(self) -> int:
        return int(self.clock() * 1000 + self.server_offset_ms)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def start(self) -> BinanceEmulator:
        super().start()
        # The base handler writes headers and body in two sends; with Nagle on,
        # the body waits for a delayed ACK (~40 ms a request on Linux).  The
        # handler class is made per emulator, so this touches no other one.
        self._http.RequestHandlerClass.disable_nagle_algorithm = True
        return self

    def stop(self) -> None:
        self.hub.close()
        if self._http is None:
            super().stop()
            return
        # http.server notices a shutdown request only between polls (every
        # 0.5 s); a bare connection wakes its select() so stop() is quick.
        done = threading.Event()
        host, port = self._http.server_address[:2]

        def wake() -> None:
            while not done.wait(0.02):
                try:
                    socket.create_connection((host, port), timeout=0.2).close()
                except OSError:
                    return

        waker = threading.Thread(target=wake, daemon=True)
        waker.start()
        try:
            super().stop()
        finally:
            done.set()
            waker.join(timeout=1)

    def handle_websocket(self, conn) -> None:
        self.hub.serve(conn)

    # --- routing -------------------------------------------------------------------

    def _add_routes(self) -> None:
        m = self.market
        public = {
            "/api/v3/ping": (1, lambda p, now: {}),
            "/api/v3/time": (1, lambda p, now: {"serverTime": now}),
            "/api/v3/exchangeInfo": (20, self._exchange_info),
            "/api/v3/depth": (_depth_weight,
                              lambda p, now: m.depth(p.get("symbol"), min(int(p.get("limit") or 100), 5000))),
        }
        for path, (weight, handler) in public.items():
            self.routes[("GET", path)] = self._endpoint("GET", path, weight, handler, signed=False)
        signed = {
            ("GET", "/api/v3/account"): (20, self._account),
            ("POST", "/api/v3/order"): (1, self._new_order),
            ("GET", "/api/v3/order"): (4, lambda p, now: self._found(p).as_json()),
            ("DELETE", "/api/v3/order"): (1, self._cancel),
            ("GET", "/api/v3/openOrders"): (
                lambda p: 6 if p.get("symbol") else 80,
                lambda p, now: [o.as_json() for o in m.open_orders(p.get("symbol"))]),
            ("GET", "/sapi/v1/account/apiRestrictions"): (1, self._api_restrictions),
        }
        for (method, path), (weight, handler) in signed.items():
            self.routes[(method, path)] = self._endpoint(method, path, weight, handler, signed=True)

    def _endpoint(self, method: str, path: str, weight: int | Callable[[dict[str, str]], int],
                  handler: Handler, signed: bool) -> Callable[[Request], Response]:
        is_order = (method, path) == ("POST", "/api/v3/order")

        def route(request: Request) -> Response:
            with self.lock:
                params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
                params.update(parse_qsl(request.query, keep_blank_values=True))   # the query wins
                now_ms = self.server_ms()
                try:
                    cost = weight(params) if callable(weight) else weight
                except ValueError:
                    cost = 1
                refused = self.limits.admit(cost, is_order, self.clock())
                if refused is not None:
                    return refused
                try:
                    if signed:
                        authenticate(request, params, now_ms, self.api_key, self.secret_key)
                    response = Response(200, handler(params, now_ms))
                except ApiError as exc:
                    response = Response(exc.status, {"code": exc.code, "msg": exc.msg})
                except ValueError:   # a number that is not one, as Binance reports it
                    response = Response(400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
                placed = is_order and response.status == 200
                if placed:
                    self.limits.order_placed()
                response.headers.update(self.limits.headers(len(self.market.orders) if placed else None))
                for i, (f_method, f_path, replacement) in enumerate(self._after_processing):
                    if (f_method, f_path) == (method, path):
                        del self._after_processing[i]
                        return Response(replacement.status, replacement.body,
                                        {**response.headers, **replacement.headers})
                return response

        return route

    # --- handlers --------------------------------------------------------------------

    def _exchange_info(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        if params.get("symbols"):
            try:
                names = json.loads(params["symbols"])
            except ValueError:
                raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.") from None
        else:
            names = [params["symbol"]] if params.get("symbol") else list(self.market.symbols)
        infos = [self.market.info(name) for name in names]
        return {
            "timezone": "UTC", "serverTime": now_ms, "exchangeFilters": [],
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.limits.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": self.limits.order_limit_10s},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "symbols": [{
                "symbol": i.symbol, "status": "TRADING", "baseAsset": i.base, "baseAssetPrecision": 8,
                "quoteAsset": i.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "filters": i.filters(),
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            } for i in infos],
        }

    def _account(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        rate = fmt(COMMISSION)
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": self.withdrawals_enabled, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
            "accountType": "SPOT",
            "balances": self.market.account_balances(params.get("omitZeroBalances") == "true"),
            "permissions": ["SPOT"], "uid": 354937868,
        }

    def _new_order(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        order = self.market.new_order(params, now_ms)
        if order.executed:
            self.hub.publish(order.info.symbol)
        answer = {"symbol": order.info.symbol, "orderId": order.order_id, "orderListId": -1,
                  "clientOrderId": order.client_id, "transactTime": now_ms}
        kind = params.get("newOrderRespType") or "FULL"
        if kind == "ACK":
            return answer
        full = order.as_json()
        answer.update({k: full[k] for k in ("price", "origQty", "executedQty", "origQuoteOrderQty",
                                            "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                                            "workingTime", "selfTradePreventionMode")})
        if kind == "FULL":
            answer["fills"] = order.fills
        return answer

    def _found(self, params: dict[str, str]) -> EmulatedOrder:
        order = self.market.find(params.get("symbol"), params)
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return order

    def _cancel(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        order = self.market.cancel(params.get("symbol"), params, now_ms)
        answer = order.as_json()
        for key in ("time", "updateTime", "isWorking", "workingTime", "stopPrice", "icebergQty"):
            answer.pop(key)
        answer.update(origClientOrderId=order.client_id, transactTime=now_ms,
                      clientOrderId=params.get("newClientOrderId") or f"cancel{order.order_id}")
        return answer

    def _api_restrictions(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        return {"ipRestrict": self.ip_restricted, "createTime": now_ms - 86_400_000, "enableReading": True,
                "enableWithdrawals": self.withdrawals_enabled, "enableInternalTransfer": False,
                "enableMargin": False, "enableFutures": False, "permitsUniversalTransfer": False,
                "enableVanillaOptions": False, "enableFixApiTrade": False, "enableFixReadOnly": False,
                "enableSpotAndMarginTrading": True, "enablePortfolioMarginTrading": False}
