"""Chaos: every PostgreSQL connection of the registry is terminated, repeatedly, mid-run.

Beat and a real prefork worker use a PostgreSQL registry; per-second Quartz jobs owned by
Celery append ``<job> <slot>`` to a file. Every 1.5 s an admin connection runs
``pg_terminate_backend`` on every other backend of the test database (the worker's claim and
record connections, beat's registry link). Afterwards: no slot executed twice, every executed
slot has exactly one authoritative ``succeeded`` run row (a record whose connection died was
retried, not lost), and no slot between the first and the last is unaccounted for.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.core.spec import MisfirePolicy
from tests.chaos.harness import CHAOS_APP, Chaos, contiguous
from tests.support import wait_for
from tests.support.services import empty_registry

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=60), pytest.mark.timeout(120)]


@pytest.fixture
def pg_chaos(tmp_path: Path, redis_url: str, pg_url: str) -> Iterator[Chaos]:
    empty_registry(pg_url)
    c = Chaos(tmp_path, redis_url, db_url=pg_url)
    yield c
    c.close()


def terminator(pg_url: str, stop: threading.Event, kills: list[int]) -> None:
    import psycopg

    from tests.support.services import PG_ADMIN_URL

    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        while not stop.wait(1.5):
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
            kills.append(len(rows))


def test_registry_connections_dropped_mid_run_lose_nothing_and_double_nothing(
    pg_chaos: Chaos, pg_url: str
) -> None:
    chaos = pg_chaos
    jobs = ("pg-a", "pg-b", "pg-c")
    for job_id in jobs:
        chaos.add_job(job_id, misfire=MisfirePolicy.FIRE_ALL, misfire_grace_seconds=1)
    chaos.worker(concurrency=2, app=CHAOS_APP)
    beat = chaos.beat()
    wait_for("firing", lambda: len(chaos.slots_of("pg-a")) >= 3, 40, logs=chaos.tail_logs)
    stop, kills = threading.Event(), []  # type: ignore[var-annotated]
    thread = threading.Thread(target=terminator, args=(pg_url, stop, kills), daemon=True)
    firing = len(chaos.slots_of("pg-a"))
    thread.start()

    def dropped_while_firing() -> bool:  # three rounds that cut connections, slots still run
        return (sum(1 for n in kills if n) >= 3
                and len(chaos.slots_of("pg-a")) >= firing + 5)

    wait_for("backends terminated while slots keep firing", dropped_while_firing, 60,
             logs=chaos.tail_logs)
    stop.set()
    thread.join(10)
    healed = datetime.now(UTC)

    def caught_up() -> bool:  # every job fires again and has no slot unaccounted for behind it
        rows = chaos.runs()
        for job_id in jobs:
            fired = chaos.slots_of(job_id)
            recorded = {r.slot for r in rows if r.job_id == job_id}
            if not any(s > healed for s in fired) or set(contiguous(fired)) - recorded:
                return False
        return True

    wait_for("every job caught up after the drops", caught_up, 40, logs=chaos.tail_logs)
    beat.stop()
    wait_for("the queue to drain", chaos.queue_empty, 40)

    def settled() -> bool:
        done = {(r.job_id, r.slot) for r in chaos.runs()
                if r.role == "authoritative" and r.status == "succeeded"}
        return set(chaos.effects()) <= done

    wait_for("every executed slot recorded", settled, 60, logs=chaos.tail_logs)
    assert sum(kills) > 0, "no backend was terminated"
    assert chaos.duplicates() == {}, chaos.duplicates()
    rows = chaos.runs()
    done = Counter((r.job_id, r.slot) for r in rows
                   if r.role == "authoritative" and r.status == "succeeded")
    assert set(done.values()) == {1}
    assert set(done) == set(chaos.effects())
    for job_id in jobs:
        gaps = contiguous(chaos.slots_of(job_id))
        recorded = {r.slot for r in rows if r.job_id == job_id}
        assert not [g for g in gaps if g not in recorded], (job_id, gaps)
    statuses = Counter((r.role, r.status) for r in rows)
    errors = sum(p.text().count("OperationalError") for p in chaos.procs)
    print(f"pg drop: {len(kills)} terminations ({sum(kills)} backends), "
          f"{len(done)} slots once each, rows {dict(statuses)}, OperationalError lines {errors}")
