"""The shim's hot path: the fast launcher, what it imports, and the cache behind it.

A managed legacy run must not import the ORM, the broker stack or the CLI (issue 16: they cost
80-500 ms per cron job); with its cache warm it imports neither the settings validator nor the
spec and schedule evaluators. The cache must answer exactly what the full computation answers,
and never once an input changed or when someone else could have planted it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from bridge.core.authority import Owner
from bridge.core.config import RUNTIME_VARIABLES
from bridge.core.schedules import compile_schedule
from bridge.core.spec import Dialect, ScheduleSpec
from bridge.store.db import Registry
from bridge.store.models import ClaimRow
from bridge.store.repos import AuthorityRepo
from legacy_wrappers import launcher, shim_cache
from tests.support.shim import (
    JOB,
    add_job,
    away_from_minute_edge,
    cron_env,
    hot_path_modules,
    run,
    runs,
)

FORBIDDEN = ("sqlalchemy", "alembic", "celery", "kombu", "redis", "typer", "rich", "psycopg")
FULL_PATH = ("bridge.core.config", "bridge.core.spec", "bridge.core.schedules",
             "bridge.services.authority_files")


def forget_claims(registry: Registry) -> None:
    with registry.session() as s:
        s.execute(delete(ClaimRow))


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_the_hot_path_imports_no_orm_broker_or_cli_and_a_warm_cache_skips_the_evaluators(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    cold_rc, cold = hot_path_modules(env)
    forget_claims(registry)  # the next run is the common case: a fresh slot (no takeover)
    warm_rc, warm = hot_path_modules(env, "exit 4")
    assert (cold_rc, warm_rc) == (0, 4)
    assert "legacy_wrappers.shim_run" in cold and "legacy_wrappers.shim_run" in warm
    for modules in (cold, warm):
        assert not [m for m in modules if m.split(".")[0] in FORBIDDEN], sorted(modules)
    assert set(FULL_PATH) <= cold  # the cold run computed and cached the answers
    assert not set(FULL_PATH) & warm, sorted(warm)
    assert [(r.role, r.exit_status) for r in runs(registry)] == [("authoritative", 0),
                                                                ("authoritative", 4)]


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_the_launcher_runs_the_shim_isolated_and_records(tmp_path: Path, registry: Registry,
                                                         db_url: str) -> None:
    target = Path(launcher.install(str(tmp_path / "bridge-cron-shell")))
    first = target.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS" and os.access(target, os.X_OK)
    # a crontab's PYTHON* lines reach the command, never the shim's interpreter
    env = cron_env(tmp_path, db_url, SHELL=str(target), PYTHONPATH="/nonexistent",
                   PYTHONSAFEPATH="1", PYTHONHOME="/nonexistent")
    away_from_minute_edge()
    done = run([str(target), "-c", 'echo "$PYTHONPATH $PYTHONHOME"; exit 3'], env)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"/nonexistent /nonexistent\n", b"")
    (row,) = runs(registry)
    assert (row.role, row.status, row.exit_status) == ("authoritative", "failed", 3)


def test_launcher_refuses_an_interpreter_path_a_shebang_cannot_carry(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="#! line"):
        launcher.launcher_text("/opt/my python/bin/python3", ["/x"])
    with pytest.raises(ValueError, match="#! line"):
        launcher.launcher_text("/" + "p" * 300, ["/x"])
    assert launcher.main(["-h"]) == 2


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_a_changed_schedule_or_a_deleted_authority_file_is_seen_at_the_next_run(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0
    authority = tmp_path / "authority" / f"{JOB}.authority"
    assert authority.exists()
    authority.unlink()
    forget_claims(registry)
    now = datetime.now(UTC)
    # hourly at a minute that is not now: the cached every-minute slots must not answer
    add_job(registry, f"{(now.minute + 30) % 60} * * * *")
    assert hot_path_modules(env)[0] == 0
    assert authority.exists() and f'"{(now.minute + 30) % 60} * * * *"' in authority.read_text()
    last = runs(registry)[-1]
    assert "no slot within tolerance" in (last.error or "") and last.role == "authoritative"


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_a_flip_in_the_registry_is_obeyed_with_a_warm_cache(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0
    with registry.session() as s:
        AuthorityRepo(s).append(JOB, Owner.CELERY, effective_slot=None, actor="t", reason=None)
    forget_claims(registry)
    rc, modules = hot_path_modules(env, "echo should-not-run; exit 9")
    assert rc == 0 and runs(registry)[-1].role == "stand-down"
    assert "bridge.core.schedules" not in modules  # the slot still came from the cache
    assert "celery" in (tmp_path / "authority" / f"{JOB}.authority").read_text()


# --- the cache itself -----------------------------------------------------------------------------


def test_per_job_variables_are_exactly_the_runtime_variables_settings_ignore() -> None:
    assert RUNTIME_VARIABLES - {"BRIDGE_CONFIG"} == shim_cache.PER_JOB_VARIABLES


def test_settings_are_cached_per_inputs_and_any_input_change_is_a_miss(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "BRIDGE_DATABASE_URL": "sqlite:////x.db", "BRIDGE_JOB": "a"}
    cwd = os.getcwd()
    os.chdir(home)
    try:
        value = ("ok", "sqlite:////x.db", "/s", "/a")
        shim_cache.write_settings(env, value)
        assert shim_cache.read_settings(env) == value
        assert shim_cache.read_settings({**env, "BRIDGE_JOB": "other-job"}) == value
        assert shim_cache.read_settings({**env, "BRIDGE_SPOOL_DIR": "/elsewhere"}) is None
        other = ("ok", "sqlite:////y.db", "/s", "/a")  # a second registry: its own entry
        shim_cache.write_settings({**env, "BRIDGE_DATABASE_URL": "sqlite:////y.db"}, other)
        assert shim_cache.read_settings(env) == value
        (home / "bridge.toml").write_text('[bridge]\nspool_dir = "/t"\n')  # a new config file
        assert shim_cache.read_settings(env) is None
        shim_cache.write_settings(env, value)
        assert shim_cache.read_settings(env) == value
        (home / "bridge.toml").write_text('[bridge]\nspool_dir = "/changed"\n')
        assert shim_cache.read_settings(env) is None
    finally:
        os.chdir(cwd)


def test_a_cache_someone_else_could_have_written_is_ignored(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    shim_cache.write_settings(env, ("ok", "sqlite:////x.db", "/s", "/a"))
    directory = Path(str(shim_cache.cache_dir(env)))
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert shim_cache.read_settings(env) is not None
    (target,) = directory.glob("settings-*")
    target.chmod(0o644)
    assert shim_cache.read_settings(env) is None
    target.chmod(0o600)
    directory.chmod(0o755)
    assert shim_cache.read_settings(env) is None
    directory.chmod(0o700)
    target.rename(directory / "real")
    target.symlink_to(directory / "real")
    assert shim_cache.read_settings(env) is None


@pytest.mark.parametrize("dialect,expression,zone", [
    (Dialect.VIXIE, "* * * * *", "UTC"),
    (Dialect.VIXIE, "30 2 * * *", "America/New_York"),  # DST days included
    (Dialect.VIXIE, "*/7 1-3 * * 1-5", "Europe/Berlin"),
    (Dialect.QUARTZ, "0/20 * * * * ?", "UTC"),
])
def test_cached_slots_answer_exactly_as_the_evaluator(dialect: Dialect, expression: str,
                                                      zone: str) -> None:
    evaluator = compile_schedule(ScheduleSpec(dialect=dialect, expression=expression,
                                              timezone=zone))
    rng = random.Random(7)
    for start in (datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)):
        cache = shim_cache.job_cache_from(evaluator, "h1", start.timestamp())
        assert cache.slots and cache.horizon > cache.anchor
        assert len(cache.slots) <= shim_cache.MAX_SLOTS + 1
        probes = [cache.anchor, cache.horizon, *(s for s in cache.slots[1:6]),
                  *(rng.uniform(cache.anchor, cache.horizon) for _ in range(300))]
        for now in probes:
            known, slot = cache.latest_slot("h1", now)
            want = evaluator.prev_at_or_before(datetime.fromtimestamp(now, UTC))
            assert known and slot == (None if want is None else int(want.timestamp())), now
        assert cache.latest_slot("h2", cache.anchor) == (False, None)  # another spec
        assert cache.latest_slot("h1", cache.horizon + 1) == (False, None)  # past the range
        assert cache.latest_slot("h1", cache.anchor - 1) == (False, None)  # the clock went back


def test_a_job_cache_round_trips_and_a_torn_file_is_a_miss(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    cache = shim_cache.JobCache("abc", 100, 200, [60, 120, 180], authority="fp")
    shim_cache.write_job(env, JOB, cache)
    back = shim_cache.read_job(env, JOB)
    assert back is not None
    assert (back.spec_hash, back.anchor, back.horizon, back.slots, back.authority) == (
        "abc", 100, 200, [60, 120, 180], "fp")
    path = Path(str(shim_cache.cache_dir(env))) / f"{JOB}.job"
    path.write_bytes(path.read_bytes()[:30])
    assert shim_cache.read_job(env, JOB) is None
    assert shim_cache.read_job(env, "../escape") is None


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_the_settings_the_shim_caches_are_load_settings_own(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0
    done = subprocess.run(
        [sys.executable, "-c", "import json, os; from bridge.core.config import load_settings; "
         "from legacy_wrappers.shim_cache import read_settings; s = load_settings(); "
         "print(json.dumps([[s.database_url, s.spool_dir, s.authority_dir], "
         "read_settings(os.environ)]))"], env=env, cwd=env["HOME"], capture_output=True,
        timeout=60)
    computed, cached = json.loads(done.stdout)
    assert cached == ["ok", *computed] and computed[0] == db_url


def test_shim_cache_dates_are_whole_seconds() -> None:
    evaluator = compile_schedule(ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *",
                                              timezone="UTC"))
    cache = shim_cache.job_cache_from(evaluator, "h", 1_000_000.75)
    assert cache.anchor == 1_000_000 and all(s % 60 == 0 for s in cache.slots)
    assert len(cache.slots) == shim_cache.MAX_SLOTS and cache.horizon == cache.slots[-1]
    assert timedelta(seconds=cache.horizon - cache.anchor) < timedelta(days=1)


def test_the_shim_reads_authority_rows_exactly_as_owner_at() -> None:
    """The shim's hot path applies the registry's rule to the raw rows itself (no dataclass
    import): it must answer as bridge.core.authority.owner_at on any history."""
    from bridge.core.authority import AuthorityEvent, owner_at
    from legacy_wrappers.shim_plan import EventTimeline

    rng = random.Random(16)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(300):
        rows: list[tuple[datetime | None, str]] = [
            (None if rng.random() < 0.3 else base + timedelta(minutes=rng.randrange(0, 50)),
             rng.choice(["legacy", "celery"])) for _ in range(rng.randrange(0, 6))]
        history = [AuthorityEvent("j", when, Owner(who), "t", None, False, base)
                   for when, who in rows]
        timeline = EventTimeline(rows)
        for minute in range(-1, 52):
            slot = base + timedelta(minutes=minute)
            assert timeline.owner_at(slot) == owner_at(history, slot).value, (rows, slot)


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_registry_down_reads_the_cached_rows_while_the_authority_file_is_unchanged(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    from bridge.services import authority_files
    from legacy_wrappers import spool

    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0  # registry up: the authority file and the cache
    down = {**env, "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/missing/registry.db"}
    assert hot_path_modules(down)[0] == 0  # these settings are new: validated, then cached
    rc, modules = hot_path_modules(down, "exit 6")
    assert rc == 6 and not set(FULL_PATH) & modules, sorted(set(FULL_PATH) & modules)
    # a flip exported to this host while the registry is down: the file changed, it is read
    flipped = authority_files.resolve(JOB, [(None, "legacy"), (None, "celery")],
                                      {"dialect": "vixie", "expression": "* * * * *",
                                       "timezone": "UTC"})
    assert authority_files.write(tmp_path / "authority", flipped)
    rc, modules = hot_path_modules(down, "echo should-not-run; exit 9")
    assert rc == 0 and "bridge.services.authority_files" in modules
    records = [spool.decode(line) for path in spool.spool_files(env["BRIDGE_SPOOL_DIR"])
               for line in Path(path).read_bytes().splitlines()]
    assert [(r["role"], r.get("exit_status")) for r in records] == [
        ("authoritative", 0), ("authoritative", 6), ("stand-down", None)]
    assert all("registry unreachable" in r["error"] for r in records)


def test_an_authority_file_that_could_not_be_written_is_retried(tmp_path: Path) -> None:
    cache = shim_cache.JobCache("h", 0, 10, [])
    missing = str(tmp_path / "authority" / f"{JOB}.authority")
    shim_cache.remember_authority(cache, "h", [(None, "legacy")], missing)
    assert cache.authority != shim_cache.authority_fingerprint("h", [(None, "legacy")], missing)
    assert shim_cache.rows_behind(cache, missing) is None
    Path(missing).parent.mkdir()
    Path(missing).write_text("x")
    shim_cache.remember_authority(cache, "h", [(None, "legacy")], missing)
    assert cache.authority == shim_cache.authority_fingerprint("h", [(None, "legacy")], missing)
    assert shim_cache.rows_behind(cache, missing) == [(None, "legacy")]
