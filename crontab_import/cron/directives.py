"""Comment lines: ``# bridge:`` directives, ``# Name:`` descriptions, commented-out jobs.

See docs/debian-cron-rules.md ("Commented-out jobs and directives").
"""

from __future__ import annotations

import re

from bridge.core.errors import BridgeError
from bridge.core.spec import JOB_ID_RE, LostPolicy, Placement, RepairPolicy
from crontab_import.cron.command import split_command
from crontab_import.cron.items import add_item, build_job, claim_id
from crontab_import.cron.jobs import looks_like_job, parse_job
from crontab_import.cron.lines import BLANKS, C_SPACE, Line
from crontab_import.cron.state import ParseState
from crontab_import.model import ItemStatus

DIRECTIVE_RE = re.compile(r"^#[ \t]*bridge:[ \t]*(.*?)[ \t]*$")
NAME_RE = re.compile(r"^#[ \t]*name:[ \t]*(.*?)[ \t]*$", re.IGNORECASE)
ID_DIRECTIVE_RE = re.compile(r"^id=(\S*)$")
DIRECTIVE_KEYS = {"on-lost": ("on_lost", LostPolicy), "repair": ("repair", RepairPolicy),
                  "placement": ("placement", Placement)}
DIRECTIVE_SYNTAX = ("expected '# bridge: id=<job-id> on-lost=skip|rerun repair=auto|alert-only "
                    "placement=host|anywhere'")


def comment_line(state: ParseState, line: Line) -> None:
    text = line.text.strip(BLANKS)
    if line.problem is not None:
        if line.problem.startswith("byte order mark"):
            state.error(line.number, line.problem, debian_rejects=True)
        else:
            state.note(line.number, f"{line.problem} in a comment (ignored)")
        return
    directive = DIRECTIVE_RE.match(text)
    name = NAME_RE.match(text)
    if directive:
        _directive(state, line.number, directive.group(1))
    elif name and name.group(1):
        state.pending.name = name.group(1)
        state.pending.first_line = state.pending.first_line or line.number
    else:
        _maybe_disabled(state, line, text)


def _directive(state: ParseState, number: int, body: str) -> None:
    state.pending.first_line = state.pending.first_line or number
    for token in body.split() or [""]:
        key, eq, value = token.partition("=")
        if key == "id" and eq:
            _id_directive(state, number, token)
        elif key in DIRECTIVE_KEYS and eq:
            name, enum = DIRECTIVE_KEYS[key]
            try:
                state.pending.policies[name] = enum(value)
            except ValueError:
                allowed = "|".join(v.value for v in enum)
                state.error(
                    number,
                    f"bad {key} value in '{token}' (expected {key}={allowed})",
                    debian_rejects=False,
                )
        else:
            state.error(
                number,
                f"bad bridge directive in '{body}' ({DIRECTIVE_SYNTAX})",
                debian_rejects=False,
            )
            return


def _id_directive(state: ParseState, number: int, token: str) -> None:
    m = ID_DIRECTIVE_RE.match(token)
    assert m is not None
    if not JOB_ID_RE.match(m.group(1)):
        state.error(
            number,
            f"bad job id in '{m.group(1)}' (letters, digits, '.', '_', '@', "
            "'-'; at most 200; starting with a letter or digit)",
            debian_rejects=False,
        )
    else:
        state.pending.id, state.pending.id_line = m.group(1), number


_RETIRED = re.compile(r"^#\s*bridge-retired \d{4}-\d{2}-\d{2} ([^\s:]+): ")


def _maybe_disabled(state: ParseState, line: Line, text: str) -> None:
    """A comment that is a valid job line once its '#' is removed: a DISABLED item. A line
    `bridge legacy retire` commented out keeps the id its marker names."""
    retired = _RETIRED.match(text)
    inner = text[retired.end() :] if retired else text.lstrip("#").lstrip(BLANKS)
    if not looks_like_job(state, inner):
        return
    parsed = parse_job(state, inner)
    if isinstance(parsed, str) or not split_command(parsed.command)[0].strip(C_SPACE):
        return
    job_id, description = claim_id(state, line)
    if retired:
        job_id = retired.group(1)
    job = None
    if parsed.expression is not None and state.bad_zone is None:
        try:
            job = build_job(state, line, job_id, parsed, parsed.expression, description)
        except BridgeError:
            job = None  # listed without a spec: it is not imported anyway
    reason = "retired by cron-bridge (Celery owns it)" if retired else "commented out"
    add_item(state, line, ItemStatus.DISABLED, job_id, job, reason, parsed.user)
