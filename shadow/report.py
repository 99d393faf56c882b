"""Shadow reports: per job, what was expected, what each path did, the verdicts, readiness.

:func:`build_report` is the service: it reads the registry (specs, authority, records), one job
at a time; slots that trivially match are recognised on compact rows by
:mod:`shadow.fast_report` / :mod:`shadow.scan`, the rest judged from full records. What a report
holds is :mod:`shadow.report_model`; it renders as a table (the CLI), JSON
(:mod:`shadow.report_json`, whose docstring documents the document) or a self-contained HTML
page (:mod:`shadow.report_html`).
"""

from __future__ import annotations

import bisect
import fnmatch
import multiprocessing
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bridge.core.authority import AuthorityEvent, owner_at
from bridge.core.collector import paused_collector
from bridge.core.errors import InputError, NotFoundError
from bridge.core.runs import RunRecord, Status
from bridge.core.spec import JobSpec, ScheduleSpec
from bridge.store.db import Registry, Session
from bridge.store.fleet import FleetRepo
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import by_row_id, query
from shadow.compare import (
    SlotVerdict,
    Verdict,
    compare_job,
    lost_detail,
    schedule_slots,
    split_paths,
)
from shadow.fast_report import FastPath
from shadow.group import annotate, fold_members
from shadow.report_model import (
    MISMATCH_LIMIT,
    TIMELINE_LIMIT,
    JobReport,
    Planned,
    Progress,
    Report,
    job_report,
)

RELATIVE = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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


def plan_jobs(session: Session, job_ids: Sequence[str], since: datetime,
              until: datetime) -> list[Planned]:
    """Each job's spec, authority history and expected slots of ``(since, until]`` (none at
    or before its import: those go to ``before``)."""
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
            cache[spec.schedule] = schedule_slots(spec, since, until)
        slots = cache[spec.schedule]
        before: list[datetime] = []
        imported = None
        if stored.created_at > since:  # nothing could observe a slot before the import
            imported = stored.created_at
            split = bisect.bisect_right(slots, imported)
            slots, before = slots[split:], slots[:split]
        planned.append(Planned(spec, histories.get(job_id, []), slots, before, imported,
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
    without output samples and errors, see :func:`bridge.store.runs.query`). No slot before the
    job's import is expected: nothing could have observed it; a firing at such a slot is
    ``before_import`` (see :func:`shadow.compare.compare_job`). A consolidation group's legacy
    side is its members' (``members``, looked up when None; see :mod:`shadow.group`)."""
    stored = JobRepo(session).get(spec.id)
    imported = stored.created_at if stored is not None else None
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
    with paused_collector():  # millions of short-lived acyclic objects: see bridge.core.collector
        return _build(session, job_ids, since, until, now, timeline_limit, mismatch_limit,
                      progress)


def _build(session: Session, job_ids: Sequence[str], since: datetime, until: datetime,
           now: datetime, timeline_limit: int, mismatch_limit: int,
           progress: Progress | None) -> Report:
    planned = plan_jobs(session, job_ids, since, until)
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


def _general_job(session: Session, p: Planned, since: datetime, until: datetime,
                 now: datetime, timeline_limit: int, mismatch_limit: int) -> JobReport:
    verdicts = compare_stored(session, p.spec, since, until, now, history=p.history,
                              expected=p.slots, lean=True, before=p.before, members=p.members)
    return job_report(p.spec, verdicts, owner=owner_at(p.history, until),
                      expected=len(p.slots), timeline_limit=timeline_limit,
                      mismatch_limit=mismatch_limit)


def _report_part(url: str, job_ids: Sequence[str], since: datetime, until: datetime,
                 now: datetime, timeline_limit: int, mismatch_limit: int) -> tuple[JobReport, ...]:
    """One worker's share of :func:`build_report_parallel` (its own registry connection)."""
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
    planned = sorted(plan_jobs(session, job_ids, since, until), key=lambda p: -len(p.slots))
    count = max(1, min(len(planned), workers * 4))
    parts: list[list[Planned]] = [planned[i::count] for i in range(count)]
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
