"""A threads-pool worker is warm before its first message: every pool thread started, each with
its registry connection, every job's spec decoded (the first burst after a start pays none of
it). A real ``celery worker --pool threads`` on a real Redis and SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.core.authority import Owner
from tests.chaos.harness import Chaos, slot_text
from tests.support import wait_for
from tests.support.procs import CELERY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def thread_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def test_a_threads_worker_starts_its_pool_and_decodes_its_jobs_before_the_first_message(
        chaos: Chaos) -> None:
    for i in range(3):
        chaos.add_job(f"warm-{i}", "* * * * *", dialect="vixie", owner=Owner.CELERY)
    worker = chaos.processes.spawn("worker", [
        CELERY, "-A", "legacy_wrappers.tasks", "worker", "--pool", "threads", "--concurrency",
        "12", "-Q", "bridge", "-n", "warm@%h", "--without-gossip", "--without-mingle", "-l",
        "INFO"])
    wait_for("the warm-up", lambda: "warmed up: 12 pool threads started, 3 job specs decoded"
             in worker.text(), 60, logs=chaos.tail_logs)
    assert thread_count(worker.popen.pid) >= 13  # the consumer + 12 pool threads, all idle
    registry_file = Path(chaos.db_url.split(":///", 1)[1])
    opened = [fd for fd in Path(f"/proc/{worker.popen.pid}/fd").iterdir()
              if fd.resolve() == registry_file.resolve()]
    assert len(opened) >= 12, len(opened)  # each pool thread's registry connection
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    chaos.client.send_task("bridge.run_job", args=["warm-0", slot_text(slot)], queue="bridge")
    wait_for("the run recorded", lambda: chaos.runs("warm-0"), 30, logs=chaos.tail_logs)
