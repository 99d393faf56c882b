"""Shadow reports: per job, what was expected, what each path did, the verdicts, readiness.

:func:`build_report` is the service (it reads the registry: specs, authority, observations, one
job at a time; slots that trivially match are recognised on compact rows by
:mod:`shadow.fast_report` / :mod:`shadow.scan`, the rest judged from full records);
:func:`job_report`, :func:`to_json` and :func:`shadow.report_html.render_html` are pure. The
CLI (``bridge shadow report``) renders a table, this JSON, or a self-contained HTML page.

JSON document (``--format json``; field names are stable, new fields may be added)::

    schema            "cron-bridge.shadow-report/1"
    generated_at      ISO 8601 UTC instant the report was made ("now")
    window            {since, until}: slots s with since < s <= until (ISO 8601 UTC)
    ok                false when any job has an unresolved mismatch (the CLI then exits 1)
    totals            {jobs, expected_slots, compared, unresolved, jobs_with_unresolved,
                       ready, counts}
    hosts             {host: the same totals over that host's jobs}; jobs bound to no host
                       (Quartz, manual) are under ""
    jobs[]            one object per job, ordered by job id:
      job_id          the registry id
      host            the job's host (bridge.core.hosts), null when bound to none
      dialect         vixie | cronie | quartz | quartz-simple | calendar-interval | interval
      schedule        the expression (or "every N unit" for interval dialects)
      timezone        IANA zone of the schedule
      mapped          false for a Quartz job class without a mapping (never executed by Celery)
      shadow_mode     observe | dry-run | execute
      owner           legacy | celery: who owns the window's last instant (authority history)
      expected_slots  slots the legacy schedule designates in the window
      compared        verdicts: expected slots + unexpected firings
      counts          {match, missing_celery, missing_legacy, late, duplicate, outcome_mismatch,
                       pending, unexpected_slot, before_import, lost, ignored}: an ignored slot
                       counts only under "ignored" (its real verdict stays in mismatches[]);
                       before_import (a firing at or before the job's import) is not a
                       finding, lost (a run whose outcome is unknown) is
      ignored_rules   {rule text: slots it explained}
      unresolved      slots whose verdict is not match/pending/before_import and not ignored
      first_slot, last_slot   ISO 8601 or null
      readiness       {ready, basis ("outcome" | "timing-only"), required, evidence (the slots
                       considered), reasons (why not ready)}
      last_mismatch   the newest unresolved slot verdict, or null
      mismatches      up to 50 newest slot verdicts other than match/pending/before_import
                      (ignored included)

    slot verdict      {slot, verdict, detail, basis ("outcome" | "timing" | "none"),
                       ignored_by (rule text or null), mismatched (fields), legacy, celery}
    legacy / celery   null or an observation: {path, role, status, fired_at, started_at,
                       finished_at, lag_seconds, exit_status, task_state, attempts,
                       output_digest, output_sample, host, error, record_key}
"""

from __future__ import annotations

import bisect
import fnmatch
import gc
import multiprocessing
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.errors import InputError, NotFoundError
from bridge.core.runs import RunRecord, Status
from bridge.core.spec import JobSpec, ScheduleSpec
from bridge.store.models import JobRow
from bridge.store.repos import AuthorityRepo, FleetRepo, JobRepo
from shadow.compare import (
    COUNT_KEYS,
    RESOLVED,
    JobSummary,
    SlotVerdict,
    Verdict,
    compare_job,
    expected_slots,
    lost_detail,
    split_paths,
    summarize,
)
from shadow.group import annotate, fold_members
from shadow.readiness import Readiness, readiness
from shadow.record import by_row_id, query

SCHEMA = "cron-bridge.shadow-report/1"
TIMELINE_LIMIT = 500  # newest slots per job drawn in the HTML timeline
MISMATCH_LIMIT = 50  # newest mismatches per job kept in full (both sides)
RELATIVE = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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


# --- inputs -----------------------------------------------------------------------------------


