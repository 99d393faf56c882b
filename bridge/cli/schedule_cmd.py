"""``bridge schedule preview``: the slots a schedule yields, legacy-exact, for audits."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from bridge.cli.context import STATE, emit_json, out
from bridge.core.errors import BridgeError, InputError
from bridge.core.schedules import compile_schedule, take
from bridge.core.spec import Dialect, ScheduleSpec
from bridge.store.repos import JobRepo

app = typer.Typer(
    help="Inspect schedules: preview fire times exactly as the legacy scheduler.",
    no_args_is_help=True,
)

MAX_COUNT = 10000
MAX_LINE_BYTES = 64 * 1024  # one batch case; a longer line is an error line, not a crash
# The instants the evaluators answer for: Quartz never fires before the epoch, the cron
# evaluators stop at year 9997 after a search of up to 400 years.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_instant(text: str | None, zone: str) -> datetime:
    """ISO 8601; a value without offset is read in ``zone``; None = now. Only instants in
    [:data:`EARLIEST`, :data:`LATEST`] are accepted (InputError otherwise)."""
    if text is None:
        return datetime.now(UTC)
    if not isinstance(text, str):
        raise InputError(f"bad --after {text!r}: expected an ISO 8601 string")
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(zone))
        utc = value.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise InputError(f"bad --after '{text}': expected ISO 8601 between "
                         f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}") from e
    if not EARLIEST <= utc <= LATEST:
        raise InputError(f"--after '{text}' is outside the supported range "
                         f"{EARLIEST:%Y-%m-%dT%H:%MZ} .. {LATEST:%Y-%m-%dT%H:%MZ}")
    return value


def preview(spec: ScheduleSpec, after: datetime, count: int) -> list[str]:
    """Slots as ISO 8601 in the schedule's zone, with offsets (pure)."""
    if isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise InputError(f"count must be between 1 and {MAX_COUNT}")
    zone = ZoneInfo(spec.timezone)
    try:
        slots = take(compile_schedule(spec), after, count)
    except OverflowError as e:  # a slot past year 9999: beyond what a datetime can hold
        raise InputError("the slots run past year 9999: use an earlier --after") from e
    return [s.astimezone(zone).isoformat() for s in slots]


def _spec_from_case(case: dict[str, Any]) -> tuple[ScheduleSpec, datetime, int]:
    unknown = set(case) - {"dialect", "expr", "timezone", "after", "count"}
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}")
    for name in ("dialect", "expr", "timezone", "after"):
        if case.get(name) is not None and not isinstance(case[name], str):
            raise InputError(f"{name} must be a string")
    try:
        dialect = Dialect(case.get("dialect", "vixie"))
    except ValueError as e:
        raise InputError(f"unknown dialect {case.get('dialect')!r}") from e
    spec = ScheduleSpec(dialect=dialect, expression=case.get("expr"),
                        timezone=case.get("timezone", "UTC"))
    count = case.get("count", 12)
    if not isinstance(count, int) or isinstance(count, bool):
        raise InputError("count must be an integer")
    return spec, parse_instant(case.get("after"), spec.timezone), count


def _lines(stream: BinaryIO) -> Any:
    """(line number, bytes or None when the line is longer than MAX_LINE_BYTES), bounded."""
    lineno = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the overlong line
                raw = stream.readline(MAX_LINE_BYTES + 1)
            yield lineno, None
            continue
        yield lineno, raw


def _case_result(raw: bytes | None) -> dict[str, Any]:
    """One batch line's answer: ``{"slots"}`` or ``{"error"}`` (never raises for bad input)."""
    if raw is None:
        raise InputError(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 (byte {e.start})") from e
    try:
        case = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}") from e
    except RecursionError as e:
        raise InputError("invalid JSON: nested too deeply") from e
    if not isinstance(case, dict):
        raise InputError("each line must be a JSON object")
    spec, after, count = _spec_from_case(case)
    return {"slots": preview(spec, after, count)}


def run_batch(stream: BinaryIO, sink: TextIO) -> int:
    """JSON Lines in, one JSON result per line out, in order; returns the number of errors.

    Every non-blank line is answered: a bad line (not UTF-8, not JSON, a bad case) yields
    ``{"error": "line N: ..."}`` and the batch goes on; so does an internal error in one case
    (``"internal error: <type>"``), which is counted as an error too."""
    errors = 0
    for lineno, raw in _lines(stream):
        if raw is not None and not raw.strip():
            continue
        try:
            result: dict[str, Any] = _case_result(raw)
        except BridgeError as e:
            result = {"error": f"line {lineno}: {e}"}
        except Exception as e:  # a bug in one case must not leave the later lines unanswered
            result = {"error": f"line {lineno}: internal error: {type(e).__name__}: {e}"}
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
        stream = sys.stdin.buffer if batch == "-" else _open(batch)
        try:
            errors = run_batch(stream, sys.stdout)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
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


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
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
