"""``bridge shadow``: compare the legacy and Celery paths slot by slot, measure legacy noise.

* ``bridge shadow report``: per job the verdict counts, readiness and the last mismatch (table,
  JSON documented in :mod:`shadow.report`, or a self-contained HTML page). Exit 1 when any
  compared job has an unresolved mismatch (a CI gate), 2 on bad input or an unknown job.
* ``bridge shadow calibrate JOB``: legacy-vs-legacy noise and proposed ``clean`` regexes
  (:mod:`shadow.calibrate`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from bridge.cli.context import STATE, emit_json, err, out
from bridge.core.errors import InputError
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import query
from shadow.calibrate import Calibration, calibrate
from shadow.compare import compare_job, split_paths
from shadow.report import build_report, build_report_parallel, parse_when, select_jobs
from shadow.report_html import render_html
from shadow.report_json import to_json
from shadow.report_model import JobReport, Report
from shadow.report_model import Progress as ProgressFn

app = typer.Typer(
    help="Shadow mode: compare legacy and Celery firings slot by slot.", no_args_is_help=True
)

PROGRESS_THRESHOLD = 10_000  # slots: above this a progress bar is shown on a terminal


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    HTML = "html"


MAX_WINDOW = timedelta(days=92)  # a report's work grows with its slots: bounded, like its input


def _window(since: str | None, until: str | None, default: timedelta) -> tuple[datetime, ...]:
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        end = parse_when(until, now) if until else now
        start = parse_when(since, now) if since else end - default
    except (ValueError, OverflowError) as e:
        raise InputError(f"bad --since/--until: {e}") from e
    if end <= start:
        raise InputError("the window is empty: --until must be after --since")
    if end - start > MAX_WINDOW:
        raise InputError(f"the window is longer than {MAX_WINDOW.days} days: report a shorter "
                         "--since/--until span (several reports for a longer period)")
    return start, end, now


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressFn | None]:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("comparing {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} slots"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task("", total=1)

    def update(job_id: str, done: int, total: int) -> None:
        if total < PROGRESS_THRESHOLD:
            return
        bar.update(task, description=job_id, completed=done, total=total)
        if not bar.live.is_started:
            bar.start()

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


MISMATCH_KEYS = (
    "missing_legacy",
    "missing_celery",
    "outcome_mismatch",
    "late",
    "duplicate",
    "unexpected_slot",
    "lost",
)


def _counts_row(job: JobReport) -> list[str]:
    c = job.summary.counts
    ready = job.readiness
    word = "flipped" if job.owner.value == "celery" else "yes" if ready.ready else "no"
    if ready.basis.value != "outcome" and job.owner.value != "celery":
        word += " (timing)"
    problems = ", ".join(f"{k} {c[k]}" for k in MISMATCH_KEYS if c[k]) or "-"
    return [
        job.spec.id,
        job.owner.value,
        str(job.expected),
        str(c["match"]),
        problems,
        str(c["pending"]),
        str(c["ignored"]),
        word,
    ]


def _render_table(report: Report, console: Console) -> None:
    table = Table(
        title=f"shadow report {report.since:%Y-%m-%d %H:%M}Z -> "
        f"{report.until:%Y-%m-%d %H:%M}Z, {len(report.jobs)} job(s)"
    )
    table.add_column("job", overflow="fold", ratio=3)
    table.add_column("owner")
    for col in ("slots", "match"):
        table.add_column(col, justify="right")
    table.add_column("mismatches", overflow="fold", ratio=2)
    for col in ("pending", "ignored"):
        table.add_column(col, justify="right")
    table.add_column("ready")
    for job in report.jobs:
        table.add_row(*_counts_row(job), style="red" if job.unresolved else None)
    console.print(table)
    for job in report.jobs:
        v = job.summary.last_mismatch
        if v is None:
            continue
        console.print(
            f"{job.spec.id}: {v.verdict.value} at {v.slot.isoformat()}: {v.detail}",
            markup=False,
            highlight=False,
        )
    t = report.totals()
    console.print(
        f"{t['unresolved']} unresolved mismatch(es) in {t['jobs_with_unresolved']} "
        f"job(s); {t['ready']} job(s) ready to flip",
        markup=False,
        highlight=False,
    )


def _write(fmt: Format, report: Report, target: Path | None) -> None:
    if fmt is Format.TABLE:
        if target is None:
            _render_table(report, out)
            return
        with target.open("w", encoding="utf-8") as fh:
            plain = Console(file=fh, width=160, color_system=None, markup=False, emoji=False)
            _render_table(report, plain)
    elif fmt is Format.JSON:
        if target is None:
            emit_json(to_json(report))
            return
        target.write_text(
            json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    else:
        page = render_html(report)
        if target is None:
            sys.stdout.write(page)
            return
        target.write_text(page, encoding="utf-8")
    t = report.totals()
    out.print(
        f"wrote {target}: {t['jobs']} job(s), {t['jobs_with_unresolved']} with unresolved "
        "mismatches",
        markup=False,
        highlight=False,
    )


@app.command("report")
def report_cmd(
    job: list[str] = typer.Option(None, "--job", help="Job id or glob (repeatable); default all."),
    since: str = typer.Option(None, "--since", help="ISO 8601 or a span (7d); default until-24h."),
    until: str = typer.Option(None, "--until", help="ISO 8601 or a span back; default now."),
    fmt: Format = typer.Option(Format.TABLE, "--format", help="table, json or html."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    out_file: Path = typer.Option(None, "--out", help="Write the report to FILE."),
    workers: int = typer.Option(1, "--workers", min=1, help="Compare jobs in N processes."),
) -> None:
    """Compare both paths slot by slot; exit 1 if any job has an unresolved mismatch."""
    start, end, now = _window(since, until, timedelta(hours=24))
    fmt = Format.JSON if as_json else fmt
    registry = STATE.registry()
    with registry.session() as s:
        ids = select_jobs([j.id for j in JobRepo(s).list()], job or [])
        with _progress(sys.stdout.isatty()) as progress:
            if workers > 1 and len(ids) > 1:
                report = build_report_parallel(
                    s, registry.url, ids, start, end, now, workers=workers, progress=progress
                )
            else:
                report = build_report(s, ids, start, end, now, progress=progress)
    _write(fmt, report, out_file)
    if not report.ok:
        raise typer.Exit(1)


def calibration_json(cal: Calibration) -> dict[str, Any]:
    doc = asdict(cal)
    doc["exit_status"]["rate"] = cal.exit_status.rate
    doc["output"]["rate"] = cal.output.rate
    doc["residual"] = [{"a": a, "b": b} for a, b in cal.residual]
    return doc


def _print_calibration(cal: Calibration) -> None:
    e, o = cal.exit_status, cal.output
    out.print(
        Text.assemble(
            (cal.job_id, "bold"), f": {cal.runs} legacy run(s), {e.pairs} consecutive pair(s)"
        )
    )
    out.print(
        f"exit status differs in {e.differing}/{e.pairs} pair(s); values {list(e.values)}",
        highlight=False,
    )
    out.print(
        f"output differs in {o.differing}/{o.pairs} pair(s) with the current clean rules, "
        f"{cal.output_differing_after} with the proposed ones",
        highlight=False,
    )
    for p in cal.proposals:
        tag = " (broad: not added, it would hide real differences)" if p.broad else ""
        out.print(
            f"  propose {p.name}{tag}: {p.pattern!r}  e.g. {p.example!r}",
            markup=False,
            highlight=False,
        )
    if cal.proposed_clean:
        out.print(
            f"proposed compare.clean = {list(cal.proposed_clean)!r}", markup=False, highlight=False
        )
    for a, b in cal.residual:
        out.print(f"  still differs: {a!r} vs {b!r}", markup=False, highlight=False)
    for m in cal.mismatches:
        word = "within noise" if m.within_noise else "NOT within noise"
        out.print(
            f"  mismatch {m.slot} ({', '.join(m.fields)}): {word}: {m.why}",
            markup=False,
            highlight=False,
        )


@app.command("calibrate")
def calibrate_cmd(
    job_id: str = typer.Argument(..., help="The job id."),
    since: str = typer.Option(None, "--since", help="ISO 8601 or a span (7d); default 7 days."),
    until: str = typer.Option(None, "--until", help="ISO 8601 or a span back from now."),
    max_pairs: int = typer.Option(50, "--max-pairs", min=1, help="Newest run pairs compared."),
    as_json: bool = typer.Option(False, "--json", help="Print the calibration as JSON."),
) -> None:
    """Measure legacy-vs-legacy noise and propose clean regexes for the job."""
    start, end, now = _window(since, until, timedelta(days=7))
    with STATE.registry().session() as s:
        spec = JobRepo(s).require(job_id).spec
        history = AuthorityRepo(s).history(job_id)
        observations = list(query(s, job_id, start, end))
    legacy, celery = split_paths(observations)
    verdicts = compare_job(spec, start, end, now, legacy, celery, history=history)
    cal = calibrate(job_id, observations, spec.compare.clean, verdicts, max_pairs=max_pairs)
    if as_json:
        emit_json(calibration_json(cal))
    else:
        _print_calibration(cal)
