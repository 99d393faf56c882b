"""Health and status on per-host queues: a host's queue with jobs but no live consumer alerts,
naming the host whose worker is missing; consumers are read from the transport's liveness."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.jobs import StoredJob
from bridge.core.spec import (
    CommandHandler,
    Dialect,
    JobSpec,
    Placement,
    Policies,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
)
from bridge.ops.health import BeatState, HealthFacts, health_alerts, needed_queues

NOW = datetime(2026, 3, 8, 7, 0, 30, tzinfo=UTC)


def stored(job_id: str, host: str | None, placement: Placement = Placement.HOST) -> StoredJob:
    spec = JobSpec(
        id=job_id,
        schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
        handler=CommandHandler(command="true"),
        source=SourceLocation(file="/etc/cron.d/x", line=1, kind=SourceKind.CRON_D, host=host),
        policies=Policies(placement=placement),
    )
    return StoredJob(spec=spec, spec_hash=spec.spec_hash(), paused=False, paused_reason=None,
                     created_at=NOW, updated_at=NOW)


def celery_owned(job_id: str) -> list[AuthorityEvent]:
    return [AuthorityEvent(job_id=job_id, effective_slot=None, owner=Owner.CELERY,
                           actor="t", reason=None, forced=False, at=NOW)]


def test_a_hosts_queue_is_needed_when_a_celery_job_is_bound_there_or_messages_wait() -> None:
    jobs = [stored("web-01.a", "web-01"), stored("web-02.a", "web-02"),
            stored("web-03.a", "web-03", Placement.ANYWHERE)]
    histories: dict[str, Any] = {"web-01.a": celery_owned("web-01.a")}
    assert needed_queues(jobs, histories, NOW) == {"bridge.host.web-01"}
    waiting = {"bridge.host.web-02": 3, "bridge": 0}
    assert needed_queues(jobs, histories, NOW, waiting) == {"bridge.host.web-01",
                                                             "bridge.host.web-02"}


def test_a_host_queue_nobody_consumes_alerts_naming_the_host() -> None:
    facts = HealthFacts(findings=[], beat=BeatState("b", NOW.timestamp()),
                        needed_queues=frozenset({"bridge", "bridge.host.web-02"}),
                        consumed_queues=frozenset({"bridge", "bridge.host.web-01"}),
                        queue_lengths={"bridge.host.web-02": 4})
    (alert,) = health_alerts(facts, NOW, 60)
    assert alert.kind == "worker-down" and alert.severity.value == "critical"
    assert alert.summary == "host web-02's queue bridge.host.web-02: no worker consumes it"
    assert "4 message(s)" in alert.detail
    assert "bridge worker --host web-02" in alert.detail


@pytest.mark.integration
def test_health_reads_consumers_from_transport_liveness(tmp_path: Path, redis_url: str) -> None:
    from bridge.adapters.inflight import live_consumers
    from bridge.ops.health import consumed_queues
    from tests.chaos.harness import Chaos
    from tests.support import wait_for

    chaos = Chaos(tmp_path, redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        chaos.worker(concurrency=1, queues="bridge,bridge.host.web-01")

        class NoBroadcast:  # the workers' answers are not needed: liveness covers the queues
            @property
            def control(self) -> Any:
                raise AssertionError("inspected the workers although liveness sufficed")

        needed = frozenset({"bridge", "bridge.host.web-01"})
        wait_for("the worker's first poll", lambda: set(live_consumers(client)) >= needed, 30)
        assert consumed_queues(NoBroadcast(), client, needed) >= needed  # type: ignore[operator]
    finally:
        client.close()
        chaos.close()
