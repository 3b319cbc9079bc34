"""The live modes' market data and order gateway, over exchange clients.

Market data: each exchange's WebSocket stream pushes snapshots into one
queue that the session drains; a stream that stays down is bridged by REST
snapshots until it is back.  Orders: both legs go out concurrently, each is
followed until the exchange says it is final, and balances are re-read
afterwards, off the decision path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, Sequence

from arb.book import OrderBook
from arb.errors import Banned, ExchangeError, OutcomeUnknown
from arb.exchange import BookStream, ExchangeClient
from arb.legrisk import OUTCOME_UNKNOWN
from arb.models import MarketRules, Order, OrderIntent, OrderStatus

log = logging.getLogger("arb.live")

#: How long an order cancelled because the session is stopping is followed
#: for its final state (the usual follow timeout applies otherwise).
_STOPPING_FOLLOW_S = 3.0


class LiveMarketSource:
    """Merges every exchange's book stream into one ordered feed."""

    def __init__(self, clients: Mapping[str, ExchangeClient], symbols: Mapping[str, Sequence[str]],
                 stop: threading.Event, *, rest_fallback_after_s: float = 3.0, heartbeat_s: float = 0.25):
        self._clients = clients
        self._symbols = symbols
        self._stop = stop
        self._queue: queue.Queue[OrderBook] = queue.Queue(maxsize=100_000)
        self._streams: dict[str, BookStream] = {}
        self._down_since: dict[str, float] = {}
        self._fallback_after_s = rest_fallback_after_s
        self._heartbeat_s = heartbeat_s
        self._last_poll: dict[str, float] = {}
        self.disconnects = 0
        self.rest_snapshots = 0
        #: ``(exchange, state, detail)`` on every stream state change; alerts listen.
        self.on_stream_status: Callable[[str, str, str], None] | None = None

    def _on_book(self, book: OrderBook) -> None:
        try:
            self._queue.put_nowait(book)
        except queue.Full:  # the engine is far behind; a newer snapshot will follow
            log.warning("book queue full; dropping a %s %s snapshot", book.exchange, book.symbol)

    def _status(self, exchange: str):
        def on_status(state: str, detail: str) -> None:
            if state == "connected":
                self._down_since.pop(exchange, None)
                log.info("%s stream connected %s", exchange, detail)
            else:
                if exchange not in self._down_since:
                    self.disconnects += 1
                self._down_since.setdefault(exchange, time.monotonic())
                log.warning("%s stream %s: %s", exchange, state, detail)
            listener = self.on_stream_status
            if listener is not None:
                try:
                    listener(exchange, state, detail)
                except Exception:
                    log.exception("stream status listener failed")
        return on_status

    def events(self) -> Iterator[OrderBook | None]:
        for name, client in self._clients.items():
            symbols = self._symbols.get(name)
            if symbols:
                stream = client.book_stream(symbols, self._on_book, self._status(name))
                self._streams[name] = stream
                stream.start()
        while not self._stop.is_set():
            try:
                yield self._queue.get(timeout=self._heartbeat_s)
            except queue.Empty:
                yield None
            self._bridge_gaps()

    def _bridge_gaps(self) -> None:
        now = time.monotonic()
        for name, since in list(self._down_since.items()):
            if now - since < self._fallback_after_s or now - self._last_poll.get(name, 0.0) < 1.0:
                continue
            self._last_poll[name] = now
            for symbol in self._symbols.get(name, ()):
                try:
                    self._on_book(self._clients[name].order_book(symbol))
                    self.rest_snapshots += 1
                except ExchangeError as exc:
                    log.warning("REST fallback for %s %s failed: %s", name, symbol, exc)

    def status(self) -> dict[str, dict[str, int | bool]]:
        return {name: {"connected": bool(s.connected), "reconnects": int(s.reconnects)}
                for name, s in self._streams.items()}

    def close(self) -> None:
        self._stop.set()
        for stream in self._streams.values():
            stream.stop()


def conform(intent: OrderIntent, rules: MarketRules) -> tuple[OrderIntent, str | None]:
    """Snap an order to the exchange's tick and lot step (never to a bigger or
    worse order) and say why it would be refused, before anything is sent."""
    qty = rules.round_qty(intent.quantity)
    price = rules.round_price(intent.limit_price, intent.side)
    if qty != intent.quantity or price != intent.limit_price:
        intent = replace(intent, quantity=qty, limit_price=price)
    return intent, rules.violation(qty, price)


