"""``bridge authority flip|status``: moving authority, and where it stands.

Thin: parse options, gather each job's evidence (:mod:`bridge.services.flip_evidence`), call
the pure planning of :mod:`bridge.services.flip`, write in one transaction, render (text or
``--json``). ``bridge legacy retire``, after the flip, is :mod:`bridge.cli.retire_cmd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.audit import current_actor
from bridge.core.authority import AuthorityEvent, Owner, last_flip, owner_at
from bridge.core.errors import InputError
from bridge.core.schedules import compile_schedule
from bridge.core.spec import JobSpec
from bridge.services.flip import (
    FlipPlan,
    Refusal,
    RefusalKind,
    apply_flips,
    export_authority,
    member_plan,
    plan_flip,
)
from bridge.services.flip_evidence import evidence
from bridge.store.db import Session
from bridge.store.fleet import FleetRepo
from bridge.store.repos import AuthorityRepo, JobRepo
from shadow.report import select_jobs

# --- flip --------------------------------------------------------------------------------------


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise InputError(f"bad --at '{text}': expected an ISO 8601 slot") from e
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class FlipRequest:
    patterns: tuple[str, ...]
    to: Owner
    at: datetime | None
    all_ready: bool
    force: bool
    reason: str | None


def plan_all(session: Session, req: FlipRequest, now: datetime,
             margin: timedelta) -> list[FlipPlan | Refusal]:
    """One plan or refusal per selected job (read in the session that will write the flips).
    A fleet group's plan brings one plan per member, at the same boundary; a member selected
    without its group is refused (:mod:`bridge.services.fleet`)."""
    jobs = JobRepo(session)
    known = [j.id for j in jobs.list()]
    ids = select_jobs(known, list(req.patterns))
    fleet = FleetRepo(session)
    group_of = fleet.group_of()
    members = fleet.members() if group_of else {}
    member_ids = [m for g in ids for m, _ in members.get(g, [])]
    histories = AuthorityRepo(session).histories([*ids, *member_ids])
    results: list[FlipPlan | Refusal] = []
    for job_id in ids:
        group = group_of.get(job_id)
        if group is not None:
            if group not in ids:
                results.append(Refusal(job_id, RefusalKind.GROUPED,
                                       f"consolidated into {group}: flip the group "
                                       f"(bridge authority flip {group} --to {req.to.value})"))
            continue
        spec, history = jobs.require(job_id).spec, histories.get(job_id, [])
        ev = evidence(session, spec, history, now)
        if req.all_ready and not ev.readiness.ready:
            continue
        plan = plan_flip(spec, history, ev.readiness, req.to, now, margin, at=req.at,
                         force=req.force, reason=req.reason, mismatches=ev.mismatches)
        results.append(plan)
        if isinstance(plan, FlipPlan):
            results.extend(member_plan(plan, m, histories.get(m, []))
                           for m, _ in members.get(job_id, []))
    return results


def _print_plan(plan: FlipPlan, dry_run: bool) -> None:
    verb = "would flip" if dry_run else "flipped"
    forced = " (forced)" if plan.forced else ""
    out.print(f"{plan.job_id}: {verb} {plan.previous.value} -> {plan.to.value}{forced} at "
              f"{plan.local_boundary().isoformat()} ({plan.boundary.isoformat()} UTC)",
              markup=False, highlight=False)
    out.print(f"  {plan.effects()}", markup=False, highlight=False)


def flip(
    jobs: list[str] = typer.Argument(None, help="Job ids or globs (quote globs)."),
    to: Owner = typer.Option(..., "--to", help="The new owner: celery or legacy (rollback)."),
    at: str = typer.Option(None, "--at", help="Flip from this slot (ISO 8601; naive = UTC)."),
    all_ready: bool = typer.Option(False, "--all-ready", help="Only (all) jobs that are ready."),
    force: bool = typer.Option(False, "--force", help="Flip although not ready (needs --reason)."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan only; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Move authority over jobs from a precise slot on; all jobs or none (one transaction).

    The boundary is the first slot after now + the safety margin (or --at). Refused jobs are
    listed one per line and nothing is flipped (exit 1). Roll back with the same command and
    --to legacy."""
    if not jobs and not all_ready:
        raise InputError("name at least one job (or glob), or use --all-ready")
    req = FlipRequest(tuple(jobs or ()), to, _parse_at(at), all_ready, force, reason)
    now = datetime.now(UTC).replace(microsecond=0)
    margin = timedelta(seconds=STATE.settings.authority_safety_margin)
    actor = STATE.actor or current_actor()
    registry = STATE.registry()
    with registry.session() as s:
        results = plan_all(s, req, now, margin)
        plans = [r for r in results if isinstance(r, FlipPlan)]
        refused = [r for r in results if isinstance(r, Refusal)]
        applied = not refused and not dry_run and bool(plans)
        if applied:
            apply_flips(s, plans, actor)
    warning = export_authority(registry, STATE.settings.authority_dir) if applied else None
    _render_flip(plans, refused, dry_run, applied, warning, as_json)
    raise typer.Exit(1 if refused else 0)


