"""``bridge import crontab --inventory``: one plan for a fleet, the same plan/apply/prune rules
per host. Through the real CLI against a real Redis and both registries (SQLite, PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.importers.fleet_tree import DEBIAN, ROCKY, host

BACKUP = "0 3 * * * root /usr/local/bin/backup\n"


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}


def fleet(root: Path) -> Path:
    inventory = root / "inventory"
    host(inventory, "web-01", os_release=DEBIAN, zone="Europe/Paris", files={
        "etc/cron.d/backup": BACKUP,
        "etc/cron.d/logs": "*/10 * * * * root /usr/sbin/logrotate /etc/logrotate.conf\n",
        "var/spool/cron/crontabs/alice": "30 6 * * 1-5 /home/alice/report\n",
    })
    host(inventory, "web-02", os_release=DEBIAN, zone="Europe/Paris", zone_as="file",
         files={"etc/cron.d/backup": BACKUP})
    host(inventory, "db-01", os_release=ROCKY, zone="America/New_York", files={
        "etc/cron.d/backup": "CRON_TZ=UTC\n0 3 * * * root /usr/local/bin/backup\n",
        "var/spool/cron/postgres": "15 1 * * * pg_dumpall -f /var/backups/all.sql\n",
    })
    return inventory


def jobs_of(doc: Any) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in doc["jobs"]}


def test_the_same_cron_d_file_on_two_hosts_collides_without_inventory(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    inventory = fleet(tmp_path)
    copies = [str(inventory / h / "etc/cron.d/backup") for h in ("web-01", "web-02")]
    r = cli("import", "crontab", *copies, "--json", env=env_for(redis_url, db_url))
    assert r.code == 2
    [error] = r.json()["errors"]
    assert error["message"].startswith("job id 'etc-cron.d-backup-1' is already used at")


def test_an_inventory_gives_each_host_its_own_jobs_in_its_own_zone_and_dialect(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    r = cli("import", "crontab", "--inventory", str(fleet(tmp_path)), "--json", env=env)
    assert r.code == 0, r.err
    doc = r.json()
    jobs = jobs_of(doc)
    assert set(jobs) == {
        "web-01.etc-cron.d-backup-1", "web-01.etc-cron.d-logs-1", "web-01.alice-crontab-1",
        "web-02.etc-cron.d-backup-1", "db-01.etc-cron.d-backup-1", "db-01.postgres-crontab-1",
    }
    assert {j["status"] for j in jobs.values()} == {"create"}
    assert jobs["web-02.etc-cron.d-backup-1"]["host"] == "web-02"
    assert jobs["web-02.etc-cron.d-backup-1"]["source"] == {"file": "/etc/cron.d/backup",
                                                            "line": 1}
    assert jobs["web-01.alice-crontab-1"]["user"] == "alice"
    assert jobs["web-01.etc-cron.d-backup-1"]["schedule"] == {
        "dialect": "vixie", "expression": "0 3 * * *", "timezone": "Europe/Paris"}
    assert jobs["db-01.etc-cron.d-backup-1"]["schedule"] == {
        "dialect": "cronie", "expression": "0 3 * * *", "timezone": "UTC"}  # CRON_TZ
    assert jobs["db-01.postgres-crontab-1"]["schedule"]["timezone"] == "America/New_York"
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert list(hosts) == ["db-01", "web-01", "web-02"]
    assert hosts["db-01"]["family"] == "rhel" and hosts["db-01"]["dialect"] == "cronie"
    assert hosts["web-02"]["timezone_source"] == "etc/timezone"
    assert hosts["web-01"]["summary"]["create"] == 3
    assert hosts["web-01"]["files"] == [
        "/etc/cron.d/backup", "/etc/cron.d/logs", "/var/spool/cron/crontabs/alice"]
    assert doc["applied"] == {"created": 6, "updated": 0, "deleted": 0}
    assert len(doc["sync"]["created"]) == 6
    listed = cli("jobs", "list", "--host", "web-02", "--json", env=env).json()
    assert [(j["id"], j["host"]) for j in listed["jobs"]] == [
        ("web-02.etc-cron.d-backup-1", "web-02")]
    again = cli("import", "crontab", "--inventory", str(tmp_path / "inventory"), "--json",
                env=env).json()
    assert {j["status"] for j in again["jobs"]} == {"unchanged"}


def test_a_host_missing_from_the_inventory_is_never_pruned(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = fleet(tmp_path)
    assert cli("import", "crontab", "--inventory", str(inventory), env=env).code == 0
    shutil.rmtree(inventory / "web-02")
    r = cli("import", "crontab", "--inventory", str(inventory), "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["summary"]["delete"] == 0
    assert cli("jobs", "list", "--host", "web-02", "--json", env=env).json()["jobs"]


def test_a_file_gone_from_a_present_host_is_pruned_only_with_prune(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = fleet(tmp_path)
    assert cli("import", "crontab", "--inventory", str(inventory), env=env).code == 0
    (inventory / "web-01" / "etc/cron.d/logs").unlink()
    kept = cli("import", "crontab", "--inventory", str(inventory), "--no-prune", "--json",
               env=env).json()
    assert kept["summary"]["delete"] == 0
    r = cli("import", "crontab", "--inventory", str(inventory), "--json", env=env)
    assert r.code == 0, r.err
    deleted = [j for j in r.json()["jobs"] if j["status"] == "delete"]
    assert [(j["id"], j["host"], j["reason"]) for j in deleted] == [(
        "web-01.etc-cron.d-logs-1", "web-01",
        "its file is no longer in the host's inventory folder")]
    # the same file on the other hosts is untouched
    ids = {j["id"] for j in cli("jobs", "list", "--json", env=env).json()["jobs"]}
    assert "web-02.etc-cron.d-backup-1" in ids and "web-01.etc-cron.d-logs-1" not in ids


def test_a_bad_line_names_host_file_and_line_and_nothing_is_imported(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = fleet(tmp_path)
    (inventory / "web-02" / "etc/cron.d/backup").write_text(BACKUP + "61 * * * * root x\n")
    r = cli("import", "crontab", "--inventory", str(inventory), env=env)
    assert r.code == 2
    assert "error: web-02/etc/cron.d/backup:2: minute 61 out of range 0-59 in '61'" in r.err
    assert "nothing was imported" in r.err
    assert cli("jobs", "list", "--json", env=env).json()["jobs"] == []
    doc = cli("import", "crontab", "--inventory", str(inventory), "--json", env=env).json()
    assert doc["errors"] == [{"host": "web-02", "file": "/etc/cron.d/backup", "line": 2,
                              "message": "minute 61 out of range 0-59 in '61'"}]


def test_the_text_plan_is_grouped_by_host_and_warns_once_about_ownership(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    r = cli("import", "crontab", "--inventory", str(fleet(tmp_path)), "--dry-run", env=env)
    assert r.code == 0, r.err
    assert "fleet import plan (dry run, 3 host(s)" in r.out
    assert "rhel (cronie)" in r.out and "Europe/Paris (etc/localtime)" in r.out
    assert r.err.count("warning:") == 1
    assert "ownership and mode of 6 inventory file(s) not verified" in r.err
    assert cli("jobs", "list", "--json", env=env).json()["jobs"] == []


def test_inventory_refuses_per_file_options_and_unknown_hosts(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = str(fleet(tmp_path))
    r = cli("import", "crontab", "--inventory", inventory, "--dialect", "cronie", env=env)
    assert r.code == 2 and "each host's family decides its dialect" in r.err
    r = cli("import", "crontab", "--inventory", inventory, "--host", "web-09", env=env)
    assert r.code == 2 and "no folder for host(s) web-09" in r.err
    r = cli("import", "crontab", "--inventory", inventory, "--max-jobs", "5", env=env)
    assert r.code == 2 and "6 job lines, more than --max-jobs 5" in r.err


def test_status_and_the_shadow_report_group_by_host(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    assert cli("import", "crontab", "--inventory", str(fleet(tmp_path)), env=env).code == 0
    status = cli("status", "--json", env=env).json()
    assert status["database"]["hosts"] == {"db-01": 2, "web-01": 3, "web-02": 1}
    assert status["overview"]["jobs"]["by_host"]["web-01"] == {"legacy": 3, "celery": 0}
    r = cli("shadow", "report", "--format", "json", "--since", "1d", env=env)
    doc = r.json()
    assert {j["job_id"]: j["host"] for j in doc["jobs"]}["db-01.postgres-crontab-1"] == "db-01"
    assert sorted(doc["hosts"]) == ["db-01", "web-01", "web-02"]
    assert doc["hosts"]["web-01"]["jobs"] == 3
    audit = cli("audit", "log", "--host", "web-02", "--json", env=env).json()["entries"]
    assert [(e["action"], e["job_id"], e["host"]) for e in audit] == [
        ("import.create", "web-02.etc-cron.d-backup-1", "web-02")]
