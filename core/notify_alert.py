"""The values notifications travel as: the alert, the ``notifications``
settings, and the errors notifier plugins and the config raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

SEVERITIES = ("info", "warning", "critical")


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
