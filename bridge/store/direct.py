"""The worker's per-run statements on the database driver itself, without SQLAlchemy's layers.

Every run of ``bridge.run_job`` reads its job and writes its claim, its started row and its
verdict: four or five short transactions. Through SQLAlchemy Core each costs a connection
checkout from the pool, the statement's cache-key and parameter processing, result processing
and the pool's reset on return: in a ``yappi`` CPU profile of a 1,000-job burst, more of the
worker's time than anything else (``docs/benchmarks.md``). This module runs those few
statements (:mod:`bridge.store.claims`, :mod:`bridge.store.run_rows`,
:mod:`bridge.store.job_lookup`) straight on the DB-API connection, writing exactly what the
SQLAlchemy models write (:class:`bridge.store.models.UTCDateTime`: naive UTC; on SQLite the
text ``YYYY-MM-DD HH:MM:SS.ffffff``) and reading back aware UTC, so the rows are the same
whoever wrote them (tested against the models in ``tests/store/test_direct.py``).

Connections:

* a **SQLite file** registry: one connection per thread (opened on first use, with the
  registry's pragmas, kept for the thread's life: a worker's threads are its pool's), in
  autocommit mode; a write is ``BEGIN IMMEDIATE`` ... ``COMMIT``, so SQLite takes the write lock
  first (waiting up to the busy timeout) and never answers a read-then-write upgrade with
  ``database is locked``;
* anything else (PostgreSQL, an in-memory or URI SQLite): the registry engine's pool, one
  checkout per transaction (pre-ping, size and overflow as configured), the connection
  invalidated after a connection-level error.

Errors: an integrity error (a unique violation) is :class:`Duplicate` (the caller's to judge:
a claim someone else holds, a row already written); every other driver error is the registry's
:class:`~bridge.core.errors.InfraError` naming the masked URL, as through SQLAlchemy.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bridge.core.errors import InfraError

T = TypeVar("T")
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DateTime storage format
BUSY_TIMEOUT_SECONDS = 30  # as the registry's engine (bridge.store.db.make_engine)
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON",
                  "synchronous=NORMAL")  # every registry connection's (bridge.store.db too)


def apply_pragmas(dbapi_connection: Any) -> None:
    """Set :data:`SQLITE_PRAGMAS` on a new SQLite connection."""
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()

NAMED = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")


class Duplicate(Exception):
    """The statement hit a unique constraint (the row exists already)."""


class Statement:
    """One SQL text with ``:name`` parameters, in both drivers' parameter styles."""

    __slots__ = ("pyformat", "qmark_named")

    def __init__(self, sql: str) -> None:
        self.qmark_named = sql  # sqlite3 takes :name with a mapping
        self.pyformat = NAMED.sub(r"%(\1)s", sql)  # psycopg

    def text(self, sqlite: bool) -> str:
        return self.qmark_named if sqlite else self.pyformat


