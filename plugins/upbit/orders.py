"""Placing, following, looking up and cancelling Upbit orders.

An order POST is sent exactly once.  When its answer is lost (timeout,
dropped connection, 5xx, unreadable body) the order may exist, so we look it
up by its ``identifier`` a few times with backoff; if none of the lookups
finds it, the outcome stays unknown and we say so (OutcomeUnknown) rather
than send it again.  Upbit acknowledges an order before matching it, so an
accepted IOC or market order is followed until its state is final, within a
bound.  Limit orders go out as IOC; market orders as Upbit's ``price`` (buy
by KRW spend) and ``market`` (sell by volume) types, see
:func:`market_order_body`.
"""

from __future__ import annotations

import logging
import time
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable, Sequence

from arb.backoff import Backoff
from arb.errors import Banned, ExchangeError, ExchangeUnavailable, OutcomeUnknown, RateLimited, UnknownOrder
from arb.models import MarketRules, Order, OrderIntent, Side
from arb.rest import retry_idempotent

from arb_upbit.errormap import EXCHANGE
from arb_upbit.parse import parse_order
from arb_upbit.transport import MalformedReply, UpbitTransport

log = logging.getLogger(__name__)

_SIDE = {Side.BUY: "bid", Side.SELL: "ask"}


def _parse(reply: Any, intent: OrderIntent | None = None) -> Order:
    try:
        return parse_order(reply, intent)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedReply(EXCHANGE, f"an order reply without the expected fields ({type(exc).__name__})") from None


def _key(order: Order) -> dict[str, str]:
    """Look an order up by our id; orders placed elsewhere may only have Upbit's uuid."""
    if order.intent.client_order_id:
        return {"identifier": order.intent.client_order_id}
    return {"uuid": order.exchange_order_id}


def market_buy_spend(volume: str, worst_price: float) -> str:
    """The whole KRW a market buy of ``volume`` may spend at ``worst_price``, rounded down.

    Computed on the decimal strings, so ``0.07 × 140001000`` is exactly
    9800070, not a float a hair below it that would floor to 9800069.
    """
    spend = Decimal(volume) * Decimal(repr(float(worst_price)))
    return str(spend.to_integral_value(rounding=ROUND_FLOOR))


def market_order_body(intent: OrderIntent, volume: str) -> dict[str, str]:
    """Upbit market orders: a buy names the KRW to spend, a sell the volume.

    A market buy (``ord_type`` ``price``) sends ``quantity × limit_price``
    rounded down to a whole KRW and no volume: Upbit buys whatever that sum
    gets at the asks, so the volume filled may differ slightly from
    ``intent.quantity`` (more when the asks are below ``limit_price``, a
    little less from the rounding, and Upbit truncates each fill's volume to
    eight decimals, refunding the KRW it could not spend).  A market sell
    (``ord_type`` ``market``) sends the volume and no price.  Neither takes
    a ``time_in_force``: both fill at once and cancel what is left.
    """
    if intent.side is Side.BUY:
        terms = {"price": market_buy_spend(volume, intent.limit_price), "ord_type": "price"}
    else:
        terms = {"volume": volume, "ord_type": "market"}
    return {"market": intent.symbol, "side": _SIDE[intent.side], **terms, "identifier": intent.client_order_id}


