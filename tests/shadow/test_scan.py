"""The report's fast path (shadow.scan, shadow.fast_report) gives the general path's reports."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.runs import RunRecord
from bridge.core.spec import JobSpec
from bridge.store import run_scan
from bridge.store.db import Registry
from bridge.store.repos import JobRepo
from bridge.store.runs import record_many
from shadow import report as report_mod
from shadow import scan
from shadow.compare import compare_job, schedule_slots, split_paths
from shadow.fast_report import keep_quiet, sparse_job_report
from shadow.report import build_report
from shadow.report_model import job_report
from tests.shadow.helpers import backdate_imports, make_obs, make_spec, utc

AFTER, UNTIL = utc("2026-03-09T23:30:00Z"), utc("2026-03-10T12:30:00Z")  # 13 hourly slots
LATE_NOW = utc("2026-03-10T14:00:00Z")
SLOTS = [utc(f"2026-03-10T{h:02d}:00:00Z") for h in range(13)]
ODD_SLOTS = [utc("2026-03-10T07:30:00Z"), utc("2026-03-10T13:00:00Z")]  # unexpected; outside
FLIP = [AuthorityEvent("etc-crontab-1", None, Owner.LEGACY, "import", None, False, LATE_NOW),
        AuthorityEvent("etc-crontab-1", utc("2026-03-10T09:00:00Z"), Owner.CELERY, "ops", None,
                       False, LATE_NOW)]
ROLE_STATUS = [
    ("authoritative", "succeeded"), ("authoritative", "failed"), ("shadow", "succeeded"),
    ("shadow", "failed"), ("shadow", "interrupted"), ("shadow", "running"),
    ("authoritative", "running"), ("observe", "observed"), ("stand-down", "stood-down"),
    ("suppressed", "suppressed"), ("scheduler", "missed"), ("scheduler", "skipped"),
    ("observe", "succeeded"), ("shadow", "observed"), ("authoritative", "lost"),
    ("shadow", "lost"),
]
LAGS = [1.0, 1.25, 3.5, 0.0, -2.0, None, 59.995, 60.0, 60.004, 60.02, -59.999, -61.0, 120.0]
COMMON = {  # the usual records of each path before a flip
    "legacy": [("authoritative", "succeeded"), ("authoritative", "failed")],
    "celery": [("shadow", "succeeded"), ("shadow", "failed"), ("shadow", "interrupted"),
               ("observe", "observed")],
}


def _record(draw: Any, path: str, slot: datetime) -> RunRecord:
    role, status = draw(st.sampled_from(COMMON[path]) | st.sampled_from(ROLE_STATUS))
    exit_status = draw(st.sampled_from([0, 1, None]))
    return make_obs(path, slot, role=role, status=status, exit_status=exit_status,
                    lag=draw(st.sampled_from(LAGS[:6]) | st.sampled_from(LAGS)),
                    attempts=draw(st.sampled_from([1, 1, 2])),
                    output_digest=draw(st.sampled_from(["a" * 64, "b" * 64, None])),
                    host=draw(st.sampled_from(["h1", "h2"])))


@st.composite
def streams(draw: Any) -> list[RunRecord]:
    """A job's records: mostly one per path and slot (the quiet case), sometimes none, more,
    odd ones, at instants the schedule lacks."""
    out = []
    for slot in SLOTS + ODD_SLOTS:
        for path in ("legacy", "celery"):
            if slot in ODD_SLOTS:
                count = draw(st.sampled_from([0, 0, 0, 1]))
            else:
                count = draw(st.sampled_from([1, 1, 1, 1, 1, 1, 0, 2]))
            out.extend(_record(draw, path, slot) for _ in range(count))
    return [replace(o, row_id=i) for i, o in enumerate(out)]


def compact(obs: RunRecord, spec: JobSpec) -> scan.CompactRow:
    """What :func:`bridge.store.run_scan.compact_rows`' SQL selects, computed in Python."""
    fire = obs.fired_at or obs.started_at
    limit = max(spec.compare.tolerance_seconds - scan.LAG_MARGIN, -1.0)
    on_time = fire is None or abs((fire - obs.slot).total_seconds()) <= limit
    if obs.role.value in ("authoritative", "shadow") and obs.status.value in (
            "succeeded", "failed", "interrupted"):
        kind = (2 if obs.status.value == "succeeded" else 1) + (
            2 if obs.role.value == "authoritative" else 0)
    elif (obs.role.value, obs.status.value) == ("observe", "observed"):
        kind = 5
    else:
        kind = 0
    code = kind * (scan.CELERY if obs.path.value == "celery" else 1) if on_time else 0
    digest = obs.output_digest if "output_digest" in spec.compare.fields else None
    return (obs.slot, code, obs.exit_status, digest, obs.row_id or 0)


