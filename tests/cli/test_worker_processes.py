"""``bridge worker --processes N``: N Celery workers under one supervisor
(:mod:`bridge.cli.worker_supervisor`): distinct node names, only the first serving metrics, a
killed child restarted, TERM reaching every child once, a child that cannot stay up stopping
the whole command with its exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.cli import worker_supervisor
from bridge.cli.worker_supervisor import Child, Supervisor, child_argvs, child_env
from tests.support import wait_for
from tests.wrappers.test_task_worker import S1, Harness

BRIDGE = str(Path(sys.executable).with_name("bridge"))


def test_each_child_gets_a_distinct_node_name() -> None:
    base = ["celery", "worker", "-Q", "bridge"]
    assert child_argvs([*base, "-n", "web1@%h", "-l", "INFO"], 2) == [
        [*base, "-n", "web1-1@%h", "-l", "INFO"], [*base, "-n", "web1-2@%h", "-l", "INFO"]]
    assert child_argvs([*base, "--hostname=w"], 2) == [[*base, "--hostname=w-1"],
                                                        [*base, "--hostname=w-2"]]
    assert child_argvs(base, 2) == [[*base, "-n", "bridge-1@%h"], [*base, "-n", "bridge-2@%h"]]


def test_only_the_first_child_serves_the_metrics_port() -> None:
    env = {"BRIDGE_METRICS_PORT": "9808"}
    assert child_env(env, 1)["BRIDGE_METRICS_PORT"] == "9808"
    assert child_env(env, 2)["BRIDGE_METRICS_PORT"] == "0"


@pytest.mark.integration
def test_a_child_that_cannot_stay_up_stops_the_supervisor_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_supervisor, "FIRST_BACKOFF", 0.01)
    monkeypatch.setattr(worker_supervisor, "POLL_SECONDS", 0.01)
    failing = Child(1, [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    steady = Child(2, [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    supervisor = Supervisor([failing, steady])
    assert supervisor.run() == 3
    assert failing.failed_starts == worker_supervisor.MAX_FAILED_STARTS
    assert steady.proc.returncode == -signal.SIGTERM  # the others were stopped, then reaped


@pytest.fixture
def harness(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url)
    yield h
    h.close()


def children_of(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return out


@pytest.mark.integration
@pytest.mark.slow(seconds=40)
@pytest.mark.timeout(180)
def test_the_processes_serve_a_killed_one_is_restarted_and_term_stops_them_all(
    harness: Harness,
) -> None:
    out = harness.tmp / "ran"
    harness.add_job("sup-job", f"echo $$ >> {out}")
    log = harness.tmp / "worker.log"
    env = {**os.environ, "BRIDGE_REDIS_URL": harness.redis_url,
           "BRIDGE_DATABASE_URL": harness.db_url, "BRIDGE_WORKER_SHUTDOWN_GRACE": "2"}
    name = f"sup{os.getpid()}"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [BRIDGE, "worker", "--processes", "2", "--concurrency", "4", "-Q", "bridge", "--",
             "-n", f"{name}@%h", "-l", "INFO"],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=harness.tmp,
            start_new_session=True)
    try:
        def ready() -> int:
            return log.read_text(errors="replace").count(" ready.")

        wait_for("both workers ready", lambda: ready() == 2, 90)
        text = log.read_text(errors="replace")
        assert f"{name}-1@" in text and f"{name}-2@" in text
        first = children_of(proc.pid)
        assert len(first) == 2
        harness.send("sup-job", S1)
        wait_for("the run", lambda: [r.status for r in harness.all_runs()] == ["succeeded"], 60)

        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        wait_for("the killed worker restarted", lambda: ready() == 3, 90)
        now = children_of(proc.pid)
        assert len(now) == 2 and killed not in now and max(first) in now
        assert "exited -9; restarting in 1 s" in log.read_text(errors="replace")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in now)
        assert log.read_text(errors="replace").count("worker: Warm shutdown") == 2
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_task_events_are_off_unless_asked_for() -> None:
    from bridge.cli.worker_cmd import worker_env

    assert "BRIDGE_TASK_EVENTS" not in worker_env({"PATH": "/bin"}, events=False)
    assert worker_env({"PATH": "/bin"}, events=True) == {"PATH": "/bin",
                                                         "BRIDGE_TASK_EVENTS": "1"}
