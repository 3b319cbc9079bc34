"""What the Upbit emulator checks before it serves a request: the JWT and the pace.

The token is verified the way Upbit describes it: Bearer JWT signed HS512
(HS256 also accepted) with the secret of a known access key, a nonce never
seen before, and a ``query_hash`` recomputed from what actually arrived (the
unencoded query, or the JSON body's pairs in body order).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from typing import Any, Mapping
from urllib.parse import unquote

import jwt

from arb_upbit.emulator_market import EmuError
from arb_upbit.ratelimit import GROUP_LIMITS

ALGORITHMS = ("HS512", "HS256")


def received_hash_text(method: str, raw_query: str, body: bytes) -> str:
    """The text Upbit hashes, rebuilt from the request as received."""
    if method == "POST" and body:
        try:
            pairs = json.loads(body, object_pairs_hook=list)
        except ValueError:
            raise EmuError(400, "bad_request", "body is not JSON") from None
        if not isinstance(pairs, list):
            raise EmuError(400, "bad_request", "body must be a JSON object")
        parts = []
        for key, value in pairs:
            values = value if isinstance(value, list) else [value]
            parts.extend(f"{key}={v}" for v in values)
        return "&".join(parts)
    return unquote(raw_query)


def verify_token(headers: Mapping[str, str], method: str, raw_query: str, body: bytes,
                 secrets: Mapping[str, str], used_nonces: set[str]) -> str:
    """Raise EmuError(401, ...) unless the request is signed right; returns the access key."""
    authorization = headers.get("authorization", "")
    if not authorization.startswith("Bearer "):
        raise EmuError(401, "no_authorization_token", "Authorization header missing")
    token = authorization[len("Bearer "):]
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise EmuError(401, "jwt_verification", "cannot decode the JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise EmuError(401, "jwt_verification", "unsupported JWT algorithm")
    access_key = claims.get("access_key")
    secret = secrets.get(access_key) if isinstance(access_key, str) else None
    if secret is None:
        raise EmuError(401, "invalid_access_key", "unknown access key")
    try:
        jwt.decode(token, secret, algorithms=[header["alg"]])
    except jwt.PyJWTError:
        raise EmuError(401, "jwt_verification", "JWT signature does not verify") from None
    expected = received_hash_text(method, raw_query, body)
    if expected:
        sent = claims.get("query_hash")
        alg = claims.get("query_hash_alg", "SHA512")
        if alg != "SHA512" or sent != hashlib.sha512(expected.encode()).hexdigest():
            raise EmuError(401, "invalid_query_payload", "query_hash does not match the request")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise EmuError(401, "jwt_verification", "nonce missing")
    if nonce in used_nonces:
        raise EmuError(401, "nonce_used", "nonce already used")
    used_nonces.add(nonce)
    return access_key


class PaceCounter:
    """Upbit's per-group counting: a sliding second per group, 429 past the limit,
    and a 418 ban once 429s keep coming."""

    def __init__(self, limits: Mapping[str, tuple[int, float]] | None = None, *, ban_after: int = 5,
                 ban_s: float = 2.0):
        self.limits = dict(GROUP_LIMITS if limits is None else limits)
        self.ban_after = ban_after
        self.ban_s = ban_s
        self.banned_until = 0.0
        self._arrivals: dict[str, deque[float]] = {}
        self._strikes = 0

    def take(self, group: str) -> tuple[int, dict[str, Any] | None]:
        """Count one request: (remaining this second, None) or (0, error reply)."""
        now = time.monotonic()
        if now < self.banned_until:
            left = self.banned_until - now
            return 0, {"status": 418, "message": f"blocked for {left:.1f} seconds"}
        limit, window = self.limits.get(group, self.limits["default"])
        arrivals = self._arrivals.setdefault(group, deque())
        while arrivals and arrivals[0] <= now - window:
            arrivals.popleft()
        if len(arrivals) >= limit:
            self._strikes += 1
            if self._strikes >= self.ban_after:
                self.banned_until = now + self.ban_s
                return 0, {"status": 418, "message": f"blocked for {self.ban_s:g} seconds"}
            return 0, {"status": 429, "message": "Too many API requests."}
        self._strikes = 0
        arrivals.append(now)
        return limit - len(arrivals), None
