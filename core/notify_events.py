"""Which moments deserve an alert, and what the alert says.

:class:`EventAlerts` turns the few session events that matter, the session's
summary and the market streams' state changes into :class:`Alert` values.
It keeps what an alert depends on beyond one event (assets people were told
are exposed, the recent order rejections, streams that are down); the router
calls it under its lock and decides where each alert goes.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping

from arb.events import Event
from arb.notify_alert import Alert, NotificationSettings


class EventAlerts:
    """Builds alerts; time is read from ``clock`` (epoch seconds) so tests can drive it."""

    def __init__(self, settings: NotificationSettings, clock: Callable[[], float]):
        self.settings = settings
        self.clock = clock
        self._failures: deque[tuple[float, str, str]] = deque()
        self._down: dict[str, list[Any]] = {}       # exchange -> [since, alerted, state, detail]
        self._exposed: set[str] = set()
        self._handlers: dict[str, Callable[[Event], Alert | None]] = {
            "session_started": self._on_session_started,
            "session_stop": self._on_session_stop,
            "leg_exposure": self._on_leg_exposure,
            "exposure_flat": self._on_exposure_flat,
            "exchange_banned": self._on_exchange_banned,
            "orders_done": self._on_orders_done,
            "reconciled": self._on_reconciled,
            "inherited_exposure": self._on_inherited_exposure,
        }

    def wants(self, kind: str) -> bool:
        """Whether events of ``kind`` can make an alert (the rest cost the router no lock)."""
        return kind in self._handlers

    def for_event(self, event: Event) -> Alert | None:
        handler = self._handlers.get(event.kind)
        return None if handler is None else handler(event)

    def session_ended(self, summary: Mapping[str, Any]) -> Alert:
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
        return self.alert("session_ended", severity, f"arb session {summary.get('session_id', '')} "
                          f"ended: {reason}", text, fields, key=str(summary.get("session_id", "")))

    def stream_status(self, exchange: str, state: str, detail: str, now: float) -> Alert | None:
        """Track a stream's state; the all-clear when a stream people were told about is back."""
        if state == "connected":
            down = self._down.pop(exchange, None)
            if down is not None and down[1]:
                return self.alert("exchange_reconnected", "info", f"{exchange} stream is back",
                                  f"{exchange} market data was down for {now - down[0]:.0f} s",
                                  {"exchange": exchange, "down_s": round(now - down[0], 1)}, key=exchange)
        else:
            down = self._down.setdefault(exchange, [now, False, state, detail])
            down[2], down[3] = state, detail
        return None

    def overdue_disconnects(self, now: float) -> list[Alert]:
        """One alert per stream down for ``disconnect_alert_after_s`` and not yet reported."""
        after = self.settings.disconnect_alert_after_s
        alerts = []
        for exchange, down in self._down.items():
            since, alerted, state, detail = down
            if not alerted and now - since >= after:
                down[1] = True
                alerts.append(self.alert("exchange_disconnected", "warning",
                                         f"{exchange} stream down for {now - since:.0f} s",
                                         f"{exchange} market data {state}" + (f": {detail}" if detail else ""),
                                         {"exchange": exchange, "down_s": round(now - since, 1), "state": state},
                                         key=exchange))
        return alerts

    def alert(self, kind: str, severity: str, title: str, text: str, fields: dict[str, Any],
              key: str = "") -> Alert:
        return Alert(kind, severity, title, text, {k: _plain(v) for k, v in fields.items()}, self.clock(), key)

    # --- one handler per event kind ----------------------------------------------------------

    def _on_session_started(self, event: Event) -> Alert:
        sid, mode = str(event.data.get("session_id", "")), str(event.data.get("mode", ""))
        return self.alert("session_started", "info", f"arb session {sid} started ({mode})",
                          f"mode {mode}", {"session_id": sid, "mode": mode}, key=sid)

    def _on_session_stop(self, event: Event) -> Alert:
        rule, reason = str(event.data.get("rule", "")), str(event.data.get("reason", ""))
        return self.alert("session_stop", "critical", f"session stopped by guard {rule}", reason,
                          {"rule": rule, "reason": reason}, key=rule)

    def _on_leg_exposure(self, event: Event) -> Alert:
        plan = event.data.get("plan")
        asset, kind = str(getattr(plan, "asset", "")), str(getattr(plan, "kind", ""))
        self._exposed.add(asset)
        fields = {"asset": asset, "plan": kind}
        for i, order in enumerate(event.data.get("orders") or (), 1):
            fields[f"leg_{i}"] = _describe_order(order)
        return self.alert("leg_exposure", "critical", f"leg exposure left open: {kind} {asset}".strip(),
                          str(event.data.get("detail", "")) + "; no new trades until it is flat",
                          fields, key=asset)

    def _on_exposure_flat(self, event: Event) -> Alert | None:
        plan = event.data.get("plan")
        asset = str(event.data.get("asset", getattr(plan, "asset", "")))
        if asset not in self._exposed:  # only the all-clear for an exposure people were told about
            return None
        self._exposed.discard(asset)
        return self.alert("exposure_flat", "info", f"exposure in {asset} is flat again",
                          str(event.data.get("detail", "")), {"asset": asset}, key=asset)

    def _on_reconciled(self, event: Event) -> Alert:
        counts = dict(event.data.get("counts") or {})
        unknown = list(event.data.get("unknown") or ())
        done = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing settled"
        text = f"earlier sessions' orders at start-up: {done}"
        if unknown:
            text += f"; {len(unknown)} could not be settled: {'; '.join(unknown)}"
        fields = {**{f"orders_{action.replace(' ', '_')}": n for action, n in counts.items()},
                  "adopted": event.data.get("adopted", 0), "unknown": len(unknown)}
        return self.alert("reconciled", "critical" if unknown else "warning",
                          "start-up reconciliation " + ("left orders unknown" if unknown else "settled leftovers"),
                          text, fields, key="reconcile")

    def _on_inherited_exposure(self, event: Event) -> Alert:
        detail = str(event.data.get("detail", ""))
        net = dict(event.data.get("net") or {})
        return self.alert("inherited_exposure", "critical", "unhedged position from earlier sessions: no new trades",
                          detail, {f"net_{asset}": qty for asset, qty in net.items()}, key=",".join(sorted(net)))

    def _on_exchange_banned(self, event: Event) -> Alert:
        detail = str(event.data.get("detail", ""))
        return self.alert("exchange_banned", "critical", "exchange rate-limit ban: no new trades",
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
        return self.alert("order_failures", "warning",
                          f"{len(failures)} orders rejected within {window:g} s",
                          f"on {', '.join(exchanges)}" + (f"; last: {last_reason}" if last_reason else ""),
                          {"rejected": len(failures), "window_s": window, "exchanges": ", ".join(exchanges),
                           "last_reason": last_reason}, key="orders")


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
