"""Binance request signing: HMAC-SHA256 over exactly the bytes we send.

Binance signs the query string concatenated with the form body, with no
separator between them, after percent-encoding.  So we encode once, sign
that text, and send that same text: there is no second encoding step that
could make the signed and the sent strings differ.

The secret never leaves this module: :class:`Signer` has no attribute that
prints it, and the signature only ever appears inside the query or body
handed to the transport, which never logs or raises with them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote, urlencode

Params = Sequence[tuple[str, object]]

DEFAULT_RECV_WINDOW_MS = 5000
API_KEY_HEADER = "X-MBX-APIKEY"


def encode_params(params: Params) -> str:
    """``k=v&k2=v2`` in the given order, every value percent-encoded (UTF-8).

    ``quote`` (not ``quote_plus``) so a space is ``%20``; nothing is left
    unencoded that Binance would decode differently from how we signed it.
    """
    return urlencode([(key, str(value)) for key, value in params], quote_via=quote, safe="")


def hmac_signature(secret_key: str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 of ``payload`` keyed with ``secret_key``."""
    return hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """The query string and form body to send, the signature already inside."""

    query: str
    body: str


class Signer:
    """Holds an API key pair and signs requests with a given timestamp."""

    def __init__(self, api_key: str, secret_key: str, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS):
        if not api_key or not secret_key:
            raise ValueError("binance: both api_key and secret_key are needed to sign")
        if not 0 < recv_window_ms <= 60_000:
            raise ValueError(f"binance: recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        self._api_key = api_key
        self._secret_key = secret_key
        self.recv_window_ms = recv_window_ms

    def __repr__(self) -> str:  # never show the key pair, even in a debugger dump
        return f"Signer(recv_window_ms={self.recv_window_ms})"

    @property
    def headers(self) -> dict[str, str]:
        return {API_KEY_HEADER: self._api_key}

    def sign(self, query: Params, body: Params, timestamp_ms: int) -> SignedRequest:
        """Add ``recvWindow`` and ``timestamp`` (to the body when there is
        one, else the query), sign ``query + body``, and append
        ``signature`` as the last parameter of the part that got them."""
        timing = [("recvWindow", self.recv_window_ms), ("timestamp", int(timestamp_ms))]
        if body:
            query_text, body_text = encode_params(query), encode_params([*body, *timing])
        else:
            query_text, body_text = encode_params([*query, *timing]), ""
        signature = hmac_signature(self._secret_key, query_text + body_text)
        if body_text:
            return SignedRequest(query_text, f"{body_text}&signature={signature}")
        return SignedRequest(f"{query_text}&signature={signature}", "")
