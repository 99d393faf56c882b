"""Crontab files (user crontabs, /etc/crontab, /etc/cron.d/*) -> bridge jobs. Pure: text in.

``parse_crontab(data, file=..., timezone=..., kind=..., user=..., dialect=...)`` reads one file
the way Debian cron 3.0pl1 does and returns a :class:`ParseResult`: one :class:`ImportItem` per
job line (and per commented-out job line), every problem an :class:`ImportError_` naming
``file:line``. It never raises for bad file content; bad *options* (unknown zone or dialect)
raise :class:`bridge.core.errors.InputError`. ``parse_file(path, ...)`` is the thin I/O wrapper.
Every rule below was checked against Debian's ``crontab`` command and ``cron`` daemon
(``tests/importers/test_crontab_debian_oracle.py`` keeps checking the acceptance rules).

Kinds
  ``kind`` is explicit or inferred from the path: ``.../etc/crontab`` is the system crontab, a
  path with a ``cron.d`` directory component is a cron.d file, anything else a user crontab
  whose user is ``user`` or else the file's base name (spool files are named after the user).
  User crontab lines: five time fields + command. System and cron.d lines: five time fields +
  user + command. The user must look like a user name (``[A-Za-z_][A-Za-z0-9_.-]*``, at most
  32 characters, optional final ``$``); /etc/passwd is not consulted.

Lines (blanks are only space and tab, as in cron)
  * blank: only blanks. Comment: first non-blank character ``#``; there are no trailing
    comments (a later ``#`` belongs to the command or value).
  * environment ``NAME = value``, tried first, with Debian's rules: blanks around ``=``
    allowed; the name may be quoted; the value may be single- or double-quoted (no escapes)
    and nothing but blanks may follow the closing quote (``C="a"b`` is invalid); leading
    blanks of an unquoted value are dropped; trailing blanks are always dropped, even inside
    quotes (``A='  x y  '`` gives ``  x y``); an empty unquoted value (``D=``) is invalid,
    ``F=""`` is empty. No ``$VAR`` expansion. Only the first 998 bytes of the line are read
    (a longer value is silently cut; noted). A name the shell cannot carry (``A-B``, ``5``,
    empty) is left out of the jobs' environment (``/bin/sh`` drops it too; noted).
  * job, tried when the line is no environment setting (so ``@daily =`` is a job whose
    command is ``=``): ``@yearly @annually @monthly @weekly @daily @midnight @hourly``
    (case-sensitive; the schedule's expression is the expansion) or five fields parsed by
    :func:`bridge.core.schedules.cronfields.parse_fields`; ``@reboot`` is UNSUPPORTED ("@reboot has
    no schedule; it stays in the legacy crontab"). The command is the rest of the line after
    the blanks, its trailing blanks and a CRLF file's ``\\r`` included: at most 998 bytes
    (``command too long``) and, in a user crontab, not starting with ``*`` (Debian's guard
    against a sixth time field; in system files the user stands there). An empty command is
    accepted by cron, which runs nothing: UNSUPPORTED. In system files a user name directly
    followed by the end of the line is ``missing command``.
  * ``%``: see :func:`split_command`.
  * Lines Debian accepts that never fire (``0 0 31 2 *``) are UNSUPPORTED ("never fires
    under cron", decided by :func:`bridge.core.schedules.cron.never_fires`).

Environment of a job
  The variables set above it in the same file, in order of first setting (a later setting
  replaces the value in place, as cron does). ``SHELL`` is also the handler's shell (default
  ``/bin/sh``). Dialect ``vixie``: ``CRON_TZ`` is only an environment variable (noted).
  Dialect ``cronie``: ``CRON_TZ=zone`` sets the zone of the job lines below it (empty: back to
  the host zone); an unknown zone is an error at its line and the jobs below it are errors.
  cronie's other differences (``-`` lines, ``RANDOM_DELAY``, ``~`` fields, a bad line skipping
  only itself, cron.d names) are listed in :mod:`crontab_import.cronie`.

The whole file
  * Debian ignores every job of a file with one line it cannot parse (and ``crontab`` refuses
    to install such a user crontab): the error is listed and every valid job of the file is
    INACTIVE, "not running today: cron ignores this file because line N is invalid". Such
    lines are: bad job or environment lines, a NUL byte outside comments, a UTF-8 byte order
    mark, a last environment/job line without its newline, and (user crontabs) more than
    10000 lines.
  * A cron.d file whose name has anything but letters, digits, ``_`` and ``-`` is never read
    by Debian cron: noted, and its jobs are INACTIVE (``file name 'backup.sh' is ignored ...``).
  * Invalid UTF-8 is an error on environment and job lines (cron would pass the bytes through,
    the bridge stores text) and only a note in comments (Latin-1 comments are common).
  * CRLF line endings are kept as cron keeps them (noted): a line holding only ``\\r`` is
    invalid, a command ends with ``\\r``.

Known differences from Debian (checked, reported)
  * Debian skips text after a complete element of a time field (``*5`` reads as ``*``,
    ``1-2-3`` as ``1-2``, ``5#2`` as ``5``, ``0 5 * * *\\r`` as ``*``); cronfields.py rejects
    such lines, so they are errors here. Numbers are exact here, ``atoi()`` values there.
  * A user that looks like a user name is accepted: /etc/passwd is the host's business.

Commented-out jobs and directives
  A comment whose text after ``#`` and blanks parses as a valid job line of the file's kind
  (with a command) is a DISABLED item: listed, never imported. In the run of comment lines
  directly above a job line (or a commented-out one), ``# bridge: key=value ...`` sets: ``id``
  (overrides the job's id, checked with :data:`bridge.core.spec.JOB_ID_RE`), ``on-lost``
  (``skip``/``rerun``: :class:`bridge.core.spec.LostPolicy`) and ``repair``
  (``auto``/``alert-only``:
  :class:`bridge.core.spec.RepairPolicy`), e.g. ``# bridge: id=billing on-lost=rerun``; an unknown
  key or a bad value is an error at that line. ``# Name: <text>`` (Cronitor style) becomes its
  description. A blank or environment
  line in between ends the run; a directive above no job is noted.

Job ids
  ``<prefix>-<N>``: prefix ``etc-crontab`` for /etc/crontab, ``etc-cron.d-<file name>`` for a
  cron.d file (``/etc/cron.d/certbot`` job 1 -> ``etc-cron.d-certbot-1``) and
  ``<user>-crontab`` for a user crontab, wherever the copy being imported lives; characters a
  job id cannot hold become ``_``. ``N`` is the ordinal of the line among the file's job lines,
  counting commented-out, unsupported and broken job lines too, so ids do not shift when a
  line breaks or is commented out. Ids are unique within a file: a duplicate (an override
  colliding with another id) is an error at the override's line.

Item ``details``: ``{"user", "dialect", "kind"}``. ``SourceLocation``: file, 1-based line, the
original line text (``raw``) and the kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import BridgeError, ConfigError, InputError, ScheduleError
from bridge.core.schedules.cronfields import FIELDS, CronFields, expand_macro, parse_fields
from bridge.core.spec import (
    ENV_NAME_RE,
    JOB_ID_RE,
    CommandHandler,
    Dialect,
    JobSpec,
    LostPolicy,
    Placement,
    Policies,
    RepairPolicy,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
)
from crontab_import import cronie
from crontab_import.filetrust import FileTrust, read_source
from crontab_import.model import ImportError_, ImportItem, ItemStatus, ParseResult

MAX_COMMAND_BYTES = 998  # Debian: a 999-byte command is "command too long"
MAX_ENV_LINE_BYTES = 998  # Debian reads only this much of an environment line
MAX_FIELD_CHARS = 999  # Debian: a 1000-character time field is rejected
MAX_USER_CRONTAB_LINES = 10000  # crontab(1): "maximum number of lines is 10000"
DEFAULT_MAX_LINES = 10000  # import limit per file (--max-lines), checked before parsing
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # import limit per file (--max-bytes)
BLANKS = " \t"
C_SPACE = " \t\n\v\f\r"  # C isspace(), what cron's environment parser trims
CRON_D_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
DIRECTIVE_RE = re.compile(r"^#[ \t]*bridge:[ \t]*(.*?)[ \t]*$")
NAME_RE = re.compile(r"^#[ \t]*name:[ \t]*(.*?)[ \t]*$", re.IGNORECASE)
ID_DIRECTIVE_RE = re.compile(r"^id=(\S*)$")
DIRECTIVE_KEYS = {"on-lost": ("on_lost", LostPolicy), "repair": ("repair", RepairPolicy),
                  "placement": ("placement", Placement)}
DIRECTIVE_SYNTAX = ("expected '# bridge: id=<job-id> on-lost=skip|rerun repair=auto|alert-only "
                    "placement=host|anywhere'")
REBOOT_REASON = "@reboot has no schedule; it stays in the legacy crontab"
NEVER_FIRES_REASON = "never fires under cron"
EMPTY_COMMAND_REASON = "empty command: cron accepts the line but runs nothing"
NAME_RULE = "names may only contain letters, digits, '_' and '-'"
SYSTEM_KINDS = frozenset({SourceKind.SYSTEM_CRONTAB, SourceKind.CRON_D})


# --- public entry points ----------------------------------------------------------------------


def infer_kind(path: str) -> SourceKind:
    """``.../etc/crontab`` -> system crontab; a ``cron.d`` directory component -> cron.d."""
    parts = PurePosixPath(path).parts
    if parts[-2:] == ("etc", "crontab"):
        return SourceKind.SYSTEM_CRONTAB
    if "cron.d" in parts[:-1]:
        return SourceKind.CRON_D
    return SourceKind.USER_CRONTAB


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
    opts = _options(str(path), timezone, kind, user, dialect)
    data, trust = read_source(
        str(path),
        kind=opts.kind,
        user=opts.user,
        check_owner=check_owner,
        max_bytes=max_bytes,
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
) -> ParseResult:
    """Parse one crontab file's content (see the module docstring for every rule)."""
    opts = _options(file, timezone, kind, user, dialect)
    state = _State(opts)
    lines = list(_split_lines(data))
    for line in lines:
        _parse_line(state, line)
    _finish(state, lines)
    items = tuple(sorted(state.items, key=lambda i: i.source.line or 0))
    return ParseResult(file=file, items=items, errors=tuple(state.errors), notes=tuple(state.notes))


