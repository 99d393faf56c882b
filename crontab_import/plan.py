"""The import plan: what parsing found, compared with the registry's jobs. Pure.

``make_plan`` is pure: parse results + the registry's current jobs in, one :class:`PlanEntry`
per job out — ``create``, ``update`` (with the changed fields), ``unchanged``, ``delete`` (a job
that vanished from its source file; only with prune), ``disabled``, ``inactive``,
``unsupported``, ``error``. The import service (:mod:`bridge.services.importer`) applies it in
one transaction, so an import is all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bridge.core.jobs import SourceOwner, StoredJob
from bridge.core.spec import JobSpec
from crontab_import.filetrust import FileTrust
from crontab_import.model import ImportError_, ImportItem, ItemStatus, ParseResult


class PlanStatus(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    DISABLED = "disabled"
    INACTIVE = "inactive"
    UNSUPPORTED = "unsupported"
    ERROR = "error"


CHANGES = frozenset({PlanStatus.CREATE, PlanStatus.UPDATE, PlanStatus.DELETE})
IMPORTED = frozenset({PlanStatus.CREATE, PlanStatus.UPDATE, PlanStatus.UNCHANGED})


@dataclass(frozen=True)
class PlanEntry:
    status: PlanStatus
    id: str | None
    file: str
    line: int | None
    job: JobSpec | None = None
    reason: str | None = None
    changed: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    previous: StoredJob | None = None
    adopted_from: SourceOwner | None = None  # --adopt took this id over from another source
    owner: SourceOwner | None = None  # the source this entry's job belongs to after the import
    host: str | None = None  # the host of the job's legacy line (bridge.core.hosts)


@dataclass(frozen=True)
class Plan:
    entries: tuple[PlanEntry, ...]
    errors: tuple[ImportError_, ...]
    notes: tuple[str, ...]
    files: tuple[str, ...]
    trust: tuple[FileTrust, ...] = ()  # cron's file-trust verdict per crontab file read

    def count(self, status: PlanStatus) -> int:
        return sum(1 for e in self.entries if e.status is status)

    @property
    def changes(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.status in CHANGES]

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    def summary(self) -> dict[str, int]:
        return {s.value: self.count(s) for s in PlanStatus}

    def by_host(self) -> dict[str | None, list[PlanEntry]]:
        """Entries grouped by host, hosts in name order (None, unhosted, first)."""
        groups: dict[str | None, list[PlanEntry]] = {}
        for e in self.entries:
            groups.setdefault(e.host, []).append(e)
        return dict(sorted(groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")))


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two spec JSON documents."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(changed_fields(a, b, path + "."))
        elif a != b:
            out.append(path)
    return out


def _keep_import_time_start(job: JobSpec, item: ImportItem, previous: StoredJob) -> JobSpec:
    """A Quartz trigger without start-time starts "when Quartz loaded the file": keep the start
    chosen at the first import, or every re-import would look like an update."""
    if item.details.get("start_source") != "import-time":
        return job
    old = previous.spec.schedule
    return job.with_(schedule=replace(job.schedule, start=old.start))


@dataclass(frozen=True)
class Ownership:
    """Who owns which id (the registry's view) and who is importing now."""

    owners: Mapping[str, SourceOwner]
    host: str | None
    adopt: bool = False

    def source_of(self, item: ImportItem) -> SourceOwner:
        """The importing source: the item's own host (a crontab line's), else the importer's."""
        return SourceOwner(item.source.host or self.host, item.source.file, item.source.kind.value)


def _foreign_owner(
    item: ImportItem, job: JobSpec, ownership: Ownership | None
) -> SourceOwner | None:
    """The other source that owns ``job.id`` (None when it is this item's own source)."""
    if ownership is None:
        return None
    stored = ownership.owners.get(job.id)
    if stored is None or stored.same_source(ownership.source_of(item)):
        return None
    return stored


def _owner_error(item: ImportItem, job_id: str, other: SourceOwner) -> ImportError_:
    host = f", host {other.host}" if other.host else ""
    line = item.details.get("id_line") or item.source.line
    return ImportError_(
        item.source.file,
        line,
        f"job id '{job_id}' belongs to {other.file} ({other.kind}{host}); refusing to take "
        "it over (pass --adopt to move it to this file, audited)",
    )


def _importable(item: ImportItem, include_inactive: bool) -> bool:
    if item.details.get("refused_by_cron"):
        return False  # cron never reads the file: not even --include-inactive imports it
    return item.status is ItemStatus.OK or (
        item.status is ItemStatus.INACTIVE and include_inactive
    )


def _item_entry(
    item: ImportItem,
    existing: Mapping[str, StoredJob],
    include_inactive: bool,
    ownership: Ownership | None = None,
    owner_errors: list[ImportError_] | None = None,
) -> PlanEntry:
    importable = _importable(item, include_inactive)
    job = item.job
    previous = existing.get(job.id) if job is not None else None
    if importable and job is not None and previous is not None:
        job = _keep_import_time_start(job, item, previous)
    foreign = _foreign_owner(item, job, ownership) if importable and job is not None else None
    owner = ownership.source_of(item) if ownership is not None else None

    def entry(status: PlanStatus, changed: tuple[str, ...] = ()) -> PlanEntry:
        return PlanEntry(
            status=status,
            id=item.id,
            file=item.source.file,
            line=item.source.line,
            job=job,
            reason=item.reason,
            changed=changed,
            details=item.details,
            previous=previous,
            adopted_from=foreign,
            owner=owner,
            host=item.source.host,
        )

    if foreign is not None and job is not None and not (ownership and ownership.adopt):
        error = _owner_error(item, job.id, foreign)
        if owner_errors is not None:
            owner_errors.append(error)
        return replace(entry(PlanStatus.ERROR), job=None, reason=error.message, adopted_from=None)
    if not importable or job is None:
        return entry(PlanStatus(item.status.value))
    if previous is None:
        return entry(PlanStatus.CREATE)
    if previous.spec_hash == job.spec_hash():
        return entry(PlanStatus.UNCHANGED)
    return entry(PlanStatus.UPDATE, tuple(changed_fields(previous.spec.to_json(), job.to_json())))


def _duplicate_errors(entries: Sequence[PlanEntry]) -> list[ImportError_]:
    seen: dict[str, PlanEntry] = {}
    errors: list[ImportError_] = []
    for e in entries:
        if e.id is None or e.status not in IMPORTED:
            continue
        first = seen.setdefault(e.id, e)
        if first is not e:
            errors.append(
                ImportError_(
                    e.file,
                    e.line,
                    f"job id '{e.id}' is already used at {first.file}:{first.line}",
                )
            )
    return errors


def make_plan(
    results: Sequence[ParseResult],
    existing: Mapping[str, StoredJob],
    existing_ids_by_file: Mapping[str | tuple[str, str], Iterable[str]],
    *,
    prune: bool = True,
    include_inactive: bool = False,
    ownership: Ownership | None = None,
    vanished: Mapping[tuple[str, str], Iterable[str]] | None = None,
) -> Plan:
    """``existing_ids_by_file``: the registry's ids per source (``ParseResult.source_key``: the
    file, or (host, file) for a fleet's file). ``ownership``: refuse (or, with ``adopt``, take
    over and mark) a job id that another source owns; None skips the check. ``vanished``: a
    fleet's (host, file) sources the registry has but the inventory no longer holds (the host's
    folder is there, the file is not): their jobs are deleted too when pruning."""
    owner_errors: list[ImportError_] = []
    entries = [
        _item_entry(i, existing, include_inactive, ownership, owner_errors)
        for r in results
        for i in r.items
    ]
    errors = [e for r in results for e in r.errors] + owner_errors + _duplicate_errors(entries)
    # Only a job that vanished from its file is deleted: one that is still there, commented
    # out (e.g. retired after a flip), inactive or unsupported keeps its registry entry.
    kept = {e.id for e in entries if e.id is not None}
    if prune:
        for r in results:
            for job_id in sorted(set(existing_ids_by_file.get(r.source_key, ())) - kept):
                entries.append(_deletion(job_id, r.file, r.host, existing,
                                         "no longer in its source file"))
        for (host, file), ids in sorted((vanished or {}).items()):
            for job_id in sorted(set(ids) - kept):
                entries.append(_deletion(job_id, file, host, existing,
                                         "its file is no longer in the host's inventory folder"))
    return Plan(
        entries=tuple(entries),
        errors=tuple(errors),
        notes=tuple(
            n if n.startswith(r.file) else f"{r.file}: {n}" for r in results for n in r.notes
        ),
        files=tuple(r.file for r in results),
        trust=tuple(r.trust for r in results if r.trust is not None),
    )


def _deletion(job_id: str, file: str, host: str | None, existing: Mapping[str, StoredJob],
              reason: str) -> PlanEntry:
    prev = existing.get(job_id)
    return PlanEntry(
        status=PlanStatus.DELETE,
        id=job_id,
        file=file,
        line=prev.spec.source.line if prev else None,
        previous=prev,
        reason=reason,
        host=host if host is not None else (prev.host if prev else None),
    )
