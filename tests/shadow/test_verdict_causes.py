"""Verdicts name the real cause (issue #14.6, #20): a firing before the job's import is
``before_import`` (not ``unexpected_slot``), a run whose holder died is ``lost`` (not a failure,
not a miss); on a real registry (SQLite and PostgreSQL), through the report, its JSON, table and
HTML, and the readiness gate."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from bridge.core.authority import Owner
from bridge.store.db import Registry
from bridge.store.models import JobRow
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo, record_many
from shadow.compare import compare_job
from shadow.report import build_report
from shadow.report_json import to_json
from shadow.verdicts import Verdict
from tests.shadow.helpers import make_obs, make_spec, utc

IMPORTED = utc("2026-12-04T16:07:43Z")  # the import minute of the PostgreSQL case
SINCE, UNTIL, NOW = utc("2026-12-04T16:00:00Z"), utc("2026-12-04T16:12:00Z"), \
    utc("2026-12-04T17:00:00Z")
LOST_NOTE = "outcome unknown: worker died mid-run (holder w1:4242); not run again (policy skip)"


def _seed_import_minute(url: str) -> None:
    """An every-minute job imported at 16:07:43; legacy fired for 16:07:00 (the import minute),
    then both paths for 16:08 .. 16:12."""
    reg = Registry(url)
    with reg.session() as s:
        JobRepo(s).upsert(make_spec("* * * * *", job_id="pg-case"))
        s.execute(update(JobRow).where(JobRow.id == "pg-case").values(created_at=IMPORTED))
        rows = [make_obs("legacy", utc("2026-12-04T16:07:00Z"), job_id="pg-case", lag=0.4)]
        for minute in range(8, 13):
            slot = utc(f"2026-12-04T16:{minute:02d}:00Z")
            rows += [make_obs("legacy", slot, job_id="pg-case"),
                     make_obs("celery", slot, job_id="pg-case")]
        record_many(s, rows)
    reg.dispose()


def test_a_firing_of_the_import_minute_is_before_import_not_unexpected(db_url: str) -> None:
    _seed_import_minute(db_url)
    reg = Registry(db_url)
    with reg.session() as s:
        report = build_report(s, ["pg-case"], SINCE, UNTIL, NOW, timeline_limit=50)
    reg.dispose()
    job = report.jobs[0]
    counts = job.summary.counts
    assert counts["before_import"] == 1 and counts["unexpected_slot"] == 0
    assert counts["missing_legacy"] == 0 and counts["match"] == 5
    assert job.expected == 5 and job.summary.unresolved == 0 and report.ok
    point = next(p for p in job.timeline if p.slot == utc("2026-12-04T16:07:00Z"))
    assert point.verdict is Verdict.BEFORE_IMPORT
    assert "before the job was imported (2026-12-04T16:07:43Z)" in point.detail
    assert "schedule does not contain" not in point.detail
    assert to_json(report)["jobs"][0]["counts"]["before_import"] == 1


def test_the_general_path_names_the_import_minute_alike() -> None:
    spec = make_spec("* * * * *", job_id="pg-case")
    legacy = [make_obs("legacy", "2026-12-04T16:07:00Z", job_id="pg-case"),
              make_obs("legacy", "2026-12-04T16:08:00Z", job_id="pg-case")]
    celery = [make_obs("celery", "2026-12-04T16:08:00Z", job_id="pg-case")]
    verdicts = compare_job(spec, SINCE, utc("2026-12-04T16:08:00Z"), NOW, legacy, celery,
                           imported=IMPORTED)
    assert [(v.slot.minute, v.verdict) for v in verdicts] == [
        (7, Verdict.BEFORE_IMPORT), (8, Verdict.MATCH)]
    odd = [make_obs("legacy", "2026-12-04T16:05:30Z", job_id="pg-case")]  # never a slot
    verdicts = compare_job(spec, SINCE, utc("2026-12-04T16:06:00Z"), NOW, odd, [],
                           imported=IMPORTED)
    assert [v.verdict for v in verdicts] == [Verdict.UNEXPECTED_SLOT]


def _seed_lost(url: str) -> None:
    """A Celery-owned hourly job: 01:00 .. 05:00 ran, 03:00 was lost with its worker; the row
    is written through the registry API as the worker's recovery writes it."""
    reg = Registry(url)
    with reg.session() as s:
        JobRepo(s).upsert(make_spec(job_id="lost-job", ready_after=2))
        s.execute(update(JobRow).values(created_at=utc("2026-03-01T00:00:00Z")))
        AuthorityRepo(s).append("lost-job", Owner.CELERY,
                                effective_slot=utc("2026-03-09T00:00:00Z"), actor="test",
                                reason="test")
        runs = RunRepo(s)
        for hour in range(1, 6):
            slot = utc(f"2026-03-10T{hour:02d}:00:00Z")
            started = slot + timedelta(seconds=1)
            runs.add(job_id="lost-job", slot=slot, path="legacy", role="stand-down",
                     status="stood-down", fired_at=slot)
            if hour == 3:
                runs.add(job_id="lost-job", slot=slot, path="celery", role="authoritative",
                         status="lost", started_at=started, error=LOST_NOTE, attempts=1)
            else:
                runs.add(job_id="lost-job", slot=slot, path="celery", role="authoritative",
                         status="succeeded", started_at=started,
                         finished_at=started + timedelta(seconds=2), exit_status=0)
    reg.dispose()


