"""Delivering alerts: one worker thread and one bounded queue per channel,
and secrets kept out of every log line on the way.

:class:`arb.notify_router.AlertRouter` owns the channels; nothing here knows what an
alert means.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterable, Sequence
from urllib.parse import urlsplit

from arb.notify_alert import SEVERITIES

if TYPE_CHECKING:
    from arb.notify_alert import Alert
    from arb.specs import Notifier

log = logging.getLogger("arb.notify")


# --- keeping secrets out of logs ---------------------------------------------------------


def secret_variants(value: str) -> list[str]:
    """``value`` and, for a secret URL, its path: HTTP libraries log host and
    path apart, and in a webhook URL the path is the credential."""
    variants = [value]
    if value.startswith(("https://", "http://")):
        parts = urlsplit(value)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(path.strip("/")) >= 8:
            variants.append(path)
    return variants


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class _RedactingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(self.secrets)
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is logging's to report, not ours
                return True
            clean = redact(message, secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_HTTP_LOG_FILTER = _RedactingFilter()
#: urllib3 logs request paths at DEBUG, and a Telegram token is part of its path.
_HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


def protect_secrets(values: Iterable[str]) -> None:
    """Mask ``values`` in what the HTTP libraries log, for the rest of the process."""
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _HTTP_LOG_FILTER not in logger.filters:
            logger.addFilter(_HTTP_LOG_FILTER)
    _HTTP_LOG_FILTER.secrets.update(v for value in values if value for v in secret_variants(value) if len(v) >= 4)


# --- delivery: one thread and one bounded queue per channel --------------------------------


class Channel:
    """A configured notifier with its queue and worker thread."""

    def __init__(self, name: str, notifier: Notifier, *, min_severity: str = "info", queue_size: int = 100,
                 secrets: Sequence[str] = (), clock: Callable[[], float] = time.time):
        if min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, got {min_severity!r}")
        self.name = name
        self.notifier = notifier
        self.min_rank = SEVERITIES.index(min_severity)
        self.queue_size = queue_size
        self._secrets = tuple(secrets)
        self._clock = clock
        self._items: deque[Alert] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.enqueued = self.sent = self.failed = self.dropped = 0
        #: When the send in progress began (clock time), None when idle.
        self.busy_since: float | None = None
        self.stall_reported = False
        self._thread = threading.Thread(target=self._run, name=f"arb-notify-{name}", daemon=True)
        self._thread.start()

    def wants(self, alert: Alert) -> bool:
        return SEVERITIES.index(alert.severity) >= self.min_rank

    def put(self, alert: Alert) -> None:
        """Never blocks for longer than a list append: a full queue loses its oldest alert."""
        with self._cond:
            dropped = len(self._items) >= self.queue_size
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(alert)
            self.enqueued += 1
            self._cond.notify_all()
            total = self.dropped
        if dropped and (total == 1 or total % 100 == 0):
            log.warning("notifier %s is behind: its queue of %d is full, dropped the oldest alert "
                        "(%d dropped so far)", self.name, self.queue_size, total)

    def pending(self) -> int:
        with self._cond:
            return len(self._items) + (self.busy_since is not None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                alert = self._items.popleft()
                self.busy_since = self._clock()
                self.stall_reported = False
            try:
                self.notifier.send(alert)
            except Exception as exc:
                self.failed += 1
                # The message only, never the traceback: a chained exception
                # from an HTTP library quotes the URL, and a URL may be the secret.
                log.warning("notifier %s could not send the %s alert: %s", self.name, alert.kind,
                            redact(f"{type(exc).__name__}: {exc}", self._secrets))
            else:
                self.sent += 1
            finally:
                with self._cond:
                    self.busy_since = None
                    self._cond.notify_all()

    def wait_idle(self, deadline: float) -> bool:
        """Wait (monotonic ``deadline``) until the queue is empty and no send runs."""
        with self._cond:
            while self._items or self.busy_since is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, deadline: float) -> int:
        """Finish what is queued until ``deadline``; returns the alerts left undelivered."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            return self.pending()
        close = getattr(self.notifier, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                log.warning("notifier %s failed to close: %s", self.name,
                            redact(f"{type(exc).__name__}: {exc}", self._secrets))
        return 0
