"""Quartz 2.3.2 ``CronExpression`` syntax: parsing and validating an expression (pure).

``parse(expression)`` returns a :class:`QuartzCron` (the sorted candidates of each field and a
:class:`DayRule` for the day); ``validate`` only checks. ``bridge.core.schedules.quartz`` evaluates
a parsed expression into fire times.

Syntax (what Quartz accepts, checked against the real jar; see tests/vectors/quartz_invalid.json)
----------------------------------------------------------------------------------------------
Six or seven fields separated by spaces or tabs: seconds minutes hours day-of-month month
day-of-week [year]; case-insensitive.  Values: seconds/minutes 0-59, hours 0-23, day-of-month
1-31, month 1-12 or JAN-DEC, day-of-week 1-7 (1 = SUN) or SUN-SAT, year 1970-2199.  Items:
``*``, ``a``, ``a-b``, ``a/n``, ``a-b/n``, ``*/n`` (and ``/n``, Quartz's spelling of ``*/n``),
comma lists.  ``*/n`` starts at the field minimum, ``a/n`` at ``a``; ``*/n`` and ``a/n`` refuse a
step larger than the field (``Increment > 60``), a range step is not checked (``0-59/90`` is
``0``).  A range whose end is below its start wraps (``22-2``, ``NOV-FEB``, ``FRI-MON``; not in
the year field).  A step after a NAME is ignored (``MON-FRI/2`` is every weekday, ``JAN/3`` is
January) while ``2-6/2`` steps.  Exactly one of day-of-month and day-of-week is ``?``.
Day-of-month also takes ``L`` (last day), ``L-n`` (n <= 30), ``nW`` (weekday nearest the n-th,
never leaving the month: ``1W`` on a Saturday is Monday the 3rd; ``31W`` in a 30-day month is
the 30th only when that is a Friday, otherwise nothing), ``LW``, ``L-nW``.  Day-of-week also
takes ``L`` alone (= 7, Saturday), ``xL`` (last x-day of the month), ``x#n`` (n-th x-day, no fire
in a month without one).

Quartz also *accepts* text it then misreads: ``MONDAY`` is read as ``MON``, ``5X`` as ``5``,
``1-5W`` as ``1-5``, ``?X`` as ``?``, ``99`` in any field as ``*`` (99 is its internal marker
for ``*``), ``L`` in the seconds field as nothing, ``,`` as an empty field, ``2,6#3`` as "third
Monday", ``15W,20`` as ``15W``; it ignores fields after the year, takes ``*/0`` as ``*`` and
``5/0`` as ``5``, ``9#2`` and ``0W`` as days that do not exist, and loops forever on
``L-28W``..``L-30W``.  The bridge refuses all of these with a ScheduleError saying why, rather
than guess what the author meant (tests/vectors/quartz_invalid.json lists them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.core.errors import ScheduleError

__all__ = [
    "DAYS",
    "HORIZON_YEAR",
    "MONTHS",
    "YEAR_MAX",
    "YEAR_MIN",
    "DayRule",
    "QuartzCron",
    "parse",
    "validate",
]

YEAR_MIN = 1970
YEAR_MAX = 2199  # the year field accepts 1970-2199 (Quartz's documented range)
HORIZON_YEAR = 2126  # Quartz searches up to its JVM's start year + 100: 2126 for 2026
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_ALL_YEARS = tuple(range(YEAR_MIN, HORIZON_YEAR + 1))


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    wrap: int  # Quartz's modulus for ranges that wrap (end < start); 0 = no wrapping
    max_step: int  # Quartz's increment check for '*/n' and 'a/n'; 0 = unchecked
    names: tuple[str, ...] = ()
    open_high: int = 0  # where '*' and 'a/n' stop, when not at ``high``

    @property
    def stop(self) -> int:
        return self.open_high or self.high


SECONDS = _Field("seconds", 0, 59, 60, 59)
MINUTES = _Field("minutes", 0, 59, 60, 59)
HOURS = _Field("hours", 0, 23, 24, 23)
DOM = _Field("day-of-month", 1, 31, 31, 31)
MONTH = _Field("month", 1, 12, 12, 12, MONTHS)
DOW = _Field("day-of-week", 1, 7, 7, 7, DAYS)
YEAR = _Field("year", YEAR_MIN, YEAR_MAX, 0, 0, open_high=HORIZON_YEAR)

_NUM_ITEM = re.compile(r"(\*|\d+)?(?:-(\d+))?(?:/(\d+))?")
_NAME_ITEM = re.compile(r"([A-Z]{3})(?:-([A-Z]{3}))?(?:/(\d+))?")
_LAST_DOM = re.compile(r"L(?:-(\d+))?(W?)")
_NEAREST = re.compile(r"(\d+)W")
_LAST_DOW = re.compile(r"(\d+|[A-Z]{3})L")
_NTH_DOW = re.compile(r"(\d+|[A-Z]{3})#(\d+)")


@dataclass(frozen=True)
class DayRule:
    """How a day is chosen. ``kind`` is one of:

    ``dom`` (``values`` = days of month), ``last`` (``offset`` from the last day),
    ``nearest`` (weekday nearest day ``value``), ``last_weekday`` (weekday nearest the last day
    minus ``offset``), ``dow`` (``values`` = days of week, 1 = Sunday), ``last_dow``
    (last ``value``-day), ``nth_dow`` (``nth`` ``value``-day).
    """

    kind: str
    values: tuple[int, ...] = ()
    value: int = 0
    offset: int = 0
    nth: int = 0


@dataclass(frozen=True)
class QuartzCron:
    """A parsed expression: sorted candidate tuples per field plus the day rule."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day: DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]
    text: str


