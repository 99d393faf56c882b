"""The CLI's contract: --json documents, exit codes, one-line errors, masked URLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.core.spec import CommandHandler, JobSpec, ScheduleSpec, SourceLocation
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
    from tests.support import free_port

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


@pytest.mark.integration
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


# --- issue 15.5: every bad input is exit 2 (JSON under --json), never an internal error -------


def test_preview_after_outside_the_supported_range_is_a_json_error_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    for after in ("9999-12-31T23:59", "0001-01-01", "1969-12-31T23:59Z"):
        r = cli("schedule", "preview", "--expr", "* * * * *", "--timezone", "UTC",
                "--after", after, "--json")
        assert r.code == 2, (after, r.code, r.out, r.err)
        assert "outside the supported range" in r.json()["error"]  # type: ignore[index]
        assert "internal error" not in r.err
    r = cli("schedule", "preview", "--expr", "* * * * *", "--timezone", "UTC",
            "--after", "1970-01-01T00:00Z", "--count", "1", "--json")
    assert r.json() == {"slots": ["1970-01-01T00:01:00+00:00"]}


def test_a_batch_answers_every_line_whatever_one_line_holds(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = b'{"expr": "0 12 * * *", "timezone": "UTC", "after": "2026-01-01T00:00Z", "count": 1}\n'
    lines = [
        b'{"expr": "* * * * *", "after": "9999-12-31T23:59"}\n',  # was OverflowError: stopped all
        good,
        b"\xff\xfe not utf-8\n",  # was UnicodeDecodeError
        b"[" * 100_000 + b"\n",  # was RecursionError
        b'{"expr": 5, "count": true}\n',
        b'{"expr": "* * * * *", "after": "0001-01-01"}\n',
        good,
    ]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(lines))
    r = cli("schedule", "preview", "--batch", str(path))
    assert r.code == 2 and r.err == "", r.err
    import json

    answers = [json.loads(line) for line in r.out.splitlines()]
    assert len(answers) == len(lines)
    assert answers[1] == answers[6] == {"slots": ["2026-01-01T12:00:00+00:00"]}
    errors = [a["error"] for i, a in enumerate(answers) if i not in (1, 6)]
    assert errors[0].startswith("line 1: --after") and "supported range" in errors[0]
    assert errors[1] == "line 3: not UTF-8 (byte 0)"
    assert errors[2] == "line 4: line longer than 65536 bytes"
    assert errors[3] == "line 5: expr must be a string"
    assert errors[4].startswith("line 6: --after")
    assert not any("internal error" in e for e in errors)


@pytest.mark.integration
def test_a_batch_on_stdin_with_invalid_utf8_and_deep_nesting_goes_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = b"\xc3\x28\n" + b"[" * 5000 + b"\n" + (
        b'{"expr": "0 0 1 1 *", "timezone": "UTC", "after": "2026-06-01T00:00Z", "count": 1}\n')
    r = subprocess.run([sys.executable, "-m", "bridge.cli.main", "schedule", "preview",
                        "--batch", "-"], input=data, capture_output=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path)})
    out = r.stdout.decode().splitlines()
    assert r.returncode == 2 and b"Traceback" not in r.stderr, r.stderr
    assert out[0] == '{"error": "line 1: not UTF-8 (byte 0)"}'
    assert out[1] == '{"error": "line 2: invalid JSON: nested too deeply"}'
    assert out[2] == '{"slots": ["2027-01-01T00:00:00+00:00"]}'


def test_malformed_urls_are_settings_errors_exit_2_naming_the_variable(cli) -> None:  # type: ignore[no-untyped-def]
    cases = [
        ("BRIDGE_REDIS_URL", "redis://localhost:abc/0", "Port could not be cast"),
        ("BRIDGE_REDIS_URL", "redis://:hunter2@localhost:6379/0?password=hunter2",
         "'password=' is not accepted in the query"),
        ("BRIDGE_REDIS_URL", "redis://localhost:6379/zero", "database number 'zero'"),
        ("BRIDGE_DATABASE_URL", "postgresql://u:hunter2@localhost:abc/db",
         "Port could not be cast"),
        ("BRIDGE_DATABASE_URL", "postgresql://u@localhost:5432", "names no database"),
    ]
    valid = {"BRIDGE_REDIS_URL": "redis://127.0.0.1:1/0", "BRIDGE_DATABASE_URL": "sqlite:///r.db"}
    for name, value, reason in cases:
        for extra in ((), ("--json",)):
            r = cli("status", *extra, env={**valid, name: value})
            assert r.code == 2, (value, r.code, r.err)
            assert r.err.count("\n") == 1 and f"invalid value for '{name}'" in r.err, r.err
            assert reason in r.err and "hunter2" not in r.err + r.out
            if extra:
                assert reason in r.json()["error"]  # type: ignore[index]


def test_an_internal_bug_is_exit_70_with_a_short_id_and_json_under_json(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bridge.cli import status_cmd

    def broken() -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(status_cmd, "_redis_status", broken)
    r = cli("status", "--json")
    assert r.code == 70
    doc = r.json()
    assert doc["internal"] is True and len(doc["id"]) == 8  # type: ignore[index]
    assert f"internal error {doc['id']}: ZeroDivisionError: a bug" in r.err  # type: ignore[index]
    assert "rerun as `bridge --debug status --json`" in r.err and "Traceback" not in r.err
    saved = r.err.split("traceback in ", 1)[1].split(";", 1)[0]
    import os
    import stat

    assert "ZeroDivisionError" in Path(saved).read_text()
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600


def test_debug_is_accepted_after_the_subcommand_as_the_hint_says(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("schedule", "preview", "--expr", "x", "--debug")
    assert r.code == 2 and "Traceback" in r.err and "No such option" not in r.err
    r = cli("--debug", "schedule", "preview", "--expr", "x")
    assert r.code == 2 and "Traceback" in r.err
    r = cli("schedule", "preview", "--expr", "x")
    assert r.code == 2 and "Traceback" not in r.err


def test_status_on_an_unmigrated_postgresql_says_reachable_and_what_to_run(  # type: ignore[no-untyped-def]
    cli, redis_url: str, pg_url: str
) -> None:
    from sqlalchemy import text

    reg = Registry(pg_url, check_schema=False)
    with reg.engine.begin() as conn:  # an empty database: drop what the session's tests made
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    reg.dispose()
    env = {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": pg_url}
    r = cli("status", "--quick", env=env)
    assert r.code == 1, r.err
    assert "UNREACHABLE" not in r.out
    from bridge.store.db import head_revision

    expected = f"reachable, schema not migrated (empty, head {head_revision()})"
    assert f"{expected}: run `bridge db upgrade`" in r.out
    doc = cli("status", "--quick", "--json", env=env).json()
    assert doc["database"]["ok"] is True and doc["database"]["migrated"] is False  # type: ignore[index]
    assert cli("db", "upgrade", env=env).code == 0
    assert cli("status", "--quick", env=env).code == 0


def test_reconcile_job_takes_a_glob_and_errors_are_json_under_json(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'r.db'}"
    seed(url, 3)
    env = {"BRIDGE_DATABASE_URL": url}
    r = cli("reconcile", "--job", "etc-crontab-*", "--since", "1h", "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["findings"] == []  # type: ignore[index]
    r = cli("reconcile", "--job", "nomatch-*", "--json", env=env)
    assert r.code == 2 and r.json()["error"].startswith("no job matches 'nomatch-*'")  # type: ignore[index]
    r = cli("reconcile", "--job", "nope", "--json", env=env)
    assert r.code == 2 and "no job 'nope'" in r.json()["error"]  # type: ignore[index]
    r = cli("reconcile", "--since", "yesterday-ish", "--json", env=env)
    assert r.code == 2 and "error" in r.json()  # type: ignore[operator]


# --- issue 15.3: secrets stay secret ----------------------------------------------------------

SECRET_CRONTAB = """\
PGPASSWORD=hunter2-pg
SENTRY_DSN=https://dsn-value@example
PGUSER=billing
30 2 * * * /usr/bin/env echo nightly
"""


def test_secret_env_values_are_masked_in_the_plan_and_jobs_show_but_stored(  # type: ignore[no-untyped-def]
    cli, redis_url: str, tmp_path
) -> None:
    import json

    crontab = tmp_path / "alice"
    crontab.write_text(SECRET_CRONTAB)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    env = {"BRIDGE_DATABASE_URL": db, "BRIDGE_REDIS_URL": redis_url, "BRIDGE_TIMEZONE": "UTC",
           "BRIDGE_SECRET_ENV_PATTERNS": "*DSN*"}
    r = cli("import", "crontab", str(crontab), "--json", env=env)
    assert r.code == 0, r.err
    [job] = r.json()["jobs"]  # type: ignore[index]
    assert job["env"] == {"PGPASSWORD": "***", "SENTRY_DSN": "***", "PGUSER": "billing"}
    for args in (("jobs", "show", job["id"]), ("jobs", "show", job["id"], "--json")):
        r = cli(*args, env=env)
        assert r.code == 0, r.err
        assert "hunter2-pg" not in r.out and "dsn-value" not in r.out and "billing" in r.out
        assert '"***"' in r.out
    doc = cli("jobs", "show", job["id"], "--json", env=env).json()
    assert ["PGPASSWORD", "***"] in doc["spec"]["handler"]["env"]  # type: ignore[index]
    reg = Registry(db)  # the job still needs the value: the registry keeps it
    with reg.session() as s:
        stored = JobRepo(s).require(job["id"]).spec.handler
    reg.dispose()
    assert dict(stored.env)["PGPASSWORD"] == "hunter2-pg"  # type: ignore[union-attr]
    audit = cli("audit", "log", "--json", env=env).out
    assert "hunter2-pg" not in audit and json.loads(audit)["entries"]
    for args in (("shadow", "report", "--json"), ("authority", "status", "--json"),
                 ("jobs", "list", "--json"), ("reconcile", "--json")):
        r = cli(*args, env=env)
        assert r.code in (0, 1) and "hunter2-pg" not in r.out + r.err, args


def test_a_celery_message_carries_only_the_job_id_and_the_slot(redis_url: str) -> None:
    """What beat publishes for a job with secrets in its environment, read raw from Redis."""
    import base64
    import json
    from datetime import UTC, datetime

    import redis

    from bridge.beat.publish import BatchPublisher, SlotMessage
    from bridge.celery_app import make_app
    from bridge.core.config import load_settings

    app = make_app(load_settings({"BRIDGE_REDIS_URL": redis_url}))
    slot = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    try:
        with app.producer_or_acquire() as producer:
            BatchPublisher(app).publish(producer, [SlotMessage("alice-crontab-1", slot, "bridge")])
    finally:
        app.close()
    client = redis.Redis.from_url(redis_url)
    [raw] = client.lrange("bridge", 0, -1)
    client.close()
    message = json.loads(raw)
    body = json.loads(base64.b64decode(message["body"]))
    assert body[0] == ["alice-crontab-1", "2026-03-08T07:00:00Z"] and body[1] == {}
    assert message["headers"]["task"] == "bridge.run_job"
    assert b"hunter2" not in raw and b"env" not in base64.b64decode(message["body"])
