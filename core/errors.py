"""Typed exchange errors.

Each keeps the exchange's own code (Upbit ``error.name``, Binance ``code``)
and message.  Messages are built from the exchange's reply, never from our
request, so no key, signature or token can end up in one.
"""

from __future__ import annotations


class ExchangeError(Exception):
    """Anything an exchange refused or failed to do."""

    def __init__(self, exchange: str, message: str, *, code: str | int | None = None,
                 status: int | None = None):
        self.exchange = exchange
        self.code = code
        self.status = status
        self.exchange_message = message
        detail = f" [{code}]" if code is not None else ""
        http = f" (HTTP {status})" if status else ""
        super().__init__(f"{exchange}{detail}{http}: {message}")


class AuthError(ExchangeError):
    """Key missing, rejected, expired, from a wrong IP, or lacking permission."""


class InsufficientFunds(ExchangeError):
    pass


class OrderRejected(ExchangeError):
    """The exchange refused the order's content (below minimum, filter failure, bad price...)."""


class UnknownOrder(ExchangeError):
    pass


class RateLimited(ExchangeError):
    """Too many requests; ``retry_after_s`` is how long the exchange asked us to wait."""

    def __init__(self, exchange: str, message: str, *, retry_after_s: float = 1.0, **kw):
        super().__init__(exchange, message, **kw)
        self.retry_after_s = retry_after_s


class Banned(RateLimited):
    """The exchange banned us (HTTP 418): nothing more may be sent until it lifts."""


class ExchangeUnavailable(ExchangeError):
    """Maintenance, 5xx, network failure: the request did not get a clear answer."""


class OutcomeUnknown(ExchangeError):
    """An order request got no clear answer and a lookup could not settle it.

    The order may or may not exist; it is never re-sent blindly."""
