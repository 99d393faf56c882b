"""Which slots a worker accepts (issue 14.3): a slot of the job's schedule, not in the future.

A message names a job and a slot; beat only publishes slots of the schedule once they are due.
A hand-made message can name anything, so before running an authoritative slot the worker
checks (pure :func:`slot_problem`):

* the slot is not later than now + :data:`FUTURE_TOLERANCE` (clock skew between hosts);
* the slot is on the job's schedule (the dialect evaluator's latest slot at or before it is it).

A slot failing either is refused (a ``rejected`` runs row with the reason; nothing runs, the
claim is not touched, so beat's own firing of a future slot still runs) **unless** the message
was sent by ``bridge trigger``, a backfill or a repair: those write an audit record naming the
task id (``after.task_id``) before they publish (one of :data:`AUDITED_ACTIONS`, looked up by
:meth:`bridge.store.audit.AuditRepo.names_task`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from bridge.core.errors import ScheduleError
from bridge.core.schedules import Evaluator, compile_schedule
from bridge.core.spec import JobSpec, ScheduleSpec

FUTURE_TOLERANCE = timedelta(seconds=60)
AUDITED_ACTIONS = ("trigger", "repair", "backfill")


def slot_problem(spec: JobSpec, slot: datetime, now: datetime,
                 tolerance: timedelta = FUTURE_TOLERANCE) -> str | None:
    """Why ``slot`` may not run now (None: it may)."""
    if slot > now + tolerance:
        return (f"slot {slot.isoformat()} is in the future ({(slot - now).total_seconds():.0f} s "
                f"ahead, tolerance {tolerance.total_seconds():.0f} s): refused; beat runs it "
                "when it is due")
    try:
        evaluator = evaluator_of(spec.schedule)
        on_schedule = evaluator.prev_at_or_before(slot) == slot
    except ScheduleError as e:
        return f"slot {slot.isoformat()}: the job's schedule cannot be evaluated: {e}"
    if not on_schedule:
        return f"slot {slot.isoformat()} is not on the job's schedule: refused"
    return None


@lru_cache(maxsize=4096)
def evaluator_of(schedule: ScheduleSpec) -> Evaluator:
    """The schedule's evaluator, compiled once per process (evaluators are pure values; a
    changed schedule is another key). A schedule that cannot compile raises every time."""
    return compile_schedule(schedule)
