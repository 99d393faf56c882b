"""``bridge pause|resume|trigger``: an operator's hands on one job; each act is audited.

* ``pause JOB --reason``: marks the job paused in the registry and re-syncs RedBeat, so beat
  records each slot it passes as ``skipped`` (``paused``) instead of publishing it; a worker
  receiving a Celery-owned slot of a paused job records it ``skipped`` too. ``resume`` undoes it.
* ``trigger JOB [--slot S]``: publishes ``bridge.run_job(JOB, S)`` now. ``S`` defaults to the
  latest slot at or before now and must be a slot of the job's schedule, not in the future.
  Refused (exit 1) when Celery does not own ``S`` (the task would only shadow a legacy-owned
  slot; there is deliberately no ``--force``: running a legacy slot on Celery would give the
  slot two owners, flip first), when the job is paused or unmapped, when ``S`` is running now,
  and when ``S`` was already run (its claim is complete) unless ``--rerun --reason``.

A rerun keeps at-most-once explicit: the completed claim is *released* (a compare-and-swap of
that exact claim row, state and attempt, to ``abandoned``) and the release is written to the
audit log (``trigger.rerun``, with the claim as it was) in the same transaction. The task then
takes the released claim over like any dead one (attempt + 1): one extra execution, fenced by
the claim as always; a second concurrent delivery is suppressed. A claim's takeover limit (5
attempts) bounds the reruns of one slot.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.audit import current_actor
from bridge.core.authority import Owner, owner_at
from bridge.core.claims import ClaimInfo, ClaimState
from bridge.core.errors import InfraError, InputError, RefusedError
from bridge.core.jobs import StoredJob
from bridge.core.placement import job_queue
from bridge.core.schedules import compile_schedule
from bridge.store.audit import AuditRepo
from bridge.store.claims import ClaimStore, release_for_rerun
from bridge.store.db import Session
from bridge.store.repos import AuthorityRepo, JobRepo

TASK_NAME = "bridge.run_job"  # legacy_wrappers.tasks.TASK_NAME (importing it builds the app)
TAKEOVER_LIMIT = 5  # Claims' default takeover_limit


def _actor() -> str:
    return STATE.actor or current_actor()


def _resync() -> str | None:
    """Re-sync RedBeat from SQL; a warning when Redis is unreachable (SQL already changed)."""
    from bridge.services.sync import sync_registry

    try:
        sync_registry(STATE.registry(), STATE.settings)
    except InfraError as e:
        return f"RedBeat not re-synced ({e}); workers still honour the pause; run `bridge sync`"
    return None


def _set_paused(job: str, paused: bool, reason: str | None) -> StoredJob:
    with STATE.registry().session() as s:
        jobs = JobRepo(s)
        before = jobs.require(job)
        jobs.set_paused(job, paused, reason)
        AuditRepo(s).append(
            "pause" if paused else "resume", actor=_actor(), job_id=job, reason=reason,
            before={"paused": before.paused, "reason": before.paused_reason},
            after={"paused": paused, "reason": reason if paused else None},
        )
    return before


def _finish_pause(job: str, paused: bool, as_json: bool) -> None:
    warning = _resync()
    if as_json:
        emit_json({"job_id": job, "paused": paused, "warnings": [warning] if warning else []})
    else:
        out.print(f"{job}: {'paused' if paused else 'resumed'}", markup=False, highlight=False)
        if warning:
            out.print(f"warning: {warning}", markup=False, highlight=False)
    raise typer.Exit(3 if warning else 0)


def pause(
    job: str = typer.Argument(..., help="The job id."),
    reason: str = typer.Option(..., "--reason", help="Why, for the audit log."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Pause a job: beat skips its slots (recorded skipped/paused) until `bridge resume`."""
    _set_paused(job, True, reason)
    _finish_pause(job, True, as_json)


