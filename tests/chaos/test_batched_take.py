"""The bridge transport takes a burst several messages per round trip, and keeps its delivery
guarantee doing so (``TAKE_SCRIPT``, :mod:`bridge.adapters.take`). Against a real Redis, real
kombu channels and a real Celery worker:

* one take moves up to the channel's free prefetch into the inflight list, in one ``EVAL``; the
  batch is then in the unacked hash and the inflight list is empty;
* a process SIGKILLed right after a take moved five messages (the reply never read) loses none
  of them: a real worker puts them all back and runs each once.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from kombu import Consumer, Queue

from bridge.adapters.inflight import TAKE_SCRIPT
from tests.chaos.harness import Chaos, slot_text
from tests.chaos.test_multi_queue_delivery import EXCHANGE, connection, inflight_items, publish
from tests.support import wait_for
from tests.support.procs import Taker

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=30), pytest.mark.timeout(150)]


def test_the_take_script_moves_up_to_its_limit_round_robin(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.lpush("ta", *[f"a{i}" for i in range(5)])  # RPOP order: a0 first
    r.lpush("tb", "b0")
    reply = r.eval(TAKE_SCRIPT, 4, "ta", "ia", "tb", "ib", 4)
    assert [x.decode() for x in reply] == ["ta", "a0", "tb", "b0", "ta", "a1", "ta", "a2"]
    assert r.llen("ia") == 3 and r.llen("ib") == 1 and r.llen("ta") == 2
    assert r.eval(TAKE_SCRIPT, 2, "empty", "ie", 10) == []
    r.close()


def test_one_take_moves_the_free_prefetch_and_registers_it_unacked(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    for i in range(10):
        publish(redis_url, "bt", {"n": i})
    got: list[Any] = []
    with connection(redis_url) as conn:
        consumer = Consumer(conn, [Queue("bt", EXCHANGE, routing_key="bt")],
                            callbacks=[lambda body, message: got.append(message)],
                            accept=["json"])
        consumer.qos(prefetch_count=4)
        with consumer:
            r.config_resetstat()
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=2)
            stats = r.info("commandstats")
            assert len(got) == 4  # the whole free prefetch, unacknowledged (never acked here)
            assert stats["cmdstat_eval"]["calls"] == 1, stats  # one take
            assert "cmdstat_blmove" not in stats
            assert r.hlen("unacked") == 4 and inflight_items(r) == 0 and r.llen("bt") == 6
            for message in got:
                message.ack()
            # acknowledgements are written in batches (bridge.adapters.acks), a moment later
            wait_for("the acks written", lambda: r.hlen("unacked") == 0, timeout=5)
    r.close()


def test_a_process_killed_after_a_batched_take_loses_none_of_the_batch(chaos: Chaos) -> None:
    out = chaos.tmp / "out"
    out.mkdir()
    jobs = [f"hourly-{i}" for i in range(5)]
    for job_id in jobs:
        chaos.add_command_job(job_id, f"echo $$ >> {out}/{job_id}")
    r = redis.Redis.from_url(chaos.redis_url)
    slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for job_id in jobs:
        chaos.client.send_task("bridge.run_job", args=[job_id, slot_text(slot)], queue="bridge")
    taker = Taker(chaos.redis_url, ["bridge"], wait_queue="bridge", count=5, prefetch=5)
    assert r.llen("bridge") == 0 and inflight_items(r) == 5 and r.hlen("unacked") == 0
    taker.kill()

    chaos.worker(concurrency=2)
    wait_for("every message run by the next worker",
             lambda: len(list(out.iterdir())) == len(jobs), 60, chaos.tail_logs())
    wait_for("the run rows", lambda: sorted(x.status for x in chaos.runs()) ==
             ["succeeded"] * len(jobs), 30, chaos.tail_logs())
    time.sleep(1)
    assert all(len(p.read_text().splitlines()) == 1 for p in out.iterdir())
    assert inflight_items(r) == 0
    r.close()
