"""Per-group ``max_concurrency``: the Redis semaphore on a private redis-server, the deferred
claim it parks a slot in, and a real Celery worker (prefork, 4 children) running six jobs of
one group limited to two at a time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from bridge.celery_app import make_app
from bridge.core.authority import Owner
from bridge.core.claims import AlreadyClaimed, ClaimState, Holder, LeaseTerms, RetryGrant
from bridge.core.config import Settings
from bridge.core.errors import ParseError, SpecError
from bridge.core.spec import CommandHandler, Dialect, JobSpec, Policies, ScheduleSpec
from bridge.store.db import Registry
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from crontab_import.quartz.handlers import parse_handler_map
from crontab_import.quartz.tree import NS
from crontab_import.quartz.xml_file import parse_quartz_xml
from legacy_wrappers.claims import Claims, Lease
from legacy_wrappers.concurrency import GroupSemaphore, group_key
from legacy_wrappers.tasks import TASK_NAME
from tests.support import wait_for
from tests.support.services import broker_idle

CELERY = str(Path(sys.executable).with_name("celery"))
PREFIX = "{bridge}:"
SLOT = datetime(2026, 3, 8, 7, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rconn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


# --- the spec -----------------------------------------------------------------------------------


def spec(**policies: Any) -> JobSpec:
    return JobSpec(id="j", schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
                   handler=CommandHandler(command="true"), policies=Policies(**policies))


def test_max_concurrency_needs_a_group_and_a_positive_integer() -> None:
    assert spec(group="g", max_concurrency=1).policies.max_concurrency == 1
    with pytest.raises(SpecError, match="needs a group"):
        spec(max_concurrency=2)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(SpecError, match="max_concurrency must be"):
            spec(group="g", max_concurrency=bad)


def test_the_field_round_trips_and_old_documents_keep_their_hash() -> None:
    limited = spec(group="g", max_concurrency=3)
    assert JobSpec.from_json(limited.to_json()) == limited
    assert limited.to_json()["policies"]["max_concurrency"] == 3
    plain = spec(group="g")
    old_doc = plain.to_json()
    assert "max_concurrency" not in old_doc["policies"]  # unset: not written, hash unchanged
    decoded = JobSpec.from_json(old_doc)  # a document written before the field existed
    assert decoded.policies.max_concurrency is None and decoded.spec_hash() == plain.spec_hash()
    assert limited.spec_hash() != plain.spec_hash()


QUARTZ = f"""<?xml version="1.0" encoding="UTF-8"?>
<job-scheduling-data xmlns="{NS}" version="2.0"><schedule>
<job><name>inv</name><job-class>com.acme.InvoiceJob</job-class></job>
<trigger><cron><name>t</name><job-name>inv</job-name>
<cron-expression>0 0 12 * * ?</cron-expression></cron></trigger>
</schedule></job-scheduling-data>
""".encode()


def test_a_quartz_handler_rule_can_set_the_group_and_its_limit() -> None:
    rule = '[[handler]]\njob_class = "com.acme.InvoiceJob"\ncommand = "/opt/invoice"\n'
    handlers = parse_handler_map(rule + 'group = "billing"\nmax_concurrency = 2\n', file="h.toml")
    result = parse_quartz_xml(QUARTZ, file="jobs.xml", handlers=handlers,
                              now=datetime(2026, 6, 1, tzinfo=UTC), default_timezone="UTC")
    (item,) = result.items
    assert item.job is not None
    assert (item.job.policies.group, item.job.policies.max_concurrency) == ("billing", 2)
    with pytest.raises(ParseError, match=re.escape("h.toml:4: max_concurrency needs a group")):
        parse_handler_map(rule + "max_concurrency = 2\n", file="h.toml")
    with pytest.raises(ParseError, match="'max_concurrency' must be a whole number >= 1"):
        parse_handler_map(rule + 'group = "g"\nmax_concurrency = 0\n', file="h.toml")


# --- the semaphore ------------------------------------------------------------------------------


def test_the_limit_holds_under_twenty_concurrent_threads(rconn: redis.Redis) -> None:
    limit, threads, key = 3, 20, group_key(PREFIX, "threads")
    lock = threading.Lock()
    running, peak, seen_in_redis, done = [0], [0], [0], []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        sem = GroupSemaphore(rconn, PREFIX, "threads", ttl=30)
        holder = f"task-{n}@test:{n}"
        start.wait()
        while not sem.acquire(holder, limit):
            time.sleep(0.005)
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            seen_in_redis[0] = max(seen_in_redis[0], int(rconn.zcard(key)))
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        sem.release(holder)
        done.append(n)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert sorted(done) == list(range(threads))
    assert peak[0] == limit  # reached, never exceeded
    assert seen_in_redis[0] <= limit
    assert rconn.zcard(key) == 0


def test_expired_holders_are_reclaimed_and_cannot_renew(rconn: redis.Redis) -> None:
    clock = FakeClock()
    sem = GroupSemaphore(rconn, PREFIX, "expiry", ttl=30, clock=clock)
    assert sem.acquire("a", 2) and sem.acquire("b", 2)
    assert not sem.acquire("c", 2)
    assert sem.acquire("a", 2)  # re-acquiring one's own permit only extends it
    clock.now += 20
    assert sem.renew("b")  # b lives on to now + 30
    clock.now += 15  # a (expired at +30) is dead; b (until +50) is not
    assert sem.acquire("c", 2)
    assert sorted(sem.holders()) == ["b", "c"]
    assert not sem.renew("a")  # a dead holder never resurrects its permit
    assert not sem.acquire("a", 2)
    assert rconn.zscore(sem.key, "a") is None
    sem.release("b")
    assert sem.acquire("a", 2)
    assert 0 < int(rconn.ttl(sem.key)) <= 3600 + 30  # the key does not outlive its use forever


def test_limits_are_per_group(rconn: redis.Redis) -> None:
    one, two = GroupSemaphore(rconn, PREFIX, "one"), GroupSemaphore(rconn, PREFIX, "two")
    assert one.acquire("x", 1) and not one.acquire("y", 1)
    assert two.acquire("y", 1)
    assert one.key == "{bridge}::bridge:group:one"


# --- the deferred claim -------------------------------------------------------------------------


def test_a_deferred_claim_is_resumed_only_by_its_lineage_with_attempts_kept(
    tmp_path: Path,
) -> None:
    terms = LeaseTerms(duration=timedelta(seconds=2), renew_every=timedelta(seconds=0.3))
    claims = Claims(Registry(f"sqlite:///{tmp_path / 'claims.db'}"), terms=terms)
    first = claims.claim("job", SLOT, Holder("task-1", "w:1"))
    assert isinstance(first, Lease) and first.defer()
    parked = claims.get("job", SLOT)
    assert parked is not None and parked.state is ClaimState.DEFERRED and parked.attempts == 1
    other = claims.claim("job", SLOT, Holder("task-2", "w:2"), retry=RetryGrant(5))
    assert isinstance(other, AlreadyClaimed) and not other.live  # a re-send is refused
    resumed = claims.claim("job", SLOT, Holder("task-1", "w:3"), retry=RetryGrant(1))
    assert isinstance(resumed, Lease) and resumed.attempts == 1  # nothing ran: no attempt used
    assert not first.complete(ClaimState.SUCCEEDED)  # the parked lease is fenced out
    assert resumed.complete(ClaimState.SUCCEEDED)
    again = claims.claim("job", SLOT, Holder("task-1", "w:4"), retry=RetryGrant(5))
    assert isinstance(again, AlreadyClaimed)
    claims.registry.dispose()


# --- a real worker --------------------------------------------------------------------------------


class Harness:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.db_url = f"sqlite:///{tmp / 'registry.db'}"
        self.redis_url = redis_url
        self.registry = Registry(self.db_url)
        self.client: Celery = make_app(Settings(redis_url=redis_url, database_url=self.db_url))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "worker.log"

    def add_job(self, job_id: str, command: str, **policies: Any) -> None:
        job = JobSpec(id=job_id, schedule=ScheduleSpec(dialect=Dialect.VIXIE,
                                                       expression="0 * * * *"),
                      handler=CommandHandler(command=command), policies=Policies(**policies))
        with self.registry.session() as s:
            JobRepo(s).upsert(job)
            AuthorityRepo(s).append(job_id, Owner.CELERY, effective_slot=None, actor="test",
                                    reason="concurrency test")

    def start_worker(self) -> None:
        env = {**os.environ, "BRIDGE_REDIS_URL": self.redis_url,
               "BRIDGE_DATABASE_URL": self.db_url, "BRIDGE_WORKER_SHUTDOWN_GRACE": "2"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [CELERY, "-A", "bridge.celery_app", "worker", "-P", "prefork", "-c", "4",
                 "-Q", "bridge", "-n", f"conc-{os.getpid()}@%h", "--without-gossip",
                 "--without-mingle", "-l", "INFO"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.tmp,
            )
        wait_for("the worker to be ready", lambda: "ready." in self.log.read_text(), 60)

    def send(self, job_id: str, slot: str) -> None:
        self.client.send_task(TASK_NAME, args=[job_id, slot], queue="bridge")

    def all_runs(self) -> list[RunRow]:
        with self.registry.session() as s:
            return list(s.query(RunRow).order_by(RunRow.id))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()
        self.registry.dispose()


@pytest.fixture
def harness(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url)
    yield h
    h.close()


def peak_overlap(events: list[tuple[float, int]]) -> int:
    """Most intervals open at one instant (an end at t sorts before a start at t)."""
    running = peak = 0
    for _, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.integration
def test_a_group_runs_at_most_two_at_once_and_every_slot_exactly_once(
    harness: Harness, rconn: redis.Redis
) -> None:
    log = harness.tmp / "timeline.txt"
    jobs = [f"grouped-{n}" for n in range(6)]
    for job in jobs:
        harness.add_job(
            job,
            f'echo "{job} start $(date +%s.%N)" >> {log}; sleep 1; '
            f'echo "{job} end $(date +%s.%N)" >> {log}',
            group="batch", max_concurrency=2,
        )
    harness.start_worker()
    slot = "2026-03-08T07:00:00Z"
    for job in jobs:
        harness.send(job, slot)
    wait_for("six recorded runs", lambda: len(harness.all_runs()) >= 6, 90)
    # nothing queued or unacknowledged (deferred copies included): no stray run can follow
    wait_for("nothing left to deliver", lambda: broker_idle(harness.redis_url), 60)

    entries = [line.split() for line in log.read_text().splitlines()]
    starts = sorted(job for job, what, _ in entries if what == "start")
    ends = sorted(job for job, what, _ in entries if what == "end")
    assert starts == jobs and ends == jobs  # every slot ran, none twice
    events = [(float(t), 1 if what == "start" else -1) for _, what, t in entries]
    assert peak_overlap(events) == 2  # the limit was used and never exceeded
    runs = harness.all_runs()
    assert sorted((r.job_id, r.role, r.status) for r in runs) == [
        (job, "authoritative", "succeeded") for job in jobs]  # deferrals leave no row
    claims = Claims(harness.registry)
    for job in jobs:
        claim = claims.get(job, datetime(2026, 3, 8, 7, tzinfo=UTC))
        assert claim is not None and claim.state is ClaimState.SUCCEEDED
        assert claim.attempts == 1
    assert rconn.zcard(group_key(PREFIX, "batch")) == 0  # every permit was released
    assert "deferred, retry in" in harness.log.read_text()  # the limit actually bit
