"""What the shadow records say about a job before a flip: its readiness and the slots where
both paths were seen and disagree (:class:`Evidence`), read over the readiness window.

:mod:`bridge.services.flip` plans a flip from it; ``bridge authority flip|status`` and
``bridge legacy retire`` gather it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.schedules import compile_schedule
from bridge.core.spec import JobSpec
from bridge.store.db import Session
from shadow.compare import SlotVerdict, Verdict
from shadow.readiness import Readiness, readiness, required_matches
from shadow.report import compare_stored

WINDOW_CAP = 1000  # slots of shadow history a readiness check reads at most

@dataclass(frozen=True)
class Evidence:
    """What the shadow records say about a job now."""

    readiness: Readiness
    mismatches: tuple[datetime, ...]  # unresolved verdicts in the readiness window


def window_start(spec: JobSpec, now: datetime, count: int) -> datetime:
    """An instant just before the ``count``-th slot at or before ``now``."""
    evaluator = compile_schedule(spec.schedule)
    t, first = now, None
    for _ in range(count):
        slot = evaluator.prev_at_or_before(t)
        if slot is None:
            break
        first, t = slot, slot - timedelta(seconds=1)
    return (first or now) - timedelta(seconds=1)


def evidence(session: Session, spec: JobSpec, history: list[AuthorityEvent],
             now: datetime) -> Evidence:
    need = required_matches(spec)
    since = window_start(spec, now, min(2 * need + 10, WINDOW_CAP))
    verdicts = compare_stored(session, spec, since, now, now, history=history, lean=True)
    ready = readiness(spec, verdicts, flipped=owner_at(history, now) is Owner.CELERY)
    return Evidence(ready, disagreements(verdicts, ready))


# lack of evidence, not disagreement: the job is not ready (a forced flip may override it);
# a lost run's outcome is unknown, so it proves nothing either way
ABSENCES = frozenset({Verdict.MISSING_LEGACY, Verdict.MISSING_CELERY, Verdict.LOST})


def disagreements(verdicts: list[SlotVerdict], ready: Readiness) -> tuple[datetime, ...]:
    """Slots where both paths were seen and disagree (a missing side is lack of evidence:
    it makes the job not ready, which a forced flip may override)."""
    start = ready.evidence[0] if ready.evidence else None
    return tuple(v.slot for v in verdicts if v.unresolved and v.verdict not in ABSENCES
                 and (start is None or v.slot >= start))
