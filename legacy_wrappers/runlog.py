"""The task's run log: the :class:`~bridge.core.runs.RunRecord` rows ``bridge.run_job`` writes.

Every firing of a slot on the Celery path leaves records (path ``celery``, this host):

* non-executing rows, written once: ``rejected`` (the message could not be read or admitted),
  ``suppressed`` (another delivery holds the slot), ``skipped`` (paused, or overlap);
* ``observed`` / ``stood-down`` rows, at most once per slot (keyed like a shadow run,
  :func:`shadow_record_key`): a second delivery records a ``suppressed`` duplicate;
* an execution's **started** row (status ``running``, written before the process is forked,
  then given the command's pid before the gated command may exec) and its **finished** state
  (the same row overwritten with the outcome the moment the command exits).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from bridge.core.runs import Path, Role, RunRecord, Status
from bridge.store.run_rows import RunRows
from legacy_wrappers.messages import JobRequest, Rejection
from legacy_wrappers.runner import RunOutcome

log = logging.getLogger(__name__)

ALREADY_SHADOWED = "slot already shadowed by another delivery"


def shadow_record_key(job_id: str, slot: datetime) -> str:
    digest = hashlib.sha256(f"{job_id}\0{slot.isoformat()}".encode()).hexdigest()[:40]
    return f"celery-shadow:{digest}"


class RunLog:
    """Builds this worker's records and writes them (one per process, thread-safe)."""

    def __init__(self, rows: RunRows, host: str) -> None:
        self.rows = rows
        self.host = host

    def record(
        self,
        job_id: str,
        slot: datetime,
        role: Role,
        status: Status,
        *,
        fired_at: datetime,
        outcome: RunOutcome | None = None,
        error: str | None = None,
        attempts: int = 1,
        task_state: str | None = None,
        record_key: str | None = None,
        started_at: datetime | None = None,
    ) -> RunRecord:
        """A record of this host's Celery path (``outcome`` fills the execution's fields)."""
        if outcome is None:
            return RunRecord(job_id, slot, Path.CELERY, role, status, fired_at=fired_at,
                             started_at=started_at, attempts=attempts, task_state=task_state,
                             host=self.host, error=error, record_key=record_key)
        return RunRecord(
            job_id, slot, Path.CELERY, role, status, fired_at=fired_at,
            started_at=outcome.started_at, finished_at=outcome.finished_at,
            exit_status=outcome.exit_status, task_state=task_state, attempts=attempts,
            output_digest=outcome.output_digest, output_sample=outcome.output_sample,
            host=self.host, error=error if error is not None else outcome.error,
            record_key=record_key,
        )

    def reject(self, rejection: Rejection, fired_at: datetime) -> Status:
        log.warning("rejected bridge.run_job message: %s", rejection.reason)
        self.rows.add(self.record(rejection.job_id, rejection.slot, Role.REJECTED,
                                  Status.REJECTED, fired_at=fired_at, error=rejection.reason,
                                  task_state="REJECTED"))
        return Status.REJECTED

    def skipped(self, req: JobRequest, fired_at: datetime, error: str) -> Status:
        self.rows.add(self.record(req.job_id, req.slot, Role.AUTHORITATIVE, Status.SKIPPED,
                                  fired_at=fired_at, task_state="IGNORED", error=error))
        return Status.SKIPPED

    def suppressed(self, req: JobRequest, fired_at: datetime, error: str,
                   attempts: int = 1) -> Status:
        """Record that this delivery did not run the slot because another one holds it."""
        self.rows.add(self.record(req.job_id, req.slot, Role.SUPPRESSED, Status.SUPPRESSED,
                                  fired_at=fired_at, error=error, task_state="IGNORED",
                                  attempts=attempts))
        return Status.SUPPRESSED

    def once_per_slot(self, req: JobRequest, fired_at: datetime, role: Role, status: Status,
                      *, task_state: str, error: str | None = None) -> Status:
        """Record a non-executing row at most once per slot; a second delivery of the same
        slot records a suppressed duplicate instead."""
        record = self.record(req.job_id, req.slot, role, status, fired_at=fired_at, error=error,
                             task_state=task_state,
                             record_key=shadow_record_key(req.job_id, req.slot))
        if not self.rows.add_once(record):
            return self.suppressed(req, fired_at, ALREADY_SHADOWED)
        return status

    def start(self, record: RunRecord) -> None:
        """The durable "started" record: inserted before the command is forked (a resumed
        attempt whose start was recorded but whose command never ran reuses its row)."""
        assert record.record_key is not None
        if not self.rows.add_once(record):
            self.rows.replace(record.record_key, record, clear_pid=True)

    def set_pid(self, key: str, pid: int) -> None:
        self.rows.set_pid(key, pid)

    def finish(self, key: str, record: RunRecord) -> bool:
        """The durable "finished" record: the started row gets the outcome (``False`` if it
        could not be written: the claim then expires and the takeover finds it in flight)."""
        try:
            self.rows.replace(key, record)
        except Exception as e:
            log.error("run of %s %s finished (%s) but could not be recorded: %s", record.job_id,
                      record.slot.isoformat(), record.status.value, e)
            return False
        return True