# --- options and state ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    file: str
    timezone: str
    kind: SourceKind
    user: str | None
    dialect: Dialect
    id_prefix: str


def _check_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def _options(
    file: str, timezone: str, kind: SourceKind | str | None, user: str | None, dialect: str
) -> _Options:
    if not _check_zone(timezone):
        raise ScheduleError(f"unknown timezone '{timezone}'")
    try:
        dia = Dialect(dialect)
    except ValueError as e:
        raise ConfigError(f"unknown crontab dialect '{dialect}' (vixie or cronie)") from e
    if dia not in (Dialect.VIXIE, Dialect.CRONIE):
        raise ConfigError(f"dialect '{dia}' is not a crontab dialect (vixie or cronie)")
    try:
        knd = SourceKind(kind) if kind is not None else infer_kind(file)
    except ValueError as e:
        raise ConfigError(f"unknown crontab kind '{kind}'") from e
    if knd not in (SourceKind.USER_CRONTAB, *SYSTEM_KINDS):
        raise ConfigError(f"'{knd}' is not a crontab kind")
    name = PurePosixPath(file).name
    if knd is SourceKind.USER_CRONTAB:
        user = user or name
        prefix = f"{user}-crontab"
    else:
        prefix = "etc-crontab" if knd is SourceKind.SYSTEM_CRONTAB else f"etc-cron.d-{name}"
    return _Options(file, timezone, knd, user, dia, _safe_id(prefix))


