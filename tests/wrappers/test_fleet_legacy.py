"""``bridge legacy rewrite|retire --inventory DIR --out OUTDIR``: per-host output trees, ready
to ship back, with each host's authority files. Real CLI, real registries (SQLite, PostgreSQL)."""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.core.authority import Owner
from bridge.services import authority_files
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo
from bridge.store.runs import record_many
from tests.authority.test_retire import celery_era
from tests.importers.fleet_tree import DEBIAN, ROCKY, host
from tests.shadow.helpers import backdate_imports

HOURLY = "MAILTO=ops@example.com\n0 * * * * root /usr/bin/hourly --flag\n"
SHIM = "/usr/local/bin/bridge-cron-shell"
AUTH_DIR = "/var/lib/cron-bridge/authority"


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}


def fleet(root: Path) -> Path:
    inventory = root / "inventory"
    for name in ("web-01", "web-02"):
        host(inventory, name, os_release=DEBIAN, zone="UTC", files={
            "etc/cron.d/hourly": HOURLY,
            "var/spool/cron/crontabs/alice": "30 6 * * 1-5 /home/alice/report\n",
        })
    host(inventory, "db-01", os_release=ROCKY, zone="UTC", files={
        "etc/cron.d/hourly": "-0 * * * * root /usr/bin/quiet\n0~5 1 * * * root /usr/bin/r\n",
    })
    return inventory


def test_rewrite_writes_one_tree_per_host_with_its_authority_files(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = fleet(tmp_path)
    assert cli("import", "crontab", "--inventory", str(inventory), env=env).code == 0
    out = tmp_path / "out"
    r = cli("legacy", "rewrite", "--inventory", str(inventory), "--out", str(out), "--shim", SHIM,
            "--authority-dir", AUTH_DIR, "--json", env=env)
    assert r.code == 0, r.err
    doc = r.json()
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert sorted(hosts) == ["db-01", "web-01", "web-02"]
    web01 = (out / "web-01/etc/cron.d/hourly").read_text()
    assert web01.split("\n") == [
        "MAILTO=ops@example.com", "BRIDGE_SHELL=/bin/sh", f"SHELL={SHIM}",
        "BRIDGE_JOB=web-01.etc-cron.d-hourly-1", "0 * * * * root /usr/bin/hourly --flag", ""]
    assert "BRIDGE_JOB=web-02.etc-cron.d-hourly-1" in (out / "web-02/etc/cron.d/hourly").read_text()
    spool = out / "web-01/var/spool/cron/crontabs/alice"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "web-01/etc/cron.d/hourly").stat().st_mode) == 0o644
    # cronie: the '-' line is managed; the '~' line (not imported) runs anonymously via the shim
    db01 = (out / "db-01/etc/cron.d/hourly").read_text()
    assert "BRIDGE_JOB=db-01.etc-cron.d-hourly-1\n-0 * * * * root /usr/bin/quiet\n" in db01
    assert 'BRIDGE_JOB=""\n0~5 1 * * * root /usr/bin/r\n' in db01
    assert hosts["db-01"]["files"][0]["unmanaged_lines"] == [2]
    # authority files: each host gets its own jobs' files, at the shim's path on that host
    auth = out / "web-01" / AUTH_DIR.lstrip("/")
    assert sorted(p.name for p in auth.iterdir()) == [
        "web-01.alice-crontab-1.authority", "web-01.etc-cron.d-hourly-1.authority"]
    assert authority_files.read(auth, "web-01.etc-cron.d-hourly-1").initial == "legacy"
    assert hosts["web-02"]["authority"] == {"dir": str(out / "web-02" / AUTH_DIR.lstrip("/")),
                                            "jobs": 2}
    # the rewritten tree, collected again, keeps every id (they ride on BRIDGE_JOB); only the
    # job lines moved down by the inserted lines
    again = tmp_path / "again"
    shutil.copytree(inventory, again, symlinks=True)
    for name in ("web-01", "web-02", "db-01"):
        shutil.copytree(out / name / "etc", again / name / "etc", dirs_exist_ok=True)
        if (out / name / "var").exists():
            shutil.copytree(out / name / "var", again / name / "var", dirs_exist_ok=True)
    doc = cli("import", "crontab", "--inventory", str(again), "--json", env=env).json()
    assert doc["summary"]["create"] == doc["summary"]["delete"] == 0
    assert {tuple(j["changed"]) for j in doc["jobs"] if j["status"] == "update"} == {
        ("source.line",)}
    log = cli("audit", "log", "--json", env=env).json()["entries"]
    assert sum(1 for e in log if e["action"] == "rewrite") == 5


