"""The bridge transport on several queues (a per-host worker: its host's queue + the shared one).

No ``BRPOP`` on a queue: a message is moved atomically into the channel's inflight list by the
take script, and the channel waits on the queues' bells. Checked against a real Redis, real kombu
channels and a real Celery worker:

* a two-queue consumer gets every message of both queues, in turn, and leaves no inflight item;
* a message pushed by a producer that rings no bell is still delivered (at the wait timeout);
* the live consumers of each queue are read from the transport's liveness keys, and a channel
  that closes stops counting;
* a process SIGKILLed right after its take moved a message (the reply never read) loses
  nothing: a real two-queue worker puts it back and runs it once.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from bridge.adapters.inflight import (
    ALIVE_PREFIX,
    INFLIGHT_INDEX,
    INFLIGHT_PREFIX,
    bell_key,
    live_consumers,
)
from tests.chaos.harness import Chaos, slot_text
from tests.support import wait_for
from tests.support.procs import Taker

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=40), pytest.mark.timeout(150)]

TRANSPORT = "bridge.adapters.transport:Transport"
EXCHANGE = Exchange("", type="direct")


def connection(url: str) -> Connection:
    return Connection(url, transport=TRANSPORT, transport_options={"priority_steps": [0]})


def publish(url: str, queue: str, body: dict[str, Any]) -> None:
    with connection(url) as conn:
        Producer(conn.channel(), exchange=EXCHANGE, serializer="json").publish(
            body, routing_key=queue)


def inflight_items(r: redis.Redis) -> int:
    return sum(int(r.llen(k)) for k in r.scan_iter(f"{INFLIGHT_PREFIX}*")
               if k.decode() != INFLIGHT_INDEX)


def test_a_two_queue_consumer_takes_every_message_of_both_queues_in_turn(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    for i in range(3):
        publish(redis_url, "mq.host.web-01", {"n": f"host-{i}"})
        publish(redis_url, "mq", {"n": f"shared-{i}"})
    assert r.llen(bell_key("mq")) == 3 and r.llen(bell_key("mq.host.web-01")) == 3
    got: list[str] = []
    with connection(redis_url) as conn:
        queues = [Queue(q, EXCHANGE, routing_key=q) for q in ("mq", "mq.host.web-01")]

        def on_message(body: Any, message: Any) -> None:
            got.append(body["n"])
            message.ack()

        with Consumer(conn, queues, callbacks=[on_message], accept=["json"]):
            deadline = time.monotonic() + 10
            while len(got) < 6 and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
            assert live_consumers(r) == {"mq": 1, "mq.host.web-01": 1}
    expected = [f"host-{i}" for i in range(3)] + [f"shared-{i}" for i in range(3)]
    assert sorted(got) == sorted(expected)
    kinds = [n.split("-")[0] for n in got]
    assert all(a != b for a, b in itertools.pairwise(kinds)), got  # round robin
    assert r.llen("mq") == 0 and r.llen("mq.host.web-01") == 0
    assert inflight_items(r) == 0
    assert live_consumers(r) == {}  # the channel closed: its alive key is gone


def test_a_message_pushed_without_a_bell_is_delivered_at_the_wait_timeout(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    publish(redis_url, "scratch", {"n": "foreign"})
    raw = r.rpop("scratch")
    r.delete(bell_key("scratch"))
    got: list[str] = []
    with connection(redis_url) as conn:
        queues = [Queue(q, EXCHANGE, routing_key=q) for q in ("mq", "mq.host.web-01")]

        def on_message(body: Any, message: Any) -> None:
            got.append(body["n"])
            message.ack()

        with Consumer(conn, queues, callbacks=[on_message], accept=["json"]):
            for _ in range(3):  # the channel is now waiting on the bells
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.3)
            assert raw is not None
            r.lpush("mq.host.web-01", raw)  # a foreign producer: no bell
            t0 = time.monotonic()
            while not got and time.monotonic() - t0 < 5:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
    assert got == ["foreign"]
    assert time.monotonic() - t0 < 3


def test_a_process_killed_after_its_take_moved_a_message_loses_nothing(chaos: Chaos) -> None:
    out = chaos.tmp / "ran.txt"
    chaos.add_command_job("hourly", f"echo $$ >> {out}")
    r = redis.Redis.from_url(chaos.redis_url)
    host_queue = "bridge.host.chaos-1"
    slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    chaos.client.send_task("bridge.run_job", args=["hourly", slot_text(slot)], queue=host_queue)
    taker = Taker(chaos.redis_url, ["bridge", host_queue], wait_queue=host_queue)
    assert r.llen(host_queue) == 0 and inflight_items(r) == 1  # moved, never delivered
    taker.kill()

    t0 = time.monotonic()
    chaos.worker(concurrency=1, queues=f"bridge,{host_queue}")
    wait_for("the message to be run by the next worker", lambda: out.exists(), 60,
             chaos.tail_logs())
    print(f"recovered {time.monotonic() - t0:.1f} s after the restart")
    wait_for("the run row", lambda: [x.status for x in chaos.runs("hourly")] == ["succeeded"],
             30, chaos.tail_logs())
    assert len(out.read_text().splitlines()) == 1
    assert inflight_items(r) == 0
    consumers = live_consumers(r)
    assert consumers.get(host_queue) == 1 and consumers.get("bridge") == 1, consumers
    assert not [k for k in r.scan_iter(f"{ALIVE_PREFIX}*") if k.decode().endswith(taker.alive_key)]
    r.close()


def test_an_idle_two_queue_worker_waits_on_the_bells_not_on_the_queues(chaos: Chaos) -> None:
    r = redis.Redis.from_url(chaos.redis_url)
    chaos.worker(concurrency=1, queues="bridge,bridge.host.chaos-2")
    wait_for("the worker's wait", lambda: any("b" in c.get("flags", "") for c in r.client_list()),
             30, chaos.tail_logs())
    assert live_consumers(r) == {"bridge": 1, "bridge.host.chaos-2": 1}
    r.lpush(bell_key("bridge.host.chaos-2"), "1")  # a wake-up with no message behind it
    wait_for("the worker to take the token", lambda: r.llen(bell_key("bridge.host.chaos-2")) == 0,
             10, chaos.tail_logs())
    wait_for("the worker to wait again",
             lambda: any("b" in c.get("flags", "") for c in r.client_list()), 10)
    assert inflight_items(r) == 0 and r.llen("bridge.host.chaos-2") == 0
    r.close()


def test_a_two_queue_worker_sigkilled_mid_batch_runs_every_slot_once(tmp_path: Path,
                                                                     redis_url: str) -> None:
    """As tests/chaos/test_worker_kill.py, with the messages split over a host's queue and the
    shared one: 60 slots, the whole worker SIGKILLed after ~20 runs, a new one on both queues;
    every slot ends with exactly one authoritative record, none runs twice."""
    from collections import Counter
    from datetime import timedelta

    from tests.chaos.harness import CHAOS_APP

    chaos = Chaos(tmp_path, redis_url)
    chaos.env["BRIDGE_VISIBILITY_TIMEOUT"] = "5"
    queues = "bridge,bridge.host.chaos-3"
    try:
        top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        jobs = [f"mq-{i}" for i in range(6)]
        for job_id in jobs:
            chaos.add_job(job_id, "0 * * * *", dialect="vixie", delay=0.1)
        expected = {(j, top - timedelta(hours=h)) for j in jobs for h in range(10)}
        worker = chaos.worker(concurrency=2, app=CHAOS_APP, queues=queues)
        for n, (job_id, slot) in enumerate(sorted(expected, key=lambda x: (x[1], x[0]))):
            queue = "bridge" if n % 2 else "bridge.host.chaos-3"
            chaos.client.send_task("bridge.run_job", args=[job_id, slot_text(slot)], queue=queue)
        wait_for("20 runs", lambda: len(chaos.effects()) >= 20, 60, chaos.tail_logs())
        worker.signal(signal.SIGKILL)
        worker.popen.wait(timeout=20)
        assert len(chaos.effects()) < 60, "the batch finished before the kill"
        chaos.worker(concurrency=2, app=CHAOS_APP, queues=queues)

        def settled() -> Counter[tuple[str, datetime]]:
            return Counter((r.job_id, r.slot) for r in chaos.runs()
                           if r.role == "authoritative" and r.status in ("succeeded", "lost"))

        wait_for("all 60 slots settled", lambda: set(settled()) >= expected, 120,
                 chaos.tail_logs())
        time.sleep(3)  # redeliveries still in flight would show up as extra lines
        assert chaos.duplicates() == {}, chaos.duplicates()
        assert set(settled()) == expected and set(settled().values()) == {1}
        effects = Counter(chaos.effects())
        assert all(n == 1 for n in effects.values()), effects
    finally:
        chaos.close()
