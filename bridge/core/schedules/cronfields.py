"""Debian cron's five time fields, parsed exactly as Debian cron 3.0pl1 parses them (pure).

Rules (checked against Debian's ``crontab`` and ``cron``; see docs/debian-cron-rules.md):
minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or jan-dec, day-of-week 0-7 (0 and 7 are
Sunday) or sun-sat; names are three letters, case-insensitive; ``*``, ``a-b``, lists, steps on
``*`` and on ranges only (``5/15`` is rejected); ``L``, ``W``, ``#`` and ``?`` do not exist —
but Debian's scanner stops at the end of the last complete element and skips the rest of the
field, so ``5#2`` is accepted and means 5, ``*5`` means ``*``, ``1-2-3`` means ``1-2`` (the
skipped text is reported in :attr:`CronFields.warnings`). Numbers are read like C's ``atoi``
(ASCII digits only, 32-bit wrap-around).
A range whose start is past its end (``fri-mon``, ``50-10``) is accepted and matches nothing,
as in Debian; whether the whole schedule can still fire is the evaluator's question.

Each field also keeps whether its text starts with ``*``: Debian uses that for the day rule
(``*``-prefixed day field => both day fields must match, else either) and for DST (a job whose
minute and hour do not start with ``*`` is "fixed-time").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bridge.core.errors import ScheduleError

_FIELD_SEPARATOR = re.compile(r"[ \t]+")  # Debian separates fields with blanks and tabs only

MACROS: dict[str, str | None] = {
    "@reboot": None,
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class FieldDef:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_base: int = 0


FIELDS = (
    FieldDef("minute", 0, 59),
    FieldDef("hour", 0, 23),
    FieldDef("day-of-month", 1, 31),
    FieldDef("month", 1, 12, MONTH_NAMES, 1),
    FieldDef("day-of-week", 0, 7, DOW_NAMES, 0),
)


@dataclass(frozen=True)
class CronFields:
    """The parsed sets (day-of-week 0-6, Sunday = 0) and the star flags Debian keeps."""

    minute: frozenset[int]
    hour: frozenset[int]
    dom: frozenset[int]
    month: frozenset[int]
    dow: frozenset[int]
    minute_star: bool
    hour_star: bool
    dom_star: bool
    dow_star: bool
    text: tuple[str, str, str, str, str]
    ignored: tuple[tuple[str, str, str], ...] = ()  # (field, text, suffix Debian skips)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(
            f"Debian cron ignores '{rest}' at the end of {name} '{text}'"
            for name, text, rest in self.ignored
        )

    @property
    def fixed_time(self) -> bool:
        """Debian's DST notion: neither minute nor hour starts with ``*``."""
        return not (self.minute_star or self.hour_star)

    @property
    def expression(self) -> str:
        return " ".join(self.text)


def expand_macro(token: str) -> str | None:
    """``@daily`` -> ``0 0 * * *``; ``@reboot`` -> None. Case-sensitive, as Debian's strcmp."""
    if token not in MACROS:
        raise ScheduleError(f"unknown special schedule in '{token}'")
    return MACROS[token]


MAX_TOKEN = 1000  # Debian's MAX_TEMPSTR: a name or number of 1000+ characters is rejected


def _atoi(digits: str) -> int:
    """C's ``atoi`` on glibc/x86-64: strtol (saturating at LONG_MAX) cast to a 32-bit int."""
    value = min(int(digits), 2**63 - 1) & 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def _scan_number(text: str, pos: int, fd: FieldDef, names: bool) -> tuple[int, int]:
    """Debian's get_number: a run of ASCII letters/digits that is a name or all digits."""
    end = pos
    while end < len(text) and text[end].isascii() and text[end].isalnum():
        end += 1
    token = text[pos:end]
    if not token:
        if pos < len(text) and text[pos] not in ",-/":
            raise ScheduleError(f"bad {fd.name} value '{text[pos]}' in '{text}'")
        raise ScheduleError(f"empty value in {fd.name} '{text}'")
    if len(token) >= MAX_TOKEN:
        raise ScheduleError(f"{fd.name} value too long in '{text}'")
    if names and fd.names and token.lower() in fd.names:
        return fd.names.index(token.lower()) + fd.names_base, end
    if token.isdigit():
        return _atoi(token), end
    raise ScheduleError(f"bad {fd.name} value '{token}' in '{text}'")


