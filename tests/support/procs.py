"""Real subprocesses for tests: each in its own session (so a test can SIGKILL / SIGSTOP it
whole), its output in a log file whose tail goes into the failure message / test report."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
SCHEDULER = "bridge.scheduler:BridgeScheduler"


class Proc:
    """One spawned process (and its session) with its log file."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.popen, self.log = popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def _group(self, sig: int) -> None:
        """Signal the whole session: a wrapper (``faketime``) may exit before its child."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        self._group(signal.SIGCONT)
        self._group(signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=20)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the session, wait until every member is gone, SIGKILL after ``timeout``."""
        self._group(signal.SIGCONT)
        self._group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)

        def group_gone() -> bool:  # the group is gone when nobody answers signal 0
            try:
                os.killpg(self.popen.pid, 0)
            except ProcessLookupError:
                return True
            return False

        with contextlib.suppress(AssertionError):
            wait_for("the process group to exit", group_gone, timeout, interval=0.1)
            return
        self.kill()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return f"--- {self.log.name}\n" + "\n".join(self.text().splitlines()[-lines:])


class Procs:
    """The processes one test spawned, logs in ``logdir``; ``close()`` kills what is left."""

    def __init__(self, logdir: Path, env: dict[str, str], cwd: Path | None = None) -> None:
        self.logdir, self.env, self.cwd = logdir, env, cwd or logdir
        self.all: list[Proc] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.logdir / f"{name}-{len(self.all)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, env={**self.env, **(env or {})}, cwd=self.cwd,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        proc = Proc(popen, log)
        self.all.append(proc)
        return proc

    def celery_worker(self, app: str = "legacy_wrappers.tasks", *, concurrency: int = 2,
                      queues: str = "bridge", env: dict[str, str] | None = None,
                      wait: bool = True, timeout: float = 90) -> Proc:
        """``celery -A app worker`` (prefork, no gossip/mingle/heartbeat); waits for "ready."."""
        proc = self.spawn("worker", [
            CELERY, "-A", app, "worker", "-P", "prefork", "-c", str(concurrency), "-Q", queues,
            "-n", f"w{len(self.all)}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-l", "INFO"], env)
        if wait:
            wait_for("the worker to be ready", lambda: "ready." in proc.text(), timeout,
                     logs=self.tail_logs)
        return proc

    def celery_beat(self, app: str = "bridge.celery_app", *, env: dict[str, str] | None = None,
                    prefix: list[str] | None = None) -> Proc:
        """``celery -A app beat -S bridge.scheduler:BridgeScheduler`` (``prefix``: a wrapper
        such as ``faketime``)."""
        n = len(self.all)
        return self.spawn("beat", [
            *(prefix or []), CELERY, "-A", app, "beat", "-S", SCHEDULER, "-l", "INFO",
            "-s", str(self.logdir / f"beat-schedule-{n}")], env)

    def tail_logs(self, lines: int = 30) -> str:
        return "\n".join(p.tail(lines) for p in self.all)

    def close(self) -> None:
        for proc in self.all:
            proc.kill()


TAKER = """
import sys, time
import redis
from kombu import Connection, Consumer, Exchange, Queue
url, names, wait = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
count, prefetch = int(sys.argv[4]), int(sys.argv[5])
conn = Connection(url, transport="bridge.adapters.transport:Transport",
                  transport_options={"priority_steps": [0]})
ex = Exchange("", type="direct")
consumer = Consumer(conn, [Queue(q, ex, routing_key=q) for q in names], callbacks=[],
                    accept=["json"])
if prefetch:
    consumer.qos(prefetch_count=prefetch)
consumer.consume()
channel = consumer.channel
channel.client.connection = channel.client.connection_pool.get_connection()  # as kombu's poller
channel._brpop_start()  # the take script is sent; its reply is never read
r = redis.Redis.from_url(url)
while r.llen(channel.inflight_key(wait)) < count:
    time.sleep(0.01)
print("taken", channel.alive_key, flush=True)
time.sleep(600)
"""


class Taker:
    """A child process consuming ``queues`` with the bridge transport: it sends one take script
    and never reads its reply, then sleeps once ``count`` messages of ``wait_queue`` are in its
    inflight list (``prefetch``: its QoS, 0 for none). :meth:`kill` is a SIGKILL right there."""

    def __init__(self, redis_url: str, queues: list[str], *, wait_queue: str, count: int = 1,
                 prefetch: int = 0) -> None:
        self.redis_url = redis_url
        self.popen = subprocess.Popen(
            [sys.executable, "-c", TAKER, redis_url, ",".join(queues), wait_queue, str(count),
             str(prefetch)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().split()
        assert line and line[0] == "taken", line
        self.alive_key = line[1]

    def kill(self) -> None:
        """SIGKILL, then delete its alive key (its expiry, TTL 30 s, without the wait)."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        r = redis.Redis.from_url(self.redis_url)
        try:
            r.delete(self.alive_key)
        finally:
            r.close()
