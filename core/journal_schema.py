"""The journal's tables, versioned: migrations applied in order, each in its own transaction.

``schema_version`` holds one row per applied migration.  A database written
by a newer arb (a version this module does not know) is refused rather than
read with the wrong idea of what its columns mean.

To change the schema, append a :class:`Migration`; never edit one that has
shipped, since databases out there already ran it.  Where the journal file
lives and how a connection to it is opened are here too.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arb.config import JournalSettings


class JournalError(RuntimeError):
    """The journal cannot be opened or written; the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, order intents and states, fills, guard decisions, trades, PnL, stops", (
        # clock: "wall" when the session priced on the wall clock (live, or a
        # realtime paper market); "simulated" otherwise.  Only wall-clock
        # sessions carry PnL and stops over into other sessions.
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY, mode TEXT NOT NULL, clock TEXT NOT NULL, config TEXT NOT NULL,
            started_ms REAL NOT NULL, ended_ms REAL, exit_reason TEXT, stop_reason TEXT,
            realized_pnl REAL, carried_pnl REAL NOT NULL DEFAULT 0, entries_refused TEXT,
            summary TEXT, pid INTEGER, arb_version TEXT)""",
        # Written before the order is sent, durably: an order an exchange saw
        # always has its row here.  One B-tree and no other index, so the
        # commit an order waits for writes as few pages as it can.
        """CREATE TABLE order_intents (
            client_order_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, ts_ms REAL NOT NULL,
            plan_kind TEXT NOT NULL, asset TEXT NOT NULL, trade_id INTEGER, exchange TEXT NOT NULL,
            symbol TEXT NOT NULL, side TEXT NOT NULL, order_type TEXT NOT NULL, quantity REAL NOT NULL,
            limit_price REAL NOT NULL, expected_price REAL NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE order_states (
            id INTEGER PRIMARY KEY, client_order_id TEXT NOT NULL, session_id TEXT NOT NULL,
            ts_ms REAL NOT NULL, status TEXT NOT NULL, exchange_order_id TEXT, quantity REAL,
            limit_price REAL, filled_qty REAL NOT NULL, avg_price REAL NOT NULL, fees REAL NOT NULL,
            reason TEXT)""",
        "CREATE INDEX order_states_by_order ON order_states (client_order_id)",
        """CREATE TABLE fills (
            client_order_id TEXT NOT NULL, seq INTEGER NOT NULL, session_id TEXT NOT NULL,
            ts_ms REAL NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
            PRIMARY KEY (client_order_id, seq))""",
        # Consecutive repeats of one refusal (same asset, plan kind, outcome
        # and rule) share a row: count, first and last time, last reason.
        """CREATE TABLE guard_decisions (
            id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, ts_ms REAL NOT NULL, last_ms REAL NOT NULL,
            count INTEGER NOT NULL DEFAULT 1, outcome TEXT NOT NULL, plan_kind TEXT NOT NULL,
            asset TEXT NOT NULL, rule TEXT, reason TEXT, session_stop INTEGER NOT NULL DEFAULT 0,
            premium_pct REAL, detail TEXT)""",
        "CREATE INDEX guard_decisions_by_time ON guard_decisions (ts_ms)",
        "CREATE INDEX guard_decisions_by_plan ON guard_decisions (session_id, asset, plan_kind)",
        """CREATE TABLE trades (
            session_id TEXT NOT NULL, trade_id INTEGER NOT NULL, asset TEXT NOT NULL,
            direction TEXT NOT NULL, quantity REAL NOT NULL, opened_ms REAL NOT NULL,
            entry_premium_pct REAL, open_cashflow REAL, open_orders TEXT, closed_ms REAL,
            exit_premium_pct REAL, realized_pnl REAL, trading_day TEXT, close_orders TEXT,
            PRIMARY KEY (session_id, trade_id))""",
        # Every change of the portfolio's realized PnL, whatever booked it
        # (a close, a partial close, a repaired leg): today's PnL is their sum.
        """CREATE TABLE pnl (
            id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, ts_ms REAL NOT NULL,
            trading_day TEXT NOT NULL, amount REAL NOT NULL, source TEXT NOT NULL)""",
        "CREATE INDEX pnl_by_time ON pnl (ts_ms)",
        "CREATE INDEX pnl_by_session ON pnl (session_id)",
        """CREATE TABLE session_stops (
            id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, ts_ms REAL NOT NULL,
            trading_day TEXT NOT NULL, mode TEXT NOT NULL, clock TEXT NOT NULL, rule TEXT NOT NULL,
            reason TEXT NOT NULL, cleared_ms REAL, cleared_by TEXT, cleared_reason TEXT)""",
        """CREATE TABLE operator_actions (
            id INTEGER PRIMARY KEY, ts_ms REAL NOT NULL, action TEXT NOT NULL, operator TEXT NOT NULL,
            reason TEXT NOT NULL, detail TEXT)""",
        # Everything else the event bus carries (exposures, bans, later kinds).
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, ts_ms REAL NOT NULL, kind TEXT NOT NULL,
            detail TEXT)""",
    )),
    Migration(2, "operator adjustments of the live position", (
        # What an operator declared flat by hand (`arb journal clear-exposure`):
        # the live position of an asset is the sum of what our orders moved
        # plus these, so an unhedged leg stays on record across sessions
        # until a person says it is dealt with.
        """CREATE TABLE position_adjustments (
            id INTEGER PRIMARY KEY, ts_ms REAL NOT NULL, mode TEXT NOT NULL, asset TEXT NOT NULL,
            quantity REAL NOT NULL, operator TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT)""",
    )),
    Migration(3, "trades adopted by a later session", (
        # "<session>/<trade id>" of the session that took over an open pair
        # after a restart; the row stays its opener's, and is closed by the adopter.
        "ALTER TABLE trades ADD COLUMN adopted_by TEXT",
    )),
)

