"""Session events: the rare, important moments (not book updates).

Subscribers (the session summary, the status display, later the journal and
notifiers) are called one at a time, each isolated: a broken subscriber is
logged and skipped so it can never stop trading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from arb.models import fast_constructor

log = logging.getLogger("arb.events")


@dataclass(frozen=True, slots=True)
class Event:
    kind: str          # trade_opened, trade_closed, plan_blocked, plan_skipped, order, session_stop
    ts_ms: float
    data: dict[str, Any]


Subscriber = Callable[[Event], None]

_new_event = fast_constructor(Event)  # three per opportunity


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, kind: str, ts_ms: float, **data: Any) -> None:
        event = _new_event(kind, ts_ms, data)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s; continuing", subscriber, kind)
