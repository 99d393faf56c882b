"""The shadow comparator: two observation streams in, one verdict per slot out (pure).

No I/O, no clock: ``now`` is a parameter. :func:`compare_job` takes a job's spec (schedule and
:class:`~bridge.core.spec.ComparePolicy`), a window ``(after, until]``, ``now``, the legacy and the
Celery observations of that window (and optionally the job's authority history) and returns one
:class:`SlotVerdict` per expected slot, plus one per firing at an instant the schedule does not
contain, ordered by slot.

How a slot is judged: :mod:`shadow.judge` (its docstring lists the rules); one path's records
    for a slot read as a side: :mod:`shadow.sides`.

Ignore rules (``compare.ignore``, GitHub Scientist's stacked ``ignore``)
    A rule is whitespace-separated terms that must all hold; rules are tried in order and the
    first that matches a non-match, non-pending verdict is recorded in ``ignored_by``. The
    verdict itself is kept (never hidden) and counted under ``ignored``. Terms:

    * ``verdict=V[,V...]``: the verdict is one of these;
    * ``slots=A..B``: the slot lies in ``[A, B]`` (ISO 8601; naive means UTC; either end may be
      empty; ``slots=2026-03-08`` alone is that whole UTC day; ``slots=A`` alone is one instant);
    * ``field=F`` or the bare word ``exit_status`` / ``output_digest``: that field mismatched;
    * ``legacy=X`` / ``celery=X``: that side's record has exit status ``X`` (an integer), or
      status or role ``X`` (``failed``, ``observe`` ...), or ``none`` (no record);
    * ``lag<=N``: both sides' absolute fire lags are at most ``N`` seconds.

    Example: ``verdict=outcome_mismatch exit_status legacy=1 celery=0`` or
    ``verdict=late lag<=300 slots=2026-03-08T00:00:00Z..2026-03-09T00:00:00Z``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridge.core.authority import AuthorityEvent
from bridge.core.runs import Path, RunRecord
from bridge.core.schedules import compile_schedule, slots_between
from bridge.core.spec import JobSpec
from shadow.ignore import IgnoreRule, apply_ignore, parse_ignore
from shadow.judge import (
    before_import_verdict,
    context_for,
    grace_for,
    judge_records,
    judge_slot,
    lost_detail,
    outcome_diffs,
    unexpected_verdict,
)
from shadow.sides import Side, build_side, fold_executions
from shadow.verdicts import RESOLVED, Basis, IgnoreRuleError, SlotVerdict, Verdict

__all__ = [
    "COUNT_KEYS", "RESOLVED", "Basis", "IgnoreRule", "IgnoreRuleError", "JobSummary", "Side",
    "SlotVerdict", "Verdict", "before_import_verdict", "build_side", "compare_job",
    "context_for", "fold_executions", "grace_for", "judge_records", "judge_slot", "lost_detail",
    "outcome_diffs", "parse_ignore", "schedule_slots", "split_paths", "summarize",
    "unexpected_verdict",
]


# --- the job ----------------------------------------------------------------------------------


def split_paths(observations: Iterable[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """(legacy, celery) lists from one mixed stream."""
    legacy: list[RunRecord] = []
    celery: list[RunRecord] = []
    for obs in observations:
        (legacy if obs.path is Path.LEGACY else celery).append(obs)
    return legacy, celery


def _by_slot(
    observations: Iterable[RunRecord], after: datetime, until: datetime
) -> dict[datetime, list[RunRecord]]:
    out: dict[datetime, list[RunRecord]] = {}
    for obs in observations:
        slot = obs.slot
        if after < slot <= until:
            group = out.get(slot)
            if group is None:
                out[slot] = [obs]
            else:
                group.append(obs)
    return out


def schedule_slots(spec: JobSpec, after: datetime, until: datetime) -> list[datetime]:
    """Every slot of the job's schedule in ``(after, until]`` (unbounded: the caller bounds the
    window)."""
    return list(slots_between(compile_schedule(spec.schedule), after, until))


def compare_job(
    spec: JobSpec,
    after: datetime,
    until: datetime,
    now: datetime,
    legacy: Iterable[RunRecord],
    celery: Iterable[RunRecord],
    *,
    history: Sequence[AuthorityEvent] = (),
    expected: Sequence[datetime] | None = None,
    grace: timedelta | None = None,
    imported: datetime | None = None,
    before: Collection[datetime] | None = None,
) -> list[SlotVerdict]:
    """One verdict per expected slot in ``(after, until]`` plus one per unexpected firing.

    ``imported``: when the job entered the registry. No slot at or before it is expected
    (nothing could have observed it); a firing at such a slot of the schedule is judged
    ``before_import`` (not compared), one at an instant the schedule does not contain stays
    ``unexpected_slot``. ``expected`` may pass the schedule's slots of the window when the
    caller has them (many jobs share a schedule; then ``before`` passes the schedule's slots
    at or before the import); ``grace`` overrides :func:`grace_for`.
    """
    if expected is None:
        expected = schedule_slots(spec, after, until)
        if imported is not None and imported > after:
            before = [t for t in expected if t <= imported]
            expected = expected[len(before):]
    elif imported is not None and before is None and imported > after:
        before = schedule_slots(spec, after, min(imported, until))
        expected = [t for t in expected if t > imported]
    slots = expected
    ctx = context_for(spec, now, history, grace)
    rules = [parse_ignore(r) for r in spec.compare.ignore]
    by_legacy, by_celery = _by_slot(legacy, after, until), _by_slot(celery, after, until)
    none: list[RunRecord] = []
    out = []
    for slot in slots:
        verdict = judge_records(slot, by_legacy.pop(slot, none), by_celery.pop(slot, none), ctx)
        out.append(apply_ignore(verdict, rules) if rules else verdict)
    if by_legacy or by_celery:
        early = frozenset(before or ())
        for slot in set(by_legacy) | set(by_celery):
            lrecs, crecs = by_legacy.get(slot, none), by_celery.get(slot, none)
            if slot in early:
                out.append(before_import_verdict(slot, lrecs, crecs, imported))
                continue
            out.append(apply_ignore(unexpected_verdict(slot, lrecs, crecs), rules))
        out.sort(key=lambda v: v.slot)
    return out


# --- the summary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSummary:
    """Per-job counts: every verdict plus ``ignored`` (an ignored slot counts only there)."""

    job_id: str
    compared: int  # verdicts: expected slots + unexpected firings
    counts: Mapping[str, int] = field(default_factory=dict)
    ignored_rules: Mapping[str, int] = field(default_factory=dict)
    unresolved: int = 0
    first_slot: datetime | None = None
    last_slot: datetime | None = None
    last_mismatch: SlotVerdict | None = None  # newest unresolved mismatch, both sides attached


COUNT_KEYS = (*(v.value for v in Verdict), "ignored")


def summarize(job_id: str, verdicts: Sequence[SlotVerdict]) -> JobSummary:
    counts = dict.fromkeys(COUNT_KEYS, 0)
    rules: dict[str, int] = {}
    last: SlotVerdict | None = None
    for v in verdicts:
        if v.ignored_by is not None:
            counts["ignored"] += 1
            rules[v.ignored_by] = rules.get(v.ignored_by, 0) + 1
            continue
        counts[v.verdict.value] += 1
        if v.unresolved:
            last = v
    return JobSummary(
        job_id=job_id,
        compared=len(verdicts),
        counts=counts,
        ignored_rules=rules,
        unresolved=sum(1 for v in verdicts if v.unresolved),
        first_slot=verdicts[0].slot if verdicts else None,
        last_slot=verdicts[-1].slot if verdicts else None,
        last_mismatch=last,
    )
