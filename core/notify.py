"""Alerts for people: the session's important moments, sent through notifier plugins.

The engine thread publishes events; the router's subscriber
(:mod:`arb.notify_router`) turns the few that matter into :class:`Alert`
values (:mod:`arb.notify_events`), folds repeats, and puts each alert on
every channel's bounded queue.  That is all it does on the engine thread: it
never waits for a channel.  Each channel (one configured notifier) has its
own worker thread (:mod:`arb.notify_delivery`), so a channel that hangs or
fails delays or loses only its own messages, never an order.

This module assembles the router from the config; notifier plugins import
:class:`Alert` and :class:`NotifierError` from here.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from arb.notify_alert import Alert, NotificationSettings, NotifierConfigError, NotifierError

if TYPE_CHECKING:
    from arb.config import Config
    from arb.notify_events import EventAlerts
    from arb.notify_router import AlertRouter
    from arb.plugins import PluginRegistry

__all__ = [
    "Alert", "AlertRouter", "EventAlerts", "NotificationSettings", "NotifierConfigError", "NotifierError",
    "build_notifiers", "notification_problems", "read_channel_secrets",
]


def __getattr__(name: str) -> Any:
    # Every notifier plugin imports Alert and NotifierError from here when
    # plugins load, for every command; the router and the delivery threads
    # are needed only by a session.
    if name == "AlertRouter":
        from arb.notify_router import AlertRouter
        return AlertRouter
    if name == "EventAlerts":
        from arb.notify_events import EventAlerts
        return EventAlerts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_notifiers(config: Config, registry: PluginRegistry, *, environ: Mapping[str, str] | None = None,
                    clock: Callable[[], float] = time.time, start: bool = True) -> AlertRouter:
    """The router for ``config``'s ``notifications`` section, one channel per
    ``channels`` entry.  Attach it to the session's EventBus; with ``start``
    its timer thread runs.  Raises :class:`NotifierConfigError` naming the
    channel when a notifier is not installed, a variable is unset, or a
    plugin's ``build`` refuses its options."""
    from arb.notify_delivery import protect_secrets
    from arb.notify_router import AlertRouter

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
    from arb.notify_delivery import redact

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
