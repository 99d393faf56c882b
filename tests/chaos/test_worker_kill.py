"""Chaos: the worker is SIGKILLed (whole process group) in the middle of 100 runs.

100 ``(job, slot)`` messages (10 Celery-owned jobs x 10 hourly slots) go to a real prefork
worker; each run appends ``<job> <slot>`` to a file. Once ~30 runs are done the worker dies with
SIGKILL; a new worker starts. The broker redelivers the unacknowledged messages (visibility
timeout 5 s here), the claims of the runs that died mid-way are taken over when their lease
expires, and every slot ends up with exactly one authoritative record: ``succeeded`` (one
line) or, for a run that was in flight at the kill, ``lost`` (outcome unknown, default
``on_lost=skip``: at most one line, never run again). No slot runs twice.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.chaos.harness import CHAOS_APP, Chaos, slot_text
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=40), pytest.mark.timeout(150)]


@pytest.fixture
def chaos(chaos: Chaos) -> Chaos:
    chaos.env["BRIDGE_VISIBILITY_TIMEOUT"] = "5"
    return chaos


def test_worker_sigkill_mid_batch_every_slot_runs_exactly_once(chaos: Chaos) -> None:
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    jobs = [f"kill-{i}" for i in range(10)]
    for job_id in jobs:
        chaos.add_job(job_id, "0 * * * *", dialect="vixie", delay=0.1)
    expected = {(j, top - timedelta(hours=h)) for j in jobs for h in range(10)}
    worker = chaos.worker(concurrency=2, app=CHAOS_APP)
    for job_id, slot in sorted(expected, key=lambda x: (x[1], x[0])):
        chaos.client.send_task("bridge.run_job", args=[job_id, slot_text(slot)], queue="bridge")
    wait_for("30 runs", lambda: len(chaos.effects()) >= 30, 60, logs=chaos.tail_logs)
    worker.signal(signal.SIGKILL)
    worker.popen.wait(timeout=20)
    killed_after = len(chaos.effects())
    assert killed_after < 100, "the batch finished before the kill: make the runs longer"

    chaos.worker(concurrency=2, app=CHAOS_APP)

    def settled() -> Counter[tuple[str, datetime]]:
        return Counter((r.job_id, r.slot) for r in chaos.runs()
                       if r.role == "authoritative" and r.status in ("succeeded", "lost"))

    wait_for("all 100 slots settled", lambda: set(settled()) >= expected, 120,
             logs=chaos.tail_logs)
    # nothing queued or unacknowledged: no redelivery can still add a line or a row
    wait_for("nothing left to deliver or redeliver", chaos.broker_idle, 30, logs=chaos.tail_logs)

    effects = Counter(chaos.effects())
    assert chaos.duplicates() == {}, chaos.duplicates()
    assert set(settled()) == expected and set(settled().values()) == {1}
    finals = {(r.job_id, r.slot): r for r in chaos.runs()
              if r.role == "authoritative" and r.status in ("succeeded", "lost")}
    for key, row in finals.items():
        if row.status == "succeeded":
            assert effects[key] == 1, key
        else:
            assert row.error and row.error.startswith("outcome unknown"), row.error
    statuses = Counter((r.role, r.status) for r in chaos.runs())
    print(f"killed after {killed_after} runs; run rows: {dict(statuses)}")


def test_a_handler_killed_after_its_side_effect_runs_again_where_exactly_once_stops(
    chaos: Chaos,
) -> None:
    """What ``on_lost=rerun`` means: the claim makes a slot's *completed* execution unique, but
    a run that dies after its side effect and before its verdict is run again once its lease
    expires, so a non-idempotent handler's effect happens twice. The record says so: attempt 1
    ``interrupted`` (outcome unknown), attempt 2 ``succeeded``. (The default, ``skip``, records
    the slot ``lost`` instead: tests/wrappers/test_task_worker.py.)"""
    slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    chaos.add_job("effect-then-crash", "0 * * * *", dialect="vixie", hold=30, on_lost="rerun")
    worker = chaos.worker(concurrency=1, app=CHAOS_APP)
    chaos.client.send_task("bridge.run_job", args=["effect-then-crash", slot_text(slot)],
                           queue="bridge")
    wait_for("the side effect", lambda: chaos.effects(), 30, logs=chaos.tail_logs)
    worker.signal(signal.SIGKILL)  # after the effect, before the verdict
    worker.popen.wait(timeout=20)
    chaos.add_job("effect-then-crash", "0 * * * *", dialect="vixie", on_lost="rerun")
    chaos.worker(concurrency=1, app=CHAOS_APP)
    wait_for("the takeover after the lease", lambda: len(chaos.effects()) == 2, 90,
             logs=chaos.tail_logs)
    wait_for("the verdict", lambda: any(r.status == "succeeded" for r in chaos.runs()), 30)
    assert chaos.effects() == [("effect-then-crash", slot)] * 2
    done = [(r.role, r.status, r.attempts) for r in chaos.runs() if r.role == "authoritative"]
    assert done == [("authoritative", "interrupted", 1), ("authoritative", "succeeded", 2)]
