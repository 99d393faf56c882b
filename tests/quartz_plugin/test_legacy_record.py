"""The generic legacy record API (legacy_wrappers.legacy_record) and its CLI, and the Quartz
ingest's own parts (legacy_wrappers.quartz_ingest): no Java needed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.core.authority import Owner
from bridge.core.errors import InputError, NotFoundError
from bridge.core.runs import digest_output
from bridge.core.spec import CommandHandler, ComparePolicy, Dialect, JobSpec, ScheduleSpec
from bridge.store.db import Registry, upgrade
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo
from legacy_wrappers import quartz_ingest
from legacy_wrappers.legacy_record import record_legacy_run, slot_owner

HOURLY = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def registry(url: str) -> Iterator[Registry]:
    reg = Registry(url, check_schema=False)
    upgrade(reg.engine)
    with reg.session() as s:
        JobRepo(s).upsert(JobSpec(
            id="win.backup", schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="0 * * * *",
                                                   timezone="UTC"),
            handler=CommandHandler(command="backup"),
            compare=ComparePolicy(clean=(r"\d{4}-\d\d-\d\d",)),
        ))
    yield reg
    reg.dispose()


def runs(registry: Registry, job_id: str = "win.backup") -> list[Any]:
    with registry.session() as s:
        return list(RunRepo(s).for_job(job_id))


def test_an_ok_run_is_recorded_once_against_its_slot(registry: Registry) -> None:
    started, finished = HOURLY + timedelta(seconds=2), HOURLY + timedelta(seconds=9)
    first = record_legacy_run(registry, "win.backup", HOURLY, "ok", exit_code=0,
                              started=started, finished=finished, output="done 2026-03-08\n")
    again = record_legacy_run(registry, "win.backup", HOURLY, "ok", exit_code=0)
    assert first.added and not again.added and first.record_key == again.record_key
    [row] = runs(registry)
    assert (row.slot, row.path, row.role, row.status, row.exit_status) == \
        (HOURLY, "legacy", "authoritative", "succeeded", 0)
    assert (row.started_at, row.finished_at, row.fired_at) == (started, finished, started)
    assert row.output_digest == digest_output("done <*>\n") == \
        digest_output("done 2026-03-09\n", (r"\d{4}-\d\d-\d\d",))
    assert row.output_sample == "done 2026-03-08\n"


def test_a_time_shortly_after_a_slot_is_snapped_to_it_and_others_are_refused(
    registry: Registry,
) -> None:
    late = record_legacy_run(registry, "win.backup", HOURLY + timedelta(seconds=75), "failed",
                             exit_code=3)
    assert late.slot == HOURLY and late.given == HOURLY + timedelta(seconds=75)
    [row] = runs(registry)
    assert (row.slot, row.status, row.exit_status, row.fired_at) == \
        (HOURLY, "failed", 3, HOURLY + timedelta(seconds=75))
    with pytest.raises(InputError, match=r"not a slot of the job's schedule.*latest slot before "
                                         r"it: 2026-03-08T07:00:00Z; next: 2026-03-08T08:00:00Z"):
        record_legacy_run(registry, "win.backup", HOURLY + timedelta(seconds=91), "ok")
    with pytest.raises(InputError, match="UTC offset"):
        record_legacy_run(registry, "win.backup", HOURLY.replace(tzinfo=None), "ok")
    with pytest.raises(InputError, match="status must be one of ok, failed, stood-down"):
        record_legacy_run(registry, "win.backup", HOURLY, "succeeded")
    with pytest.raises(NotFoundError, match="no job 'nope'"):
        record_legacy_run(registry, "nope", HOURLY, "ok")


def test_a_stand_down_is_its_own_record_and_the_owner_is_asked_per_slot(
    registry: Registry,
) -> None:
    with registry.session() as s:
        AuthorityRepo(s).append("win.backup", Owner.CELERY, effective_slot=HOURLY,
                                actor="test", reason="test")
    assert slot_owner(registry, "win.backup", HOURLY - timedelta(minutes=60)) == \
        (HOURLY - timedelta(hours=1), "legacy")
    assert slot_owner(registry, "win.backup", HOURLY + timedelta(seconds=30)) == (HOURLY, "celery")
    record_legacy_run(registry, "win.backup", HOURLY, "ok")
    down = record_legacy_run(registry, "win.backup", HOURLY, "stood-down")
    assert down.added and (down.role, down.status) == ("stand-down", "stood-down")
    assert sorted((r.role, r.status) for r in runs(registry)) == [
        ("authoritative", "succeeded"), ("stand-down", "stood-down")]


def test_the_record_cli_records_reads_output_and_reports_json(
    registry: Registry, url: str, cli: Any, tmp_path: Path
) -> None:
    env = {"BRIDGE_DATABASE_URL": url}
    out = tmp_path / "out.txt"
    out.write_text("hello\n")
    res = cli("legacy", "record", "--job", "win.backup", "--slot", "2026-03-08T07:00:30Z",
              "--status", "ok", "--exit-code", "0", "--started", "2026-03-08T07:00:01Z",
              "--finished", "2026-03-08T07:00:05+00:00", "--output-file", str(out), "--json",
              env=env)
    assert res.code == 0, res
    assert res.json() == {"job_id": "win.backup", "slot": "2026-03-08T07:00:00Z",
                          "given": "2026-03-08T07:00:30Z", "role": "authoritative",
                          "status": "succeeded", "record_key": res.json()["record_key"],
                          "added": True}
    again = cli("legacy", "record", "--job", "win.backup", "--slot", "2026-03-08T07:00:00Z",
                "--status", "ok", env=env)
    assert again.code == 0 and "already recorded" in again.out
    [row] = runs(registry)
    assert row.output_sample == "hello\n" and row.exit_status == 0
    bad = cli("legacy", "record", "--job", "win.backup", "--slot", "2026-03-08T07:30:00",
              "--status", "ok", env=env)
    assert bad.code == 2 and "no UTC offset" in bad.err + bad.out
    owner = cli("legacy", "owner", "--job", "win.backup", "--at", "2026-03-08T07:00:10Z",
                "--json", env=env)
    assert owner.json() == {"job_id": "win.backup", "slot": "2026-03-08T07:00:00Z",
                            "owner": "legacy"}


# --- quartz ingest (spool lines exactly as the Java plugin writes them) ------------------------

PLUGIN_LINE = (
    '{"v":1,"source":"quartz","record_key":"quartz:%s","job_id":"win.backup",'
    '"slot":"2026-03-08T07:00:00Z","path":"legacy","role":"authoritative","status":"failed",'
    '"fired_at":"2026-03-08T07:00:00.412Z","attempts":1,"host":"app-1","job_key":"win.backup",'
    '"trigger_key":"win.hourly","fire_instance_id":"17954","started_at":"2026-03-08T07:00:00.42Z",'
    '"finished_at":"2026-03-08T07:00:01Z","error":"java.lang.IllegalStateException: boom '
    '\\"q\\" \\\\ \\n\\u00e9"}\n'
)


def test_quartz_ingest_uploads_once_archives_and_reports_then_resets_drops(
    registry: Registry, url: str, cli: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "quartz-20260308-app-1-p1-0.jsonl").write_text(PLUGIN_LINE % ("a" * 40))
    (spool / "quartz-20260308-app-1-p1-1.jsonl").write_text(
        PLUGIN_LINE % ("b" * 40) + '{"v":1,"source":"quartz","rec')
    assert quartz_ingest.ensure_counter(str(spool))
    (spool / ".dropped").write_bytes(quartz_ingest.counter_text(3))
    env = {"BRIDGE_DATABASE_URL": url}
    res = cli("legacy", "ingest", "--quartz-spool", str(spool), "--json", env=env)
    assert res.code == 1  # records were lost: the operator must see it
    report = res.json()
    assert (report["uploaded"], report["dropped"], report["rejected"]) == (2, 3, 0)
    assert report["kept_partial"] == [str(spool / "quartz-20260308-app-1-p1-1.jsonl")]
    assert os.listdir(spool / "archive") == ["quartz-20260308-app-1-p1-0.jsonl"]
    assert (spool / ".dropped").read_bytes() == quartz_ingest.counter_text(0)
    rows = runs(registry)
    assert {(r.slot, r.status, r.host, r.error) for r in rows} == {
        (HOURLY, "failed", "app-1", 'java.lang.IllegalStateException: boom "q" \\ \n\u00e9')}
    assert rows[0].fired_at == HOURLY + timedelta(milliseconds=412)
    again = cli("legacy", "ingest", "--quartz-spool", str(spool), env=env)
    assert again.code == 0 and "0 record(s) uploaded, 1 already stored" in again.out
    assert "dropped by the plugin since the last ingest: 0" in again.out
    both = cli("legacy", "ingest", env=env)
    assert both.code == 2 and "exactly one of" in both.err + both.out


def test_the_drop_counter_is_fixed_width_and_tolerant() -> None:
    assert quartz_ingest.counter_text(42) == b"dropped 00000000000000000042\n"
    assert quartz_ingest.parse_counter(b"dropped 00000000000000000042\n") == 42
    assert quartz_ingest.parse_counter(b"garbage") == 0
    assert quartz_ingest.take_dropped("/nonexistent/dir") is None


def test_json_written_by_hand_in_java_round_trips_through_the_spool_decoder() -> None:
    from legacy_wrappers.spool import decode

    row = decode((PLUGIN_LINE % ("c" * 40)).encode())
    assert row["error"] == 'java.lang.IllegalStateException: boom "q" \\ \n\u00e9'
    assert row["slot"] == HOURLY and json.loads(PLUGIN_LINE % ("c" * 40))["job_key"] == \
        "win.backup"


@pytest.mark.integration
def test_the_example_wrapper_runs_records_and_stands_down(
    registry: Registry, url: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    with registry.session() as s:
        JobRepo(s).upsert(JobSpec(
            id="loop.job", schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *",
                                                 timezone="UTC"),
            handler=CommandHandler(command="x"),
        ))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_DATABASE_URL=url, BRIDGE=str(Path(sys.executable).with_name("bridge")))
    wrapper = [str(root / "examples" / "legacy-record-wrapper.sh"), "loop.job", "--"]
    marker = tmp_path / "ran"
    run = subprocess.run([*wrapper, "sh", "-c", f"echo hi; echo oops >&2; touch {marker}; exit 3"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (3, "hi\noops\n"), run.stderr
    [row] = runs(registry, "loop.job")
    assert (row.role, row.status, row.exit_status, row.output_sample) == \
        ("authoritative", "failed", 3, "hi\noops\n")
    assert row.slot == row.started_at.replace(second=0) or row.slot < row.started_at

    marker.unlink()
    with registry.session() as s:
        AuthorityRepo(s).append("loop.job", Owner.CELERY, effective_slot=None, actor="test",
                                reason="test")
    down = subprocess.run([*wrapper, "touch", str(marker)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert down.returncode == 0 and not marker.exists(), down.stderr
    assert sorted(r.role for r in runs(registry, "loop.job")) == ["authoritative", "stand-down"]