class OrderDesk:
    def __init__(self, transport: UpbitTransport, rules_for: Callable[[str], MarketRules], *,
                 settle_s: float = 2.0, lookup_attempts: int = 4, lookup_backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.transport = transport
        self.rules_for = rules_for
        self.settle_s = settle_s
        self.lookup_attempts = lookup_attempts
        self._lookup_backoff = lookup_backoff or Backoff(base_s=0.1, cap_s=1.0)
        self._sleep = sleep

    # --- placing -----------------------------------------------------------------

    def order_body(self, intent: OrderIntent) -> dict[str, str]:
        rules = self.rules_for(intent.symbol)
        # Snap to tick and lot step, never to a worse price or a larger size.
        qty = rules.round_qty(intent.quantity)
        if intent.order_type == "market":
            return market_order_body(intent, rules.format_qty(qty))
        price = rules.round_price(intent.limit_price, intent.side)
        return {
            "market": intent.symbol,
            "side": _SIDE[intent.side],
            "volume": rules.format_qty(qty),
            "price": rules.format_price(price),
            "ord_type": "limit",
            "time_in_force": "ioc",
            "identifier": intent.client_order_id,
        }

    def place(self, intent: OrderIntent) -> Order:
        body = self.order_body(intent)
        try:
            reply = self.transport.request("POST", "/v1/orders", private=True, body=body)
        except ExchangeUnavailable as exc:
            if exc.code == "market_offline":
                raise  # a clear refusal: the market is closed
            log.warning("order %s: no clear answer (%s); looking it up, not re-sending",
                        intent.client_order_id, exc.exchange_message)
            return self._settle_unknown(intent, exc)
        try:
            order = _parse(reply, intent)
        except MalformedReply as exc:
            return self._settle_unknown(intent, exc)
        return self.follow(order)

    def _settle_unknown(self, intent: OrderIntent, cause: ExchangeError) -> Order:
        backoff = self._lookup_backoff
        backoff.reset()
        last = "not found"
        for attempt in range(self.lookup_attempts):
            if attempt:
                # A floor, because an order may take a moment to become visible.
                self._sleep(max(0.05, backoff.next_delay()))
            try:
                order = self._lookup({"identifier": intent.client_order_id}, intent)
            except (ExchangeUnavailable, RateLimited) as exc:
                last = exc.exchange_message
                if isinstance(exc, Banned):
                    break
                continue
            except ExchangeError as exc:
                # Whatever the lookup's own problem (a key without read permission...),
                # the order's fate is still unknown: that is what the caller must hear.
                last = exc.exchange_message
                break
            if order is not None:
                log.info("order %s found after a lost answer: %s", intent.client_order_id, order.status.value)
                return self.follow(order)
            last = "not found"
        raise OutcomeUnknown(
            EXCHANGE,
            f"order {intent.client_order_id}: POST /v1/orders got no clear answer ({cause.exchange_message}) "
            f"and {self.lookup_attempts} lookups did not settle it (last: {last}); it was not re-sent",
            code=cause.code, status=cause.status)

    def follow(self, order: Order) -> Order:
        """Poll an accepted order until it is final or ``settle_s`` has passed."""
        deadline = time.monotonic() + self.settle_s
        backoff = Backoff(base_s=0.05, cap_s=0.5)
        while not order.status.is_final and time.monotonic() < deadline:
            self._sleep(max(0.02, backoff.next_delay()))
            try:
                latest = self._lookup(_key(order), order.intent)
            except (ExchangeUnavailable, RateLimited) as exc:
                log.debug("following order %s: %s", order.intent.client_order_id, exc.exchange_message)
                continue
            except ExchangeError as exc:
                # The order exists; an error now must not read as if placing it failed.
                log.warning("cannot follow order %s: %s", order.intent.client_order_id, exc)
                break
            if latest is not None:
                order = latest
        return order

    # --- reading -----------------------------------------------------------------

    def _lookup(self, key: dict[str, str], intent: OrderIntent | None = None) -> Order | None:
        try:
            reply = self.transport.get("/v1/order", key, private=True)
        except UnknownOrder:
            return None
        return _parse(reply, intent)

    def get(self, client_order_id: str) -> Order | None:
        return retry_idempotent(lambda: self._lookup({"identifier": client_order_id}))

    def open_orders(self, symbols: Sequence[str]) -> list[Order]:
        orders: list[Order] = []
        for symbol in symbols:
            params: dict[str, Any] = {"market": symbol, "states[]": ["wait", "watch"], "limit": 100}
            reply = retry_idempotent(lambda: self.transport.get("/v1/orders/open", params, private=True))
            orders.extend(_parse(item) for item in reply)
        return orders

    # --- cancelling --------------------------------------------------------------

    def cancel(self, client_order_id: str) -> Order:
        """Ask Upbit to cancel; the cancel is asynchronous, so follow it briefly."""
        reply = self.transport.request("DELETE", "/v1/order", {"identifier": client_order_id}, private=True)
        return self.follow(_parse(reply))
