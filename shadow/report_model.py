"""What a shadow report is made of (pure): per job its summary, readiness, bounded detail.

:func:`job_report` turns one job's verdicts into a :class:`JobReport`; a :class:`Report` is the
window's jobs. The service that reads the registry is :mod:`shadow.report`, the renderings
:mod:`shadow.report_json` and :mod:`shadow.report_html`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.runs import RunRecord
from bridge.core.spec import JobSpec, ScheduleSpec
from shadow.compare import COUNT_KEYS, RESOLVED, JobSummary, SlotVerdict, Verdict, summarize
from shadow.readiness import Readiness, readiness

TIMELINE_LIMIT = 500  # newest slots per job drawn in the HTML timeline
MISMATCH_LIMIT = 50  # newest mismatches per job kept in full (both sides)

Progress = Callable[[str, int, int], None]  # (job id, slots done so far, total slots)


class TimelinePoint(NamedTuple):
    """A slot as the HTML timeline draws it (no observation kept: cheap for large windows)."""

    slot: datetime
    verdict: Verdict
    ignored: bool
    legacy_lag: float | None
    celery_lag: float | None
    legacy: str | None  # "role/status" of the side's main record
    celery: str | None
    detail: str


@dataclass(frozen=True)
class JobReport:
    spec: JobSpec
    owner: Owner
    expected: int
    summary: JobSummary
    readiness: Readiness
    mismatches: tuple[SlotVerdict, ...]
    timeline: tuple[TimelinePoint, ...]
    timeline_omitted: int  # older slots not drawn

    @property
    def unresolved(self) -> bool:
        return self.summary.unresolved > 0


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    since: datetime
    until: datetime
    jobs: tuple[JobReport, ...]

    @property
    def ok(self) -> bool:
        return not any(j.unresolved for j in self.jobs)

    def totals(self, jobs: Sequence[JobReport] | None = None) -> dict[str, Any]:
        """Totals over ``jobs`` (default: every job of the report)."""
        jobs = self.jobs if jobs is None else jobs
        counts = dict.fromkeys(COUNT_KEYS, 0)
        for job in jobs:
            for key, n in job.summary.counts.items():
                counts[key] += n
        return {
            "jobs": len(jobs),
            "expected_slots": sum(j.expected for j in jobs),
            "compared": sum(j.summary.compared for j in jobs),
            "unresolved": sum(j.summary.unresolved for j in jobs),
            "jobs_with_unresolved": sum(1 for j in jobs if j.unresolved),
            "ready": sum(1 for j in jobs if j.readiness.ready),
            "counts": counts,
        }

    def by_host(self) -> dict[str, dict[str, Any]]:
        """:meth:`totals` per host ("" for jobs bound to no host), hosts in name order."""
        groups: dict[str, list[JobReport]] = {}
        for job in self.jobs:
            groups.setdefault(job.spec.host or "", []).append(job)
        return {host: self.totals(groups[host]) for host in sorted(groups)}


@dataclass(frozen=True)
class Planned:
    """One job as a report plans it: its spec, authority history and the window's slots."""

    spec: JobSpec
    history: list[AuthorityEvent]
    slots: list[datetime]  # expected: the schedule's slots of the window after the import
    before: list[datetime] = field(default_factory=list)  # the schedule's, at/before import
    imported: datetime | None = None  # when the job entered the registry, if in the window
    members: tuple[tuple[str, str | None], ...] = ()  # a consolidation group's (id, host)


def schedule_text(s: ScheduleSpec) -> str:
    if s.expression:
        return s.expression
    if s.interval is not None and s.interval_unit is not None:
        return f"every {s.interval} {s.interval_unit.value}(s)"
    return f"every {s.interval_ms} ms"


def _side_word(obs: RunRecord | None) -> str | None:
    return None if obs is None else f"{obs.role.value}/{obs.status.value}"


def timeline_point(v: SlotVerdict) -> TimelinePoint:
    detail = "" if v.verdict is Verdict.MATCH else v.detail
    return TimelinePoint(v.slot, v.verdict, v.ignored_by is not None, v.legacy_lag,
                         v.celery_lag, _side_word(v.legacy), _side_word(v.celery), detail)


def job_report(
    spec: JobSpec,
    verdicts: Sequence[SlotVerdict],
    *,
    owner: Owner,
    expected: int,
    timeline_limit: int = TIMELINE_LIMIT,
    mismatch_limit: int = MISMATCH_LIMIT,
    required: int | None = None,
) -> JobReport:
    """Summary, readiness and the bounded detail one job contributes to a report
    (``required``: readiness's N when the caller knows it)."""
    mismatches = [v for v in verdicts if v.verdict not in RESOLVED]
    shown = verdicts[-timeline_limit:] if timeline_limit > 0 else []
    return JobReport(
        spec=spec,
        owner=owner,
        expected=expected,
        summary=summarize(spec.id, verdicts),
        readiness=readiness(spec, verdicts, required=required, flipped=owner is Owner.CELERY),
        mismatches=tuple(mismatches[-mismatch_limit:]) if mismatch_limit > 0 else (),
        timeline=tuple(timeline_point(v) for v in shown),
        timeline_omitted=len(verdicts) - len(shown),
    )
