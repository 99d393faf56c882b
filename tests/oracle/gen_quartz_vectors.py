"""Generate the Quartz golden vectors from Quartz 2.3.2 itself (deterministic, seeded).

    /work/venv/bin/python tests/oracle/gen_quartz_vectors.py [--check]

Writes, next to the other vectors:

* ``tests/vectors/quartz_vectors.jsonl.gz``: one JSON object per line,
  ``{"expr", "tz", "start", "slots": [12 ISO UTC strings]}`` - the fire times Quartz's
  ``CronExpression.getNextValidTimeAfter`` chains from ``start``; ``"end": true`` when Quartz
  returned null before 12 (year field exhausted, never fires); trigger cases add
  ``"trigger_start"``/``"trigger_end"`` (a ``CronTriggerImpl`` with start/end time).
* ``tests/vectors/quartz_invalid.json``: ``rejected_by_quartz`` (expression + Quartz's own
  ParseException message) and ``refused_by_bridge`` (expressions Quartz accepts but misreads
  or loops on, with a note; the bridge refuses them on purpose).

Starts sit 26 h, 2 h and 10 min before every DST transition of 2026-2030 in each zone (computed
with zoneinfo), plus seeded ordinary instants. Expressions: a fixed realistic list (every one in
every zone), wall times inside each transition's gap or repeated interval, and seeded random
expressions from a grammar (``random_expression``). ``--check`` only prints counts.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent))

import quartz_oracle  # a sibling module, not a package

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "vectors" / "quartz_vectors.jsonl.gz"
INVALID = ROOT / "vectors" / "quartz_invalid.json"
SEED = 20260308
SLOTS = 12

ZONES = (
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "America/Santiago",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Tokyo",
)

# A realistic mix: what Quartz job files contain, plus every feature at least once.
COMMON = (
    "0 0 12 * * ?",
    "0 15 10 ? * *",
    "0 15 10 * * ? 2027",
    "0 * 14 * * ?",
    "0 0/5 14 * * ?",
    "0 0/5 14,18 * * ?",
    "0 0-5 14 * * ?",
    "0 10,44 14 ? 3 WED",
    "0 15 10 ? * MON-FRI",
    "0 15 10 15 * ?",
    "0 15 10 L * ?",
    "0 15 10 L-2 * ?",
    "0 0 6 L-30 * ?",
    "0 15 10 ? * 6L",
    "0 15 10 ? * 6L 2027-2029",
    "0 15 10 ? * 6#3",
    "0 0 12 1/5 * ?",
    "0 11 11 11 11 ?",
    "0 0 0 1W * ?",
    "0 0 9 15W * ?",
    "0 0 18 LW * ?",
    "0 30 8 L-3W * ?",
    "0 0 7 31W * ?",
    "0 0 7 29W * ?",
    "0 0 12 ? * MON-FRI/2",
    "0 0 12 ? * 2-6/2",
    "0 0 12 ? JAN-JUN/2 MON",
    "0 0 22-2 * * ?",
    "0 0 8 1 NOV-FEB ?",
    "0 0 12 ? * FRI-MON",
    "0 50-10 * * * ?",
    "* * * * * ?",
    "0/5 * * * * ?",
    "*/20 * 1-3 * * ?",
    "0 * * * * ?",
    "0 0 * * * ?",
    "0 0/15 * * * ?",
    "0 */30 * * * ?",
    "30 0/20 * * * ?",
    "0 0 */2 * * ?",
    "0 0 1-5 * * ?",
    "15,45 * 1-3 * * ?",
    "0 15,35 * * * ?",
    "0 15/20 * * * ?",
    "0 0,30 0-3 * * ?",
    "0 0 0 29 2 ?",
    "0 0 0 ? 2 1#5",
    "0 0 0 30 2 ?",
    "0 0 12 * * ? 2026",
    "0 0 12 1 1 ? 2027,2029",
    "0 0 12 ? * 2#1 2026-2027",
    "0 0 6 ? * SUN#2",
    "0 0 6 ? * SATL",
    "0 0 12 ? * L",
    "0 30 9 ? JAN,JUL 2L",
    "0 15 2 * * ?",
    "0 30 2 * * ?",
    "0 30 1 * * ?",
    "0 0 2 * * ?",
    "0 0 3 * * ?",
    "0 0 1 * * ?",
    "0 59 1 * * ?",
    "59 59 23 * * ?",
    "0 0 0 * * ?",
    "0 30 0 * * ?",
    "0 30 23 * * ?",
    "0 0 0 L * ?",
    "0 0 23 ? * SAT",
    "0 45 2 ? * SUN",
    "0 0 12 ? * 1,7",
    "0 0 9-17 ? * MON-FRI",
    "0 0/30 8-18 ? * 2-6",
    "0 0 4 ? * 7 *",
    "0 5 0 1 */3 ?",
    "0 0 12 ? 3/4 SUN#1",
    "0 0 1 ? * 1 2026/2",
    "0 15 10 ? * mon-fri",
    "0 0 12 ? * sun",
)


def iso(t: datetime) -> str:
    text = t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


def ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def transitions(tz: str, first_year: int = 2026, last_year: int = 2030) -> list[datetime]:
    """Every UTC offset change of ``tz`` in those years, to the second (zoneinfo)."""
    zone = ZoneInfo(tz)
    t = datetime(first_year, 1, 1, tzinfo=UTC)
    stop = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    before = t.astimezone(zone).utcoffset()
    out = []
    while t < stop:
        nxt = t + timedelta(hours=6)
        if nxt.astimezone(zone).utcoffset() != before:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if mid.astimezone(zone).utcoffset() == before else (lo, mid)
            out.append(hi.replace(microsecond=0))
            before = nxt.astimezone(zone).utcoffset()
        t = nxt
    return out


def transition_expressions(tz: str, at: datetime) -> list[str]:
    """Schedules whose wall times fall inside the gap or the repeated interval at ``at``."""
    zone = ZoneInfo(tz)
    old = (at - timedelta(seconds=1)).astimezone(zone)
    new = at.astimezone(zone)
    jump = new.utcoffset() - old.utcoffset()  # type: ignore[operator]
    first = (old + timedelta(seconds=1)).replace(tzinfo=None)  # wall where the change happens
    if jump < timedelta(0):
        first += jump  # the repeated interval starts earlier
    span = int(abs(jump).total_seconds() // 60)
    out = []
    for minutes in sorted({0, span // 4, span // 2, max(span - 1, 0)}):
        w = first + timedelta(minutes=minutes)
        out.append(f"0 {w.minute} {w.hour} * * ?")
    h = first.hour
    out += [
        f"0 0/10 {h} * * ?",
        f"0 {first.minute} * * * ?",
        f"0 0,20,40 {(h - 1) % 24}-{(h + 1) % 24} * * ?",
        f"0 {first.minute} {h} ? * {(first.weekday() + 1) % 7 + 1}",
    ]
    return out


def _numeric(rng: random.Random, lo: int, hi: int, names: tuple[str, ...] = ()) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return "*"
    if kind == 1:
        return f"*/{rng.randint(1, min(hi - lo + 1, 30))}"
    if kind in (2, 8):
        return str(rng.randint(lo, hi))
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if kind == 3:
        return f"{a}-{b}"
    if kind == 4:
        return f"{a}-{b}/{rng.randint(1, 7)}"
    if kind == 5:
        return f"{a}/{rng.randint(1, min(hi, 20))}"
    if kind == 6:
        count = rng.randint(2, 4)
        return ",".join(str(x) for x in sorted(rng.sample(range(lo, hi + 1), count)))
    if names:
        x, y = rng.choice(names), rng.choice(names)
        return rng.choice((x, f"{x}-{y}", f"{x}-{y}/{rng.randint(1, 3)}"))
    return str(a)


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _day_fields(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        dom = rng.choice(
            (
                "*",
                _numeric(rng, 1, 31),
                "L",
                f"L-{rng.randint(0, 10)}",
                f"{rng.randint(1, 31)}W",
                "LW",
                f"L-{rng.randint(1, 27)}W",
            )
        )
        return dom, "?"
    nth = rng.choice(DAYS + tuple(str(i) for i in range(1, 8)))
    dow = rng.choice(("*", _numeric(rng, 1, 7, DAYS), "L", f"{nth}L", f"{nth}#{rng.randint(1, 5)}"))
    return "?", dow


def random_expression(rng: random.Random) -> str:
    """A random expression of the grammar both Quartz and the bridge accept."""
    sec = rng.choice(("0", "0", "0", "30", _numeric(rng, 0, 59)))
    minute = rng.choice(("0", "0", "15", "30", "*/15", _numeric(rng, 0, 59)))
    hour = _numeric(rng, 0, 23)
    month = rng.choice(("*", "*", "*", _numeric(rng, 1, 12, MONTHS)))
    dom, dow = _day_fields(rng)
    expr = f"{sec} {minute} {hour} {dom} {month} {dow}"
    if rng.random() < 0.15:
        expr += " " + rng.choice(("*", "2026-2028", "2027", "2026/2", "*/3", "2026,2029"))
    return expr


def _ordinary_starts(rng: random.Random, count: int) -> list[datetime]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        base + timedelta(seconds=rng.randrange(5 * 365 * 86400) // 60 * 60 + rng.choice((0, 0, 7)))
        for _ in range(count)
    ]


def _bridge_accepts(expr: str) -> bool:
    from bridge.core.errors import ScheduleError
    from bridge.core.schedules.quartz import validate

    try:
        validate(expr)
    except ScheduleError:
        return False
    return True


def valid_cases(rng: random.Random) -> Iterator[quartz_oracle.Case]:
    """Every valid case, in a fixed order."""
    fixed = datetime(2026, 2, 26, 13, 0, tzinfo=UTC)
    for tz in ZONES:
        for expr in COMMON:
            yield quartz_oracle.Case(expr, tz, ms(fixed), SLOTS)
    for tz in ZONES:
        starts: list[tuple[datetime, list[str]]] = []
        for at in transitions(tz):
            extra = transition_expressions(tz, at)
            starts += [(at - d, extra) for d in (timedelta(hours=26), timedelta(hours=2))]
            starts.append((at - timedelta(minutes=10), extra))
        starts += [(t, []) for t in _ordinary_starts(rng, 8 if starts else 24)]
        for start, extra in starts:
            exprs = rng.sample(COMMON, 10) + rng.sample(extra, min(4, len(extra)))
            while len(exprs) < 17:
                expr = random_expression(rng)
                if _bridge_accepts(expr):
                    exprs.append(expr)
            for expr in exprs:
                yield quartz_oracle.Case(expr, tz, ms(start), SLOTS)


def trigger_cases(rng: random.Random, count: int = 300) -> Iterator[quartz_oracle.Case]:
    """Cases through a CronTriggerImpl with start/end times (some with milliseconds)."""
    for _ in range(count):
        tz = rng.choice(ZONES)
        expr = rng.choice(COMMON[:45])
        base = _ordinary_starts(rng, 1)[0]
        start = base + timedelta(seconds=rng.randrange(-3 * 86400, 3 * 86400))
        start += timedelta(milliseconds=rng.choice((0, 0, 0, 1, 500, 999)))
        end = None
        if rng.random() < 0.7:
            end = start + timedelta(seconds=rng.randrange(0, 20 * 86400))
        yield quartz_oracle.Case(
            expr, tz, ms(base), SLOTS, "T", ms(start), None if end is None else ms(end)
        )


def record(case: quartz_oracle.Case, answer: quartz_oracle.Answer) -> dict[str, Any]:
    if not answer.ok:
        raise RuntimeError(f"Quartz failed on {case}: {answer.kind} {answer.error}")
    rec: dict[str, Any] = {
        "expr": case.expr,
        "tz": case.tz,
        "start": iso(from_ms(case.start_ms)),
        "slots": [iso(from_ms(m)) for m in answer.millis],
    }
    if answer.ended:
        rec["end"] = True
    if case.mode == "T":
        rec["trigger_start"] = iso(from_ms(case.trigger_start_ms or 0))
        rec["trigger_end"] = (
            None if case.trigger_end_ms is None else iso(from_ms(case.trigger_end_ms))
        )
    return rec


# Candidates for the invalid list: things people write, and the edges of every rule.
INVALID_CANDIDATES = (
    "",
    "0 0 12 * *",
    "0 0 12 * * *",
    "0 0 12 ? * ?",
    "0 0 12 5 * MON",
    "0 0 12 L * MON",
    "60 0 12 * * ?",
    "0 60 12 * * ?",
    "0 0 24 * * ?",
    "0 0 12 0 * ?",
    "0 0 12 32 * ?",
    "0 0 12 * 0 ?",
    "0 0 12 * 13 ?",
    "0 0 12 ? * 0",
    "0 0 12 ? * 8",
    "0 0 12 ? * 1-8",
    "0 0 12 1-32 * ?",
    "-5 0 12 * * ?",
    "5- 0 12 * * ?",
    "5-- 0 12 * * ?",
    "5/ 0 12 * * ?",
    "5/X 0 12 * * ?",
    "5/2X 0 12 * * ?",
    "*/ 0 12 * * ?",
    "*/5X 0 12 * * ?",
    "5/60 0 12 * * ?",
    "0 */60 12 * * ?",
    "0 0 */24 * * ?",
    "0 0 12 */32 * ?",
    "0 0 12 * */13 ?",
    "0 0 12 ? * */8",
    "0 0 12 ? * #3",
    "0 0 12 ? * 1#",
    "0 0 12 ? * 2#6",
    "0 0 12 ? * 2#0",
    "0 0 12 ? * MON#",
    "0 0 12 ? * MON#9",
    "0 0 12 ? * MON#1X",
    "0 0 12 ? * 1#3#4",
    "0 0 12 ? * 1#2-3",
    "0 0 12 ? * 0L",
    "0 0 12 ? * 8L",
    "0 0 12 ? * 6L,2",
    "0 0 12 ? * L,2",
    "0 0 12 ? * L7",
    "0 0 12 ? * MO",
    "0 0 12 ? * M",
    "0 0 12 ? * MON-",
    "0 0 12 ? * MON-F",
    "0 0 12 ? * MUN",
    "0 0 12 ? * MON-FRX",
    "0 0 12 L,5 * ?",
    "0 0 12 5,L * ?",
    "0 0 12 LW,5 * ?",
    "0 0 12 L- * ?",
    "0 0 12 LX * ?",
    "0 0 12 L-31 * ?",
    "0 0 12 5L * ?",
    "0 0 12 32W * ?",
    "0 0 12 WL * ?",
    "0 0 12 ,, * ?",
    "0 0 12 ?55 * *",
    "0 0 12 * JAN-3 ?",
    "0 0 12 * 1-MAR ?",
    "0 0 12 * JA ?",
    "0 0 12 * MON ?",
    "0 0 MON * * ?",
    "0 0 12 * * ? 2030-2025",
    "0 0 12 * * ? 2187/5",
    "0 0 12 * * ? 2026-",
    "0 0 12 * * ? X",
    "0 ? 12 * * ?",
    "? 0 12 * * ?",
    "0 0 ? * * ?",
    "0 0 12 * ? ?",
    "0 0 12 * * ? ?",
    "0 0 12 W * ?",
    "0 0 12 ? * W",
    "0 0 12 ? * 2W",
    "0 0 12 15W * MON",
    "0 0 12 99999999999 * ?",
    "0 0 12 * * ? 99999999999",
    "0 0 12 1,2-,3 * ?",
)

# Expressions Quartz accepts but misreads (or loops on): the bridge refuses them on purpose.
REFUSED_BY_BRIDGE = (
    ("0 0 12 ? * MONDAY", "Quartz reads the first three letters: MON"),
    ("0 0 12 ? * MON-FRIDAY", "Quartz reads MON-FRI"),
    ("0 0 12 * JANUARY ?", "Quartz reads JAN"),
    ("0 0 12 5X * ?", "Quartz ignores the X: 5"),
    ("5X 0 12 * * ?", "Quartz ignores the X: 5"),
    ("*X 0 12 * * ?", "Quartz reads *"),
    ("1-5X 0 12 * * ?", "Quartz reads 1-5"),
    ("1-5/2X 0 12 * * ?", "Quartz reads 1-5/2"),
    ("0 0 12 1-5W * ?", "Quartz ignores the W: 1-5"),
    ("0 0 12 ?X * MON", "Quartz reads ?"),
    ("0 0 99 * * ?", "99 is Quartz's internal marker for '*': every hour"),
    ("0 0 12 99 * ?", "99 is Quartz's internal marker for '*': every day"),
    ("L 0 12 * * ?", "Quartz reads an empty seconds field (fails when evaluated)"),
    (", 0 12 * * ?", "an empty seconds field (fails when evaluated)"),
    ("0 0 12 * * ? ,", "an empty year field: never fires"),
    ("0 0 1,,2 * * ?", "Quartz skips the empty item"),
    ("0 0 12 1 1 ? 2026 extra", "Quartz ignores fields after the year"),
    ("*/0 0 12 * * ?", "Quartz reads step 0 after * as every value"),
    ("5/0 0 12 * * ?", "Quartz reads step 0 after a value as that value"),
    ("1-5/0 0 12 * * ?", "Quartz reads step 0 after a range as its start"),
    ("0 0 12 ? * 2,6#3", "Quartz takes the smallest day: third Monday"),
    ("0 0 12 15W,20 * ?", "Quartz takes the smallest day: 15W"),
    ("0 0 12 ? * 9#2", "day-of-week 9 does not exist"),
    ("0 0 12 0W * ?", "day 0 does not exist"),
    ("0 0 12 ? * 1-0", "a range ending at 0 wraps in Quartz"),
    ("0 0 12 ? * LW", "Quartz ignores the W: Saturday"),
    ("0 0 12 ? * L-3", "Quartz ignores -3: Saturday"),
    ("0 0 12 ? * 2-6L", "Quartz ignores the L: 2-6"),
    ("0 0 12 ? * MONLX", "Quartz ignores the X: last Monday"),
    ("0 0 12 L-28W * ?", "Quartz loops forever computing February"),
    ("0 0 12 L-30W * ?", "Quartz loops forever"),
    ("0 0 12 * * ? 1969", "before 1970: never fires"),
    ("0 0 12 * * ? 2200", "after 2199: never fires"),
    ("/5 0-59/x 12 * * ?", "Quartz reads 0-59 (step text ignored)"),
    ("0 0 12 * JANX ?", "Quartz reads JAN"),
    ("0 0 12 ? * 1-3#2X", "Quartz reads 1-3 and ignores #2X"),
    ("0 0 12 ** * ?", "Quartz reads *"),
    ("0 0 12 *-5 * ?", "Quartz reads *"),
    ("0 0 12 1 1 ? 2026 /", "Quartz ignores fields after the year"),
)


def invalid_lists() -> dict[str, Any]:
    candidates = list(dict.fromkeys(INVALID_CANDIDATES))
    errors = quartz_oracle.validate(candidates)
    rejected = [
        {"expr": e, "quartz": err} for e, err in zip(candidates, errors, strict=True) if err
    ]
    accepted = [e for e, err in zip(candidates, errors, strict=True) if err is None]
    if accepted:
        print(f"note: Quartz accepts {accepted}; not listed as invalid", file=sys.stderr)
    refused_exprs = [e for e, _ in REFUSED_BY_BRIDGE]
    quartz_says = quartz_oracle.validate(refused_exprs)
    refused = []
    for (expr, note), err in zip(REFUSED_BY_BRIDGE, quartz_says, strict=True):
        if err is None:
            refused.append({"expr": expr, "note": note})
        else:
            rejected.append({"expr": expr, "quartz": err})
    return {
        "quartz": "2.3.2 (Debian libquartz2-java)",
        "rejected_by_quartz": rejected,
        "refused_by_bridge": refused,
    }


def write_vectors(records: list[dict[str, Any]]) -> None:
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for rec in records:
            gz.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
    VECTORS.write_bytes(buf.getvalue())


def main(argv: list[str]) -> int:
    reason = quartz_oracle.unavailable_reason()
    if reason:
        print(f"cannot run Quartz: {reason}", file=sys.stderr)
        return 2
    rng = random.Random(SEED)
    cases = list(valid_cases(rng)) + list(trigger_cases(rng))
    answers = quartz_oracle.run(cases)
    records = [record(c, a) for c, a in zip(cases, answers, strict=True)]
    invalid = invalid_lists()
    zones = sorted({c.tz for c in cases})
    print(
        f"{len(records)} cases ({sum(c.mode == 'T' for c in cases)} with trigger bounds), "
        f"{len({c.expr for c in cases})} expressions, {len(zones)} zones; "
        f"{len(invalid['rejected_by_quartz'])} rejected by Quartz, "
        f"{len(invalid['refused_by_bridge'])} refused by the bridge"
    )
    if "--check" in argv:
        return 0
    write_vectors(records)
    INVALID.write_text(json.dumps(invalid, indent=1) + "\n")
    print(f"wrote {VECTORS} ({VECTORS.stat().st_size} bytes) and {INVALID}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
