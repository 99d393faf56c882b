"""``bridge legacy rewrite``: route a crontab's jobs through the shim, changing no original byte.

Cron runs each job as ``$SHELL -c "<command>"``. The rewrite therefore only *inserts*
environment lines (design.md §4); every original line stays byte-for-byte as it was, ``%``
handling included:

* before the first job line (and again after any original ``SHELL=`` line, before the next job):
  ``BRIDGE_SHELL=<the shell cron would have used>`` and ``SHELL=<shim path>``;
* before a job line whose job is in the registry: ``BRIDGE_JOB=<id>``; before a job line the
  bridge does not manage (``@reboot``, unsupported, not imported): ``BRIDGE_JOB=""``, and the
  shim then just runs the command like cron would, recording nothing.
  A ``BRIDGE_JOB`` line is only written when the value changes.

Re-running is idempotent: the inserted lines are recognised and removed before inserting anew.
The crontab parser treats these lines as transparent (they are not part of any job's
environment), so a rewritten file re-imports unchanged. Everything here is pure: text in, text
out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bridge.core.hosts import qualify
from bridge.core.spec import CommandHandler, Dialect, JobSpec
from crontab_import.cron.env import SHIM_NAME, EnvSetting, parse_env_line
from crontab_import.crontab import parse_crontab
from crontab_import.model import ItemStatus, ParseResult

DEFAULT_SHIM = f"/usr/local/bin/{SHIM_NAME}"
_INSERTED = re.compile(rf"^(BRIDGE_JOB=.*|BRIDGE_SHELL=.*|SHELL=\S*/{SHIM_NAME})$")


@dataclass(frozen=True)
class RewriteResult:
    text: str
    managed: tuple[str, ...]  # job ids routed through the shim with their id
    unmanaged_lines: tuple[int, ...]  # original job lines run through the shim anonymously


@dataclass(frozen=True)
class Drift:
    job_id: str
    line: int | None
    what: str  # "command", "schedule", "user", "stdin", "missing", "not-routed"

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.job_id}{where}: {self.what}"


@dataclass(frozen=True)
class CheckResult:
    drift: tuple[Drift, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.drift


def strip_inserted(text: str) -> str:
    """The file as it was before any rewrite (only lines this module inserts are removed)."""
    lines = text.split("\n")
    return "\n".join(line for line in lines if not _INSERTED.match(line.rstrip("\r")))


def _quote(value: str) -> str:
    """A value cron reads back verbatim: quoted when it has blanks or is empty."""
    if value == "" or value != value.strip() or any(c in value for c in " \t#'\""):
        return '"' + value + '"'
    return value


def _job_lines(result: ParseResult, host: str | None = None) -> dict[int, str | None]:
    """Original line number -> job id of every job line (None when there is no job id);
    ``host``: the registry holds the file's jobs as ``<host>.<id>`` (a fleet import)."""
    out: dict[int, str | None] = {}
    for item in result.items:
        if item.status is ItemStatus.DISABLED or item.source.line is None:
            continue
        out[item.source.line] = qualify(host, item.id) if host and item.id else item.id
    return out


def rewrite(
    text: str,
    *,
    file: str,
    managed_ids: Iterable[str],
    timezone: str = "UTC",
    kind: str | None = None,
    user: str | None = None,
    shim: str = DEFAULT_SHIM,
    dialect: Dialect = Dialect.VIXIE,
    host: str | None = None,
) -> RewriteResult:
    """Insert the shim lines into ``text`` (a crontab) for the jobs in ``managed_ids``.
    ``dialect``: the host's cron (which lines are job lines); ``host``: the file is one host's
    of a fleet import, whose jobs the registry holds as ``<host>.<id>``."""
    original = strip_inserted(text)
    parsed = parse_crontab(
        original, file=file, timezone=timezone, kind=kind, user=user, dialect=dialect
    )
    jobs, wanted = _job_lines(parsed, host), set(managed_ids)
    out: list[str] = []
    shell, routed, marker = "/bin/sh", False, None
    managed: list[str] = []
    anonymous: list[int] = []
    for number, line in enumerate(original.split("\n"), 1):
        setting = parse_env_line(line.rstrip("\r")) if number not in jobs else None
        if number in jobs:
            job_id = jobs[number] if jobs[number] in wanted else None
            if not routed:
                out += [f"BRIDGE_SHELL={_quote(shell)}", f"SHELL={shim}"]
                routed = True
            if (job_id or "") != marker:
                out.append(f"BRIDGE_JOB={_quote(job_id or '')}")
                marker = job_id or ""
            if job_id:
                managed.append(job_id)
            else:
                anonymous.append(number)
        out.append(line)
        if isinstance(setting, EnvSetting) and setting.name == "SHELL":
            shell, routed = setting.value, False
    return RewriteResult("\n".join(out), tuple(managed), tuple(anonymous))


def check(
    text: str,
    *,
    file: str,
    registry: Mapping[str, JobSpec],
    timezone: str = "UTC",
    kind: str | None = None,
    user: str | None = None,
) -> CheckResult:
    """Compare an installed (rewritten) crontab with the registry's jobs of that file.

    A routed job line is identified by the ``BRIDGE_JOB`` value in effect above it. A line
    without one that runs exactly a registry job (same schedule, command, stdin, user) is that
    job, not routed through the shim. A registry job found nowhere is missing."""
    parsed = parse_crontab(text, file=file, timezone=timezone, kind=kind, user=user)
    markers = _markers(text)
    drift: list[Drift] = []
    seen: set[str] = set()
    for item in parsed.items:
        line = item.source.line
        if item.job is None or line is None or item.status is ItemStatus.DISABLED:
            continue
        marker = markers.get(line)
        if not marker:
            same = _same_job(item.id, item.job, registry)
            if same is not None:
                drift.append(Drift(same, line, "not-routed"))
                seen.add(same)
        elif marker in registry:
            seen.add(marker)
            drift.extend(_compare(marker, line, item.job, registry[marker]))
    drift.extend(Drift(j, None, "missing") for j in sorted(set(registry) - seen))
    return CheckResult(tuple(drift))


def _same_job(job_id: str | None, job: JobSpec, registry: Mapping[str, JobSpec]) -> str | None:
    """The registry job this unrouted line runs (its own id first), or None."""
    candidates = [job_id] if job_id in registry else []
    candidates += sorted(k for k in registry if k != job_id)
    for candidate in candidates:
        if candidate is not None and not _compare(candidate, None, job, registry[candidate]):
            return candidate
    return None


def _markers(text: str) -> dict[int, str | None]:
    """Line number -> the BRIDGE_JOB value in effect there (None before any marker)."""
    out: dict[int, str | None] = {}
    current: str | None = None
    for number, line in enumerate(text.split("\n"), 1):
        setting = parse_env_line(line.rstrip("\r"))
        if isinstance(setting, EnvSetting) and setting.name == "BRIDGE_JOB":
            current = setting.value
        out[number] = current
    return out


def _compare(job_id: str, line: int | None, found: JobSpec, want: JobSpec) -> list[Drift]:
    out: list[Drift] = []
    if found.schedule.expression != want.schedule.expression:
        out.append(Drift(job_id, line, "schedule"))
    a, b = found.handler, want.handler
    if isinstance(a, CommandHandler) and isinstance(b, CommandHandler):
        for name in ("command", "stdin", "user"):
            if getattr(a, name) != getattr(b, name):
                out.append(Drift(job_id, line, name))
    return out
