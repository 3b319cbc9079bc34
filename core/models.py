"""Plain trading values: market rules, order intents, orders and fills.

Floats, not Decimals: the decision path runs on every book update and must
stay cheap.  Everything that reaches an exchange is first snapped to the
market's tick and lot step here, and formatted with the step's own number of
decimals, so float noise never leaves the process.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Callable

# Guards against 0.29999999999 becoming 0.2 when flooring to a 0.1 step.
_EPS = 1e-9
# ...but never snaps by more than this fraction of a step: with a relative
# tolerance alone, ten units on an 8-decimal step (1e9 steps) would snap to
# the nearest step, and "floor" would round up.
_MAX_SNAP = 1e-3


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


@lru_cache(maxsize=512)
def step_decimals(step: float) -> int:
    """Number of decimals needed to write multiples of ``step`` exactly."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _steps(value: float, step: float, direction: int) -> int:
    # value/step carries float noise that grows with the quotient, so a
    # value already on the step (0.6240644 / 1e-8) must snap to its own
    # multiple rather than to the one below.
    n = value / step
    nearest = round(n)
    tolerance = _EPS * abs(n)  # how far from a multiple still counts as on it
    if tolerance < _EPS:
        tolerance = _EPS
    elif tolerance > _MAX_SNAP:
        tolerance = _MAX_SNAP
    if abs(n - nearest) <= tolerance:
        return int(nearest)
    return math.floor(n) if direction < 0 else math.ceil(n)


def on_step(value: float, step: float) -> bool:
    """Whether ``value`` is a multiple of ``step``, up to float noise."""
    n = value / step
    tolerance = _EPS * abs(n)
    if tolerance < _EPS:
        tolerance = _EPS
    elif tolerance > _MAX_SNAP:
        tolerance = _MAX_SNAP
    return abs(n - round(n)) <= tolerance


def floor_to_step(value: float, step: float) -> float:
    return round(_steps(value, step, -1) * step, step_decimals(step))


def ceil_to_step(value: float, step: float) -> float:
    return round(_steps(value, step, 1) * step, step_decimals(step))


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What an exchange accepts for one symbol.

    ``tick_table`` lists ``(from_price, tick)`` from the highest band down;
    a single band ``((0.0, tick),)`` describes a flat tick size.
    ``min_notional`` is in the quote currency (5,000 KRW on Upbit, 5 USDT on
    Binance BTCUSDT).
    """

    exchange: str
    symbol: str
    base: str
    quote: str
    tick_table: tuple[tuple[float, float], ...]
    lot_step: float
    min_qty: float
    min_notional: float
    taker_fee: float
    max_notional: float = math.inf

    def tick_for(self, price: float) -> float:
        for floor_price, tick in self.tick_table:
            if price >= floor_price:
                return tick
        return self.tick_table[-1][1]

    def round_price(self, price: float, side: Side) -> float:
        """Snap to the tick, never to a worse price than asked for."""
        tick = self.tick_for(price)
        return floor_to_step(price, tick) if side is Side.BUY else ceil_to_step(price, tick)

    def round_qty(self, qty: float) -> float:
        """Quantities always round down: we never trade more than approved."""
        return floor_to_step(qty, self.lot_step)

    def format_qty(self, qty: float) -> str:
        return f"{qty:.{step_decimals(self.lot_step)}f}"

    def format_price(self, price: float) -> str:
        return f"{price:.{step_decimals(self.tick_for(price))}f}"

    def violation(self, qty: float, price: float) -> str | None:
        """Why an order of ``qty`` at ``price`` would be refused, or None."""
        if qty <= 0:
            return f"quantity {qty} is not positive"
        if qty < self.min_qty:
            return f"quantity {qty} below {self.exchange} minimum {self.min_qty} {self.base}"
        if not on_step(qty, self.lot_step):
            return f"quantity {qty} is not a multiple of the lot step {self.lot_step}"
        notional = qty * price
        if notional < self.min_notional:
            return (f"order value {notional:.8g} {self.quote} below {self.exchange} "
                    f"minimum {self.min_notional:g} {self.quote}")
        if notional > self.max_notional:
            return (f"order value {notional:.8g} {self.quote} above {self.exchange} "
                    f"maximum {self.max_notional:g} {self.quote}")
        return None


#: What ``OrderIntent.order_type`` may be.
ORDER_TYPES = ("limit", "market")


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order we would like to send: a limit price that bounds slippage.

    ``client_order_id`` is generated before anything is sent, so an order
    whose acknowledgement was lost can be found again by it.

    ``order_type`` is ``"limit"`` (immediate-or-cancel at ``limit_price``)
    or ``"market"``.  A market order still carries a ``limit_price``: the
    worst price expected, used to size and guard it (notional checks, and on
    Upbit the KRW a market buy may spend), never sent as a price bound.
    ``quantity`` is always in the base asset.
    """

    exchange: str
    symbol: str
    side: Side
    quantity: float
    limit_price: float
    expected_price: float
    client_order_id: str
    order_type: str = "limit"

    def __post_init__(self) -> None:
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")


def fast_constructor(cls: type) -> Callable[..., Any]:
    """A stand-in for ``cls(...)``, the frozen, slotted dataclass ``cls``, for
    the decision path: same parameters, same object, about a third of the cost.

    A frozen dataclass's ``__init__`` stores every field through
    ``object.__setattr__``, and an opportunity builds nine such objects (four
    order intents, two checks, three events).  This one fills a plain class
    with the same slots, then assigns ``__class__`` (allowed between classes
    of one slot layout) and runs ``__post_init__`` if there is one.  Like
    ``dataclasses`` itself it writes the function's source from the fields.
    Tested field for field against the constructor (tests/test_fast_paths.py).
    """
    draft = type(f"_{cls.__name__}Draft", (), {"__slots__": cls.__slots__})
    namespace: dict[str, Any] = {"_draft": draft, "_cls": cls}
    params, stores = [], []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has a default factory, which fast_constructor does not take")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        stores.append(f"    obj.{f.name} = {f.name}\n")
    post_init = "    obj.__post_init__()\n" if hasattr(cls, "__post_init__") else ""
    exec(f"def new({', '.join(params)}):\n    obj = _draft()\n{''.join(stores)}    obj.__class__ = _cls\n"
         f"{post_init}    return obj\n", namespace)
    new = namespace["new"]
    new.__qualname__ = new.__name__ = f"new_{cls.__name__}"
    new.__doc__ = f"``{cls.__name__}(...)``, built by :func:`fast_constructor`."
    return new


new_intent = fast_constructor(OrderIntent)


#: How a gateway says it cannot tell whether an order reached the book
#: (the start of ``Order.reason``): such an order may or may not have filled.
OUTCOME_UNKNOWN = "outcome unknown"


class OrderStatus(str, Enum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class Fill:
    quantity: float
    price: float
    fee: float  # in the quote currency
    ts_ms: float


@dataclass(slots=True)
class Order:
    intent: OrderIntent
    exchange_order_id: str
    status: OrderStatus
    fills: list[Fill] = field(default_factory=list)
    reason: str = ""

    @property
    def filled_qty(self) -> float:
        return sum(f.quantity for f in self.fills)

    @property
    def quote_amount(self) -> float:
        return sum(f.quantity * f.price for f in self.fills)

    @property
    def fees(self) -> float:
        return sum(f.fee for f in self.fills)

    @property
    def avg_price(self) -> float:
        qty = self.filled_qty
        return self.quote_amount / qty if qty else 0.0
