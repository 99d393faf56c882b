"""Chaos for beat: Redis killed and restarted empty mid-run; two beats, one frozen with SIGSTOP.

Real ``celery beat`` (BridgeScheduler) and a real prefork worker running the bridge's own
``bridge.run_job`` (claim in SQL, then the job's callable appends ``<job> <slot>`` to a file).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.adapters.beat_store import beat_key
from bridge.adapters.redbeat_entries import index_key, schedule_key
from bridge.core.spec import MisfirePolicy
from tests.chaos.harness import CHAOS_APP, PREFIX, Chaos, contiguous, parse_slot, slot_text
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def own_redis(redis_factory: Any) -> Iterator[Any]:
    server = redis_factory.start()
    yield server
    server.stop()


def findings(cli: Any, env: dict[str, str], since: datetime) -> list[dict[str, Any]]:
    result = cli("reconcile", "--since", slot_text(since - timedelta(seconds=1)), "--grace", "0",
                 "--tolerance", "3600", "--json", env=env)
    assert result.code in (0, 1), result.err
    return list(result.json()["findings"])


def test_redis_restarted_empty_beat_rebuilds_and_no_slot_runs_twice(
    tmp_path: Path, own_redis: Any, cli: Any
) -> None:
    chaos = Chaos(tmp_path, own_redis.url)
    env = {"BRIDGE_REDIS_URL": own_redis.url, "BRIDGE_DATABASE_URL": chaos.db_url}
    try:
        chaos.add_job("rf-all", misfire=MisfirePolicy.FIRE_ALL, misfire_grace_seconds=1)
        chaos.add_job("rf-skip", misfire=MisfirePolicy.SKIP, misfire_grace_seconds=1)
        chaos.worker(concurrency=2, app=CHAOS_APP)
        beat = chaos.beat(env={"BRIDGE_REHYDRATE_INTERVAL": "300"})
        wait_for("firing", lambda: len(chaos.slots_of("rf-all")) >= 4, 40, logs=chaos.tail_logs)
        own_redis.stop()  # SIGKILL: no persistence, every key and queued message is gone
        time.sleep(4)  # the outage itself: slots come due while Redis is down
        own_redis.start()
        up = datetime.now(UTC)
        r = redis.Redis.from_url(own_redis.url, decode_responses=True)
        wait_for("entries rebuilt from SQL",
                 lambda: r.smembers(index_key(PREFIX)) == {"rf-all", "rf-skip"}, 30,
                 logs=chaos.tail_logs)
        wait_for("firing after the restart",
                 lambda: all(any(s > up + timedelta(seconds=2) for s in chaos.slots_of(j))
                             for j in ("rf-all", "rf-skip")), 30, logs=chaos.tail_logs)
        time.sleep(2)  # a little more firing on the rebuilt entries before beat stops
        beat.stop()
        wait_for("every delivered run to finish", chaos.broker_idle, 30,
                 logs=chaos.tail_logs)
        r.close()

        assert chaos.duplicates() == {}, chaos.duplicates()
        beat_log = beat.text()
        assert "lock key had vanished" in beat_log or "Redis unreachable" in beat_log
        report: dict[str, Any] = {}
        for job_id in ("rf-all", "rf-skip"):
            fired = chaos.slots_of(job_id)
            first, last = fired[0], fired[-1]
            recorded = {r.slot: r.status for r in chaos.runs(job_id)
                        if r.role == "scheduler" or r.status in ("missed", "skipped")}
            reported = {parse_slot(f["slot"]): f["kind"]
                        for f in findings(cli, env, first) if f["job_id"] == job_id}
            gaps = contiguous(fired)
            unaccounted = [s for s in gaps if s not in recorded and s not in reported]
            assert not unaccounted, (job_id, unaccounted, recorded, reported)
            report[job_id] = {"fired": len(fired), "gaps": len(gaps),
                              "recorded_missed": sum(1 for s in gaps if s in recorded),
                              "reported": Counter(reported[s] for s in gaps if s in reported)}
            assert all(first <= s <= last for s in fired)
        assert report["rf-skip"]["gaps"] > 0  # the outage cost slots: recorded or reported

        # fire_all: whatever the outage took from the catch-up job, a repair runs once each
        gaps = contiguous(chaos.slots_of("rf-all"))
        if gaps:
            result = cli("reconcile", "--since", slot_text(gaps[0] - timedelta(seconds=1)),
                         "--job", "rf-all", "--grace", "0", "--repair", "--json", env=env)
            assert result.code in (0, 1), result.err
            chaos.env["BRIDGE_VISIBILITY_TIMEOUT"] = "3600"
            wait_for("the repaired slots", lambda: not contiguous(chaos.slots_of("rf-all")), 40,
                     logs=chaos.tail_logs)
            wait_for("every delivered run to finish", chaos.broker_idle, 30,
                     logs=chaos.tail_logs)
        assert chaos.duplicates() == {}
        print(f"redis restart: {report}")
    finally:
        chaos.close()


def holder_pid(r: redis.Redis) -> int | None:
    holder = r.hget(beat_key(PREFIX), "holder")
    return int(str(holder).rsplit(":", 1)[1]) if holder else None


@pytest.mark.slow(seconds=35)
def test_frozen_beat_resumed_after_losing_its_lock_never_doubles_a_slot(
    tmp_path: Path, redis_url: str
) -> None:
    chaos = Chaos(tmp_path, redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for i in range(4):
            chaos.add_job(f"ha-{i}", misfire=MisfirePolicy.FIRE_ALL if i % 2 else
                          MisfirePolicy.SKIP, misfire_grace_seconds=1)
        chaos.worker(concurrency=2, app=CHAOS_APP)
        beats = {b.pid: b for b in (chaos.beat(), chaos.beat())}
        freezes = fail_stops = 0
        for _ in range(2):
            holder: int = wait_for("a lock holder", lambda: holder_pid(r) in beats and
                                   holder_pid(r), 30, logs=chaos.tail_logs)
            wait_for("firing", lambda: len(chaos.slots_of("ha-0")) >= 3, 30, logs=chaos.tail_logs)
            beats[holder].signal(signal.SIGSTOP)  # frozen mid-whatever, past the 3 s lock
            freezes += 1
            frozen = holder
            wait_for("the standby to take over",
                     lambda: holder_pid(r) not in (None, frozen),  # noqa: B023
                     30, logs=chaos.tail_logs)
            time.sleep(2)  # the freeze itself: the standby leads while the old holder sleeps
            beats[holder].signal(signal.SIGCONT)  # it wakes up believing it still leads
            time.sleep(3)  # its next ticks: it must find the lock taken, never publish twice
            if not beats[holder].alive():  # it found the lock taken and exited (code 3)
                fail_stops += 1
                replacement = chaos.beat()  # what a supervisor does: a new standby
                beats[replacement.pid] = replacement
        for b in beats.values():
            b.stop()
        logs = "\n".join(b.text() for b in beats.values())
        assert "published" in logs
        wait_for("every delivered run to finish", chaos.broker_idle, 30,
                 logs=chaos.tail_logs)

        assert chaos.duplicates() == {}, chaos.duplicates()
        per_slot = Counter(chaos.effects())
        assert per_slot and set(per_slot.values()) == {1}
        assert not contiguous(chaos.slots_of("ha-1"))  # fire_all: the takeover gap caught up
        rows = Counter((row.role, row.status) for row in chaos.runs())
        print(f"frozen beat: {freezes} freezes, {len(per_slot)} slots executed once each, "
              f"rows {dict(rows)}, resumed beats that exited on the lost lock: {fail_stops}, "
              f"lock loss logged: {'taken over by another beat' in logs}")
    finally:
        r.close()
        chaos.close()


LOCK_KEY = PREFIX + ":lock"  # RedBeat's default lock key under the bridge prefix


@pytest.mark.slow(seconds=15)
def test_beat_whose_lock_is_taken_over_logs_one_line_exits_3_and_writes_nothing_back(
    chaos: Chaos,
) -> None:
    r = redis.Redis.from_url(chaos.redis_url, decode_responses=True)
    try:
        chaos.add_job("taken-0")
        beat = chaos.beat(env={"BRIDGE_REHYDRATE_INTERVAL": "300"})
        wait_for("beat holding the lock and ticking",
                 lambda: holder_pid(r) == beat.pid and r.zcard(schedule_key(PREFIX)) > 0
                 and "Acquired lock" in beat.text(), 40, logs=chaos.tail_logs)
        time.sleep(1.5)  # a few ticks on a per-second entry
        with r.pipeline(transaction=True) as pipe:  # another beat takes over: a new token
            pipe.set(LOCK_KEY, "another-beat-token", px=60_000)
            pipe.zrange(schedule_key(PREFIX), 0, -1, withscores=True)
            pipe.hgetall(beat_key(PREFIX))
            _, schedule, liveness = pipe.execute()
        wait_for("beat to exit", lambda: not beat.alive(), 20, logs=chaos.tail_logs)

        assert beat.popen.returncode == 3, chaos.tail_logs()
        log = beat.text()
        assert "Traceback" not in log, log
        after = log.split("Acquired lock", 1)[1].splitlines()[1:]
        about_lock = [line for line in after if "lock" in line.lower()]
        assert len(about_lock) == 1, about_lock
        assert LOCK_KEY in about_lock[0] and "ERROR" in about_lock[0], about_lock
        assert "taken over by another beat" in about_lock[0]
        # nothing written back once the lock was gone: the thief's token, entries, liveness
        assert r.get(LOCK_KEY) == "another-beat-token"
        assert r.zrange(schedule_key(PREFIX), 0, -1, withscores=True) == schedule
        assert r.hgetall(beat_key(PREFIX)) == liveness
    finally:
        r.close()
