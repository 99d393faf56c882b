"""A job id belongs to the (host, file, kind) that created it (issue 15.1).

Through the real CLI against a real Redis and both registries."""

from __future__ import annotations

import socket
from pathlib import Path


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}


def _backup_and_alice(tmp_path: Path) -> tuple[Path, Path]:
    crond = tmp_path / "cron.d"
    crond.mkdir()
    backup = crond / "backup"
    backup.write_text("0 3 * * * root /usr/local/bin/backup\n")
    alice = tmp_path / "alice"
    alice.write_text("# bridge: id=etc-cron.d-backup-1\n0 3 * * * /home/alice/evil.sh\n")
    return backup, alice


def test_an_override_naming_another_files_job_is_an_error_and_changes_nothing(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    backup, alice = _backup_and_alice(tmp_path)
    assert cli("import", "crontab", str(backup), env=env).code == 0
    before = cli("jobs", "show", "etc-cron.d-backup-1", "--json", env=env).json()
    r = cli("import", "crontab", str(alice), "--json", env=env)
    assert r.code == 2, r.out
    doc = r.json()
    assert doc["applied"] is None
    [error] = doc["errors"]
    assert error["file"] == str(alice) and error["line"] == 1
    assert "etc-cron.d-backup-1" in error["message"] and str(backup) in error["message"]
    assert "--adopt" in error["message"]
    after = cli("jobs", "show", "etc-cron.d-backup-1", "--json", env=env).json()
    assert after == before
    assert after["spec"]["handler"]["user"] == "root"
    # the text form: one error line naming file:line, exit 2
    r = cli("import", "crontab", str(alice), env=env)
    assert r.code == 2
    assert f"{alice}:1: job id 'etc-cron.d-backup-1' belongs to" in r.err


def test_the_same_default_id_from_another_path_is_refused_too(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    backup, _ = _backup_and_alice(tmp_path)
    other = tmp_path / "elsewhere" / "cron.d"
    other.mkdir(parents=True)
    (other / "backup").write_text("0 4 * * * root /tmp/other\n")
    assert cli("import", "crontab", str(backup), env=env).code == 0
    r = cli("import", "crontab", str(other / "backup"), "--json", env=env)
    assert r.code == 2
    assert r.json()["errors"][0]["line"] == 1


def test_adopt_moves_the_job_shows_it_in_the_plan_and_audits_it(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    backup, alice = _backup_and_alice(tmp_path)
    assert cli("import", "crontab", str(backup), env=env).code == 0
    r = cli("import", "crontab", str(alice), "--adopt", "--json", env=env)
    assert r.code == 0, r.err
    [job] = [j for j in r.json()["jobs"] if j["id"] == "etc-cron.d-backup-1"]
    assert job["status"] == "update"
    assert job["adopted_from"] == {
        "host": socket.gethostname(),
        "file": str(backup),
        "kind": "cron.d",
    }
    shown = cli("jobs", "show", "etc-cron.d-backup-1", "--json", env=env).json()
    assert shown["spec"]["handler"]["user"] == "alice"
    entries = cli("audit", "log", "--job", "etc-cron.d-backup-1", "--json", env=env).json()
    adopt = [e for e in entries["entries"] if e["action"] == "import.adopt"]
    assert len(adopt) == 1
    assert adopt[0]["before"]["owner"] == {
        "host": socket.gethostname(),
        "file": str(backup),
        "kind": "cron.d",
    }
    assert adopt[0]["after"]["owner"]["file"] == str(alice)
    # the text plan says so
    backup.write_text("# bridge: id=etc-cron.d-backup-1\n0 3 * * * root /usr/local/bin/backup\n")
    r = cli("import", "crontab", str(backup), "--adopt", "--dry-run", env=env)
    assert r.code == 0, r.err
    assert "adopts from" in r.out


def test_reimporting_the_owning_file_is_not_an_adoption(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    backup, _ = _backup_and_alice(tmp_path)
    assert cli("import", "crontab", str(backup), env=env).code == 0
    backup.write_text("0 5 * * * root /usr/local/bin/backup\n")
    r = cli("import", "crontab", str(backup), "--json", env=env)
    assert r.code == 0, r.err
    [job] = r.json()["jobs"]
    assert job["status"] == "update" and "adopted_from" not in job
