"""Alerts for people: the session's important moments, sent through notifier plugins.

The engine thread publishes events; the router's subscriber turns the few
that matter into :class:`Alert` values, folds repeats, and puts each alert on
every channel's bounded queue.  That is all it does on the engine thread: it
never waits for a channel.  Each channel (one configured notifier) has its
own worker thread, so a channel that hangs or fails delays or loses only its
own messages, never an order.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from arb.events import Event, EventBus
from arb.notify_delivery import SEVERITIES, Channel, protect_secrets, redact, secret_variants

if TYPE_CHECKING:
    from arb.config import Config
    from arb.plugins import PluginRegistry
    from arb.specs import Notifier

log = logging.getLogger("arb.notify")

class NotifierError(RuntimeError):
    """A delivery failed.  Notifiers raise it with a message that is safe to
    log: no token, no secret URL."""


class NotifierConfigError(ValueError):
    """``notifications`` asks for something that cannot be built (a config problem)."""


@dataclass(frozen=True)
class Alert:
    """One message for people.  ``count`` > 1: this many alerts with the same
    ``(kind, key)`` were folded into this one."""

    kind: str
    severity: str                # "info" | "warning" | "critical"
    title: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0              # epoch seconds
    key: str = ""                # with ``kind``, what makes two alerts the same
    count: int = 1

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")

    def as_dict(self) -> dict[str, Any]:
        """The generic JSON form (what the webhook notifier posts)."""
        return {"kind": self.kind, "severity": self.severity, "title": self.title, "text": self.text,
                "fields": dict(self.fields), "ts": self.ts, "count": self.count}


@dataclass(frozen=True)
class NotificationSettings:
    """The config's ``notifications`` section (defaults as in the schema)."""

    fold_window_s: float = 60.0
    disconnect_alert_after_s: float = 30.0
    order_failure_count: int = 3
    order_failure_window_s: float = 60.0
    queue_size: int = 100
    channels: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> NotificationSettings:
        burst = section.get("order_failure_burst", {})
        return cls(fold_window_s=float(section.get("fold_window_s", cls.fold_window_s)),
                   disconnect_alert_after_s=float(section.get("disconnect_alert_after_s",
                                                              cls.disconnect_alert_after_s)),
                   order_failure_count=int(burst.get("count", cls.order_failure_count)),
                   order_failure_window_s=float(burst.get("window_s", cls.order_failure_window_s)),
                   queue_size=int(section.get("queue_size", cls.queue_size)),
                   channels=tuple(dict(c) for c in section.get("channels", ())))


