"""Generate golden vectors for the vixie/cronie evaluator with cronsim (the Debian-cron oracle).

Run ``python tests/oracle/gen_cron_vectors.py`` (from the repository root, in the project venv).
It writes

* ``tests/vectors/cron_vectors.jsonl.gz``: one JSON object a line, ``{"expr", "tz", "start",
  "slots"}``: ``start`` is a zone-aware ISO instant, ``slots`` the first 12 distinct fire instants
  strictly after it, as UTC ISO strings, as cronsim computes them;
* ``tests/vectors/cron_invalid.json``: lines Debian's ``crontab`` (3.0pl1-162) refuses to install,
  each with a substring of the bridge's expected error (each was checked with ``crontab -u``).

Everything is seeded: re-running reproduces byte-identical files (gzip mtime is 0).

What the vectors cover: ten zones (northern and southern DST, Lord Howe's 30-minute DST,
Santiago's midnight transitions, half-hour and whole-hour zones without DST, UTC); starts 2 h and
10 min before and 10 min after every offset change of 2026-2030 in each zone, plus seeded ordinary
instants; expressions mixing fixed times chosen inside each zone's skipped and repeated hours,
hourly and sub-hourly wildcards, ``*/n`` steps, lists, ranges, names, both day rules, 0/7 Sunday,
the 31st, ``@`` macros and seeded random fields.

The generator is independent of ``bridge.core.schedules.cron`` on purpose (it finds transitions and
expands macros itself). Expressions cronsim reads differently from Debian are kept out: wrapping
ranges and impossible dates (cronsim refuses them), a one-value range with a step (``5-5/3``:
cronsim steps from 5 to the field's end, Debian keeps just 5). Those edges are tested by
behaviour in ``tests/schedules/test_cron_eval.py``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

SEED = 20260308
SLOTS = 12
YEARS = range(2026, 2031)
OUT_DIR = Path(__file__).resolve().parent.parent / "vectors"

# zone -> local wall hours around which its clock changes (gap and overlap), for fixed-time jobs
ZONES: dict[str, tuple[int, ...]] = {
    "America/New_York": (0, 1, 2, 3),
    "Europe/Berlin": (1, 2, 3),
    "Europe/London": (0, 1, 2),
    "Australia/Sydney": (1, 2, 3),
    "Australia/Lord_Howe": (1, 2),
    "Pacific/Auckland": (1, 2, 3),
    "America/Santiago": (22, 23, 0, 1),
    "Asia/Kolkata": (0, 2, 5),
    "Asia/Tokyo": (0, 2, 9),
    "UTC": (0, 2, 12),
}

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

GENERIC = (
    "* * * * *",
    "0 * * * *",
    "30 * * * *",
    "*/15 * * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "1-59/7 * * * *",
    "0 */2 * * *",
    "15 */3 * * *",
    "0 0-23/6 * * *",
    "*/20 1-3 * * *",
    "*/10 2 * * *",
    "* 2 * * *",
    "0 1-5 * * *",
    "0 0 * * *",
    "0 0 1 * *",
    "0 0 31 * *",
    "0 12 * * mon-fri",
    "0 9 * * 1,3,5",
    "0 0 1,15 * 5",
    "0 0 */2 * sun",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 13 * fri",
    "0 6 * jan,jul *",
    "0 0 1 jan-mar *",
    "30 4 1 */3 *",
    "0 0 29 2 *",
    "5 4 * * sun",
    "0 22 * * 1-5",
    "45 23 * * Sat",
    "0 8-18 * * MON-FRI",
    "0,30 9-17 * * 1-5",
    "10 3 * * */2",
    "0 0 1-7 * mon",
    "0 0 * 2 */7",
    "*/30 * 1 * *",
    "20 5 30 * *",
    "0 4 * NOV,Mar sun",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
)


@dataclass(frozen=True)
class Transition:
    at: datetime  # UTC
    before: timedelta
    after: timedelta


def _offset(zone: ZoneInfo, t: datetime) -> timedelta:
    off = t.astimezone(zone).utcoffset()
    assert off is not None
    return off


@cache
def transitions(zone_name: str) -> tuple[Transition, ...]:
    """Offset changes in YEARS: an hourly scan, then a bisection to the second."""
    zone = ZoneInfo(zone_name)
    t = datetime(YEARS.start, 1, 1, tzinfo=UTC)
    stop = datetime(YEARS.stop, 1, 1, tzinfo=UTC)
    out: list[Transition] = []
    while t < stop:
        nxt = t + timedelta(hours=1)
        a, b = _offset(zone, t), _offset(zone, nxt)
        if a != b:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (lo, mid) if _offset(zone, mid) == b else (mid, hi)
            out.append(Transition(hi, a, b))
        t = nxt
    return tuple(out)


def dst_expressions(hours: tuple[int, ...]) -> list[str]:
    """Fixed-time and wildcard jobs at the wall times where a zone's clock changes."""
    out: list[str] = []
    for h in hours:
        out += [f"{m} {h} * * *" for m in (0, 15, 30, 45, 59)]
        out += [f"*/15 {h} * * *", f"0,30 {h} * * *", f"30 {h} * * 0", f"0 {h} 1-7 * sun"]
    lo, hi = min(hours), max(hours)
    out += [f"0 {lo}-{hi} * * *", f"30 {','.join(map(str, hours))} * * *", f"* {hi} * * *"]
    return out


