"""A keep-alive HTTP session with a timeout on every call, shared by adapters.

Adapters sign and interpret; this module only moves bytes and classifies
transport failures.  Nothing here retries an order: :func:`retry_idempotent`
is for reads, and says so in its name.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

import requests

from arb.backoff import Backoff
from arb.errors import Banned, ExchangeUnavailable, RateLimited

T = TypeVar("T")


class TransportTimeout(ExchangeUnavailable):
    """No answer in time: the request may or may not have been processed."""


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class RestSession:
    def __init__(self, exchange: str, base_url: str, timeout_s: float = 5.0):
        self.exchange = exchange
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "arb"

    def send(self, method: str, path: str, *, query: str = "", body: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> RawResponse:
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        try:
            resp = self.session.request(method, url, data=body, headers=dict(headers or {}),
                                        timeout=self.timeout_s)
        except requests.Timeout:
            raise TransportTimeout(self.exchange, f"{method} {path}: no answer within {self.timeout_s:g} s") from None
        except requests.RequestException as exc:
            # The exception text can carry the URL (and so a signed query):
            # report only its kind.
            raise ExchangeUnavailable(self.exchange, f"{method} {path}: {type(exc).__name__}") from None
        return RawResponse(resp.status_code, resp.headers, resp.text)

    def close(self) -> None:
        self.session.close()


def retry_idempotent(call: Callable[[], T], *, attempts: int = 4, backoff: Backoff | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> T:
    """Retry a read on transport failures and rate limits, with backoff.

    A rate limit waits at least as long as the exchange asked.  Only for
    requests that change nothing: never pass an order here.
    """
    backoff = backoff or Backoff(base_s=0.1, cap_s=2.0)
    for attempt in range(attempts):
        try:
            return call()
        except RateLimited as exc:
            if attempt == attempts - 1 or isinstance(exc, Banned):
                raise
            sleep(max(exc.retry_after_s, backoff.next_delay()))
        except ExchangeUnavailable:
            if attempt == attempts - 1:
                raise
            sleep(backoff.next_delay())
    raise AssertionError("unreachable")
