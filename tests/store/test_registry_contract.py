"""The registry contract, run against a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bridge.core.authority import Owner
from bridge.core.errors import NotFoundError, RefusedError
from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
from bridge.store import db
from bridge.store.audit import AuditRepo
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo


def job(
    job_id: str = "etc-crontab-1", command: str = "echo hi", file: str = "/etc/crontab"
) -> JobSpec:
    return JobSpec(
        id=job_id,
        schedule=ScheduleSpec(
            dialect=Dialect.VIXIE, expression="30 2 * * *", timezone="America/New_York"
        ),
        handler=CommandHandler(command=command, user="root"),
        source=SourceLocation(file, 3),
    )


def test_upsert_creates_updates_and_detects_unchanged(db_url: str) -> None:
    reg = Registry(db_url)
    with reg.session() as s:
        assert JobRepo(s).upsert(job())[0] == "create"
    with reg.session() as s:
        assert JobRepo(s).upsert(job())[0] == "unchanged"
        outcome, previous = JobRepo(s).upsert(job(command="echo changed"))
        assert outcome == "update" and previous is not None
    with reg.session() as s:
        stored = JobRepo(s).require("etc-crontab-1")
        assert isinstance(stored.spec.handler, CommandHandler)
        assert stored.spec.handler.command == "echo changed"
        assert stored.spec == job(command="echo changed")
        assert stored.created_at.tzinfo is UTC
    reg.dispose()


def test_failed_transaction_changes_nothing(db_url: str) -> None:
    reg = Registry(db_url)
    with pytest.raises(RuntimeError), reg.session() as s:
        JobRepo(s).upsert(job("a-1"))
        JobRepo(s).upsert(job("a-2"))
        raise RuntimeError("boom half way")
    with reg.session() as s:
        assert JobRepo(s).count() == 0
    reg.dispose()


def test_soft_delete_hides_job_and_reimport_revives_it(db_url: str) -> None:
    reg = Registry(db_url)
    with reg.session() as s:
        JobRepo(s).upsert(job())
    with reg.session() as s:
        JobRepo(s).delete("etc-crontab-1")
    with reg.session() as s:
        assert JobRepo(s).get("etc-crontab-1") is None
        assert JobRepo(s).ids_from_source("/etc/crontab") == set()
        with pytest.raises(NotFoundError, match="no job 'etc-crontab-1'"):
            JobRepo(s).require("etc-crontab-1")
        assert JobRepo(s).upsert(job())[0] == "create"
    reg.dispose()


def test_authority_history_is_ordered_and_keeps_slots_exact(db_url: str) -> None:
    reg = Registry(db_url)
    slot = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    with reg.session() as s:
        JobRepo(s).upsert(job())
        a = AuthorityRepo(s)
        a.append("etc-crontab-1", Owner.LEGACY, effective_slot=None, actor="ops", reason="import")
        a.append(
            "etc-crontab-1",
            Owner.CELERY,
            effective_slot=slot,
            actor="ops",
            reason="ready",
            forced=True,
        )
    with reg.session() as s:
        history = AuthorityRepo(s).history("etc-crontab-1")
        assert [e.owner for e in history] == [Owner.LEGACY, Owner.CELERY]
        assert history[1].effective_slot == slot and history[1].forced
        assert AuthorityRepo(s).histories()["etc-crontab-1"] == history
    reg.dispose()


def test_audit_log_is_append_only_and_queryable(db_url: str) -> None:
    reg = Registry(db_url)
    with reg.session() as s:
        AuditRepo(s).append("import.create", actor="ops", job_id="x", after={"spec_hash": "1"})
        AuditRepo(s).append("flip", actor="ops", job_id="y", reason="ready")
    with reg.session() as s:
        entries = AuditRepo(s).query()
        assert [e.action for e in entries] == ["import.create", "flip"]
        assert AuditRepo(s).query(job_id="y")[0].reason == "ready"
        assert AuditRepo(s).query(since=datetime.now(UTC) + timedelta(hours=1)) == []
        assert not hasattr(AuditRepo(s), "delete") and not hasattr(AuditRepo(s), "update")
    reg.dispose()


def test_runs_are_queried_by_job_and_slot_range(db_url: str) -> None:
    reg = Registry(db_url)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with reg.session() as s:
        for i in range(5):
            RunRepo(s).add(
                job_id="j",
                slot=base + timedelta(minutes=i),
                path="legacy",
                role="authoritative",
                status="succeeded",
                exit_status=0,
            )
    with reg.session() as s:
        rows = RunRepo(s).for_job(
            "j", since=base + timedelta(minutes=1), until=base + timedelta(minutes=3)
        )
        assert [r.slot for r in rows] == [base + timedelta(minutes=i) for i in (1, 2, 3)]
    reg.dispose()


def test_migration_round_trip_upgrade_downgrade_upgrade(db_url: str) -> None:
    reg = Registry(db_url, check_schema=False)
    head = db.head_revision()
    assert db.schema_state(reg.engine).current == head
    db.downgrade(reg.engine, "base")
    assert db.schema_state(reg.engine).current is None
    with reg.engine.connect() as conn:
        names = set(reg.engine.dialect.get_table_names(conn))
    assert "jobs" not in names
    db.upgrade(reg.engine)
    assert db.schema_state(reg.engine).up_to_date
    with reg.session() as s:
        JobRepo(s).upsert(job())
    reg.dispose()


def test_database_newer_than_code_is_refused(db_url: str) -> None:
    reg = Registry(db_url, check_schema=False)
    with reg.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(RefusedError, match="newer than this cron-bridge knows"):
        Registry(db_url)
    with reg.engine.begin() as conn:
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{db.head_revision()}'"))
    reg.dispose()


def test_fresh_sqlite_registry_needs_no_manual_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'deep' / 'dir' / 'registry.db'}"
    reg = Registry(url)
    with reg.session() as s:
        assert JobRepo(s).count() == 0
    reg.dispose()


def test_empty_postgresql_asks_for_db_upgrade(pg_url: str) -> None:
    import psycopg

    from tests.support.services import PG_ADMIN_URL

    name = "bridge_empty_" + datetime.now(UTC).strftime("%H%M%S%f")
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = pg_url.rsplit("/", 1)[0] + "/" + name
        with pytest.raises(RefusedError, match="run `bridge db upgrade`"):
            Registry(url)
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_unreachable_database_is_one_line_with_masked_url() -> None:
    from bridge.core.errors import InfraError

    with pytest.raises(InfraError) as e:
        Registry("postgresql+psycopg://bridge:hunter2@127.0.0.1:1/reg")
    msg = str(e.value)
    assert "hunter2" not in msg and "bridge:***@127.0.0.1:1" in msg and "\n" not in msg


def test_celery_watermarks_are_the_latest_celery_slot_per_job(db_url: str) -> None:
    reg = Registry(db_url)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with reg.session() as s:
        for i, path in enumerate(["celery", "celery", "legacy"]):
            RunRepo(s).add(
                job_id="j",
                slot=base + timedelta(minutes=i),
                path=path,
                role="authoritative",
                status="succeeded",
            )
    with reg.session() as s:
        marks = RunRepo(s).celery_watermarks()
    assert marks == {"j": base + timedelta(minutes=1)}
    assert marks["j"].tzinfo is not None
    reg.dispose()
