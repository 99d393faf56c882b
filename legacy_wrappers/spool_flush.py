"""Uploading the legacy spool (:mod:`legacy_wrappers.spool`) to the registry, exactly once.

Upload (:func:`flush`)
  For each file, under the same lock (a file locked by a writer is skipped this time): every
  complete line is parsed and uploaded in one transaction with
  :func:`bridge.store.spooled.store_spooled` (a ``record_key`` already stored adds nothing, so
  re-flushing adds nothing); lines that are not valid records, or that the database refuses
  (each record has its own savepoint), are appended to ``rejected/<file>`` (kept, never
  silently dropped; ``flush`` exits 1). After the commit the file is removed (or moved to
  ``archive_dir``). A trailing line without its newline is kept in place for the next run (a
  writer that does not lock may still be writing it); only when the file has not changed for
  :data:`STALE_TAIL_SECONDS` is such a torn line rejected and the file removed. A crash
  anywhere re-uploads at worst (idempotent).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.store.db import Registry
from bridge.store.spooled import store_spooled
from legacy_wrappers.spool import lock, parse_spool, same_file, spool_files

__all__ = ["FlushReport", "flush", "flush_if_pending"]

REJECTED_DIR = "rejected"
FLUSH_LOCK = ".flush.lock"
STALE_TAIL_SECONDS = 3600


@dataclass(frozen=True)
class FlushReport:
    """What one :func:`flush` did. ``uploaded`` records were new to the registry,
    ``duplicates`` were already there (a re-flush), ``rejected`` lines went to ``rejected/``."""

    spool_dir: str
    files: int = 0
    uploaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    removed: tuple[str, ...] = ()
    kept_partial: tuple[str, ...] = ()  # files with a torn last line, kept for the next run
    busy: tuple[str, ...] = ()  # files a writer held locked: next time
    rejections: tuple[str, ...] = field(default=(), repr=False)  # "file:line: reason"

    def to_json(self) -> dict[str, Any]:
        return {
            "spool_dir": self.spool_dir,
            "files": self.files,
            "uploaded": self.uploaded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "removed": list(self.removed),
            "kept_partial": list(self.kept_partial),
            "busy": list(self.busy),
            "rejections": list(self.rejections),
        }


@dataclass
class _Tally:
    files: int = 0
    uploaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    removed: list[str] = field(default_factory=list)
    kept_partial: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


def flush(registry: Registry, spool_dir: str, *, archive_dir: str | None = None) -> FlushReport:
    """Upload every complete record of ``spool_dir`` exactly once (see the module docstring).

    Raises :class:`bridge.core.errors.InfraError` when the registry is unreachable; files already
    uploaded by then are gone from the spool, the others are untouched."""
    tally = _Tally()
    for path in spool_files(spool_dir):
        tally.files += 1
        _flush_file(registry, path, spool_dir, archive_dir, tally)
    return FlushReport(
        spool_dir,
        tally.files,
        tally.uploaded,
        tally.duplicates,
        tally.rejected,
        tuple(tally.removed),
        tuple(tally.kept_partial),
        tuple(tally.busy),
        tuple(tally.rejections),
    )


def _flush_file(
    registry: Registry, path: str, spool_dir: str, archive_dir: str | None, tally: _Tally
) -> None:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        if not lock(fd, 0) or not same_file(fd, path):
            tally.busy.append(path)
            return
        st = os.fstat(fd)
        data = _read_all(fd)
        parsed = parse_spool(data, stale=time.time() - st.st_mtime > STALE_TAIL_SECONDS)
        added, refused = store_spooled(registry, parsed.records)
        tally.uploaded += added
        tally.duplicates += len(parsed.records) - added - len(refused)
        parsed.rejects.extend(refused)
        if parsed.tail:
            tally.kept_partial.append(path)
            return  # the rejects are written when the file is finally consumed
        _reject(spool_dir, os.path.basename(path), parsed.rejects, tally)
        _retire(path, archive_dir)
        tally.removed.append(path)
    finally:
        os.close(fd)  # releases the lock


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _reject(
    spool_dir: str, name: str, rejects: list[tuple[int, bytes, str]], tally: _Tally
) -> None:
    if not rejects:
        return
    from bridge.adapters.fsperm import private_dir

    directory = os.path.join(spool_dir, REJECTED_DIR)
    private_dir(directory)
    data = b"".join(raw.rstrip(b"\n") + b"\n" for _, raw, _ in rejects)
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tally.rejected += len(rejects)
    tally.rejections.extend(f"{name}:{n}: {why}" for n, _, why in rejects)


def _retire(path: str, archive_dir: str | None) -> None:
    if archive_dir is None:
        os.unlink(path)
        return
    from bridge.adapters.fsperm import private_dir

    private_dir(archive_dir)
    name = os.path.basename(path)
    target = os.path.join(archive_dir, name)
    if os.path.exists(target):  # the shim reuses a file name all day: never overwrite an archive
        stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
        target = os.path.join(archive_dir, f"{stem}.{time.time_ns()}.jsonl")
    os.replace(path, target)


def flush_if_pending(
    registry_factory: Callable[[], Registry], spool_dir: str
) -> FlushReport | None:
    """The shim's cheap opportunistic flush: nothing (not even an import) unless spool files
    wait, and only one process flushes a directory at a time (others return None at once)."""
    if not spool_files(spool_dir):
        return None
    fd = os.open(os.path.join(spool_dir, FLUSH_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not lock(fd, 0):
            return None
        registry = registry_factory()
        try:
            return flush(registry, spool_dir)
        finally:
            registry.dispose()
    finally:
        os.close(fd)
