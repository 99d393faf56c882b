"""The schedule part of a job line: five time fields or an ``@`` macro, checked and cached.

Fields are parsed by :func:`bridge.core.schedules.cronfields.parse_fields`, once per distinct
expression (it caches; big crontabs repeat a few schedules); whether a schedule ever fires is
cached here the same way.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bridge.core.errors import ScheduleError
from bridge.core.schedules.cron import never_fires
from bridge.core.schedules.cronfields import FIELDS, expand_macro, parse_fields
from bridge.core.spec import ScheduleSpec
from crontab_import.cron.lines import BLANKS

MAX_FIELD_CHARS = 999  # Debian: a 1000-character time field is rejected

_TOKEN_RE = re.compile(r"[^ \t]*")
_FIVE_TOKENS_RE = re.compile(r"([^ \t]*)[ \t]*" * len(FIELDS))  # take_token, five times


def take_token(text: str) -> tuple[str, str, bool]:
    """First blank-delimited token, the rest after the blanks, whether blanks followed it."""
    end = _TOKEN_RE.match(text).end()  # type: ignore[union-attr]  # always matches
    return text[:end], text[end:].lstrip(BLANKS), end < len(text)


def schedule_part(rest: str) -> tuple[str | None, str] | str:
    """The expression (None for @reboot) and what follows it, or the error message."""
    try:
        if rest.startswith("@"):
            token, rest, _ = take_token(rest)
            return expand_macro(token), rest
    except ScheduleError as e:
        return e.message
    m = _FIVE_TOKENS_RE.match(rest)
    assert m is not None  # every part of the pattern may be empty
    expression, problem = _five_fields(m.groups())
    return problem if expression is None else (expression, rest[m.end() :])


@lru_cache(maxsize=4096)
def _five_fields(tokens: tuple[str, ...]) -> tuple[str | None, str]:
    """(expression, "") or (None, the problem): once per distinct five tokens."""
    for token, fd in zip(tokens, FIELDS, strict=True):
        problem = _field_problem(token, fd.name)
        if problem:
            return None, problem
    try:
        return parse_fields(" ".join(tokens)).expression, ""
    except ScheduleError as e:
        return None, e.message


def _field_problem(token: str, name: str) -> str | None:
    if not token:
        return None  # parse_fields reports the missing field
    if len(token) > MAX_FIELD_CHARS:
        return f"{name} field longer than {MAX_FIELD_CHARS} characters in '{token[:20]}...'"
    if not token.isascii() or not token.isprintable():
        return f"bad {name} value in {token!r} (only ASCII letters, digits and ',-/*')"
    return None


@lru_cache(maxsize=4096)
def field_warnings(expression: str) -> tuple[str, ...]:
    """Text Debian skips inside the fields (``5#2`` runs as ``5``), to be said, not hidden."""
    return parse_fields(expression).warnings


@lru_cache(maxsize=4096)
def never_fires_cached(schedule: ScheduleSpec) -> bool:
    return never_fires(schedule)
