"""The live Upbit client: :class:`arb.exchange.ExchangeClient` over REST and WebSocket.

Reads are retried with backoff (:func:`arb.rest.retry_idempotent`); order
placement never is (see :mod:`arb_upbit.orders`).  All requests of one client,
including the book stream's REST snapshots, share one rate limiter.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from arb.book import OrderBook
from arb.errors import AuthError, ExchangeError
from arb.exchange import Balance
from arb.models import MarketRules, Order, OrderIntent
from arb.rest import RestSession, retry_idempotent

from arb_upbit.auth import Credentials
from arb_upbit.errormap import EXCHANGE
from arb_upbit.orders import OrderDesk
from arb_upbit.parse import market_rules, num, parse_balances, parse_orderbook
from arb_upbit.ratelimit import RateLimiter
from arb_upbit.rules import TAKER_FEE
from arb_upbit.stream import UpbitBookStream
from arb_upbit.transport import UpbitTransport

log = logging.getLogger(__name__)

DEFAULT_REST_URL = "https://api.upbit.com"
DEFAULT_WS_URL = "wss://api.upbit.com/websocket/v1"
#: Warn this long before the API key expires (Upbit keys live one year, not extendable).
KEY_EXPIRY_WARNING_DAYS = 30


def fetch_order_book(transport: UpbitTransport, symbol: str, depth: int) -> OrderBook:
    count = max(1, min(30, depth))  # Upbit serves 1..30 levels
    reply = retry_idempotent(lambda: transport.get("/v1/orderbook", {"markets": symbol, "count": count}))
    received_ms = time.time() * 1000.0
    if not reply:
        raise ExchangeError(EXCHANGE, f"GET /v1/orderbook: no book for {symbol}", code="notfoundmarket")
    return parse_orderbook(reply[0], received_ms)


class UpbitClient:
    name = EXCHANGE

    def __init__(self, rest_url: str = DEFAULT_REST_URL, ws_url: str = DEFAULT_WS_URL, *,
                 access_key: str | None = None, secret_key: str | None = None, timeout_s: float = 5.0,
                 fallback_fee: float = TAKER_FEE, limiter: RateLimiter | None = None,
                 settle_s: float = 2.0, stream_depth: int = 15):
        if bool(access_key) != bool(secret_key):
            raise AuthError(EXCHANGE, "only one of api_key and secret_key is configured; set both or neither")
        credentials = Credentials(access_key, secret_key) if access_key and secret_key else None
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.timeout_s = timeout_s
        self.fallback_fee = fallback_fee
        self.stream_depth = stream_depth
        #: Every request of this client (book snapshots included) waits on it;
        #: /metrics shows its ``headroom()`` and ``banned_for_s()``.
        self.limiter = limiter or RateLimiter(EXCHANGE)
        self._rest = RestSession(EXCHANGE, rest_url, timeout_s)
        self._transport = UpbitTransport(self._rest, self.limiter, credentials)
        self._orders = OrderDesk(self._transport, self._rules_for, settle_s=settle_s)
        self._rules: dict[str, MarketRules] = {}
        self._streams: list[UpbitBookStream] = []

    # --- market data -------------------------------------------------------------

    def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        symbols = [s.upper() for s in symbols]
        markets = ",".join(symbols)
        get = self._transport.get
        instruments = retry_idempotent(lambda: get("/v1/orderbook/instruments", {"markets": markets}))
        ticks = {i["market"]: num(i.get("tick_size")) for i in instruments}
        books = retry_idempotent(lambda: get("/v1/orderbook", {"markets": markets, "count": 1}))
        prices = {b["market"]: parse_orderbook(b, 0.0).best_bid for b in books}
        result = {}
        for symbol in symbols:
            if symbol not in ticks:
                raise ExchangeError(EXCHANGE, f"{symbol} is not an Upbit market", code="notfoundmarket")
            result[symbol] = market_rules(symbol, tick_size=ticks[symbol], price=prices.get(symbol),
                                          chance=self._chance(symbol), fallback_fee=self.fallback_fee)
        self._rules.update(result)
        return result

    def _chance(self, symbol: str) -> Mapping[str, Any] | None:
        if not self._transport.has_keys:
            return None
        try:
            return retry_idempotent(lambda: self._transport.get("/v1/orders/chance", {"market": symbol},
                                                                private=True))
        except AuthError as exc:
            if exc.code != "out_of_scope":
                raise
            # A read-only key may not see order rules; the published defaults still hold.
            log.warning("upbit: the API key may not read order rules (%s); using published defaults", exc.code)
            return None

    def _rules_for(self, symbol: str) -> MarketRules:
        rules = self._rules.get(symbol)
        return rules if rules is not None else self.market_rules([symbol])[symbol]

    def order_book(self, symbol: str, depth: int = 10) -> OrderBook:
        return fetch_order_book(self._transport, symbol.upper(), depth)

    def server_time_ms(self) -> float | None:
        """Upbit publishes no clock (and its auth needs none)."""
        return None

    def book_stream(self, symbols: Sequence[str], on_book: Callable[[OrderBook], None],
                    on_status: Callable[[str, str], None]) -> UpbitBookStream:
        # The stream thread takes its REST snapshots on its own session, since a
        # requests.Session is not meant to be shared between threads.
        rest = RestSession(EXCHANGE, self.rest_url, self.timeout_s)
        quotes = UpbitTransport(rest, self.limiter, None)
        depth = self.stream_depth
        stream = UpbitBookStream(self.ws_url, symbols, on_book, on_status,
                                 snapshot=lambda symbol: fetch_order_book(quotes, symbol, depth),
                                 depth=depth, on_close=rest.close)
        self._streams.append(stream)
        return stream

    # --- account -----------------------------------------------------------------

    def balances(self) -> dict[str, Balance]:
        reply = retry_idempotent(lambda: self._transport.get("/v1/accounts", private=True))
        return parse_balances(reply)

    def place_order(self, intent: OrderIntent) -> Order:
        return self._orders.place(intent)

    def get_order(self, symbol: str, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return self._orders.cancel(client_order_id)

    def open_orders(self, symbols: Sequence[str]) -> list[Order]:
        return self._orders.open_orders([s.upper() for s in symbols])

    def key_warnings(self) -> list[str]:
        """Upbit's API does not say whether a key may withdraw (only ``/v1/api_keys``
        with each key's expiry), so the one thing checked here is expiry."""
        credentials = self._transport.credentials
        if credentials is None:
            return []
        try:
            keys = retry_idempotent(lambda: self._transport.get("/v1/api_keys", private=True))
        except ExchangeError as exc:
            return [f"could not read the API key's expiry: {exc}"]
        for key in keys:
            if key.get("access_key") != credentials.access_key:
                continue
            try:
                expires = datetime.fromisoformat(str(key.get("expire_at")))
            except ValueError:
                return []
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=timezone.utc)
            days = (expires - datetime.now(timezone.utc)).total_seconds() / 86400
            if days < KEY_EXPIRY_WARNING_DAYS:
                return [f"the Upbit API key expires in {max(0.0, days):.0f} days ({expires.date()}); "
                        "Upbit keys cannot be extended: issue a new one"]
        return []

    def close(self) -> None:
        for stream in self._streams:
            stream.stop()
        self._streams.clear()
        self._rest.close()


def create_client(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> UpbitClient:
    """The ``ExchangeSpec.create_client`` factory.

    settings: ``rest_url``, ``ws_url``, ``timeout_s`` (seconds per request) and
    ``taker_fee`` (used only where ``/v1/orders/chance`` cannot be read);
    secrets: ``api_key`` (Access Key) and ``secret_key``, both absent for
    market data only.
    """
    return UpbitClient(
        rest_url=str(settings.get("rest_url") or DEFAULT_REST_URL),
        ws_url=str(settings.get("ws_url") or DEFAULT_WS_URL),
        timeout_s=float(settings.get("timeout_s") or 5.0),
        fallback_fee=float(settings.get("taker_fee", TAKER_FEE)),
        access_key=secrets.get("api_key") or None,
        secret_key=secrets.get("secret_key") or None,
    )
