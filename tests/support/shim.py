"""The shim (``bridge-cron-shell``) as cron runs it, for the tests: its path, the test job, the
environment cron passes, running it (or the plain shell, or its hot path in a fresh
``python -I -S``) and reading the run rows it wrote."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.core.authority import Owner
from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
from bridge.store.db import Registry
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo
from legacy_wrappers import launcher
from legacy_wrappers.shim_os import child_environment
from tests.support.net import free_port

SHIM = str(Path(sys.executable).parent / "bridge-cron-shell")
JOB = "etc-cron.d-shimtest-1"


def add_job(reg: Registry, expression: str, owner: Owner = Owner.LEGACY) -> None:
    with reg.session() as s:
        schedule = ScheduleSpec(dialect=Dialect.VIXIE, expression=expression, timezone="UTC")
        JobRepo(s).upsert(JobSpec(
            id=JOB, schedule=schedule, handler=CommandHandler(command="true"),
            source=SourceLocation("/etc/cron.d/x", 1)))
        AuthorityRepo(s).append(JOB, owner, effective_slot=None, actor="test", reason=None)


def cron_env(tmp_path: Path, db_url: str, job: str = JOB, **extra: str) -> dict[str, str]:
    """What cron passes: its defaults, the crontab's variables, the rewrite's lines."""
    env = {
        "HOME": str(tmp_path), "LOGNAME": "root", "PATH": "/usr/bin:/bin", "SHELL": SHIM,
        "BRIDGE_SHELL": "/bin/sh", "BRIDGE_JOB": job, "FOO": "bar baz",
        "BRIDGE_DATABASE_URL": db_url, "BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "BRIDGE_AUTHORITY_DIR": str(tmp_path / "authority"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
    }
    env.update(extra)
    return env


def run(argv: list[str], env: dict[str, str], stdin: bytes = b"", merged: bool = False,
        **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv, env=env, input=stdin, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE, timeout=120,
        cwd=env["HOME"], **kw)


def shim(env: dict[str, str], command: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return run([SHIM, "-c", command], env, **kw)


def plain(env: dict[str, str], command: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    shell, child_env = child_environment(env)
    return run([shell, "-c", command], child_env, **kw)


def runs(reg: Registry) -> list[RunRow]:
    with reg.session() as s:
        return RunRepo(s).for_job(JOB)


def away_from_minute_edge() -> None:
    """The slot of an every-minute job is the current minute: do not straddle two."""
    second = datetime.now(UTC).second
    if second >= 56:
        time.sleep(61 - second)  # the minute boundary IS the condition


def dead_pg() -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"


def hot_path_modules(env: dict[str, str], command: str = "true") -> tuple[int, set[str]]:
    """Run the shim's main as the launcher starts it (``python -I -S``, the launcher's path)
    in a fresh interpreter; its exit status and every module it imported."""
    code = (f"import sys; sys.path += {launcher.search_path()!r}\n"
            "from legacy_wrappers.shim import main\n"
            f"rc = main(['bridge-cron-shell', '-c', {command!r}])\n"
            "sys.stdout.write('\\n'.join(sorted(sys.modules)))\n"
            "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, cwd=env["HOME"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return done.returncode, set(done.stdout.decode().split())