def _render_flip(plans: list[FlipPlan], refused: list[Refusal], dry_run: bool, applied: bool,
                 warning: str | None, as_json: bool) -> None:
    if as_json:
        emit_json({
            "dry_run": dry_run,
            "applied": applied,
            "flips": [p.to_json() for p in plans],
            "refused": [{"job_id": r.job_id, "kind": r.kind.value, "message": r.message}
                        for r in refused],
            "warnings": [warning] if warning else [],
        })
        return
    for r in refused:
        out.print(str(r), markup=False, highlight=False)
    if refused:
        out.print(f"nothing flipped: {len(refused)} job(s) refused", markup=False)
        return
    for plan in plans:
        _print_plan(plan, dry_run or not applied)
    if not plans:
        out.print("nothing to flip", markup=False)
    if warning:
        out.print(f"warning: {warning}", markup=False, highlight=False)


# --- status --------------------------------------------------------------------------------------


def _flip_json(event: AuthorityEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {
        "owner": event.owner.value,
        "effective_slot": event.effective_slot.isoformat() if event.effective_slot else None,
        "actor": event.actor,
        "at": event.at.isoformat(),
        "reason": event.reason,
        "forced": event.forced,
    }


def job_status(session: Session, spec: JobSpec, history: list[AuthorityEvent], paused: bool,
               now: datetime) -> dict[str, Any]:
    """One job's authority status (the JSON ``bridge authority status`` prints)."""
    nxt = compile_schedule(spec.schedule).next_after(now)
    ev = evidence(session, spec, history, now)
    zone = spec.schedule.timezone
    return {
        "job_id": spec.id,
        "host": spec.host,
        "owner_now": owner_at(history, now).value,
        "next_slot": nxt.astimezone(_zone(zone)).isoformat() if nxt else None,
        "next_slot_utc": nxt.isoformat() if nxt else None,
        "owner_at_next_slot": owner_at(history, nxt).value if nxt else None,
        "timezone": zone,
        "paused": paused,
        "ready": ev.readiness.ready,
        "basis": ev.readiness.basis.value,
        "required": ev.readiness.required,
        "evidence": [s.isoformat() for s in ev.readiness.evidence],
        "reasons": list(ev.readiness.reasons),
        "last_flip": _flip_json(last_flip(history)),
    }


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _status_line(row: dict[str, Any]) -> str:
    flip_ = row["last_flip"]
    last = "never flipped" if flip_ is None else (
        f"last flip to {flip_['owner']} from {flip_['effective_slot']} by {flip_['actor']} at "
        f"{flip_['at']}{' FORCED' if flip_['forced'] else ''}: {flip_['reason'] or '-'}")
    ready = "ready" if row["ready"] else "not ready: " + "; ".join(row["reasons"])
    paused = " PAUSED" if row["paused"] else ""
    return (f"{row['job_id']}: owner {row['owner_now']}{paused}; next slot {row['next_slot']} "
            f"-> {row['owner_at_next_slot']}; {ready} ({row['basis']}); {last}")


def status(
    job: str = typer.Option(None, "--job", help="One job id or glob (default: every job)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per job: owner now and at the next slot, readiness with its evidence, the last flip."""
    now = datetime.now(UTC).replace(microsecond=0)
    with STATE.registry().session() as s:
        jobs = {j.id: j for j in JobRepo(s).list()}
        ids = select_jobs(list(jobs), [job] if job else [])
        histories = AuthorityRepo(s).histories(ids)
        rows = [job_status(s, jobs[i].spec, histories.get(i, []), jobs[i].paused, now)
                for i in ids]
    if as_json:
        emit_json({"now": now.isoformat(), "jobs": rows})
        return
    for row in rows:
        out.print(_status_line(row), markup=False, highlight=False)
    if not rows:
        out.print("no jobs", markup=False)
