"""Beat's link to the SQL registry, on a background thread so SQL never stalls dispatch.

Two jobs, both run by one daemon thread:

* **Recording** slots beat did not publish (``missed`` by the misfire policy, ``skipped`` because
  the job is paused) as ``runs`` rows (path ``celery``, role ``scheduler``). The tick only appends
  to an in-memory backlog; the thread writes it in batches. While the database is down the backlog
  is kept (bounded: past ``backlog_max`` rows the oldest are dropped and counted, loudly) and
  retried with a growing pause (1 s .. 60 s). Each row carries a ``record_key`` derived from
  ``(job, slot, status)``, so a batch retried after an ambiguous commit cannot record twice.
* **Rehydration**: :func:`bridge.services.sync.sync_registry` rebuilds missing RedBeat entries from
  SQL
  (Redis is only an index). The scheduler asks for it while it holds the beat lock: at its first
  tick, every ``rehydrate_interval`` seconds, and at once when it finds Redis was flushed.

The registry is opened lazily from the :class:`~bridge.core.config.Settings` (``Registry(url)``); a
database that cannot be opened is logged and retried, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from bridge.core.config import Settings
from bridge.core.dispatch import slot_iso
from bridge.core.runs import Path, Role, RunRecord, Status
from bridge.store.db import Registry
from bridge.store.runs import record_many

logger = logging.getLogger("bridge.beat")

FLUSH_CHUNK = 500
MAX_PAUSE = 60.0


@dataclass(frozen=True)
class SlotRecord:
    job_id: str
    slot: datetime
    status: str  # "missed" | "skipped"
    error: str
    host: str

    @property
    def record_key(self) -> str:
        raw = f"{self.job_id}|{slot_iso(self.slot)}|{self.status}"
        return "beat:" + hashlib.sha256(raw.encode()).hexdigest()[:40]

    def record(self) -> RunRecord:
        """The ``runs`` row: the Celery path's scheduler declined the slot."""
        return RunRecord(self.job_id, self.slot, Path.CELERY, Role.SCHEDULER, Status(self.status),
                         error=self.error, host=self.host, record_key=self.record_key)


class RegistryLink:
    """See the module doc. ``sync`` is :func:`bridge.services.sync.sync_registry` (injectable)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backlog_max: int = 100_000,
        sync: Callable[[Registry, Settings], object] | None = None,
    ) -> None:
        self.settings = settings
        self.backlog: deque[SlotRecord] = deque()
        self.backlog_max = backlog_max
        self.dropped = 0
        self.last_error: str | None = None
        self._sync = sync or _default_sync
        self._registry: Registry | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rehydrate = threading.Event()
        self._pause = 0.0
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None

    # --- called from the tick ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bridge-registry", daemon=True)
            self._thread.start()

    def record(self, records: Iterable[SlotRecord]) -> None:
        with self._lock:
            self.backlog.extend(records)
            overflow = len(self.backlog) - self.backlog_max
            for _ in range(max(0, overflow)):
                self.backlog.popleft()
            if overflow > 0:
                self.dropped += overflow
                logger.error(
                    "beat: registry backlog full, %d oldest slot records dropped (%d in total)",
                    overflow, self.dropped,
                )
        self._wake.set()

    def request_rehydrate(self) -> None:
        self._rehydrate.set()
        self._wake.set()

    def cancel_rehydrate(self) -> None:
        """Forget a requested rehydration (the lock was lost: entries are another beat's)."""
        self._rehydrate.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self.backlog)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after one last attempt to flush (bounded by ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.pending():
            logger.error("beat: stopping with %d slot records not written to the registry (%s)",
                         self.pending(), self.last_error or "timed out")
        if self._registry is not None:
            self._registry.dispose()
            self._registry = None

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            stopping = self._stop.is_set()
            if stopping or time.monotonic() >= self._retry_at:
                self.work_once()
            if stopping:
                return

    def work_once(self) -> bool:
        """Flush the backlog, then rehydrate if asked; False (and a pause) on a failure."""
        try:
            registry = self._open()
            self._flush(registry)
            if self._rehydrate.is_set():
                self._rehydrate.clear()
                try:
                    self._sync(registry, self.settings)
                except Exception:
                    self._rehydrate.set()
                    raise
        except Exception as e:  # the database or Redis is down: keep the backlog, retry later
            self._failed(e)
            return False
        if self.last_error is not None:
            logger.warning("beat: registry reachable again, recording resumed")
        self.last_error, self._pause, self._retry_at = None, 0.0, 0.0
        return True

    def _open(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings.database_url)
        return self._registry

    def _failed(self, err: Exception) -> None:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if message != self.last_error:
            logger.error(
                "beat: registry unavailable (%s); %d slot records kept in memory, will retry",
                message, self.pending(),
            )
        self.last_error = message
        self._pause = min(MAX_PAUSE, max(1.0, self._pause * 2))
        self._retry_at = time.monotonic() + self._pause
        if self._registry is not None:
            self._registry.dispose()
            self._registry = None

    def _flush(self, registry: Registry) -> None:
        while True:
            with self._lock:
                chunk = [self.backlog.popleft() for _ in range(min(FLUSH_CHUNK, len(self.backlog)))]
            if not chunk:
                return
            try:
                _insert(registry, chunk)
            except BaseException:
                with self._lock:  # put it back in front, in order
                    self.backlog.extendleft(reversed(chunk))
                raise


def _insert(registry: Registry, chunk: list[SlotRecord]) -> None:
    """Insert the chunk in one transaction; a record already stored (same key) is skipped."""
    with registry.session() as s:
        record_many(s, [r.record() for r in chunk])


def _default_sync(registry: Registry, settings: Settings) -> object:
    """``sync_registry``, except that an EMPTY registry never wipes Redis: a beat pointed at the
    wrong database (a fresh default SQLite file) must not delete every entry; that takes an
    explicit ``bridge sync``."""
    from bridge.adapters import redis_conn
    from bridge.adapters.redbeat_entries import EntryStore
    from bridge.services.sync import sync_registry
    from bridge.store.repos import JobRepo

    with registry.session() as s:
        jobs = JobRepo(s).count()
    if jobs == 0:
        managed = EntryStore(redis_conn.client(settings), settings.redbeat_key_prefix).count()
        if managed:
            logger.error(
                "beat: the registry %s holds no job but Redis holds %d bridge entries: not "
                "rehydrating (wrong BRIDGE_DATABASE_URL?); `bridge sync` makes Redis match it",
                registry.masked_url, managed,
            )
            return None
    report = sync_registry(registry, settings)
    if report.drift:
        logger.warning("beat: rehydrated RedBeat entries from the registry: %s", report.to_json())
    return report
