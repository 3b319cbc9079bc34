"""What the built-in notifiers share: option checks and one careful HTTP POST."""

from __future__ import annotations

from typing import Any, Mapping

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: loading plugins must stay quick
    import requests

from arb.notify import Alert, NotifierError

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 60.0


def check_options(settings: Mapping[str, Any], known: tuple[str, ...], hints: Mapping[str, str] = {}) -> None:
    """A misspelt option must not leave a default silently in force."""
    for key in sorted(settings):
        if key in hints:
            raise ValueError(hints[key])
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")


def timeout_option(settings: Mapping[str, Any]) -> float:
    value = settings.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {value!r}")
    return float(value)


def url_option(settings: Mapping[str, Any], key: str) -> str:
    value = settings.get(key)
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"{key} must be an http(s) URL")
    return value


def post_json(session: requests.Session, url: str, payload: Any, *, service: str, timeout_s: float,
              headers: Mapping[str, str] | None = None) -> requests.Response:
    """POST ``payload`` as JSON; any failure becomes a :class:`NotifierError`
    that names ``service`` but never the URL (it may be, or hold, the secret)."""
    import requests

    failure = ""
    try:
        response = session.post(url, json=payload, headers=dict(headers or {}), timeout=timeout_s)
    except requests.Timeout:
        failure = f"{service} did not answer within {timeout_s:g} s"
    except requests.RequestException as exc:
        failure = f"cannot reach {service} ({type(exc).__name__})"
    # Raised here, outside the except clauses, so the error chains no
    # exception whose message quotes the URL.
    if failure:
        raise NotifierError(failure)
    return response


def short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_lines(alert: Alert) -> list[str]:
    return [f"{key}: {value}" for key, value in alert.fields.items()]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