def test_retire_retires_per_host_and_restore_undoes_it(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = fleet(tmp_path)
    assert cli("import", "crontab", "--inventory", str(inventory), env=env).code == 0
    job = "web-01.etc-cron.d-hourly-1"
    now = datetime.now(UTC)
    flipped_at = (now - timedelta(days=8)).replace(minute=0, second=0, microsecond=0)
    registry = Registry(db_url)
    with registry.session() as s:
        backdate_imports(s)
        AuthorityRepo(s).append(job, Owner.CELERY, actor="t", reason=None,
                                effective_slot=flipped_at)
        record_many(s, celery_era(job, flipped_at, now))
    registry.dispose()
    out = tmp_path / "retired"
    r = cli("legacy", "retire", "--inventory", str(inventory), "--out", str(out), "--host",
            "web-01", "--host", "web-02", "--stable-days", "7", "--json", env=env)
    assert r.code == 0, r.out + r.err
    doc: Any = r.json()
    retired = {h["host"]: [x["job_id"] for f in h["files"] for x in f["retired"]]
               for h in doc["hosts"]}
    assert retired == {"web-01": [job], "web-02": []}
    text = (out / "web-01/etc/cron.d/hourly").read_text()
    assert f"# bridge-retired {now.date().isoformat()} {job}: 0 * * * * root" in text
    assert (out / "web-02/etc/cron.d/hourly").read_text() == HOURLY
    kept = {k["job_id"] for k in doc["kept"]}
    assert "web-02.etc-cron.d-hourly-1" in kept
    back = tmp_path / "back"
    collected = tmp_path / "collected"
    shutil.copytree(inventory, collected, symlinks=True)
    shutil.copytree(out / "web-01" / "etc", collected / "web-01" / "etc", dirs_exist_ok=True)
    r = cli("legacy", "retire", "--inventory", str(collected), "--out", str(back), "--host",
            "web-01", "--restore", env=env)
    assert r.code == 0, r.err
    assert (back / "web-01/etc/cron.d/hourly").read_text() == HOURLY
    actions = [e["action"] for e in cli("audit", "log", "--json", env=env).json()["entries"]]
    assert actions.count("legacy.retire") == 1 and actions.count("legacy.restore") == 1


def test_inventory_mode_needs_out_and_no_path(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    inventory = str(fleet(tmp_path))
    r = cli("legacy", "rewrite", "--inventory", inventory, env=env)
    assert r.code == 2 and "--inventory takes --out OUTDIR" in r.err
    r = cli("legacy", "retire", "--inventory", inventory, "somefile", "--out", "x", env=env)
    assert r.code == 2 and "no path" in r.err


def test_authority_export_by_host_writes_one_folder_per_host(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    assert cli("import", "crontab", "--inventory", str(fleet(tmp_path)), env=env).code == 0
    target = tmp_path / "authority"
    r = cli("authority", "export", "--dir", str(target), "--by-host", "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["jobs"] == 5
    assert sorted(p.name for p in target.iterdir()) == ["db-01", "web-01", "web-02"]
    assert sorted(p.name for p in (target / "web-02").iterdir()) == [
        "web-02.alice-crontab-1.authority", "web-02.etc-cron.d-hourly-1.authority"]
