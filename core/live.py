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
from typing import Callable, Iterator, Mapping, Sequence

from arb.book import OrderBook
from arb.errors import Banned, ExchangeError, OutcomeUnknown
from arb.exchange import BookStream, ExchangeClient
from arb.models import MarketRules, Order, OrderIntent, OrderStatus

log = logging.getLogger("arb.live")


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
    """Sends approved legs to the exchanges and follows them to the end."""

    def __init__(self, clients: Mapping[str, ExchangeClient], *,
                 rules: Mapping[tuple[str, str], MarketRules] | None = None,
                 follow_timeout_s: float = 10.0, poll_interval_s: float = 0.05):
        self._clients = clients
        self._rules = rules or {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="arb-order")
        self._balances: dict[str, dict[str, float]] = {name: {} for name in clients}
        self._active: dict[str, Order] = {}
        self._lock = threading.Lock()
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
        self.orders_sent += 1
        try:
            order = client.place_order(intent)
        except Banned as exc:
            self.banned[name] = str(exc)
            log.error("[ARB_BAN] %s; nothing more is sent there and no trade opens", exc)
            return self._refused(intent, str(exc))
        except OutcomeUnknown as exc:
            log.error("[ARB_ORDER] outcome unknown for %s %s: %s", name, intent.client_order_id, exc)
            return self._refused(intent, f"outcome unknown: {exc}")
        except ExchangeError as exc:
            return self._refused(intent, str(exc))
        with self._lock:
            self._active[intent.client_order_id] = order
        self._updated(order)
        try:
            order = self._follow(client, order)
        finally:
            with self._lock:
                if order.status.is_final:
                    self._active.pop(intent.client_order_id, None)
        if order.status is OrderStatus.FILLED:
            self.orders_filled += 1
        elif order.status is OrderStatus.CANCELED:
            self.orders_cancelled += 1
        elif order.status is OrderStatus.REJECTED:
            self.orders_rejected += 1
        return order

    def _follow(self, client: ExchangeClient, order: Order) -> Order:
        """Upbit accepts an order before it matches: poll until it is final,
        and cancel it if it lingers past the timeout."""
        deadline = time.monotonic() + self.follow_timeout_s
        intent = order.intent
        cancel_sent = False
        while not order.status.is_final:
            if time.monotonic() >= deadline and not cancel_sent:
                cancel_sent = True
                try:
                    client.cancel_order(intent.symbol, intent.client_order_id)
                except ExchangeError as exc:
                    log.warning("cancel of lingering %s failed: %s", intent.client_order_id, exc)
                deadline = time.monotonic() + self.follow_timeout_s
            elif time.monotonic() >= deadline:
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

    def cancel_open_orders(self) -> int:
        """On shutdown: cancel whatever of ours is still open on the exchanges."""
        with self._lock:
            pending = list(self._active.values())
        cancelled = 0
        for order in pending:
            try:
                self._clients[order.intent.exchange].cancel_order(order.intent.symbol,
                                                                  order.intent.client_order_id)
                cancelled += 1
            except ExchangeError as exc:
                log.error("could not cancel %s on shutdown: %s", order.intent.client_order_id, exc)
        self.orders_cancelled += cancelled
        return cancelled

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        for client in self._clients.values():
            client.close()


class ReadOnlyGateway(LiveGateway):
    """Real balances; sending is impossible even if something asked."""

    def submit(self, legs: Sequence[OrderIntent], now_ms: float) -> list[Order]:
        raise RuntimeError("live_readonly never sends orders")
