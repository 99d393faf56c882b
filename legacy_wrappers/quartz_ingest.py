"""``bridge legacy ingest --quartz-spool DIR``: upload what the Quartz plugin spooled.

The plugin (``legacy_wrappers/quartz/src``, ``cronbridge.quartz.BridgePlugin``) writes spool
version 1 lines with ``"source": "quartz"`` and the bridge job id already resolved (same rule
as ``bridge import quartz``), into ``quartz-<date>-<host>-p<pid>-<start>-<seq>.jsonl`` files
(a name is never reused, so archiving never overwrites), under the same POSIX record lock the
cron shim uses. Uploading is therefore :func:`legacy_wrappers.spool.
flush` itself (idempotent by ``record_key``: re-ingesting adds nothing; a half-written last
line stays in place for the next run; invalid lines go to ``rejected/``); this module adds:

* **Drops.** A record the plugin could not write (disk full, directory not writable, queue
  full) is counted in ``<DIR>/.dropped``: one line ``dropped <N>``, N zero-padded to 20 digits
  so the plugin rewrites the same bytes in place (which works on a full disk, and in a
  directory that became read-only, as long as the file exists: :func:`ensure_counter`
  creates it, and so does the plugin when it starts). :func:`ingest` reports N, then resets
  it to 0 under the lock (after a successful upload only): N is the loss since the previous
  ingest. The plugin also logs every drop.
* **Archive.** Uploaded files move to ``<DIR>/archive/`` by default (``archive_dir``);
  ``archive_dir=None`` with ``delete=True`` removes them instead.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from legacy_wrappers.spool_flush import FlushReport, flush

if TYPE_CHECKING:
    from bridge.store.db import Registry

DROPPED = ".dropped"
WIDTH = 20
ARCHIVE = "archive"


def counter_text(n: int) -> bytes:
    return f"dropped {n:0{WIDTH}d}\n".encode("ascii")


def parse_counter(data: bytes) -> int:
    text = data.decode("ascii", "replace").strip()
    if not text.startswith("dropped "):
        return 0
    try:
        return max(int(text[len("dropped "):].strip()), 0)
    except ValueError:
        return 0


def ensure_counter(spool_dir: str) -> bool:
    """Create ``<spool_dir>/.dropped`` (``dropped 0``) if missing; False when it cannot."""
    path = os.path.join(spool_dir, DROPPED)
    if os.path.exists(path):
        return True
    try:
        os.makedirs(spool_dir, mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return True
    except OSError:
        return False
    try:
        os.fchmod(fd, 0o666)  # a Quartz JVM running as another user must be able to count
        os.write(fd, counter_text(0))
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def take_dropped(spool_dir: str, *, reset: bool = True) -> int | None:
    """The plugin's drop count (None when there is no counter file); reset to 0 if asked."""
    path = os.path.join(spool_dir, DROPPED)
    try:
        fd = os.open(path, os.O_RDWR if reset else os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        reset = False
    try:
        if reset:
            fcntl.lockf(fd, fcntl.LOCK_EX)  # the plugin holds it for microseconds
        count = parse_counter(os.pread(fd, 64, 0))
        if reset and count:
            data = counter_text(0)
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        return count
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class QuartzIngestReport:
    flush: FlushReport
    dropped: int | None  # records the plugin could not spool since the last ingest (None: no
    #                      counter file, so the plugin never ran here or the dir is unusable)
    archive_dir: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.flush.to_json(), "source": "quartz", "dropped": self.dropped,
                "archive_dir": self.archive_dir}


def ingest(registry: Registry, spool_dir: str, *, archive_dir: str | None = None,
           delete: bool = False) -> QuartzIngestReport:
    """Upload the Quartz spool of ``spool_dir`` exactly once, archive it, report the drops.

    Raises :class:`bridge.core.errors.InfraError` when the registry is unreachable (the drop
    counter is then left as it was)."""
    archive = None if delete else (archive_dir or os.path.join(spool_dir, ARCHIVE))
    report = flush(registry, spool_dir, archive_dir=archive)
    dropped = take_dropped(spool_dir)
    if dropped is None:
        ensure_counter(spool_dir)
    return QuartzIngestReport(report, dropped, archive)
