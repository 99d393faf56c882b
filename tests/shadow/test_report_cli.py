"""``bridge shadow report`` / ``calibrate`` through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.core.runs import digest_output
from bridge.store.db import Registry
from bridge.store.repos import JobRepo
from bridge.store.runs import record_many
from shadow.report_json import SCHEMA
from tests.shadow.helpers import backdate_imports, make_obs, make_spec, utc

SINCE, UNTIL = "2026-03-10T00:00:00Z", "2026-03-10T06:00:00Z"  # hourly: 01:00 .. 06:00
JOB_FIELDS = {
    "job_id", "host", "dialect", "schedule", "timezone", "mapped", "shadow_mode", "owner",
    "expected_slots", "compared", "counts", "ignored_rules", "unresolved", "first_slot",
    "last_slot", "readiness", "last_mismatch", "mismatches",
}
OBS_FIELDS = {
    "path", "role", "status", "fired_at", "started_at", "finished_at", "lag_seconds",
    "exit_status", "task_state", "attempts", "output_digest", "output_sample", "host", "error",
    "record_key",
}


def seed(url: str) -> None:
    """Two jobs: `etc-crontab-good` always matches, `etc-crontab-bad` mismatches at 04:00."""
    reg = Registry(url)
    slots = [utc(SINCE) + timedelta(hours=h) for h in range(1, 7)]
    with reg.session() as s:
        jobs = JobRepo(s)
        for job_id in ("etc-crontab-good", "etc-crontab-bad"):
            jobs.upsert(make_spec(job_id=job_id, ignore=("verdict=late lag<=300",)))
        backdate_imports(s)
        rows = []
        for job_id in ("etc-crontab-good", "etc-crontab-bad"):
            for slot in slots:
                bad = job_id.endswith("bad") and slot.hour == 4
                rows.append(make_obs("legacy", slot, job_id=job_id, output_sample="done\n",
                                     record_key=f"{job_id}/{slot:%H}/l"))
                rows.append(make_obs("celery", slot, job_id=job_id, exit_status=2 if bad else 0,
                                     status="failed" if bad else "succeeded",
                                     output_sample="boom\n" if bad else "done\n",
                                     error="exit 2" if bad else None,
                                     lag=120 if slot.hour == 2 else 1.0,
                                     record_key=f"{job_id}/{slot:%H}/c"))
        record_many(s, rows)
    reg.dispose()


def env(url: str) -> dict[str, str]:
    return {"BRIDGE_DATABASE_URL": url}


def report(cli, url: str, *args: str):  # type: ignore[no-untyped-def]
    return cli("shadow", "report", "--since", SINCE, "--until", UNTIL, *args, env=env(url))


def test_json_report_has_the_documented_fields_and_exits_1_on_a_mismatch(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    seed(db_url)
    r = report(cli, db_url, "--json")
    assert r.code == 1, r.err
    doc = r.json()
    assert doc["schema"] == SCHEMA and doc["ok"] is False
    assert doc["window"] == {"since": SINCE, "until": UNTIL}
    assert doc["totals"]["jobs"] == 2 and doc["totals"]["jobs_with_unresolved"] == 1
    bad, good = doc["jobs"]  # ordered by job id
    assert set(bad) == JOB_FIELDS and bad["job_id"] == "etc-crontab-bad"
    assert bad["counts"] == {"match": 4, "missing_celery": 0, "missing_legacy": 0, "late": 0,
                             "duplicate": 0, "outcome_mismatch": 1, "pending": 0,
                             "unexpected_slot": 0, "before_import": 0, "lost": 0,
                             "ignored": 1}
    assert bad["ignored_rules"] == {"verdict=late lag<=300": 1}
    assert bad["readiness"]["ready"] is False  # last 3 decided: 04:00 (mismatch), 05, 06
    assert bad["readiness"]["evidence"][0] == "2026-03-10T04:00:00Z"
    last = bad["last_mismatch"]
    assert last["slot"] == "2026-03-10T04:00:00Z" and last["verdict"] == "outcome_mismatch"
    assert set(last["legacy"]) == OBS_FIELDS and set(last["celery"]) == OBS_FIELDS
    assert last["celery"]["exit_status"] == 2 and last["celery"]["error"] == "exit 2"
    assert last["celery"]["output_sample"] == "boom\n"  # full record fetched for display
    assert last["legacy"]["lag_seconds"] == 1.0
    assert [m["verdict"] for m in bad["mismatches"]] == ["late", "outcome_mismatch"]
    assert good["unresolved"] == 0 and good["readiness"]["basis"] == "outcome"


def test_report_of_a_clean_job_exits_0_and_glob_selects_jobs(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    seed(db_url)
    r = report(cli, db_url, "--job", "etc-crontab-good", "--format", "json")
    assert r.code == 0, r.err
    assert [j["job_id"] for j in r.json()["jobs"]] == ["etc-crontab-good"]
    r = report(cli, db_url, "--job", "etc-crontab-*", "--json")
    assert [j["job_id"] for j in r.json()["jobs"]] == ["etc-crontab-bad", "etc-crontab-good"]


@pytest.mark.integration  # a pool of worker processes
def test_workers_give_the_same_report(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    seed(db_url)
    serial = report(cli, db_url, "--json")
    parallel = report(cli, db_url, "--json", "--workers", "2")
    assert parallel.code == serial.code == 1
    assert parallel.json()["jobs"] == serial.json()["jobs"]


def test_unknown_job_exits_2_with_one_line(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    seed(db_url)
    for name in ("nope", "nope-*"):
        r = report(cli, db_url, "--job", name)
        assert r.code == 2
        lines = [line for line in r.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: no job") and name in lines[0]
        assert "Traceback" not in r.err


def test_bad_window_exits_2(cli, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    r = cli("shadow", "report", "--since", "2026-03-10T06:00:00Z", "--until",
            "2026-03-10T00:00:00Z", env=env(sqlite_url))
    assert r.code == 2 and "window is empty" in r.err
    r = cli("shadow", "report", "--since", "last tuesday", env=env(sqlite_url))
    assert r.code == 2 and "bad time 'last tuesday'" in r.err


def test_table_report_names_jobs_and_the_last_mismatch(cli, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    seed(sqlite_url)
    r = report(cli, sqlite_url)
    assert r.code == 1
    assert "etc-crontab-good" in r.out and "etc-crontab-bad" in r.out
    assert "etc-crontab-bad: outcome_mismatch at 2026-03-10T04:00:00+00:00" in r.out
    assert "1 unresolved mismatch(es) in 1 job(s)" in r.out


def test_html_report_is_written_to_a_self_contained_file(cli, sqlite_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(sqlite_url)
    target = tmp_path / "shadow.html"
    r = report(cli, sqlite_url, "--format", "html", "--out", str(target))
    assert r.code == 1
    assert f"wrote {target}: 2 job(s), 1 with unresolved mismatches" in r.out
    page = target.read_text()
    assert page.startswith("<!doctype html>") and "etc-crontab-bad" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "<link" not in page and "src=" not in page


def test_json_out_file(cli, sqlite_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(sqlite_url)
    target = tmp_path / "r.json"
    r = report(cli, sqlite_url, "--json", "--out", str(target), "--job", "etc-crontab-good")
    assert r.code == 0
    assert json.loads(target.read_text())["ok"] is True


def test_calibrate_reports_legacy_noise_as_json(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(db_url)
    with reg.session() as s:
        JobRepo(s).upsert(make_spec(job_id="etc-cron.d-backup-1"))
        backdate_imports(s)
        rows = []
        for h in range(1, 7):
            slot = utc(SINCE) + timedelta(hours=h)
            text = f"{slot.isoformat()} backup[{300 + h}] ok\n"
            rows.append(make_obs("legacy", slot, job_id="etc-cron.d-backup-1",
                                 output_sample=text, output_digest=digest_output(text)))
        record_many(s, rows)
    reg.dispose()
    r = cli("shadow", "calibrate", "etc-cron.d-backup-1", "--since", SINCE, "--until", UNTIL,
            "--json", env=env(db_url))
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["runs"] == 6 and doc["output"]["differing"] == 5
    assert doc["output_differing_after"] == 0
    assert [p["name"] for p in doc["proposals"]] == ["iso-timestamp", "pid"]
    assert doc["exit_status"]["rate"] == 0.0
    r = cli("shadow", "calibrate", "etc-cron.d-backup-1", "--since", SINCE, "--until", UNTIL,
            env=env(db_url))
    assert r.code == 0 and "proposed compare.clean" in r.out
    r = cli("shadow", "calibrate", "nope", env=env(db_url))
    assert r.code == 2 and "no job 'nope'" in r.err