# --- turning events into alerts ------------------------------------------------------------


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
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._folds: dict[tuple[str, str], _Fold] = {}
        self._failures: deque[tuple[float, str, str]] = deque()
        self._down: dict[str, list[Any]] = {}       # exchange -> [since, alerted, state, detail]
        self._exposed: set[str] = set()
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None
        #: Engine-side counters: events seen, alerts routed, alerts folded away.
        self.events_seen = 0
        self.alerts_routed = 0
        self.alerts_folded = 0
        self._handlers: dict[str, Callable[[Event], Alert | None]] = {
            "session_started": self._on_session_started,
            "session_stop": self._on_session_stop,
            "leg_exposure": self._on_leg_exposure,
            "exposure_flat": self._on_exposure_flat,
            "exchange_banned": self._on_exchange_banned,
            "orders_done": self._on_orders_done,
        }

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
        handler = self._handlers.get(event.kind)
        if handler is None or self._closed.is_set():
            return
        with self._lock:
            alert = handler(event)
            if alert is not None:
                self._emit(alert)

    def session_ended(self, summary: Mapping[str, Any]) -> None:
        reason = str(summary.get("exit_reason") or "ended")
        exposure = str(summary.get("exposure") or "")
        severity = "critical" if exposure else "warning" if reason == "session_stop" else "info"
        fields = _summary_fields(summary)
        text = (f"{reason}; PnL {_num(summary.get('total_pnl'))} (realized {_num(summary.get('realized_pnl'))}), "
                f"trades opened {summary.get('trades_opened', 0)}, closed {summary.get('trades_closed', 0)}, "
                f"still open {summary.get('open_trades', 0)}")
        if summary.get("stop_reason"):
            text += f"; {summary['stop_reason']}"
        if exposure:
            text += f"; EXPOSURE LEFT OPEN: {exposure}"
        with self._lock:
            if self._closed.is_set():
                return
            self._emit(self._alert("session_ended", severity, f"arb session {summary.get('session_id', '')} "
                                   f"ended: {reason}", text, fields, key=str(summary.get("session_id", ""))))

    def stream_status(self, exchange: str, state: str, detail: str = "") -> None:
        """A market stream's state changed (``connected``, ``disconnected``, ``reconnecting``)."""
        with self._lock:
            if self._closed.is_set():
                return
            now = self.clock()
            if state == "connected":
                down = self._down.pop(exchange, None)
                if down is not None and down[1]:
                    self._emit(self._alert("exchange_reconnected", "info", f"{exchange} stream is back",
                                           f"{exchange} market data was down for {now - down[0]:.0f} s",
                                           {"exchange": exchange, "down_s": round(now - down[0], 1)},
                                           key=exchange))
            else:
                down = self._down.setdefault(exchange, [now, False, state, detail])
                down[2], down[3] = state, detail
            self._check_timers(now)

    def tick(self) -> None:
        """Check the disconnect timers, close expired fold windows and report
        channels stuck in a send.  Called by the timer thread."""
        with self._lock:
            if not self._closed.is_set():
                self._check_timers(self.clock())

    # --- event handlers (engine thread, under the lock) ------------------------------------

    def _on_session_started(self, event: Event) -> Alert:
        sid, mode = str(event.data.get("session_id", "")), str(event.data.get("mode", ""))
        return self._alert("session_started", "info", f"arb session {sid} started ({mode})",
                           f"mode {mode}", {"session_id": sid, "mode": mode}, key=sid)

    def _on_session_stop(self, event: Event) -> Alert:
        rule, reason = str(event.data.get("rule", "")), str(event.data.get("reason", ""))
        return self._alert("session_stop", "critical", f"session stopped by guard {rule}", reason,
                           {"rule": rule, "reason": reason}, key=rule)

    def _on_leg_exposure(self, event: Event) -> Alert:
        plan = event.data.get("plan")
        asset, kind = str(getattr(plan, "asset", "")), str(getattr(plan, "kind", ""))
        self._exposed.add(asset)
        fields = {"asset": asset, "plan": kind}
        for i, order in enumerate(event.data.get("orders") or (), 1):
            fields[f"leg_{i}"] = _describe_order(order)
        return self._alert("leg_exposure", "critical", f"leg exposure left open: {kind} {asset}".strip(),
                           str(event.data.get("detail", "")) + "; no new trades until it is flat",
                           fields, key=asset)

    def _on_exposure_flat(self, event: Event) -> Alert | None:
        plan = event.data.get("plan")
        asset = str(event.data.get("asset", getattr(plan, "asset", "")))
        if asset not in self._exposed:  # only the all-clear for an exposure people were told about
            return None
        self._exposed.discard(asset)
        return self._alert("exposure_flat", "info", f"exposure in {asset} is flat again",
                           str(event.data.get("detail", "")), {"asset": asset}, key=asset)

    def _on_exchange_banned(self, event: Event) -> Alert:
        detail = str(event.data.get("detail", ""))
        return self._alert("exchange_banned", "critical", "exchange rate-limit ban: no new trades",
                           detail, {"detail": detail}, key=detail)

    def _on_orders_done(self, event: Event) -> Alert | None:
        now = self.clock()
        for order in event.data.get("orders") or ():
            if _status(order) == "rejected":
                intent = getattr(order, "intent", None)
                self._failures.append((now, str(getattr(intent, "exchange", "?")), str(getattr(order, "reason", ""))))
        window, threshold = self.settings.order_failure_window_s, self.settings.order_failure_count
        while self._failures and now - self._failures[0][0] > window:
            self._failures.popleft()
        if len(self._failures) < threshold:
            return None
        failures = list(self._failures)
        self._failures.clear()  # the next alert needs a burst of its own
        exchanges = sorted({exchange for _, exchange, _ in failures})
        last_reason = next((reason for _, _, reason in reversed(failures) if reason), "")
        return self._alert("order_failures", "warning",
                           f"{len(failures)} orders rejected within {window:g} s",
                           f"on {', '.join(exchanges)}" + (f"; last: {last_reason}" if last_reason else ""),
                           {"rejected": len(failures), "window_s": window, "exchanges": ", ".join(exchanges),
                            "last_reason": last_reason}, key="orders")

    # --- routing ---------------------------------------------------------------------------

    def _alert(self, kind: str, severity: str, title: str, text: str, fields: dict[str, Any],
               key: str = "") -> Alert:
        return Alert(kind, severity, title, text, {k: _plain(v) for k, v in fields.items()}, self.clock(), key)

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
        after = self.settings.disconnect_alert_after_s
        for exchange, down in self._down.items():
            since, alerted, state, detail = down
            if not alerted and now - since >= after:
                down[1] = True
                self._emit(self._alert("exchange_disconnected", "warning",
                                       f"{exchange} stream down for {now - since:.0f} s",
                                       f"{exchange} market data {state}" + (f": {detail}" if detail else ""),
                                       {"exchange": exchange, "down_s": round(now - since, 1), "state": state},
                                       key=exchange))
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


