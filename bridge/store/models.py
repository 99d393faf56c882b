"""The registry's tables (SQLAlchemy 2). Same code on SQLite and PostgreSQL.

``job_host`` (runs, claims, authority_events, audit_log): the host of the row's job when it was
written (``jobs.host``); database triggers fill it on every insert that leaves it NULL (revision
0005), so every writer's rows group by host.

Every timestamp is stored as naive UTC and read back as aware UTC (:class:`UTCDateTime`), so a
slot compares equal whichever database it went through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_file: Mapped[str] = mapped_column(String(1000), index=True)
    source_line: Mapped[int | None] = mapped_column(Integer)
    source_kind: Mapped[str] = mapped_column(String(32))
    source_host: Mapped[str | None] = mapped_column(String(255))  # who imported it (0004)
    host: Mapped[str | None] = mapped_column(String(255), index=True)  # JobSpec.host (0005)
    dialect: Mapped[str] = mapped_column(String(32))
    spec: Mapped[str] = mapped_column(Text)  # canonical JSON of the JobSpec (versioned)
    spec_version: Mapped[int] = mapped_column(Integer)
    spec_hash: Mapped[str] = mapped_column(String(64))
    mapped: Mapped[bool] = mapped_column(Boolean, default=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthorityEventRow(Base):
    __tablename__ = "authority_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    effective_slot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    job_host: Mapped[str | None] = mapped_column(String(255))  # jobs.host at write time (0005)


class RunRow(Base):
    """One observation: a firing of either path for a slot (bridge.store.runs writes these)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_job_slot", "job_id", "slot"),
        Index("ix_runs_slot", "slot"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(200))
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    path: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_status: Mapped[int | None] = mapped_column(Integer)
    task_state: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    output_digest: Mapped[str | None] = mapped_column(String(64))
    output_sample: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    record_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    pid: Mapped[int | None] = mapped_column(Integer)  # a started command's process group
    job_host: Mapped[str | None] = mapped_column(String(255))  # jobs.host at write time (0005)


class ClaimRow(Base):
    """The at-most-once guard: one row per (job, slot), leased to one holder at a time."""

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint("job_id", "slot", name="uq_claims_job_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(200))
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    holder: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    job_host: Mapped[str | None] = mapped_column(String(255))  # jobs.host at write time (0005)


class AuditRow(Base):
    """Append-only: the repository never updates or deletes these rows."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_job_at", "job_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    job_host: Mapped[str | None] = mapped_column(String(255))  # jobs.host at write time (0005)


class RegistryMetaRow(Base):
    """Facts about the registry itself (``registry_id``: its name in Redis)."""

    __tablename__ = "registry_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class FleetMemberRow(Base):
    """A host-bound job consolidated into a group job (0006; :mod:`bridge.services.fleet`)."""

    __tablename__ = "fleet_members"

    member_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(200), index=True)
    host: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