def _check(value: int, fd: FieldDef, text: str) -> int:
    if not fd.low <= value <= fd.high:
        raise ScheduleError(f"{fd.name} {value} out of range {fd.low}-{fd.high} in '{text}'")
    return value


def _scan_step(text: str, pos: int, fd: FieldDef) -> tuple[int, int]:
    if pos < len(text) and text[pos] == "/":
        try:
            step, pos = _scan_number(text, pos + 1, FieldDef(fd.name, 0, 0), names=False)
        except ScheduleError as e:
            raise ScheduleError(f"bad step in {fd.name} '{text}'") from e
        if step <= 0:
            raise ScheduleError(f"step {step} in {fd.name} '{text}'")
        return step, pos
    return 1, pos


def _scan_range(text: str, pos: int, fd: FieldDef, values: set[int]) -> int:
    """Debian's get_range: ``*`` | n | n-m, then an optional /step; returns the next index."""
    if text[pos : pos + 1] == "*":
        lo, hi, pos = fd.low, fd.high, pos + 1
    else:
        lo, pos = _scan_number(text, pos, fd, names=True)
        if text[pos : pos + 1] != "-":
            if text[pos : pos + 1] == "/":
                raise ScheduleError(
                    f"step on a single value in {fd.name} '{text}'"
                    " (Debian cron accepts steps on '*' and ranges only)"
                )
            values.add(_check(lo, fd, text))
            return pos
        hi, pos = _scan_number(text, pos + 1, fd, names=True)
        _check(lo, fd, text)
        _check(hi, fd, text)
    step, pos = _scan_step(text, pos, fd)
    values.update(range(lo, hi + 1, step))  # lo > hi: Debian accepts it and sets nothing
    return pos


def scan_field(text: str, fd: FieldDef) -> tuple[frozenset[int], str]:
    """Debian's get_list: ranges separated by ``,``. Whatever follows the last complete element
    up to the next blank is skipped by Debian (``5#2`` is 5, ``*5`` is ``*``): it is returned
    as the ignored suffix so the importer can say so."""
    values: set[int] = set()
    pos = _scan_range(text, 0, fd, values)
    while text[pos : pos + 1] == ",":
        pos = _scan_range(text, pos + 1, fd, values)
    if fd.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), text[pos:]


@lru_cache(maxsize=8192)
def parse_fields(expression: str) -> CronFields:
    """Parse a five-field expression (or an ``@`` macro other than ``@reboot``)."""
    text = expression.strip(" \t")
    if text.startswith("@"):
        expanded = expand_macro(text.split()[0])
        if expanded is None:
            raise ScheduleError("@reboot has no schedule: it cannot be migrated")
        text = expanded
    parts = _FIELD_SEPARATOR.split(text.strip(" \t"))
    if len(parts) != 5:
        raise ScheduleError(f"expected 5 time fields, got {len(parts)} in '{expression.strip()}'")
    scanned = [scan_field(p, fd) for p, fd in zip(parts, FIELDS, strict=True)]
    sets = [values for values, _ in scanned]
    ignored = tuple(
        (fd.name, p, rest) for (_, rest), p, fd in zip(scanned, parts, FIELDS, strict=True) if rest
    )
    return CronFields(
        minute=sets[0],
        hour=sets[1],
        dom=sets[2],
        month=sets[3],
        dow=sets[4],
        minute_star=parts[0].startswith("*"),
        hour_star=parts[1].startswith("*"),
        dom_star=parts[2].startswith("*"),
        dow_star=parts[4].startswith("*"),
        text=(parts[0], parts[1], parts[2], parts[3], parts[4]),
        ignored=ignored,
    )
