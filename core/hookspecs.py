"""The contract between arb's core and its plugins.

Every hook is a ``register`` callback: the plugin calls ``register(spec)``
once per thing it provides, and the core validates the spec and records which
plugin gave it.  Hooks run once, while a session is assembled; nothing here
is called per market update and no hook may do network I/O.

Entry-point group: ``arb``.  See ``docs/plugins.md`` for worked examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from arb.specs import ExchangeSpec, GuardRuleSpec, MarketSourceSpec, NotifierSpec

PROJECT = "arb"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def arb_register_exchanges(register: Callable[[ExchangeSpec], None]) -> None:
    """Register exchange adapters.

    :param register: call it with one :class:`arb.specs.ExchangeSpec` per
        exchange.  The spec names the exchange (``venues.*`` and
        ``exchanges.<name>`` in a config refer to it by this name), its quote
        currency, how an asset maps to a symbol, the market rules used in
        paper mode, the defaults of its ``exchanges.<name>`` config section
        and, for the live modes, a factory for a client speaking the
        exchange's API (whose interface is not settled yet).

    Called once when the plugin registry is built.  Returns nothing.  Two
    plugins registering the same exchange name is an error.
    """


@hookspec
def arb_register_guard_rules(register: Callable[[GuardRuleSpec], None]) -> None:
    """Register guard rules for the chain checked before every order.

    :param register: call it with one :class:`arb.specs.GuardRuleSpec` per
        rule.  The spec carries the rule's unique name, its integer ``order``
        (the chain sorts by ``(order, name)`` and refuses two rules with the
        same order) and a ``build(limits, options)`` factory returning an
        object with ``name`` and ``order`` equal to the spec's and
        ``check(order_check) -> Decision``.

    Called once when the plugin registry is built.  Returns nothing.  A rule
    name already taken (the five built-ins included) is an error, not a
    shadow.  A rule that raises while checking, or answers with anything but
    a :class:`arb.guard.Decision`, vetoes the order: the chain fails closed.
    """


@hookspec
def arb_register_market_sources(register: Callable[[MarketSourceSpec], None]) -> None:
    """Register market-data sources for paper mode (simulators, replays).

    :param register: call it with one :class:`arb.specs.MarketSourceSpec` per
        source; its ``build(request)`` factory (an :class:`arb.specs.SourceRequest`)
        returns an object whose ``events()`` yields :class:`arb.book.OrderBook`
        snapshots in time order (``None`` for "nothing new yet") until the
        data ends or ``request.stop`` is set, and whose ``close()`` stops it.

    Called once when the plugin registry is built.  Returns nothing.  A
    ``ValueError`` from ``build`` is reported to the user as a config problem.
    """


@hookspec
def arb_register_notifiers(register: Callable[[NotifierSpec], None]) -> None:
    """Register notifiers: the channels alerts reach people through.

    :param register: call it with one :class:`arb.specs.NotifierSpec` per
        notifier.  A config's ``notifications.channels[].type`` names it; its
        ``build(settings, secrets)`` factory gets the channel's options and the
        values of the environment variables its ``*_env`` options name, and
        returns an object with ``send(alert)`` (an :class:`arb.notify.Alert`).

    Called once when the plugin registry is built.  Returns nothing.  A
    ``ValueError`` from ``build`` is reported as a config problem.  ``send``
    runs on the channel's own thread, never on the trading path; an exception
    from it is logged (its message only) and that alert is dropped.
    """
