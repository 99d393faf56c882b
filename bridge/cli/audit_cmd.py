"""``bridge audit log``: the append-only record of who did what, when and why."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.audit import AuditEntry
from bridge.core.errors import InputError
from bridge.store.audit import AuditRepo
from shadow.report import parse_when

app = typer.Typer(help="The audit log: flips, pauses, triggers, rewrites, imports.",
                  no_args_is_help=True)


def _line(e: AuditEntry) -> str:
    job = f" {e.job_id}" if e.job_id else ""
    reason = f": {e.reason}" if e.reason else ""
    change = f" {e.before} -> {e.after}" if e.before or e.after else ""
    return f"{e.at.isoformat()} {e.actor} {e.action}{job}{reason}{change}"


@app.command("log")
def log_cmd(
    job: str = typer.Option(None, "--job", help="Only this job's records."),
    host: str = typer.Option(None, "--host", help="Only the records of this host's jobs."),
    since: str = typer.Option(None, "--since", help="ISO 8601 (naive = UTC) or a span: 24h, 7d."),
    limit: int = typer.Option(1000, "--limit", min=1, help="At most this many records."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Audit records, oldest first."""
    try:
        start = parse_when(since, datetime.now(UTC)) if since else None
    except (ValueError, OverflowError) as bad:
        raise InputError(f"bad --since {since!r}: {bad}") from bad
    with STATE.registry().session() as s:
        entries = list(AuditRepo(s).query(job_id=job, since=start, limit=limit, host=host))
    if as_json:
        emit_json({"entries": [e.to_json() for e in entries]})
        return
    for e in entries:
        out.print(_line(e), markup=False, highlight=False)
    if not entries:
        out.print("no audit records", markup=False)