def random_field(rng: random.Random, low: int, high: int, names: tuple[str, ...] = ()) -> str:
    kind = rng.choice(("star", "star", "step", "one", "list", "range", "rangestep"))

    def value(v: int) -> str:
        if names and rng.random() < 0.4 and v - low < len(names):
            name = names[v - low]
            return rng.choice((name, name.upper(), name.capitalize()))
        return str(v)

    if kind == "star":
        return "*"
    if kind == "step":
        return f"*/{rng.randint(2, max(2, (high - low) // 2))}"
    if kind == "one":
        return value(rng.randint(low, high))
    if kind == "list":
        picks = sorted(rng.sample(range(low, high + 1), rng.randint(2, 4)))
        return ",".join(value(v) for v in picks)
    a = rng.randint(low, high - 1)
    b = rng.randint(a + 1, high)
    if kind == "range":
        return f"{value(a)}-{value(b)}"
    return f"{a}-{b}/{rng.randint(2, max(2, (b - a)))}"


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def random_expression(rng: random.Random) -> str:
    return " ".join(
        (
            random_field(rng, 0, 59),
            random_field(rng, 0, 23),
            random_field(rng, 1, 31) if rng.random() < 0.5 else "*",
            random_field(rng, 1, 12, MONTHS) if rng.random() < 0.4 else "*",
            random_field(rng, 0, 7, (*DAYS, "sun")) if rng.random() < 0.5 else "*",
        )
    )


def cronsim_slots(expr: str, start: datetime) -> list[datetime] | None:
    """The first SLOTS distinct instants strictly after ``start``, or None if cronsim can't."""
    try:
        it = CronSim(MACROS.get(expr, expr), start)
        seen: list[datetime] = []
        for _ in range(SLOTS * 4):
            t = next(it).astimezone(UTC)
            if t <= start or (seen and t == seen[-1]):
                continue  # a wall time of the repeated hour before start, or a collapsed slot
            if seen and t < seen[-1]:
                raise AssertionError(f"cronsim went backwards for {expr!r} from {start}")
            seen.append(t)
            if len(seen) == SLOTS:
                return seen
    except (CronSimError, StopIteration):
        return None
    return None


def is_wildcard(expr: str) -> bool:
    minute, hour = MACROS.get(expr, expr).split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def wall_clock_slots(it: CronSim, zone: ZoneInfo, lo: datetime, hi: datetime) -> list[datetime]:
    """Brute force, minute by minute: instants in (lo, hi] whose local wall time matches."""
    out = []
    t = lo.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= hi:
        w = t.astimezone(zone)
        if (w.minute in it.minutes and w.hour in it.hours and w.month in it.months
                and it.match_day(w.date())):
            out.append(t)
        t += timedelta(minutes=1)
    return out


def cronsim_misses_wall_times(expr: str, zone_name: str, slots: list[datetime],
                              start: datetime) -> bool:
    """cronsim steps wildcard hours by 3600 real seconds, so after a 30-minute clock change
    (Lord Howe) it lands on :30 wall times until the next midnight and skips wall times Debian
    runs (``0 */2 * * *`` misses 02:00 LHST). Check every wildcard case by brute force from
    3 hours before each such clock change it spans to 27 hours after it."""
    if not is_wildcard(expr):
        return False
    it = CronSim(MACROS.get(expr, expr), start)
    zone = ZoneInfo(zone_name)
    for tr in transitions(zone_name):
        if abs(tr.after - tr.before) % timedelta(hours=1) == timedelta(0):
            continue
        lo = max(start.astimezone(UTC), tr.at - timedelta(hours=3))
        hi = min(slots[-1], tr.at + timedelta(hours=27))
        if lo < hi and wall_clock_slots(it, zone, lo, hi) != [s for s in slots if lo < s <= hi]:
            return True
    return False


