"""``bridge jobs``: what the registry holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from bridge.cli.context import STATE, emit_json, out
from bridge.core.audit import current_actor
from bridge.core.errors import InputError
from bridge.core.jobs import StoredJob
from bridge.core.placement import job_queue
from bridge.core.secrets import mask_spec
from bridge.core.spec import JobSpec, LostPolicy, Placement, RepairPolicy
from bridge.services.sync import mark_pending, sync_registry
from bridge.store.audit import AuditRepo
from bridge.store.repos import JobRepo

app = typer.Typer(help="List and inspect the jobs in the registry.", no_args_is_help=True)


def job_summary(job: StoredJob) -> dict[str, Any]:
    spec = job.spec
    handler = spec.handler
    return {
        "id": spec.id,
        "host": spec.host,
        "dialect": spec.schedule.dialect.value,
        "expression": spec.schedule.expression,
        "timezone": spec.schedule.timezone,
        "handler": handler.kind,
        "mapped": spec.mapped,
        "paused": job.paused,
        "on_lost": spec.policies.on_lost.value,
        "repair": spec.policies.repair.value,
        "placement": spec.policies.placement.value,
        "queue": job_queue(spec),
        "source": {"file": spec.source.file, "line": spec.source.line},
        "spec_hash": job.spec_hash,
        "updated_at": job.updated_at.isoformat(),
    }


@app.command("list")
def list_jobs(
    source: str = typer.Option(None, "--source", help="Only jobs imported from this file."),
    host: str = typer.Option(None, "--host", help="Only the jobs of this host."),
    as_json: bool = typer.Option(False, "--json", help='Print {"jobs": [...]}.'),
) -> None:
    """List jobs: id, host, schedule, handler kind, source file:line."""
    with STATE.registry().session() as s:
        jobs = JobRepo(s).list(source_file=source, host=host)
    rows = [job_summary(j) for j in jobs]
    if as_json:
        emit_json({"jobs": rows})
        return
    table = Table(title=f"{len(rows)} job(s)")
    for col in ("id", "host", "dialect", "schedule", "timezone", "handler", "source"):
        table.add_column(col)
    for r in rows:
        where = f"{r['source']['file']}:{r['source']['line']}"
        handler = r["handler"] + ("" if r["mapped"] else " (unmapped)")
        table.add_row(r["id"], r["host"] or "-", r["dialect"], r["expression"] or "-",
                      r["timezone"], handler, where)
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
        Text.assemble(
            (job.id, "bold"),
            f"  hash {job.spec_hash}  updated {job.updated_at:%Y-%m-%d %H:%M:%SZ}",
        )
    )
    out.print(f"on-lost {doc['on_lost']}  repair {doc['repair']}  placement {doc['placement']}"
              f"  queue {doc['queue']}", highlight=False, markup=False)
    out.print_json(json.dumps(doc["spec"]))


def _choice(value: str | None, enum: type[LostPolicy] | type[RepairPolicy] | type[Placement],
            option: str) -> Any:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError as e:
        allowed = " | ".join(v.value for v in enum)
        raise InputError(f"{option} '{value}': expected {allowed}") from e


@app.command("set")
def set_policies(
    job_id: str = typer.Argument(..., help="The job id."),
    on_lost: str = typer.Option(None, "--on-lost", help="skip | rerun: a run whose holder died "
                                "mid-run (outcome unknown) is recorded lost, or re-run."),
    repair: str = typer.Option(None, "--repair", help="auto | alert-only: may the health task "
                               "repair missed / stuck slots by itself?"),
    placement: str = typer.Option(None, "--placement", help="host | anywhere: only a worker on "
                                  "the job's host runs it, or any worker (re-syncs its entry)."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Set a job's execution policies (audited as ``jobs.set``). A re-import of the job's source
    file sets them back to what the file says (directive / job-data key, else the defaults).
    A new placement moves the job's RedBeat entry to its new queue at once (``bridge sync``)."""
    changes: dict[str, Any] = {
        name: value for name, value in (
            ("on_lost", _choice(on_lost, LostPolicy, "--on-lost")),
            ("repair", _choice(repair, RepairPolicy, "--repair")),
            ("placement", _choice(placement, Placement, "--placement")),
        ) if value is not None
    }
    if not changes:
        raise InputError("nothing to set: give --on-lost, --repair and/or --placement")
    registry = STATE.registry()
    with registry.session() as s:
        jobs = JobRepo(s)
        job = jobs.require(job_id)
        before = job.spec.policies
        policies = replace(before, **changes)
        spec = job.spec.with_(policies=policies)
        if policies != before:
            jobs.upsert(spec)
            AuditRepo(s).append(
                "jobs.set", actor=STATE.actor or current_actor(), job_id=job_id, reason=reason,
                before=_policy_doc(job.spec), after=_policy_doc(spec),
            )
            if policies.placement != before.placement:
                mark_pending(s, {"marked_at": datetime.now(UTC).isoformat(),
                                 "actor": STATE.actor or current_actor(),
                                 "files": [spec.source.file], "changes": 1})
    if policies.placement != before.placement:
        sync_registry(registry, STATE.settings, known=[spec])
    doc = {"job_id": job_id, **_policy_doc(spec), "changed": policies != before}
    if as_json:
        emit_json(doc)
        return
    out.print(f"{job_id}: on-lost {doc['on_lost']}, repair {doc['repair']}, placement "
              f"{doc['placement']} (queue {doc['queue']})"
              + ("" if doc["changed"] else " (unchanged)"), highlight=False, markup=False)


def _policy_doc(spec: JobSpec) -> dict[str, str]:
    p = spec.policies
    return {"on_lost": p.on_lost.value, "repair": p.repair.value,
            "placement": p.placement.value, "queue": job_queue(spec)}
