"""Import items of a crontab file: the job id of each job line, its JobSpec, its details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.core.spec import CommandHandler, JobSpec, SourceLocation
from crontab_import.cron.command import split_command
from crontab_import.cron.fields import field_warnings
from crontab_import.cron.lines import Line
from crontab_import.cron.state import ParseState, Pending
from crontab_import.model import ImportItem, ItemStatus


@dataclass(frozen=True)
class JobParts:
    """A job line split into its schedule, user and command."""

    expression: str | None  # the five fields or a macro's expansion; None for @reboot
    user: str | None
    command: str  # raw command text (before % processing)


def claim_id(state: ParseState, line: Line) -> tuple[str, str | None]:
    """The next job ordinal's id (or the pending override) and the pending description."""
    state.ordinal += 1
    pending, state.pending = state.pending, Pending()
    state.claimed_policies = pending.policies
    if pending.id is not None and pending.id_line is not None:
        state.override_lines[line.number] = pending.id_line
        return pending.id, pending.name
    if state.bridge_job:
        return state.bridge_job, pending.name
    return f"{state.opts.id_prefix}-{state.ordinal}", pending.name


def build_job(
    state: ParseState,
    line: Line,
    job_id: str,
    parts: JobParts,
    expression: str,
    description: str | None,
) -> JobSpec:
    command, stdin = split_command(parts.command)
    handler = CommandHandler(
        command=command,
        stdin=stdin,
        user=parts.user,
        shell=state.env.get("SHELL", "/bin/sh"),
        env=state.env_items(),
    )
    return JobSpec(
        id=job_id,
        schedule=state.schedule(expression),
        handler=handler,
        source=_location(state, line),
        description=description,
        policies=state.policies(),
    )


def _location(state: ParseState, line: Line) -> SourceLocation:
    return SourceLocation(
        file=state.opts.file, line=line.number, raw=line.text, kind=state.opts.kind,
        host=state.opts.host,
    )


def add_item(
    state: ParseState,
    line: Line,
    status: ItemStatus,
    job_id: str | None,
    job: JobSpec | None,
    reason: str | None,
    user: str | None,
) -> None:
    state.items.append(
        ImportItem(
            status=status,
            source=job.source if job is not None else _location(state, line),
            id=job_id,
            job=job,
            reason=reason,
            details=_with_warnings(state.details(user, state.override_lines.get(line.number)), job),
        )
    )


def _with_warnings(details: dict[str, Any], job: JobSpec | None) -> dict[str, Any]:
    """Text Debian skips inside a time field (``5#2`` runs as ``5``) is said, not hidden."""
    if job is None or not job.schedule.expression:
        return details
    warnings = field_warnings(job.schedule.expression)
    return {**details, "warnings": list(warnings)} if warnings else details


def add_error_item(
    state: ParseState, line: Line, job_id: str | None, reason: str, *, user: str | None = None
) -> None:
    add_item(state, line, ItemStatus.ERROR, job_id, None, reason, user or state.opts.user)