class LiveGateway:
    """Sends approved legs to the exchanges and follows them to the end.

    Shutdown: ``request_stop()`` (or setting the ``stop`` event given here)
    makes every order still being followed get its cancel at once instead of
    after ``follow_timeout_s``; ``cancel_open_orders()`` cancels whatever
    may still be open; ``close()`` does both, waits for the order threads,
    cancels anything they left open and closes the clients.
    """

    def __init__(self, clients: Mapping[str, ExchangeClient], *,
                 rules: Mapping[tuple[str, str], MarketRules] | None = None,
                 follow_timeout_s: float = 10.0, poll_interval_s: float = 0.05,
                 stop: threading.Event | None = None):
        self._clients = clients
        self._rules = rules or {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="arb-order")
        self._balances: dict[str, dict[str, float]] = {name: {} for name in clients}
        self._lock = threading.Lock()
        # Every order that may be open at an exchange, by client order id:
        self._sending: dict[str, OrderIntent] = {}   # request on its way, no answer yet
        self._active: dict[str, Order] = {}          # accepted, not yet seen final
        self._unsettled: dict[str, OrderIntent] = {}  # the answer was lost (outcome unknown)
        self._cancelled_here: set[str] = set()   # cancelled by cancel_open_orders (counted there)
        self._cancel_claimed: set[str] = set()   # one DELETE per order, whoever sends it
        self._stop = stop or threading.Event()
        self.follow_timeout_s = follow_timeout_s
        self.poll_interval_s = poll_interval_s
        self.banned: dict[str, str] = {}
        #: Called with every state an order is seen in (sent, updated, final):
        #: the journal listens here.  Runs on the order threads.
        self.on_update: Callable[[Order], None] | None = None
        self.orders_sent = 0
        self.orders_filled = 0
        self.orders_cancelled = 0
        self.orders_rejected = 0

    # --- balances ------------------------------------------------------------------

    def refresh_balances(self, exchanges: Sequence[str] | None = None) -> None:
        for name in exchanges or list(self._clients):
            balances = self._clients[name].balances()
            self._balances[name] = {asset: b.free for asset, b in balances.items()}

    def free_balances(self, exchange: str) -> dict[str, float]:
        return self._balances.setdefault(exchange, {})

    def active_orders(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def clients(self) -> Mapping[str, ExchangeClient]:
        """The exchange clients by exchange name, read-only: the session keeps
        no list of its own, and /metrics reads their rate-limit headroom."""
        return MappingProxyType(self._clients)

    @property
    def halted(self) -> str | None:
        if self.banned:
            return "; ".join(f"{name} banned us: {why}" for name, why in self.banned.items())
        return None

    # --- orders ----------------------------------------------------------------------

    def submit(self, legs: Sequence[OrderIntent], now_ms: float) -> list[Order]:
        """Both legs at once: the second leg does not wait for the first's round trip."""
        futures = [self._pool.submit(self._place_and_follow, leg) for leg in legs]
        orders = [f.result() for f in futures]
        try:
            self.refresh_balances(sorted({leg.exchange for leg in legs}))
        except ExchangeError as exc:
            log.warning("could not refresh balances after orders: %s", exc)
        return orders

    def _place_and_follow(self, intent: OrderIntent) -> Order:
        name = intent.exchange
        if name in self.banned:
            return self._refused(intent, f"not sent: {self.banned[name]}")
        rules = self._rules.get((name, intent.symbol))
        if rules is not None:
            intent, problem = conform(intent, rules)
            if problem:
                log.warning("[ARB_ORDER] %s %s refused locally: %s", name, intent.client_order_id, problem)
                return self._refused(intent, f"refused locally: {problem}")
        client = self._clients[name]
        cid = intent.client_order_id
        self.orders_sent += 1
        with self._lock:
            self._sending[cid] = intent
        # An unexpected error leaves it listed as sending: shutdown looks it up.
        try:
            order = client.place_order(intent)
        except Banned as exc:
            self._not_placed(cid)
            self.banned[name] = str(exc)
            log.error("[ARB_BAN] %s; nothing more is sent there and no trade opens", exc)
            return self._refused(intent, str(exc))
        except OutcomeUnknown as exc:
            log.error("[ARB_ORDER] outcome unknown for %s %s: %s", name, cid, exc)
            with self._lock:
                self._sending.pop(cid, None)
                self._unsettled[cid] = intent
            return self._refused(intent, f"{OUTCOME_UNKNOWN}: {exc}")
        except ExchangeError as exc:
            self._not_placed(cid)
            return self._refused(intent, str(exc))
        with self._lock:
            self._sending.pop(cid, None)
            self._active[cid] = order
        self._updated(order)
        try:
            order = self._follow(client, order)
        finally:
            with self._lock:
                # One still open stays listed: shutdown cancels it.
                if order.status.is_final:
                    self._active.pop(cid, None)
                else:
                    self._active[cid] = order
                counted_elsewhere = cid in self._cancelled_here
        if counted_elsewhere:
            return order
        if order.status is OrderStatus.FILLED:
            self.orders_filled += 1
        elif order.status is OrderStatus.CANCELED:
            self.orders_cancelled += 1
        elif order.status is OrderStatus.REJECTED:
            self.orders_rejected += 1
        return order

    def _follow(self, client: ExchangeClient, order: Order) -> Order:
        """Upbit accepts an order before it matches: poll until it is final,
        and cancel it if it lingers past the timeout or a stop is requested."""
        deadline = time.monotonic() + self.follow_timeout_s
        intent = order.intent
        cancel_sent = False
        while not order.status.is_final:
            now = time.monotonic()
            if not cancel_sent and (now >= deadline or self._stop.is_set()):
                cancel_sent = True
                if self._claim_cancel(intent.client_order_id):
                    try:
                        client.cancel_order(intent.symbol, intent.client_order_id)
                    except ExchangeError as exc:
                        log.warning("cancel of lingering %s failed: %s", intent.client_order_id, exc)
                # Shutting down, the cancel's outcome is waited for briefly.
                wait_s = min(self.follow_timeout_s, _STOPPING_FOLLOW_S) if self._stop.is_set() \
                    else self.follow_timeout_s
                deadline = time.monotonic() + wait_s
            elif now >= deadline:
                log.error("[ARB_ORDER] %s still %s after cancel; left for reconciliation",
                          intent.client_order_id, order.status.value)
                return order
            time.sleep(self.poll_interval_s)
            try:
                found = client.get_order(intent.symbol, intent.client_order_id)
            except ExchangeError as exc:
                log.warning("order lookup failed for %s: %s", intent.client_order_id, exc)
                continue
            if found is not None and (found.status is not order.status or found.filled_qty != order.filled_qty):
                order = found
                self._updated(order)
            elif found is not None:
                order = found
        return order

    def _claim_cancel(self, cid: str) -> bool:
        """True for the first caller only: an order gets one cancel request."""
        with self._lock:
            if cid in self._cancel_claimed:
                return False
            self._cancel_claimed.add(cid)
            return True

    def _not_placed(self, cid: str) -> None:
        with self._lock:
            self._sending.pop(cid, None)

    def _updated(self, order: Order) -> None:
        if self.on_update is not None:
            try:
                self.on_update(order)
            except Exception:
                log.exception("order update listener failed for %s", order.intent.client_order_id)

    def _refused(self, intent: OrderIntent, reason: str) -> Order:
        self.orders_rejected += 1
        order = Order(intent, "", OrderStatus.REJECTED, [], reason)
        self._updated(order)
        return order

    # --- shutdown --------------------------------------------------------------------

    def request_stop(self) -> None:
        """From now on, an order still being followed is cancelled at once."""
        self._stop.set()

    def cancel_open_orders(self) -> int:
        """Cancel whatever of ours may still be open, all at once; returns how
        many cancels the exchanges accepted.

        That is every order being followed, every order whose placing has no
        answer yet, and every order whose outcome was never settled; those
        last two are looked up first and cancelled only if open.
        """
        self.request_stop()
        with self._lock:
            pending = {cid: order.intent for cid, order in self._active.items()}
            for cid, intent in (*self._sending.items(), *self._unsettled.items()):
                pending.setdefault(cid, intent)
            self._unsettled.clear()
        if not pending:
            return 0
        with ThreadPoolExecutor(max_workers=min(8, len(pending)), thread_name_prefix="arb-cancel") as pool:
            cancelled = sum(pool.map(self._cancel_one, pending.values()))
        self.orders_cancelled += cancelled
        return cancelled

    def _cancel_one(self, intent: OrderIntent) -> bool:
        client = self._clients[intent.exchange]
        cid = intent.client_order_id
        try:
            with self._lock:
                known_open = cid in self._active
            if not known_open:
                found = client.get_order(intent.symbol, cid)
                if found is None or found.status.is_final:
                    return False
            if not self._claim_cancel(cid):
                return False  # its follower has sent the cancel already
            with self._lock:
                self._cancelled_here.add(cid)
            order = client.cancel_order(intent.symbol, cid)
        except ExchangeError as exc:
            with self._lock:
                self._cancelled_here.discard(cid)
            log.error("could not cancel %s on %s on shutdown: %s", cid, intent.exchange, exc)
            return False
        log.warning("[ARB_ORDER] cancelled %s on %s on shutdown", cid, intent.exchange)
        if order.status.is_final:
            with self._lock:
                self._active.pop(cid, None)
        self._updated(order)
        return True

    def close(self) -> None:
        """Cancel what is still open, wait for the order threads, close the clients.

        An order thread still following an order cancels it at once and waits
        at most a few seconds for the cancel to show; one still waiting on an
        exchange's answer is waited for (its client's timeout bounds it),
        since what it hears back may be an order that must then be cancelled.
        """
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            left = bool(self._active or self._unsettled)
        if left:
            cancelled = self.cancel_open_orders()
            if cancelled:
                log.warning("cancelled %d order(s) still open at close", cancelled)
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # one client failing to close must not keep the other open
                log.exception("closing the %s client failed", getattr(client, "name", "?"))


class ReadOnlyGateway(LiveGateway):
    """Real balances; sending is impossible even if something asked."""

    def submit(self, legs: Sequence[OrderIntent], now_ms: float) -> list[Order]:
        raise RuntimeError("live_readonly never sends orders")
