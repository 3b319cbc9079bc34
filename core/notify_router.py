"""Where alerts go: folding repeats, one bounded queue per channel, timers, shutdown.

The router's subscriber runs on the engine thread; it only builds small
values and puts them on the channels' queues, never waiting for a channel.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from arb.events import Event, EventBus
from arb.notify_alert import Alert, NotificationSettings, NotifierConfigError
from arb.notify_delivery import Channel, secret_variants
from arb.notify_events import EventAlerts

if TYPE_CHECKING:
    from arb.specs import Notifier

log = logging.getLogger("arb.notify")


@dataclass
class _Fold:
    started: float
    suppressed: int = 0
    last: Alert | None = None


class AlertRouter:
    """Subscribes to the session's events and routes alerts to the channels.

    The session calls :meth:`session_ended` with the summary; the live market
    source calls :meth:`stream_status` on every stream state change.  Time is
    read from ``clock`` (epoch seconds), so tests can drive it.
    """

    def __init__(self, settings: NotificationSettings | None = None, *,
                 clock: Callable[[], float] = time.time, stall_warning_s: float = 30.0):
        self.settings = settings or NotificationSettings()
        self.clock = clock
        self.stall_warning_s = stall_warning_s
        self.channels: list[Channel] = []
        self._events = EventAlerts(self.settings, clock)
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._folds: dict[tuple[str, str], _Fold] = {}
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None
        #: Engine-side counters: events seen, alerts routed, alerts folded away.
        self.events_seen = 0
        self.alerts_routed = 0
        self.alerts_folded = 0

    # --- wiring ----------------------------------------------------------------------------

    def add_channel(self, name: str, notifier: Notifier, *, min_severity: str = "info",
                    secrets: Iterable[str] = ()) -> Channel:
        if any(c.name == name for c in self.channels):
            raise NotifierConfigError(f"two notification channels are named {name!r}; give one a `name`")
        self._secrets.update(v for value in secrets if value for v in secret_variants(value))
        channel = Channel(name, notifier, min_severity=min_severity, queue_size=self.settings.queue_size,
                          secrets=tuple(self._secrets), clock=self.clock)
        self.channels.append(channel)
        return channel

    def attach(self, bus: EventBus) -> AlertRouter:
        bus.subscribe(self.on_event)
        return self

    def start(self, tick_s: float = 1.0) -> AlertRouter:
        """Check disconnect timers and fold windows every ``tick_s`` on a thread
        of its own (without it they are checked only when events arrive)."""
        if self._ticker is None:
            def run() -> None:
                while not self._closed.wait(tick_s):
                    try:
                        self.tick()
                    except Exception:  # pragma: no cover - tick only reads plain values
                        log.exception("notification timer failed; continuing")
            self._ticker = threading.Thread(target=run, name="arb-notify-timer", daemon=True)
            self._ticker.start()
        return self

    # --- inputs ----------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The EventBus subscriber: runs on the engine thread, so it only builds
        small values and enqueues them."""
        self.events_seen += 1
        if not self._events.wants(event.kind) or self._closed.is_set():
            return
        with self._lock:
            alert = self._events.for_event(event)
            if alert is not None:
                self._emit(alert)

    def session_ended(self, summary: Mapping[str, Any]) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._emit(self._events.session_ended(summary))

    def stream_status(self, exchange: str, state: str, detail: str = "") -> None:
        """A market stream's state changed (``connected``, ``disconnected``, ``reconnecting``)."""
        with self._lock:
            if self._closed.is_set():
                return
            now = self.clock()
            alert = self._events.stream_status(exchange, state, detail, now)
            if alert is not None:
                self._emit(alert)
            self._check_timers(now)

    def tick(self) -> None:
        """Check the disconnect timers, close expired fold windows and report
        channels stuck in a send.  Called by the timer thread."""
        with self._lock:
            if not self._closed.is_set():
                self._check_timers(self.clock())

    # --- routing (under the lock) ----------------------------------------------------------

    def _emit(self, alert: Alert) -> None:
        window = self.settings.fold_window_s
        ident = (alert.kind, alert.key)
        fold = self._folds.get(ident)
        if fold is not None and alert.ts - fold.started < window:
            fold.suppressed += 1
            fold.last = alert
            self.alerts_folded += 1
            return
        if fold is not None and fold.suppressed:
            alert = _folded(alert, fold.suppressed + 1, alert.ts - fold.started)
        if window > 0:
            self._folds[ident] = _Fold(alert.ts)
        self._deliver(alert)

    def _check_timers(self, now: float) -> None:
        for alert in self._events.overdue_disconnects(now):
            self._emit(alert)
        window = self.settings.fold_window_s
        for ident, fold in list(self._folds.items()):
            if now - fold.started >= window:
                del self._folds[ident]
                if fold.suppressed and fold.last is not None:
                    self._deliver(_folded(fold.last, fold.suppressed, now - fold.started))
        for channel in self.channels:
            busy = channel.busy_since
            if busy is not None and not channel.stall_reported and now - busy >= self.stall_warning_s:
                channel.stall_reported = True
                log.warning("notifier %s has been sending one alert for %.0f s; its alerts queue up "
                            "(trading is not affected)", channel.name, now - busy)

    def _deliver(self, alert: Alert) -> None:
        self.alerts_routed += 1
        for channel in self.channels:
            if channel.wants(alert):
                channel.put(alert)

    # --- shutdown --------------------------------------------------------------------------

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every channel has sent (or failed) all it was given."""
        deadline = time.monotonic() + timeout_s
        return all(channel.wait_idle(deadline) for channel in self.channels)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send the folded remainders, give the channels ``timeout_s`` to finish,
        then give up on what is left (their threads are daemons)."""
        with self._lock:
            if self._closed.is_set():
                return
            for fold in self._folds.values():
                if fold.suppressed and fold.last is not None:
                    self._deliver(_folded(fold.last, fold.suppressed, self.clock() - fold.started))
            self._folds.clear()
            self._closed.set()
        deadline = time.monotonic() + timeout_s
        for channel in self.channels:
            left = channel.close(deadline)
            if left:
                log.warning("notifier %s did not finish within %.1f s; %d alert(s) not delivered",
                            channel.name, timeout_s, left)

    def stats(self) -> dict[str, dict[str, int]]:
        return {c.name: {"enqueued": c.enqueued, "sent": c.sent, "failed": c.failed, "dropped": c.dropped}
                for c in self.channels}


def _folded(alert: Alert, count: int, span_s: float) -> Alert:
    return replace(alert, count=count, title=f"{alert.title} (x{count})",
                   text=f"{alert.text} [{count} alerts like this in {span_s:.0f} s]")
