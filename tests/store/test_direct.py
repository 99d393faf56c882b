"""The worker's statements on the driver (:mod:`bridge.store.direct`) write and read exactly
what the SQLAlchemy models do, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bridge.core.authority import Owner
from bridge.core.claims import ClaimState
from bridge.core.errors import InfraError
from bridge.core.runs import Path, Role, RunRecord, Status
from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
from bridge.store.claims import ClaimStore
from bridge.store.db import Registry
from bridge.store.job_lookup import JobLookup
from bridge.store.models import ClaimRow
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.run_rows import RunRows
from bridge.store.runs import query, record

SLOT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 8, 7, 0, 1, 250_001, tzinfo=UTC)


@pytest.fixture
def registry(db_url: str):  # type: ignore[no-untyped-def]
    reg = Registry(db_url)
    yield reg
    reg.dispose()


def job(job_id: str = "direct-1") -> JobSpec:
    return JobSpec(
        id=job_id,
        schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *", timezone="UTC"),
        handler=CommandHandler(command="true", user="root"),
        source=SourceLocation("/etc/crontab", 3),
    )


def full_record(key: str | None = "celery-run:abc:1") -> RunRecord:
    return RunRecord(
        "direct-1", SLOT, Path.CELERY, Role.AUTHORITATIVE, Status.FAILED, fired_at=NOW,
        started_at=NOW + timedelta(microseconds=7), finished_at=NOW + timedelta(seconds=2),
        exit_status=3, task_state="FAILURE", attempts=2, output_digest="d" * 64,
        output_sample="out\u00e9\n", host="w1", error="exit 3", record_key=key,
    )


def test_a_claim_inserted_on_the_driver_reads_back_identically_through_the_models(
        registry: Registry) -> None:
    store = ClaimStore(registry)
    won = store.insert("direct-1", SLOT, "task:w1", "celery", NOW, NOW + timedelta(seconds=30))
    assert won is not None
    with registry.session() as s:
        row = s.scalars(select(ClaimRow)).one()
    assert (row.id, row.job_id, row.slot, row.holder, row.state, row.attempts) == (
        won.id, "direct-1", SLOT, "task:w1", "running", 1)
    assert row.expires_at == NOW + timedelta(seconds=30) and row.created_at == NOW
    assert store.get("direct-1", SLOT) == won
    assert store.insert("direct-1", SLOT, "other", "celery", NOW, NOW) is None  # one winner


def test_timestamps_are_stored_in_the_models_own_format(registry: Registry) -> None:
    """A claim written by the models and one written on the driver store the same text (SQLite)
    or value (PostgreSQL): range queries and the unique (job, slot) key compare them."""
    with registry.session() as s:
        s.add(ClaimRow(job_id="by-models", slot=SLOT, holder="h", path="legacy",
                       state="running", attempts=1, expires_at=NOW, created_at=NOW,
                       updated_at=NOW))
    ClaimStore(registry).insert("by-driver", SLOT, "h", "celery", NOW, NOW)
    with registry.engine.connect() as conn:
        stored = conn.execute(text("SELECT job_id, slot, expires_at FROM claims ORDER BY job_id")
                              ).all()
    assert stored[0][1:] == stored[1][1:], stored
    assert ClaimStore(registry).insert("by-models", SLOT, "x", "celery", NOW, NOW) is None


def test_the_verdict_and_the_run_row_are_written_in_one_transaction(registry: Registry) -> None:
    store, rows = ClaimStore(registry), RunRows(registry)
    won = store.insert("direct-1", SLOT, "task:w1", "celery", NOW, NOW + timedelta(seconds=30))
    assert won is not None
    started = full_record()
    assert rows.add_once(started, pid=4242)
    assert not rows.add_once(started, pid=1)  # its record_key exists: reported, not raised
    finished = RunRecord("direct-1", SLOT, Path.CELERY, Role.AUTHORITATIVE, Status.SUCCEEDED,
                         fired_at=NOW, finished_at=NOW + timedelta(seconds=1), exit_status=0,
                         attempts=2, record_key=started.record_key)
    assert store.close(won, ClaimState.SUCCEEDED, NOW, record=finished,
                       record_key=started.record_key)
    assert not store.close(won, ClaimState.FAILED, NOW)  # fenced: no longer running
    assert store.get("direct-1", SLOT).state is ClaimState.SUCCEEDED  # type: ignore[union-attr]
    with registry.session() as s:
        (stored,) = list(query(s, "direct-1"))
    assert stored == finished
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT pid FROM runs")).scalar() == 4242  # pid kept


def test_a_started_row_written_by_the_models_is_found_on_the_driver(registry: Registry) -> None:
    with registry.session() as s:
        record(s, full_record("celery-run:abc:1"))
        s.execute(text("UPDATE runs SET pid = 99"))
    found = RunRows(registry).latest_started("direct-1", SLOT, "celery-run:abc:", below=3)
    assert found is not None
    key, started = found
    assert key == "celery-run:abc:1" and started.pid == 99
    assert started.record == full_record("celery-run:abc:1")
    assert started.record.started_at == NOW + timedelta(microseconds=7)
    assert RunRows(registry).latest_started("direct-1", SLOT, "celery-run:abc:", below=2) is None


def test_the_job_and_its_authority_history_read_as_the_repositories_do(
        registry: Registry) -> None:
    with registry.session() as s:
        JobRepo(s).upsert(job())
        AuthorityRepo(s).append("direct-1", Owner.CELERY, effective_slot=SLOT, actor="alice",
                                reason="go")
        AuthorityRepo(s).append("direct-1", Owner.LEGACY, effective_slot=None, actor="bob",
                                reason="back",
                                forced=True)
    with registry.session() as s:
        expected_job = JobRepo(s).require("direct-1")
        expected_history = AuthorityRepo(s).history("direct-1")
    stored, history = JobLookup(registry).read("direct-1")
    assert stored == expected_job
    assert history == expected_history and [e.forced for e in history] == [False, True]
    assert JobLookup(registry).read("nope") == (None, [])


def test_sqlite_file_connections_are_one_per_thread_and_closed_on_dispose(
        sqlite_registry_url: str) -> None:
    reg = Registry(sqlite_registry_url)
    store = ClaimStore(reg)

    def claim(i: int) -> None:
        store.insert(f"t{i}", SLOT, "h", "celery", NOW, NOW)
        store.get(f"t{i}", SLOT)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claim(9)
    claim(10)  # the same thread again: its connection is reused
    assert len(reg.direct.opened) == 5
    reg.dispose()
    assert reg.direct.opened == []


def test_an_unreachable_database_is_the_registrys_one_line_error() -> None:
    reg = Registry("postgresql+psycopg://bridge:s3cret@127.0.0.1:1/nowhere", check_schema=False)
    with pytest.raises(InfraError) as caught:
        ClaimStore(reg).get("j", SLOT)
    message = str(caught.value)
    assert message.startswith("database unreachable at postgresql+psycopg://bridge:***@")
    assert "s3cret" not in message and "\n" not in message
    reg.dispose()
