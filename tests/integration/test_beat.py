"""BridgeScheduler end to end: real ``celery beat`` and ``celery worker`` processes.

Every test runs against the private redis-server fixture and a SQLite registry file. Beat is
``celery -A tests.integration.recording_app beat -S bridge.scheduler:BridgeScheduler``; the worker
runs the recording ``bridge.run_job`` (one ``job slot`` line per run in a file), so what the
worker received is exactly what beat published. The RedBeat lock timeout is 3 s so a second beat
takes over quickly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import redis

from bridge.adapters.beat_store import beat_key
from bridge.adapters.redbeat_entries import (
    Desired,
    EntryStore,
    encode_definition,
    index_key,
    quarantine_key,
    quarantine_why_key,
    schedule_key,
)
from bridge.beat.registry import RegistryLink, SlotRecord
from bridge.core.config import load_settings
from bridge.core.spec import CommandHandler, JobSpec, MisfirePolicy, Policies, ScheduleSpec
from bridge.store.db import Registry
from bridge.store.repos import JobRepo
from bridge.store.runs import RunRepo
from tests.support import wait_for
from tests.support.services import broker_idle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
APP = "tests.integration.recording_app"
PREFIX = "{bridge}:"
LOCK_TIMEOUT = 3


def job(job_id: str, expression: str = "* * * * * ?", dialect: str = "quartz",
        **policies: object) -> JobSpec:
    return JobSpec(
        id=job_id,
        schedule=ScheduleSpec(dialect=dialect, expression=expression, timezone="UTC"),
        handler=CommandHandler(command="true"),
        policies=Policies(**policies),  # type: ignore[arg-type]
    )


def parse_slot(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class Harness:
    """One test's world: registry, Redis, beat and worker subprocesses, the run record."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.r = redis.Redis.from_url(redis_url, decode_responses=True)
        self.db_url = f"sqlite:///{tmp / 'registry.db'}"
        self.record = tmp / "record.txt"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env.update(
            BRIDGE_REDIS_URL=redis_url, BRIDGE_DATABASE_URL=self.db_url,
            BRIDGE_REDBEAT_LOCK_TIMEOUT=str(LOCK_TIMEOUT), XDG_DATA_HOME=str(tmp / "xdg-data"),
            XDG_CONFIG_HOME=str(tmp / "xdg-config"), PYTHONPATH=str(ROOT),
            RECORDING_FILE=str(self.record), RECORDING_REHYDRATE="300",
        )
        self.env = env

    # --- registry -------------------------------------------------------------------------------

    def add_jobs(self, *specs: JobSpec, paused: tuple[str, ...] = ()) -> None:
        registry = Registry(self.db_url)
        with registry.session() as s:
            repo = JobRepo(s)
            for spec in specs:
                repo.upsert(spec)
            for job_id in paused:
                repo.set_paused(job_id, True, "test")
        registry.dispose()

    def runs(self, job_id: str) -> list[tuple[datetime, str, str | None]]:
        registry = Registry(self.db_url)
        with registry.session() as s:
            rows = [(r.slot, r.status, r.error) for r in RunRepo(s).for_job(job_id)]
        registry.dispose()
        return rows

    # --- processes ------------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen([CELERY, "-A", APP, *args], env=self.env, cwd=self.tmp,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def beat(self) -> subprocess.Popen[bytes]:
        return self._spawn("beat", "beat", "-S", "bridge.scheduler:BridgeScheduler", "-l", "INFO",
                           "-s", str(self.tmp / "beat-schedule"))

    def worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", "worker", "-Q", "bridge", "-P", "threads", "-c", "1",
                           "--without-gossip", "--without-mingle", "--without-heartbeat",
                           "-l", "WARNING")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.r.close()

    def tail_logs(self) -> str:
        parts = []
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {log.name}\n" + "\n".join(text.splitlines()[-25:]))
        return "\n".join(parts)

    # --- observations ---------------------------------------------------------------------------

    def fired(self) -> list[tuple[str, datetime]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [(j, parse_slot(s)) for j, s in (line.split() for line in lines if line.strip())]

    def slots_of(self, job_id: str) -> list[datetime]:
        return [slot for j, slot in self.fired() if j == job_id]

    def wait_for(self, what: str, condition: Callable[[], object], timeout: float = 20) -> None:
        wait_for(what, condition, timeout, logs=self.tail_logs)

    def holder_pid(self) -> int | None:
        holder = self.r.hget(beat_key(PREFIX), "holder")
        return int(holder.rsplit(":", 1)[1]) if holder else None

    def drain(self) -> None:
        """Wait until the worker has run everything queued (nothing queued or unacknowledged)."""
        self.wait_for("every delivered run to finish", lambda: broker_idle(self.redis_url), 20)


@pytest.fixture
def h(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    harness = Harness(tmp_path, redis_url)
    yield harness
    harness.close()


def contiguous(slots: list[datetime]) -> bool:
    ordered = sorted(slots)
    return all(b - a == timedelta(seconds=1) for a, b in pairwise(ordered))


def assert_once_each(h: Harness, job_id: str) -> list[datetime]:
    slots = h.slots_of(job_id)
    dupes = [s for s, n in Counter(slots).items() if n > 1]
    assert not dupes, f"{job_id} fired twice for {dupes}\n{h.tail_logs()}"
    return sorted(slots)


def test_per_second_jobs_fire_every_slot_once_with_the_slot_in_the_message(h: Harness) -> None:
    h.add_jobs(job("sec-a"), job("sec-b"), job("jittered", jitter_seconds=2), job("paused-one"),
               job("minutely", "* * * * *", "vixie"), paused=("paused-one",))
    h.worker()
    beat = h.beat()
    h.wait_for("8 slots of sec-a", lambda: len(h.slots_of("sec-a")) >= 8, timeout=30)
    h.stop(beat)
    h.drain()

    for job_id in ("sec-a", "sec-b"):
        in_order = h.slots_of(job_id)
        slots = assert_once_each(h, job_id)
        assert len(slots) >= 8 and contiguous(slots), (job_id, slots)
        assert in_order == slots, f"{job_id} ran out of order: {in_order}"
    jittered = assert_once_each(h, "jittered")
    assert len(jittered) >= 5 and contiguous(jittered), jittered
    assert all(s.microsecond == 0 for s in jittered)  # the nominal slot, not the jittered time
    assert h.slots_of("paused-one") == []
    skipped = h.runs("paused-one")
    assert len(skipped) >= 6
    assert {(status, error) for _, status, error in skipped} == {("skipped", "paused")}
    assert contiguous([slot for slot, _, _ in skipped])
    assert_once_each(h, "minutely")  # fires at most once in the window (a minute boundary)
    alive = h.r.hgetall(beat_key(PREFIX))
    assert alive["holder"].endswith(f":{beat.pid}") and float(alive["tick"]) > time.time() - 30


def test_killed_beat_restarted_neither_duplicates_nor_loses_slots(h: Harness) -> None:
    h.add_jobs(job("catch-up", misfire=MisfirePolicy.FIRE_ALL, misfire_grace_seconds=1),
               job("skipper", misfire=MisfirePolicy.SKIP, misfire_grace_seconds=1))
    h.worker()
    first = h.beat()
    h.wait_for("a few slots", lambda: len(h.slots_of("catch-up")) >= 4, timeout=30)
    h.stop(first, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    time.sleep(LOCK_TIMEOUT + 1)  # the lock expires while no beat runs: slots are missed
    second = h.beat()
    h.wait_for("slots after the restart",
               lambda: any(s > killed_at + timedelta(seconds=LOCK_TIMEOUT + 3)
                           for s in h.slots_of("catch-up")), timeout=30)
    time.sleep(2)  # a little more firing from the restarted beat before it stops
    h.stop(second)
    h.drain()

    caught_up = assert_once_each(h, "catch-up")
    assert contiguous(caught_up) and caught_up[-1] > killed_at + timedelta(seconds=5), caught_up

    fired = assert_once_each(h, "skipper")
    missed = [slot for slot, status, _ in h.runs("skipper") if status == "missed"]
    assert missed, f"no missed slot recorded for skipper\n{h.tail_logs()}"
    assert not set(missed) & set(fired)
    assert contiguous(fired + missed), (fired, missed)  # every slot either ran or is recorded
    assert all(error and error.startswith("misfire skip") for _, status, error in
               h.runs("skipper") if status == "missed")


def test_two_beats_at_once_never_both_fire_a_slot(h: Harness) -> None:
    h.add_jobs(job("ha-a", misfire=MisfirePolicy.FIRE_ALL), job("ha-b"))
    h.worker()
    beats = {p.pid: p for p in (h.beat(), h.beat())}
    h.wait_for("a lock holder", lambda: h.holder_pid() in beats, timeout=30)
    h.wait_for("firing", lambda: len(h.slots_of("ha-a")) >= 3, timeout=30)
    first_holder = h.holder_pid()
    assert first_holder is not None
    h.stop(beats[first_holder], signal.SIGKILL)
    h.wait_for("the standby to take over", lambda: h.holder_pid() not in (None, first_holder),
               timeout=30)
    taken_over = datetime.now(UTC)
    h.wait_for("firing after the takeover",
               lambda: any(s > taken_over + timedelta(seconds=2) for s in h.slots_of("ha-a")),
               timeout=30)
    for proc in beats.values():
        h.stop(proc)
    h.drain()

    for job_id in ("ha-a", "ha-b"):
        slots = assert_once_each(h, job_id)
        assert len(slots) >= 5
    assert contiguous(h.slots_of("ha-a"))  # fire_all: the takeover gap is caught up


def test_flushall_then_restart_rebuilds_every_entry_from_sql(h: Harness) -> None:
    ids = ("flush-a", "flush-b")
    h.add_jobs(*(job(i) for i in ids), job("flush-minutely", "* * * * *", "vixie"))
    all_ids = {*ids, "flush-minutely"}
    h.worker()
    beat = h.beat()
    h.wait_for("firing", lambda: len(h.slots_of("flush-a")) >= 2, timeout=30)

    h.r.flushall()  # the running beat notices (its lock vanished) and rebuilds at once
    h.wait_for("entries rebuilt by the running beat",
               lambda: h.r.smembers(index_key(PREFIX)) == all_ids, timeout=15)
    h.stop(beat, signal.SIGKILL)
    h.r.flushall()
    restarted = datetime.now(UTC)
    h.beat()
    h.wait_for("entries rebuilt at start-up",
               lambda: h.r.smembers(index_key(PREFIX)) == all_ids
               and h.r.zcard(schedule_key(PREFIX)) >= len(all_ids), timeout=30)
    h.wait_for("firing resumed",
               lambda: all(any(s > restarted for s in h.slots_of(i)) for i in ids), timeout=30)
    for i in all_ids:
        assert h.r.hget(PREFIX + i, "definition"), i


def test_bad_entries_are_quarantined_while_other_jobs_keep_firing(h: Harness) -> None:
    h.add_jobs(job("healthy"))
    h.worker()
    h.beat()
    h.wait_for("firing", lambda: len(h.slots_of("healthy")) >= 2, timeout=30)
    now = str(int(time.time()))
    future_version = json.dumps({"name": "future", "task": "bridge.run_job", "bridge": {},
                                 "schedule": {"__type__": "bridge", "v": 99}})
    port = h.redis_url.rsplit(":", 1)[1].split("/")[0]
    for key, definition in (("garbage", "{not json"), ("future", future_version)):
        subprocess.run(["redis-cli", "-p", port, "HSET", PREFIX + key, "definition", definition],
                       check=True, capture_output=True)
        subprocess.run(["redis-cli", "-p", port, "ZADD", schedule_key(PREFIX), now, PREFIX + key],
                       check=True, capture_output=True)
    h.wait_for("both bad entries quarantined",
               lambda: set(h.r.zrange(quarantine_key(PREFIX), 0, -1)) == {"garbage", "future"})
    seen = len(h.slots_of("healthy"))
    h.wait_for("healthy still firing", lambda: len(h.slots_of("healthy")) >= seen + 3)

    why = h.r.hgetall(quarantine_why_key(PREFIX))
    assert "JSONDecodeError" in why["garbage"]
    assert "v99" in why["future"]
    assert h.r.zscore(schedule_key(PREFIX), PREFIX + "garbage") is None
    assert contiguous(assert_once_each(h, "healthy"))
    beat_log = "\n".join(p.read_text() for p in h.logs if p.name.startswith("beat"))
    assert beat_log.count("entry garbage is unusable") == 1


def test_beat_keeps_firing_while_the_registry_is_down(h: Harness) -> None:
    blocker = h.tmp / "not-a-dir"
    blocker.write_text("a file where the database directory should be")
    h.env["BRIDGE_DATABASE_URL"] = f"sqlite:///{blocker / 'registry.db'}"
    specs = [job("keeps-going"), job("paused-meanwhile")]
    desired = [Desired(s.id, encode_definition(s, s.spec_hash(), paused=s.id.startswith("paused")),
                       s) for s in specs]
    EntryStore(h.r, PREFIX).sync(desired, datetime.now(UTC))
    h.worker()
    h.beat()
    started = datetime.now(UTC)
    h.wait_for("firing without a registry",
               lambda: sum(s > started for s in h.slots_of("keeps-going")) >= 3)
    # the skipped slots of the paused job wait in memory; beat says so in its liveness hash
    h.wait_for("the backlog reported", lambda: int(h.r.hget(beat_key(PREFIX), "backlog") or 0) >= 3)
    assert h.r.hget(beat_key(PREFIX), "registry_error")
    assert contiguous(assert_once_each(h, "keeps-going"))
    beat_log = "\n".join(p.read_text() for p in h.logs if p.name.startswith("beat"))
    assert "registry unavailable" in beat_log


def test_registry_link_keeps_records_through_an_outage_and_never_doubles_them(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    good_url = f"sqlite:///{tmp_path / 'registry.db'}"
    link = RegistryLink(replace(load_settings({}), database_url=f"sqlite:///{blocker / 'r.db'}"))
    slot = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    records = [SlotRecord("j", slot + timedelta(seconds=i), "missed", "misfire skip", "h:1")
               for i in range(3)]
    link.record(records)
    assert link.work_once() is False
    assert link.pending() == 3 and link.last_error

    link.settings = replace(link.settings, database_url=good_url)
    assert link.work_once() is True
    assert link.pending() == 0 and link.last_error is None
    link.record(records[1:])  # the same slots again (a retried batch): recorded once
    assert link.work_once() is True
    link.stop()

    registry = Registry(good_url)
    with registry.session() as s:
        rows = RunRepo(s).for_job("j")
    registry.dispose()
    assert [(r.slot, r.status, r.path, r.role) for r in rows] == [
        (r.slot, "missed", "celery", "scheduler") for r in records
    ]


def test_an_empty_registry_never_wipes_the_entries(h: Harness) -> None:
    h.add_jobs()  # a migrated registry without any job: the wrong database, say
    spec = job("survivor")
    EntryStore(h.r, PREFIX).sync([Desired(spec.id, encode_definition(spec, "x"), spec)],
                                 datetime.now(UTC))
    h.worker()
    h.beat()
    h.wait_for("firing", lambda: len(h.slots_of("survivor")) >= 3)
    assert h.r.smembers(index_key(PREFIX)) == {"survivor"}
    beat_log = "\n".join(p.read_text() for p in h.logs if p.name.startswith("beat"))
    assert "holds no job but Redis holds 1 bridge entries: not rehydrating" in beat_log
