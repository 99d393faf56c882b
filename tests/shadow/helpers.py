"""Builders shared by the shadow tests: specs and observations in one line each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.runs import RunRecord
from bridge.core.spec import (
    CommandHandler,
    ComparePolicy,
    JobSpec,
    Policies,
    ScheduleSpec,
    UnmappedHandler,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def make_spec(
    expr: str = "0 * * * *",
    *,
    job_id: str = "etc-crontab-1",
    tz: str = "UTC",
    dialect: str = "vixie",
    mode: str = "dry-run",
    mapped: bool = True,
    **compare: Any,
) -> JobSpec:
    handler = CommandHandler(command="/usr/local/bin/job") if mapped else UnmappedHandler(
        job_class="com.example.LegacyJob")
    return JobSpec(
        id=job_id,
        schedule=ScheduleSpec(dialect=dialect, expression=expr, timezone=tz),  # type: ignore[arg-type]
        handler=handler,
        policies=Policies(shadow_mode=mode),  # type: ignore[arg-type]
        compare=ComparePolicy(**compare),
    )


def make_obs(
    path: str,
    slot: datetime | str,
    *,
    role: str | None = None,
    status: str = "succeeded",
    lag: float | None = 1.0,
    exit_status: int | None = 0,
    job_id: str = "etc-crontab-1",
    **extra: Any,
) -> RunRecord:
    slot = utc(slot) if isinstance(slot, str) else slot
    if role is None:
        role = "authoritative" if path == "legacy" else "shadow"
    fired = None if lag is None else slot + timedelta(seconds=lag)
    done = None if fired is None or status == "running" else fired + timedelta(seconds=2)
    values: dict[str, Any] = {
        "fired_at": fired, "started_at": fired, "finished_at": done,
        "exit_status": exit_status, "host": f"{path}-host",
    }
    values.update(extra)
    return RunRecord(job_id=job_id, slot=slot, path=path, role=role,  # type: ignore[arg-type]
                       status=status, **values)  # type: ignore[arg-type]


def backdate_imports(session: Any) -> None:
    """Pretend every job was imported long ago: reports expect no slot before a job's import."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from bridge.store.models import JobRow

    session.execute(update(JobRow).values(created_at=datetime(2000, 1, 1, tzinfo=UTC)))
