"""Upbit request signing: query strings, ``query_hash`` and the JWT bearer token.

Upbit hashes the *unencoded* query string exactly as sent (same parameter
order, array keys repeated as ``states[]=wait&states[]=watch``), while the
wire form percent-encodes values but leaves ``[`` and ``]`` in array names.
POST bodies are JSON whose pairs are hashed as ``k=v&...`` in body order, so
every value is sent as a string: the hashed text then equals the body text.

Nothing in this module logs, and nothing it raises carries a key or token.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence, Union
from urllib.parse import quote

import jwt

# Upbit issues 40-character secrets; PyJWT (>= 2.10) warns that they are short
# for HS512.  We cannot choose the key length, so the warning is noise.
_SHORT_KEY_WARNING = getattr(jwt, "InsecureKeyLengthWarning", None)
if _SHORT_KEY_WARNING is not None:
    warnings.filterwarnings("ignore", category=_SHORT_KEY_WARNING)

ParamValue = Union[str, int, bool, Sequence[str]]
Params = Mapping[str, ParamValue]

HASH_ALG = "SHA512"


def _text(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    # A float's repr (1e-05, 0.30000000000000004) is not what the exchange
    # expects; callers format decimals with the market's step first.
    raise TypeError(f"parameter {key!r} must be a str or int, got {type(value).__name__}")


def query_pairs(params: Params) -> list[tuple[str, str]]:
    """Flatten ``params`` in their given order; ``key[]`` lists repeat the key."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            if not key.endswith("[]"):
                # Upbit's comma-list parameters (markets=A,B) take one joined value.
                raise ValueError(f"list parameter {key!r} must be named {key}[] or joined with commas")
            pairs.extend((key, _text(key, item)) for item in value)
        else:
            pairs.append((key, _text(key, value)))
    return pairs


def hash_text(pairs: Sequence[tuple[str, str]]) -> str:
    """The unencoded ``k=v&...`` string Upbit hashes."""
    return "&".join(f"{key}={value}" for key, value in pairs)


def wire_query(pairs: Sequence[tuple[str, str]]) -> str:
    """The query as sent: values percent-encoded, ``[]`` in names kept."""
    return "&".join(f"{quote(key, safe='[]')}={quote(value, safe='')}" for key, value in pairs)


def query_hash(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def json_body(params: Mapping[str, str]) -> tuple[bytes, str]:
    """A POST body and the text its ``query_hash`` is computed from."""
    for key, value in params.items():
        if not isinstance(value, str):
            raise TypeError(f"body field {key!r} must be a string so the hashed text equals the body")
    body = json.dumps(dict(params), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return body, hash_text(list(params.items()))


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # keep keys out of tracebacks and debug logs
        return "Credentials(access_key=***, secret_key=***)"

    def token(self, hashed: str | None, *, nonce: str | None = None, algorithm: str = "HS512") -> str:
        """A fresh JWT for one request; ``hashed`` is the query/body text, or None."""
        payload: dict[str, str] = {"access_key": self.access_key, "nonce": nonce or str(uuid.uuid4())}
        if hashed:
            payload["query_hash"] = query_hash(hashed)
            payload["query_hash_alg"] = HASH_ALG
        return jwt.encode(payload, self.secret_key, algorithm=algorithm)

    def authorization(self, hashed: str | None) -> str:
        return f"Bearer {self.token(hashed)}"