def _safe_id(prefix: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._@-]", "_", prefix)[:190]
    return cleaned if cleaned[:1].isalnum() else f"u-{cleaned}"[:190]


@dataclass
class _Pending:
    """Directives seen in the run of comment lines above the next job line."""

    id: str | None = None
    id_line: int | None = None
    name: str | None = None
    first_line: int | None = None
    policies: dict[str, Any] = field(default_factory=dict)  # Policies field -> value


@dataclass
class _State:
    opts: _Options
    env: dict[str, str] = field(default_factory=dict)
    zone: str | None = None  # cronie CRON_TZ; None = host zone
    bad_zone: tuple[str, int] | None = None  # cronie: unknown CRON_TZ value and its line
    random_delay: tuple[int, int] | None = None  # cronie: RANDOM_DELAY minutes and its line
    pending: _Pending = field(default_factory=_Pending)
    ordinal: int = 0
    items: list[ImportItem] = field(default_factory=list)
    errors: list[ImportError_] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    invalid_line: int | None = None  # first line Debian rejects
    override_lines: dict[int, int] = field(default_factory=dict)  # job line -> directive line
    bridge_job: str | None = None  # from a BRIDGE_JOB= line inserted by `bridge legacy rewrite`
    claimed_policies: dict[str, Any] = field(default_factory=dict)  # directives of the last job

    def error(self, line: int | None, message: str, *, debian_rejects: bool) -> None:
        self.errors.append(ImportError_(self.opts.file, line, message))
        if debian_rejects and line is not None and self.invalid_line is None:
            self.invalid_line = line

    def note(self, line: int | None, message: str) -> None:
        where = f"{self.opts.file}:{line}" if line is not None else self.opts.file
        self.notes.append(f"{where}: {message}")


