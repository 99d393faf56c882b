"""Debian cron's five time fields, parsed exactly as Debian cron 3.0pl1 parses them (pure).

Rules (checked against Debian's ``crontab`` and ``cron``; see ../shared/docs/semantics.md):
minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or jan-dec, day-of-week 0-7 (0 and 7 are
Sunday) or sun-sat; names are three letters, case-insensitive; ``*``, ``a-b``, lists, steps on
``*`` and on ranges only (``5/15`` is rejected); ``L``, ``W``, ``#`` and ``?`` do not exist.
A range whose start is past its end (``fri-mon``, ``50-10``) is accepted and matches nothing,
as in Debian; whether the whole schedule can still fire is the evaluator's question.

Each field also keeps whether its text starts with ``*``: Debian uses that for the day rule
(``*``-prefixed day field => both day fields must match, else either) and for DST (a job whose
minute and hour do not start with ``*`` is "fixed-time").
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import ScheduleError

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


def _number(token: str, fd: FieldDef, field_text: str) -> int:
    if token.isdigit():
        value = int(token)
    elif fd.names and token.isalpha() and token.lower() in fd.names:
        value = fd.names.index(token.lower()) + fd.names_base
    elif token == "":
        raise ScheduleError(f"empty value in {fd.name} '{field_text}'")
    else:
        raise ScheduleError(f"bad {fd.name} value '{token}' in '{field_text}'")
    if not fd.low <= value <= fd.high:
        raise ScheduleError(
            f"{fd.name} {value} out of range {fd.low}-{fd.high} in '{field_text}'"
        )
    return value


def _range(part: str, fd: FieldDef, field_text: str) -> range:
    body, slash, step_text = part.partition("/")
    if body == "*":
        lo, hi = fd.low, fd.high
    elif "-" in body:
        a, _, b = body.partition("-")
        lo, hi = _number(a, fd, field_text), _number(b, fd, field_text)
    else:
        lo = hi = _number(body, fd, field_text)
        if slash:
            raise ScheduleError(
                f"step on a single value '{part}' in {fd.name} '{field_text}'"
                " (Debian cron accepts steps on '*' and ranges only)"
            )
    step = 1
    if slash:
        if not step_text.isdigit():
            raise ScheduleError(f"bad step '{step_text}' in {fd.name} '{field_text}'")
        step = int(step_text)
        if step == 0:
            raise ScheduleError(f"step 0 in {fd.name} '{field_text}'")
    return range(lo, hi + 1, step)


def parse_field(text: str, fd: FieldDef) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        values.update(_range(part, fd, text))
    if fd.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def parse_fields(expression: str) -> CronFields:
    """Parse a five-field expression (or an ``@`` macro other than ``@reboot``)."""
    text = expression.strip()
    if text.startswith("@"):
        expanded = expand_macro(text.split()[0])
        if expanded is None:
            raise ScheduleError("@reboot has no schedule: it cannot be migrated")
        text = expanded
    parts = text.split()
    if len(parts) != 5:
        raise ScheduleError(f"expected 5 time fields, got {len(parts)} in '{expression.strip()}'")
    sets = [parse_field(p, fd) for p, fd in zip(parts, FIELDS, strict=True)]
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
    )
