"""Upbit error replies -> :mod:`arb.errors` types.

Upbit answers ``{"error": {"name": ..., "message": ...}}``; the name is the
stable part (messages are Korean and change), so decisions key on it and the
exception keeps both.  A 429 may come as plain text, and a 418 carries its
block time in a format Upbit does not document.  Messages are built from the
reply only, never from our request, so no token or signed query leaks.
"""

from __future__ import annotations

import json
import re
from typing import Mapping

from arb.errors import (AuthError, Banned, ExchangeError, ExchangeUnavailable, InsufficientFunds,
                        OrderRejected, RateLimited, UnknownOrder)

EXCHANGE = "upbit"

_AUTH_NAMES = {
    "jwt_verification", "invalid_query_payload", "nonce_used", "expired_access_key",
    "no_authorization_ip", "no_authorization_token", "invalid_access_key", "out_of_scope",
    "open_api_withdraw_locked",
}
_REJECT_NAMES = {
    "under_min_total_bid", "under_min_total_ask", "over_krw_funds_bid", "over_krw_funds_ask",
    "invalid_price_bid", "invalid_price_ask", "invalid_volume_bid", "invalid_volume_ask",
    "create_bid_error", "create_ask_error", "validation_error", "invalid_parameter", "invaild_parameter",
    "invalid_time_in_force", "notfoundmarket", "duplicated_identifier", "bad_request",
    "QUERY_PARAMETER_NOT_SUPPORTED",
}
_FUNDS_NAMES = {"insufficient_funds_bid", "insufficient_funds_ask"}
_UNKNOWN_NAMES = {"order_not_found"}
_UNAVAILABLE_NAMES = {"market_offline"}

#: How long to stay away after a 418 whose reply names no duration.
DEFAULT_BAN_S = 60.0
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second|초)", re.IGNORECASE)
_MAX_MESSAGE = 300


def reply_error(text: str) -> tuple[str | int | None, str]:
    """(error.name, error.message) from a reply body, tolerating non-JSON bodies."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, text.strip()[:_MAX_MESSAGE] or "(empty reply)"
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, text.strip()[:_MAX_MESSAGE]
    name = error.get("name")
    message = str(error.get("message") or "")[:_MAX_MESSAGE]
    return (name if isinstance(name, (str, int)) else None), message


def ban_seconds(headers: Mapping[str, str], message: str) -> float:
    """The block time of a 418: ``Retry-After`` if present, else a duration in the message."""
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(1.0, float(retry_after))
        except ValueError:
            pass
    match = _SECONDS.search(message)
    return max(1.0, float(match.group(1))) if match else DEFAULT_BAN_S


def error_for(status: int, text: str, headers: Mapping[str, str], *, what: str) -> ExchangeError:
    """The typed error for a non-2xx reply to ``what`` (e.g. "GET /v1/accounts")."""
    name, message = reply_error(text)
    message = f"{what}: {message}"
    code = name
    if status == 418:
        return Banned(EXCHANGE, message, retry_after_s=ban_seconds(headers, message), code=code, status=status)
    if status == 429:
        return RateLimited(EXCHANGE, message, retry_after_s=1.0, code=code, status=status)
    if name in _FUNDS_NAMES:
        return InsufficientFunds(EXCHANGE, message, code=code, status=status)
    if name in _UNKNOWN_NAMES:
        return UnknownOrder(EXCHANGE, message, code=code, status=status)
    if name in _UNAVAILABLE_NAMES or status >= 500:
        return ExchangeUnavailable(EXCHANGE, message, code=code, status=status)
    if status == 401 or name in _AUTH_NAMES:
        return AuthError(EXCHANGE, message, code=code, status=status)
    if name in _REJECT_NAMES:
        return OrderRejected(EXCHANGE, message, code=code, status=status)
    if status == 403:
        return AuthError(EXCHANGE, message, code=code, status=status)
    return ExchangeError(EXCHANGE, message, code=code, status=status)