# --- lines ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    number: int
    text: str  # without the newline; invalid UTF-8 replaced
    terminated: bool  # ended with a newline
    problem: str | None = None  # NUL byte / invalid UTF-8 / byte order mark


def _split_lines(data: str | bytes) -> Iterator[_Line]:
    chunks: list[tuple[str | None, bytes | None]]
    if isinstance(data, str):
        chunks = [(c, None) for c in data.split("\n")]
    else:
        chunks = [(None, c) for c in data.split(b"\n")]
    last = len(chunks) - 1
    for n, (text, raw) in enumerate(chunks):
        if n == last and not (text if raw is None else raw):
            return  # the newline ended the previous line: nothing follows
        yield _make_line(n + 1, text, raw, n < last)


def _make_line(number: int, text: str | None, raw: bytes | None, terminated: bool) -> _Line:
    problem = None
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            text = raw.decode("utf-8", errors="replace")
            problem = f"invalid UTF-8 at byte {e.start + 1}"
    assert text is not None
    if "\x00" in text:
        problem = f"NUL byte at column {text.index(chr(0)) + 1}"
    if number == 1 and text.startswith("\ufeff"):
        problem = "byte order mark at the start of the file (cron reads it as part of line 1)"
        text = text[1:]
    return _Line(number, text, terminated, problem)


def _is_blank(text: str) -> bool:
    return text.strip(BLANKS) == ""


def _is_comment(text: str) -> bool:
    return text.lstrip(BLANKS).startswith("#")


def _parse_line(state: _State, line: _Line) -> None:
    text = line.text
    if _is_blank(text) and line.problem is None:
        _end_directive_run(state)
    elif _is_comment(text):
        _comment_line(state, line)
    elif line.problem is not None:
        _problem_line(state, line)
    else:
        env = parse_env_line(text)
        if isinstance(env, EnvSetting):
            _env_line(state, line, env)
        elif env.reached_equals and isinstance(_parse_job(state, text), str):
            _end_directive_run(state)
            state.error(
                line.number,
                f"bad environment line in '{text.strip(BLANKS)}' ({env.reason})",
                debian_rejects=True,
            )
            _add_error_item(state, line, None, f"bad environment line ({env.reason})")
        else:
            _job_line(state, line)
    if not line.terminated and not _is_blank(text) and not _is_comment(text):
        _unterminated(state, line)


def _unterminated(state: _State, line: _Line) -> None:
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


def _problem_line(state: _State, line: _Line) -> None:
    """A non-comment line with a NUL byte, invalid UTF-8 or a byte order mark."""
    problem = line.problem or ""
    state.error(line.number, problem, debian_rejects=not problem.startswith("invalid UTF-8"))
    if _looks_like_job(state, line.text):
        job_id, _ = _claim(state, line)
        _add_error_item(state, line, job_id, problem)
    else:
        _end_directive_run(state)
        _add_error_item(state, line, None, problem)


def _looks_like_job(state: _State, text: str) -> bool:
    """Not blank, not an environment setting, not a broken one (cron tries a job line last)."""
    env = parse_env_line(text)
    if isinstance(env, EnvSetting) or _is_blank(text):
        return False
    return not env.reached_equals or not isinstance(_parse_job(state, text), str)


