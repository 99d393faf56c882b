"""How ``bridge import`` shows a plan: the ``--json`` document and the table."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table
from rich.text import Text

from bridge.cli.context import STATE, err, out
from bridge.core.schedules import compile_schedule, take
from bridge.core.secrets import mask_env
from bridge.core.spec import (
    CallableHandler,
    CommandHandler,
    JobSpec,
    ScheduleSpec,
    UnmappedHandler,
    describe_schedule,
)
from bridge.services.importer import ImportOutcome
from crontab_import.filetrust import NOT_VERIFIED
from crontab_import.plan import PlanEntry, PlanStatus

STATUS_STYLE = {
    "create": "green",
    "update": "yellow",
    "unchanged": "dim",
    "delete": "red",
    "disabled": "dim",
    "inactive": "magenta",
    "unsupported": "magenta",
    "error": "bold red",
}


def next_slots(job: JobSpec, count: int = 3) -> list[str]:
    return list(_next_of(job.schedule, datetime.now(UTC).replace(microsecond=0), count))


@lru_cache(maxsize=4096)
def _next_of(schedule: ScheduleSpec, now: datetime, count: int) -> tuple[str, ...]:
    """Once per distinct schedule and second: a fleet's jobs share a few schedules."""
    try:
        zone = ZoneInfo(schedule.timezone)
        ev = compile_schedule(schedule)
        return tuple(s.astimezone(zone).isoformat() for s in take(ev, now, count))
    except Exception:  # a schedule the importer marked unsupported may not evaluate
        return ()


def handler_json(job: JobSpec) -> dict[str, Any]:
    h = job.handler
    if isinstance(h, CommandHandler):
        return {"kind": "command", "command": h.command, "user": h.user}
    if isinstance(h, CallableHandler):
        return {"kind": "callable", "target": h.target}
    assert isinstance(h, UnmappedHandler)
    return {"kind": "unmapped", "job_class": h.job_class}


def entry_json(e: PlanEntry) -> dict[str, Any]:
    """One plan entry; field names are documented in the README and stay stable."""
    job = e.job or (e.previous.spec if e.previous else None)
    h = job.handler if job else None
    doc: dict[str, Any] = {
        "id": e.id,
        "host": e.host,
        "status": e.status.value,
        "source": {"file": e.file, "line": e.line},
        "user": (h.user if isinstance(h, CommandHandler) else None) or e.details.get("user"),
        "schedule": None,
        "command": h.command if isinstance(h, CommandHandler) else None,
        "stdin": h.stdin if isinstance(h, CommandHandler) else None,
        "env": mask_env(h.env, STATE.settings.secret_patterns)
        if isinstance(h, CommandHandler) else {},
        "reason": e.reason,
        "changed": list(e.changed),
        "next": [],
    }
    if e.adopted_from is not None:
        doc["adopted_from"] = e.adopted_from.to_json()
    if job is not None:
        s = job.schedule
        doc["schedule"] = {
            "dialect": s.dialect.value,
            "expression": s.expression,
            "timezone": s.timezone,
        }
        doc["policies"] = {
            "on_lost": job.policies.on_lost.value,
            "repair": job.policies.repair.value,
        }
        if e.status in (PlanStatus.CREATE, PlanStatus.UPDATE, PlanStatus.UNCHANGED):
            doc["next"] = next_slots(job)
    for key in (
        "trigger", "misfire", "job_class", "handler", "mapped", "misfire_note",
        "quartz", "job_data_unreadable",
    ):  # fmt: skip
        if key in e.details:
            doc[key] = e.details[key]
    if job is not None and "handler" not in doc and e.details.get("kind") == "quartz":
        doc["handler"] = handler_json(job)
    return doc


def outcome_json(outcome: ImportOutcome, timezone: str | None, dry_run: bool) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "dry_run": dry_run,
        "timezone": timezone,
        "files": list(plan.files),
        "summary": plan.summary(),
        "jobs": [entry_json(e) for e in plan.entries],
        "errors": [e.to_json() for e in plan.errors],
        "notes": list(plan.notes),
        "trust": [t.to_json() for t in plan.trust],
        "applied": None if outcome.applied is None else vars(outcome.applied),
        "sync": None if outcome.sync is None else outcome.sync.to_json(),
        "sync_error": outcome.sync_error,
    }


def handler_text(e: PlanEntry) -> str:
    if e.job is None:
        return ""
    h = e.job.handler
    if isinstance(h, CommandHandler):
        return h.command
    if isinstance(h, CallableHandler):
        return f"python {h.target}"
    return f"unmapped {h.job_class}: observe only"


def render_plan(outcome: ImportOutcome, timezone: str, dry_run: bool) -> None:
    plan = outcome.plan
    table = Table(title=f"import plan ({'dry run, ' if dry_run else ''}legacy zone {timezone})")
    for col in ("status", "id", "source", "schedule", "next fire", "detail"):
        table.add_column(col, overflow="fold")
    for e in plan.entries:
        doc = entry_json(e)
        sched = describe_schedule(e.job.schedule) if e.job else ""
        detail = e.reason or (", ".join(e.changed[:4]) if e.changed else handler_text(e))
        if e.adopted_from is not None:
            detail = f"adopts from {e.adopted_from.file}; {detail}"
        style = STATUS_STYLE.get(e.status.value, "")
        table.add_row(
            Text(e.status.value, style=style),
            e.id or "",
            f"{e.file}:{e.line}" if e.line is not None else e.file,
            sched or "",
            doc["next"][0] if doc["next"] else "",
            detail,
        )
    out.print(table)
    for note in plan.notes:
        out.print(f"note: {note}", markup=False, highlight=False)
    for trust in plan.trust:
        if not trust.checked:
            err.print(f"warning: {trust.file}: {NOT_VERIFIED}", markup=False, highlight=False)
    for error in plan.errors:
        err.print(f"error: {error}", markup=False, highlight=False)
    render_totals(outcome)


def render_totals(outcome: ImportOutcome) -> None:
    """The summary line, what was applied, the RedBeat sync (or why it failed)."""
    s = outcome.plan.summary()
    out.print(", ".join(f"{v} {k}" for k, v in s.items() if v), highlight=False)
    if outcome.applied:
        a = outcome.applied
        out.print(f"applied: {a.created} created, {a.updated} updated, {a.deleted} deleted")
    if outcome.sync:
        r = outcome.sync
        out.print(
            f"redbeat: {len(r.created)} created, {len(r.updated)} updated, "
            f"{len(r.deleted)} deleted, {len(r.rescored)} rescored"
        )
    if outcome.sync_error:
        err.print(
            f"warning: registry updated but RedBeat sync failed: {outcome.sync_error}; "
            "run `bridge sync` when Redis is back",
            markup=False,
            highlight=False,
        )
