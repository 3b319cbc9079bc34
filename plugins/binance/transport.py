"""Moving one Binance request: rate limit, sign, send, read the answer.

Everything that can go wrong comes back as an :mod:`arb.errors` exception.
Logs and exceptions name the method and path only: the query and body of a
signed request carry the signature, and the headers carry the API key.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

from arb.errors import AuthError, Banned, ExchangeError, ExchangeUnavailable, OrderRejected, RateLimited
from arb.rest import RestSession

from arb_binance.auth import Params, Signer, encode_params
from arb_binance.clock import ServerClock
from arb_binance.errors import EXCHANGE, INVALID_TIMESTAMP, error_for
from arb_binance.ratelimit import RateLimiter

log = logging.getLogger("arb.binance")

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_SIGNATURE = re.compile(r"signature=[0-9A-Fa-f]+")


class RedactSignature(logging.Filter):
    """urllib3 logs every request line at DEBUG, signed query included.
    A signature is a credential for the recvWindow it is valid in, so it
    is blotted out of those records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_SIGNATURE.sub("signature=<redacted>", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _SIGNATURE.sub("signature=<redacted>", record.msg)
        return True


def _redact_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactSignature) for f in logger.filters):
        logger.addFilter(RedactSignature())


class MalformedAnswer(ExchangeUnavailable):
    """A 2xx answer we could not read: whatever the request did is unknown."""


class BinanceTransport:
    def __init__(self, rest: RestSession, limiter: RateLimiter, signer: Signer | None,
                 local_clock: Callable[[], float]):
        self.rest = rest
        self.limiter = limiter
        self.signer = signer
        self.clock = ServerClock(self.server_time_ms, local_clock)
        _redact_urllib3_logs()

    @property
    def has_keys(self) -> bool:
        return self.signer is not None

    def server_time_ms(self) -> float:
        return float(self.public("GET", "/api/v3/time", weight=1)["serverTime"])

    def public(self, method: str, path: str, params: Params = (), *, weight: int) -> Any:
        return self._send(method, path, encode_params(params), "", {}, weight, False)

    def signed(self, method: str, path: str, params: Params = (), *, weight: int,
               is_order: bool = False) -> Any:
        """A TRADE / USER_DATA request.  Parameters go in the query, except
        for POST where they go in the form body, as Binance expects.

        On -1021 (our timestamp outside the server's window) the clock is
        re-synced; a read or a cancel is then sent once more, a new order
        never is: it was refused, and the caller decides what to do.
        """
        if self.signer is None:
            raise AuthError(EXCHANGE, f"{method} {path} needs an API key and none is configured")
        for attempt in (1, 2):
            query, body = ((), params) if method == "POST" else (params, ())
            request = self.signer.sign(query, body, self.clock.now_ms())
            try:
                return self._send(method, path, request.query, request.body, self.signer.headers,
                                  weight, is_order)
            except ExchangeError as exc:
                if exc.code != INVALID_TIMESTAMP or attempt == 2:
                    raise
                self._resync(exc, is_order)
        raise AssertionError("unreachable")

    def _resync(self, refusal: ExchangeError, is_order: bool) -> None:
        log.warning("binance: timestamp refused (%s); re-syncing the clock", refusal.exchange_message)
        try:
            self.clock.sync()
        except ExchangeError as sync_error:
            if not is_order:
                raise
            log.warning("binance clock re-sync failed: %s", sync_error)
        if is_order:
            # Refused before matching, so surely not placed: say so with a
            # type that means exactly that, and let the caller decide.
            raise OrderRejected(EXCHANGE, refusal.exchange_message, code=refusal.code,
                                status=refusal.status) from None

    def _send(self, method: str, path: str, query: str, body: str, headers: dict[str, str],
              weight: int, is_order: bool) -> Any:
        where = f"{method} {path}"
        sent_at = self.limiter.acquire(weight, is_order)
        all_headers = {**headers, **_FORM} if body else headers
        response = self.rest.send(method, path, query=query, body=body.encode() if body else None,
                                  headers=all_headers)
        self.limiter.observe(response.headers, sent_at)
        log.debug("binance %s -> HTTP %d", where, response.status)
        if 200 <= response.status < 300:
            try:
                return response.json()
            except ValueError:
                raise MalformedAnswer(EXCHANGE, f"unreadable answer ({where})",
                                      status=response.status) from None
        error = error_for(response.status, response.headers, response.text, where)
        if isinstance(error, Banned):
            self.limiter.ban(error.retry_after_s)
        elif isinstance(error, RateLimited):
            self.limiter.pause(error.retry_after_s)
        raise error

    def close(self) -> None:
        self.rest.close()