# --- comments and directives ------------------------------------------------------------------


def _comment_line(state: _State, line: _Line) -> None:
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


def _directive(state: _State, number: int, body: str) -> None:
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
                state.error(number, f"bad {key} value in '{token}' (expected {key}={allowed})",
                            debian_rejects=False)
        else:
            state.error(number, f"bad bridge directive in '{body}' ({DIRECTIVE_SYNTAX})",
                        debian_rejects=False)
            return


def _id_directive(state: _State, number: int, token: str) -> None:
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


def _end_directive_run(state: _State) -> None:
    p = state.pending
    if p.id is not None or p.name is not None or p.policies:
        state.note(p.first_line, "directive is not directly above a job line (ignored)")
    state.pending = _Pending()


_RETIRED = re.compile(r"^#\s*bridge-retired \d{4}-\d{2}-\d{2} ([^\s:]+): ")


def _maybe_disabled(state: _State, line: _Line, text: str) -> None:
    """A comment that is a valid job line once its '#' is removed: a DISABLED item. A line
    `bridge legacy retire` commented out keeps the id its marker names."""
    retired = _RETIRED.match(text)
    inner = text[retired.end() :] if retired else text.lstrip("#").lstrip(BLANKS)
    if not _looks_like_job(state, inner):
        return
    parsed = _parse_job(state, inner)
    if isinstance(parsed, str) or not split_command(parsed.command)[0].strip(C_SPACE):
        return
    job_id, description = _claim(state, line)
    if retired:
        job_id = retired.group(1)
    job = None
    if parsed.expression is not None and state.bad_zone is None:
        try:
            job = _build_job(state, line, job_id, parsed, parsed.expression, description)
        except BridgeError:
            job = None  # listed without a spec: it is not imported anyway
    reason = "retired by cron-bridge (Celery owns it)" if retired else "commented out"
    _add_item(state, line, ItemStatus.DISABLED, job_id, job, reason, parsed.user)


# --- environment lines ------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvSetting:
    name: str
    value: str
    truncated: bool = False


@dataclass(frozen=True)
class EnvFailure:
    reached_equals: bool  # a name and '=' were read: report it as a bad environment line
    reason: str


def parse_env_line(text: str) -> EnvSetting | EnvFailure:
    """Debian cron's ``load_env`` on one line (without its newline)."""
    body = text.lstrip(BLANKS)
    raw = body.encode("utf-8", errors="surrogatepass")
    truncated = len(raw) > MAX_ENV_LINE_BYTES
    if truncated:
        body = raw[:MAX_ENV_LINE_BYTES].decode("utf-8", errors="ignore")
    name, pos = _env_name(body)
    if name is None:
        return EnvFailure(False, "not an environment line")
    result = _env_value(body, pos)
    if isinstance(result, EnvFailure):
        cut = f"; cron reads only the first {MAX_ENV_LINE_BYTES} bytes of the line"
        return replace(result, reason=result.reason + cut) if truncated else result
    return EnvSetting(name, result.rstrip(C_SPACE), truncated)


def _env_name(body: str) -> tuple[str | None, int]:
    """The name and the index just past '=' (None when the line is not NAME = ...)."""
    i, quote = 0, ""
    if body[:1] in ("'", '"'):
        quote, i = body[0], 1
    start = i
    while i < len(body):
        c = body[i]
        if quote and c == quote:
            name, i = body[start:i], i + 1
            break
        if quote and c == "=":
            return None, 0
        if not quote and (c in C_SPACE or c == "="):
            name = body[start:i]
            break
        i += 1
    else:
        return None, 0
    while i < len(body) and body[i] in C_SPACE:
        i += 1
    if i >= len(body) or body[i] != "=":
        return None, 0
    return name, i + 1


def _env_value(body: str, i: int) -> str | EnvFailure:
    while i < len(body) and body[i] in C_SPACE:
        i += 1
    if i >= len(body):
        return EnvFailure(True, 'empty value; write NAME="" for an empty value')
    if body[i] not in ("'", '"'):
        return body[i:]
    quote = body[i]
    end = body.find(quote, i + 1)
    if end < 0:
        return EnvFailure(True, f"unterminated {quote} quote")
    if body[end + 1 :].strip(C_SPACE):
        return EnvFailure(True, "text after the closing quote")
    return body[i + 1 : end]


