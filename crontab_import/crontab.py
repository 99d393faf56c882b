"""Crontab files (user crontabs, /etc/crontab, /etc/cron.d/*) -> bridge jobs. Pure: text in.

``parse_crontab(data, file=..., timezone=..., kind=..., user=..., dialect=...)`` reads one file
the way Debian cron 3.0pl1 does and returns a :class:`ParseResult`: one :class:`ImportItem` per
job line (and per commented-out job line), every problem an :class:`ImportError_` naming
``file:line``. It never raises for bad file content; bad *options* (unknown zone or dialect)
raise :class:`bridge.core.errors.InputError`. ``parse_file(path, ...)`` is the thin I/O wrapper.

Every rule is written down in ``docs/debian-cron-rules.md`` and was checked against Debian's
``crontab`` command and ``cron`` daemon (``tests/importers/test_crontab_debian_oracle.py`` keeps
checking the acceptance rules). The pieces live in :mod:`crontab_import.cron`: ``lines``,
``kinds``, ``env``, ``fields``, ``command``, ``jobs``, ``directives``, ``items``, ``whole_file``;
cronie's differences (dialect ``cronie``: ``-`` lines, ``RANDOM_DELAY``, ``~`` fields, a bad
line skipping only itself, cron.d names) in :mod:`crontab_import.cronie`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bridge.core.collector import paused_collector
from bridge.core.errors import InputError
from bridge.core.spec import Dialect, SourceKind
from crontab_import.cron.directives import comment_line
from crontab_import.cron.env import EnvSetting, env_line, parse_env_line
from crontab_import.cron.items import add_error_item, claim_id
from crontab_import.cron.jobs import job_line, looks_like_job, parse_job
from crontab_import.cron.kinds import file_options
from crontab_import.cron.lines import BLANKS, Line, is_blank, is_comment, split_lines
from crontab_import.cron.state import ParseState
from crontab_import.cron.whole_file import finish_file
from crontab_import.filetrust import FileTrust, read_source
from crontab_import.model import DEFAULT_MAX_BYTES, ItemStatus, ParseResult

DEFAULT_MAX_LINES = 10000  # import limit per file (--max-lines), checked before parsing


def parse_file(
    path: str | Path,
    *,
    timezone: str,
    kind: SourceKind | str | None = None,
    user: str | None = None,
    dialect: Dialect | str = Dialect.VIXIE,
    check_owner: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
) -> ParseResult:
    """Read ``path`` (bytes) and parse it; the only I/O of this module.

    Bounded: a file larger than ``max_bytes`` or with more than ``max_lines`` lines is refused
    (:class:`bridge.core.errors.InputError`, exit 2) before any line is parsed, having read at most
    ``max_bytes + 1`` bytes. ``check_owner``: apply cron's file-trust rules
    (:mod:`crontab_import.filetrust`); a file cron refuses keeps its jobs listed as INACTIVE
    with cron's reason, and they are never imported."""
    opts = file_options(str(path), timezone, kind, user, dialect)
    data, trust = read_source(
        str(path),
        kind=opts.kind,
        user=opts.user,
        check_owner=check_owner,
        max_bytes=max_bytes,
        cronie=opts.dialect is Dialect.CRONIE,
    )
    check_limits(data, str(path), max_bytes=max_bytes, max_lines=max_lines)
    result = parse_crontab(
        data, file=str(path), timezone=timezone, kind=kind, user=user, dialect=dialect
    )
    return with_trust(result, trust)


def check_limits(data: bytes, file: str, *, max_bytes: int, max_lines: int) -> None:
    """Refuse, before parsing, a file over the import limits (an InputError at file:line)."""
    if len(data) > max_bytes:
        raise InputError(
            f"file larger than {max_bytes} bytes: refused before parsing",
            file=file,
            hint="raise --max-bytes if this is intended",
        )
    if data.count(b"\n", 0, len(data)) >= max_lines:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if lines > max_lines:
            raise InputError(
                f"more than {max_lines} lines ({lines}): refused before parsing",
                file=file,
                line=max_lines + 1,
                hint="raise --max-lines if this is intended",
            )


def with_trust(result: ParseResult, trust: FileTrust) -> ParseResult:
    """Mark every job of a file cron refuses INACTIVE with cron's reason (never imported)."""
    if trust.refused is None:
        return replace(result, trust=trust)
    reason = trust.reason
    items = tuple(
        replace(
            i,
            status=ItemStatus.INACTIVE if i.status is ItemStatus.OK else i.status,
            reason=reason if i.status is ItemStatus.OK else i.reason,
            details={**i.details, "refused_by_cron": trust.refused},
        )
        for i in result.items
    )
    return replace(
        result, items=items, trust=trust, notes=(*result.notes, f"{result.file}: {reason}")
    )


def parse_crontab(
    data: str | bytes,
    *,
    file: str,
    timezone: str,
    kind: SourceKind | str | None = None,
    user: str | None = None,
    dialect: Dialect | str = Dialect.VIXIE,
    host: str | None = None,
) -> ParseResult:
    """Parse one crontab file's content (see the module docstring for every rule).
    ``host``: the host the file lives on (:mod:`bridge.core.hosts`), set on every item's source
    and job; ids stay the host's own (:func:`crontab_import.inventory.qualify_results`)."""
    opts = replace(file_options(file, timezone, kind, user, dialect), host=host)
    state = ParseState(opts)
    with paused_collector():  # see bridge.core.collector
        lines = list(split_lines(data))
        for line in lines:
            _parse_line(state, line)
        finish_file(state, lines)
    items = tuple(sorted(state.items, key=lambda i: i.source.line or 0))
    return ParseResult(file=file, items=items, errors=tuple(state.errors), notes=tuple(state.notes))


def _parse_line(state: ParseState, line: Line) -> None:
    text = line.text
    if is_blank(text) and line.problem is None:
        state.end_directive_run()
    elif is_comment(text):
        comment_line(state, line)
    elif line.problem is not None:
        _problem_line(state, line)
    else:
        env = parse_env_line(text)
        if isinstance(env, EnvSetting):
            env_line(state, line, env)
        elif env.reached_equals and isinstance(parse_job(state, text), str):
            state.end_directive_run()
            state.error(
                line.number,
                f"bad environment line in '{text.strip(BLANKS)}' ({env.reason})",
                debian_rejects=True,
            )
            add_error_item(state, line, None, f"bad environment line ({env.reason})")
        else:
            job_line(state, line)
    if not line.terminated and not is_blank(text) and not is_comment(text):
        _unterminated(state, line)


def _unterminated(state: ParseState, line: Line) -> None:
    if state.opts.dialect is not Dialect.CRONIE:
        state.error(
            line.number,
            "missing newline at end of file (cron ignores the whole file)",
            debian_rejects=True,
        )
        return
    message = "missing newline at end of file (cronie skips this last line)"
    state.error(line.number, message, debian_rejects=True)
    state.items = [
        replace(i, status=ItemStatus.ERROR, job=None, reason=message)
        if i.source.line == line.number and i.status is ItemStatus.OK
        else i
        for i in state.items
    ]


def _problem_line(state: ParseState, line: Line) -> None:
    """A non-comment line with a NUL byte, invalid UTF-8 or a byte order mark."""
    problem = line.problem or ""
    state.error(line.number, problem, debian_rejects=not problem.startswith("invalid UTF-8"))
    if looks_like_job(state, line.text):
        job_id, _ = claim_id(state, line)
        add_error_item(state, line, job_id, problem)
    else:
        state.end_directive_run()
        add_error_item(state, line, None, problem)
