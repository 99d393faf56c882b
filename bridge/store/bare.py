"""The registry as the legacy shim sees it: a few statements on the bare database driver.

The shim must not import SQLAlchemy (about 200 ms before the first statement, on every cron
job), so it speaks to ``_sqlite3`` (:func:`sqlite_driver`), or to PostgreSQL's libpq directly
through ``_ctypes`` (:mod:`bridge.store.libpq`; psycopg only when no libpq can be loaded: its
import alone costs 80-130 ms). Times are ``_datetime``'s classes (the very classes of
``datetime``, without the pure-Python module's import), exported here for the shim's modules.
It writes exactly the rows and formats the SQLAlchemy models write: timestamps as
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

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the shim's hot path imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import UTC, datetime, timedelta
    from typing import Any
else:
    try:  # the C module under ``datetime``: the same classes, without the ~1.5 ms import of
        from _datetime import datetime, timedelta, timezone  # the pure-Python module

        UTC = timezone.utc  # datetime.UTC is this object
    except ImportError:  # an interpreter without the C accelerator
        from datetime import UTC, datetime, timedelta

LEASE_SECONDS = 30  # bridge.core.claims.LeaseTerms defaults
RENEW_SECONDS = 10
BUSY_TIMEOUT_SECONDS = 10


class StoreError(Exception):
    """The registry cannot be used right now (unreachable, locked, not migrated)."""


class ClaimRef:
    """The claim the shim holds: its row id, holder and attempt (the fence of every update)."""

    __slots__ = ("attempts", "holder", "id")

    def __init__(self, id: int, holder: str, attempts: int) -> None:
        self.id, self.holder, self.attempts = id, holder, attempts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClaimRef) and (self.id, self.holder, self.attempts) == (
            other.id, other.holder, other.attempts)

    def __hash__(self) -> int:
        return hash((self.id, self.holder, self.attempts))

    def __repr__(self) -> str:
        return f"ClaimRef(id={self.id}, holder={self.holder!r}, attempts={self.attempts})"


class JobHead:
    """A job row as the shim reads it: the spec's hash and (unparsed) text, and the pause."""

    __slots__ = ("paused", "spec_hash", "spec_text")

    def __init__(self, spec_text: Any, spec_hash: str, paused: str | None) -> None:
        self.spec_text, self.spec_hash, self.paused = spec_text, spec_hash, paused

    def spec(self) -> dict[str, Any]:
        """The spec as JSON values (parsed on demand: ``json`` is not on the hot path)."""
        if isinstance(self.spec_text, dict):
            return self.spec_text
        import json

        return dict(json.loads(self.spec_text))


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

    def _run(self, work: Callable[[Any], Any], *, tx: bool = False) -> Any:
        """``work(cursor)``, in a transaction when ``tx``; driver errors other than a unique
        violation become :class:`StoreError`."""
        try:
            cur = self.conn.cursor()
            if not tx:
                return work(cur)
            cur.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
            try:
                result = work(cur)
                cur.execute("COMMIT")
                return result
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        except StoreError:
            raise
        except Exception as e:
            if _is_unique_violation(e):
                raise
            raise StoreError(f"database error: {first_line(e)}") from e

    def job(self, job_id: str) -> tuple[JobHead | None, list[tuple[datetime | None, str]]]:
        """The job's row (None: not in the registry) and its authority history, in order."""

        def read(cur: Any) -> tuple[Any, list[tuple[datetime | None, str]]]:
            cur.execute(self._sql("SELECT spec, spec_hash, paused, paused_reason FROM jobs "
                                  "WHERE id = ? AND deleted_at IS NULL"), (job_id,))
            row = cur.fetchone()
            cur.execute(self._sql("SELECT effective_slot, owner FROM authority_events "
                                  "WHERE job_id = ? ORDER BY id"), (job_id,))
            return row, [(_read_time(t), str(owner)) for t, owner in cur.fetchall()]

        row, events = self._run(read)
        if row is None:
            return None, events
        paused = row[2] and str(row[2]).lower() not in ("0", "false", "f")
        return JobHead(row[0], str(row[1]), (row[3] or "") if paused else None), events

    def claim(self, job_id: str, slot: datetime, holder: str, now: datetime) -> ClaimRef | None:
        """Insert the claim row; None when ``(job, slot)`` is already claimed."""
        sql = self._sql(
            "INSERT INTO claims (job_id, slot, holder, path, state, attempts, expires_at, "
            "created_at, updated_at) VALUES (?, ?, ?, 'legacy', 'running', 1, ?, ?, ?) "
            "RETURNING id")
        expires = now + timedelta(seconds=LEASE_SECONDS)

        def insert(cur: Any) -> ClaimRef:
            cur.execute(sql, (job_id, self._t(slot), holder, self._t(expires), self._t(now),
                              self._t(now)))
            return ClaimRef(int(cur.fetchone()[0]), holder, 1)

        try:
            return self._run(insert)
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
        sql = self._sql(f"UPDATE claims SET expires_at = ?, updated_at = ? WHERE {where}")

        def update(cur: Any) -> bool:
            cur.execute(sql, (self._t(expires), self._t(now), *args))
            return bool(cur.rowcount == 1)

        return bool(self._run(update, tx=True))

    def finish(self, ref: ClaimRef | None, state: str, row: Mapping[str, Any]) -> bool:
        """Complete the claim (if any) and insert the run row in one transaction; False when the
        claim was lost (the row is inserted all the same)."""
        now = datetime.now(UTC)
        columns = list(row)
        values = [self._t(v) if isinstance(v, datetime) else v for v in row.values()]
        insert = self._sql(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (record_key) DO NOTHING")

        def write(cur: Any) -> bool:
            won = True
            if ref is not None:
                where, args = self._fence(ref)
                cur.execute(self._sql(
                    f"UPDATE claims SET state = ?, expires_at = ?, updated_at = ? WHERE {where}"),
                    (state, self._t(now), self._t(now), *args))
                won = cur.rowcount == 1
            cur.execute(insert, values)
            return won

        return bool(self._run(write, tx=True))

    def close(self) -> None:
        try:  # noqa: SIM105 (contextlib is not imported on the shim's hot path)
            self.conn.close()
        except Exception:
            pass


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


def sqlite_driver() -> Any:
    """The C module under ``sqlite3`` (``connect``, the exception classes), imported without
    ``functools``.

    The ``sqlite3`` package itself adds only what the shim never uses (default ``datetime``
    adapters and converters -- the shim binds text timestamps and reads text --, ``Row``'s
    ``Sequence`` registration), yet its import costs about 2 ms more than ``_sqlite3``. And
    ``_sqlite3`` (CPython 3.11) takes ``functools.lru_cache`` for each connection's statement
    cache: ``functools`` pulls in ``collections``, about 4 ms of a cron job's start. Its
    ``lru_cache(maxsize)(fn)`` is ``_functools._lru_cache_wrapper(fn, maxsize, False,
    CacheInfo)``, the same C cache; so while ``_sqlite3`` initializes, ``functools`` is a
    stand-in module with exactly that ``lru_cache`` (``CacheInfo``, only for ``cache_info()``,
    which nobody calls on that cache, is ``tuple``), then is removed again: a later ``import
    functools`` gets the real module. Any surprise (a ``_sqlite3`` wanting more of it) falls
    back to the plain import."""
    import sys

    if "_sqlite3" in sys.modules or "functools" in sys.modules:
        import _sqlite3

        return _sqlite3
    stand_in = type(sys)("functools")
    stand_in.lru_cache = _lru_cache  # type: ignore[attr-defined]
    sys.modules["functools"] = stand_in
    try:
        import _sqlite3
    except Exception:
        del sys.modules["functools"]
        import _sqlite3
    finally:
        if sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
    return _sqlite3


def _lru_cache(maxsize: int | None = 128, typed: bool = False) -> Any:
    """``functools.lru_cache(maxsize, typed)`` as a decorator, minus ``update_wrapper``."""
    from _functools import _lru_cache_wrapper

    def decorate(fn: Callable[..., Any]) -> Any:
        return _lru_cache_wrapper(fn, maxsize, typed, tuple)

    return decorate


def _connect_sqlite(url: str) -> Any:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        raise StoreError("an in-memory SQLite registry cannot be shared with the shim")
    if not os.path.exists(os.path.expanduser(path)):  # what mode=rw would answer, without
        raise StoreError("unable to open database file")  # loading the driver (an outage)
    sqlite3 = sqlite_driver()
    # mode=rw: a missing registry is unreachable, never silently created empty here
    conn = sqlite3.connect(f"file:{_uri_path(os.path.expanduser(path))}?mode=rw", uri=True,
                           timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _uri_path(path: str) -> str:
    """``path`` inside a SQLite URI: the characters the URI syntax gives a meaning escaped
    (``urllib.parse.quote`` would do; its import costs the hot path ``re`` and ``ipaddress``)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _connect_pg(url: str) -> Any:
    from bridge.store.libpq import connect_pg  # not on the SQLite path: _ctypes, libpq

    return connect_pg(url)
