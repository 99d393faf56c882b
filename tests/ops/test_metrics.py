"""Prometheus metrics: a known sequence of runs in the registry, scraped over real HTTP from
``bridge.ops.metrics.serve`` and from a real worker, parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.core.dispatch import slot_iso
from bridge.ops import metrics
from bridge.store.runs import RunRepo
from tests.ops.harness import OpsHarness, top_of_hour
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

DOCUMENTED = {
    "bridge_runs", "bridge_fire_lag_seconds", "bridge_run_duration_seconds",
    "bridge_suppressed_duplicates", "bridge_stand_downs", "bridge_slot_findings",
    "bridge_shadow_verdicts", "bridge_authority_jobs", "bridge_job_owner",
    "bridge_metrics_scrape_errors",
}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        out[(family.name, ())] = -1.0  # the family exists
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def families(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {name for (name, labels) in values if labels == ()}


@pytest.fixture
def ops(tmp_path: Path, redis_url: str) -> Iterator[OpsHarness]:
    h = OpsHarness(tmp_path, redis_url)
    yield h
    h.close()


def add_runs(ops: OpsHarness, slot: datetime) -> None:
    def at(seconds: float) -> datetime:
        return slot + timedelta(seconds=seconds)

    common = {"slot": slot, "path": "celery"}
    with ops.registry.session() as s:
        repo = RunRepo(s)
        repo.add(job_id="a", role="authoritative", status="failed", started_at=at(2),
                 finished_at=at(3), attempts=1, **common)
        repo.add(job_id="a", role="authoritative", status="succeeded", started_at=at(40),
                 finished_at=at(52), attempts=2, **common)
        repo.add(job_id="a", role="suppressed", status="suppressed", **common)
        repo.add(job_id="b", slot=slot, path="legacy", role="stand-down", status="stood-down")
        repo.add(job_id="<invalid>", role="rejected", status="rejected",
                 slot=datetime(1970, 1, 1, tzinfo=UTC), path="celery")


def test_documented_series_have_the_values_of_a_known_run_sequence(ops: OpsHarness) -> None:
    from bridge.core.authority import Owner

    ops.add_job("a", "true")
    ops.add_job("b", "true", owner=Owner.LEGACY)
    ops.add_job("c", "true", expression="*/10 * * * *")  # Celery-owned, never ran: missed slots
    slot = top_of_hour() - timedelta(hours=1)
    add_runs(ops, slot)
    port = free_port()
    server = metrics.serve(ops.settings, port)
    try:
        v = scrape(port)
        assert families(v) >= DOCUMENTED
        assert v[("bridge_runs_total", (("host", ""), ("job", "a"), ("outcome", "succeeded"),
                                        ("path", "celery")))] == 1
        assert v[("bridge_runs_total", (("host", ""), ("job", "a"), ("outcome", "failed"),
                                        ("path", "celery")))] == 1
        assert v[("bridge_runs_total", (("host", ""), ("job", "<unknown>"),
                                        ("outcome", "rejected"), ("path", "celery")))] == 1
        assert v[("bridge_suppressed_duplicates_total",
                  (("host", ""), ("job", "a"), ("path", "celery")))] == 1
        assert v[("bridge_stand_downs_total", (("host", ""), ("job", "b"),))] == 1
        lag = (("host", ""), ("job", "a"), ("path", "celery"))
        assert v[("bridge_fire_lag_seconds_count", lag)] == 2
        assert v[("bridge_fire_lag_seconds_sum", lag)] == 42
        bucket = "bridge_fire_lag_seconds_bucket"
        assert v[(bucket, (("host", ""), ("job", "a"), ("le", "2.0"), ("path", "celery")))] == 1
        assert v[(bucket, (("host", ""), ("job", "a"), ("le", "60.0"), ("path", "celery")))] == 2
        assert v[("bridge_run_duration_seconds_sum", lag)] == 13
        assert v[("bridge_authority_jobs", (("owner", "celery"),))] == 2
        assert v[("bridge_authority_jobs", (("owner", "legacy"),))] == 1
        assert v[("bridge_job_owner", (("host", ""), ("job", "b"), ("owner", "legacy")))] == 1
        assert v[("bridge_slot_findings", (("host", ""), ("job", "c"), ("kind", "missed")))] >= 1
        assert not any(k[0].startswith("bridge_") and ("slot", slot_iso(slot)) in k[1]
                       for k in v)  # never a slot label

        with ops.registry.session() as s:  # one more run: only the new row is folded in
            RunRepo(s).add(job_id="a", slot=slot + timedelta(hours=1), path="celery",
                           role="authoritative", status="succeeded", attempts=1,
                           started_at=slot + timedelta(hours=1, seconds=1),
                           finished_at=slot + timedelta(hours=1, seconds=2))
        w = scrape(port)
        assert w[("bridge_runs_total", (("host", ""), ("job", "a"), ("outcome", "succeeded"),
                                        ("path", "celery")))] == 2
        assert w[("bridge_fire_lag_seconds_count", lag)] == 3
    finally:
        server.shutdown()


def test_series_of_a_hosted_job_carry_its_host_label(ops: OpsHarness) -> None:
    from bridge.core.spec import (
        CommandHandler,
        Dialect,
        JobSpec,
        ScheduleSpec,
        SourceKind,
        SourceLocation,
    )
    from bridge.store.repos import JobRepo

    spec = JobSpec(id="web-01.etc-cron.d-backup-1",
                   schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="0 3 * * *"),
                   handler=CommandHandler(command="true", user="root"),
                   source=SourceLocation("/etc/cron.d/backup", 1, None, SourceKind.CRON_D,
                                         "web-01"))
    slot = top_of_hour() - timedelta(hours=1)
    with ops.registry.session() as s:
        JobRepo(s).upsert(spec)
        RunRepo(s).add(job_id=spec.id, slot=slot, path="legacy", role="authoritative",
                       status="succeeded", started_at=slot, finished_at=slot, attempts=1)
    port = free_port()
    server = metrics.serve(ops.settings, port)
    try:
        v = scrape(port)
    finally:
        server.shutdown()
    assert v[("bridge_runs_total", (("host", "web-01"), ("job", spec.id),
                                    ("outcome", "succeeded"), ("path", "legacy")))] == 1


def test_the_worker_exports_the_same_registry(ops: OpsHarness, redis_url: str) -> None:
    import redis

    ops.add_job("a", "true")
    add_runs(ops, top_of_hour() - timedelta(hours=1))
    client = redis.Redis.from_url(redis_url)
    client.hset("{bridge}::bridge:beat", mapping={"holder": "h:1", "tick": "1700000000.5",
                                                  "backlog": "3"})
    client.close()
    port = free_port()
    ops.env["BRIDGE_METRICS_PORT"] = str(port)
    ops.start_worker(app="bridge.celery_app", include="bridge.ops.metrics,bridge.ops.health")
    v = wait_for("the worker's /metrics", lambda: _try_scrape(port), 30)
    assert v[("bridge_runs_total", (("host", ""), ("job", "a"), ("outcome", "succeeded"),
                                    ("path", "celery")))] == 1
    assert v[("bridge_beat_last_tick_timestamp_seconds", ())] == 1700000000.5
    assert v[("bridge_beat_backlog", ())] == 3
    assert os.environ.get("BRIDGE_METRICS_PORT") is None


def _try_scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        return scrape(port)
    except OSError:
        return None


LOST_NOTE = "outcome unknown: worker died mid-run; not run again (policy skip)"


def test_shadow_verdicts_follow_the_report_and_lost_slots_are_their_own_finding(
        ops: OpsHarness) -> None:
    """#14.6: a job imported 20 minutes ago has no missing_legacy for the 40 slots before its
    import (the report's rule; a firing of the import minute is before_import); #20: a lost run
    is ``lost`` in the findings, the outcomes and ``bridge status``, not failed or missed."""
    from sqlalchemy import update

    from bridge.cli.status_cmd import _overview_lines
    from bridge.core.authority import Owner
    from bridge.ops.overview import status_view
    from bridge.store.models import JobRow

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    ops.add_job("p", "true", expression="* * * * *", owner=Owner.LEGACY)
    ops.add_job("l", "true", expression="* * * * *")
    with ops.registry.session() as s:
        s.execute(update(JobRow).where(JobRow.id == "p")
                  .values(created_at=minute - timedelta(minutes=20) + timedelta(seconds=43)))
        s.execute(update(JobRow).where(JobRow.id == "l")
                  .values(created_at=minute - timedelta(hours=2)))
        repo = RunRepo(s)
        first = minute - timedelta(minutes=20)  # the import minute: cron fired before import
        repo.add(job_id="p", slot=first, path="legacy", role="authoritative",
                 status="succeeded", started_at=first + timedelta(seconds=1), exit_status=0)
        for n in range(19, 0, -1):
            slot = minute - timedelta(minutes=n)
            for path, role in (("legacy", "authoritative"), ("celery", "shadow")):
                repo.add(job_id="p", slot=slot, path=path, role=role, status="succeeded",
                         started_at=slot + timedelta(seconds=1),
                         finished_at=slot + timedelta(seconds=2), exit_status=0)
        lost = minute - timedelta(minutes=5)
        repo.add(job_id="l", slot=lost, path="celery", role="authoritative", status="lost",
                 started_at=lost + timedelta(seconds=1), attempts=1, error=LOST_NOTE)
    port = free_port()
    server = metrics.serve(ops.settings, port)
    try:
        v = scrape(port)
    finally:
        server.shutdown()
    verdicts = {dict(k[1])["verdict"]: n for k, n in v.items()
                if k[0] == "bridge_shadow_verdicts" and dict(k[1]).get("job") == "p"}
    assert verdicts.pop("pending", 0) <= 2  # this minute (and the next, if one began)
    assert verdicts == {"match": 19, "before_import": 1}
    assert v[("bridge_slot_findings", (("host", ""), ("job", "l"), ("kind", "lost")))] == 1
    assert v[("bridge_runs_total",
              (("host", ""), ("job", "l"), ("outcome", "lost"), ("path", "celery")))] == 1
    assert ("bridge_runs_total", (("host", ""), ("job", "l"), ("outcome", "failed"),
                                  ("path", "celery"))) not in v

    view = status_view(ops.registry, ops.settings, datetime.now(UTC))
    assert view["slots_24h"]["lost"] == 1 and view["slots_24h"]["failed"] == 0
    assert view["shadow"]["lost_slots"] == 1
    lines = _overview_lines(view)
    assert any(line.startswith("slots 24h") and "lost 1" in line for line in lines), lines
    assert any(line.startswith("shadow") and "1 lost" in line for line in lines), lines


def test_a_real_beat_writes_the_documented_dispatch_metrics(tmp_path: Path,
                                                           redis_url: str) -> None:
    """``bridge_beat_dispatch_batch_size`` / ``_duration_seconds``: written by a real
    ``celery beat -S bridge.scheduler:BridgeScheduler`` into its liveness hash, exposed by a
    collector in another process (this one)."""
    import redis

    from tests.integration.test_beat import PREFIX, Harness, job

    h = Harness(tmp_path, redis_url)
    try:
        h.add_jobs(job("per-second-a"), job("per-second-b"))
        h.beat()
        h.wait_for("beat's first batch", lambda: h.r.hget(f"{PREFIX}:bridge:beat", "batch"),
                   timeout=60)
        client = redis.Redis.from_url(redis_url)
        collector = metrics.BridgeCollector(h.db_url, redis_client=client, prefix=PREFIX)
        beat = {m.name: m.samples[0].value for m in collector._beat()}
        client.close()
        assert 1 <= beat["bridge_beat_dispatch_batch_size"] <= 2 * 1000
        assert 0 < beat["bridge_beat_dispatch_duration_seconds"] < 30
        assert beat["bridge_beat_last_tick_timestamp_seconds"] > 0
    finally:
        h.close()
