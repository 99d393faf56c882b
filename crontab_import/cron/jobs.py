"""Job lines: schedule, user (system and cron.d files) and command, with Debian's limits.

See docs/debian-cron-rules.md ("Lines"). A line cron accepts that never fires, ``@reboot`` and
an empty command are UNSUPPORTED items; a line cron rejects is an ERROR item.
"""

from __future__ import annotations

import re

from bridge.core.errors import BridgeError
from bridge.core.spec import Dialect, SourceKind
from crontab_import import cronie
from crontab_import.cron.command import split_command
from crontab_import.cron.env import EnvSetting, parse_env_line
from crontab_import.cron.fields import never_fires_cached, schedule_part, take_token
from crontab_import.cron.items import JobParts, add_error_item, add_item, build_job, claim_id
from crontab_import.cron.kinds import SYSTEM_KINDS
from crontab_import.cron.lines import BLANKS, C_SPACE, Line, is_blank
from crontab_import.cron.state import ParseState
from crontab_import.model import ItemStatus

MAX_COMMAND_BYTES = 998  # Debian: a 999-byte command is "command too long"
USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
REBOOT_REASON = "@reboot has no schedule; it stays in the legacy crontab"
NEVER_FIRES_REASON = "never fires under cron"
EMPTY_COMMAND_REASON = "empty command: cron accepts the line but runs nothing"


def parse_job(state: ParseState, text: str) -> JobParts | str:
    """Split a job line into schedule, user and command; a string is the error message."""
    body = text.lstrip(BLANKS)
    if state.opts.dialect is Dialect.CRONIE and body.startswith("-"):
        if state.opts.kind is SourceKind.USER_CRONTAB and state.opts.user != "root":
            return cronie.DASH_REASON
        body = body[1:]  # cronie: "do not log this run to syslog"
    schedule = schedule_part(body)
    if isinstance(schedule, str):
        return schedule
    expression, rest = schedule
    return _user_and_command(state, text, expression, rest)


def _user_and_command(
    state: ParseState, text: str, expression: str | None, rest: str
) -> JobParts | str:
    user = state.opts.user
    if state.opts.kind in SYSTEM_KINDS:
        user, rest, blank = take_token(rest)
        if user and not USER_RE.match(user):
            return (
                f"unknown user field in '{user}' (expected a user name: five time fields, "
                "user, command)"
            )
        if not user or not blank:
            return f"missing command in '{text.strip(BLANKS)}'"
    elif rest.startswith("*"):
        return (
            f"bad command in '{rest}' (cron refuses a command starting with '*': a sixth "
            "time field?)"
        )
    if len(rest.encode("utf-8", errors="surrogatepass")) > MAX_COMMAND_BYTES:
        size = len(rest.encode("utf-8", errors="surrogatepass"))
        return (
            f"command too long ({size} bytes; Debian cron accepts at most "
            f"{MAX_COMMAND_BYTES}) in '{rest[:40]}...'"
        )
    return JobParts(expression, user, rest)


def _cronie_random_field(state: ParseState, text: str) -> str | None:
    """cronie only: the user of a job line with a '~' time field (None when it has none)."""
    body = text.lstrip(BLANKS).removeprefix("-")
    tokens = []
    for _ in range(5):
        token, body, _blank = take_token(body)
        tokens.append(token)
    if body.startswith("@") or not cronie.has_random_field(tokens):
        return None
    return take_token(body)[0] if state.opts.kind in SYSTEM_KINDS else (state.opts.user or "")


def job_line(state: ParseState, line: Line) -> None:
    job_id, description = claim_id(state, line)
    if state.opts.dialect is Dialect.CRONIE:
        random_user = _cronie_random_field(state, line.text)
        if random_user is not None:
            add_item(state, line, ItemStatus.UNSUPPORTED, job_id, None,
                     cronie.RANDOM_FIELD_REASON, random_user or None)
            return
    parsed = parse_job(state, line.text)
    if isinstance(parsed, str):
        state.error(line.number, parsed, debian_rejects=True)
        add_error_item(state, line, job_id, parsed)
    elif parsed.expression is None:
        add_item(state, line, ItemStatus.UNSUPPORTED, job_id, None, REBOOT_REASON, parsed.user)
    elif not split_command(parsed.command)[0].strip(C_SPACE):
        add_item(
            state, line, ItemStatus.UNSUPPORTED, job_id, None, EMPTY_COMMAND_REASON, parsed.user
        )
    elif state.bad_zone is not None:
        zone, where = state.bad_zone
        add_error_item(
            state,
            line,
            job_id,
            f"CRON_TZ '{zone}' at line {where} is not a known timezone",
            user=parsed.user,
        )
    elif state.random_delay is not None:
        reason = cronie.random_delay_reason(*state.random_delay)
        add_item(state, line, ItemStatus.UNSUPPORTED, job_id, None, reason, parsed.user)
    else:
        _schedulable_job(state, line, job_id, parsed, parsed.expression, description)


def _schedulable_job(
    state: ParseState,
    line: Line,
    job_id: str,
    parsed: JobParts,
    expression: str,
    description: str | None,
) -> None:
    try:
        job = build_job(state, line, job_id, parsed, expression, description)
        never = never_fires_cached(job.schedule)
    except BridgeError as e:
        state.error(line.number, e.message, debian_rejects=False)
        add_error_item(state, line, job_id, e.message, user=parsed.user)
        return
    status = ItemStatus.UNSUPPORTED if never else ItemStatus.OK
    add_item(state, line, status, job_id, job, NEVER_FIRES_REASON if never else None, parsed.user)


def looks_like_job(state: ParseState, text: str) -> bool:
    """Not blank, not an environment setting, not a broken one (cron tries a job line last)."""
    env = parse_env_line(text)
    if isinstance(env, EnvSetting) or is_blank(text):
        return False
    return not env.reached_equals or not isinstance(parse_job(state, text), str)
