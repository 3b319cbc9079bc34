"""Binance's ``{"code": ..., "msg": ...}`` answers as arb's typed errors.

Codes are stable, messages are not, so the type is chosen by HTTP status
and code first and by message only where one code covers different cases
(-2010 is both "insufficient balance" and "duplicate order").  The message
we raise is Binance's text plus the method and path: never the query or the
body, which carry the signature.
"""

from __future__ import annotations

import json
from typing import Mapping

from arb.errors import (AuthError, Banned, ExchangeError, ExchangeUnavailable, InsufficientFunds,
                        OrderRejected, RateLimited, UnknownOrder)

EXCHANGE = "binance"

INVALID_TIMESTAMP = -1021
TIMEOUT = -1007
NO_SUCH_ORDER = -2013

_AUTH_CODES = {-2014, -2015, -1022}
_REJECTED_CODES = {-1013, -2010, -1111, -1121, -1100, -1102, -1104, -1106, -1115, -1116, -1117}
# Binance bans for at least two minutes; used when a 418 names no duration.
DEFAULT_BAN_S = 120.0


def retry_after_s(headers: Mapping[str, str], default: float) -> float:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def parse_error_body(text: str) -> tuple[int | None, str]:
    """Binance's code and msg, or (None, a short excerpt) for a non-JSON body
    (a WAF page, a proxy's error)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, (text.strip()[:120] or "empty answer")
    if isinstance(data, dict) and "code" in data:
        try:
            code = int(data["code"])
        except (TypeError, ValueError):
            code = None
        return code, str(data.get("msg", ""))
    return None, str(data)[:120]


def error_for(status: int, headers: Mapping[str, str], text: str, where: str) -> ExchangeError:
    """The exception for a non-2xx answer to ``where`` (e.g. "POST /api/v3/order")."""
    code, msg = parse_error_body(text)
    message = f"{msg} ({where})"
    kw = {"code": code, "status": status}
    if status == 418:
        return Banned(EXCHANGE, message, retry_after_s=retry_after_s(headers, DEFAULT_BAN_S), **kw)
    if status == 429:
        return RateLimited(EXCHANGE, message, retry_after_s=retry_after_s(headers, 1.0), **kw)
    if code in _AUTH_CODES or status == 401:
        return AuthError(EXCHANGE, message, **kw)
    if code == -2010 and "insufficient balance" in msg.lower():
        return InsufficientFunds(EXCHANGE, message, **kw)
    if code == NO_SUCH_ORDER or (code == -2011 and "unknown order" in msg.lower()):
        return UnknownOrder(EXCHANGE, message, **kw)
    if code in _REJECTED_CODES or code == -2011:
        return OrderRejected(EXCHANGE, message, **kw)
    if status >= 500 or status == 403 or code == TIMEOUT:
        # 5xx and -1007: Binance does not know whether it executed; 403 is
        # its web application firewall, which says nothing about our request.
        return ExchangeUnavailable(EXCHANGE, message, **kw)
    return ExchangeError(EXCHANGE, message, **kw)
