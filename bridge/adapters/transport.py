"""The Redis broker transport the bridge's workers use: kombu's, minus two ways to lose work.

1. **The delivery window** (issue 14.1, measured in ``tests/chaos/test_worker_kill_delivery.py``).
   kombu consumes with ``BRPOP``: Redis removes the message from the queue list the moment it
   answers, and the worker copies it into the ``unacked`` hash (where the visibility timeout
   would bring it back) only after it has read the reply, parsed it and run the consumer
   callback. A worker killed in between loses the message outright: it is in no list, no hash,
   only in a dead socket buffer. Under load the reply can wait in that buffer for a long time
   (the worker's event loop is busy with the previous messages), so the window is wide right
   after a beat burst.

   This channel consumes by moving messages *atomically* into a per-channel **inflight list**
   (``LMOVE queue inflight RIGHT LEFT``, in Redis), and removes each from there (``LREM``) only
   after it is in the ``unacked`` hash. At every instant the message is in the queue, the
   inflight list or the unacked hash. Each channel keeps an ``alive`` key (``SET EX``,
   refreshed every poll and every restore tick); any channel's periodic sweep (and its first
   poll) moves the items of an inflight list whose owner's ``alive`` key expired back to the
   head of their queue. A message can thus be delivered twice (the owner died after ``HSET`` and
   before ``LREM``): the slot claim makes the copy a recorded ``suppressed`` duplicate, never a
   second run.

   * **take**: one Lua script (``TAKE_SCRIPT``, one round trip, atomic) moves up to the
     channel's free prefetch (at most ``TAKE_MAX``) of messages from its queues, one queue after
     the other in kombu's round-robin order, into the inflight lists, and returns them. One
     pipeline then writes all their unacked entries and, after them, their ``LREM`` commands; then
     kombu's callbacks run (:mod:`bridge.adapters.take`). A burst of N messages thus costs two
     round trips per take, not three per message;
   * **wait**, when every queue was empty: a channel on one Redis key (one queue; the app sets
     ``priority_steps=[0]``, the bridge publishes no priorities) blocks in ``BLMOVE queue
     inflight`` (the one message it moves goes the same way); a channel on several (a per-host
     worker: its host's queue and the shared one) blocks in ``BRPOP`` on the queues' **bells**
     (``_bridge.bell.<queue>``), never on the queues. A bell holds wake-up tokens only: this
     transport's producers push one after each message (``Channel._put``, beat's
     ``push_encoded``; a publish batch pushes
     one per message at flush, at most ``BELL_CAP`` per queue), and a token popped by a worker
     that dies, or that finds the queue already emptied by another worker, loses nothing. The
     woken channel takes again at once.

   So a message sent by a bridge producer (beat, ``bridge`` commands, the health task's repairs,
   Flower through the bridge app) wakes a multi-queue worker as fast as ``BLMOVE`` would (one
   extra round trip, ``bench/multi_queue_latency.py``); one pushed by a foreign producer that
   rings no bell is found at the next wait timeout (``brpop_timeout``, 1 s). A short blocking
   ``BLMOVE`` on one queue between takes would instead add up to its timeout to every message on
   the others, and Redis rounds such timeouts up to its ``hz`` tick (100 ms at the default).
   With ``global_keyprefix`` set the channel falls back to kombu's ``BRPOP`` (and says so once).

   The inflight index (``INFLIGHT_INDEX``) names, for every live channel, each queue it
   consumes: :func:`bridge.adapters.inflight.live_consumers` reads it (with the ``alive``
   keys) to say which queues have a live consumer (``bridge status``, the health task).

2. **Garbage on a queue.** kombu decodes each item it pops; an item that is not a kombu message
   (raw bytes pushed by hand, a foreign producer) raises out of the consumer loop and stops the
   worker ("Unrecoverable error"). This channel logs it (truncated), drops it and carries on.
   The same holds for an item that is JSON but not a kombu message (``{}``, ``{"body": "x"}``,
   a body that is not valid base64): kombu's ``KeyError('properties')`` made the consumer drop
   its connection and reconnect; :meth:`Transport._deliver` checks the shape first (found by
   ``tests/fuzz``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from bridge.adapters.acks import AckBatcher
from bridge.adapters.inflight import (
    ALIVE_PREFIX,
    INFLIGHT_INDEX,
    INFLIGHT_PREFIX,
    MIN_ALIVE_TTL,
    TAKE_MAX,
    TAKE_SCRIPT,
    bell_key,
    owner_of,
    ring,
)
from bridge.adapters.message_shape import not_a_message
from bridge.adapters.take import QoS, register_taken

log = logging.getLogger("bridge.adapters.transport")

@dataclass(frozen=True)
class _Poll:
    """The command a channel has outstanding on its polling connection."""

    kind: str  # "move" (BLMOVE), "take" (TAKE_SCRIPT), "wait" (BRPOP on bells)
    sources: tuple[tuple[str, str], ...]  # (queue name, its Redis key), in polling order


class PublishBatch(kombu_redis.PublishBatch):
    """kombu's publish batch, plus one bell token per message, pushed after the messages."""

    def __init__(self, channel: Any, max_size: int) -> None:
        super().__init__(channel, max_size)
        self.rings: Counter[str] = Counter()

    def flush(self) -> None:
        if self._buffered and self.rings:
            for key, n in sorted(self.rings.items()):
                ring(self.pipeline, key, n)
        self.rings.clear()
        super().flush()

    def discard(self) -> None:
        self.rings.clear()
        super().discard()


