"""``BridgeScheduler``: RedBeat's lock and key layout, the bridge's own tick.

Run it as ``celery -A bridge.celery_app beat -S bridge.scheduler:BridgeScheduler``.

What it keeps from :class:`redbeat.RedBeatScheduler`: the key layout, the lock (a second beat
blocks in ``beat_init`` until the lock is free, then takes over), static ``beat_schedule``
entries, and stock entries under the same prefix (handled by RedBeat's own code path).

What it replaces, for bridge entries (``schedule.__type__ == "bridge"``):

* **Due time from the dialect evaluator.** An entry's score is its next slot (UTC epoch), never
  RedBeat's ``last_run_at + remaining`` arithmetic; the decision per entry is the pure
  :func:`bridge.core.dispatch.due_slots` (misfire skip / fire_once / fire_all, paused jobs,
  watermark).
* **Batches.** Per tick, per chunk of 1,000 due entries: one Lua round trip loads them (and checks
  and extends the lock, and stamps the liveness hash), one producer batch publishes every message
  (:class:`bridge.beat.publish.BatchPublisher`), one Lua round trip writes back every entry's
  ``last_slot`` watermark together with its next score (fenced by the lock).
* **The slot travels in the message**: ``bridge.run_job(job_id, "2026-03-08T07:00:00Z")`` to the
  entry's queue; with opt-in jitter the message carries an ``eta`` of slot + a deterministic
  offset, the slot argument stays nominal.
* **Order: publish, then write back.** A beat killed between the two republishes that chunk's
  slots on restart (at least once); the worker's claim on ``(job, slot)`` suppresses the duplicate
  run. A beat that fails to publish does not write back, so nothing is lost.
* **Losing the lock stops beat**: when another beat holds it (load or fenced write-back says so),
  one error line, nothing more written, exit code 3 (:data:`LOCK_LOST_EXIT`), no traceback.
* **A bad entry never stops beat**: undecodable JSON, an unknown encoding version or dialect, an
  evaluator that raises -> logged once and moved to the quarantine zset (``bridge status``).
* **SQL is the source of truth**: missed / paused slots are recorded as ``runs`` rows and missing
  entries are rebuilt from the registry (at the first tick holding the lock, every
  ``bridge_rehydrate_interval`` seconds (default 300; <= 0 turns rehydration off, not recording),
  and at once when the lock key vanished, i.e. Redis was flushed). Both happen on a background
  thread (:class:`bridge.beat.registry.RegistryLink`): a database outage never stalls dispatch;
  records wait in a bounded in-memory backlog.

Rehydration runs only once the lock is held (not in ``setup_schedule``, which celery calls before
``beat_init`` acquires the lock), so a standby beat never writes entries.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, NoReturn

import redis
from celery import Celery
from redbeat.schedulers import RedBeatScheduler, acquire_distributed_beat_lock, get_redis

from bridge.adapters.beat_store import (
    BeatStore,
    DueBatch,
    LockLost,
    RawEntry,
    WriteBack,
)
from bridge.adapters.redbeat_entries import EntryStore
from bridge.beat.planning import ParsedEntry, PlanMemo, parse_definition
from bridge.beat.publish import BatchPublisher, SlotMessage
from bridge.beat.registry import RegistryLink, SlotRecord
from bridge.core.config import Settings, load_settings
from bridge.core.dispatch import DueSlots, jitter_offset

logger = logging.getLogger("bridge.beat")

CHUNK = 1000
TICK_BUDGET = 5.0  # seconds of dispatching per tick before control returns to the beat loop
WAKE_EPSILON = 0.002
RETRY_DELAY = 1.0
LOCK_LOST_EXIT = 3  # the CLI's "infrastructure" exit code: a supervisor restarts beat as a standby


@dataclass
class TickWork:
    """What one chunk turned into: carried out by the scheduler after planning."""

    firings: list[SlotMessage]
    writes: list[WriteBack]
    records: list[SlotRecord]
    more: bool = False
    earliest: float | None = None  # the smallest future score written back

    def note_score(self, score: float) -> None:
        if score >= 0 and (self.earliest is None or score < self.earliest):
            self.earliest = score


class BridgeScheduler(RedBeatScheduler):
    """See the module doc."""

    chunk = CHUNK
    tick_budget = TICK_BUDGET
    lock: Any = None  # RedBeat's redis-py Lock, set by its beat_init handler

    def __init__(self, app: Celery, lock_key: str | None = None, lock_timeout: Any = None,
                 **kwargs: Any) -> None:
        self.settings: Settings = getattr(app.conf, "bridge_settings", None) or load_settings()
        interval = app.conf.get("bridge_rehydrate_interval")
        self.rehydrate_interval = float(300 if interval is None else interval)
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.publisher = BatchPublisher(app)
        self._link: RegistryLink | None = None
        self._store: BeatStore | None = None
        self._next_rehydrate = 0.0
        self.lock_lost = False
        super().__init__(app, lock_key=lock_key, lock_timeout=lock_timeout, **kwargs)

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return str(self.app.redbeat_conf.key_prefix)

    def store(self) -> BeatStore:
        if self._store is None:
            conf = self.app.redbeat_conf
            self._store = BeatStore(get_redis(self.app), prefix=self.prefix,
                                    schedule_key=conf.schedule_key, lock_key=self.lock_key)
        return self._store

    def link(self) -> RegistryLink:
        if self._link is None:
            self._link = RegistryLink(self.settings)
            self._link.start()
        return self._link

    def _token(self) -> str:
        if not self.lock_key:
            return ""
        if self.lock is None:  # beat_init could not take the lock (Redis was down): block now
            acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=self))
        token = self.lock.local.token
        return token.decode() if isinstance(token, bytes) else str(token)

    def _maybe_rehydrate(self) -> None:
        if self.rehydrate_interval <= 0:
            return
        now = time.monotonic()
        if now >= self._next_rehydrate:
            self._next_rehydrate = now + self.rehydrate_interval
            self.link().request_rehydrate()

    # --- the tick -------------------------------------------------------------------------------

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        """Dispatch everything due; return the sleep. Redis being unreachable is logged and
        retried (beat stays up); losing the lock to another beat is :meth:`_lose_lock`."""
        try:
            return self._tick()
        except LockLost:
            self._lose_lock()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            logger.error("beat: Redis unreachable (%s); retrying in %ss", e, RETRY_DELAY)
            self._reset_producer()
            return RETRY_DELAY

    def _lose_lock(self) -> NoReturn:
        """Another beat took the lock: one error line, then stop (nothing more is written).

        Celery's beat loop swallows ``SystemExit`` and then calls :meth:`close`, which writes
        nothing to Redis and re-raises ``SystemExit(LOCK_LOST_EXIT)`` so the process exits 3."""
        self.lock_lost = True
        logger.error("beat lock %s taken over by another beat; exiting (code %d)",
                     self.lock_key, LOCK_LOST_EXIT)
        raise SystemExit(LOCK_LOST_EXIT)

    def _tick(self) -> float:
        token = self._token()
        self._maybe_rehydrate()
        started = time.monotonic()
        while True:
            now = time.time()
            batch = self._load(now, token)
            work = self._dispatch(batch, now, token)
            if work is None:  # publishing failed: try again soon
                return RETRY_DELAY
            full = len(batch.entries) >= self.chunk
            if not full or time.monotonic() - started > self.tick_budget:
                break
        if work.more or full:
            return 0.0
        return self._sleep(batch.next_score, work.earliest)

    def _load(self, now: float, token: str) -> DueBatch:
        link = self._link
        batch = self.store().load_due(
            now, limit=self.chunk, token=token, lock_ms=int(float(self.lock_timeout) * 1000),
            holder=self.holder, backlog=link.pending() if link else 0,
            registry_error=(link.last_error or "") if link else "",
        )
        if batch.relocked:
            logger.warning("beat: the lock key had vanished (Redis flushed?): lock retaken, "
                           "rebuilding entries from the registry")
            if self.rehydrate_interval > 0:
                self.link().request_rehydrate()
        return batch

    def _sleep(self, peeked: float | None, written: float | None) -> float:
        candidates = [s for s in (peeked, written) if s is not None and s >= 0]
        if not candidates:
            return float(self.max_interval)
        delay = min(candidates) - time.time() + WAKE_EPSILON
        return max(0.0, min(delay, float(self.max_interval)))

    def _dispatch(self, batch: DueBatch, now: float, token: str) -> TickWork | None:
        if not batch.entries:
            return TickWork([], [], [])
        began = time.perf_counter()
        work = self.plan(batch.entries, now)
        try:
            self.publisher.publish(self.producer, work.firings)
        except Exception:
            logger.exception("beat: publishing %d messages failed; they stay due, retrying",
                             len(work.firings))
            self._reset_producer()
            return None
        self.store().write_back(work.writes, token=token)
        if work.records:
            self.link().record(work.records)
        if work.firings:
            self._note_batch(len(work.firings), time.perf_counter() - began)
        if work.firings or work.records:
            logger.info("beat: published %d, recorded %d missed/skipped, %d entries",
                        len(work.firings), len(work.records), len(work.writes))
        return work

    def _note_batch(self, size: int, seconds: float) -> None:
        """Beat's last batch (messages, seconds from planning to write-back) into the liveness
        hash, where ``bridge metrics`` reads it from any process. Best effort."""
        try:
            self.store().note_batch(size, seconds, time.time())
        except redis.RedisError:
            logger.debug("beat: recording the batch statistics failed", exc_info=True)

    def _reset_producer(self) -> None:
        self.__dict__.pop("producer", None)
        connection = self.__dict__.pop("connection", None)
        if connection is not None:
            try:
                connection.release()
            except Exception:
                logger.debug("beat: releasing the broker connection failed", exc_info=True)

    # --- planning (no I/O except the stock / quarantine side paths) ------------------------------

    def plan(self, entries: list[RawEntry], now: float) -> TickWork:
        """Decide every due entry of a chunk; returns the messages, write-backs and records."""
        work = TickWork([], [], [])
        now_dt = datetime.fromtimestamp(now, UTC)
        default_queue = str(self.app.conf.task_default_queue or "celery")
        memo = PlanMemo(now_dt)
        for raw in entries:
            if raw.definition is None:
                logger.warning("beat: entry %s has no definition, dropping it", raw.key)
                work.writes.append(WriteBack(raw.key, "", -1.0))
                continue
            try:
                parsed = parse_definition(raw.definition, default_queue)
                if parsed is None:
                    self._stock_entry(raw)
                    continue
                meta, decision, asked = memo.decide(parsed, raw.meta, raw.score)
            except Exception as e:
                self._quarantine(raw.key, e, now_dt)
                continue
            self._apply(work, raw.key, parsed, memo.new_meta(raw.meta, meta, decision, asked, now),
                        decision, now)
        return work

    def _apply(self, work: TickWork, key: str, parsed: ParsedEntry, new_meta: str,
               decision: DueSlots, now: float) -> None:
        policy = parsed.policy
        for slot in decision.publish:
            offset = jitter_offset(parsed.job_id, slot, policy.jitter_seconds)
            eta = datetime.fromtimestamp(slot.timestamp() + offset, UTC) if offset else None
            work.firings.append(SlotMessage(parsed.job_id, slot, parsed.queue, eta))
        for slot in decision.missed:
            late = int(now - slot.timestamp())
            work.records.append(SlotRecord(parsed.job_id, slot, "missed",
                                           f"misfire {policy.misfire.value}: late by {late}s",
                                           self.holder))
        for slot in decision.paused:
            work.records.append(SlotRecord(parsed.job_id, slot, "skipped", "paused", self.holder))
        work.writes.append(WriteBack(key, new_meta, decision.score))
        work.more = work.more or decision.more
        work.note_score(decision.score)

    def _stock_entry(self, raw: RawEntry) -> None:
        """An entry made by stock RedBeat under our prefix: RedBeat's own code path."""
        entry = self.Entry.from_key(raw.key, app=self.app)
        self.maybe_due(entry, producer=self.producer)

    def _quarantine(self, key: str, err: Exception, now: datetime) -> None:
        job_id = key[len(self.prefix):] if key.startswith(self.prefix) else key
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        logger.error("beat: entry %s is unusable (%s); moved to quarantine", job_id, reason)
        EntryStore(get_redis(self.app), self.prefix).quarantine(job_id, reason, now)

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the registry link (flushing the slot records decided while holding the lock) and
        release the lock; after :meth:`_lose_lock`, neither rehydrate nor touch the lock (it is
        another beat's) and exit with ``LOCK_LOST_EXIT``."""
        if self._link is not None:
            if self.lock_lost:
                self._link.cancel_rehydrate()
            self._link.stop(timeout=5.0)
            self._link = None
        if self.lock_lost:
            self.lock = None  # RedBeat's close would log "Releasing lock" and check it
        super().close()
        if self.lock_lost:
            raise SystemExit(LOCK_LOST_EXIT)

    @property
    def info(self) -> str:
        every = (f"every {self.rehydrate_interval:g}s" if self.rehydrate_interval > 0
                 else "disabled")
        return f"{super().info}\n       . bridge -> rehydrate from SQL {every}"