SHIM_NAME = "bridge-cron-shell"


def _bridge_line(state: _State, env: EnvSetting) -> bool:
    """Lines `bridge legacy rewrite` inserted are transparent: they name the job (BRIDGE_JOB)
    and route it through the shim (BRIDGE_SHELL, SHELL=.../bridge-cron-shell) but are not part
    of the job's own environment, so a rewritten file re-imports unchanged."""
    if env.name == "BRIDGE_JOB":
        state.bridge_job = env.value or None
        return True
    return env.name == "BRIDGE_SHELL" or (
        env.name == "SHELL" and env.value.rsplit("/", 1)[-1] == SHIM_NAME
    )


def _env_line(state: _State, line: _Line, env: EnvSetting) -> None:
    _end_directive_run(state)
    if _bridge_line(state, env):
        return
    if env.truncated:
        state.note(
            line.number,
            f"environment line longer than {MAX_ENV_LINE_BYTES} bytes: "
            f"cron keeps only its first {MAX_ENV_LINE_BYTES} bytes ({env.name} is cut)",
        )
    if not ENV_NAME_RE.match(env.name):
        state.note(
            line.number,
            f"environment variable name '{env.name}' cannot be passed to "
            "a shell; it is left out of the jobs' environment",
        )
    else:
        state.env[env.name] = env.value
    if env.name == "CRON_TZ":
        _cron_tz(state, line.number, env.value)
    elif env.name == "RANDOM_DELAY" and state.opts.dialect is Dialect.CRONIE:
        minutes = cronie.random_delay(env.value)
        state.random_delay = (minutes, line.number) if minutes else None
    elif env.name == "TZ":
        state.note(line.number, "TZ only changes the commands' environment, not when jobs run")


def _cron_tz(state: _State, number: int, value: str) -> None:
    if state.opts.dialect is Dialect.VIXIE:
        state.note(
            number,
            f"CRON_TZ has no effect in Debian cron (vixie dialect): jobs run in "
            f"{state.opts.timezone}; use the cronie dialect for RHEL-family hosts",
        )
        return
    state.zone, state.bad_zone = None, None
    if not value:
        return
    if _check_zone(value):
        state.zone = value
    else:
        state.bad_zone = (value, number)
        state.error(number, f"unknown timezone in CRON_TZ '{value}'", debian_rejects=True)


# --- job lines --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JobParts:
    expression: str | None  # the five fields or a macro's expansion; None for @reboot
    user: str | None
    command: str  # raw command text (before % processing)


_TOKEN_RE = re.compile(r"[^ \t]*")


def _take(text: str) -> tuple[str, str, bool]:
    """First blank-delimited token, the rest after the blanks, whether blanks followed it."""
    end = _TOKEN_RE.match(text).end()  # type: ignore[union-attr]  # always matches
    return text[:end], text[end:].lstrip(BLANKS), end < len(text)


def _parse_job(state: _State, text: str) -> _JobParts | str:
    """Split a job line into schedule, user and command; a string is the error message."""
    body = text.lstrip(BLANKS)
    if state.opts.dialect is Dialect.CRONIE and body.startswith("-"):
        if state.opts.kind is SourceKind.USER_CRONTAB and state.opts.user != "root":
            return cronie.DASH_REASON
        body = body[1:]  # cronie: "do not log this run to syslog"
    schedule = _schedule_part(body)
    if isinstance(schedule, str):
        return schedule
    expression, rest = schedule
    return _user_and_command(state, text, expression, rest)


def _schedule_part(rest: str) -> tuple[str | None, str] | str:
    """The expression (None for @reboot) and what follows it, or the error message."""
    try:
        if rest.startswith("@"):
            token, rest, _ = _take(rest)
            return expand_macro(token), rest
        tokens = []
        for fd in FIELDS:
            token, rest, _ = _take(rest)
            problem = _field_problem(token, fd.name)
            if problem:
                return problem
            tokens.append(token)
        return _fields(" ".join(tokens)).expression, rest
    except ScheduleError as e:
        return e.message