class Cursor:
    """A cursor in a transaction, speaking the registry's value conventions."""

    __slots__ = ("cur", "sqlite")

    def __init__(self, cur: Any, sqlite: bool) -> None:
        self.cur, self.sqlite = cur, sqlite

    def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        """Run ``stmt``; the row count."""
        self.cur.execute(stmt.text(self.sqlite), params)
        return int(self.cur.rowcount)

    def rows(self, stmt: Statement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        self.cur.execute(stmt.text(self.sqlite), params)
        return list(self.cur.fetchall())

    def insert(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        """Run an ``INSERT ... RETURNING id`` (SQLite: the statement without it); the new id."""
        if self.sqlite:
            self.cur.execute(stmt.text(True).split(" RETURNING ", 1)[0], params)
            return int(self.cur.lastrowid)
        self.cur.execute(stmt.text(False), params)
        return int(self.cur.fetchone()[0])

    def t(self, value: datetime | None) -> Any:
        """A timestamp as the models store it (naive UTC; text on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use aware UTC")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLAlchemy's SQLite text, "%04d-%02d-%02d %02d:%02d:%02d.%06d" (SQLITE_TIME)
        return naive.isoformat(" ", "microseconds") if self.sqlite else naive


def read_time(value: Any) -> datetime | None:
    """A stored timestamp back as aware UTC (text on SQLite, naive datetime elsewhere)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


class Direct:
    """The registry's connections for the worker's statements (thread-safe)."""

    def __init__(self, engine: Engine, unreachable: Callable[[Exception], InfraError]) -> None:
        """``unreachable`` turns a driver error into the registry's one-line error."""
        self.engine = engine
        self.unreachable = unreachable
        url = engine.url
        self.sqlite = url.get_backend_name() == "sqlite"
        database = url.database or ""
        self.file = (database if self.sqlite and database not in ("", ":memory:")
                     and not database.startswith("file:") and not url.query else None)
        self.local = threading.local()
        self.opened: list[sqlite3.Connection] = []
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.errors: tuple[type[Exception], ...] = (
            engine.dialect.loaded_dbapi.Error,)

    # --- connections ------------------------------------------------------------------------

    def _thread_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            assert self.file is not None
            conn = sqlite3.connect(self.file, timeout=BUSY_TIMEOUT_SECONDS,
                                   isolation_level=None, check_same_thread=False)
            apply_pragmas(conn)
            self.local.conn = conn
            with self.lock:
                self.opened.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.file is not None:
            yield self._thread_connection()
            return
        fairy = self.engine.raw_connection()
        try:
            yield fairy
        except BaseException as e:
            if self._connection_lost(e):
                fairy.invalidate(e)
            raise
        finally:
            fairy.close()

    def _connection_lost(self, e: BaseException) -> bool:
        dbapi = self.engine.dialect.loaded_dbapi
        return isinstance(e, (dbapi.OperationalError, dbapi.InterfaceError))

    def warm(self) -> None:
        """Open the calling thread's connection now (a SQLite file; else nothing to do)."""
        if self.file is not None:
            self._thread_connection()

    # --- transactions -----------------------------------------------------------------------

    def read(self, work: Callable[[Cursor], T]) -> T:
        """``work``, one statement, as a read: on a SQLite file that one statement is its own
        consistent read (autocommit: no ``BEGIN`` / ``COMMIT`` round, no write lock)."""
        return self._run(work, write=False, single=True)

    def write(self, work: Callable[[Cursor], T], *, one_statement: bool = False) -> T:
        """``work`` in one write transaction: committed, or rolled back on any error. On a
        SQLite file, this process's writers take turns on a lock first: a thread waiting for it
        wakes the moment the previous one commits, where SQLite's own busy handler would
        sleep 1, 2, 5, 10 ... up to 100 ms between tries (other processes still meet SQLite's
        lock and its busy timeout). ``one_statement``: ``work`` runs exactly one statement,
        atomic by itself, so on a SQLite file it runs in autocommit mode: one call into SQLite
        while the turn is held instead of three (each call lets other threads run first)."""
        if self.file is None:
            return self._run(work, write=True, single=False)
        with self.write_lock:
            return self._run(work, write=True, single=one_statement)

    def _run(self, work: Callable[[Cursor], T], *, write: bool, single: bool) -> T:
        try:
            with self._connection() as conn:
                if single and self.file is not None:
                    return self._autocommit(conn, work)
                return self._transaction(conn, work, write)
        except Duplicate:
            raise
        except self.errors as e:
            if _unique_violation(e):
                raise Duplicate(str(e)) from e
            raise self.unreachable(e) from e

    def _autocommit(self, conn: Any, work: Callable[[Cursor], T]) -> T:
        cur = conn.cursor()
        try:
            return work(Cursor(cur, self.sqlite))
        finally:
            cur.close()

    def _transaction(self, conn: Any, work: Callable[[Cursor], T], write: bool) -> T:
        cur = conn.cursor()
        try:
            if self.file is not None:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif self.sqlite and write:
                cur.execute("BEGIN IMMEDIATE")
            result = work(Cursor(cur, self.sqlite))
            if self.file is None:
                conn.commit()
            else:
                cur.execute("COMMIT")
            return result
        except BaseException:
            try:
                if self.file is None:
                    conn.rollback()
                else:
                    cur.execute("ROLLBACK")
            except Exception:  # the original error matters more (a lost connection)
                pass
            raise
        finally:
            cur.close()

    def close(self) -> None:
        """Close this process's per-thread SQLite connections."""
        with self.lock:
            opened, self.opened = self.opened, []
        for conn in opened:
            with suppress(Exception):
                conn.close()
        self.local = threading.local()


def _unique_violation(e: BaseException) -> bool:
    """An integrity error (SQLite's and psycopg's classes, and their subclasses): as through
    SQLAlchemy, whose ``IntegrityError`` the callers caught, the row is judged taken."""
    return any(c.__name__ in ("IntegrityError", "UniqueViolation") for c in type(e).__mro__)