def _int(text: str, fd: _Field, field_text: str) -> int:
    if len(text) > 9:
        raise ScheduleError(f"{fd.name} value '{text}' is too large in '{field_text}'")
    return int(text)


def _value(text: str, fd: _Field, field_text: str) -> int:
    if text.isdigit():
        value = _int(text, fd, field_text)
    elif text in fd.names:
        value = fd.names.index(text) + 1
    else:
        raise ScheduleError(f"bad {fd.name} value '{text}' in '{field_text}'")
    if not fd.low <= value <= fd.high:
        raise ScheduleError(
            f"{fd.name} value {value} is out of range {fd.low}-{fd.high} in '{field_text}'"
        )
    return value


def _expand(lo: int, hi: int, step: int, fd: _Field, field_text: str) -> set[int]:
    """Quartz's range filling: a range ending below its start wraps around the field."""
    if step < 1:
        raise ScheduleError(
            f"step 0 in {fd.name} '{field_text}' (Quartz reads it as a single value or as '*';"
            " the bridge refuses it)"
        )
    if hi < lo:
        if not fd.wrap:
            raise ScheduleError(
                f"{fd.name} range '{lo}-{hi}' ends before it starts in '{field_text}'"
            )
        hi += fd.wrap
    out = set()
    for v in range(lo, hi + 1, step):
        if v > fd.high and fd.wrap:
            v %= fd.wrap
            if v == 0 and fd.low == 1:  # 1-based fields keep their maximum: 12 % 12 is DEC
                v = fd.wrap
        out.add(v)
    return out


def _check_step(step: int, fd: _Field, field_text: str) -> None:
    if fd.max_step and step > fd.max_step:
        raise ScheduleError(
            f"step {step} is larger than {fd.max_step} in {fd.name} '{field_text}'"
            f" (Quartz: Increment > {fd.max_step + 1})"
        )


def _numeric_item(item: str, fd: _Field, field_text: str) -> set[int] | None:
    m = _NUM_ITEM.fullmatch(item)
    if not m or not item:
        return None
    first, end, step_text = m.groups()
    step = _int(step_text, fd, field_text) if step_text is not None else None
    if first is None or first == "*":
        if end is not None or (first is None and step is None):
            return None
        if step is None:
            return set(range(fd.low, fd.stop + 1))
        _check_step(step, fd, field_text)
        return _expand(fd.low, fd.stop, step, fd, field_text)
    lo = _value(first, fd, field_text)
    if end is None:
        if step is None:
            return {lo}
        _check_step(step, fd, field_text)
        if lo > fd.stop:
            raise ScheduleError(
                f"{fd.name} '{item}' starts after {fd.stop}, the last year Quartz searches"
                f" (Quartz: Start year must be less than stop year) in '{field_text}'"
            )
        return _expand(lo, fd.stop, step, fd, field_text)
    return _expand(lo, _value(end, fd, field_text), 1 if step is None else step, fd, field_text)


def _name_item(item: str, fd: _Field, field_text: str) -> set[int] | None:
    m = _NAME_ITEM.fullmatch(item) if fd.names else None
    if not m:
        return None
    lo = _value(m.group(1), fd, field_text)
    if m.group(2) is None:
        return {lo}
    return _expand(lo, _value(m.group(2), fd, field_text), 1, fd, field_text)


