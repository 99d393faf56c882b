"""Import, sync and preview through the real CLI, against a real Redis and both databases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT / "examples" / "crontab" / "alice"
QUARTZ = ROOT / "examples" / "quartz" / "jobs.xml"
HANDLERS = ROOT / "examples" / "quartz" / "handlers.toml"


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {
        "BRIDGE_REDIS_URL": redis_url,
        "BRIDGE_DATABASE_URL": db_url,
        "BRIDGE_TIMEZONE": "America/New_York",
    }


def test_dry_run_json_documents_every_job_and_changes_nothing(cli, redis_url, db_url) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    r = cli("import", "crontab", str(ALICE), "--dry-run", "--json", env=env)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["dry_run"] is True and doc["timezone"] == "America/New_York"
    assert doc["errors"] == [] and doc["applied"] is None
    by_id = {j["id"]: j for j in doc["jobs"]}
    billing = by_id["billing-nightly"]
    assert billing["status"] == "create"
    assert billing["source"] == {"file": str(ALICE), "line": 10}
    assert billing["schedule"] == {
        "dialect": "vixie",
        "expression": "30 2 * * *",
        "timezone": "America/New_York",
    }
    assert billing["user"] == "alice"
    assert billing["env"]["MAILTO"]
    assert len(billing["next"]) == 3
    for key in ("command", "stdin", "reason", "changed"):
        assert key in billing
    statuses = {j["status"] for j in doc["jobs"]}
    assert {"create", "unsupported", "disabled"} <= statuses
    assert cli("jobs", "list", "--json", env=env).json() == {"jobs": []}


def test_apply_is_idempotent_then_updates_and_prunes(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    src = tmp_path / "ops"
    src.write_text(
        "MAILTO=ops\n0 5 * * * /bin/echo one\n# bridge: id=two\n0 6 * * * /bin/echo two\n"
    )
    r = cli("import", "crontab", str(src), "--user", "ops", "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["applied"] == {"created": 2, "updated": 0, "deleted": 0}
    assert r.json()["sync"]["created"] == ["ops-crontab-1", "two"]
    r = cli("import", "crontab", str(src), "--user", "ops", "--json", env=env)
    assert r.json()["summary"]["unchanged"] == 2 and r.json()["applied"]["created"] == 0
    src.write_text("MAILTO=ops\n0 7 * * * /bin/echo one\n")
    r = cli("import", "crontab", str(src), "--user", "ops", "--json", env=env)
    doc = r.json()
    by_id = {j["id"]: j for j in doc["jobs"]}
    assert by_id["ops-crontab-1"]["status"] == "update"
    assert by_id["ops-crontab-1"]["changed"] == ["schedule.expression", "source.raw"]
    assert by_id["two"]["status"] == "delete"
    assert doc["sync"]["deleted"] == ["two"]
    ids = [j["id"] for j in cli("jobs", "list", "--json", env=env).json()["jobs"]]
    assert ids == ["ops-crontab-1"]


def test_no_prune_keeps_vanished_jobs(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    src = tmp_path / "ops"
    src.write_text("0 5 * * * /bin/echo one\n0 6 * * * /bin/echo two\n")
    cli("import", "crontab", str(src), "--user", "ops", env=env)
    src.write_text("0 5 * * * /bin/echo one\n")
    r = cli("import", "crontab", str(src), "--user", "ops", "--no-prune", "--json", env=env)
    assert "delete" not in {j["status"] for j in r.json()["jobs"]}
    assert len(cli("jobs", "list", "--json", env=env).json()["jobs"]) == 2


def test_a_rejected_line_imports_nothing_and_exits_2(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("0 5 * * * /bin/echo ok\n")
    bad.write_text("0 5 * * * /bin/echo ok\n61 * * * * /bin/echo broken\n")
    r = cli("import", "crontab", str(good), str(bad), "--user", "ops", "--json", env=env)
    assert r.code == 2
    doc = r.json()
    assert doc["errors"] == [
        {"file": str(bad), "line": 2, "message": "minute 61 out of range 0-59 in '61'"}
    ]
    statuses = {(j["source"]["file"], j["status"]) for j in doc["jobs"]}
    assert (str(bad), "inactive") in statuses and (str(bad), "error") in statuses
    assert doc["applied"] is None
    assert cli("jobs", "list", "--json", env=env).json() == {"jobs": []}
    r = cli("import", "crontab", str(good), str(bad), "--user", "ops", env=env)
    assert r.code == 2 and f"{bad}:2: minute 61 out of range 0-59 in '61'" in r.err
    assert "nothing was imported" in r.err
    r = cli(
        "import",
        "crontab",
        str(good),
        str(bad),
        "--user",
        "ops",
        "--allow-errors",
        "--json",
        env=env,
    )
    assert r.code == 1 and r.json()["applied"]["created"] == 1


def test_quartz_import_reports_trigger_misfire_class_and_handler(cli, redis_url, db_url) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    r = cli("import", "quartz", str(QUARTZ), "--handlers", str(HANDLERS), "--json", env=env)
    assert r.code == 0, r.err
    jobs = {j["id"]: j for j in r.json()["jobs"]}
    run = jobs["billing.invoice-run"]
    for key in ("trigger", "misfire", "job_class", "handler"):
        assert key in run, key
    assert run["trigger"]["type"] == "cron"
    assert jobs["legacy.ldap-sync"]["mapped"] is False
    r = cli("import", "quartz", str(QUARTZ), "--handlers", str(HANDLERS), "--json", env=env)
    assert r.json()["summary"]["unchanged"] == len(jobs)


def test_missing_file_and_bad_dialect_are_one_line_exit_2(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    r = cli("import", "crontab", "/nonexistent/crontab", env={"BRIDGE_DATABASE_URL": db_url})
    assert r.code == 2 and r.err.strip() == "error: /nonexistent/crontab: no such file"
    r = cli(
        "import", "crontab", str(ALICE), "--dialect", "bsd", env={"BRIDGE_DATABASE_URL": db_url}
    )
    assert r.code == 2 and "unknown dialect 'bsd'" in r.err


def test_sync_check_finds_drift_and_sync_repairs_it(cli, redis_url, db_url) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    assert cli("import", "crontab", str(ALICE), env=env).code == 0
    assert cli("sync", "--check", env=env).code == 0
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.delete("{bridge}:billing-nightly")
    client.zrem("{bridge}::schedule", "{bridge}:alice-crontab-2")
    r = cli("sync", "--check", "--json", env=env)
    assert r.code == 1
    assert r.json()["created"] == ["billing-nightly"] and r.json()["rescored"] == [
        "alice-crontab-2"
    ]
    assert client.exists("{bridge}:billing-nightly") == 0
    r = cli("sync", "--json", env=env)
    assert r.code == 0 and r.json()["drift"] is True
    assert cli("sync", "--check", env=env).code == 0
    score = client.zscore("{bridge}::schedule", "{bridge}:billing-nightly")
    assert score is not None and score > 0


def test_import_with_redis_down_updates_registry_and_exits_3(cli, db_url) -> None:  # type: ignore[no-untyped-def]
    from tests.support import free_port

    env = {"BRIDGE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "BRIDGE_DATABASE_URL": db_url}
    r = cli("import", "crontab", str(ALICE), env=env)
    assert r.code == 3
    assert "registry updated but RedBeat sync failed" in r.err and "bridge sync" in r.err
    jobs = cli("jobs", "list", "--json", env=env).json()["jobs"]
    assert len(jobs) == 6  # the six schedulable lines of examples/crontab/alice


def test_preview_shows_debian_dst_behaviour_and_json_errors(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "schedule",
        "preview",
        "--expr",
        "30 2 * * *",
        "--timezone",
        "America/New_York",
        "--after",
        "2026-03-07T12:00:00",
        "--count",
        "2",
        "--json",
    )
    assert r.json() == {"slots": ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]}
    r = cli(
        "schedule",
        "preview",
        "--dialect",
        "quartz",
        "--expr",
        "0 30 2 * * ?",
        "--timezone",
        "America/New_York",
        "--after",
        "2026-03-07T12:00:00",
        "--count",
        "2",
        "--json",
    )
    assert r.json() == {"slots": ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]}
    r = cli("schedule", "preview", "--expr", "61 * * * *", "--timezone", "UTC", "--json")
    assert r.code == 2 and "minute 61 out of range" in r.json()["error"]


@pytest.mark.integration
def test_preview_batch_handles_ten_thousand_lines_in_one_process(tmp_path: Path) -> None:
    cases = []
    for i in range(10_000):
        if i % 1000 == 999:
            cases.append({"dialect": "vixie", "expr": "bad", "timezone": "UTC"})
        elif i % 2:
            cases.append(
                {
                    "dialect": "quartz",
                    "expr": f"0 {i % 60} 2 * * ?",
                    "timezone": "Europe/Berlin",
                    "after": "2026-03-28T00:00:00Z",
                    "count": 3,
                }
            )
        else:
            cases.append(
                {
                    "dialect": "vixie",
                    "expr": f"{i % 60} 2 * * *",
                    "timezone": "America/New_York",
                    "after": "2026-03-07T00:00:00Z",
                    "count": 3,
                }
            )
    src = tmp_path / "cases.jsonl"
    src.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "bridge.cli.main", "schedule", "preview", "--batch", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = r.stdout.splitlines()
    assert len(lines) == 10_000
    assert r.returncode == 2  # ten bad lines
    results = [json.loads(line) for line in lines]
    assert sum("error" in x for x in results) == 10
    assert results[999]["error"].startswith("line 1000: ")
    assert results[0] == {
        "slots": [
            "2026-03-07T02:00:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:00:00-04:00",
        ]
    }
    assert results[1]["slots"][1] == "2026-03-30T02:01:00+02:00"  # Quartz skips 29 Mar 02:01


def test_legacy_rewrite_then_check_detects_drift(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    src = tmp_path / "ops"
    src.write_text("MAILTO=ops\n0 5 * * * /bin/echo one%stdin\n@reboot /bin/true\n")
    assert cli("import", "crontab", str(src), "--user", "ops", env=env).code == 0
    installed = tmp_path / "installed"
    r = cli(
        "legacy",
        "rewrite",
        str(src),
        "--out",
        str(installed),
        "--shim",
        "/opt/bridge/bin/bridge-cron-shell",
        "--json",
        env=env,
    )
    assert r.code == 0, r.err
    assert r.json()["managed"] == ["ops-crontab-1"]
    text = installed.read_text()
    assert "SHELL=/opt/bridge/bin/bridge-cron-shell\nBRIDGE_JOB=ops-crontab-1\n0 5 * * *" in text
    r = cli("legacy", "rewrite", str(installed), "--source", str(src), "--check", "--json", env=env)
    assert r.code == 0 and r.json()["ok"] is True
    installed.write_text(text.replace("/bin/echo one", "/bin/echo ONE"))
    r = cli("legacy", "rewrite", str(installed), "--source", str(src), "--check", "--json", env=env)
    assert r.code == 1
    assert r.json()["drift"] == [{"job_id": "ops-crontab-1", "line": 5, "what": "command"}]
    from bridge.store.audit import AuditRepo
    from bridge.store.db import Registry

    reg = Registry(db_url)
    with reg.session() as s:
        assert "rewrite" in [e.action for e in AuditRepo(s).query()]
    reg.dispose()
