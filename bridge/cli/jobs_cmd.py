"""``bridge jobs``: what the registry holds."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from bridge.cli.context import STATE, emit_json, out
from bridge.secrets import mask_spec
from bridge.store.repos import JobRepo, StoredJob

app = typer.Typer(help="List and inspect the jobs in the registry.", no_args_is_help=True)


def job_summary(job: StoredJob) -> dict[str, Any]:
    spec = job.spec
    handler = spec.handler
    return {
        "id": spec.id,
        "dialect": spec.schedule.dialect.value,
        "expression": spec.schedule.expression,
        "timezone": spec.schedule.timezone,
        "handler": handler.kind,
        "mapped": spec.mapped,
        "paused": job.paused,
        "source": {"file": spec.source.file, "line": spec.source.line},
        "spec_hash": job.spec_hash,
        "updated_at": job.updated_at.isoformat(),
    }


@app.command("list")
def list_jobs(
    source: str = typer.Option(None, "--source", help="Only jobs imported from this file."),
    as_json: bool = typer.Option(False, "--json", help='Print {"jobs": [...]}.'),
) -> None:
    """List jobs: id, schedule, handler kind, source file:line."""
    with STATE.registry().session() as s:
        jobs = JobRepo(s).list(source_file=source)
    rows = [job_summary(j) for j in jobs]
    if as_json:
        emit_json({"jobs": rows})
        return
    table = Table(title=f"{len(rows)} job(s)")
    for col in ("id", "dialect", "schedule", "timezone", "handler", "source"):
        table.add_column(col)
    for r in rows:
        where = f"{r['source']['file']}:{r['source']['line']}"
        handler = r["handler"] + ("" if r["mapped"] else " (unmapped)")
        table.add_row(r["id"], r["dialect"], r["expression"] or "-", r["timezone"], handler, where)
    out.print(table)


@app.command("show")
def show(
    job_id: str = typer.Argument(..., help="The job id (see `bridge jobs list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full spec as JSON."),
) -> None:
    """Show one job's full spec, as stored (versioned JSON)."""
    with STATE.registry().session() as s:
        job = JobRepo(s).require(job_id)
    spec = mask_spec(job.spec.to_json(), STATE.settings.secret_patterns)  # values stay stored
    doc = {**job_summary(job), "spec": spec, "paused_reason": job.paused_reason}
    if as_json:
        emit_json(doc)
        return
    import json

    out.print(
        f"[bold]{job.id}[/bold]  hash {job.spec_hash}  updated {job.updated_at:%Y-%m-%d %H:%M:%SZ}"
    )
    out.print_json(json.dumps(doc["spec"]))
