"""The worker's ``runs`` rows: insert, update by ``record_key``, and read a started row back.

``bridge.run_job`` writes :class:`~bridge.core.runs.RunRecord` values (the one run vocabulary);
this module turns them into SQL. A started authoritative run's row also carries ``pid`` (the
command's process group), which is not part of the record: it is set on its own
(:meth:`RunRows.set_pid`) and read back with the row (:class:`StartedRun`).

Every operation is one short transaction. A database error becomes an
:class:`~bridge.core.errors.InfraError` naming the masked URL; an insert whose ``record_key``
exists already is reported as ``False`` (:meth:`RunRows.add_once`), not as an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bridge.core.runs import COLUMNS, RunRecord, Status
from bridge.store.db import Registry, unreachable
from bridge.store.models import RunRow

RUNS = cast(Table, RunRow.__table__)
T = TypeVar("T")


@dataclass(frozen=True)
class StartedRun:
    """A started row as stored: the record and the pid given to it (None: never released)."""

    record: RunRecord
    pid: int | None


def insert_record(conn: Connection, record: RunRecord) -> None:
    conn.execute(insert(RUNS).values(**record.to_row()))


def replace_record(conn: Connection, key: str, record: RunRecord, *,
                   only_running: bool = False, clear_pid: bool = False) -> int:
    """Overwrite the row keyed ``key`` with ``record`` (its ``record_key`` kept); the count."""
    values: dict[str, Any] = {k: v for k, v in record.to_row().items() if k != "record_key"}
    if clear_pid:
        values["pid"] = None
    stmt = update(RUNS).where(RUNS.c.record_key == key)
    if only_running:
        stmt = stmt.where(RUNS.c.status == Status.RUNNING.value)
    return int(conn.execute(stmt.values(**values)).rowcount)


def record_of(row: Any) -> RunRecord:
    return RunRecord(**{name: getattr(row, name) for name in COLUMNS}, row_id=row.id)


class RunRows:
    """The ``runs`` rows one worker process writes (thread-safe: one engine)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _tx(self, work: Callable[[Connection], T]) -> T:
        try:
            with self.registry.engine.begin() as conn:
                return work(conn)
        except IntegrityError:
            raise
        except SQLAlchemyError as e:
            raise unreachable(self.registry.url, e) from e

    def add(self, record: RunRecord) -> None:
        self._tx(lambda conn: insert_record(conn, record))

    def add_once(self, record: RunRecord) -> bool:
        """Insert ``record`` unless a row with its ``record_key`` exists (then ``False``)."""
        try:
            self._tx(lambda conn: insert_record(conn, record))
        except IntegrityError:
            return False
        return True

    def replace(self, key: str, record: RunRecord, *, only_running: bool = False,
                clear_pid: bool = False) -> bool:
        """Overwrite the row keyed ``key`` (``only_running``: only while it is ``running``)."""
        count = self._tx(lambda conn: replace_record(conn, key, record,
                                                     only_running=only_running,
                                                     clear_pid=clear_pid))
        return count > 0

    def set_pid(self, key: str, pid: int) -> None:
        self._tx(lambda conn: conn.execute(
            update(RUNS).where(RUNS.c.record_key == key).values(pid=pid)))

    def latest_started(self, job_id: str, slot: datetime, key_prefix: str,
                       below: int) -> tuple[str, StartedRun] | None:
        """The latest started row of the slot (``record_key`` starting ``key_prefix``) among
        attempts below ``below``, with its key."""
        c = RUNS.c
        query = (select(RUNS).where(c.job_id == job_id, c.slot == slot,
                                    c.record_key.startswith(key_prefix), c.attempts < below)
                 .order_by(c.attempts.desc()).limit(1))
        row = self._tx(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return str(row.record_key), StartedRun(record_of(row), row.pid)