LATEST = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, where: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the database up to the last migration; returns the version it is at.

    ``conn`` must be in autocommit mode (``isolation_level=None``): each
    migration is its own ``BEGIN IMMEDIATE`` transaction, so a failing one
    leaves the database at the version before it, and two processes starting
    at once cannot both apply the same step.
    """
    latest = migrations[-1].version if migrations else 0
    version = _checked(current_version(conn), latest, where)
    for migration in migrations:
        if migration.version <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _checked(current_version(conn), latest, where)  # another process may have moved it
            if migration.version <= version:
                conn.execute("COMMIT")
                continue
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                         "applied_ms REAL NOT NULL, description TEXT NOT NULL)")
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                         (migration.version, time.time() * 1000.0, migration.description))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = migration.version
    return version


def _checked(version: int, latest: int, where: str) -> int:
    if version > latest:
        raise JournalError(f"journal {where} has schema version {version}, newer than this arb knows "
                           f"(up to {latest}): it was written by a newer arb; upgrade arb, or set "
                           "journal.path to another file")
    return version


def default_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "arb" / "journal.sqlite"


def journal_path(settings: JournalSettings) -> Path:
    if settings.path is None:
        return default_path()
    path = Path(os.path.expandvars(os.path.expanduser(settings.path)))
    return path if path.is_absolute() or not settings.base_dir else Path(settings.base_dir) / path


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """An autocommit connection to a migrated journal, or :class:`JournalError` saying why not."""
    if path.is_dir():
        raise JournalError(f"journal {path} is a directory; journal.path must name a file")
    if not create and not path.exists():
        raise JournalError(f"no journal at {path} (no session has written one yet, or the wrong path)")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    except (OSError, sqlite3.Error) as exc:
        raise JournalError(f"cannot open journal {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn, str(path))
    except sqlite3.Error as exc:
        conn.close()
        raise JournalError(f"journal {path} is not usable: {exc} (not an arb journal?)") from None
    except BaseException:
        conn.close()
        raise
    return conn
