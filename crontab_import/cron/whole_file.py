"""Rules about a crontab file as a whole: cron ignores every job of a file it cannot read.

See docs/debian-cron-rules.md ("The whole file", "Job ids").
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePosixPath

from bridge.core.spec import Dialect, SourceKind
from crontab_import import cronie
from crontab_import.cron.lines import Line
from crontab_import.cron.state import ParseState
from crontab_import.model import ItemStatus

MAX_USER_CRONTAB_LINES = 10000  # crontab(1): "maximum number of lines is 10000"
CRON_D_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
NAME_RULE = "names may only contain letters, digits, '_' and '-'"


def finish_file(state: ParseState, lines: list[Line]) -> None:
    state.end_directive_run()
    if any(line.text.endswith("\r") for line in lines):
        state.note(
            None,
            "CRLF line endings: cron keeps each '\\r' (commands end with it, a line "
            "holding only '\\r' is invalid)",
        )
    if state.opts.kind is SourceKind.USER_CRONTAB and len(lines) > MAX_USER_CRONTAB_LINES:
        state.error(
            MAX_USER_CRONTAB_LINES + 1,
            f"crontab is too long: {len(lines)} lines "
            f"(crontab accepts at most {MAX_USER_CRONTAB_LINES})",
            debian_rejects=True,
        )
    _check_duplicate_ids(state)
    reason = _inactive_reason(state)
    if reason is not None:
        state.items = [
            replace(i, status=ItemStatus.INACTIVE, reason=reason)
            if i.status is ItemStatus.OK
            else i
            for i in state.items
        ]


def _inactive_reason(state: ParseState) -> str | None:
    name = PurePosixPath(state.opts.file).name
    if state.opts.dialect is Dialect.CRONIE:  # one bad line skips only itself (cronie.py)
        if state.opts.kind is SourceKind.CRON_D and cronie.skips_name(name):
            reason = (f"file name '{name}' is ignored by cronie (it skips names starting with "
                      "'.' or '#', or ending with '~', '.rpmsave', '.rpmorig', '.rpmnew')")
            state.note(None, reason)
            return reason
        return None
    if state.opts.kind is SourceKind.CRON_D and not CRON_D_NAME_RE.match(name):
        reason = f"file name '{name}' is ignored by Debian cron ({NAME_RULE})"
        state.note(None, reason)
        return reason
    if state.invalid_line is not None:
        state.note(None, f"cron ignores this whole file: line {state.invalid_line} is invalid")
        return (
            f"not running today: cron ignores this file because line {state.invalid_line} "
            "is invalid"
        )
    return None


def _check_duplicate_ids(state: ParseState) -> None:
    """A second use of an id is an error at the override that caused it."""
    first: dict[str, int] = {}
    for n, item in enumerate(state.items):
        if item.id is None:
            continue
        m = first.setdefault(item.id, n)
        if m == n:
            continue
        overrides = state.override_lines
        later_is_override = _line_of(state, n) in overrides
        bad, other = (m, n) if _line_of(state, m) in overrides and not later_is_override else (n, m)
        bad_line = _line_of(state, bad)
        message = f"duplicate job id '{item.id}' (line {_line_of(state, other)} has the same id)"
        state.error(state.override_lines.get(bad_line, bad_line), message, debian_rejects=False)
        state.items[bad] = replace(
            state.items[bad], status=ItemStatus.ERROR, job=None, reason=message
        )


def _line_of(state: ParseState, index: int) -> int:
    return state.items[index].source.line or 0
