"""Start-up reconciliation: before a live session sends anything, every order
an earlier session may have left at an exchange is settled.

Two lists are compared: the journal's live orders that no session saw final
(the process died mid-order, or the exchange's answer was lost) and each
exchange's open orders.  Every difference ends one way:

- the exchange has the order and it is final: its state and fills (which may
  have happened while we were down) are recorded;
- the exchange has it open: it is cancelled (live_trading), then recorded as
  it ended; live_readonly sends nothing, so it is recorded and left open;
- the exchange does not know it: it never reached the book, and is recorded
  as such;
- an open order of ours (our client-id pattern) the journal never saw, its
  journal lost or moved: it is adopted (put on record), then treated as above;
- an open order that is not ours (placed by hand) is left alone.

What cannot be settled (the exchange does not answer) is *unknown*, and a
live_trading session does not start with anything unknown.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence, TypeVar

from arb.errors import ExchangeError
from arb.models import Order, OrderIntent, OrderStatus

log = logging.getLogger("arb.reconcile")

#: The client order ids arb sends: ``arb`` + the session id + ``-`` + a counter.
OURS = re.compile(r"arb[0-9a-f]{8}-\d+")

RECORDED, CANCELLED, NOT_PLACED, LEFT_OPEN = "recorded", "cancelled", "not placed", "left open"

T = TypeVar("T")


@dataclass(frozen=True)
class Settlement:
    """What became of one order."""

    client_order_id: str
    exchange: str
    symbol: str
    action: str           # RECORDED, CANCELLED, NOT_PLACED or LEFT_OPEN
    status: str
    filled_qty: float
    session_id: str       # the session that sent it
    adopted: bool = False  # the journal had no record of it

    def describe(self) -> str:
        origin = "adopted from the exchange" if self.adopted else f"from session {self.session_id}"
        filled = f", {self.filled_qty:g} filled" if self.filled_qty else ""
        return f"{self.exchange} {self.symbol} {self.client_order_id} ({origin}): {self.action}, {self.status}{filled}"


@dataclass
class Reconciliation:
    settlements: list[Settlement] = field(default_factory=list)
    #: Orders whose state no exchange answer settled: nothing may be sent while any remain.
    unknown: list[str] = field(default_factory=list)
    #: Open orders at the exchanges that arb did not place: left alone.
    others_open: int = 0

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.settlements:
            counts[s.action] = counts.get(s.action, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"settled": [s.describe() for s in self.settlements], "counts": self.counts(),
                "adopted": sum(s.adopted for s in self.settlements), "unknown": list(self.unknown),
                "others_open": self.others_open}


class Reconciler:
    """Settles what the journal and the exchanges disagree on.

    ``record(order)`` journals an order's state; ``adopt(intent, asset)``
    puts an order the journal never saw on record (before it is touched).
    ``cancel=False`` (live_readonly) never sends anything to an exchange.
    """

    def __init__(self, clients: Mapping[str, Any], *, cancel: bool, record: Callable[[Order], None],
                 adopt: Callable[[OrderIntent, str], None], asset_of: Mapping[tuple[str, str], str],
                 attempts: int = 3, retry_delay_s: float = 0.5, settle_timeout_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.clients = clients
        self.cancel = cancel
        self.record = record
        self.adopt = adopt
        self.asset_of = asset_of
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self.settle_timeout_s = settle_timeout_s
        self.sleep = sleep

    def run(self, unsettled: Sequence[tuple[str, OrderIntent]], symbols: Mapping[str, Sequence[str]],
            known: Callable[[str], tuple[str, OrderIntent] | None]) -> Reconciliation:
        """``unsettled``: ``(session id, intent)`` from the journal; ``symbols``:
        per exchange, the markets to list open orders on; ``known(cid)``: the
        journal's record of any live order (settled or not)."""
        result = Reconciliation()
        pending = {intent.client_order_id: (session, intent) for session, intent in unsettled}
        wanted = {name: set(names) for name, names in symbols.items()}
        for _, intent in unsettled:
            wanted.setdefault(intent.exchange, set()).add(intent.symbol)
        open_now: dict[str, Order] = {}
        for exchange in sorted(wanted):
            client = self.clients.get(exchange)
            if client is None:
                result.unknown += [f"{cid} on {exchange}: no {exchange} client configured to ask"
                                   for cid, (_, i) in pending.items() if i.exchange == exchange]
                continue
            try:
                listed = self._retry(lambda: client.open_orders(sorted(wanted[exchange])))
            except ExchangeError as exc:
                result.unknown.append(f"open orders on {exchange} could not be listed: {exc}")
                continue
            for order in listed:
                cid = order.intent.client_order_id
                if not cid or not OURS.fullmatch(cid):
                    result.others_open += 1
                    continue
                open_now[cid] = order
                if cid not in pending:
                    pending[cid] = self._known_or_adopted(order, known)
        for cid, (session, intent) in pending.items():
            try:
                settlement = self._settle(session, intent, open_now.get(cid))
            except ExchangeError as exc:
                result.unknown.append(f"{intent.exchange} {intent.symbol} {cid} (session {session}): {exc}")
                continue
            result.settlements.append(settlement)
            log.warning("[ARB_RECONCILE] %s", settlement.describe())
        return result

    def _known_or_adopted(self, order: Order, known: Callable[[str], tuple[str, OrderIntent] | None]
                          ) -> tuple[str, OrderIntent]:
        found = known(order.intent.client_order_id)
        if found is not None:
            # The journal called it final, the exchange has it open: the exchange is right.
            return found
        intent = order.intent
        self.adopt(intent, self.asset_of.get((intent.exchange, intent.symbol), intent.symbol))
        return "", intent

    def _settle(self, session: str, intent: OrderIntent, listed: Order | None) -> Settlement:
        client = self.clients[intent.exchange]
        cid = intent.client_order_id
        order = listed if listed is not None else self._retry(lambda: client.get_order(intent.symbol, cid))
        if order is None:
            # Never reached the book (or long gone without a fill): it moved nothing.
            action = NOT_PLACED
            order = Order(intent, "", OrderStatus.REJECTED, [], "start-up reconciliation: the exchange has no "
                                                                 "such order")
        elif order.status.is_final:
            action = RECORDED
        elif not self.cancel:
            action = LEFT_OPEN
        else:
            action = CANCELLED
            order = self._cancel(client, intent)
        order = replace(order, intent=intent) if order.intent != intent else order
        if not order.reason:
            order.reason = f"start-up reconciliation: {action}"
        self.record(order)
        return Settlement(cid, intent.exchange, intent.symbol, action, order.status.value, order.filled_qty,
                          session, adopted=not session)

    def _cancel(self, client: Any, intent: OrderIntent) -> Order:
        """Cancel, then follow until the exchange calls it final."""
        cid = intent.client_order_id
        try:
            order = client.cancel_order(intent.symbol, cid)
        except ExchangeError as exc:
            # It may have filled or been cancelled meanwhile: what it is now decides.
            log.warning("[ARB_RECONCILE] cancel of %s on %s failed (%s); looking it up", cid, intent.exchange, exc)
            order = None
        deadline = time.monotonic() + self.settle_timeout_s
        while order is None or not order.status.is_final:
            if time.monotonic() >= deadline:
                raise ExchangeError(intent.exchange, f"still {order.status.value if order else 'unanswered'} "
                                                     f"{self.settle_timeout_s:g} s after its cancel")
            self.sleep(0.05)
            order = self._retry(lambda: client.get_order(intent.symbol, cid))
            if order is None:
                raise ExchangeError(intent.exchange, "the exchange lost track of it after its cancel")
        return order

    def _retry(self, call: Callable[[], T]) -> T:
        """Reads only: asking again can never place anything."""
        for attempt in range(self.attempts):
            try:
                return call()
            except ExchangeError:
                if attempt == self.attempts - 1:
                    raise
                self.sleep(self.retry_delay_s * (2 ** attempt))
        raise AssertionError("unreachable")
