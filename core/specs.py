"""What plugins hand to ``register``: small frozen specs the core validates."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol

from arb.guard import GuardLimits, GuardRule
from arb.models import MarketRules

if TYPE_CHECKING:
    from arb.book import OrderBook
    from arb.notify import Alert

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SpecError(ValueError):
    """A plugin registered something the core cannot accept."""


def check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"{kind} name {name!r} must be lower_snake_case (letters, digits, _)")


@dataclass(frozen=True)
class ExchangeSpec:
    """An exchange adapter.

    ``symbol_for("BTC")`` gives the exchange's symbol for BTC against its
    quote currency (``KRW-BTC``, ``BTCUSDT``).  ``paper_rules(symbol)`` gives
    the rules paper mode enforces, modelled on the real exchange's.
    ``create_client(settings, secrets)`` builds the live client; exchanges
    without one can only be used in paper mode.
    """

    name: str
    quote_currency: str
    symbol_for: Callable[[str], str]
    paper_rules: Callable[[str], MarketRules]
    create_client: Callable[[Mapping[str, Any], Mapping[str, str]], Any] | None = None
    #: Defaults for the ``exchanges.<name>`` config section: ``rest_url``,
    #: ``ws_url``, ``api_key_env``, ``secret_key_env``.
    default_settings: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        check_name("exchange", self.name)


@dataclass(frozen=True)
class GuardRuleSpec:
    """A guard rule.  ``order`` places it in the chain; leave gaps between rules.

    ``build(limits, options)`` receives the ``live_trading`` limits and the
    rule's own ``guards.<name>`` section of the config (empty if absent).
    """

    name: str
    order: int
    build: Callable[[GuardLimits, Mapping[str, Any]], GuardRule]
    description: str = ""
    #: Optional rules run only when ``guards.<name>.enabled`` is true.
    optional: bool = False

    def __post_init__(self) -> None:
        check_name("guard rule", self.name)
        if not isinstance(self.order, int) or isinstance(self.order, bool):
            raise SpecError(f"guard rule {self.name!r}: order must be an int, got {self.order!r}")


@dataclass(frozen=True)
class Market:
    exchange: str
    symbol: str
    rules: MarketRules


@dataclass(frozen=True)
class PairMarkets:
    """One asset on both venues: ``local`` quotes in the local currency (KRW),
    ``reference`` in the reference currency (USDT)."""

    asset: str
    local: Market
    reference: Market


@dataclass(frozen=True)
class SourceRequest:
    """What a market source is asked to produce, and how to stop early."""

    pairs: tuple[PairMarkets, ...]
    fx: Market
    options: Mapping[str, Any]
    stop: threading.Event = field(default_factory=threading.Event)


class MarketSource(Protocol):
    def events(self) -> Iterator[OrderBook | None]:
        """Book snapshots in time order; ``None`` means "nothing new yet"."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class MarketSourceSpec:
    name: str
    build: Callable[[SourceRequest], MarketSource]
    description: str = ""

    def __post_init__(self) -> None:
        check_name("market source", self.name)


class Notifier(Protocol):
    def send(self, alert: Alert) -> None:
        """Deliver one alert, or raise (``arb.notify.NotifierError`` with a
        message safe to log).  Runs on the channel's own thread."""


@dataclass(frozen=True)
class NotifierSpec:
    """A notifier: a way to reach people (a chat, a webhook, a pager).

    ``build(settings, secrets)`` receives one ``notifications.channels[]``
    entry over ``default_settings`` (without ``type``, ``name`` and
    ``min_severity``), and for every ``*_env`` option the value of the
    variable it names, under the option's name without ``_env``:
    ``token_env: TELEGRAM_BOT_TOKEN`` gives ``secrets["token"]``.
    """

    name: str
    build: Callable[[Mapping[str, Any], Mapping[str, str]], Notifier]
    description: str = ""
    #: Defaults for the channel's options, typically the ``*_env`` names.
    default_settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("notifier", self.name)
