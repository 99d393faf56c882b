"""``bridge reconcile``: what should have run on Celery, what did, and repairs (exit 1 on findings).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.audit import current_actor
from bridge.core.dispatch import slot_iso
from bridge.core.errors import InputError, NotFoundError
from bridge.core.reconcile import Finding, RepairRecord, Window
from bridge.services.reconcile import Repair, reconcile_window, repair, repairs_made
from bridge.store.repos import JobRepo

MAX_WINDOW = timedelta(days=92)  # the work grows with the window's slots: bounded


def reconcile_command(
    since: str = typer.Option("24h", "--since", help="Window start: 30m, 6h, 2d or ISO-8601."),
    job: str = typer.Option(None, "--job", help="Only this job, or the jobs a glob matches."),
    do_repair: bool = typer.Option(
        False, "--repair", help="Re-enqueue missed and stuck slots through the claim."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --repair: show, send nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
    grace: int = typer.Option(300, "--grace", help="Seconds before a slot counts as missed."),
    tolerance: int = typer.Option(60, "--tolerance", help="Seconds of start lag before 'late'."),
) -> None:
    """Compare every Celery-owned slot of the window with the runs and claims on record.

    Findings: missed, failed, stuck, lost, late, duplicate, skipped. Exit 1 when there are any.
    Repairs already made in the window (by the health task or an operator) are listed too."""
    now = datetime.now(UTC)
    try:
        window = Window(parse_since(since, now), now)
    except (ValueError, OverflowError) as e:
        raise InputError(f"bad --since {since!r}: {e}") from e
    if not timedelta(0) < window.until - window.since <= MAX_WINDOW:
        raise InputError(f"--since {since!r}: the window must be in the past and at most "
                         f"{MAX_WINDOW.days} days long")
    limit = int(MAX_WINDOW.total_seconds())
    if not (0 <= grace <= limit and 0 <= tolerance <= limit):
        raise InputError(f"--grace and --tolerance must be between 0 and {limit} seconds")
    registry = STATE.registry()
    selected = _select(job)
    findings, inputs = reconcile_window(registry, window, now, grace=timedelta(seconds=grace),
                             tolerance=timedelta(seconds=tolerance),
                             job_id=job if selected is None else None)
    if selected is not None:
        findings = [f for f in findings if f.job_id in selected]
    repairs: list[Repair] = []
    if do_repair or dry_run:
        from bridge.celery_app import make_app

        app = make_app(STATE.settings)
        try:
            repairs = repair(app, registry, findings, inputs, now,
                             actor=STATE.actor or current_actor(), dry_run=dry_run)
        finally:
            app.close()
    named = selected if selected is not None else ({job} if job else None)
    done = repairs_made(registry, window.since, named)
    if as_json:
        emit_json({**_document(window, findings, repairs, do_repair, dry_run),
                   "repaired": [r.to_json() for r in done]})
    else:
        _render(findings, repairs, dry_run, done)
    if findings:
        raise typer.Exit(1)


def parse_since(text: str, now: datetime) -> datetime:
    """``30m``, ``6h``, ``2d``, ``90s`` before now, or an ISO-8601 instant (naive = UTC)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"--since {text!r}: expected 30m / 6h / 2d or an ISO-8601 time") from e
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _select(job: str | None) -> set[str] | None:
    """The job ids a glob ``--job`` names (None: no glob, ``check`` filters by exact id)."""
    if job is None or not any(c in job for c in "*?["):
        return None
    with STATE.registry().session() as s:
        ids = {j.id for j in JobRepo(s).list() if fnmatchcase(j.id, job)}
    if not ids:
        raise NotFoundError(f"no job matches '{job}'", hint="see `bridge jobs list`")
    return ids


def _document(window: Window, findings: list[Finding], repairs: list[Repair], do_repair: bool,
              dry_run: bool) -> dict[str, object]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind.value] = counts.get(f.kind.value, 0) + 1
    return {
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
        "counts": counts,
        "findings": [f.to_json() for f in findings],
        "repair": do_repair,
        "dry_run": dry_run,
        "repairs": [r.to_json() for r in repairs],
    }


def _render(findings: list[Finding], repairs: list[Repair], dry_run: bool,
            done: list[RepairRecord]) -> None:
    for f in findings:
        out.print(f"{f.kind.value:10} {f.job_id:30} {slot_iso(f.slot)}  {f.detail}",
                  highlight=False, markup=False)
    for made in done:
        out.print(f"repaired   {made.job_id:30} {slot_iso(made.slot)}  {made.kind} by "
                  f"{made.actor} at {made.at.isoformat()} (task {made.task_id})",
                  highlight=False, markup=False)
    for r in repairs:
        verb = "would repair" if dry_run else ("repaired" if r.task_id else "not repaired")
        out.print(f"{verb} {r.finding.job_id} {slot_iso(r.finding.slot)} -> queue {r.queue}"
                  f" ({r.note})", highlight=False, markup=False)
    out.print(f"{len(findings)} finding(s)" + (f", {sum(1 for r in repairs if r.task_id)} "
                                                "repaired" if repairs and not dry_run else ""))
