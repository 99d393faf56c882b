"""Issue 15.3: what the bridge creates is private whatever the umask, and the legacy shim
trusts an ``.authority`` file only when nobody but its user (or root) could have written it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.core.authority import Owner
from bridge.core.spec import CommandHandler, JobSpec, ScheduleSpec, SourceLocation
from bridge.services import authority_files
from bridge.services.authority_files import Authority, AuthorityFileError
from bridge.store.db import Registry
from bridge.store.repos import JobRepo
from legacy_wrappers import spool
from tests.support.shim import add_job, cron_env, dead_pg, shim


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_registry_spool_and_authority_files_are_private_under_umask_000(
    tmp_path: Path, umask_000: None
) -> None:
    db = tmp_path / "state" / "cron-bridge" / "registry.db"
    reg = Registry(f"sqlite:///{db}")
    with reg.session() as s:
        JobRepo(s).upsert(JobSpec(
            id="j1", schedule=ScheduleSpec(dialect="vixie", expression="* * * * *",
                                           timezone="UTC"),
            handler=CommandHandler(command="true", env=(("PGPASSWORD", "hunter2"),)),
            source=SourceLocation("/etc/crontab", 1)))
    assert Path(f"{db}-wal").exists() and Path(f"{db}-shm").exists()
    assert [mode(p) for p in (db, f"{db}-wal", f"{db}-shm")] == [0o600] * 3
    assert mode(db.parent) == mode(db.parent.parent) == 0o700
    reg.dispose()

    spool_dir = tmp_path / "var" / "spool" / "cron-bridge"
    written = spool.append(str(spool_dir), {"record_key": "legacy:x", "job_id": "j1",
                                            "slot": datetime(2026, 3, 8, 7, tzinfo=UTC),
                                            "path": "legacy", "role": "authoritative",
                                            "status": "succeeded"})
    assert mode(written) == 0o600
    assert mode(spool_dir) == mode(spool_dir.parent) == mode(spool_dir.parent.parent) == 0o700

    authority_dir = tmp_path / "lib" / "authority"
    authority_files.write(authority_dir, Authority("j1"))
    # readable by the shims of other cron users, writable by nobody else
    assert mode(authority_dir / "j1.authority") == 0o644
    assert mode(authority_dir) == mode(authority_dir.parent) == 0o755


def test_an_existing_world_readable_registry_is_tightened_on_open(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    Registry(f"sqlite:///{db}").dispose()
    os.chmod(db, 0o644)  # what older versions (and the issue) created
    Registry(f"sqlite:///{db}").dispose()
    assert mode(db) == 0o600


def test_read_trusted_refuses_what_others_could_have_planted(tmp_path: Path) -> None:
    directory = tmp_path / "authority"
    authority_files.write(directory, Authority("j1", initial="celery"))
    path = directory / "j1.authority"
    assert authority_files.read_trusted(directory, "j1") == Authority("j1", initial="celery")
    assert authority_files.read_trusted(directory, "absent") is None

    os.chmod(path, 0o666)
    with pytest.raises(AuthorityFileError, match="untrusted authority file: writable by group"):
        authority_files.read_trusted(directory, "j1")
    os.chmod(path, 0o644)
    os.chmod(directory, 0o777)
    with pytest.raises(AuthorityFileError, match="untrusted authority directory"):
        authority_files.read_trusted(directory, "j1")
    os.chmod(directory, 0o755)
    if os.geteuid() == 0:  # another owner: only root can make one
        os.chown(path, 65534, 65534)
        with pytest.raises(AuthorityFileError, match="owned by uid 65534"):
            authority_files.read_trusted(directory, "j1")
        os.chown(path, 0, 0)
    os.rename(path, directory / "real")
    os.symlink(directory / "real", path)
    with pytest.raises(AuthorityFileError, match="symlink"):
        authority_files.read_trusted(directory, "j1")


@pytest.mark.integration
def test_the_shim_ignores_a_planted_authority_file_and_runs_as_legacy(
    tmp_path: Path, sqlite_registry_url: str
) -> None:
    reg = Registry(sqlite_registry_url)
    add_job(reg, "* * * * *", owner=Owner.CELERY)
    reg.dispose()
    env = cron_env(tmp_path, sqlite_registry_url)
    assert shim(env, "echo online").stdout == b""  # Celery owns it; caches "initial celery"
    cached = Path(env["BRIDGE_AUTHORITY_DIR"]) / "etc-cron.d-shimtest-1.authority"
    assert "initial celery" in cached.read_text()
    down = {**env, "BRIDGE_DATABASE_URL": dead_pg()}

    os.chmod(cached, 0o666)  # anyone could have written it: not trusted
    got = shim(down, "echo ran")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"ran\n", b"")
    os.chmod(cached, 0o644)  # trusted again: the outage follows the cache (stand down)
    got = shim(down, "echo ran")
    assert (got.returncode, got.stdout) == (0, b"")
    records = [spool.decode(line) for f in spool.spool_files(env["BRIDGE_SPOOL_DIR"])
               for line in Path(f).read_bytes().splitlines()]
    assert [r["role"] for r in records] == ["authoritative", "stand-down"]
    assert "untrusted authority file" in records[0]["error"]
