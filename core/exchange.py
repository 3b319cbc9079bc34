"""What the core expects of a live exchange client.

An exchange plugin's ``ExchangeSpec.create_client(settings, secrets)``
returns an object with these methods.  ``settings`` is the merged
``exchanges.<name>`` config section (``rest_url``, ``ws_url``,
``timeout_s``...); ``secrets`` holds ``api_key`` and ``secret_key`` read from
the environment, or is empty when the variables are unset (market data only).
Errors are the typed exceptions of :mod:`arb.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from arb.book import OrderBook
from arb.models import MarketRules, Order, OrderIntent


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: float
    locked: float


class BookStream(Protocol):
    """A background WebSocket subscription delivering full top-N snapshots.

    It reconnects by itself (exponential backoff with jitter), resubscribes,
    and after every (re)connect fetches a REST snapshot so the gap is filled.
    """

    connected: bool
    reconnects: int

    def start(self) -> None: ...

    def stop(self) -> None: ...


class RateLimitView(Protocol):
    """The read-only face of a client's rate limiter that /metrics shows."""

    def headroom(self) -> dict[str, dict[str, float]]:
        """Per bucket (a request group, a weight or order window): ``used`` in
        the current window, its ``limit``, and what is ``remaining`` now."""

    def banned_for_s(self) -> float:
        """Seconds an HTTP 418 ban still lasts (0 when there is none)."""


class ExchangeClient(Protocol):
    """Optional, and so not a member here: a ``limiter`` attribute or property
    giving a :class:`RateLimitView`.  /metrics shows its headroom; a client
    without one still trades, its exchange just shows no rate-limit figures."""

    name: str

    def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        """Tick size, lot step, minimums and taker fee per symbol, read from the exchange."""

    def order_book(self, symbol: str, depth: int = 10) -> OrderBook:
        """REST snapshot; ``received_ms`` is our wall clock at receipt."""

    def server_time_ms(self) -> float | None:
        """The exchange's clock, or None where it publishes none."""

    def balances(self) -> dict[str, Balance]: ...

    def place_order(self, intent: OrderIntent) -> Order:
        """Send a limit IOC order carrying ``intent.client_order_id``.

        Never re-sent blindly: on a timeout or 5xx the client looks the order
        up by its client id; if that cannot settle it, raises OutcomeUnknown.
        """

    def get_order(self, symbol: str, client_order_id: str) -> Order | None:
        """The order with its fills so far; None when the exchange does not know it."""

    def cancel_order(self, symbol: str, client_order_id: str) -> Order: ...

    def open_orders(self, symbols: Sequence[str]) -> list[Order]:
        """Every open order on ``symbols``, ours or not, each with the client
        order id it was placed with in ``intent.client_order_id`` ("" when it
        has none).  Start-up reconciliation settles ours by it and leaves the
        others alone, so an adapter must not drop or invent ids."""

    def book_stream(self, symbols: Sequence[str], on_book: Callable[[OrderBook], None],
                    on_status: Callable[[str, str], None]) -> BookStream:
        """``on_book`` gets every snapshot; ``on_status(state, detail)`` gets
        "connected" / "disconnected" / "reconnecting" transitions."""

    def key_warnings(self) -> list[str]:
        """Problems with the key that do not stop trading but deserve a look
        (e.g. withdrawal permission), where the exchange lets us see them."""

    def close(self) -> None: ...
