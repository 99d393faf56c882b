"""What the shim's hot path imports, pinned module by module, and the cheap stand-ins it uses.

Every module the shim imports is paid on every cron job (issue 16: the added latency is about
half imports). The sets below are exact: a new import on the hot path fails here and has to be
added on purpose. (Module sets only, never timings.) The stand-ins -- ``_sqlite3`` without
``functools``, a spool line without ``json``, warnings silenced without ``warnings``, a private
directory without ``pathlib`` -- must behave exactly as what they replace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from bridge.adapters.fsperm import private_dir
from bridge.store.bare import Store, StoreError
from bridge.store.db import Registry
from bridge.store.models import ClaimRow
from legacy_wrappers import launcher, spool
from tests.support.services import empty_registry
from tests.support.shim import add_job, away_from_minute_edge, cron_env, hot_path_modules, runs

# beyond a bare ``python -I -S`` start (sha256 is ``_sha2`` from CPython 3.12 on)
SHARED = {"os", "os.path", "posixpath", "genericpath", "stat", "_stat", "_collections_abc",
          "__future__",
          "legacy_wrappers", "legacy_wrappers.shim", "legacy_wrappers.shim_os",
          "legacy_wrappers.shim_run", "legacy_wrappers.shim_consult",
          "legacy_wrappers.shim_cache", "legacy_wrappers.shim_plan", "legacy_wrappers.shim_exec",
          "bridge", "bridge.core", "bridge.core.samples", "bridge.store", "bridge.store.bare",
          "_datetime", "_bisect", "_sha256", "select"}
HOT_SQLITE = SHARED | {"_sqlite3", "_functools"}
HOT_SQLITE_DOWN = SHARED | {"legacy_wrappers.spool", "bridge.adapters", "bridge.adapters.fsperm",
                            "_json", "fcntl", "errno"}


def startup_modules() -> set[str]:
    done = subprocess.run([sys.executable, "-I", "-S", "-c",
                           "import sys; print('\\n'.join(sys.modules))"],
                          capture_output=True, check=True)
    return set(done.stdout.decode().split())


def added(modules: set[str]) -> set[str]:
    return {"_sha256" if m == "_sha2" else m for m in modules - startup_modules()}


@pytest.fixture
def sqlite_registry(sqlite_url: str) -> Iterator[Registry]:
    empty_registry(sqlite_url)
    reg = Registry(sqlite_url)
    add_job(reg, "* * * * *")
    yield reg
    reg.dispose()


@pytest.mark.integration  # the shim runs as a real subprocess on a registry
def test_a_warm_sqlite_run_imports_exactly_the_pinned_modules(
    tmp_path: Path, sqlite_registry: Registry, sqlite_url: str
) -> None:
    env = cron_env(tmp_path, sqlite_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0  # cold: fills the cache
    with sqlite_registry.session() as s:
        s.execute(delete(ClaimRow))
    rc, modules = hot_path_modules(env, "exit 5")
    assert rc == 5
    assert added(modules) == HOT_SQLITE, sorted(added(modules) ^ HOT_SQLITE)
    assert [(r.role, r.exit_status, r.error) for r in runs(sqlite_registry)] == [
        ("authoritative", 0, None), ("authoritative", 5, None)]


@pytest.mark.integration  # the shim runs as a real subprocess
def test_a_run_with_the_sqlite_registry_missing_imports_exactly_the_pinned_modules(
    tmp_path: Path, sqlite_registry: Registry, sqlite_url: str
) -> None:
    env = cron_env(tmp_path, sqlite_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0  # registry up: the authority file and the cache
    down = cron_env(tmp_path, f"sqlite:///{tmp_path}/missing/registry.db")
    assert hot_path_modules(down)[0] == 0  # new settings: validated, then cached
    rc, modules = hot_path_modules(down, "exit 6")
    assert rc == 6
    assert added(modules) == HOT_SQLITE_DOWN, sorted(added(modules) ^ HOT_SQLITE_DOWN)
    lines = [spool.decode(line) for f in spool.spool_files(str(tmp_path / "spool"))
             for line in Path(f).read_bytes().splitlines()]
    assert [r["exit_status"] for r in lines] == [0, 6]
    assert all("unable to open database file" in r["error"] for r in lines)


def test_a_missing_sqlite_file_is_unreachable_in_the_drivers_own_words(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "none.db"
    with pytest.raises(sqlite3.OperationalError) as driver:
        sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    with pytest.raises(StoreError) as ours:
        Store(f"sqlite:///{path}")
    assert str(ours.value) == f"database unreachable: {driver.value}"
    assert not path.exists()


@pytest.mark.integration  # a fresh interpreter (subprocess)
def test_sqlite_without_functools_leaves_the_real_functools_and_a_working_statement_cache(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.db"
    code = (
        "import sys; sys.path += " + repr(launcher.search_path()) + "\n"
        "from bridge.store.bare import sqlite_driver\n"
        "drv = sqlite_driver()\n"
        "assert 'functools' not in sys.modules and 'collections' not in sys.modules\n"
        f"c = drv.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('CREATE TABLE t (x)')\n"
        "for i in range(300):\n"
        "    c.execute('INSERT INTO t VALUES (?)', (i % 7,))\n"
        "    c.execute(f'SELECT count(*) FROM t WHERE x = {i % 150}').fetchone()\n"
        "print(c.execute('SELECT count(*), sum(x) FROM t').fetchone())\n"
        "import functools, sqlite3\n"
        "assert functools.lru_cache.__module__ == 'functools' and sqlite3.connect is drv.connect\n"
        "assert sqlite3.connect(':memory:').execute('select 1').fetchone() == (1,)\n"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True)
    want = f"(300, {sum(i % 7 for i in range(300))})\n".encode()
    assert (done.returncode, done.stdout, done.stderr) == (0, want, b"")


@pytest.mark.parametrize("record", [
    {"job_id": "a", "slot": "2026-03-08T07:00:00Z", "exit_status": 0, "attempts": 1,
     "output_sample": "caf\u00e9 \"q\" \\ \n\t\x00 \U0001f600 \udcff", "error": None,
     "task_state": None, "flag": True, "off": False, "big": -(10**30)},
    {"output_sample": "", "x\u00e9\"": "key escaped too"},
    {"ratio": 0.1, "nan": float("nan")},  # floats: left to json itself
    {"nested": {"a": [1, 2]}},
])
def test_a_spool_line_is_exactly_the_json_module_line(record: dict[str, object]) -> None:
    body = {"v": spool.SPOOL_VERSION, "source": "cron", **record}
    want = (json.dumps(body, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")
    assert spool.encode(record) == want


@pytest.mark.integration  # a fresh interpreter (subprocess)
def test_silenced_warnings_print_nothing_and_import_no_warnings_module() -> None:
    code = ("import sys; sys.path += " + repr(launcher.search_path()) + "\n"
            "from legacy_wrappers.shim_os import quiet_warnings\n"
            "quiet_warnings()\n"
            "import _warnings; _warnings.warn('hidden', UserWarning)\n"
            "assert 'warnings' not in sys.modules\n"
            "import warnings; warnings.warn('hidden too', UserWarning)\n")
    loud = code.replace("quiet_warnings()\n", "")
    runs = [subprocess.run([sys.executable, "-I", "-S", "-c", c], capture_output=True)
            for c in (code, loud)]
    assert (runs[0].returncode, runs[0].stderr) == (0, b"")
    assert b"UserWarning: hidden" in runs[1].stderr  # without it, the same warning is printed


@pytest.mark.parametrize("relative", ["a/b/c", "a/b/c/", "./a//b/c", "solo"])
def test_private_dir_creates_every_missing_directory_with_exactly_the_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: str
) -> None:
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        private_dir(relative)
        private_dir(relative)  # existing: nothing to do
    finally:
        os.umask(old)
    parts = [p for p in Path(relative).parts if p != "."]
    for depth in range(1, len(parts) + 1):
        st = (tmp_path / Path(*parts[:depth])).stat()
        assert oct(st.st_mode & 0o777) == oct(0o700)


@pytest.mark.integration  # a fresh interpreter (subprocess)
def test_the_fast_exit_runs_atexit_flushes_stdio_and_keeps_the_status() -> None:
    code = ("import sys, atexit; sys.path += " + repr(launcher.search_path()) + "\n"
            "atexit.register(lambda: sys.stdout.write('bye'))\n"
            "sys.stdout.write('buffered ')\n"
            "from legacy_wrappers.shim_os import exit_now\n"
            "exit_now(7)\n"
            "sys.stdout.write('never')\n")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True)
    assert (done.returncode, done.stdout, done.stderr) == (7, b"buffered bye", b"")


@pytest.mark.integration  # the shim runs as a real subprocess on a PostgreSQL registry
def test_a_warm_postgresql_run_adds_only_libpq_bindings_to_the_pinned_modules(
    tmp_path: Path, pg_url: str
) -> None:
    empty_registry(pg_url)
    reg = Registry(pg_url)
    add_job(reg, "* * * * *")
    env = cron_env(tmp_path, pg_url)
    away_from_minute_edge()
    assert hot_path_modules(env)[0] == 0
    with reg.session() as s:
        s.execute(delete(ClaimRow))
    rc, modules = hot_path_modules(env, "exit 3")
    want = SHARED | {"bridge.store.libpq", "_ctypes"}
    assert rc == 3 and added(modules) == want, sorted(added(modules) ^ want)
    assert [(r.role, r.exit_status, r.error) for r in runs(reg)] == [
        ("authoritative", 0, None), ("authoritative", 3, None)]
    reg.dispose()
