"""Is a job ready to flip? A pure function of its spec and its slot verdicts.

A job is **ready** when its last ``N`` *decided* expected slots are all ``match`` and no
unresolved mismatch (a verdict other than match / pending, not explained by an ignore rule,
``unexpected_slot`` included) lies at or after the first of those ``N`` slots.

* *Decided* slots skip ``pending`` ones (their records may still arrive) and ignored ones (an
  ignore rule explains a mismatch, it does not prove a match: an ignored slot neither counts
  towards ``N`` nor breaks the run); ``unexpected_slot`` verdicts are not expected slots, they
  only block; ``before_import`` verdicts (firings before the job entered the registry) neither
  count nor block.
* A ``lost`` slot (a run whose holder died before recording its outcome) is a finding like any
  mismatch: the job is not ready while one lies in the readiness window.
* ``N`` is the job's ``compare.ready_after``; by default 3, or 24 for a job that fires more
  often than hourly (median gap between its next slots under one hour).
* **Basis.** A job compared on outcomes (mapped, shadow mode ``dry-run`` / ``execute``) is
  ``outcome``-ready only if its last ``N`` slots were compared on outcome: a slot compared on
  timing alone (the shadow only observed) does not prove the handler behaves alike. An unmapped
  job, or one in ``observe`` shadow mode, can only ever be compared on timing: it can be ready,
  and the verdict says ``basis: timing-only``.

``reasons`` lists why a job is not ready (empty when it is ready). A job whose authority has
already been flipped to Celery (``flipped=True``) is reported not ready with that reason: the
question no longer applies, and its slots are then compared the other way round (legacy
stands down), on timing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise

from bridge.core.schedules import compile_schedule, take
from bridge.core.spec import JobSpec, ScheduleSpec, ShadowMode
from shadow.compare import Basis, SlotVerdict, Verdict

DEFAULT_READY_AFTER = 3
FREQUENT_READY_AFTER = 24
HOURLY = timedelta(hours=1)
FALLBACK_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)


class ReadinessBasis(StrEnum):
    OUTCOME = "outcome"  # outcomes (exit status, output digest) and timing matched
    TIMING_ONLY = "timing-only"  # only when the job fires was comparable


@dataclass(frozen=True)
class Readiness:
    ready: bool
    basis: ReadinessBasis
    required: int  # N: consecutive matched slots needed
    evidence: tuple[datetime, ...]  # the slots considered (the last N decided)
    reasons: tuple[str, ...]  # why not ready (empty when ready)


def timing_only(spec: JobSpec) -> bool:
    """Unmapped jobs and ``observe`` shadows can only be compared on timing."""
    return not spec.mapped or spec.policies.shadow_mode is ShadowMode.OBSERVE


def fires_more_often_than_hourly(spec: JobSpec, anchor: datetime) -> bool:
    return _sub_hourly(spec.schedule, anchor)


@lru_cache(maxsize=4096)
def _sub_hourly(schedule: ScheduleSpec, anchor: datetime) -> bool:
    """Median gap of the 25 slots after ``anchor`` under an hour (jobs share schedules)."""
    slots = take(compile_schedule(schedule), anchor, 25)
    if len(slots) < 2:
        return False
    gaps = [(b - a).total_seconds() for a, b in pairwise(slots)]
    return statistics.median(gaps) < HOURLY.total_seconds()


def required_matches(spec: JobSpec, anchor: datetime | None = None) -> int:
    """N for this job: ``compare.ready_after``, else 3, or 24 for sub-hourly schedules."""
    if spec.compare.ready_after is not None:
        return spec.compare.ready_after
    start = anchor or spec.schedule.start or FALLBACK_ANCHOR
    if fires_more_often_than_hourly(spec, start):
        return FREQUENT_READY_AFTER
    return DEFAULT_READY_AFTER


NOT_DECIDED = frozenset({Verdict.PENDING, Verdict.UNEXPECTED_SLOT, Verdict.BEFORE_IMPORT})


def _decided(verdicts: Sequence[SlotVerdict]) -> list[SlotVerdict]:
    return [
        v for v in verdicts
        if v.verdict not in NOT_DECIDED and v.ignored_by is None
    ]


def _describe(v: SlotVerdict) -> str:
    return f"{v.verdict.value} at {v.slot.isoformat()}"


def readiness(
    spec: JobSpec,
    verdicts: Sequence[SlotVerdict],
    *,
    required: int | None = None,
    flipped: bool = False,
) -> Readiness:
    """Readiness of one job from its verdicts (ordered by slot); see the module docstring."""
    if flipped:
        return Readiness(False, ReadinessBasis.TIMING_ONLY if timing_only(spec)
                         else ReadinessBasis.OUTCOME, required or 0, (),
                         ("already flipped: celery owns the job",))
    anchor = verdicts[0].slot - timedelta(seconds=1) if verdicts else None
    need = required if required is not None else required_matches(spec, anchor)
    only_timing = timing_only(spec)
    basis = ReadinessBasis.TIMING_ONLY if only_timing else ReadinessBasis.OUTCOME
    last = _decided(verdicts)[-need:] if need > 0 else []
    reasons: list[str] = []
    if len(last) < need:
        reasons.append(f"{len(last)} decided slot(s) in the window, {need} needed")
    misses = [v for v in last if v.verdict is not Verdict.MATCH]
    if misses:
        reasons.append(f"{len(misses)} of the last {len(last)} slot(s) did not match "
                       f"(newest: {_describe(misses[-1])})")
    since = last[0].slot if last else None
    counted = {id(v) for v in misses}
    blocking = [
        v for v in verdicts
        if v.unresolved and (since is None or v.slot >= since) and id(v) not in counted
    ]
    if blocking:
        reasons.append(f"{len(blocking)} unresolved mismatch(es) in the window "
                       f"(newest: {_describe(blocking[-1])})")
    timing = [v for v in last if v.verdict is Verdict.MATCH and v.basis is not Basis.OUTCOME]
    if not only_timing and timing:
        reasons.append(f"{len(timing)} of the last {len(last)} slot(s) were compared on timing "
                       f"only, but shadow mode {spec.policies.shadow_mode.value} should yield "
                       "outcomes")
    return Readiness(
        ready=not reasons,
        basis=basis,
        required=need,
        evidence=tuple(v.slot for v in last),
        reasons=tuple(reasons),
    )