def both_reports(spec: JobSpec, obs: list[RunRecord], now: datetime,
                 history: list[AuthorityEvent], timeline_limit: int,
                 imported: datetime | None = None) -> tuple[Any, Any]:
    slots = schedule_slots(spec, AFTER, UNTIL)
    before = [t for t in slots if imported is not None and t <= imported]
    slots = slots[len(before):]
    legacy, celery = split_paths(obs)
    owner = owner_at(history, UNTIL)
    general = job_report(spec, compare_job(spec, AFTER, UNTIL, now, legacy, celery,
                                           history=history, imported=imported),
                         owner=owner, expected=len(slots), timeline_limit=timeline_limit)
    window = sorted((o for o in obs if AFTER < o.slot <= UNTIL),
                    key=lambda o: (o.slot, o.row_id))
    rows = [compact(o, spec) for o in window]
    keep = keep_quiet(spec, slots, timeline_limit)
    by_id = {o.row_id: o for o in obs}
    job = scan.prepare(spec, slots, rows, {s: i for i, s in enumerate(slots)}, history=history,
                       keep_tail=keep, before=before, imported=imported)
    sparse = scan.finish(job, {i: by_id[i] for i in job.row_ids}, now)
    assert sparse is not None
    fast = sparse_job_report(spec, sparse, owner, expected=len(slots), kept_quiet=keep,
                             timeline_limit=timeline_limit, mismatch_limit=50)
    return fast, general


@pytest.mark.slow(seconds=65)
@pytest.mark.integration
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obs=streams(),
       fields=st.sampled_from([("exit_status",), ("exit_status", "output_digest"), ()]),
       ready_after=st.sampled_from([None, 1, 2, 5]),
       timeline_limit=st.sampled_from([0, 1, 3, 500]),
       now=st.sampled_from([LATE_NOW, utc("2026-03-10T12:03:00Z")]),
       flipped=st.booleans(),
       ignore=st.sampled_from([(), ("verdict=late lag<=300",), ("celery=none",)]))
def test_fast_path_reports_equal_the_general_path(obs, fields, ready_after, timeline_limit,  # type: ignore[no-untyped-def]
                                                  now, flipped, ignore) -> None:
    spec = make_spec(fields=fields, ready_after=ready_after, ignore=ignore)
    fast, general = both_reports(spec, obs, now, FLIP if flipped else [], timeline_limit)
    if fast is None:  # readiness looks past the kept matches: the caller takes the general path
        assert ready_after is None or ready_after > timeline_limit
        return
    assert fast == general


def _random_stream(rnd: random.Random) -> list[RunRecord]:
    out = []
    for slot in SLOTS + ODD_SLOTS:
        for path in ("legacy", "celery"):
            counts = [0, 0, 0, 1] if slot in ODD_SLOTS else [1, 1, 1, 1, 1, 1, 0, 2]
            for _ in range(rnd.choice(counts)):
                role, status = rnd.choice(COMMON[path] * 4 + ROLE_STATUS)
                out.append(make_obs(path, slot, role=role, status=status,
                                    exit_status=rnd.choice([0, 1, None]),
                                    lag=rnd.choice(LAGS[:6] * 2 + LAGS),
                                    attempts=rnd.choice([1, 1, 2]),
                                    output_digest=rnd.choice(["a" * 64, "b" * 64, None]),
                                    host=rnd.choice(["h1", "h2"])))
    return [replace(o, row_id=i) for i, o in enumerate(out)]


@pytest.mark.integration
def test_fast_path_reports_equal_the_general_path_on_seeded_random_streams() -> None:
    rnd = random.Random(2026)
    for _ in range(600):
        spec = make_spec(fields=rnd.choice([("exit_status",), ("exit_status", "output_digest"),
                                            ()]),
                         ready_after=rnd.choice([None, 1, 4]))
        fast, general = both_reports(spec, _random_stream(rnd),
                                     rnd.choice([LATE_NOW, utc("2026-03-10T12:03:00Z")]),
                                     rnd.choice([[], FLIP]), rnd.choice([0, 2]),
                                     rnd.choice([None, None, utc("2026-03-10T03:00:43Z")]))
        assert fast is None or fast == general


