"""One signed, paced request to Upbit, and its reply as JSON or a typed error.

Every request goes through the shared :class:`RateLimiter` first and reports
the reply's ``Remaining-Req`` back to it.  Private requests get a fresh JWT
(new nonce) each time, so a retried read is signed anew.  Log lines and
exceptions name the method and path only: the query may be hashed into a
token, and the token never leaves this module except in the header.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from arb.errors import AuthError, Banned, ExchangeUnavailable, RateLimited
from arb.rest import RestSession

from arb_upbit.auth import Credentials, Params, hash_text, json_body, query_pairs, wire_query
from arb_upbit.errormap import EXCHANGE, error_for
from arb_upbit.ratelimit import RateLimiter, group_for

log = logging.getLogger(__name__)


class MalformedReply(ExchangeUnavailable):
    """A 2xx whose body is not the JSON we expect: the request's outcome is unknown."""


class UpbitTransport:
    def __init__(self, rest: RestSession, limiter: RateLimiter, credentials: Credentials | None):
        self.rest = rest
        self.limiter = limiter
        self.credentials = credentials

    @property
    def has_keys(self) -> bool:
        return self.credentials is not None

    def get(self, path: str, params: Params | None = None, *, private: bool = False) -> Any:
        return self.request("GET", path, params, private=private)

    def request(self, method: str, path: str, params: Params | None = None, *, private: bool = False,
                body: Mapping[str, str] | None = None) -> Any:
        """Send once (never retried here) and return the decoded JSON reply."""
        what = f"{method} {path}"
        if private and self.credentials is None:
            raise AuthError(EXCHANGE, f"{what}: no API key configured; this call needs one")
        pairs = query_pairs(params or {})
        hashed = hash_text(pairs)
        payload: bytes | None = None
        headers = {"Accept": "application/json"}
        if body is not None:
            payload, hashed = json_body(body)
            headers["Content-Type"] = "application/json; charset=utf-8"
        if private:
            assert self.credentials is not None
            headers["Authorization"] = self.credentials.authorization(hashed or None)
        group = group_for(method, path)
        self.limiter.acquire(group)
        raw = self.rest.send(method, path, query=wire_query(pairs), body=payload, headers=headers)
        self.limiter.observe(group, raw.headers.get("Remaining-Req"))
        if raw.status >= 400:
            raise self._failure(group, what, raw.status, raw.text, raw.headers)
        self.limiter.succeeded(group)
        try:
            return json.loads(raw.text)
        except ValueError:
            raise MalformedReply(EXCHANGE, f"{what}: HTTP {raw.status} with a body that is not JSON",
                                 status=raw.status) from None

    def _failure(self, group: str, what: str, status: int, text: str, headers: Mapping[str, str]):
        error = error_for(status, text, headers, what=what)
        if isinstance(error, Banned):
            self.limiter.ban(error.retry_after_s)
            log.error("%s: HTTP 418, Upbit blocks us for %.0f s; no request is sent until then",
                      what, error.retry_after_s)
        elif isinstance(error, RateLimited):
            error.retry_after_s = self.limiter.too_many(group)
            log.warning("%s: HTTP 429 (group %s), backing off %.1f s", what, group, error.retry_after_s)
        else:
            log.debug("%s: HTTP %s %s", what, status, error.code)
        return error
