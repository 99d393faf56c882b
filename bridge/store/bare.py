"""The registry as the legacy shim sees it: a few statements on the bare database driver.

The shim must not import SQLAlchemy (about 200 ms before the first statement, on every cron
job), so it speaks to ``sqlite3``, or to PostgreSQL's libpq directly through ``ctypes``
(psycopg only when no libpq can be loaded: its import alone costs 80-130 ms). It writes exactly
the rows and formats the SQLAlchemy models write: timestamps as
:class:`bridge.store.models.UTCDateTime` stores them (naive UTC; on SQLite the text
``YYYY-MM-DD HH:MM:SS.ffffff``), so a claim inserted here and one inserted by
:class:`legacy_wrappers.claims.Claims` for the same slot collide on the unique constraint. Only
the uncontested claim, its renewal and its completion are done here; a claim whose row already
exists goes to :class:`legacy_wrappers.claims.Claims` itself (the shim's
:func:`legacy_wrappers.shim_run.contested_claim`).

A SQLite registry is opened ``mode=rw``: a missing file is "unreachable", never created empty.
Every driver error other than a unique violation becomes :class:`StoreError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LEASE_SECONDS = 30  # bridge.core.claims.LeaseTerms defaults
RENEW_SECONDS = 10
BUSY_TIMEOUT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 5


class StoreError(Exception):
    """The registry cannot be used right now (unreachable, locked, not migrated)."""


@dataclass(frozen=True)
class ClaimRef:
    id: int
    holder: str
    attempts: int


class Store:
    """The few statements the shim needs (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        try:
            self.conn: Any = _connect_sqlite(url) if self.sqlite else _connect_pg(url)
        except Exception as e:
            raise StoreError(f"database unreachable: {first_line(e)}") from e

    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    def _t(self, t: datetime | None) -> Any:
        if t is None:
            return None
        naive = t.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else naive

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as e:
            if _is_unique_violation(e):
                raise
            raise StoreError(f"database error: {first_line(e)}") from e

    @contextmanager
    def tx(self) -> Iterator[Any]:
        with self._guard():
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def job(self, job_id: str) -> tuple[dict[str, Any] | None, list[tuple[datetime | None, str]]]:
        """The job's spec (None: not in the registry) and its authority history, in order.
        A paused job's spec carries ``"paused": <reason>`` (the reason may be empty)."""
        import json

        with self._guard():
            cur = self.conn.cursor()
            cur.execute(self._sql("SELECT spec, paused, paused_reason FROM jobs "
                                  "WHERE id = ? AND deleted_at IS NULL"), (job_id,))
            row = cur.fetchone()
            cur.execute(self._sql("SELECT effective_slot, owner FROM authority_events "
                                  "WHERE job_id = ? ORDER BY id"), (job_id,))
            events = [(_read_time(t), str(owner)) for t, owner in cur.fetchall()]
        spec = None if row is None else row[0] if isinstance(row[0], dict) else json.loads(row[0])
        if spec is not None and row[1] and str(row[1]).lower() not in ("0", "false", "f"):
            spec = {**spec, "paused": row[2] or ""}
        return spec, events

    def claim(self, job_id: str, slot: datetime, holder: str, now: datetime) -> ClaimRef | None:
        """Insert the claim row; None when ``(job, slot)`` is already claimed."""
        sql = self._sql(
            "INSERT INTO claims (job_id, slot, holder, path, state, attempts, expires_at, "
            "created_at, updated_at) VALUES (?, ?, ?, 'legacy', 'running', 1, ?, ?, ?) "
            "RETURNING id")
        expires = now + timedelta(seconds=LEASE_SECONDS)
        try:
            with self._guard():
                cur = self.conn.cursor()
                cur.execute(sql, (job_id, self._t(slot), holder, self._t(expires), self._t(now),
                                  self._t(now)))
                return ClaimRef(int(cur.fetchone()[0]), holder, 1)
        except StoreError:
            raise
        except Exception:  # the unique constraint: someone holds (or held) this slot
            return None

    def _fence(self, ref: ClaimRef) -> tuple[str, tuple[Any, ...]]:
        return "id = ? AND holder = ? AND attempts = ? AND state = 'running'", (
            ref.id, ref.holder, ref.attempts)

    def renew(self, ref: ClaimRef, now: datetime) -> bool:
        where, args = self._fence(ref)
        expires = now + timedelta(seconds=LEASE_SECONDS)
        with self.tx() as cur:
            sql = f"UPDATE claims SET expires_at = ?, updated_at = ? WHERE {where}"
            cur.execute(self._sql(sql), (self._t(expires), self._t(now), *args))
            return bool(cur.rowcount == 1)

    def finish(self, ref: ClaimRef | None, state: str, row: Mapping[str, Any]) -> bool:
        """Complete the claim (if any) and insert the run row in one transaction; False when the
        claim was lost (the row is inserted all the same)."""
        now = datetime.now(UTC)
        columns = list(row)
        values = [self._t(v) if isinstance(v, datetime) else v for v in row.values()]
        insert = self._sql(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (record_key) DO NOTHING")
        with self.tx() as cur:
            won = True
            if ref is not None:
                where, args = self._fence(ref)
                cur.execute(self._sql(
                    f"UPDATE claims SET state = ?, expires_at = ?, updated_at = ? WHERE {where}"),
                    (state, self._t(now), self._t(now), *args))
                won = cur.rowcount == 1
            cur.execute(insert, values)
        return won

    def close(self) -> None:
        with suppress(Exception):
            self.conn.close()


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_unique_violation(e: BaseException) -> bool:
    return type(e).__name__ in ("IntegrityError", "UniqueViolation")


def _read_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _connect_sqlite(url: str) -> Any:
    import sqlite3
    from urllib.parse import quote

    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        raise StoreError("an in-memory SQLite registry cannot be shared with the shim")
    # mode=rw: a missing registry is unreachable, never silently created empty here
    conn = sqlite3.connect(f"file:{quote(os.path.expanduser(path))}?mode=rw", uri=True,
                           timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _connect_pg(url: str) -> Any:
    """libpq through ``ctypes`` when it can be loaded (about 2 ms), else psycopg (whose import
    alone costs 80-130 ms: more than everything else the shim does)."""
    scheme, rest = url.split("://", 1)
    conninfo = f"{scheme.split('+', 1)[0]}://{rest}"
    libpq = _load_libpq()
    if libpq is not None:
        return LibPq(libpq, conninfo)
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def _libpq_candidates() -> list[str]:
    """The system's libpq, then the copy bundled with psycopg-binary (found, not imported)."""
    import importlib.util

    out = ["libpq.so.5"]
    spec = importlib.util.find_spec("psycopg_binary")
    if spec is not None and spec.origin:
        libs = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "psycopg_binary.libs")
        with suppress(OSError):
            out += [os.path.join(libs, n) for n in sorted(os.listdir(libs))
                    if n.startswith("libpq")]
    return out


def _load_libpq() -> Any:
    import ctypes

    for candidate in _libpq_candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        for name, res, args in [
            ("PQconnectdb", p, [s]), ("PQstatus", i, [p]), ("PQerrorMessage", s, [p]),
            ("PQfinish", None, [p]), ("PQresultStatus", i, [p]), ("PQclear", None, [p]),
            ("PQexecParams", p, [p, s, i, p, ctypes.POINTER(s), p, p, i]),
            ("PQresultErrorMessage", s, [p]), ("PQresultErrorField", s, [p, i]),
            ("PQntuples", i, [p]), ("PQnfields", i, [p]), ("PQgetvalue", s, [p, i, i]),
            ("PQgetisnull", i, [p, i, i]), ("PQcmdTuples", s, [p]),
        ]:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        return lib
    return None


class LibPqError(Exception):
    """A libpq failure; ``sqlstate`` as PostgreSQL reports it."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class UniqueViolation(LibPqError):
    """SQLSTATE 23505 (named like psycopg's, which :func:`_is_unique_violation` knows)."""


class LibPq:
    """Just enough of a DB-API connection over libpq for :class:`Store` (text parameters and
    results, ``%s`` placeholders, autocommit unless ``BEGIN`` is executed)."""

    def __init__(self, lib: Any, conninfo: str) -> None:
        self.lib = lib
        sep = "&" if "?" in conninfo else "?"
        full = (f"{conninfo}{sep}connect_timeout={CONNECT_TIMEOUT_SECONDS}"
                "&client_encoding=UTF8&options=-c%20DateStyle%3DISO")
        self.conn = lib.PQconnectdb(full.encode())
        if not self.conn or lib.PQstatus(self.conn) != 0:  # CONNECTION_OK
            message = (lib.PQerrorMessage(self.conn) or b"out of memory").decode(errors="replace")
            self.close()
            raise LibPqError(message.strip())

    def cursor(self) -> LibPqCursor:
        return LibPqCursor(self)

    def close(self) -> None:
        if self.conn:
            self.lib.PQfinish(self.conn)
            self.conn = None


class LibPqCursor:
    def __init__(self, conn: LibPq) -> None:
        self.conn = conn
        self.rows: list[tuple[str | None, ...]] = []
        self.rowcount = -1

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        import ctypes

        lib, parts = self.conn.lib, sql.split("%s")
        text = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]
        values = (ctypes.c_char_p * max(len(params), 1))(
            *[None if v is None else str(v).encode() for v in params])
        res = lib.PQexecParams(self.conn.conn, text.encode(), len(params), None, values, None,
                               None, 0)
        try:
            if lib.PQresultStatus(res) not in (1, 2):  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
                message = (lib.PQresultErrorMessage(res) if res else None) or \
                    lib.PQerrorMessage(self.conn.conn) or b"no result"
                state = (lib.PQresultErrorField(res, ord("C")) or b"").decode() if res else None
                kind = UniqueViolation if state == "23505" else LibPqError
                raise kind(message.decode(errors="replace").strip(), state)
            self.rows = [
                tuple(None if lib.PQgetisnull(res, r, c) else
                      lib.PQgetvalue(res, r, c).decode() for c in range(lib.PQnfields(res)))
                for r in range(lib.PQntuples(res))
            ]
            self.rowcount = int(lib.PQcmdTuples(res) or b"-1")
        finally:
            if res:
                lib.PQclear(res)

    def fetchone(self) -> tuple[str | None, ...] | None:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[tuple[str | None, ...]]:
        rows, self.rows = self.rows, []
        return rows
