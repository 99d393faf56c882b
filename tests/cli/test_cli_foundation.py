"""The CLI's contract: --json documents, exit codes, one-line errors, masked URLs."""

from __future__ import annotations

import subprocess
import sys

from bridge.spec import CommandHandler, JobSpec, ScheduleSpec, SourceLocation
from bridge.store.db import Registry
from bridge.store.repos import JobRepo


def seed(db_url: str, n: int = 2) -> None:
    reg = Registry(db_url)
    with reg.session() as s:
        for i in range(1, n + 1):
            JobRepo(s).upsert(
                JobSpec(
                    id=f"etc-crontab-{i}",
                    schedule=ScheduleSpec(
                        dialect="vixie", expression=f"{i} * * * *", timezone="UTC"
                    ),
                    handler=CommandHandler(command=f"echo {i}"),
                    source=SourceLocation("/etc/crontab", i),
                )
            )
    reg.dispose()


def test_status_json_reports_redis_database_and_job_count(cli, redis_url: str, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed(db_url)
    r = cli("status", "--json", env={"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url})
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["redis"]["ok"] is True and doc["redis"]["url"] == redis_url
    assert doc["database"]["ok"] is True
    assert doc["jobs"] == 2
    assert doc["redis"]["version"]


def test_status_with_redis_down_exits_3_naming_masked_url(cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    url = f"redis://:sup3rsecret@127.0.0.1:{free_port()}/0"
    r = cli("status", env={"BRIDGE_REDIS_URL": url, "BRIDGE_DATABASE_URL": sqlite_url})
    assert r.code == 3
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "Redis unreachable at redis://:***@127.0.0.1" in lines[0]
    assert "sup3rsecret" not in r.err + r.out
    r = cli("status", "--json", env={"BRIDGE_REDIS_URL": url, "BRIDGE_DATABASE_URL": sqlite_url})
    assert r.code == 3 and r.json()["redis"]["ok"] is False  # type: ignore[index]


def test_status_with_database_down_exits_3(cli, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    url = "postgresql://bridge:pw0rd@127.0.0.1:1/none"
    r = cli("status", env={"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": url})
    assert r.code == 3
    assert "database unreachable at postgresql+psycopg://bridge:***@127.0.0.1:1/none" in r.err
    assert "pw0rd" not in r.err + r.out


def test_jobs_list_and_show(cli, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed(db_url)
    env = {"BRIDGE_DATABASE_URL": db_url}
    r = cli("jobs", "list", "--json", env=env)
    assert r.code == 0
    ids = [j["id"] for j in r.json()["jobs"]]  # type: ignore[index]
    assert ids == ["etc-crontab-1", "etc-crontab-2"]
    r = cli("jobs", "show", "etc-crontab-2", "--json", env=env)
    doc = r.json()
    assert doc["spec"]["handler"]["command"] == "echo 2"  # type: ignore[index]
    assert doc["source"] == {"file": "/etc/crontab", "line": 2}  # type: ignore[index]
    r = cli("jobs", "show", "nope", env=env)
    assert r.code == 2 and r.err.startswith("error: no job 'nope' in the registry")
    assert "Traceback" not in r.err


def test_db_upgrade_is_idempotent_and_reports_json(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    for _ in range(2):
        r = cli("db", "upgrade", "--json", env=env)
        assert r.code == 0, r.err
        assert r.json()["up_to_date"] is True  # type: ignore[index]
    assert cli("db", "current", env=env).code == 0


def test_bad_setting_is_one_line_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("status", env={"BRIDGE_VISIBILITY_TIMEOUT": "never"})
    assert r.code == 2
    assert r.err.strip().count("\n") == 0
    assert "invalid value for 'BRIDGE_VISIBILITY_TIMEOUT'" in r.err


def test_unknown_option_is_one_line_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("jobs", "list", "--frobnicate")
    assert r.code == 2 and "Traceback" not in r.err
    assert "--frobnicate" in r.err


def test_console_script_runs_and_helps() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bridge.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    for command in ("import", "jobs", "schedule", "sync", "db", "status"):
        assert command in r.stdout
    assert "Exit codes" in r.stdout
