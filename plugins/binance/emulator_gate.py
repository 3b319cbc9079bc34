"""What the emulator checks before a request reaches an endpoint: Binance's
rate limits (request weight per IP, orders per account, bans) and its
signed-request rules (API key, timestamp window, HMAC signature)."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Mapping

from arb.emulation import Request, Response

from arb_binance.emulator_market import ApiError


class EmulatedLimits:
    """Fixed windows, like Binance's: counts reset when the interval rolls."""

    def __init__(self, weight_limit: int, order_limit_10s: int, ban_s: float):
        self.weight_limit, self.order_limit_10s, self.ban_s = weight_limit, order_limit_10s, ban_s
        self.answers: list[int] = []        # HTTP status of every 429/418 sent
        self._weight_window, self._weight_used, self._warned = -1, 0, False
        self._order_window, self._orders_in_window = -1, 0
        self._banned_until = 0.0

    def admit(self, cost: int, is_order: bool, now: float) -> Response | None:
        """None when the request may proceed (its weight is then counted),
        else the 429 or 418 answer to send instead."""
        if now < self._banned_until:
            return self._refuse(418, self._banned_until - now, -1003,
                                "Way too much request weight used; IP banned until "
                                f"{int(self._banned_until * 1000)}. Please use WebSocket Streams for live "
                                "updates to avoid bans.")
        window = math.floor(now / 60)
        if window != self._weight_window:
            self._weight_window, self._weight_used, self._warned = window, 0, False
        if self._weight_used + cost > self.weight_limit:
            if self._warned:   # carried on after a 429: ban, as Binance does
                self._banned_until = now + self.ban_s
                return self.admit(cost, is_order, now)
            self._warned = True
            return self._refuse(429, (window + 1) * 60 - now, -1003,
                                f"Too much request weight used; current limit is {self.weight_limit} request "
                                "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                                "polling the API.")
        self._weight_used += cost
        if is_order:
            order_window = math.floor(now / 10)
            if order_window != self._order_window:
                self._order_window, self._orders_in_window = order_window, 0
            if self._orders_in_window >= self.order_limit_10s:
                return self._refuse(429, (order_window + 1) * 10 - now, -1015,
                                    f"Too many new orders; current limit is {self.order_limit_10s} orders "
                                    "per TEN_SECONDS.")
        return None

    def order_placed(self) -> None:
        self._orders_in_window += 1

    def headers(self, orders_today: int | None = None) -> dict[str, str]:
        """Usage headers; the order counts only for an accepted order, as Binance does."""
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._weight_used), "X-MBX-USED-WEIGHT": str(self._weight_used)}
        if orders_today is not None:
            headers["X-MBX-ORDER-COUNT-10S"] = str(self._orders_in_window)
            headers["X-MBX-ORDER-COUNT-1D"] = str(orders_today)
        return headers

    def _refuse(self, status: int, retry_after_s: float, code: int, msg: str) -> Response:
        self.answers.append(status)
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_s))), **self.headers()}
        return Response(status, {"code": code, "msg": msg}, headers)


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def authenticate(request: Request, params: Mapping[str, str], now_ms: int, api_key: str,
                 secret_key: str) -> None:
    """Binance's checks for a TRADE / USER_DATA request; raises ApiError."""
    key = request.headers.get("x-mbx-apikey")
    if not key:
        raise ApiError(401, -2014, "API-key format invalid.")
    if key != api_key:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    for name in ("timestamp", "signature"):
        if not params.get(name):
            raise ApiError(400, -1102,
                           f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    recv_window = float(params.get("recvWindow") or 5000)
    if recv_window > 60000:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    timestamp = int(params["timestamp"])
    if timestamp >= now_ms + 1000:
        raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - timestamp > recv_window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    # The signed text is the query and the body as sent, joined with nothing
    # between them, with the signature parameter itself taken out.
    payload = _without_signature(request.query) + _without_signature(request.body.decode())
    expected = hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, params["signature"].lower()):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