def resume(
    job: str = typer.Argument(..., help="The job id."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Resume a paused job from its next slot."""
    _set_paused(job, False, reason)
    _finish_pause(job, False, as_json)


# --- trigger -------------------------------------------------------------------------------------


def _parse_slot(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise InputError(f"bad --slot '{text}': expected ISO 8601") from e
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pick_slot(stored: StoredJob, wanted: datetime | None, now: datetime) -> datetime:
    """The slot to trigger: ``wanted`` checked against the schedule, else the latest <= now."""
    evaluator = compile_schedule(stored.spec.schedule)
    if wanted is None:
        slot = evaluator.prev_at_or_before(now)
        if slot is None:
            raise RefusedError(f"{stored.id}: the schedule has no slot at or before now")
        return slot
    if evaluator.prev_at_or_before(wanted) != wanted:
        raise InputError(f"{stored.id}: {wanted.isoformat()} is not a slot of the job's schedule")
    if wanted > now:
        raise InputError(f"{stored.id}: {wanted.isoformat()} is in the future; beat will run it")
    return wanted


def check_triggerable(stored: StoredJob, owner: Owner, slot: datetime) -> None:
    if not stored.spec.mapped:
        raise RefusedError(f"{stored.id}: unmapped job: Celery never executes it")
    if stored.paused:
        raise RefusedError(f"{stored.id}: paused ({stored.paused_reason}); `bridge resume` first")
    if owner is not Owner.CELERY:
        raise RefusedError(f"{stored.id}: legacy owns {slot.isoformat()}; run it on the legacy "
                           "side, or flip the job to celery first")


def check_claim(claim: ClaimInfo | None, rerun: bool, now: datetime) -> None:
    """Refuse a slot that runs now, or that already ran unless this is a rerun."""
    if claim is None:
        return
    if claim.alive(now):
        raise RefusedError(f"{claim.job_id}: {claim.slot.isoformat()} is running now "
                           f"(claimed by {claim.holder})")
    if not rerun:
        raise RefusedError(f"{claim.job_id}: {claim.slot.isoformat()} already ran (claim "
                           f"{claim.state.value}, {claim.attempts} attempt(s)); use --rerun "
                           "--reason TEXT to run it again")
    if claim.attempts >= TAKEOVER_LIMIT:
        raise RefusedError(f"{claim.job_id}: {claim.slot.isoformat()} reached the claim's "
                           f"{TAKEOVER_LIMIT} attempts; it cannot be rerun")


def release_claim(session: Session, claim: ClaimInfo, actor: str, reason: str) -> None:
    """Release a finished claim for one rerun, audited in the same transaction."""
    if not release_for_rerun(session, claim, datetime.now(UTC)):
        raise RefusedError(f"{claim.job_id}: the claim of {claim.slot.isoformat()} changed "
                           "meanwhile; look again")
    AuditRepo(session).append(
        "trigger.rerun", actor=actor, job_id=claim.job_id, reason=reason,
        before={"slot": claim.slot.isoformat(), "claim": claim.state.value,
                "holder": claim.holder, "attempts": claim.attempts},
        after={"claim": ClaimState.ABANDONED.value},
    )


def _send(job_id: str, slot: datetime, queue: str) -> str:
    from bridge.celery_app import make_app

    app = make_app(STATE.settings)
    try:
        result = app.send_task(TASK_NAME, args=[job_id, slot.strftime("%Y-%m-%dT%H:%M:%SZ")],
                               queue=queue)
    except Exception as e:  # kombu raises its own OperationalError family
        raise InfraError(f"cannot publish to the broker: {e}") from e
    finally:
        app.close()
    return str(result.id)


def trigger(
    job: str = typer.Argument(..., help="The job id."),
    slot: str = typer.Option(None, "--slot", help="The slot (ISO 8601; default: latest <= now)."),
    rerun: bool = typer.Option(False, "--rerun", help="Run a slot that already ran (--reason)."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run one slot of a Celery-owned job now, through Celery (audited)."""
    if rerun and not (reason and reason.strip()):
        raise InputError("--rerun needs --reason TEXT")
    now = datetime.now(UTC)
    registry = STATE.registry()
    actor = _actor()
    with registry.session() as s:
        stored = JobRepo(s).require(job)
        chosen = pick_slot(stored, _parse_slot(slot), now)
        check_triggerable(stored, owner_at(AuthorityRepo(s).history(job), chosen), chosen)
    claim = ClaimStore(registry).get(job, chosen)
    check_claim(claim, rerun, now)
    with registry.session() as s:
        if claim is not None:
            release_claim(s, claim, actor, reason)
        queue = job_queue(stored.spec)
        task_id = _send(job, chosen, queue)
        AuditRepo(s).append("trigger", actor=actor, job_id=job, reason=reason,
                            after={"slot": chosen.isoformat(), "task_id": task_id,
                                   "queue": queue, "rerun": claim is not None})
    if as_json:
        emit_json({"job_id": job, "slot": chosen.isoformat(), "task_id": task_id,
                   "queue": queue, "rerun": claim is not None})
    else:
        out.print(f"{job}: sent slot {chosen.isoformat()} to queue {queue} (task {task_id})",
                  markup=False, highlight=False)