def _field_problem(token: str, name: str) -> str | None:
    if not token:
        return None  # parse_fields reports the missing field
    if len(token) > MAX_FIELD_CHARS:
        return f"{name} field longer than {MAX_FIELD_CHARS} characters in '{token[:20]}...'"
    if not token.isascii() or not token.isprintable():
        return f"bad {name} value in {token!r} (only ASCII letters, digits and ',-/*')"
    return None


def _user_and_command(
    state: _State, text: str, expression: str | None, rest: str
) -> _JobParts | str:
    user = state.opts.user
    if state.opts.kind in SYSTEM_KINDS:
        user, rest, blank = _take(rest)
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
    return _JobParts(expression, user, rest)


def _cronie_random_field(state: _State, text: str) -> str | None:
    """cronie only: the user of a job line with a '~' time field (None when it has none)."""
    body = text.lstrip(BLANKS).removeprefix("-")
    tokens = []
    for _ in FIELDS:
        token, body, _blank = _take(body)
        tokens.append(token)
    if body.startswith("@") or not cronie.has_random_field(tokens):
        return None
    return _take(body)[0] if state.opts.kind in SYSTEM_KINDS else (state.opts.user or "")


def _job_line(state: _State, line: _Line) -> None:
    job_id, description = _claim(state, line)
    if state.opts.dialect is Dialect.CRONIE:
        random_user = _cronie_random_field(state, line.text)
        if random_user is not None:
            _add_item(state, line, ItemStatus.UNSUPPORTED, job_id, None,
                      cronie.RANDOM_FIELD_REASON, random_user or None)
            return
    parsed = _parse_job(state, line.text)
    if isinstance(parsed, str):
        state.error(line.number, parsed, debian_rejects=True)
        _add_error_item(state, line, job_id, parsed)
    elif parsed.expression is None:
        _add_item(state, line, ItemStatus.UNSUPPORTED, job_id, None, REBOOT_REASON, parsed.user)
    elif not split_command(parsed.command)[0].strip(C_SPACE):
        _add_item(
            state, line, ItemStatus.UNSUPPORTED, job_id, None, EMPTY_COMMAND_REASON, parsed.user
        )
    elif state.bad_zone is not None:
        zone, where = state.bad_zone
        _add_error_item(
            state,
            line,
            job_id,
            f"CRON_TZ '{zone}' at line {where} is not a known timezone",
            user=parsed.user,
        )
    elif state.random_delay is not None:
        reason = cronie.random_delay_reason(*state.random_delay)
        _add_item(state, line, ItemStatus.UNSUPPORTED, job_id, None, reason, parsed.user)
    else:
        _schedulable_job(state, line, job_id, parsed, parsed.expression, description)


def _schedulable_job(
    state: _State,
    line: _Line,
    job_id: str,
    parsed: _JobParts,
    expression: str,
    description: str | None,
) -> None:
    try:
        job = _build_job(state, line, job_id, parsed, expression, description)
        never = _never_fires(job.schedule)
    except BridgeError as e:
        state.error(line.number, e.message, debian_rejects=False)
        _add_error_item(state, line, job_id, e.message, user=parsed.user)
        return
    status = ItemStatus.UNSUPPORTED if never else ItemStatus.OK
    _add_item(state, line, status, job_id, job, NEVER_FIRES_REASON if never else None, parsed.user)


@lru_cache(maxsize=4096)
def _fields(expression: str) -> CronFields:
    """parse_fields, once per distinct expression (big crontabs repeat a few schedules)."""
    return parse_fields(expression)


@lru_cache(maxsize=4096)
def _warnings(expression: str) -> tuple[str, ...]:
    return tuple(_fields(expression).warnings)


@lru_cache(maxsize=4096)
def _never_fires(schedule: ScheduleSpec) -> bool:
    from bridge.core.schedules.cron import never_fires  # written alongside; imported lazily

    return never_fires(schedule)