def _plain_field(text: str, fd: _Field) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"empty value in {fd.name} '{text}'")
        if "?" in item:
            raise ScheduleError(
                f"'?' is only for day-of-month or day-of-week, not {fd.name} '{text}'"
            )
        got = _numeric_item(item, fd, text)
        if got is None:
            got = _name_item(item, fd, text)
        if got is None:
            raise ScheduleError(f"cannot read '{item}' in {fd.name} '{text}'")
        values |= got
    return tuple(sorted(values))


def _single_special(text: str, fd: _Field, what: str) -> None:
    if "," in text:
        raise ScheduleError(f"'{what}' cannot be combined with other values in {fd.name} '{text}'")


def _dom_rule(text: str) -> DayRule:
    last = _LAST_DOM.fullmatch(text)
    if "L" in text:
        _single_special(text, DOM, "L")
        if not last:
            raise ScheduleError(f"cannot read day-of-month '{text}'")
        offset = _int(last.group(1), DOM, text) if last.group(1) else 0
        if offset > 30:
            raise ScheduleError(f"offset from the last day must be <= 30 in day-of-month '{text}'")
        if last.group(2):
            if offset > 27:
                raise ScheduleError(
                    f"'L-{offset}W' in day-of-month '{text}' falls before February's first day;"
                    " Quartz loops forever on it"
                )
            return DayRule("last_weekday", offset=offset)
        return DayRule("last", offset=offset)
    if "W" in text:
        _single_special(text, DOM, "W")
        nearest = _NEAREST.fullmatch(text)
        if not nearest:
            raise ScheduleError(
                f"cannot read day-of-month '{text}' ('W' follows a single day: '15W')"
            )
        return DayRule("nearest", value=_value(nearest.group(1), DOM, text))
    return DayRule("dom", values=_plain_field(text, DOM))


def _dow_rule(text: str) -> DayRule:
    if text == "L":
        return DayRule("dow", values=(7,))
    if "#" in text:
        if text.count("#") > 1:
            raise ScheduleError(f"only one '#' is supported in day-of-week '{text}'")
        _single_special(text, DOW, "#")
        nth = _NTH_DOW.fullmatch(text)
        if not nth:
            raise ScheduleError(f"cannot read day-of-week '{text}' ('#' reads 'day#n': '6#3')")
        n = _int(nth.group(2), DOW, text)
        if not 1 <= n <= 5:
            raise ScheduleError(f"a number between 1 and 5 must follow '#' in day-of-week '{text}'")
        return DayRule("nth_dow", value=_value(nth.group(1), DOW, text), nth=n)
    if "L" in text:
        _single_special(text, DOW, "L")
        last = _LAST_DOW.fullmatch(text)
        if not last:
            raise ScheduleError(f"cannot read day-of-week '{text}' ('L' reads 'L' or 'dayL': '6L')")
        return DayRule("last_dow", value=_value(last.group(1), DOW, text))
    return DayRule("dow", values=_plain_field(text, DOW))


def _day_rule(dom: str, dow: str) -> DayRule:
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(
            f"exactly one of day-of-month and day-of-week must be '?' (got '{dom}' and '{dow}')"
        )
    for text, name in ((dom, "day-of-month"), (dow, "day-of-week")):
        if "?" in text and text != "?":
            raise ScheduleError(f"'?' must stand alone in {name} '{text}'")
    return _dow_rule(dow) if dom == "?" else _dom_rule(dom)


def parse(expression: str) -> QuartzCron:
    """Parse a Quartz cron expression; ScheduleError for anything Quartz rejects or misreads."""
    bad = [c for c in expression if not (" " <= c <= "~" or c == "\t")]
    if bad:
        raise ScheduleError(f"unexpected character {bad[0]!r} in {expression.strip()!r}")
    parts = expression.upper().replace("\t", " ").split()
    if not 6 <= len(parts) <= 7:
        raise ScheduleError(
            f"expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week"
            f" [year]), got {len(parts)} in '{expression.strip()}'"
        )
    years = _plain_field(parts[6], YEAR) if len(parts) == 7 else _ALL_YEARS
    return QuartzCron(
        seconds=_plain_field(parts[0], SECONDS),
        minutes=_plain_field(parts[1], MINUTES),
        hours=_plain_field(parts[2], HOURS),
        day=_day_rule(parts[3], parts[5]),
        months=_plain_field(parts[4], MONTH),
        years=years,
        text=" ".join(parts),
    )


def validate(expression: str) -> None:
    """Raise ScheduleError when ``expression`` is not a Quartz cron expression the bridge runs."""
    parse(expression)