def test_quiet_slots_are_left_out_and_counted_as_matches() -> None:
    spec = make_spec()
    obs = [make_obs(p, s) for s in SLOTS for p in ("legacy", "celery")]
    obs = [replace(o, row_id=i) for i, o in enumerate(obs)]
    rows = [compact(o, spec) for o in obs]
    quiet, loud = scan.scan(rows, {s: i for i, s in enumerate(SLOTS)}, spec.compare.fields)
    assert [k for k, _ in quiet] == list(range(len(SLOTS))) and loud == {}
    fast, general = both_reports(spec, obs, LATE_NOW, [], 0)
    assert fast == general and fast.summary.counts["match"] == len(SLOTS)


def test_a_lag_near_the_tolerance_is_left_to_the_general_path() -> None:
    spec = make_spec()
    for lag, quiet in ((59.98, True), (59.995, False), (60.0, False), (-60.0, False)):
        obs = [replace(make_obs("legacy", SLOTS[0]), row_id=1),
               replace(make_obs("celery", SLOTS[0], lag=lag), row_id=2)]
        found, _ = scan.scan([compact(o, spec) for o in obs], {SLOTS[0]: 0}, ("exit_status",))
        assert bool(found) is quiet, lag


# --- through the registry, on SQLite and PostgreSQL -------------------------------------------


def _seed(url: str, rnd: random.Random) -> list[str]:
    reg = Registry(url)
    ids = []
    with reg.session() as s:
        jobs = JobRepo(s)
        for n, fields in enumerate([("exit_status",), ("exit_status", "output_digest"), ()]):
            job_id = f"etc-crontab-{n}"
            jobs.upsert(make_spec(job_id=job_id, fields=fields))
            backdate_imports(s)
            ids.append(job_id)
            rows = []
            for slot in SLOTS + ODD_SLOTS:
                for path in ("legacy", "celery"):
                    count = rnd.choice([1, 1, 1, 1, 0, 2] if slot in SLOTS else [0, 0, 1])
                    for _ in range(count):
                        role, status = rnd.choice(COMMON[path] * 4 + ROLE_STATUS)
                        lag = rnd.choice(LAGS)
                        rows.append(make_obs(
                            path, slot, job_id=job_id, role=role, status=status,
                            exit_status=rnd.choice([0, 0, 1, None]),
                            lag=None if lag is None else lag + rnd.randrange(1000) / 1e6,
                            output_digest=rnd.choice(["a" * 64, "b" * 64, None])))
            record_many(s, rows)
    reg.dispose()
    return ids


@pytest.mark.integration
def test_build_report_equals_the_general_path_on_a_real_registry(  # type: ignore[no-untyped-def]
        db_url, monkeypatch) -> None:
    from sqlalchemy import update

    from bridge.store.models import JobRow

    ids = _seed(db_url, random.Random(5))
    reg = Registry(db_url)
    try:
        with reg.session() as s:  # one job imported inside the window: before_import slots
            s.execute(update(JobRow).where(JobRow.id == ids[0])
                      .values(created_at=utc("2026-03-10T05:00:43Z")))
        with reg.session() as s:
            for limit in (0, 2, 500):
                fast = build_report(s, ids, AFTER, UNTIL, LATE_NOW, timeline_limit=limit)
                with monkeypatch.context() as m:
                    m.setattr(run_scan, "supported", lambda session: False)
                    general = build_report(s, ids, AFTER, UNTIL, LATE_NOW, timeline_limit=limit)
                assert fast.jobs == general.jobs
                assert fast.totals()["counts"]["match"] > 0
                assert fast.jobs[0].summary.counts["before_import"] > 0
    finally:
        reg.dispose()


@pytest.mark.parametrize("jobs", [1, 60])
def test_plan_lists_the_jobs_once_or_looks_each_up(db_url, jobs: int) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(db_url)
    try:
        with reg.session() as s:
            repo = JobRepo(s)
            ids = [f"etc-crontab-{n:02d}" for n in range(jobs)]
            for job_id in ids:
                repo.upsert(make_spec(job_id=job_id))
            planned = report_mod.plan_jobs(s, ids, AFTER, UNTIL)
            assert [p.spec.id for p in planned] == ids
            with pytest.raises(Exception, match="no job 'nope'"):
                report_mod.plan_jobs(s, [*ids, "nope"], AFTER, UNTIL)
    finally:
        reg.dispose()
