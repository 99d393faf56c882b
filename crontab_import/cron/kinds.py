"""The three kinds of crontab file (user crontab, /etc/crontab, /etc/cron.d/*) and a file's options.

``infer_kind``: ``.../etc/crontab`` is the system crontab, a path with a ``cron.d`` directory
component a cron.d file, anything else a user crontab whose user is ``user`` or else the file's
base name (spool files are named after the user). ``file_options`` checks the parse options
(zone, dialect, kind) and derives the job id prefix: ``etc-crontab``, ``etc-cron.d-<file name>``
or ``<user>-crontab``, wherever the copy being imported lives; characters a job id cannot hold
become ``_``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import ConfigError, ScheduleError
from bridge.core.spec import Dialect, SourceKind

SYSTEM_KINDS = frozenset({SourceKind.SYSTEM_CRONTAB, SourceKind.CRON_D})


def infer_kind(path: str) -> SourceKind:
    """``.../etc/crontab`` -> system crontab; a ``cron.d`` directory component -> cron.d."""
    parts = PurePosixPath(path).parts
    if parts[-2:] == ("etc", "crontab"):
        return SourceKind.SYSTEM_CRONTAB
    if "cron.d" in parts[:-1]:
        return SourceKind.CRON_D
    return SourceKind.USER_CRONTAB


@dataclass(frozen=True)
class FileOptions:
    file: str
    timezone: str
    kind: SourceKind
    user: str | None
    dialect: Dialect
    id_prefix: str
    host: str | None = None  # the host the file lives on (a fleet's file, or this machine)


def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def file_options(
    file: str, timezone: str, kind: SourceKind | str | None, user: str | None, dialect: str
) -> FileOptions:
    if not known_zone(timezone):
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
    return FileOptions(file, timezone, knd, user, dia, _id_prefix(prefix))


def _id_prefix(prefix: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._@-]", "_", prefix)[:190]
    return cleaned if cleaned[:1].isalnum() else f"u-{cleaned}"[:190]
