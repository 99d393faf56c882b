"""Chaos: the delivery window (issue 14.1). A worker killed after Redis handed it a message and
before it registered the message as unacknowledged must not lose it.

Made deterministic: the whole worker is frozen (SIGSTOP) while its blocking pop is outstanding,
a message is published (Redis hands it to the frozen worker's socket at once), and the worker is
SIGKILLed. With kombu's ``BRPOP`` the message is then in no list and no hash: it is gone (the
measured loss of issue 14). With the bridge transport's ``BLMOVE`` it sits in the dead worker's
inflight list, and the next worker puts it back on the queue and runs it (within the inflight
list's ``alive`` TTL, 30 s).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pytest
import redis

from tests.chaos.harness import Chaos, slot_text
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def blocked_pops(client: redis.Redis) -> list[str]:
    """The blocking pops some client has outstanding (``CLIENT LIST``: flag ``b``)."""
    return [c["cmd"] for c in client.client_list() if "b" in c.get("flags", "")]


@pytest.mark.slow(seconds=45)
def test_a_worker_killed_holding_an_unregistered_message_loses_nothing(chaos: Chaos) -> None:
    out = chaos.tmp / "ran.txt"
    chaos.add_command_job("hourly", f"echo $$ >> {out}")
    r = redis.Redis.from_url(chaos.redis_url)
    worker = chaos.worker(concurrency=1)
    wait_for("the worker's blocking pop", lambda: blocked_pops(r), 30, logs=chaos.tail_logs)
    print("blocking pop:", blocked_pops(r))
    worker.signal(signal.SIGSTOP)
    slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    chaos.client.send_task("bridge.run_job", args=["hourly", slot_text(slot)], queue="bridge")
    wait_for("Redis to hand the message over", lambda: r.llen("bridge") == 0, 10)
    assert r.hlen("unacked") == 0  # the frozen worker never registered it
    os.killpg(worker.pid, signal.SIGKILL)  # still frozen: no SIGCONT first, it never wakes
    worker.popen.wait(timeout=20)

    t0 = time.monotonic()
    chaos.worker(concurrency=1)
    wait_for("the message to be run by the next worker", lambda: out.exists(), 60,
             logs=chaos.tail_logs)
    print(f"recovered {time.monotonic() - t0:.1f} s after the restart")
    wait_for("the run row", lambda: [x.status for x in chaos.runs("hourly")] == ["succeeded"],
             30, logs=chaos.tail_logs)
    assert len(out.read_text().splitlines()) == 1
    r.close()
