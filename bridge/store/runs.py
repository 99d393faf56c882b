"""The ``runs`` table: storing and streaming :class:`~bridge.core.runs.RunRecord` values.

The vocabulary (paths, roles, statuses, bounded samples) lives in :mod:`bridge.core.runs`; the
report's compact scan of this table is :mod:`bridge.store.run_scan`.

Writing: :func:`record` inserts one observation; with a ``record_key`` it is idempotent (a
duplicate key adds nothing and returns ``False``: ``INSERT ... ON CONFLICT (record_key) DO
NOTHING`` on SQLite and PostgreSQL), so a spooled record may be uploaded twice.
:func:`record_many` does the same for a batch in one statement execution. Both run in the
caller's session and transaction. :class:`RunRepo` is the small-volume face (one record at a
time, a job's records, counts, the Celery watermarks).

Reading: :func:`query` yields observations of some jobs whose slot lies in ``(since, until]``
(the same half-open window as :func:`bridge.core.schedules.slots_between`), ordered by job, slot and
insertion. It runs one statement per job on the ``(job_id, slot)`` index, in the session's
transaction, on the driver's own cursor (server-side on PostgreSQL) and streams rows in chunks,
so a large window never sits in memory at once; ``lean=True`` leaves out the output sample and
the other texts (the comparator does not need them; :func:`by_row_id` fetches the few a report
shows). A stored observation carries its ``row_id`` (``runs.id``; not part of equality).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, Text, func, insert, select
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.core.runs import COLUMNS, Path, Role, RunRecord, Status
from bridge.store.models import RunRow

__all__ = ["RUNS", "RunRepo", "by_row_id", "query", "record", "record_many"]

RUNS = cast(Table, RunRow.__table__)
DEFAULT_CHUNK = 5000


_PATHS = {p.value: p for p in Path}
_ROLES = {r.value: r for r in Role}
_STATUSES = {s.value: s for s in Status}


_COLUMNS = COLUMNS
_TIMES = frozenset({"slot", "fired_at", "started_at", "finished_at"})
_UTC_SUFFIX = "+00:00"
# What a query reads: every column, or (lean) what the comparator needs, without the texts.
FULL = (*_COLUMNS, "row_id")
LEAN = ("job_id", "slot", "path", "role", "status", "fired_at", "started_at", "exit_status",
        "attempts", "output_digest", "host", "row_id")


def _row_reader(lean: bool = False) -> Callable[[Sequence[Any]], RunRecord]:
    """A function turning ``runs`` rows (timestamps selected as ISO text) into observations.

    The row holds the :data:`FULL` or the :data:`LEAN` columns; a lean row leaves the texts
    None. Rows come from our own table, so they are trusted and not re-validated: the frozen
    dataclass gets its ``__dict__`` in one assignment instead of running ``__init__``.
    Timestamps are read with ``datetime.fromisoformat(text + "+00:00")``, an order of magnitude
    cheaper than the column type's processor plus ``replace(tzinfo=UTC)``; each distinct slot
    is parsed once. This is the hot path of a report: keep it flat.
    """
    slots: dict[Any, datetime] = {}
    iso = datetime.fromisoformat
    new, set_dict = object.__new__, object.__setattr__
    paths, roles, statuses = _PATHS, _ROLES, _STATUSES

    def instant(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return iso(value + _UTC_SUFFIX)
        return cast(datetime, value).replace(tzinfo=UTC)  # a driver that parsed it anyway

    def read(r: Sequence[Any]) -> RunRecord:
        if lean:
            (job_id, slot, path, role, status, fired, started, exit_status, attempts, digest,
             host, row_id) = r
            finished = task_state = sample = error = key = None
        else:
            (job_id, slot, path, role, status, fired, started, finished, exit_status, task_state,
             attempts, digest, sample, host, error, key, row_id) = r
        when = slots.get(slot)
        if when is None:
            when = slots[slot] = cast(datetime, instant(slot))
        fired_at = instant(fired)
        obs = new(RunRecord)
        set_dict(obs, "__dict__", {
            "job_id": job_id, "slot": when, "path": paths[path], "role": roles[role],
            "status": statuses[status], "fired_at": fired_at,
            "started_at": fired_at if started == fired else instant(started),
            "finished_at": instant(finished), "exit_status": exit_status,
            "task_state": task_state, "attempts": attempts, "output_digest": digest,
            "output_sample": sample, "host": host, "error": error, "record_key": key,
            "row_id": row_id,
        })
        return obs

    return read


def _insert_ignoring_duplicates(session: Session) -> Any:
    name = session.get_bind().dialect.name
    stmt: Any
    if name == "sqlite":
        stmt = sqlite.insert(RUNS).on_conflict_do_nothing(index_elements=["record_key"])
    elif name == "postgresql":
        stmt = postgresql.insert(RUNS).on_conflict_do_nothing(index_elements=["record_key"])
    else:
        return None
    return stmt.returning(RUNS.c.id)  # rows returned = rows added (rowcount is not reliable)


def record(session: Session, obs: RunRecord) -> bool:
    """Store one observation; ``False`` when its ``record_key`` was already stored."""
    row = obs.to_row()
    if obs.record_key is None:
        session.execute(insert(RUNS), [row])
        return True
    stmt = _insert_ignoring_duplicates(session)
    if stmt is not None:
        return len(session.execute(stmt, [row]).all()) == 1
    try:  # any other backend: a savepoint keeps the caller's transaction usable
        with session.begin_nested():
            session.execute(insert(RUNS), [row])
        return True
    except IntegrityError:
        return False


def record_many(session: Session, observations: Iterable[RunRecord], batch: int = 5000) -> int:
    """Store many observations with ``executemany`` batches; returns how many were new."""
    stmt = _insert_ignoring_duplicates(session)
    added = 0
    chunk: list[dict[str, Any]] = []
    for obs in observations:
        chunk.append(obs.to_row())
        if len(chunk) >= batch:
            added += _flush(session, stmt, chunk)
            chunk = []
    if chunk:
        added += _flush(session, stmt, chunk)
    return added


def _flush(session: Session, stmt: Any, rows: list[dict[str, Any]]) -> int:
    if stmt is None:
        return sum(record(session, _observation(r)) for r in rows)
    return len(session.execute(stmt, rows).all())


def _observation(row: dict[str, Any]) -> RunRecord:
    return RunRecord(**row)


def query(
    session: Session,
    job_ids: str | Sequence[str] | None,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    lean: bool = False,
) -> Iterator[RunRecord]:
    """Observations of ``job_ids`` (one id, several, or ``None`` = every job) with slot in
    ``(since, until]``, ordered by job id (in the order given), slot, insertion. Streams.

    ``lean`` reads only what :mod:`shadow.compare` needs (no output sample, error, task state,
    record key or finish time): a large window then never loads kilobytes of output per row;
    fetch the few full records a report shows with :func:`by_row_id`."""
    ids = [None] if job_ids is None else [job_ids] if isinstance(job_ids, str) else job_ids
    for job_id in ids:
        yield from _stream_window(session, job_id, since, until, chunk_size, lean)


def by_row_id(session: Session, row_ids: Iterable[int], *,
              lean: bool = False) -> dict[int, RunRecord]:
    """Observations for stored row ids (e.g. the records behind a report's mismatches), full
    or ``lean`` (see :func:`query`), in batches of 500 ids."""
    wanted = sorted(set(row_ids))
    out: dict[int, RunRecord] = {}
    conn = session.connection()
    mark = _PLACEHOLDER.get(conn.dialect.name)
    for start in range(0, len(wanted), 500):
        batch = wanted[start:start + 500]
        if mark is None:
            stmt = _select(None, None, None, lean).where(RUNS.c.id.in_(batch))
            found: Iterable[RunRecord] = _stream(session, stmt, DEFAULT_CHUNK, lean)
        else:
            found = _raw_by_id(session, batch, lean, mark)
        for obs in found:
            out[cast(int, obs.row_id)] = obs
    return out


def _raw_by_id(session: Session, ids: Sequence[int], lean: bool, mark: str) -> list[RunRecord]:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(f"SELECT {_driver_columns(lean)} FROM runs "
                       f"WHERE id IN ({', '.join([mark] * len(ids))})", list(ids))
        return list(map(_row_reader(lean), cursor.fetchall()))
    finally:
        cursor.close()


def _select(job_id: str | None, since: datetime | None, until: datetime | None,
            lean: bool = False) -> Any:
    """The window statement: timestamps as text (see :func:`_row_reader`), index order."""
    cols = [
        RUNS.c.id.label(name) if name == "row_id"
        else cast_(RUNS.c[name], Text).label(name) if name in _TIMES
        else RUNS.c[name]
        for name in (LEAN if lean else FULL)
    ]
    stmt = select(*cols)
    if job_id is not None:
        stmt = stmt.where(RUNS.c.job_id == job_id)
    if since is not None:
        stmt = stmt.where(RUNS.c.slot > since)
    if until is not None:
        stmt = stmt.where(RUNS.c.slot <= until)
    return stmt.order_by(RUNS.c.job_id, RUNS.c.slot, RUNS.c.id)


def _stream(session: Session, stmt: Any, chunk_size: int, lean: bool) -> Iterator[RunRecord]:
    """Any statement of :func:`_select` through SQLAlchemy (``yield_per`` streaming)."""
    read = _row_reader(lean)
    result = session.execute(stmt.execution_options(yield_per=chunk_size))
    for partition in result.partitions():
        yield from map(read, partition)


_PLACEHOLDER = {"sqlite": "?", "postgresql": "%s"}  # the DB-API paramstyles of our drivers


def _driver_columns(lean: bool) -> str:
    """The columns :func:`_row_reader` reads, as driver SQL (timestamps as text)."""
    return ", ".join("id" if n == "row_id" else f"CAST({n} AS TEXT)" if n in _TIMES else n
                     for n in (LEAN if lean else FULL))


def window_sql(lean: bool, job: bool, since: bool, until: bool, mark: str) -> str:
    """The same statement as :func:`_select`, as driver SQL."""
    cols = _driver_columns(lean)
    where = [clause for flag, clause in ((job, f"job_id = {mark}"), (since, f"slot > {mark}"),
                                         (until, f"slot <= {mark}")) if flag]
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {cols} FROM runs{condition} ORDER BY job_id, slot, id"


def _stream_window(session: Session, job_id: str | None, since: datetime | None,
                   until: datetime | None, chunk_size: int, lean: bool) -> Iterator[RunRecord]:
    """One window on the driver's own cursor (a server-side one on PostgreSQL), in the
    session's transaction: SQLAlchemy's result rows cost as much as the rows themselves here.
    Parameters go through the ``slot`` column type's own bind processor (naive UTC, SQLite's
    text format). Other backends take the SQLAlchemy path."""
    conn = session.connection()
    dialect = conn.dialect
    mark = _PLACEHOLDER.get(dialect.name)
    if mark is None:
        yield from _stream(session, _select(job_id, since, until, lean), chunk_size, lean)
        return
    to_db = RUNS.c.slot.type.dialect_impl(dialect).bind_processor(dialect)
    params: list[Any] = [job_id] if job_id is not None else []
    params += [to_db(t) if to_db else t for t in (since, until) if t is not None]
    sql = window_sql(lean, job_id is not None, since is not None, until is not None, mark)
    raw = conn.connection.driver_connection
    assert raw is not None
    server_side = dialect.name == "postgresql"
    cursor = raw.cursor(name=f"shadow_{uuid.uuid4().hex}") if server_side else raw.cursor()
    try:
        cursor.execute(sql, params)
        read = _row_reader(lean)
        while rows := cursor.fetchmany(chunk_size):
            yield from map(read, rows)
    finally:
        cursor.close()


class RunRepo:
    """Records one at a time, in the caller's session (the streaming reads are :func:`query`)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, **fields: Any) -> RunRecord:
        """Store one record (fields of :class:`RunRecord`); a duplicate ``record_key`` raises
        ``IntegrityError`` (:func:`record` ignores it instead). Returns it with its row id."""
        obs = RunRecord(**fields)
        stmt = insert(RUNS).values(**obs.to_row()).returning(RUNS.c.id)
        row_id = self.s.execute(stmt).scalar_one()
        return replace(obs, row_id=int(row_id))

    def for_job(self, job_id: str, *, since: datetime | None = None,
                until: datetime | None = None) -> list[RunRecord]:
        """The job's records with ``since <= slot <= until`` (either bound optional), in slot
        and insertion order."""
        stmt = _select(job_id, None, None)  # one job: in (slot, id) order
        if since is not None:
            stmt = stmt.where(RUNS.c.slot >= since)
        if until is not None:
            stmt = stmt.where(RUNS.c.slot <= until)
        return list(_stream(self.s, stmt, DEFAULT_CHUNK, False))

    def count(self) -> int:
        return int(self.s.scalar(select(func.count()).select_from(RUNS)) or 0)

    def celery_watermarks(self) -> dict[str, datetime]:
        """The latest slot the Celery side has on record per job (fired, missed or skipped)."""
        q = select(RunRow.job_id, func.max(RunRow.slot)).where(RunRow.path == Path.CELERY.value)
        rows = self.s.execute(q.group_by(RunRow.job_id)).all()
        return {job_id: slot for job_id, slot in rows if slot is not None}
