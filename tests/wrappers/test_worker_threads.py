"""``bridge worker`` (the burst line: ``--pool threads``) runs ``bridge.run_job`` exactly once per
slot when many jobs fall due together and every message is delivered twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.cli.worker_cmd import worker_argv
from tests.support import wait_for
from tests.wrappers.test_task_worker import S1, Harness, Worker, lines

BRIDGE = str(Path(sys.executable).with_name("bridge"))
JOBS = 40


def test_the_worker_line_is_threads_sized_for_bursts_and_checks_its_options() -> None:
    argv = worker_argv("threads", 200, "bridge,reports", ["-n", "w1@%h"])
    assert argv[1:] == ["-A", "legacy_wrappers.tasks", "worker", "--pool", "threads",
                        "--concurrency", "200", "--without-gossip", "--without-mingle",
                        "-Q", "bridge,reports", "-n", "w1@%h"]
    with pytest.raises(ValueError, match="--pool"):
        worker_argv("forks", 2, None, [])
    with pytest.raises(ValueError, match="--concurrency"):
        worker_argv("threads", 0, None, [])


@pytest.mark.integration
def test_a_bad_pool_is_refused_with_exit_2() -> None:
    proc = subprocess.run([BRIDGE, "worker", "--pool", "forks"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --pool must be one of threads, prefork, solo, "
                                   "gevent, eventlet, not 'forks'")


@pytest.fixture
def harness(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url)
    yield h
    h.close()


def start_threads_worker(h: Harness) -> Worker:
    log = h.tmp / "threads-worker.log"
    env = {**os.environ, "BRIDGE_REDIS_URL": h.redis_url, "BRIDGE_DATABASE_URL": h.db_url,
           "BRIDGE_WORKER_SHUTDOWN_GRACE": "2", "BRIDGE_VISIBILITY_TIMEOUT": "3600"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BRIDGE, "worker", "--concurrency", "16", "-Q", "bridge", "--",
             "-n", f"threads-{os.getpid()}@%h", "-l", "INFO"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=h.tmp)
    worker = Worker(proc, log)
    h.workers.append(worker)
    wait_for("the worker to be ready", lambda: "ready." in log.read_text(), 60)
    return worker


@pytest.mark.integration
def test_a_burst_delivered_twice_runs_every_slot_once_on_the_threads_pool(
    harness: Harness,
) -> None:
    out = harness.tmp / "out"
    out.mkdir()
    for i in range(JOBS):
        harness.add_job(f"burst-{i:02d}", f"date +%s.%N >> {out}/burst-{i:02d}")
    worker = start_threads_worker(harness)
    for _ in range(2):  # every slot delivered twice, both copies queued at once
        for i in range(JOBS):
            harness.send(f"burst-{i:02d}", S1)
    wait_for("every delivery recorded", lambda: len(harness.all_runs()) == 2 * JOBS, 120)
    rows = harness.all_runs()
    roles = Counter((r.job_id, r.role, r.status) for r in rows)
    for i in range(JOBS):
        job = f"burst-{i:02d}"
        assert roles[(job, "authoritative", "succeeded")] == 1, job
        assert roles[(job, "suppressed", "suppressed")] == 1, job
        assert len(lines(out / job)) == 1, job
    worker.stop(signal.SIGTERM)
    assert worker.proc.returncode == 0