class Channel(kombu_redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bridge_id = uuid.uuid4().hex
        self._bridge_poll: _Poll | None = None  # None: nothing outstanding, or kombu's BRPOP
        self._alive_at = 0.0
        self._swept = False
        self._warned_prefix = False
        self._indexed: set[str] = set()
        self.registered: set[str] = set()  # delivery tags already written to the unacked hash
        self.acks = AckBatcher(self)  # acknowledgements, written to Redis in batches

    # --- keys -----------------------------------------------------------------------------------

    def inflight_key(self, queue_key: str) -> str:
        return f"{INFLIGHT_PREFIX}{self._bridge_id}.{queue_key}"

    @property
    def alive_key(self) -> str:
        return f"{ALIVE_PREFIX}{self._bridge_id}"

    @property
    def alive_ttl(self) -> int:
        interval = int(getattr(self, "unacked_restore_interval", 10) or 10)
        return max(MIN_ALIVE_TTL, 3 * interval)

    # --- publishing -----------------------------------------------------------------------------

    def create_publish_batch(self, max_size: int) -> PublishBatch:
        return PublishBatch(self, max_size)

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """kombu's ``_put``, ringing the queue's bell after the message (same round trip)."""
        batch = kwargs.get("_publish_batch")
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        if batch is not None or self.global_keyprefix:
            super()._put(queue, message, **kwargs)
            if isinstance(batch, PublishBatch):
                batch.rings[key] += 1
            return
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, dumps(message))
            if self._expires and queue in self._expires:
                for pri in self.priority_steps:
                    pipe.pexpire(self._q_for_pri(queue, pri), self._expires[queue])
            ring(pipe, key)
            pipe.execute()

    # --- liveness and the sweep ------------------------------------------------------------------

    def refresh_alive(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._alive_at < self.alive_ttl / 3:
            return
        with self.conn_or_acquire() as client:
            client.set(self.alive_key, "1", ex=self.alive_ttl)
        self._alive_at = now
        self._indexed.clear()  # re-register our inflight lists now and then (a sweep may drop one)

    def restore_dead_inflight(self) -> int:
        """Move the items of every dead channel's inflight list back to the head of its queue."""
        moved = 0
        with self.conn_or_acquire() as client:
            for raw_key, raw_queue in (client.hgetall(INFLIGHT_INDEX) or {}).items():
                key, queue_key = bytes_to_str(raw_key), bytes_to_str(raw_queue)
                owner = owner_of(key)
                if owner == self._bridge_id or client.exists(f"{ALIVE_PREFIX}{owner}"):
                    continue
                while client.lmove(key, queue_key, "RIGHT", "RIGHT") is not None:
                    moved += 1
                client.hdel(INFLIGHT_INDEX, key)
        if moved:
            log.warning("restored %d message(s) a dead worker had taken off its queue but not "
                        "yet registered as unacknowledged", moved)
        return moved

    def _register_inflight(self, sources: Sequence[tuple[str, str]]) -> None:
        """Name our inflight lists in the index before anything can be moved into them."""
        missing = {self.inflight_key(key): key for _, key in sources
                   if self.inflight_key(key) not in self._indexed}
        if missing:
            with self.conn_or_acquire() as client:
                client.hset(INFLIGHT_INDEX, mapping=missing)
            self._indexed.update(missing)

    # --- publishing in bulk ---------------------------------------------------------------------

    def push_encoded(self, pipe: Any, queue: str, payloads: list[str]) -> None:
        """Queue messages already in kombu's wire form (the JSON envelope ``_put`` pushes) on
        ``queue`` with one ``LPUSH``, in the caller's pipeline: beat's batch publisher
        (:mod:`bridge.beat.publish`) sends thousands at once. Priority 0, the only one the
        bridge publishes; oldest first, as one ``LPUSH`` per message would leave them. The
        queue's bell is rung after them (one token per message, at most ``BELL_CAP``)."""
        key = self._q_for_pri(queue, 0)
        pipe.lpush(key, *payloads)
        ring(pipe, key, len(payloads))

    # --- consuming --------------------------------------------------------------------------------

    def _brpop_start(self, timeout: Any = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        sources = tuple((queue, self._q_for_pri(queue, pri))
                        for pri in self.priority_steps for queue in queues)
        if self.global_keyprefix:
            if not self._warned_prefix:
                self._warned_prefix = True
                log.warning("global_keyprefix is set: kombu's BRPOP is used, whose delivery "
                            "window a killed worker can lose a message in")
            self._bridge_poll = None
            return self._brpop_keys([key for _, key in sources], timeout)
        self.refresh_alive()
        if not self._swept:
            self._swept = True
            self.restore_dead_inflight()
        self._register_inflight(sources)
        self._send_take(sources)

    def _send(self, poll: _Poll, *command: Any) -> None:
        self._bridge_poll = poll
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(*command)

    def take_limit(self) -> int:
        """How many messages one take may move: the prefetch still free, at most TAKE_MAX."""
        free = self.qos.can_consume_max_estimate()
        return TAKE_MAX if free is None else max(1, min(TAKE_MAX, free))

    def _send_take(self, sources: tuple[tuple[str, str], ...]) -> None:
        keys = [k for _, key in sources for k in (key, self.inflight_key(key))]
        self._send(_Poll("take", sources), "EVAL", TAKE_SCRIPT, len(keys), *keys,
                   self.take_limit())

    def _send_move(self, sources: tuple[tuple[str, str], ...]) -> None:
        key = sources[0][1]
        self._send(_Poll("move", sources), "BLMOVE", key, self.inflight_key(key), "RIGHT",
                   "LEFT", self.brpop_timeout or 1)

    def _send_wait(self, sources: tuple[tuple[str, str], ...]) -> None:
        bells = [bell_key(key) for _, key in sources]
        self._send(_Poll("wait", sources), "BRPOP", *bells, self.brpop_timeout or 1)

    def _brpop_keys(self, keys: list[str], timeout: Any) -> None:
        """kombu's BRPOP start (a channel with ``global_keyprefix``)."""
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        command_args = ["BRPOP", *keys, timeout or 0]
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _brpop_read(self, **options: Any) -> bool:
        poll = self._bridge_poll
        if poll is None:
            try:
                return bool(super()._brpop_read(**options))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                log.error("dropped an undecodable item from the broker queue (not a kombu "
                          "message): %s", str(e)[:200])
                raise Empty() from e
        self._bridge_poll = None
        polling = False  # another command was sent: the connection stays in poll
        try:
            command = {"move": "BLMOVE", "take": "EVAL", "wait": "BRPOP"}[poll.kind]
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if poll.kind == "wait":  # a bell rang (or the wait timed out): take at once
                self._send_take(poll.sources)
                polling = True
                raise Empty()
            if poll.kind == "take":
                if not reply:  # every queue was empty: block in BLMOVE (one queue) or on bells
                    (self._send_move if len(poll.sources) == 1 else self._send_wait)(poll.sources)
                    polling = True
                    raise Empty()
                queues = {k: q for q, k in poll.sources}
                taken = [(queues[bytes_to_str(reply[i])], bytes_to_str(reply[i]), reply[i + 1])
                         for i in range(0, len(reply), 2)]
            else:
                if reply is None:
                    raise Empty()
                taken = [(*poll.sources[0], reply)]
            self._deliver_taken(taken)
            return True
        finally:
            if not polling:
                self._in_poll = None  # type: ignore[assignment]
                self._flush_brpop_reauth()

    def _deliver_taken(self, taken: list[tuple[str, str, Any]]) -> None:
        """Hand items that sit in our inflight lists to kombu: first, in one round trip, the
        well-formed ones into the unacked hash and then out of the inflight lists (in that
        order: at every instant each is in one of them); then their callbacks. Any other item
        goes the one-by-one way (:meth:`_deliver_moved`)."""
        with self.conn_or_acquire() as client:
            payloads = register_taken(self, client, taken)
        failure: BaseException | None = None
        for (queue, key, item), payload in zip(taken, payloads, strict=True):
            try:
                if payload is None:
                    self._deliver_moved(queue, key, item)
                else:
                    self._queue_cycle.rotate(queue)
                    self.connection._deliver(payload, queue)
            except Empty:
                continue
            except Exception as e:  # the others are registered: deliver them all the same
                failure = failure or e
        if failure is not None:
            raise failure

    def _deliver_moved(self, queue: str, key: str, item: Any) -> None:
        """Hand an item that sits in our inflight list to kombu (-> the unacked hash, acks_late),
        then drop it from the inflight list."""
        inflight = self.inflight_key(key)
        try:
            try:
                payload = loads(bytes_to_str(item))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                log.error("dropped an undecodable item from the broker queue (not a kombu "
                          "message): %s", str(e)[:200])
                raise Empty() from e
            self._queue_cycle.rotate(queue)
            self.connection._deliver(payload, queue)
        finally:
            self.client.lrem(inflight, 1, item)

    def close(self) -> None:
        if not getattr(self, "closed", False):
            self.acks.close()  # before kombu restores what is still unacknowledged
            try:
                with self.conn_or_acquire() as client:
                    client.delete(self.alive_key)
                    for key in list(self.active_queues):
                        inflight = self.inflight_key(self._q_for_pri(key, 0))
                        if not client.llen(inflight):
                            client.hdel(INFLIGHT_INDEX, inflight)
            except Exception:  # closing: the sweep of another worker cleans up
                log.debug("could not clean the inflight bookkeeping", exc_info=True)
        super().close()


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: Any) -> None:
        problem = not_a_message(message)
        if problem is not None:
            log.error("dropped an item from the broker queue %r (not a kombu message: %s): %s",
                      queue, problem, repr(message)[:200])
            return
        super()._deliver(message, queue)
