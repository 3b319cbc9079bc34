"""The records of the Upbit emulator: accounts, books and orders, and how the
Exchange API renders them (Decimals as plain decimal strings).

Plain values with no matching logic; :mod:`arb_upbit.emulator_market` changes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

from arb_upbit.rules import KRW_TICK_TABLE

D = Decimal
KST = timezone(timedelta(hours=9))
ZERO = D(0)


class EmuError(Exception):
    """A refusal the emulator answers as ``{"error": {"name", "message"}}``."""

    def __init__(self, status: int, name: str | int, message: str):
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"name": self.name, "message": self.message}}


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else D(str(value))


def text(value: Decimal) -> str:
    """Decimal -> plain string without exponent (``1E+8`` -> ``100000000``)."""
    return format(value.normalize(), "f") if value else "0"


def krw_tick(price: Decimal) -> Decimal:
    for floor_price, tick in KRW_TICK_TABLE:
        if price >= dec(floor_price):
            return dec(tick)
    return dec(KRW_TICK_TABLE[-1][1])


@dataclass
class Account:
    balance: Decimal = ZERO
    locked: Decimal = ZERO
    avg_buy_price: Decimal = ZERO


@dataclass
class Book:
    bids: list[list[Decimal]]   # [price, size], best first
    asks: list[list[Decimal]]
    timestamp: int = 0


@dataclass
class EmuOrder:
    uuid: str
    identifier: str | None
    market: str
    side: str
    price: Decimal | None    # unit price; a market bid's KRW to spend; None for a market ask
    volume: Decimal | None   # None for a market bid
    time_in_force: str | None
    created_at: str
    reserved_fee: Decimal
    locked: Decimal
    state: str = "wait"
    executed: Decimal = ZERO
    paid_fee: Decimal = ZERO
    trades: list[dict[str, Any]] = field(default_factory=list)
    held_queries: int = 0   # > 0: stays ``wait`` unmatched for this many more lookups
    ord_type: str = "limit"

    @property
    def funds(self) -> Decimal:
        """KRW traded so far."""
        return sum((dec(t["funds"]) for t in self.trades), ZERO)

    def crosses(self, price: Decimal) -> bool:
        """Whether a book level at ``price`` is good enough (a market ask takes any bid)."""
        if self.ord_type != "limit":
            return True
        return price <= self.price if self.side == "bid" else price >= self.price

    def to_json(self, *, with_trades: bool = False, fee_rate: Decimal = ZERO) -> dict[str, Any]:
        remaining = None if self.volume is None else self.volume - self.executed
        if self.side != "bid":
            remaining_fee = ZERO
        elif remaining is None:   # a market bid: the fee on what it has not spent yet
            remaining_fee = (self.price - self.funds) * fee_rate
        else:
            remaining_fee = self.price * remaining * fee_rate
        data: dict[str, Any] = {
            "uuid": self.uuid, "side": self.side, "ord_type": self.ord_type,
            "price": None if self.price is None else text(self.price),
            "state": self.state, "market": self.market, "created_at": self.created_at,
            "volume": None if self.volume is None else text(self.volume),
            "remaining_volume": None if remaining is None else text(remaining),
            "executed_volume": text(self.executed), "reserved_fee": text(self.reserved_fee),
            "remaining_fee": text(remaining_fee),
            "paid_fee": text(self.paid_fee), "locked": text(self.locked),
            "executed_funds": text(self.funds),
            "prevented_volume": "0", "prevented_locked": "0", "trades_count": len(self.trades),
        }
        if self.time_in_force:
            data["time_in_force"] = self.time_in_force
        if self.identifier is not None:
            data["identifier"] = self.identifier
        if with_trades:
            data["trades"] = list(self.trades)
        return data


def ladder(mid: float, tick: float, levels: int = 15, size: float = 1.0) -> tuple[list, list]:
    """A symmetric book around ``mid``: ``levels`` bids and asks one tick apart."""
    m, t = dec(mid), dec(tick)
    best_bid = (m / t).to_integral_value(rounding="ROUND_FLOOR") * t
    if best_bid >= m:
        best_bid -= t
    bids = [(best_bid - i * t, dec(size)) for i in range(levels)]
    asks = [(best_bid + (i + 1) * t, dec(size)) for i in range(levels)]
    return bids, asks
