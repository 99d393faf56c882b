"""The worker's ``runs`` rows: insert, update by ``record_key``, and read a started row back.

``bridge.run_job`` writes :class:`~bridge.core.runs.RunRecord` values (the one run vocabulary);
this module turns them into SQL. A started authoritative run's row also carries ``pid`` (the
command's process group), which is not part of the record: it is written with the row and read
back with it (:class:`StartedRun`).

Every operation is one short transaction, run on the database driver itself
(:mod:`bridge.store.direct`: every run pays them). A database error becomes an
:class:`~bridge.core.errors.InfraError` naming the masked URL; an insert whose ``record_key``
exists already is reported as ``False`` (:meth:`RunRows.add_once`), not as an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.core.runs import COLUMNS, RunRecord, Status
from bridge.store.db import Registry
from bridge.store.direct import Cursor, Duplicate, Statement, read_time

TIMES = ("slot", "fired_at", "started_at", "finished_at")  # the UTCDateTime columns
# The statements, run on the driver (bridge.store.direct): the columns are the models'.
INSERT = Statement(f"INSERT INTO runs ({', '.join(COLUMNS)}, pid) "
                   f"VALUES ({', '.join(':' + c for c in COLUMNS)}, :pid)")
_SET = ", ".join(f"{c} = :{c}" for c in COLUMNS if c != "record_key")
UPDATE_BY_KEY = Statement(f"UPDATE runs SET {_SET} WHERE record_key = :key_")
UPDATE_RUNNING_BY_KEY = Statement(
    f"UPDATE runs SET {_SET} WHERE record_key = :key_ AND status = '{Status.RUNNING.value}'")
UPDATE_PID_BY_KEY = Statement(f"UPDATE runs SET {_SET}, pid = :pid WHERE record_key = :key_")
UPDATE_RUNNING_PID_BY_KEY = Statement(
    f"UPDATE runs SET {_SET}, pid = :pid WHERE record_key = :key_ "
    f"AND status = '{Status.RUNNING.value}'")
LATEST_STARTED = Statement(
    f"SELECT id, {', '.join(COLUMNS)}, pid FROM runs WHERE job_id = :job_id AND slot = :slot "
    "AND record_key LIKE :pattern AND attempts < :below ORDER BY attempts DESC LIMIT 1")


@dataclass(frozen=True)
class StartedRun:
    """A started row as stored: the record and the pid given to it (None: never released)."""

    record: RunRecord
    pid: int | None


def row_values(cur: Cursor, record: RunRecord) -> dict[str, Any]:
    """The record's column values as the models store them."""
    row = record.to_row()
    for name in TIMES:
        row[name] = cur.t(row[name])
    return row


def insert_record(cur: Cursor, record: RunRecord, *, pid: int | None = None) -> None:
    cur.execute(INSERT, {**row_values(cur, record), "pid": pid})


def replace_record(cur: Cursor, key: str, record: RunRecord, *,
                   only_running: bool = False, new_pid: bool = False,
                   pid: int | None = None) -> int:
    """Overwrite the row keyed ``key`` with ``record`` (its ``record_key`` kept, and its ``pid``
    unless ``new_pid``: then ``pid``); the count."""
    values = row_values(cur, record)
    del values["record_key"]
    values["key_"] = key
    if new_pid:
        values["pid"] = pid
        stmt = UPDATE_RUNNING_PID_BY_KEY if only_running else UPDATE_PID_BY_KEY
    else:
        stmt = UPDATE_RUNNING_BY_KEY if only_running else UPDATE_BY_KEY
    return cur.execute(stmt, values)


def record_of(row: tuple[Any, ...]) -> RunRecord:
    """A ``runs`` row (``id``, the record's columns in order, ...) as a record."""
    values = dict(zip(COLUMNS, row[1:1 + len(COLUMNS)], strict=True))
    for name in TIMES:
        values[name] = read_time(values[name])
    return RunRecord(**values, row_id=int(row[0]))


class RunRows:
    """The ``runs`` rows one worker process writes (thread-safe)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.sql = registry.direct

    def add(self, record: RunRecord) -> None:
        self.sql.write(lambda c: insert_record(c, record), one_statement=True)

    def add_once(self, record: RunRecord, *, pid: int | None = None) -> bool:
        """Insert ``record`` (with ``pid``) unless a row with its ``record_key`` exists (then
        ``False``)."""
        try:
            self.sql.write(lambda c: insert_record(c, record, pid=pid), one_statement=True)
        except Duplicate:
            return False
        return True

    def replace(self, key: str, record: RunRecord, *, only_running: bool = False,
                new_pid: bool = False, pid: int | None = None) -> bool:
        """Overwrite the row keyed ``key`` (``only_running``: only while it is ``running``;
        ``new_pid``: its pid becomes ``pid``)."""
        count = self.sql.write(lambda c: replace_record(c, key, record,
                                                        only_running=only_running,
                                                        new_pid=new_pid, pid=pid),
                               one_statement=True)
        return count > 0

    def latest_started(self, job_id: str, slot: datetime, key_prefix: str,
                       below: int) -> tuple[str, StartedRun] | None:
        """The latest started row of the slot (``record_key`` starting ``key_prefix``) among
        attempts below ``below``, with its key."""
        rows = self.sql.read(lambda c: c.rows(LATEST_STARTED, {
            "job_id": job_id, "slot": c.t(slot), "pattern": key_prefix + "%", "below": below}))
        if not rows:
            return None
        row = rows[0]
        record = record_of(row)
        assert record.record_key is not None
        pid = row[1 + len(COLUMNS)]
        return record.record_key, StartedRun(record, None if pid is None else int(pid))