def _lost_report(url: str, until: datetime = utc("2026-03-10T05:30:00Z")):  # type: ignore[no-untyped-def]
    reg = Registry(url)
    with reg.session() as s:
        report = build_report(s, ["lost-job"], utc("2026-03-10T00:00:00Z"), until,
                              utc("2026-03-10T12:00:00Z"))
    reg.dispose()
    return report


def test_a_lost_run_is_its_own_verdict_not_a_failure_or_a_miss(db_url: str) -> None:
    _seed_lost(db_url)
    report = _lost_report(db_url)
    job = report.jobs[0]
    c = job.summary.counts
    assert c["lost"] == 1 and c["match"] == 4
    assert c["missing_celery"] == c["missing_legacy"] == c["outcome_mismatch"] == 0
    assert job.summary.unresolved == 1 and not report.ok
    v = job.summary.last_mismatch
    assert v is not None and v.verdict is Verdict.LOST
    assert v.slot == utc("2026-03-10T03:00:00Z") and "lost" in v.detail
    doc = to_json(report)["jobs"][0]
    assert doc["last_mismatch"]["verdict"] == "lost"
    assert doc["last_mismatch"]["celery"]["status"] == "lost"
    assert doc["last_mismatch"]["celery"]["error"].startswith("outcome unknown")
    assert doc["last_mismatch"]["detail"] == f"celery authoritative run lost: {LOST_NOTE}"


def test_readiness_treats_a_lost_slot_as_a_finding() -> None:
    from shadow.readiness import readiness

    spec = make_spec(job_id="j", ready_after=2)
    slots = [f"2026-03-10T{h:02d}:00:00Z" for h in range(1, 5)]
    legacy = [make_obs("legacy", s, job_id="j") for s in slots]
    celery = [make_obs("celery", s, job_id="j") for s in slots[:3]]
    celery.append(make_obs("celery", slots[3], job_id="j", status="lost", exit_status=None,
                           error=LOST_NOTE))
    verdicts = compare_job(spec, utc("2026-03-10T00:00:00Z"), utc("2026-03-10T04:00:00Z"),
                           utc("2026-03-10T12:00:00Z"), legacy, celery)
    assert verdicts[-1].verdict is Verdict.LOST
    r = readiness(spec, verdicts)
    assert not r.ready and any("lost at 2026-03-10T04:00:00" in x for x in r.reasons)
    # a later attempt that executed the slot supersedes the lost record
    again = make_obs("celery", slots[3], job_id="j", attempts=2)
    verdicts = compare_job(spec, utc("2026-03-10T00:00:00Z"), utc("2026-03-10T04:00:00Z"),
                           utc("2026-03-10T12:00:00Z"), legacy, [*celery, again])
    assert verdicts[-1].verdict is Verdict.MATCH and readiness(spec, verdicts).ready


def test_the_table_and_html_reports_show_lost_distinctly(cli, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _seed_lost(db_url)
    env = {"BRIDGE_DATABASE_URL": db_url}
    args = ("shadow", "report", "--since", "2026-03-10T00:00:00Z", "--until",
            "2026-03-10T05:30:00Z")
    r = cli(*args, env=env)
    assert r.code == 1, r.err
    assert "lost 1" in r.out
    assert "lost-job: lost at 2026-03-10T03:00:00+00:00: celery authoritative run lost" in r.out
    page = tmp_path / "r.html"
    r = cli(*args, "--format", "html", "--out", str(page), env=env)
    assert r.code == 1, r.err
    assert "lost (outcome unknown)" in page.read_text()


def test_a_lost_shadow_run_makes_the_job_not_ready_for_a_flip_and_force_overrides(
        cli, db_url) -> None:  # type: ignore[no-untyped-def]
    """The readiness gate: a lost slot is a finding (not ready; its outcome proves nothing
    either way, so a forced flip with a reason may override it, unlike a disagreement)."""
    from datetime import UTC

    from tests.authority.test_authority_cli import env, matched_history, setup_jobs

    spec = make_spec("*/5 * * * *", job_id="j1")
    registry = setup_jobs(db_url, spec)
    now = datetime.now(UTC)
    matched_history(registry, spec, 24, now)
    with registry.session() as s:  # the newest slot's Celery shadow run died with its worker
        newest = max(r.slot for r in RunRepo(s).for_job("j1"))
        RunRepo(s).add(job_id="j1", slot=newest, path="celery", role="shadow", status="lost",
                       started_at=newest + timedelta(seconds=1), attempts=2, error=LOST_NOTE)
    registry.dispose()
    r = cli("authority", "flip", "j1", "--to", "celery", "--json", env=env(db_url))
    assert r.code == 1, r.out + r.err
    (refusal,) = r.json()["refused"]
    assert refusal["kind"] == "not-ready" and "lost at" in refusal["message"]
    r = cli("authority", "flip", "j1", "--to", "celery", "--force", "--reason", "known kill",
            env=env(db_url))
    assert r.code == 0, r.out + r.err
