"""The journal: every session, order, fill, guard decision and PnL record, in one SQLite file.

Two connections, two promises:

- Order intents are written *before* the order is sent, on the engine's
  thread, and committed before it goes on: an order an exchange
  acknowledged always has its client order id on disk, even after
  ``kill -9``.  So is a session stop (rare; the session ends on it anyway).
- Everything else is queued as a plain tuple and written by one writer
  thread, in batches.  The engine thread never waits on the disk for it; a
  crash can lose the last moments of it (up to :data:`GATHER_S`), never an
  order's id, so what an order became can always be asked of its exchange.

Realized PnL is journaled as the portfolio books it, whatever booked it:
after each event the running total is compared with the last one seen.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from arb.events import Event
from arb import journal_queries as queries
from arb.journal_queries import day_window, stops_in_force, today_realized_pnl
from arb.journal_rows import RowWriter
# default_path and journal_path live beside connect so that reading a journal
# (validate-config, arb journal) does not load the writer; callers find them here.
from arb.journal_schema import JournalError, connect, default_path, journal_path  # noqa: F401
from arb.models import Order, OrderIntent, OrderStatus, Side
from arb.portfolio import trading_day

log = logging.getLogger("arb.journal")

#: Stops that outlive their session: a new session the same trading day opens no trades.
PERSISTENT_STOP_RULES = ("max_daily_loss",)
WALL, SIMULATED = "wall", "simulated"
_FLUSH, _STOP = object(), object()
_BATCH = 2048
#: How long the writer gathers queued records before writing them in one
#: transaction.  Waking for every record would make it fight the engine
#: thread for the GIL and the database; this bounds what a crash can lose
#: of the queued records (never an order's id: those are not queued).
GATHER_S = 0.05
CHECKPOINT_S = 1.0


def now_ms() -> float:
    return time.time() * 1000.0


@dataclass(frozen=True)
class CarryOver:
    """What earlier sessions of the same trading day leave to a new one."""

    day: str
    realized_pnl: float
    stops: list[dict[str, Any]]
    next_day_ms: float


class Journal:
    """One session's journal.  Subscribe it to the event bus; hand
    :meth:`order_update` to a live gateway; :meth:`close` at the end."""

    def __init__(self, path: Path, *, session_id: str, mode: str, clock: str, day_start_ms: int = 0,
                 durable: bool = True):
        self.path = path
        self.session_id = session_id
        self.mode = mode
        self.clock = clock
        self.day_start_ms = day_start_ms
        #: Called with a reason if an intent cannot be written: the session must stop.
        self.on_failure: Callable[[str], None] | None = None
        #: The portfolio's running realized PnL; set by the session.
        self.realized: Callable[[], float] = lambda: 0.0
        self.write_errors = 0
        self._last_realized = 0.0
        # Held around every use of the engine-side connection and every write
        # transaction, so the two connections never meet SQLite's busy handler
        # (it sleeps in whole milliseconds): an intent waits exactly as long as
        # the writer's commit, which holds nothing but SQL.
        self._db_lock = threading.Lock()
        self._wake = threading.Event()
        self._checkpointed = time.monotonic()
        self._sync = connect(path, create=True)
        self._writer: sqlite3.Connection | None = None
        try:
            # Intents commit on the engine thread.  In live_trading the money
            # is real, so a commit reaches the platter (FULL: the WAL is
            # fsynced) and survives a power cut; in paper NORMAL commits
            # survive the process dying, which is the crash paper has.
            self._sync.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            # Checkpoints (copying the WAL into the file, with fsyncs) belong
            # to the writer thread, never to an order on its way out.
            self._sync.execute("PRAGMA wal_autocheckpoint=0")
            self._writer = connect(path, create=True)
            self._writer.execute("PRAGMA synchronous=NORMAL")
            self._writer.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint
        except BaseException as exc:
            self._sync.close()
            if self._writer is not None:
                self._writer.close()
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"journal {path}: {exc}") from None
            raise
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._rows = RowWriter(session_id, day_start_ms)
        self._thread = threading.Thread(target=self._write_loop, name="arb-journal", daemon=True)
        self._thread.start()

    # --- read at start-up ------------------------------------------------------------

    def carry_over(self, at_ms: float) -> CarryOver:
        """Today's realized PnL and daily-loss stops in force, from earlier
        wall-clock sessions of this mode."""
        start, end = day_window(at_ms, self.day_start_ms)
        try:
            with self._db_lock:
                pnl = today_realized_pnl(self._sync, self.mode, start, end)
                stops = stops_in_force(self._sync, self.mode, start, end, PERSISTENT_STOP_RULES)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path} cannot be read: {exc}") from None
        return CarryOver(trading_day(at_ms, self.day_start_ms), pnl, stops, end)

    def _read(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            with self._db_lock:
                return query(self._sync)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path} cannot be read: {exc}") from None

    def unsettled_intents(self, unknown_prefix: str) -> list[tuple[str, OrderIntent]]:
        """``(session id, intent)`` of every live order no session saw final."""
        final = tuple(s.value for s in OrderStatus if s.is_final)
        rows = self._read(lambda conn: queries.unsettled_intents(conn, final, unknown_prefix))
        return [(row["session_id"], _intent(row)) for row in rows]

    def live_intent(self, client_order_id: str) -> tuple[str, OrderIntent] | None:
        row = self._read(lambda conn: queries.live_intent(conn, client_order_id))
        return None if row is None else (row["session_id"], _intent(row))

    def live_positions(self) -> list[dict[str, Any]]:
        return self._read(queries.live_positions)

    def open_live_trades(self) -> list[dict[str, Any]]:
        return self._read(queries.open_live_trades)

    def other_sessions_running(self) -> list[dict[str, Any]]:
        """Earlier sessions of this mode with no end recorded (crashed, or running now)."""
        rows = self._read(lambda conn: queries.running_sessions(conn, self.mode))
        return [row for row in rows if row["id"] != self.session_id]

    # --- written before anything leaves ------------------------------------------------

    def start_session(self, config_source: str, carried_pnl: float, entries_refused: str) -> None:
        from arb import __version__
        self._commit("INSERT OR REPLACE INTO sessions (id, mode, clock, config, started_ms, carried_pnl, "
                     "entries_refused, pid, arb_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(self.session_id, self.mode, self.clock, config_source, now_ms(), carried_pnl,
                       entries_refused or None, os.getpid(), __version__)])

    def adopt(self, intent: OrderIntent, asset: str) -> None:
        """An order of ours an exchange holds and the journal never saw (its
        journal was lost or moved): on record before anything is done to it."""
        self._commit("INSERT OR IGNORE INTO order_intents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(intent.client_order_id, self.session_id, now_ms(), "adopted", asset, None, intent.exchange,
                       intent.symbol, intent.side.value, intent.order_type, intent.quantity, intent.limit_price,
                       intent.expected_price)])

    def note_entries_refused(self, reason: str) -> None:
        self._commit("UPDATE sessions SET entries_refused = ? WHERE id = ?", [(reason, self.session_id)])

    def record_intents(self, plan: Any, legs: Sequence[OrderIntent], ts_ms: float) -> None:
        """For ``OrderPipeline.recorders``: raises if the intents are not on disk."""
        rows = [(leg.client_order_id, self.session_id, ts_ms, plan.kind, plan.asset, plan.trade_id or None,
                 leg.exchange, leg.symbol, leg.side.value, leg.order_type, leg.quantity, leg.limit_price,
                 leg.expected_price) for leg in legs]
        try:
            self._commit("INSERT OR REPLACE INTO order_intents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except Exception as exc:
            reason = f"journal cannot record orders ({type(exc).__name__}: {exc}); trading stops"
            log.critical("[ARB_JOURNAL] %s", reason)
            if self.on_failure is not None:
                self.on_failure(reason)
            raise

    def _record_stop(self, event: Event) -> None:
        rule, reason = str(event.data.get("rule", "")), str(event.data.get("reason", ""))
        self._commit("INSERT INTO session_stops (session_id, ts_ms, trading_day, mode, clock, rule, reason) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(self.session_id, event.ts_ms, trading_day(event.ts_ms, self.day_start_ms), self.mode,
                       self.clock, rule, reason)])

    def _commit(self, sql: str, rows: list[tuple]) -> None:
        """``sql`` (an INSERT ending in one ``VALUES (...)``) for all ``rows``
        as one statement: in autocommit mode that is one atomic transaction
        and one trip into SQLite (each trip hands the GIL to other threads)."""
        if not rows:
            return
        if len(rows) > 1:
            values = sql[sql.rindex("VALUES") + 6:]
            sql += "," + ",".join([values] * (len(rows) - 1))
        params = rows[0] if len(rows) == 1 else tuple(v for row in rows for v in row)
        with self._db_lock:
            self._sync.execute(sql, params)

    # --- queued: the engine thread only enqueues ----------------------------------------

    def __call__(self, event: Event) -> None:
        """The event bus subscriber."""
        kind = event.kind
        data = event.data
        if kind == "orders_submitting":
            pass  # recorded before this event, by record_intents as a pipeline recorder
        elif kind == "session_stop":
            self._record_stop(event)
        elif kind == "orders_done":
            for order in data["orders"]:
                self._queue.put(("order", event.ts_ms, _order_state(order)))
        elif kind == "trade_opened":
            t = data["trade"]
            self._queue.put(("trade_opened", event.ts_ms, (t.id, t.asset, t.direction.value, t.quantity,
                             t.opened_ms, t.entry_premium_pct, t.open_cashflow,
                             [o.intent.client_order_id for o in t.open_orders])))
        elif kind == "trade_closed":
            t = data["trade"]
            self._queue.put(("trade_closed", event.ts_ms, (t.id, t.closed_ms or event.ts_ms, t.exit_premium_pct,
                             data.get("pnl", t.realized_pnl), [o.intent.client_order_id for o in t.close_orders])))
        else:
            self._queue.put((kind, event.ts_ms, data))
        realized = self.realized()
        if realized != self._last_realized:
            self._queue.put(("pnl", event.ts_ms, (realized - self._last_realized, kind)))
            self._last_realized = realized

    def order_update(self, order: Order) -> None:
        """For ``LiveGateway.on_update``: every state an order is seen in (order threads)."""
        self._queue.put(("order", now_ms(), _order_state(order)))

    # --- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        q = self._queue
        running, backlog = True, False
        while running:
            batch = [q.get()]
            if not backlog and self._wake.wait(GATHER_S):
                self._wake.clear()
            while len(batch) < _BATCH:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            backlog = len(batch) == _BATCH
            running = self._write_batch(batch)
            self._checkpoint()

    def _checkpoint(self) -> None:
        # A passive checkpoint (copy the WAL into the file, fsync it) runs
        # beside writers, so it is done here, outside _db_lock, rather than
        # inside some commit an order may be waiting for.
        now = time.monotonic()
        if now - self._checkpointed < CHECKPOINT_S:
            return
        self._checkpointed = now
        try:
            self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("[ARB_JOURNAL] checkpoint failed: %s", exc)

    def _write_batch(self, batch: list[tuple]) -> bool:
        """One transaction for the whole batch; False once told to stop."""
        marks, statements, running = [], [], True
        for item in batch:
            if item[0] is _FLUSH:
                marks.append(item[1])
            elif item[0] is _STOP:
                running = False
            else:
                try:
                    statements += self._rows.statements(*item)
                except Exception:
                    self.write_errors += 1
                    log.exception("[ARB_JOURNAL] could not journal a %s record", item[0])
        conn = self._writer
        with self._db_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    try:
                        conn.execute(sql, params)
                    except sqlite3.IntegrityError:
                        self.write_errors += 1
                        log.exception("[ARB_JOURNAL] could not journal a record")
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.write_errors += len(statements)
                log.error("[ARB_JOURNAL] lost a batch of %d record(s): %s", len(statements), exc)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        for mark in marks:
            mark.set()
        return running

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed."""
        if self._closed:
            return True
        mark = threading.Event()
        self._queue.put((_FLUSH, mark))
        self._wake.set()
        return mark.wait(timeout)

    def end_session(self, exit_reason: str, summary: dict[str, Any]) -> None:
        realized = self.realized()
        if realized != self._last_realized:
            self._queue.put(("pnl", now_ms(), (realized - self._last_realized, "session_end")))
            self._last_realized = realized
        self._queue.put(("session_end", now_ms(), (exit_reason, summary)))

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, then close both connections.  Idempotent."""
        if self._closed:
            return
        self._queue.put((_STOP, None))
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("[ARB_JOURNAL] the writer did not finish within %.0f s; records may be missing", timeout)
            return
        self._closed = True
        with self._db_lock:
            self._sync.close()
        self._writer.close()


def _order_state(order: Order) -> tuple:
    # A snapshot: the order object may change after this returns.
    intent = order.intent
    return (intent.client_order_id, order.status.value, order.exchange_order_id, intent.quantity,
            intent.limit_price, tuple(order.fills), order.reason)


def _intent(row: dict[str, Any]) -> OrderIntent:
    return OrderIntent(row["exchange"], row["symbol"], Side(row["side"]), row["quantity"], row["limit_price"],
                       row["expected_price"], row["client_order_id"], row["order_type"])