def parse_when(text: str, now: datetime) -> datetime:
    """ISO 8601 (naive = UTC) or a span back from now: ``90m``, ``24h``, ``7d``, ``2w``."""
    m = RELATIVE.match(text.strip())
    if m:
        return now - timedelta(**{UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise InputError(f"bad time '{text}': expected ISO 8601 or a span like 24h / 7d") from e
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def select_jobs(known: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Job ids named by ``patterns`` (exact ids or globs), sorted; none given = all known."""
    if not patterns:
        return sorted(known)
    chosen: set[str] = set()
    known_set = set(known)
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = fnmatch.filter(known, pattern)
            if not hits:
                raise NotFoundError(f"no job matches '{pattern}'", hint="see `bridge jobs list`")
            chosen.update(hits)
        elif pattern in known_set:
            chosen.add(pattern)
        else:
            raise NotFoundError(f"no job '{pattern}' in the registry",
                                hint="see `bridge jobs list`")
    return sorted(chosen)


def schedule_text(s: ScheduleSpec) -> str:
    if s.expression:
        return s.expression
    if s.interval is not None and s.interval_unit is not None:
        return f"every {s.interval} {s.interval_unit.value}(s)"
    return f"every {s.interval_ms} ms"


# --- one job (pure) ---------------------------------------------------------------------------


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


# --- the service (reads the registry) ---------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    spec: JobSpec
    history: list[AuthorityEvent]
    slots: list[datetime]  # expected: the schedule's slots of the window after the import
    before: list[datetime] = field(default_factory=list)  # the schedule's, at/before import
    imported: datetime | None = None  # when the job entered the registry, if in the window
    members: tuple[tuple[str, str | None], ...] = ()  # a consolidation group's (id, host)


def _plan(session: Session, job_ids: Sequence[str], since: datetime,
          until: datetime) -> list[_Planned]:
    jobs = JobRepo(session)
    fleet = FleetRepo(session)
    grouped = fleet.group_of()  # a group's members are reported through their group
    job_ids = [j for j in job_ids if j not in grouped]
    groups = fleet.members() if grouped else {}
    histories = AuthorityRepo(session).histories(job_ids)
    # many jobs: one listing beats a query per job (a job not listed is looked up, and refused)
    listed = {j.id: j for j in jobs.list()} if len(job_ids) > 50 else {}
    cache: dict[ScheduleSpec, list[datetime]] = {}
    planned = []
    for job_id in job_ids:
        stored = listed.get(job_id) or jobs.require(job_id)
        spec = stored.spec
        if spec.schedule not in cache:  # many jobs share a schedule: evaluate it once
            cache[spec.schedule] = expected_slots(spec, since, until)
        slots = cache[spec.schedule]
        before: list[datetime] = []
        imported = None
        if stored.created_at > since:  # nothing could observe a slot before the import
            imported = stored.created_at
            split = bisect.bisect_right(slots, imported)
            slots, before = slots[split:], slots[:split]
        planned.append(_Planned(spec, histories.get(job_id, []), slots, before, imported,
                                tuple(groups.get(job_id, ()))))
    return planned


def compare_stored(
    session: Session,
    spec: JobSpec,
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    history: Sequence[AuthorityEvent] = (),
    expected: Sequence[datetime] | None = None,
    lean: bool = False,
    before: Sequence[datetime] | None = None,
    members: Sequence[tuple[str, str | None]] | None = None,
) -> list[SlotVerdict]:
    """Verdicts of one job over ``(since, until]`` from the stored observations (``lean``:
    without output samples and errors, see :func:`shadow.record.query`). No slot before the
    job's import is expected: nothing could have observed it; a firing at such a slot is
    ``before_import`` (see :func:`shadow.compare.compare_job`). A consolidation group's legacy
    side is its members' (``members``, looked up when None; see :mod:`shadow.group`)."""
    imported = session.scalar(select(JobRow.created_at).where(JobRow.id == spec.id))
    if imported is not None and imported <= since:
        imported = None
    if members is None:
        members = FleetRepo(session).members(spec.id).get(spec.id, [])
    legacy, celery = split_paths(query(session, spec.id, since, until, lean=lean))
    if not members:
        return compare_job(spec, since, until, now, legacy, celery, history=history,
                           expected=expected, imported=imported, before=before)
    hosts = dict(members)
    member_legacy, _ = split_paths(query(session, list(hosts), since, until, lean=lean))
    folded, executed, seen = fold_members(member_legacy, hosts)
    verdicts = compare_job(spec, since, until, now, folded, celery, history=history,
                           expected=expected, imported=imported, before=before)
    return annotate(verdicts, hosts, executed, seen)


def _shown(report: JobReport) -> list[SlotVerdict]:
    last = report.summary.last_mismatch
    return [*report.mismatches, *([last] if last is not None else [])]


def hydrate(session: Session, reports: Sequence[JobReport]) -> list[JobReport]:
    """Swap the lean records of the verdicts the reports show for full ones (output sample,
    error, finish time), fetched by row id in a few batched queries."""
    ids = [o.row_id for r in reports for v in _shown(r) for o in (v.legacy, v.celery)
           if o is not None and o.row_id is not None]
    if not ids:
        return list(reports)
    full = by_row_id(session, ids)

    def one(o: RunRecord | None) -> RunRecord | None:
        return None if o is None else full.get(o.row_id or -1, o)

    def fix(v: SlotVerdict) -> SlotVerdict:
        fixed = replace(v, legacy=one(v.legacy), celery=one(v.celery))
        if v.verdict is Verdict.LOST:  # the note (error text) is not in lean records
            lost = next(o for o in (fixed.celery, fixed.legacy)
                        if o is not None and o.status is Status.LOST)
            fixed = replace(fixed, detail=lost_detail(lost))
        return fixed

    out = []
    for r in reports:
        last = r.summary.last_mismatch
        summary = replace(r.summary, last_mismatch=fix(last) if last is not None else None)
        out.append(replace(r, summary=summary, mismatches=tuple(fix(v) for v in r.mismatches)))
    return out


Progress = Callable[[str, int, int], None]  # (job id, slots done so far, total slots)


def build_report(
    session: Session,
    job_ids: Sequence[str],
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    timeline_limit: int = TIMELINE_LIMIT,
    mismatch_limit: int = MISMATCH_LIMIT,
    progress: Progress | None = None,
) -> Report:
    """Compare every named job over ``(since, until]``, one job at a time (bounded memory)."""
    if until <= since:
        raise InputError("the window is empty: --until must be after --since")
    with _gc_paused():
        return _build(session, job_ids, since, until, now, timeline_limit, mismatch_limit,
                      progress)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while comparing: a report allocates millions of short-lived, acyclic
    objects (observations, verdicts) that reference counting frees; the collector's passes
    over them cost a fifth of the run. The previous state is restored afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(session: Session, job_ids: Sequence[str], since: datetime, until: datetime,
           now: datetime, timeline_limit: int, mismatch_limit: int,
           progress: Progress | None) -> Report:
    from shadow.fast_report import FastPath  # it builds on this module

    planned = _plan(session, job_ids, since, until)
    fast = FastPath(session, since, until, now, timeline_limit, mismatch_limit)
    total, done = sum(len(p.slots) for p in planned), 0
    reports: list[JobReport] = []
    for last, p in enumerate(planned, 1 - len(planned)):
        for q, report in fast.add(p, flush=not last):
            reports.append(report or _general_job(session, q, since, until, now,
                                                  timeline_limit, mismatch_limit))
            done += len(q.slots)
            if progress is not None:
                progress(q.spec.id, done, total)
    return Report(generated_at=now, since=since, until=until,
                  jobs=tuple(hydrate(session, reports)))


def _general_job(session: Session, p: _Planned, since: datetime, until: datetime,
                 now: datetime, timeline_limit: int, mismatch_limit: int) -> JobReport:
    verdicts = compare_stored(session, p.spec, since, until, now, history=p.history,
                              expected=p.slots, lean=True, before=p.before, members=p.members)
    return job_report(p.spec, verdicts, owner=owner_at(p.history, until),
                      expected=len(p.slots), timeline_limit=timeline_limit,
                      mismatch_limit=mismatch_limit)


def _report_part(url: str, job_ids: Sequence[str], since: datetime, until: datetime,
                 now: datetime, timeline_limit: int, mismatch_limit: int) -> tuple[JobReport, ...]:
    """One worker's share of :func:`build_report_parallel` (its own registry connection)."""
    from bridge.store.db import Registry

    registry = Registry(url, check_schema=False)
    try:
        with registry.session() as session:
            return build_report(session, job_ids, since, until, now,
                                timeline_limit=timeline_limit, mismatch_limit=mismatch_limit).jobs
    finally:
        registry.dispose()


def build_report_parallel(
    session: Session,
    url: str,
    job_ids: Sequence[str],
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    workers: int,
    timeline_limit: int = TIMELINE_LIMIT,
    mismatch_limit: int = MISMATCH_LIMIT,
    progress: Progress | None = None,
) -> Report:
    """:func:`build_report` spread over ``workers`` processes (jobs are independent).

    The jobs are dealt, heaviest first, into ``4 x workers`` parts so the workers stay busy;
    each worker (a fresh process) opens the registry at ``url`` itself. Same result as
    :func:`build_report`; worth it for large windows (a worker costs about a second to
    start)."""
    if until <= since:
        raise InputError("the window is empty: --until must be after --since")
    planned = sorted(_plan(session, job_ids, since, until), key=lambda p: -len(p.slots))
    count = max(1, min(len(planned), workers * 4))
    parts: list[list[_Planned]] = [planned[i::count] for i in range(count)]
    total, done = sum(len(p.slots) for p in planned), 0
    reports: list[JobReport] = []
    # never plain fork: a child must not inherit the parent's open database connections
    context = multiprocessing.get_context("forkserver" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_report_part, url, [p.spec.id for p in part], since, until, now,
                               timeline_limit, mismatch_limit): part for part in parts}
        for future in as_completed(futures):
            reports.extend(future.result())
            done += sum(len(p.slots) for p in futures[future])
            if progress is not None:
                progress(futures[future][-1].spec.id, done, total)
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    reports.sort(key=lambda j: order[j.spec.id])  # the order asked, as build_report
    return Report(generated_at=now, since=since, until=until, jobs=tuple(reports))


# --- JSON (pure) ------------------------------------------------------------------------------


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation_json(obs: RunRecord | None, slot: datetime) -> dict[str, Any] | None:
    if obs is None:
        return None
    fire = obs.fire_time
    return {
        "path": obs.path.value, "role": obs.role.value, "status": obs.status.value,
        "fired_at": _iso(obs.fired_at), "started_at": _iso(obs.started_at),
        "finished_at": _iso(obs.finished_at),
        "lag_seconds": None if fire is None else (fire - slot).total_seconds(),
        "exit_status": obs.exit_status, "task_state": obs.task_state, "attempts": obs.attempts,
        "output_digest": obs.output_digest, "output_sample": obs.output_sample,
        "host": obs.host, "error": obs.error, "record_key": obs.record_key,
    }


def verdict_json(v: SlotVerdict) -> dict[str, Any]:
    return {
        "slot": _iso(v.slot), "verdict": v.verdict.value, "detail": v.detail,
        "basis": v.basis.value, "ignored_by": v.ignored_by, "mismatched": list(v.mismatched),
        "legacy": observation_json(v.legacy, v.slot),
        "celery": observation_json(v.celery, v.slot),
    }


def readiness_json(r: Readiness) -> dict[str, Any]:
    return {"ready": r.ready, "basis": r.basis.value, "required": r.required,
            "evidence": [_iso(s) for s in r.evidence], "reasons": list(r.reasons)}


def job_json(j: JobReport) -> dict[str, Any]:
    s, spec = j.summary, j.spec
    return {
        "job_id": spec.id, "host": spec.host, "dialect": spec.schedule.dialect.value,
        "schedule": schedule_text(spec.schedule), "timezone": spec.schedule.timezone,
        "mapped": spec.mapped, "shadow_mode": spec.policies.shadow_mode.value,
        "owner": j.owner.value, "expected_slots": j.expected, "compared": s.compared,
        "counts": dict(s.counts), "ignored_rules": dict(s.ignored_rules),
        "unresolved": s.unresolved, "first_slot": _iso(s.first_slot),
        "last_slot": _iso(s.last_slot), "readiness": readiness_json(j.readiness),
        "last_mismatch": verdict_json(s.last_mismatch) if s.last_mismatch else None,
        "mismatches": [verdict_json(v) for v in j.mismatches],
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "generated_at": _iso(report.generated_at),
        "window": {"since": _iso(report.since), "until": _iso(report.until)},
        "ok": report.ok,
        "totals": report.totals(),
        "hosts": report.by_host(),
        "jobs": [job_json(j) for j in report.jobs],
    }


def iter_unresolved(report: Report) -> Iterable[JobReport]:
    return (j for j in report.jobs if j.unresolved)
