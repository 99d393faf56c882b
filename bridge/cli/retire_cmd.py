"""``bridge legacy retire``: comment out the crontab lines of jobs Celery has owned for long
enough without a mismatch, a failure or an unfinished slot; ``--restore`` undoes it exactly.

Thin: the eligibility rules are :mod:`legacy_wrappers.retire`'s, the evidence
:mod:`bridge.services.flip_evidence`'s and :mod:`bridge.services.flip`'s.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import typer

from bridge.cli.context import STATE, emit_json, err, out, read_input, write_output
from bridge.core.audit import current_actor
from bridge.core.authority import AuthorityEvent
from bridge.core.errors import InputError
from bridge.core.runs import EXECUTION_STATUSES
from bridge.core.runs import Path as ObsPath
from bridge.core.spec import JobSpec
from bridge.services.flip import UNFINISHED, unfinished_reason, unfinished_slots
from bridge.store.audit import AuditRepo
from bridge.store.db import Session
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import query
from legacy_wrappers import retire as retiring
from shadow.report import compare_stored


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

        retire_inventory(inventory, out_file, hosts, stable_days, do_restore, as_json,
                         eligible=_eligible)
        return
    if path is None:
        raise InputError("give the crontab file (or --inventory DIR --out OUTDIR)")
    if as_json and out_file is None:
        raise InputError("--json needs --out: stdout would carry the crontab itself")
    absolute, text = read_input(path)
    origin = os.path.abspath(source) if source else absolute
    actor = STATE.actor or current_actor()
    now = datetime.now(UTC).replace(microsecond=0)
    if do_restore:
        result = retiring.restore(text)
        decisions: list[retiring.Eligibility] = []
    else:
        result, decisions = _retire(text, origin, now, timedelta(days=stable_days))
    write_output(result.text, out_file)
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
