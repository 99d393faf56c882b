"""Placement: the queue a job is published to and the queues a worker on a host consumes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.cli.worker_cmd import worker_argv
from bridge.core.placement import host_bound, host_queue, job_queue, queue_host, worker_queues
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


def spec(host: str | None, placement: Placement = Placement.HOST, queue: str = "bridge") -> JobSpec:
    return JobSpec(
        id="web-01.etc-cron.d-logs-1",
        schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
        handler=CommandHandler(command="logrotate /etc/logrotate.conf"),
        source=SourceLocation(file="/etc/cron.d/logs", line=1, kind=SourceKind.CRON_D, host=host),
        policies=Policies(placement=placement, queue=queue),
    )


def test_a_crontab_job_goes_to_its_hosts_queue_by_default() -> None:
    job = spec("web-01")
    assert host_bound(job)
    assert job_queue(job) == "bridge.host.web-01" == host_queue("bridge", "web-01")
    assert queue_host(job_queue(job)) == "web-01"


def test_a_job_placed_anywhere_or_without_a_host_goes_to_its_shared_queue() -> None:
    assert job_queue(spec("web-01", Placement.ANYWHERE)) == "bridge"
    assert job_queue(spec(None)) == "bridge"  # a Quartz store's job is bound to no machine
    assert not host_bound(spec(None))
    assert queue_host("bridge") is None


def test_a_custom_queue_keeps_its_name_in_the_hosts_variant() -> None:
    assert job_queue(spec("db-2.eu", queue="reports")) == "reports.host.db-2.eu"


def test_a_worker_on_a_host_consumes_the_shared_queues_then_their_host_variants() -> None:
    assert worker_queues(["bridge"], "web-01") == ["bridge", "bridge.host.web-01"]
    assert worker_queues(["bridge", "reports", "bridge"], "w") == [
        "bridge", "reports", "bridge.host.w", "reports.host.w"]
    assert worker_queues(["bridge"], None) == ["bridge"]


def test_placement_keeps_the_spec_hash_of_jobs_that_do_not_set_it() -> None:
    job = spec("web-01")
    assert "placement" not in job.to_json()["policies"]
    moved = replace(job, policies=replace(job.policies, placement=Placement.ANYWHERE))
    assert moved.to_json()["policies"]["placement"] == "anywhere"
    assert JobSpec.from_json(moved.to_json()) == moved
    assert moved.spec_hash() != job.spec_hash()


def test_bridge_worker_host_adds_the_hosts_queues_to_the_celery_line() -> None:
    argv = worker_argv("threads", 8, None, [], "web-01")
    assert argv[argv.index("-Q") + 1] == "bridge,bridge.host.web-01"
    argv = worker_argv("threads", 8, "bridge,reports", [], "web-01")
    assert argv[argv.index("-Q") + 1] == "bridge,reports,bridge.host.web-01,reports.host.web-01"
    with pytest.raises(ValueError, match="--host 'a b'"):
        worker_argv("threads", 8, None, [], "a b")
