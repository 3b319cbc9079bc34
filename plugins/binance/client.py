"""The live Binance spot client (arb.exchange.ExchangeClient).

Reads are retried with backoff (they change nothing); orders never are, see
:mod:`arb_binance.orders`.  Without keys the client serves market data only
and every account call raises AuthError.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

from arb.backoff import Backoff
from arb.book import OrderBook
from arb.errors import ExchangeError
from arb.exchange import Balance
from arb.models import MarketRules, Order, OrderIntent
from arb.rest import RestSession, retry_idempotent

from arb_binance import parse
from arb_binance.auth import DEFAULT_RECV_WINDOW_MS, Signer
from arb_binance.errors import EXCHANGE
from arb_binance.orders import OrderDesk
from arb_binance.ratelimit import RateLimiter
from arb_binance.rules import TAKER_FEE
from arb_binance.stream import BinanceBookStream
from arb_binance.transport import BinanceTransport

log = logging.getLogger("arb.binance")

T = TypeVar("T")

DEFAULT_REST_URL = "https://api.binance.com"
DEFAULT_WS_URL = "wss://stream.binance.com:9443"


def depth_weight(limit: int) -> int:
    """``/api/v3/depth`` costs more the deeper it goes."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class BinanceClient:
    name = EXCHANGE

    def __init__(self, rest_url: str = DEFAULT_REST_URL, ws_url: str = DEFAULT_WS_URL, *,
                 api_key: str | None = None, secret_key: str | None = None, timeout_s: float = 5.0,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS, weight_per_minute: int = 6000,
                 orders_per_10s: int = 50, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, lookup_attempts: int = 4,
                 stream_backoff: Callable[[], Backoff] | None = None):
        """``clock`` and ``sleep`` drive signing timestamps, rate-limit windows
        and every wait, so tests can replace them; ``stream_backoff`` makes the
        reconnect backoff of each book stream."""
        if bool(api_key) != bool(secret_key):
            raise ValueError("binance: api_key and secret_key must be given together (or neither, "
                             "for market data only)")
        signer = Signer(api_key, secret_key, recv_window_ms) if api_key and secret_key else None
        limiter = RateLimiter(weight_per_minute=weight_per_minute, orders_per_10s=orders_per_10s,
                              clock=lambda: clock() + self._offset_s(),
                              sleep=sleep)
        self._transport = BinanceTransport(RestSession(EXCHANGE, rest_url, timeout_s), limiter, signer, clock)
        self._orders = OrderDesk(self._transport, sleep, lookup_attempts)
        self._ws_url = ws_url
        self._sleep = sleep
        self._stream_backoff = stream_backoff
        self._rules: dict[str, MarketRules] = {}
        self._streams: list[BinanceBookStream] = []

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> BinanceClient:
        """``settings``: rest_url, ws_url, timeout_s, recv_window_ms (all
        optional); ``secrets``: api_key, secret_key (both or neither)."""
        return cls(
            str(settings.get("rest_url") or DEFAULT_REST_URL),
            str(settings.get("ws_url") or DEFAULT_WS_URL),
            api_key=secrets.get("api_key") or None,
            secret_key=secrets.get("secret_key") or None,
            timeout_s=float(settings.get("timeout_s") or 5.0),
            recv_window_ms=int(settings.get("recv_window_ms") or DEFAULT_RECV_WINDOW_MS),
        )

    def __repr__(self) -> str:
        return f"BinanceClient({self._transport.rest.base_url!r}, keys={self._transport.has_keys})"

    def _offset_s(self) -> float:
        # Binance's windows follow its clock: count them on our estimate of it.
        return (self._transport.clock.offset_ms or 0.0) / 1000.0

    def _read(self, call: Callable[[], T]) -> T:
        return retry_idempotent(call, sleep=self._sleep)

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter every request of this client waits on; /metrics
        shows its ``headroom()`` and ``banned_for_s()``."""
        return self._transport.limiter

    @property
    def clock_offset_ms(self) -> float | None:
        """The measured offset of Binance's clock from ours (None before the first sync)."""
        return self._transport.clock.offset_ms

    # --- market data ------------------------------------------------------------

    def server_time_ms(self) -> float | None:
        return self._read(self._transport.server_time_ms)

    def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        wanted = [s.upper() for s in symbols]
        listing = json.dumps(wanted, separators=(",", ":"))
        info = self._read(lambda: self._transport.public("GET", "/api/v3/exchangeInfo",
                                                         [("symbols", listing)], weight=20))
        rules = parse.market_rules(info, self._taker_fee())
        missing = [s for s in wanted if s not in rules]
        if missing:
            raise ExchangeError(EXCHANGE, f"exchangeInfo has no rules for {', '.join(missing)}")
        self._rules.update(rules)
        return {s: rules[s] for s in wanted}

    def _taker_fee(self) -> float:
        if not self._transport.has_keys:
            return TAKER_FEE   # public data only: the regular-account rate
        return float(self._account()["commissionRates"]["taker"])

    def _rules_for(self, symbol: str) -> MarketRules:
        if symbol not in self._rules:
            self.market_rules([symbol])
        return self._rules[symbol]

    def depth(self, symbol: str, limit: int = 10) -> tuple[OrderBook, int]:
        """The book and its ``lastUpdateId`` (the stream uses both)."""
        data = self._read(lambda: self._transport.public(
            "GET", "/api/v3/depth", [("symbol", symbol), ("limit", limit)], weight=depth_weight(limit)))
        return parse.book(symbol, data, time.time() * 1000.0), int(data["lastUpdateId"])

    def order_book(self, symbol: str, depth: int = 10) -> OrderBook:
        return self.depth(symbol, depth)[0]

    def book_stream(self, symbols: Sequence[str], on_book: Callable[[OrderBook], None],
                    on_status: Callable[[str, str], None]) -> BinanceBookStream:
        backoff = self._stream_backoff() if self._stream_backoff else None
        stream = BinanceBookStream(self._ws_url, symbols, on_book, on_status, self.depth, backoff=backoff)
        self._streams.append(stream)
        return stream

    # --- account ---------------------------------------------------------------

    def _account(self) -> dict[str, Any]:
        return self._read(lambda: self._transport.signed(
            "GET", "/api/v3/account", [("omitZeroBalances", "true")], weight=20))

    def balances(self) -> dict[str, Balance]:
        return {item["asset"]: Balance(item["asset"], float(item["free"]), float(item["locked"]))
                for item in self._account().get("balances", [])}

    def key_warnings(self) -> list[str]:
        if not self._transport.has_keys:
            return []
        try:
            data = self._read(lambda: self._transport.signed(
                "GET", "/sapi/v1/account/apiRestrictions", weight=1))
        except ExchangeError as exc:
            return [f"could not check the Binance API key's permissions: {exc}"]
        warnings = []
        if data.get("enableWithdrawals"):
            warnings.append("the Binance API key may withdraw funds: a trading bot never needs that; "
                            "turn withdrawals off for this key")
        if data.get("ipRestrict") is False:
            warnings.append("the Binance API key is not restricted to trusted IP addresses")
        if data.get("enableSpotAndMarginTrading") is False:
            warnings.append("the Binance API key has spot trading disabled: orders will be refused")
        return warnings

    # --- orders ----------------------------------------------------------------

    def place_order(self, intent: OrderIntent) -> Order:
        if intent.exchange != EXCHANGE:
            raise ValueError(f"binance client got an order for {intent.exchange}")
        return self._orders.place(intent, self._rules_for(intent.symbol))

    def get_order(self, symbol: str, client_order_id: str) -> Order | None:
        rules = self._rules_for(symbol)
        return self._read(lambda: self._orders.lookup(symbol, client_order_id, rules))

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return self._orders.cancel(symbol, client_order_id, self._rules_for(symbol))

    def open_orders(self, symbols: Sequence[str]) -> list[Order]:
        orders: list[Order] = []
        for symbol in symbols:
            rules = self._rules_for(symbol)
            orders += self._read(lambda: self._orders.open_orders(symbol, rules))
        return orders

    def close(self) -> None:
        for stream in self._streams:
            stream.stop()
        self._transport.close()
