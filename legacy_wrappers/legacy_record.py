"""Record one legacy run by hand: for schedulers the bridge has no shim or plugin for.

Windows Task Scheduler, a homegrown ``while sleep`` loop, a job runner inside an application:
whatever fires the legacy side can call :func:`record_legacy_run` (or ``bridge legacy record``,
see ``examples/legacy-record-wrapper.sh``) after each run, and the shadow comparator then sees
that path exactly as it sees the cron shim's and the Quartz plugin's records.

Rules
  * The job must exist in the registry (:class:`bridge.core.errors.NotFoundError` otherwise).
  * ``slot`` is the nominal instant the run was for. It must be a slot of the job's schedule,
    or at most :data:`SLOT_TOLERANCE_SECONDS` (90 s, the cron shim's tolerance) *after* one:
    a wrapper that passes its own start time (``date -u``) is snapped to the latest slot at or
    before it, as the shim does. Anything else (before the first slot, or more than 90 s after
    the latest one) is refused with :class:`bridge.core.errors.InputError` naming the nearest slots:
    a record against a slot the schedule does not contain would only show up as
    ``unexpected_slot`` in every report.
  * ``status``: ``ok`` (role ``authoritative``, status ``succeeded``), ``failed``
    (``authoritative``/``failed``) or ``stood-down`` (the wrapper knew Celery owns the slot
    and did not run: role ``stand-down``). ``exit_code`` is stored as ``exit_status``;
    ``output`` is digested with the job's ``compare.clean`` rules (the digest the Celery side
    computes) and kept as a bounded sample.
  * Idempotent: the ``record_key`` is derived from ``(job, slot, role)``, so calling it again
    for the same run (a retried wrapper, a re-sent report) adds nothing and returns
    ``added=False``. Two *executions* of one slot therefore need the shim or the plugin (one
    record per firing); this API records one outcome per slot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.core.errors import InputError
from bridge.core.schedules import compile_schedule

if TYPE_CHECKING:
    from bridge.store.db import Registry

SLOT_TOLERANCE_SECONDS = 90
STATUSES = {
    "ok": ("authoritative", "succeeded"),
    "failed": ("authoritative", "failed"),
    "stood-down": ("stand-down", "stood-down"),
}


@dataclass(frozen=True)
class RecordResult:
    job_id: str
    slot: datetime  # the schedule's slot (snapped when the given time was after it)
    given: datetime
    role: str
    status: str
    record_key: str
    added: bool  # False: this run was already recorded

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "slot": _iso(self.slot), "given": _iso(self.given),
            "role": self.role, "status": self.status, "record_key": self.record_key,
            "added": self.added,
        }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(t: datetime | None, name: str) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is None or t.utcoffset() is None:
        raise InputError(f"{name} must carry a UTC offset (e.g. 2026-03-08T07:00:00Z)")
    return t.astimezone(UTC)


def snap_slot(schedule: Any, given: datetime,
              tolerance: float = SLOT_TOLERANCE_SECONDS) -> datetime:
    """The schedule's slot for a run reported at ``given`` (see the module docstring)."""
    evaluator = compile_schedule(schedule)
    slot = evaluator.prev_at_or_before(given)
    if slot is not None and (given - slot).total_seconds() <= tolerance:
        return slot.astimezone(UTC)
    after = evaluator.next_after(given)
    latest = "none" if slot is None else _iso(slot)
    upcoming = "none" if after is None else _iso(after)
    raise InputError(
        f"{_iso(given)} is not a slot of the job's schedule nor within {tolerance:g} s after "
        f"one (latest slot before it: {latest}; next: {upcoming})"
    )


def reported_run_key(job_id: str, slot: datetime, role: str) -> str:
    """The record key of a reported run: one per (job, slot, role), so a re-report adds nothing."""
    seed = f"{job_id}\0{int(slot.timestamp())}\0{role}"
    return "record:" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def record_legacy_run(
    registry: Registry,
    job_id: str,
    slot: datetime,
    status: str,
    exit_code: int | None = None,
    started: datetime | None = None,
    finished: datetime | None = None,
    output: str | None = None,
    *,
    host: str | None = None,
) -> RecordResult:
    """Store one legacy run of ``job_id`` for ``slot`` (see the module docstring)."""
    from bridge.core.runs import RunRecord, bound_sample, digest_output
    from bridge.store.repos import JobRepo
    from bridge.store.runs import record

    if status not in STATUSES:
        raise InputError(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    given = _aware(slot, "slot")
    assert given is not None
    started, finished = _aware(started, "started"), _aware(finished, "finished")
    if started and finished and finished < started:
        raise InputError("finished is before started")
    role, stored_status = STATUSES[status]
    with registry.session() as s:
        spec = JobRepo(s).require(job_id).spec
        nominal = snap_slot(spec.schedule, given)
        key = reported_run_key(job_id, nominal, role)
        obs = RunRecord(
            job_id=job_id, slot=nominal, path="legacy", role=role, status=stored_status,  # type: ignore[arg-type]
            fired_at=started or (given if given != nominal else None),
            started_at=started, finished_at=finished, exit_status=exit_code,
            output_digest=None if output is None else digest_output(
                output, spec.compare.clean),
            output_sample=None if output is None else bound_sample(output),
            host=host or _host(), record_key=key,
        )
        added = record(s, obs)
    return RecordResult(job_id, nominal, given, role, stored_status, key, added)


def slot_owner(registry: Registry, job_id: str, when: datetime) -> tuple[datetime, str]:
    """``(slot, owner)`` for a run about to start at ``when``: the slot as
    :func:`record_legacy_run` will store it, and who owns it (``legacy`` | ``celery``), so a
    wrapper knows whether to run or to stand down."""
    from bridge.core.authority import owner_at
    from bridge.store.repos import AuthorityRepo, JobRepo

    given = _aware(when, "slot")
    assert given is not None
    with registry.session() as s:
        spec = JobRepo(s).require(job_id).spec
        nominal = snap_slot(spec.schedule, given)
        return nominal, owner_at(AuthorityRepo(s).history(job_id), nominal).value


def _host() -> str:
    import socket

    return socket.gethostname()


__all__ = [
    "SLOT_TOLERANCE_SECONDS",
    "STATUSES",
    "RecordResult",
    "record_legacy_run",
    "reported_run_key",
    "slot_owner",
    "snap_slot",
]
