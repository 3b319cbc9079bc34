"""Placing, finding and cancelling orders, with one rule above all others:
an order request is sent once.

When a new-order request gets no clear answer (timeout, dropped connection,
5xx, -1007, unreadable body) Binance may or may not have executed it.
Sending it again could buy twice, so instead we look it up by the client
order id we gave it.  If repeated lookups cannot find it, the outcome is
reported as unknown; the engine, not this module, decides what comes next.
"""

from __future__ import annotations

import logging
from typing import Callable

from arb.backoff import Backoff
from arb.errors import Banned, ExchangeError, ExchangeUnavailable, OutcomeUnknown, RateLimited, UnknownOrder
from arb.models import MarketRules, Order, OrderIntent, Side

from arb_binance import parse
from arb_binance.errors import EXCHANGE
from arb_binance.transport import BinanceTransport

log = logging.getLogger("arb.binance")

ORDER_PATH = "/api/v3/order"


def order_params(intent: OrderIntent, rules: MarketRules) -> list[tuple[str, str]]:
    """The new-order parameters for ``intent``.

    A MARKET order sends only its base ``quantity``, rounded down to the lot
    step: Binance refuses ``price`` and ``timeInForce`` on it (-1106), and
    it takes the book as it comes; ``intent.limit_price`` served only to
    size and guard it before it got here.
    """
    side = "BUY" if intent.side is Side.BUY else "SELL"
    if intent.order_type == "market":
        terms = [("type", "MARKET"), ("quantity", rules.format_qty(rules.round_qty(intent.quantity)))]
    else:
        terms = [("type", "LIMIT"), ("timeInForce", "IOC"), ("quantity", rules.format_qty(intent.quantity)),
                 ("price", rules.format_price(intent.limit_price))]
    return [("symbol", intent.symbol), ("side", side), *terms,
            ("newClientOrderId", intent.client_order_id), ("newOrderRespType", "FULL")]


class OrderDesk:
    def __init__(self, transport: BinanceTransport, sleep: Callable[[float], None],
                 lookup_attempts: int = 4, lookup_backoff: Callable[[], Backoff] | None = None):
        self._transport = transport
        self._sleep = sleep
        self._lookup_attempts = max(1, lookup_attempts)
        self._lookup_backoff = lookup_backoff or (lambda: Backoff(base_s=0.25, cap_s=2.0))

    def place(self, intent: OrderIntent, rules: MarketRules) -> Order:
        """LIMIT IOC at ``intent.limit_price``, or MARKET for a market intent;
        answered in full (with fills)."""
        params = order_params(intent, rules)
        # Measure the clock first if not yet done: a failure there means the
        # order was never sent, which must not be mistaken for an unclear answer.
        self._transport.clock.now_ms()
        try:
            data = self._transport.signed("POST", ORDER_PATH, params, weight=1, is_order=True)
        except ExchangeUnavailable as exc:
            log.warning("binance order %s got no clear answer (%s); looking it up, not re-sending",
                        intent.client_order_id, exc)
            return self._settle(intent, rules, exc)
        return parse.order(data, rules, intent)

    def _settle(self, intent: OrderIntent, rules: MarketRules, cause: ExchangeError) -> Order:
        backoff = self._lookup_backoff()
        outcome = "not found"
        for attempt in range(self._lookup_attempts):
            if attempt:
                self._sleep(backoff.next_delay())
            try:
                found = self.lookup(intent.symbol, intent.client_order_id, rules, intent)
            except Banned as exc:
                outcome = str(exc)
                break
            except RateLimited as exc:
                outcome = str(exc)
                self._sleep(exc.retry_after_s)
                continue
            except ExchangeUnavailable as exc:
                outcome = str(exc)
                continue
            except ExchangeError as exc:
                outcome = str(exc)
                break
            if found is not None:
                log.info("binance order %s found after an unclear answer: %s",
                         intent.client_order_id, found.status.value)
                return found
            # -2013 may only mean "not visible yet": look again after a pause.
            outcome = "not found"
        raise OutcomeUnknown(
            EXCHANGE,
            f"order {intent.client_order_id}: no clear answer ({cause.exchange_message}) and the lookup "
            f"by client id could not settle it ({outcome}); it was not re-sent",
            code=cause.code, status=cause.status)

    def lookup(self, symbol: str, client_order_id: str, rules: MarketRules,
               intent: OrderIntent | None = None) -> Order | None:
        """The order as Binance has it now, or None if it does not know it."""
        params = [("symbol", symbol), ("origClientOrderId", client_order_id)]
        try:
            data = self._transport.signed("GET", ORDER_PATH, params, weight=4)
        except UnknownOrder:
            return None
        return parse.order(data, rules, intent)

    def cancel(self, symbol: str, client_order_id: str, rules: MarketRules) -> Order:
        params = [("symbol", symbol), ("origClientOrderId", client_order_id)]
        return parse.order(self._transport.signed("DELETE", ORDER_PATH, params, weight=1), rules)

    def open_orders(self, symbol: str, rules: MarketRules) -> list[Order]:
        data = self._transport.signed("GET", "/api/v3/openOrders", [("symbol", symbol)], weight=6)
        return [parse.order(item, rules) for item in data]