def starts(zone_name: str, rng: random.Random, ordinary: int) -> Iterator[tuple[datetime, bool]]:
    """(start, near_transition) pairs, zone-aware."""
    zone = ZoneInfo(zone_name)
    for tr in transitions(zone_name):
        for delta in (timedelta(hours=-2), timedelta(minutes=-10), timedelta(minutes=10)):
            yield (tr.at + delta).astimezone(zone), True
    span = int((datetime(YEARS.stop, 1, 1) - datetime(YEARS.start, 1, 1)).total_seconds())
    for _ in range(ordinary):
        t = datetime(YEARS.start, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(span))
        yield t.astimezone(zone), False


def cases(rng: random.Random, skipped: list[dict[str, str]]) -> Iterator[dict[str, object]]:
    for zone_name, hours in ZONES.items():
        dst = dst_expressions(hours)
        for start, near in starts(zone_name, rng, ordinary=45):
            chosen = rng.sample(dst, 12 if near else 4)
            chosen += rng.sample(GENERIC, 8 if near else 6)
            chosen += [random_expression(rng) for _ in range(2 if near else 4)]
            for expr in chosen:
                slots = cronsim_slots(expr, start)
                case = {"expr": expr, "tz": zone_name, "start": start.isoformat()}
                if slots is None:
                    continue
                if cronsim_misses_wall_times(expr, zone_name, slots, start):
                    skipped.append(case)
                    continue
                yield {**case, "slots": [s.isoformat() for s in slots]}


INVALID = (
    ("60 * * * *", "minute 60 out of range"),
    ("0 24 * * *", "hour 24 out of range"),
    ("0 0 0 * *", "day-of-month 0 out of range"),
    ("0 0 32 * *", "day-of-month 32 out of range"),
    ("0 0 * 0 *", "month 0 out of range"),
    ("0 0 * 13 *", "month 13 out of range"),
    ("0 0 * * 8", "day-of-week 8 out of range"),
    ("1-60 * * * *", "minute 60 out of range"),
    ("5/15 * * * *", "step on a single value"),
    ("*/0 * * * *", "step 0"),
    ("1-5/0 * * * *", "step 0"),
    ("0 0 1-31/0 * *", "step 0"),
    ("*/ * * * *", "bad step"),
    ("1-/5 * * * *", "empty value"),
    ("-5 * * * *", "empty value"),
    ("5- * * * *", "empty value"),
    (",5 * * * *", "empty value"),
    ("5, * * * *", "empty value"),
    ("1,,2 * * * *", "empty value"),
    ("5x * * * *", "bad minute value"),
    ("0 0 L * *", "bad day-of-month value 'L'"),
    ("0 0 15W * *", "bad day-of-month value '15W'"),
    ("0 0 ? * *", "bad day-of-month value '?'"),
    ("0 0 * * ?", "bad day-of-week value '?'"),
    ("0 0 * * L", "bad day-of-week value 'L'"),
    ("0 0 * * 5L", "bad day-of-week value '5L'"),
    ("0 0 * * sunday", "bad day-of-week value 'sunday'"),
    ("0 0 * * MONDAY", "bad day-of-week value 'MONDAY'"),
    ("0 0 * * */mon", "bad step"),
    ("0 0 * * mon,", "empty value"),
    ("@DAILY", "unknown special schedule"),
    ("@every", "unknown special schedule"),
    ("* * * *", "expected 5 time fields"),
)


def write(out_dir: Path) -> tuple[int, int, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    raw = io.BytesIO()
    count = 0
    skipped: list[dict[str, str]] = []
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for case in cases(rng, skipped):
            gz.write((json.dumps(case, separators=(",", ":")) + "\n").encode())
            count += 1
    (out_dir / "cron_vectors.jsonl.gz").write_bytes(raw.getvalue())
    invalid = [{"expr": e, "error": m} for e, m in INVALID]
    (out_dir / "cron_invalid.json").write_text(json.dumps(invalid, indent=1) + "\n")
    return count, len(invalid), len(skipped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    count, invalid, skipped = write(args.out)
    print(f"{count} vectors over {len(ZONES)} zones, {invalid} invalid lines -> {args.out}")
    print(f"{skipped} cases left out: cronsim misses wall times after a 30-minute clock change")


if __name__ == "__main__":
    main()
