"""The README's first command on a fresh checkout, with no test extras installed.

A green suite in a venv that has the test extras can hide a missing runtime dependency (kombu's
Redis transport needs ``packaging``, which reached the tests only through pytest). So this test
copies the working tree like a fresh clone, runs ``.ci/quickstart`` there (which makes its own
venv with ``pip install -e .`` and NO extras), imports every module of the four packages in that
venv, then starts a real Celery worker and a real beat from it and waits for one slot of a
quickstart job to run through ``bridge.run_job`` and be recorded in the registry.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support import wait_for

# one worker runs the module: its tests share one clean venv (a module fixture)
pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=70),
              pytest.mark.xdist_group("fresh-install")]

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bridge", "crontab_import", "legacy_wrappers", "shadow")

IMPORT_ALL = """
import importlib, pkgutil, sys
names = []
for top in sys.argv[1:]:
    pkg = importlib.import_module(top)
    names.append(top)
    for info in pkgutil.walk_packages(pkg.__path__, top + "."):
        if ".migrations" in info.name:
            continue  # Alembic scripts run inside Alembic, not as importable modules
        importlib.import_module(info.name)
        names.append(info.name)
from bridge.celery_app import app
assert "bridge.run_job" in app.tasks, sorted(app.tasks)
print(len(names))
"""


def fresh_copy(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files, as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        src = REPO / rel
        if not src.exists():  # deleted in the working tree, not yet committed
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory, redis_factory: type) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("fresh")
    checkout = fresh_copy(root / "cron-bridge")
    redis = redis_factory.start()  # type: ignore[attr-defined]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BRIDGE_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PATH"] = ":".join(
        p for p in env.get("PATH", "").split(":") if not p.startswith(str(REPO))
    )
    env.update(
        BRIDGE_REDIS_URL=redis.url,
        BRIDGE_DATABASE_URL=f"sqlite:///{root}/registry.db",
        XDG_DATA_HOME=str(root / "data"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    proc = subprocess.run(
        ["bash", ".ci/quickstart"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    yield {"checkout": checkout, "env": env, "proc": proc, "root": root}


def test_quickstart_exits_zero_without_warnings(quickstart: dict) -> None:
    proc = quickstart["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Warning" not in output and "deprecated" not in output, output[-3000:]
    assert "internal error" not in output
    assert "billing-nightly" in output and "redbeat" in output


def test_clean_venv_has_no_test_extras_and_imports_every_module(quickstart: dict) -> None:
    python = quickstart["checkout"] / ".venv" / "bin" / "python"
    assert quickstart["proc"].returncode == 0
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('pytest') is None)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "True", "the quickstart venv must not contain the test extras"
    done = subprocess.run(
        [str(python), "-c", IMPORT_ALL, *PACKAGES],
        cwd=quickstart["root"],  # not the checkout: the installed package, not the source tree
        env=quickstart["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) > 60


def _runs(db: Path, job_id: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select slot, role, status from runs where job_id = ? and path = 'celery'", (job_id,)
        ).fetchall()


def test_real_worker_and_beat_from_the_clean_venv_run_a_quickstart_slot(quickstart: dict) -> None:
    assert quickstart["proc"].returncode == 0
    checkout: Path = quickstart["checkout"]
    celery = checkout / ".venv" / "bin" / "celery"
    env = quickstart["env"]
    logs = quickstart["root"]
    procs = [
        subprocess.Popen(
            [str(celery), "-A", "bridge.celery_app", *args],
            cwd=logs,
            env=env,
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, args in (
            # the quickstart's crontab jobs are bound to this host: its queue and the shared one
            ("worker", ["worker", "-Q", f"bridge,bridge.host.{socket.gethostname()}", "-c", "1",
                        "--loglevel", "INFO"]),
            ("beat", ["beat", "-S", "bridge.scheduler:BridgeScheduler", "--loglevel", "INFO"]),
        )
    ]
    db = quickstart["root"] / "registry.db"
    try:
        def heartbeat_ran() -> list[tuple[str, str, str]]:
            for p in procs:
                assert p.poll() is None, (logs / "worker.log").read_text()[-3000:] + (
                    logs / "beat.log"
                ).read_text()[-3000:]
            return _runs(db, "alice-heartbeat")

        runs = wait_for("the heartbeat job's run (it fires every minute)", heartbeat_ran, 150,
                        interval=1, logs=lambda: (logs / "worker.log").read_text()[-3000:])
        slot, role, status = runs[0]
        assert datetime.fromisoformat(slot).second == 0, slot  # a cron minute, stamped by beat
        assert (role, status) == ("observe", "observed"), runs  # legacy owns it: Celery observes
    finally:
        for p in procs:
            with _quiet():
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ProcessLookupError


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
