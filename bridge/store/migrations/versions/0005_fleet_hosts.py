"""fleets: the host of every job, run, claim, authority event and audit record

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

* ``jobs.host``: the host the job's legacy line lives on (``JobSpec.host``, see
  :mod:`bridge.core.hosts`); NULL for jobs bound to no machine (Quartz, manual).
* ``runs.job_host``, ``claims.job_host``, ``authority_events.job_host``,
  ``audit_log.job_host``: the host of the row's job when the row was written, so every report
  can group by host with no join (and the grouping survives a job's deletion). ``runs.host``
  stays what it was: the machine that *executed* (a worker, a legacy host's shim).

Existing data. A crontab job imported before this revision was imported on its own host (there
was no other way): its host is ``jobs.source_host``, the importing machine recorded since 0004.
For those rows the job's spec gets ``source.host`` and its ``spec_hash`` is recomputed (the
canonical JSON the code computes, so a re-import on that host shows the job ``unchanged``); run
``bridge sync`` after the upgrade so RedBeat's copies carry the new hash. Ids do not change. A
crontab job imported before 0004 (no ``source_host``) keeps no host until its next import.
Existing runs, claims, authority events and audit records get the host of their job.

Writers. Triggers fill ``job_host`` from ``jobs.host`` on every insert that leaves it NULL,
whoever writes the row (a Celery task, the legacy shim of an older release still running on a
host, ``bridge legacy flush``): a BEFORE INSERT row trigger on PostgreSQL, an AFTER INSERT
trigger on SQLite (which cannot assign ``NEW``). A writer that knows the host passes it and the
trigger does nothing. Caution for later revisions: Alembic's SQLite batch mode re-creates a
table without its triggers; a batch operation on one of these tables must call
:func:`create_triggers` again (``tests/store/test_fleet_migration.py`` checks they exist at
head).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CRONTAB_KINDS = ("user-crontab", "system-crontab", "cron.d")
HOSTED_TABLES = ("runs", "claims", "authority_events", "audit_log")
_HOST_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _valid_host(name: str) -> bool:
    """bridge.core.hosts.HOST_RE, restated (a migration does not import the code it migrates)."""
    if not name or len(name) > 80 or not set(name) <= _HOST_CHARS:
        return False
    return all(
        label and label[0].isalnum() and label[-1].isalnum() for label in name.split(".")
    )


def _canonical(doc: dict[str, Any]) -> tuple[str, str]:
    """JobSpec.canonical_json() and spec_hash() for a stored spec document."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()[:16]


def create_triggers() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION bridge_fill_job_host() RETURNS trigger AS $$
            BEGIN
                IF NEW.job_host IS NULL AND NEW.job_id IS NOT NULL THEN
                    SELECT host INTO NEW.job_host FROM jobs WHERE id = NEW.job_id;
                END IF;
                RETURN NEW;
            END
            $$ LANGUAGE plpgsql
            """
        )
        for table in HOSTED_TABLES:
            op.execute(
                f"CREATE TRIGGER trg_{table}_job_host BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE PROCEDURE bridge_fill_job_host()"
            )
        return
    for table in HOSTED_TABLES:
        op.execute(
            f"""
            CREATE TRIGGER trg_{table}_job_host AFTER INSERT ON {table}
            WHEN NEW.job_host IS NULL AND NEW.job_id IS NOT NULL
            BEGIN
                UPDATE {table} SET job_host = (SELECT host FROM jobs WHERE id = NEW.job_id)
                WHERE id = NEW.id
                  AND EXISTS (SELECT 1 FROM jobs WHERE id = NEW.job_id AND host IS NOT NULL);
            END
            """
        )


def drop_triggers() -> None:
    bind = op.get_bind()
    for table in HOSTED_TABLES:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_job_host ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_job_host")
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS bridge_fill_job_host()")


def _rewrite_specs(add_host: bool) -> None:
    """Put ``source.host`` into (or take it out of) the stored specs of hosted crontab jobs."""
    bind = op.get_bind()
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("spec", sa.Text),
        sa.column("spec_hash", sa.String),
        sa.column("source_kind", sa.String),
        sa.column("source_host", sa.String),
        sa.column("host", sa.String),
    )
    if add_host:
        query = sa.select(jobs.c.id, jobs.c.spec, jobs.c.source_host).where(
            jobs.c.source_kind.in_(CRONTAB_KINDS), jobs.c.source_host.is_not(None)
        )
    else:
        query = sa.select(jobs.c.id, jobs.c.spec, jobs.c.host).where(jobs.c.host.is_not(None))
    updates = []
    for job_id, text, host in bind.execute(query).all():
        doc = json.loads(text)
        source = doc.setdefault("source", {"file": "<manual>"})
        if add_host:
            if not _valid_host(host):
                continue  # a name the code would refuse: the job gets its host on re-import
            source["host"] = host
        else:
            source.pop("host", None)
        spec, digest = _canonical(doc)
        updates.append(
            {"b_id": job_id, "spec": spec, "spec_hash": digest, "host": host if add_host else None}
        )
    statement = (
        jobs.update()
        .where(jobs.c.id == sa.bindparam("b_id"))
        .values(spec=sa.bindparam("spec"), spec_hash=sa.bindparam("spec_hash"),
                host=sa.bindparam("host"))
    )
    for i in range(0, len(updates), 1000):
        bind.execute(statement, updates[i : i + 1000])


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_host"), ["host"], unique=False)
    for table in HOSTED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("job_host", sa.String(length=255), nullable=True))
    _rewrite_specs(add_host=True)
    for table in HOSTED_TABLES:
        op.execute(
            f"UPDATE {table} SET job_host = (SELECT host FROM jobs WHERE jobs.id = {table}.job_id) "
            "WHERE job_id IS NOT NULL"
        )
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    _rewrite_specs(add_host=False)
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch re-creation of ``jobs`` would
    # fail on SQLite while other tables' rows reference it
    op.drop_index(op.f("ix_jobs_host"), table_name="jobs")
    for table in (*HOSTED_TABLES, "jobs"):
        op.drop_column(table, "job_host" if table != "jobs" else "host")