def _status(order: Any) -> str:
    status = getattr(order, "status", "")
    return str(getattr(status, "value", status))


def _describe_order(order: Any) -> str:
    intent = getattr(order, "intent", None)
    filled = getattr(order, "filled_qty", 0.0)
    reason = getattr(order, "reason", "")
    return (f"{getattr(intent, 'exchange', '?')} {getattr(getattr(intent, 'side', ''), 'value', '')} "
            f"{getattr(intent, 'symbol', '')} {filled:g}/{getattr(intent, 'quantity', 0.0):g} {_status(order)}"
            + (f" ({reason})" if reason else ""))


_SUMMARY_KEYS = ("session_id", "mode", "duration_s", "exit_reason", "stop_reason", "exposure", "trades_opened",
                 "trades_closed", "open_trades", "realized_pnl", "unrealized_pnl", "total_pnl", "plans_blocked")


def _summary_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    fields = {key: summary[key] for key in _SUMMARY_KEYS if summary.get(key) not in (None, "")}
    for key, value in (summary.get("orders") or {}).items():
        fields[f"orders_{key}"] = value
    return fields


def _num(value: Any) -> str:
    return f"{value:+.2f}" if isinstance(value, (int, float)) else "?"


def _plain(value: Any) -> Any:
    """Field values stay JSON scalars, whatever an event carried."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


# --- assembling from a config ---------------------------------------------------------------


def build_notifiers(config: Config, registry: PluginRegistry, *, environ: Mapping[str, str] | None = None,
                    clock: Callable[[], float] = time.time, start: bool = True) -> AlertRouter:
    """The router for ``config``'s ``notifications`` section, one channel per
    ``channels`` entry.  Attach it to the session's EventBus; with ``start``
    its timer thread runs.  Raises :class:`NotifierConfigError` naming the
    channel when a notifier is not installed, a variable is unset, or a
    plugin's ``build`` refuses its options."""
    env = os.environ if environ is None else environ
    settings = NotificationSettings.from_section(config.raw.get("notifications") or {})
    router = AlertRouter(settings, clock=clock)
    all_secrets: list[str] = []
    try:
        for index, entry in enumerate(settings.channels):
            options = dict(entry)
            kind = str(options.pop("type", ""))
            where = f"notifications.channels[{index}] ({kind})"
            name = str(options.pop("name", "") or kind)
            min_severity = str(options.pop("min_severity", "info"))
            reg = registry.notifiers.get(kind)
            if reg is None:
                raise NotifierConfigError(f"{where}: no notifier named {kind!r} is installed (installed: "
                                          f"{', '.join(sorted(registry.notifiers)) or 'none'}; see `arb plugins`)")
            spec = reg.spec
            merged = {**spec.default_settings, **options}
            secrets, missing = read_channel_secrets(merged, env)
            if missing:
                raise NotifierConfigError(f"{where}: environment variable(s) {', '.join(missing)} not set "
                                          "(the channel's *_env options name them)")
            all_secrets += secrets.values()
            notifier, problem = _build_one(spec, merged, secrets)
            if notifier is None:
                raise NotifierConfigError(f"{where}: {problem}")
            router.add_channel(name, notifier, min_severity=min_severity, secrets=secrets.values())
    except NotifierConfigError:
        router.close(0.1)
        raise
    protect_secrets(all_secrets)
    if start:
        router.start()
    return router


def _build_one(spec: Any, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[Any, str]:
    # The error is raised by the caller, outside this except block, so it
    # carries no chained exception that might quote a secret.
    try:
        return spec.build(settings, secrets), ""
    except Exception as exc:
        return None, redact(str(exc), secrets.values()) or type(exc).__name__


def read_channel_secrets(settings: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``token_env: TELEGRAM_BOT_TOKEN`` → ``{"token": <its value>}``; unset variables come back by name."""
    secrets: dict[str, str] = {}
    missing = []
    for option, variable in settings.items():
        if option.endswith("_env") and variable:
            value = environ.get(str(variable))
            if value:
                secrets[option[: -len("_env")]] = value
            else:
                missing.append(f"${variable}")
    return secrets, missing


def notification_problems(config: Config, registry: PluginRegistry, *,
                          environ: Mapping[str, str] | None = None) -> list[str]:
    """What ``arb validate-config`` should say about ``notifications``: every
    channel is built (nothing is sent) and the first refusal is returned."""
    try:
        router = build_notifiers(config, registry, environ=environ, start=False)
    except NotifierConfigError as exc:
        return [str(exc)]
    router.close(1.0)
    return []
