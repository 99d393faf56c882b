"""The worker's ``runs`` rows: insert, update by ``record_key``, and read a started row back.

``bridge.run_job`` writes :class:`~bridge.core.runs.RunRecord` values (the one run vocabulary);
this module turns them into SQL. A started authoritative run's row also carries ``pid`` (the
command's process group), which is not part of the record: it is written with the row and read
back with it (:class:`StartedRun`).

Every operation is one short transaction. A database error becomes an
:class:`~bridge.core.errors.InfraError` naming the masked URL; an insert whose ``record_key``
exists already is reported as ``False`` (:meth:`RunRows.add_once`), not as an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from bridge.core.runs import COLUMNS, RunRecord, Status
from bridge.store.db import Registry, in_transaction
from bridge.store.models import RunRow

RUNS = cast(Table, RunRow.__table__)
T = TypeVar("T")
# Built once: a statement object reused with bound parameters skips SQLAlchemy's per-call
# construction and cache-key work (most of a run's CPU in the registry otherwise).
INSERT = insert(RUNS)
BY_KEY = RUNS.c.record_key == bindparam("key_")
UPDATE_BY_KEY = update(RUNS).where(BY_KEY)
UPDATE_RUNNING_BY_KEY = update(RUNS).where(BY_KEY, RUNS.c.status == Status.RUNNING.value)
LATEST_STARTED = (
    select(RUNS)
    .where(RUNS.c.job_id == bindparam("job_id_"), RUNS.c.slot == bindparam("slot_"),
           RUNS.c.record_key.startswith(bindparam("prefix_")),
           RUNS.c.attempts < bindparam("below_"))
    .order_by(RUNS.c.attempts.desc())
    .limit(1)
)


@dataclass(frozen=True)
class StartedRun:
    """A started row as stored: the record and the pid given to it (None: never released)."""

    record: RunRecord
    pid: int | None


def insert_record(conn: Connection, record: RunRecord, *, pid: int | None = None) -> None:
    conn.execute(INSERT, {**record.to_row(), "pid": pid})


def replace_record(conn: Connection, key: str, record: RunRecord, *,
                   only_running: bool = False, new_pid: bool = False,
                   pid: int | None = None) -> int:
    """Overwrite the row keyed ``key`` with ``record`` (its ``record_key`` kept, and its ``pid``
    unless ``new_pid``: then ``pid``); the count."""
    values: dict[str, Any] = {k: v for k, v in record.to_row().items() if k != "record_key"}
    if new_pid:
        values["pid"] = pid
    stmt = UPDATE_RUNNING_BY_KEY if only_running else UPDATE_BY_KEY
    return int(conn.execute(stmt, {**values, "key_": key}).rowcount)


def record_of(row: Any) -> RunRecord:
    return RunRecord(**{name: getattr(row, name) for name in COLUMNS}, row_id=row.id)


class RunRows:
    """The ``runs`` rows one worker process writes (thread-safe: one engine)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _tx(self, work: Callable[[Connection], T]) -> T:
        return in_transaction(self.registry, work)

    def add(self, record: RunRecord) -> None:
        self._tx(lambda conn: insert_record(conn, record))

    def add_once(self, record: RunRecord, *, pid: int | None = None) -> bool:
        """Insert ``record`` (with ``pid``) unless a row with its ``record_key`` exists (then
        ``False``)."""
        try:
            self._tx(lambda conn: insert_record(conn, record, pid=pid))
        except IntegrityError:
            return False
        return True

    def replace(self, key: str, record: RunRecord, *, only_running: bool = False,
                new_pid: bool = False, pid: int | None = None) -> bool:
        """Overwrite the row keyed ``key`` (``only_running``: only while it is ``running``;
        ``new_pid``: its pid becomes ``pid``)."""
        count = self._tx(lambda conn: replace_record(conn, key, record,
                                                     only_running=only_running,
                                                     new_pid=new_pid, pid=pid))
        return count > 0

    def latest_started(self, job_id: str, slot: datetime, key_prefix: str,
                       below: int) -> tuple[str, StartedRun] | None:
        """The latest started row of the slot (``record_key`` starting ``key_prefix``) among
        attempts below ``below``, with its key."""
        params = {"job_id_": job_id, "slot_": slot, "prefix_": key_prefix, "below_": below}
        row = self._tx(lambda conn: conn.execute(LATEST_STARTED, params).first())
        if row is None:
            return None
        return str(row.record_key), StartedRun(record_of(row), row.pid)
