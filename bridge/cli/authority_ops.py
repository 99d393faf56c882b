"""``bridge authority flip|status`` and ``bridge legacy retire``: moving authority, and after it.

Thin: parse options, gather each job's evidence (authority history, shadow verdicts of its
readiness window), call the pure planning of :mod:`bridge.services.flip` /
:mod:`legacy_wrappers.retire`, write in one transaction, render (text or ``--json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from bridge.cli.context import STATE, emit_json, err, out
from bridge.core.audit import current_actor
from bridge.core.authority import AuthorityEvent, Owner, last_flip, owner_at
from bridge.core.errors import InputError
from bridge.core.runs import EXECUTION_STATUSES
from bridge.core.runs import Path as ObsPath
from bridge.core.schedules import compile_schedule
from bridge.core.spec import JobSpec
from bridge.services.flip import (
    UNFINISHED,
    FlipPlan,
    Refusal,
    RefusalKind,
    apply_flips,
    export_authority,
    member_plan,
    plan_flip,
    unfinished_reason,
    unfinished_slots,
)
from bridge.store.repos import AuditRepo, AuthorityRepo, FleetRepo, JobRepo
from bridge.store.runs import query
from legacy_wrappers import retire as retiring
from shadow.compare import SlotVerdict, Verdict
from shadow.readiness import Readiness, readiness, required_matches
from shadow.report import compare_stored, select_jobs

WINDOW_CAP = 1000  # slots of shadow history a readiness check reads at most


# --- evidence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What the shadow records say about a job now."""

    readiness: Readiness
    mismatches: tuple[datetime, ...]  # unresolved verdicts in the readiness window


def window_start(spec: JobSpec, now: datetime, count: int) -> datetime:
    """An instant just before the ``count``-th slot at or before ``now``."""
    evaluator = compile_schedule(spec.schedule)
    t, first = now, None
    for _ in range(count):
        slot = evaluator.prev_at_or_before(t)
        if slot is None:
            break
        first, t = slot, slot - timedelta(seconds=1)
    return (first or now) - timedelta(seconds=1)


def evidence(session: Session, spec: JobSpec, history: list[AuthorityEvent],
             now: datetime) -> Evidence:
    need = required_matches(spec)
    since = window_start(spec, now, min(2 * need + 10, WINDOW_CAP))
    verdicts = compare_stored(session, spec, since, now, now, history=history, lean=True)
    ready = readiness(spec, verdicts, flipped=owner_at(history, now) is Owner.CELERY)
    return Evidence(ready, _unresolved(verdicts, ready))


# lack of evidence, not disagreement: the job is not ready (a forced flip may override it);
# a lost run's outcome is unknown, so it proves nothing either way
ABSENCES = frozenset({Verdict.MISSING_LEGACY, Verdict.MISSING_CELERY, Verdict.LOST})


def _unresolved(verdicts: list[SlotVerdict], ready: Readiness) -> tuple[datetime, ...]:
    """Slots where both paths were seen and disagree (a missing side is lack of evidence:
    it makes the job not ready, which a forced flip may override)."""
    start = ready.evidence[0] if ready.evidence else None
    return tuple(v.slot for v in verdicts if v.unresolved and v.verdict not in ABSENCES
                 and (start is None or v.slot >= start))


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


# --- retire --------------------------------------------------------------------------------------


def _failures(session: Session, job_id: str, since: datetime, now: datetime) -> list[datetime]:
    return [o.slot for o in query(session, job_id, since - timedelta(seconds=1), now, lean=True)
            if o.path is ObsPath.CELERY and o.status in EXECUTION_STATUSES
            and o.status.value in retiring.FAILED_STATUSES]


def _eligible(session: Session, spec: JobSpec, history: list[AuthorityEvent], now: datetime,
              stable: timedelta) -> retiring.Eligibility:
    first = retiring.eligibility(spec.id, history, now=now, stable=stable)
    if not first.eligible:
        return first
    since = first.since
    assert since is not None
    settings = STATE.settings
    unfinished = unfinished_slots(session, spec.id, since - timedelta(seconds=1), now,
                                  grace=timedelta(seconds=settings.health_grace),
                                  tolerance=timedelta(seconds=settings.health_tolerance))
    if unfinished:
        return retiring.Eligibility(spec.id, False, unfinished_reason(unfinished), since)
    verdicts = compare_stored(session, spec, since - timedelta(seconds=1), now, now,
                              history=history, lean=True)
    return retiring.eligibility(spec.id, history, now=now, stable=stable,
                                unresolved=[v.slot for v in verdicts if v.unresolved],
                                failures=_failures(session, spec.id, since, now))


def _read_crontab(path: str) -> tuple[str, str]:
    absolute = os.path.abspath(path)
    try:
        data = Path(absolute).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    return absolute, data.decode("utf-8", errors="surrogateescape")


def _write_text(text: str, out_file: str | None) -> None:
    from bridge.cli.legacy_cmd import _write

    _write(text, out_file)


