"""``bridge schedule preview``: the slots a schedule yields, legacy-exact, for audits."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from bridge.cli.context import STATE, emit_json, out
from bridge.errors import BridgeError, InputError
from bridge.schedules import compile_schedule, take
from bridge.spec import Dialect, ScheduleSpec
from bridge.store.repos import JobRepo

app = typer.Typer(
    help="Inspect schedules: preview fire times exactly as the legacy scheduler.",
    no_args_is_help=True,
)

MAX_COUNT = 10000


def parse_instant(text: str | None, zone: str) -> datetime:
    """ISO 8601; a value without offset is read in ``zone``; None = now."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise InputError(f"bad --after '{text}': expected ISO 8601") from e
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value


def preview(spec: ScheduleSpec, after: datetime, count: int) -> list[str]:
    """Slots as ISO 8601 in the schedule's zone, with offsets (pure)."""
    if not 1 <= count <= MAX_COUNT:
        raise InputError(f"count must be between 1 and {MAX_COUNT}")
    zone = ZoneInfo(spec.timezone)
    return [s.astimezone(zone).isoformat() for s in take(compile_schedule(spec), after, count)]


def _spec_from_case(case: dict[str, Any]) -> tuple[ScheduleSpec, datetime, int]:
    unknown = set(case) - {"dialect", "expr", "timezone", "after", "count"}
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}")
    try:
        spec = ScheduleSpec(
            dialect=Dialect(case.get("dialect", "vixie")),
            expression=case.get("expr"),
            timezone=case.get("timezone", "UTC"),
        )
    except ValueError as e:
        raise InputError(f"unknown dialect {case.get('dialect')!r}") from e
    count = case.get("count", 12)
    if not isinstance(count, int):
        raise InputError("count must be an integer")
    return spec, parse_instant(case.get("after"), spec.timezone), count


def run_batch(stream: TextIO, sink: TextIO) -> int:
    """JSON Lines in, one JSON result per line out, in order; returns the number of errors."""
    errors = 0
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            if not isinstance(case, dict):
                raise InputError("each line must be a JSON object")
            spec, after, count = _spec_from_case(case)
            result: dict[str, Any] = {"slots": preview(spec, after, count)}
        except json.JSONDecodeError as e:
            result = {"error": f"line {lineno}: invalid JSON: {e.msg}"}
        except BridgeError as e:
            result = {"error": f"line {lineno}: {e}"}
        if "error" in result:
            errors += 1
        sink.write(json.dumps(result) + "\n")
    sink.flush()
    return errors


@app.command("preview")
def preview_cmd(
    job: str = typer.Option(None, "--job", help="A job id from the registry."),
    dialect: Dialect = typer.Option(Dialect.VIXIE, "--dialect", help="Schedule dialect."),
    expr: str = typer.Option(None, "--expr", help="Expression (cron or Quartz)."),
    timezone: str = typer.Option(None, "--timezone", help="IANA zone (default: settings)."),
    after: str = typer.Option(None, "--after", help="ISO 8601 start (default now)."),
    count: int = typer.Option(10, "--count", help="How many slots."),
    batch: str = typer.Option(
        None,
        "--batch",
        help="JSON Lines file ('-' = stdin) of {dialect,expr,timezone,after,count}.",
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"slots": [...]}.'),
) -> None:
    """Print the next COUNT slots strictly after --after, with UTC offsets.

    Either --job ID, or --dialect/--expr/--timezone. Errors print {"error": ...} with --json and
    exit 2. --batch writes one result per input line, in order; bad lines yield an error line."""
    if batch is not None:
        stream = sys.stdin if batch == "-" else _open(batch)
        errors = run_batch(stream, sys.stdout)
        raise typer.Exit(2 if errors else 0)
    try:
        spec = _resolve(job, dialect, expr, timezone)
        slots = preview(spec, parse_instant(after, spec.timezone), count)
    except BridgeError as e:
        if as_json:
            emit_json({"error": str(e)})
            raise typer.Exit(int(e.exit_code)) from e
        raise
    if as_json:
        emit_json({"slots": slots})
        return
    table = Table(title=f"{spec.dialect} '{spec.expression}' in {spec.timezone}")
    table.add_column("#", justify="right")
    table.add_column("slot (local)")
    table.add_column("UTC")
    for i, s in enumerate(slots, 1):
        table.add_row(
            str(i), s, datetime.fromisoformat(s).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        )
    out.print(table)


def _open(path: str) -> TextIO:
    try:
        return open(path, encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read --batch file '{path}': {e.strerror}") from e


def _resolve(job: str | None, dialect: Dialect, expr: str | None, tz: str | None) -> ScheduleSpec:
    if job:
        if expr:
            raise InputError("give either --job or --expr, not both")
        with STATE.registry().session() as s:
            return JobRepo(s).require(job).spec.schedule
    if not expr:
        raise InputError("give --job ID or --expr EXPRESSION")
    try:
        return ScheduleSpec(
            dialect=dialect, expression=expr, timezone=tz or STATE.settings.timezone
        )
    except BridgeError:
        raise
