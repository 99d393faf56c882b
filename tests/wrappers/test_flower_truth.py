"""Flower tells the truth (issue 14.5): a run whose command exits non-zero is a Celery FAILURE
carrying its exit code and output digest, recorded in the registry first, and never retried or
redelivered by Celery; the task is found in Flower's list by its job and its slot."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.flower_cmd import flower_command
from tests.ops.harness import FLOWER_AUTH, OpsHarness, flower_answers, flower_tasks
from tests.support import free_port, wait_for
from tests.support.services import broker_idle

SLOT = "2026-03-08T07:00:00Z"
AUTH = FLOWER_AUTH


@pytest.fixture
def ops(tmp_path: Path, redis_url: str) -> Iterator[OpsHarness]:
    h = OpsHarness(tmp_path, redis_url)
    yield h
    h.close()






@pytest.mark.integration
def test_a_failed_run_is_a_flower_failure_with_its_exit_code_and_digest(ops: OpsHarness) -> None:
    ops.add_job("nightly-export", "echo boom; exit 3")
    ops.add_job("fine", "true")
    port = free_port()
    log = (ops.tmp / "flower.log").open("wb")
    argv, auth_env = flower_command(port, "127.0.0.1", AUTH, None, None, 1000)
    flower = subprocess.Popen(argv,
                              env={**os.environ, **ops.env, **auth_env}, stdout=log,
                              stderr=subprocess.STDOUT, cwd=ops.tmp, start_new_session=True)
    try:
        wait_for("Flower to answer", lambda: flower_answers(port), 60)
        ops.start_worker().wait_task_events()  # off by default: Flower switches them on
        ops.client.send_task("bridge.run_job", args=["nightly-export", SLOT], queue="bridge")
        ops.client.send_task("bridge.run_job", args=["fine", SLOT], queue="bridge")

        def failed() -> list[dict[str, Any]]:
            return list(flower_tasks(port, "state=FAILURE").values())

        [task] = wait_for("Flower to list the failure", failed, 60)
        digest = hashlib.sha256(b"boom\n").hexdigest()
        assert task["name"] == "bridge.run_job"
        assert "exit 3" in task["exception"] and digest[:16] in task["exception"]
        assert "nightly-export" in task["args"] and SLOT in task["args"]
        # findable by its job and by its slot in the task list
        assert list(flower_tasks(port, "search=nightly-export")) == [task["uuid"]]
        assert task["uuid"] in flower_tasks(port, f"search={SLOT}")
        ok = wait_for("the success", lambda: list(flower_tasks(port, "state=SUCCESS").values()))
        assert [t["args"] for t in ok] == [str(["fine", SLOT])] or "fine" in ok[0]["args"]
        [row] = [r for r in ops.runs("nightly-export") if r.role == "authoritative"]
        assert (row.status, row.exit_status, row.output_digest) == ("failed", 3, digest)
        # nothing queued or held unacknowledged (a retry's countdown would be): no retry follows
        wait_for("nothing left to deliver", lambda: broker_idle(ops.redis_url), 30)
        assert len(failed()) == 1 and not flower_tasks(port, "state=RETRY")
        assert len(ops.runs("nightly-export")) == 1
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)
        log.close()
