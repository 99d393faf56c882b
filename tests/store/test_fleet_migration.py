"""Revision 0005 (fleets): a 0004 registry with data is upgraded in place, on a real SQLite file
and a real PostgreSQL database; every row learns its job's host; ids do not change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bridge.core.spec import (
    CommandHandler,
    Dialect,
    JobSpec,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
)
from bridge.store import db
from bridge.store.audit import AuditRepo
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
NAIVE = T0.replace(tzinfo=None)
TABLES = ("runs", "claims", "authority_events", "audit_log")


def _spec(job_id: str, file: str, kind: SourceKind) -> JobSpec:
    return JobSpec(
        id=job_id,
        schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="0 3 * * *", timezone="UTC"),
        handler=CommandHandler(command="/usr/local/bin/backup", user="root"),
        source=SourceLocation(file, 1, "0 3 * * * root /usr/local/bin/backup", kind),
    )


def _job_row(spec: JobSpec, source_host: str | None) -> dict[str, Any]:
    return {
        "id": spec.id, "file": spec.source.file, "kind": spec.source.kind.value,
        "host": source_host, "spec": spec.canonical_json(), "hash": spec.spec_hash(), "at": NAIVE,
    }


def _seed_0004(reg: Registry) -> dict[str, JobSpec]:
    """A registry at 0004 as the previous release left it: three jobs, each with history."""
    specs = {
        "etc-cron.d-backup-1": _spec(
            "etc-cron.d-backup-1", "/etc/cron.d/backup", SourceKind.CRON_D
        ),
        "alice-crontab-1": _spec("alice-crontab-1", "/var/spool/cron/crontabs/alice",
                                 SourceKind.USER_CRONTAB),
        "billing.nightly": _spec("billing.nightly", "/srv/quartz/jobs.xml", SourceKind.QUARTZ_XML),
    }
    hosts = {"etc-cron.d-backup-1": "web-01", "alice-crontab-1": None, "billing.nightly": "app-1"}
    with reg.engine.begin() as conn:
        for job_id, spec in specs.items():
            conn.execute(
                text(
                    "INSERT INTO jobs (id, source_file, source_line, source_kind, source_host, "
                    "dialect, spec, spec_version, spec_hash, mapped, paused, created_at, "
                    "updated_at) VALUES (:id, :file, 1, :kind, :host, 'vixie', :spec, 1, :hash, "
                    "true, false, :at, :at)"
                ),
                _job_row(spec, hosts[job_id]),
            )
            conn.execute(
                text("INSERT INTO runs (job_id, slot, path, role, status, attempts, host) "
                     "VALUES (:j, :slot, 'legacy', 'authoritative', 'succeeded', 1, 'web-01')"),
                {"j": job_id, "slot": NAIVE},
            )
            conn.execute(
                text("INSERT INTO claims (job_id, slot, holder, path, state, attempts, "
                     "expires_at, created_at, updated_at) VALUES (:j, :slot, 'h', 'legacy', "
                     "'done', 1, :slot, :slot, :slot)"),
                {"j": job_id, "slot": NAIVE},
            )
            conn.execute(
                text("INSERT INTO authority_events (job_id, owner, actor, forced, at) "
                     "VALUES (:j, 'legacy', 'ops', false, :at)"),
                {"j": job_id, "at": NAIVE},
            )
            conn.execute(
                text("INSERT INTO audit_log (at, actor, action, job_id) "
                     "VALUES (:at, 'ops', 'import.create', :j)"),
                {"j": job_id, "at": NAIVE},
            )
    return specs


def _column(reg: Registry, table: str, job_id: str) -> list[Any]:
    with reg.engine.connect() as conn:
        return list(conn.execute(
            text(f"SELECT job_host FROM {table} WHERE job_id = :j"), {"j": job_id}
        ).scalars())


def test_a_0004_registry_with_data_learns_each_jobs_host_and_keeps_its_ids(db_url: str) -> None:
    reg = Registry(db_url, check_schema=False)
    db.downgrade(reg.engine, "0004")
    specs = _seed_0004(reg)
    assert db.upgrade(reg.engine).up_to_date
    with reg.session() as s:
        jobs = {j.id: j for j in JobRepo(s).list()}
    assert set(jobs) == set(specs)  # ids unchanged
    backup = jobs["etc-cron.d-backup-1"]
    assert backup.host == "web-01" and backup.spec.source.host == "web-01"
    # the stored hash is the code's hash of the stored spec: a re-import shows it unchanged
    assert backup.spec_hash == backup.spec.spec_hash()
    assert backup.spec == specs["etc-cron.d-backup-1"].with_(
        source=SourceLocation("/etc/cron.d/backup", 1, "0 3 * * * root /usr/local/bin/backup",
                              SourceKind.CRON_D, "web-01"))
    # imported before 0004 (no importing host recorded): no host until its next import
    assert jobs["alice-crontab-1"].host is None
    assert jobs["alice-crontab-1"].spec_hash == specs["alice-crontab-1"].spec_hash()
    # a Quartz job is bound to no machine, whoever imported it
    assert jobs["billing.nightly"].host is None
    for table in TABLES:
        assert _column(reg, table, "etc-cron.d-backup-1") == ["web-01"], table
        assert _column(reg, table, "billing.nightly") == [None], table
    with reg.engine.connect() as conn:
        query = "SELECT host, source_host FROM jobs WHERE id = 'etc-cron.d-backup-1'"
        row = conn.execute(text(query))
        assert tuple(row.one()) == ("web-01", "web-01")
    reg.dispose()


def test_every_writer_s_rows_get_the_job_host_even_without_naming_it(db_url: str) -> None:
    reg = Registry(db_url)
    spec = _spec("web-02.etc-cron.d-backup-1", "/etc/cron.d/backup", SourceKind.CRON_D)
    spec = spec.with_(source=SourceLocation("/etc/cron.d/backup", 1, None, SourceKind.CRON_D,
                                            "web-02"))
    with reg.session() as s:
        JobRepo(s).write_many([spec], host="importer")
        AuthorityRepo(s).start_legacy([spec.id], actor="t", reason="imported")
        AuditRepo(s).append("jobs.set", actor="t", job_id=spec.id)
    slot = NAIVE + timedelta(days=1)
    with reg.engine.begin() as conn:  # as an older shim or a task writes: no job_host at all
        conn.execute(text("INSERT INTO runs (job_id, slot, path, role, status, attempts) "
                          "VALUES (:j, :s, 'celery', 'authoritative', 'running', 1)"),
                     {"j": spec.id, "s": slot})
        conn.execute(text("INSERT INTO claims (job_id, slot, holder, path, state, attempts, "
                          "expires_at, created_at, updated_at) VALUES (:j, :s, 'h', 'celery', "
                          "'running', 1, :s, :s, :s)"), {"j": spec.id, "s": slot})
        conn.execute(text("INSERT INTO runs (job_id, slot, path, role, status, attempts, "
                          "job_host) VALUES ('unknown-job', :s, 'celery', 'shadow', 'running', "
                          "1, NULL)"), {"s": slot})
    for table in TABLES:
        assert _column(reg, table, spec.id) == ["web-02"], table
    assert _column(reg, "runs", "unknown-job") == [None]
    with reg.engine.connect() as conn:
        row = conn.execute(text("SELECT host, source_host FROM jobs WHERE id = :j"), {"j": spec.id})
        assert tuple(row.one()) == ("web-02", "web-02")  # the job's host, not the importer's
    reg.dispose()


def test_downgrade_to_0004_takes_the_host_out_of_the_specs_again(db_url: str) -> None:
    reg = Registry(db_url, check_schema=False)
    db.downgrade(reg.engine, "0004")
    specs = _seed_0004(reg)
    db.upgrade(reg.engine)
    db.downgrade(reg.engine, "0004")
    with reg.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(text("SELECT id, spec, spec_hash FROM jobs"))}
    for job_id, spec in specs.items():
        assert json.loads(rows[job_id].spec) == spec.to_json()
        assert rows[job_id].spec_hash == spec.spec_hash()
    db.upgrade(reg.engine)
    reg.dispose()