def split_command(raw: str) -> tuple[str, str | None]:
    """Debian's ``%`` processing: ``(command, stdin)``; stdin is None without a ``%``.

    Command part (up to the first unescaped ``%``): ``\\%`` -> ``%`` and ``\\\\`` -> ``\\``;
    any other backslash is kept. Stdin part: ``\\%`` -> ``%``, each other ``%`` -> newline,
    every other backslash kept (``\\\\`` too), and a final newline added when the text is not
    empty and does not already end with one. ``cat%line1%line2\\%x`` -> ``("cat",
    "line1\\nline2%x\\n")``; ``cat%`` -> ``("cat", "")``. Verified on the Debian daemon.
    """
    if "%" not in raw and "\\" not in raw:
        return raw, None  # the common case, without the character loop
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and raw[i + 1 : i + 2] in ("\\", "%"):
            out.append(raw[i + 1])
            i += 2
            continue
        if c == "%":
            return "".join(out), _stdin(raw[i + 1 :])
        out.append(c)
        i += 1
    return "".join(out), None


def _stdin(text: str) -> str:
    data = text.replace("\\%", "\x00").replace("%", "\n").replace("\x00", "%")
    return data if not data or data.endswith("\n") else data + "\n"


# --- building items ---------------------------------------------------------------------------


def _claim(state: _State, line: _Line) -> tuple[str, str | None]:
    """The next job ordinal's id (or the pending override) and the pending description."""
    state.ordinal += 1
    pending, state.pending = state.pending, _Pending()
    state.claimed_policies = pending.policies
    if pending.id is not None and pending.id_line is not None:
        state.override_lines[line.number] = pending.id_line
        return pending.id, pending.name
    if state.bridge_job:
        return state.bridge_job, pending.name
    return f"{state.opts.id_prefix}-{state.ordinal}", pending.name


def _build_job(
    state: _State,
    line: _Line,
    job_id: str,
    parts: _JobParts,
    expression: str,
    description: str | None,
) -> JobSpec:
    command, stdin = split_command(parts.command)
    handler = CommandHandler(
        command=command,
        stdin=stdin,
        user=parts.user,
        shell=state.env.get("SHELL", "/bin/sh"),
        env=tuple(state.env.items()),
    )
    schedule = ScheduleSpec(
        dialect=state.opts.dialect,
        timezone=state.zone or state.opts.timezone,
        expression=expression,
    )
    return JobSpec(
        id=job_id,
        schedule=schedule,
        handler=handler,
        source=_location(state, line),
        description=description,
        policies=Policies(**state.claimed_policies),
    )


def _location(state: _State, line: _Line) -> SourceLocation:
    return SourceLocation(
        file=state.opts.file, line=line.number, raw=line.text, kind=state.opts.kind
    )


def _details(state: _State, user: str | None, line: int) -> dict[str, Any]:
    details = {"user": user, "dialect": state.opts.dialect.value, "kind": state.opts.kind.value}
    id_line = state.override_lines.get(line)
    return details if id_line is None else {**details, "id_line": id_line}


def _add_item(
    state: _State,
    line: _Line,
    status: ItemStatus,
    job_id: str | None,
    job: JobSpec | None,
    reason: str | None,
    user: str | None,
) -> None:
    state.items.append(
        ImportItem(
            status=status,
            source=_location(state, line),
            id=job_id,
            job=job,
            reason=reason,
            details=_with_warnings(_details(state, user, line.number), job),
        )
    )


def _with_warnings(details: dict[str, Any], job: JobSpec | None) -> dict[str, Any]:
    """Text Debian skips inside a time field (``5#2`` runs as ``5``) is said, not hidden."""
    if job is None or not job.schedule.expression:
        return details
    warnings = _warnings(job.schedule.expression)
    return {**details, "warnings": list(warnings)} if warnings else details


def _add_error_item(
    state: _State, line: _Line, job_id: str | None, reason: str, *, user: str | None = None
) -> None:
    _add_item(state, line, ItemStatus.ERROR, job_id, None, reason, user or state.opts.user)


# --- the whole file ---------------------------------------------------------------------------


def _finish(state: _State, lines: list[_Line]) -> None:
    _end_directive_run(state)
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


def _inactive_reason(state: _State) -> str | None:
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


def _check_duplicate_ids(state: _State) -> None:
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


def _line_of(state: _State, index: int) -> int:
    return state.items[index].source.line or 0
