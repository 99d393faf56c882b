"""Takeover of a dead holder's claim (issue 20): the previous attempt's durable records decide.

Pure decision table, then a real worker facing the four states a killed worker can leave behind
(crafted in the registry exactly as the task writes them, so each is deterministic): finished
before the kill (never run again: the claim completes from the record), gated but never
released (run), in flight under ``skip`` (``lost``), and in flight under ``rerun`` while the old
command's process group still lives (the takeover waits until it is gone, then runs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from bridge.core.spec import LostPolicy
from bridge.store.models import ClaimRow, RunRow
from legacy_wrappers.takeover import Settle, StartedRecord, decide_takeover, started_key
from tests.support import wait_for
from tests.support.services import broker_idle
from tests.wrappers.test_task_worker import S1, Harness, lines, slot


def test_the_previous_attempts_record_decides_what_a_takeover_does() -> None:
    finished = StartedRecord("succeeded", 42, "h")
    never_released = StartedRecord("running", None, "h")
    in_flight = StartedRecord("running", 42, "h")
    in_process = StartedRecord("running", None, "h", callable_handler=True)
    for policy in LostPolicy:
        assert decide_takeover(None, policy) is Settle.RUN
        assert decide_takeover(never_released, policy) is Settle.RUN
        assert decide_takeover(finished, policy) is Settle.COMPLETE
    assert decide_takeover(in_flight, LostPolicy.SKIP) is Settle.LOST
    assert decide_takeover(in_process, LostPolicy.SKIP) is Settle.LOST
    assert decide_takeover(in_flight, LostPolicy.RERUN) is Settle.RERUN
    # a row a rerun takeover closed, whose own takeover then died before starting anything:
    # nothing is in flight, so the next takeover runs the slot (it does not "complete" it)
    closed = StartedRecord("interrupted", 42, "h", closed_by_takeover=True)
    assert decide_takeover(closed, LostPolicy.RERUN) is Settle.RUN
    assert started_key("a", slot(S1), 1) != started_key("a", slot(S1), 2)


@pytest.fixture
def harness(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url)
    yield h
    h.close()


def dead_holder(h: Harness, job_id: str, status: str, pid: int | None) -> None:
    """The rows a worker killed mid-run leaves: an expired running claim (attempt 1) and the
    attempt's started row (``status``/``pid`` as it was when the worker died)."""
    now = datetime.now(UTC)
    with h.registry.engine.begin() as conn:
        conn.execute(insert(ClaimRow.__table__).values(
            job_id=job_id, slot=slot(S1), holder="dead-task@" + socket.gethostname() + ":1",
            path="celery", state="running", attempts=1, expires_at=now - timedelta(seconds=5),
            created_at=now, updated_at=now))
        conn.execute(insert(RunRow.__table__).values(
            job_id=job_id, slot=slot(S1), path="celery", role="authoritative", status=status,
            fired_at=now, started_at=now, attempts=1, host=socket.gethostname(), pid=pid,
            exit_status=0 if status == "succeeded" else None,
            finished_at=now if status == "succeeded" else None,
            record_key=started_key(job_id, slot(S1), 1)))


@pytest.mark.integration
def test_a_takeover_never_repeats_a_finished_run_and_never_overlaps_a_live_one(
    harness: Harness,
) -> None:
    out = harness.tmp / "out.txt"
    for job_id in ("finished", "never-released", "in-flight-skip"):
        harness.add_job(job_id, f"echo {job_id} >> {out}")
    harness.add_job("in-flight-rerun", f"echo in-flight-rerun $(date +%s.%N) >> {out}",
                    on_lost=LostPolicy.RERUN)
    dead_holder(harness, "finished", "succeeded", 4242)
    dead_holder(harness, "never-released", "running", None)
    dead_holder(harness, "in-flight-skip", "running", 999_999)  # no such process
    orphan = subprocess.Popen(["sleep", "6"], start_new_session=True)  # the old command lives
    ended: list[float] = []
    reaper = threading.Thread(target=lambda: (orphan.wait(), ended.append(time.time())))
    reaper.start()  # reaped at once, like an orphan adopted by init
    dead_holder(harness, "in-flight-rerun", "running", orphan.pid)
    harness.start_worker()
    for job_id in ("finished", "never-released", "in-flight-skip", "in-flight-rerun"):
        harness.send(job_id, S1)  # the repair's (or a redelivery's) message
    wait_for("the rerun", lambda: any(x.startswith("in-flight-rerun") for x in lines(out)), 60)
    reaper.join(10)
    assert ended, "the takeover ran while the old command still ran"
    ran_at = float(next(x for x in lines(out) if x.startswith("in-flight-rerun")).split()[1])
    assert ran_at >= ended[0] - 0.05  # started only once the old group was gone
    wait_for("every slot settled", lambda: all(
        (c := harness.claims.get(j, slot(S1))) is not None and c.state != "running"
        for j in ("finished", "never-released", "in-flight-skip", "in-flight-rerun")), 30)
    wait_for("nothing left to deliver", lambda: broker_idle(harness.redis_url), 30)
    assert sorted(x.split()[0] for x in lines(out)) == ["in-flight-rerun", "never-released"]

    def final(job_id: str) -> tuple[str, list[tuple[str, int]]]:
        claim = harness.claims.get(job_id, slot(S1))
        assert claim is not None
        rows = [(r.status, r.attempts) for r in harness.runs(job_id)
                if r.role == "authoritative"]
        return claim.state.value, rows

    assert final("finished") == ("succeeded", [("succeeded", 1)])
    assert final("never-released") == ("succeeded", [("succeeded", 2)])
    [never] = [r for r in harness.runs("never-released") if r.role == "suppressed"]
    assert never.status == "suppressed" and never.error and never.error.startswith("never ran")
    assert final("in-flight-skip") == ("lost", [("lost", 1)])
    assert final("in-flight-rerun") == ("succeeded", [("interrupted", 1), ("succeeded", 2)])
    with pytest.raises(ProcessLookupError):
        os.killpg(orphan.pid, signal.SIGCONT)
