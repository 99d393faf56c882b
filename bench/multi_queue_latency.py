"""Measure what consuming several queues costs the bridge transport in hand-over latency.

A kombu consumer (the bridge transport, ``bridge.adapters.transport``) sits idle on a private
``redis-server``; a producer publishes one message at a time (random pauses, so the consumer is
always back in its blocking wait) and the consumer notes how long after the publish the message
reached its callback. Cases:

* ``single``: a channel consuming one queue (``BLMOVE``, the reference);
* ``multi-first`` / ``multi-second``: a channel consuming two queues (take + bell wait), the
  message on the first or the second queue;
* ``multi-foreign``: as ``multi-second``, but pushed by a producer that rings no bell (a raw
  ``LPUSH`` of the same message): found at the wait's timeout.

    .venv/bin/python bench/multi_queue_latency.py [--messages 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRANSPORT = "bridge.adapters.transport:Transport"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def connection(url: str) -> Connection:
    return Connection(url, transport=TRANSPORT,
                      transport_options={"priority_steps": [0]})


def measure(url: str, consumed: list[str], target: str, n: int, foreign: bool) -> list[float]:
    """Publish ``n`` messages to ``target`` one at a time; return the hand-over latencies (ms)."""
    exchange = Exchange("", type="direct")
    got: list[float] = []
    arrived = threading.Event()
    stop = threading.Event()

    def consume() -> None:
        with connection(url) as conn:
            queues = [Queue(q, exchange, routing_key=q) for q in consumed]

            def on_message(body: Any, message: Any) -> None:
                got.append((time.time() - float(body["sent"])) * 1000)
                message.ack()
                arrived.set()

            with Consumer(conn, queues, callbacks=[on_message], accept=["json"]):
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.5)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    raw = redis.Redis.from_url(url)
    with connection(url) as conn:
        producer = Producer(conn.channel(), exchange=exchange, serializer="json")
        time.sleep(1.5)  # the consumer is up and waiting
        for _ in range(n):
            arrived.clear()
            time.sleep(random.uniform(0.02, 0.08))  # the consumer goes back to its wait
            if foreign:
                body = {"sent": time.time()}
                producer.publish(body, routing_key="bench.scratch")
                item = raw.rpop("bench.scratch")  # the exact message, pushed without a bell
                assert item is not None
                payload = json.loads(item)
                payload["body"] = _rebody(payload, time.time())
                raw.lpush(target, json.dumps(payload))
            else:
                producer.publish({"sent": time.time()}, routing_key=target)
            if not arrived.wait(5):
                raise RuntimeError(f"message to {target} not delivered within 5 s")
    stop.set()
    thread.join(5)
    return got


def _rebody(payload: dict[str, Any], sent: float) -> str:
    import base64

    return base64.b64encode(json.dumps({"sent": sent}).encode()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mq-latency-"))
    proc, url = start_redis(work)
    cases = [
        ("single", ["q.a"], "q.a", False),
        ("multi-first", ["q.a", "q.b"], "q.a", False),
        ("multi-second", ["q.a", "q.b"], "q.b", False),
        ("multi-foreign", ["q.a", "q.b"], "q.b", True),
    ]
    try:
        print(f"{'case':14} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, consumed, target, foreign in cases:
            n = args.messages if not foreign else max(10, args.messages // 10)
            lat = sorted(measure(url, consumed, target, n, foreign))
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"{name:14} {len(lat):4} {statistics.median(lat):8.2f} {p99:8.2f} "
                  f"{lat[-1]:8.2f}")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