def retire_cmd(
    path: str = typer.Argument(None, help="The crontab file (as installed, rewritten or not)."),
    out_file: str = typer.Option(None, "--out", help="Write here (default: stdout)."),
    source: str = typer.Option(None, "--source", help="The path the jobs were imported from."),
    stable_days: int = typer.Option(7, "--stable-days", min=0,
                                    help="Days Celery must have owned a job without trouble."),
    do_restore: bool = typer.Option(False, "--restore", help="Undo: uncomment retired lines."),
    inventory: str = typer.Option(
        None, "--inventory", help="A fleet's inventory tree (the installed files): retire per "
        "host into --out OUTDIR/<host>/<path>."
    ),
    hosts: list[str] = typer.Option(
        None, "--host", help="With --inventory: only this host (repeat for more)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Comment out the lines of jobs Celery has owned for --stable-days without a mismatch or
    a failure; every other byte stays as it was. --restore undoes it exactly. A job with an
    unfinished slot (a claim running, a missed or stuck slot not yet repaired or declined)
    is kept, and the command exits 1. With --inventory DIR --out OUTDIR: every host at once."""
    if inventory is not None:
        if path is not None or source or out_file is None:
            raise InputError("--inventory takes --out OUTDIR (and --host), no path or --source")
        from bridge.cli.fleet_legacy import retire_inventory

        retire_inventory(inventory, out_file, hosts, stable_days, do_restore, as_json)
        return
    if path is None:
        raise InputError("give the crontab file (or --inventory DIR --out OUTDIR)")
    if as_json and out_file is None:
        raise InputError("--json needs --out: stdout would carry the crontab itself")
    absolute, text = _read_crontab(path)
    origin = os.path.abspath(source) if source else absolute
    actor = STATE.actor or current_actor()
    now = datetime.now(UTC).replace(microsecond=0)
    if do_restore:
        result = retiring.restore(text)
        decisions: list[retiring.Eligibility] = []
    else:
        result, decisions = _retire(text, origin, now, timedelta(days=stable_days))
    _write_text(result.text, out_file)
    with STATE.registry().session() as s:
        for job_id, line in result.retired:
            AuditRepo(s).append("legacy.restore" if do_restore else "legacy.retire", actor=actor,
                                job_id=job_id, reason=origin,
                                after={"file": out_file or "-", "line": line})
    _render_retire(absolute, out_file, do_restore, result, decisions, as_json)
    refused = [d for d in decisions if d.reason.startswith(UNFINISHED)]
    if refused:  # a line kept because a slot is unfinished: a finding
        if out_file is None:  # stdout carries the file: say why on stderr
            for d in refused:
                err.print(f"kept {d.job_id}: {d.reason}", markup=False, highlight=False)
        raise typer.Exit(1)


def _retire(text: str, origin: str, now: datetime,
            stable: timedelta) -> tuple[retiring.RetireResult, list[retiring.Eligibility]]:
    with STATE.registry().session() as s:
        jobs = {j.id: j.spec for j in JobRepo(s).list(source_file=origin)}
        if not jobs:
            raise InputError(f"no registry jobs were imported from {origin}",
                             hint="pass --source with the imported path")
        first = next(iter(jobs.values()))
        kind, user = imported_as(first)
        lines = retiring.job_lines(text, file=origin, timezone=first.schedule.timezone,
                                   kind=kind, user=user)
        histories = AuthorityRepo(s).histories(list(jobs))
        decisions = [_eligible(s, jobs[i], histories.get(i, []), now, stable)
                     for i in sorted(jobs) if i in lines]
    chosen = {d.job_id: lines[d.job_id] for d in decisions if d.eligible}
    return retiring.retire(text, chosen, now.date()), decisions


def imported_as(spec: JobSpec) -> tuple[str, str | None]:
    """How the file was parsed at import (its kind, and the user of a user crontab), so the
    legacy commands read it the same way without repeating --system/--user."""
    user = getattr(spec.handler, "user", None)
    return spec.source.kind.value, user if spec.source.kind.value == "user-crontab" else None


def _render_retire(absolute: str, out_file: str | None, restored: bool,
                   result: retiring.RetireResult, decisions: list[retiring.Eligibility],
                   as_json: bool) -> None:
    key = "restored" if restored else "retired"
    if as_json:
        emit_json({
            "file": absolute,
            "out": out_file,
            key: [{"job_id": j, "line": n} for j, n in result.retired],
            "kept": [{"job_id": d.job_id, "reason": d.reason} for d in decisions
                     if not d.eligible],
        })
        return
    if out_file is None:
        return  # stdout carries the file itself
    for job_id, line in result.retired:
        out.print(f"{key} {job_id} (line {line})", markup=False, highlight=False)
    for d in decisions:
        if not d.eligible:
            out.print(f"kept {d.job_id}: {d.reason}", markup=False, highlight=False)
    out.print(f"wrote {out_file}: {len(result.retired)} line(s) {key}", markup=False)

