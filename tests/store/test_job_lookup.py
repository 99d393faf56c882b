"""The worker's job lookup reads what the repositories wrote (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.core.authority import Owner
from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
from bridge.store.db import Registry
from bridge.store.job_lookup import JobLookup
from bridge.store.repos import AuthorityRepo, JobRepo

SLOT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def spec(command: str) -> JobSpec:
    schedule = ScheduleSpec(dialect=Dialect.VIXIE, expression="0 7 * * *")
    return JobSpec(id="nightly", schedule=schedule, handler=CommandHandler(command=command),
                   source=SourceLocation("/etc/cron.d/x", 1))


def test_lookup_returns_the_job_and_its_history_in_order(db_url: str) -> None:
    registry = Registry(db_url)
    try:
        with registry.session() as s:
            JobRepo(s).upsert(spec("true"))
            AuthorityRepo(s).append("nightly", Owner.CELERY, effective_slot=SLOT, actor="a",
                                    reason="flip")
            AuthorityRepo(s).append("nightly", Owner.LEGACY, effective_slot=None, actor="b",
                                    reason="back")
            JobRepo(s).set_paused("nightly", True, "maintenance")
        with registry.session() as s:
            expected = (JobRepo(s).get("nightly"), AuthorityRepo(s).history("nightly"))
        lookup = JobLookup(registry)
        job, history = lookup.read("nightly")
        assert (job, history) == expected
        assert [e.owner for e in history] == [Owner.CELERY, Owner.LEGACY]
        assert job is not None and job.paused and job.paused_reason == "maintenance"
        assert lookup.read("no-such-job") == (None, [])
    finally:
        registry.dispose()


def test_a_changed_spec_is_read_again_and_a_deleted_job_is_unknown(db_url: str) -> None:
    registry = Registry(db_url)
    try:
        with registry.session() as s:
            JobRepo(s).upsert(spec("echo one"))
        lookup = JobLookup(registry)
        first, history = lookup.read("nightly")
        assert first is not None and history == []
        with registry.session() as s:
            JobRepo(s).upsert(spec("echo two"))
        second, _ = lookup.read("nightly")
        assert second is not None and second.spec.handler == CommandHandler(command="echo two")
        with registry.session() as s:
            JobRepo(s).delete("nightly")
        assert lookup.read("nightly") == (None, [])
    finally:
        registry.dispose()
