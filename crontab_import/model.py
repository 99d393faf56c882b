"""What an importer returns: one :class:`ImportItem` per legacy entry, plus located errors.

Both importers (crontab, Quartz XML) are pure: text in, :class:`ParseResult` out. The planner
(:mod:`crontab_import.plan`) compares items with the registry; nothing here touches I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridge.core.spec import JobSpec, SourceLocation
from crontab_import.filetrust import FileTrust


class ItemStatus(StrEnum):
    OK = "ok"  # importable: becomes create / update / unchanged in the plan
    DISABLED = "disabled"  # a commented-out job line: listed, never imported
    INACTIVE = "inactive"  # valid, but not running today (its file is ignored by cron)
    UNSUPPORTED = "unsupported"  # understood but not migratable (@reboot, never fires, ...)
    ERROR = "error"  # the legacy scheduler rejects it


DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # import limit per source file (--max-bytes)


@dataclass(frozen=True)
class ImportError_:
    """A located problem: ``file:line: message``; a fleet file's location starts with its host
    (``web-01/etc/cron.d/backup:3: ...``, the file's path in the inventory)."""

    file: str
    line: int | None
    message: str
    host: str | None = None

    @property
    def location(self) -> str:
        path = self.file if self.host is None else f"{self.host}/{self.file.lstrip('/')}"
        return f"{path}:{self.line}" if self.line is not None else path

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"file": self.file, "line": self.line, "message": self.message}
        return doc if self.host is None else {"host": self.host, **doc}


@dataclass(frozen=True)
class ImportItem:
    """One legacy entry as the importer understood it.

    ``job`` is set for OK and INACTIVE items (and for DISABLED/UNSUPPORTED ones when the line
    could still be understood); ``id`` is always set when the entry is a job at all.
    ``details`` carries dialect-specific facts for the plan output (user, trigger, misfire,
    job_class, handler, ...): JSON-serialisable values only.
    """

    status: ItemStatus
    source: SourceLocation
    id: str | None = None
    job: JobSpec | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParseResult:
    """Everything one source file produced. ``notes`` are file-level facts for the plan."""

    file: str
    items: tuple[ImportItem, ...] = ()
    errors: tuple[ImportError_, ...] = ()
    notes: tuple[str, ...] = ()
    trust: FileTrust | None = None  # cron's file-trust verdict (crontab files read from disk)
    host: str | None = None  # a fleet import: the host this file was collected from

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def source_key(self) -> str | tuple[str, str]:
        """What the plan prunes by: the file, or (host, file) for a fleet's file."""
        return self.file if self.host is None else (self.host, self.file)
