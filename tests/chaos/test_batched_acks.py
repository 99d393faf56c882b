"""Acknowledgements reach Redis in batches (:mod:`bridge.adapters.acks`), and none is lost.

Against a real Redis and real kombu channels on the bridge transport:

* a burst of acks from many threads at once is written in a few ``MULTI`` pipelines, not one
  per message, and empties the unacked hash and its index;
* closing the channel (a worker's warm shutdown) writes what is still pending before it returns;
* Redis refusing the write (a real refusal: an ACL without ``HDEL``) keeps the acks pending and
  writes them once Redis accepts again; meanwhile the messages stay unacknowledged, where a
  redelivery would find them (the claim makes that a suppressed copy, never a second run).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
import redis
from kombu import Consumer, Queue
from kombu.utils.json import loads

from bridge.adapters import acks as acks_module
from tests.chaos.test_multi_queue_delivery import EXCHANGE, connection, publish
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def consume(conn: Any, queue: str, n: int) -> list[Any]:
    got: list[Any] = []
    consumer = Consumer(conn, [Queue(queue, EXCHANGE, routing_key=queue)],
                        callbacks=[lambda body, message: got.append(message)], accept=["json"])
    consumer.qos(prefetch_count=n)
    consumer.consume()
    for _ in range(50):
        if len(got) >= n:
            break
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.2)
    assert len(got) == n, f"consumed {len(got)} of {n}"
    return got


def ack_all_at_once(messages: list[Any]) -> None:
    go = threading.Event()
    threads = [threading.Thread(target=lambda m=m: (go.wait(), m.ack())) for m in messages]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()


def test_a_burst_of_acks_is_written_in_a_few_pipelines(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    for i in range(60):
        publish(redis_url, "ba", {"n": i})
    with connection(redis_url) as conn:
        got = consume(conn, "ba", 60)
        assert r.hlen("unacked") == 60 and r.zcard("unacked_index") == 60
        r.config_resetstat()
        ack_all_at_once(got)
        wait_for("every ack written", lambda: r.hlen("unacked") == 0, timeout=5, interval=0.01)
        assert r.zcard("unacked_index") == 0
        stats = r.info("commandstats")
        assert stats["cmdstat_hdel"]["calls"] <= 6, stats["cmdstat_hdel"]  # 60 acks
        assert stats["cmdstat_zrem"]["calls"] == stats["cmdstat_hdel"]["calls"]
        assert stats["cmdstat_exec"]["calls"] == stats["cmdstat_hdel"]["calls"]  # MULTI/EXEC
    r.close()


def test_closing_the_channel_writes_the_pending_acks(redis_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acks_module, "LINGER_SECONDS", 30.0)  # the thread would wait 30 s
    r = redis.Redis.from_url(redis_url)
    for i in range(5):
        publish(redis_url, "bc", {"n": i})
    conn = connection(redis_url)
    got = consume(conn, "bc", 5)
    for message in got:
        message.ack()
    assert r.hlen("unacked") == 5  # pending: the flusher lingers
    conn.release()  # closes the channel, as a worker's warm shutdown does
    assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0
    r.close()


def test_acks_refused_by_redis_stay_pending_and_are_written_later(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    r = redis.Redis.from_url(redis_url)
    for i in range(4):
        publish(redis_url, "bo", {"n": i})
    try:
        with connection(redis_url) as conn:
            got = consume(conn, "bo", 4)
            r.execute_command("ACL", "SETUSER", "default", "-hdel")  # Redis now refuses acks
            with caplog.at_level("WARNING", logger="bridge.adapters.acks"):
                for message in got:
                    message.ack()
                wait_for("the refusal logged", lambda: "could not write" in caplog.text,
                         timeout=5, interval=0.05)
            assert r.hlen("unacked") == 4  # nothing lost: still where a redelivery finds it
            r.execute_command("ACL", "SETUSER", "default", "+hdel")
            wait_for("the acks written after the refusal", lambda: r.hlen("unacked") == 0,
                     timeout=5, interval=0.05)
            assert r.zcard("unacked_index") == 0
    finally:
        r.execute_command("ACL", "SETUSER", "default", "+@all")
        r.close()


def test_an_unacknowledged_batch_goes_back_to_its_queue_intact(redis_url: str) -> None:
    """The unacked entries of a batched take (built around each message's own text) are what
    kombu restores from: closing the channel unacknowledged puts every message back, equal."""
    r = redis.Redis.from_url(redis_url)
    for i in range(6):
        publish(redis_url, "br", {"n": i, "text": "caf\u00e9 \"quoted\" \\ slash"})
    before = sorted(r.lrange("br", 0, -1))
    bodies: list[Any] = []
    with connection(redis_url) as conn:
        got = consume(conn, "br", 6)
        bodies = sorted(m.payload["n"] for m in got)
        assert r.llen("br") == 0 and r.hlen("unacked") == 6
    assert bodies == list(range(6))
    wait_for("the batch restored", lambda: r.llen("br") == 6, timeout=5, interval=0.05)
    assert r.hlen("unacked") == 0
    restored = sorted(r.lrange("br", 0, -1))
    assert [loads(x)["body"] for x in restored] == [loads(x)["body"] for x in before]
    r.close()
