"""The Redis broker transport the bridge's workers use: kombu's, minus two ways to lose work.

1. **The delivery window** (issue 14.1, measured in ``tests/chaos/test_worker_kill_delivery.py``).
   kombu consumes with ``BRPOP``: Redis removes the message from the queue list the moment it
   answers, and the worker copies it into the ``unacked`` hash (where the visibility timeout
   would bring it back) only after it has read the reply, parsed it and run the consumer
   callback. A worker killed in between loses the message outright: it is in no list, no hash,
   only in a dead socket buffer. Under load the reply can wait in that buffer for a long time
   (the worker's event loop is busy with the previous messages), so the window is wide right
   after a beat burst.

   This channel consumes with ``BLMOVE queue inflight RIGHT LEFT`` instead: Redis moves the
   message *atomically* into a per-channel **inflight list**, and the channel removes it from
   there (``LREM``) only after kombu has put it in the ``unacked`` hash. At every instant the
   message is in the queue, the inflight list or the unacked hash. Each channel keeps an
   ``alive`` key (``SET EX``, refreshed every poll and every restore tick); any channel's periodic
   sweep (and its first poll) moves the items of an inflight list whose owner's ``alive`` key
   expired back to the head of their queue. A message can thus be delivered twice (the owner
   died after ``HSET`` and before ``LREM``): the slot claim makes the copy a recorded
   ``suppressed`` duplicate, never a second run.

   ``BLMOVE`` waits on one list, so it is used when the channel consumes exactly one Redis key
   (one queue; the app sets ``priority_steps=[0]``, the bridge publishes no priorities). A worker
   consuming several queues falls back to kombu's ``BRPOP`` (and says so once at start): run one
   worker per queue to close the window there too. The health task repairs what is lost anyway
   (a slot with no claim is ``missed`` after its grace).

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
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

log = logging.getLogger("bridge.adapters.transport")

INFLIGHT_PREFIX = "_bridge.inflight."
INFLIGHT_INDEX = "_bridge.inflight.index"  # hash: inflight list key -> its queue key
ALIVE_PREFIX = "_bridge.alive."
MIN_ALIVE_TTL = 30  # seconds without a refresh before a channel's inflight list is restored


class QoS(kombu_redis.QoS):
    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        channel = self.channel
        if isinstance(channel, Channel):  # always: only our Channel uses this QoS
            channel.refresh_alive(force=True)
            channel.restore_dead_inflight()
        super().restore_visible(start, num, interval)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bridge_id = uuid.uuid4().hex
        self._blmove_source: tuple[str, str] | None = None  # (queue name, its key) in flight
        self._alive_at = 0.0
        self._swept = False
        self._warned_multi = False
        self._indexed: set[str] = set()

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
                owner = key[len(INFLIGHT_PREFIX):].split(".", 1)[0]
                if owner == self._bridge_id or client.exists(f"{ALIVE_PREFIX}{owner}"):
                    continue
                while client.lmove(key, queue_key, "RIGHT", "RIGHT") is not None:
                    moved += 1
                client.hdel(INFLIGHT_INDEX, key)
        if moved:
            log.warning("restored %d message(s) a dead worker had taken off its queue but not "
                        "yet registered as unacknowledged", moved)
        return moved

    # --- publishing in bulk ---------------------------------------------------------------------

    def push_encoded(self, pipe: Any, queue: str, payloads: list[str]) -> None:
        """Queue messages already in kombu's wire form (the JSON envelope ``_put`` pushes) on
        ``queue`` with one ``LPUSH``, in the caller's pipeline: beat's batch publisher
        (:mod:`bridge.beat.publish`) sends thousands at once. Priority 0, the only one the
        bridge publishes; oldest first, as one ``LPUSH`` per message would leave them."""
        pipe.lpush(self._q_for_pri(queue, 0), *payloads)

    # --- consuming --------------------------------------------------------------------------------

    def _brpop_start(self, timeout: Any = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        if len(keys) != 1 or self.global_keyprefix:
            if not self._warned_multi:
                self._warned_multi = True
                log.warning("consuming %d Redis keys at once: kombu's BRPOP is used, whose "
                            "delivery window a killed worker can lose a message in; run one "
                            "worker per queue to close it", len(keys))
            self._blmove_source = None
            return self._brpop_keys(keys, timeout)
        self.refresh_alive()
        if not self._swept:
            self._swept = True
            self.restore_dead_inflight()
        key = keys[0]
        inflight = self.inflight_key(key)
        if inflight not in self._indexed:  # registered once per channel and queue
            with self.conn_or_acquire() as client:
                client.hset(INFLIGHT_INDEX, inflight, key)
            self._indexed.add(inflight)
        self._blmove_source = (queues[0], key)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self.client.connection.send_command("BLMOVE", key, inflight, "RIGHT", "LEFT",
                                            timeout or 0)

    def _brpop_keys(self, keys: list[str], timeout: Any) -> None:
        """kombu's BRPOP start, for more than one key."""
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        command_args = ["BRPOP", *keys, timeout or 0]
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _brpop_read(self, **options: Any) -> bool:
        source = self._blmove_source
        if source is None:
            try:
                return bool(super()._brpop_read(**options))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                log.error("dropped an undecodable item from the broker queue (not a kombu "
                          "message): %s", str(e)[:200])
                raise Empty() from e
        self._blmove_source = None
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if item is None:
                raise Empty()
            queue, key = source
            inflight = self.inflight_key(key)
            try:
                try:
                    payload = loads(bytes_to_str(item))
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                    log.error("dropped an undecodable item from the broker queue (not a kombu "
                              "message): %s", str(e)[:200])
                    raise Empty() from e
                self._queue_cycle.rotate(queue)
                self.connection._deliver(payload, queue)  # -> unacked hash (acks_late)
            finally:
                self.client.lrem(inflight, 1, item)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def close(self) -> None:
        if not getattr(self, "closed", False):
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


def not_a_message(item: Any) -> str | None:
    """Why a decoded queue item is not a kombu message, or None (the fields kombu reads)."""
    if not isinstance(item, dict):
        return f"a JSON {type(item).__name__}, not an object"
    props = item.get("properties")
    if not isinstance(props, dict) or "delivery_tag" not in props:
        return "no properties.delivery_tag"
    for key in ("headers", "delivery_info"):
        value = item.get(key) if key == "headers" else props.get(key)
        if value is not None and not isinstance(value, dict):
            return f"{key} is not an object"
    body, encoding = item.get("body"), props.get("body_encoding")
    if body is not None and not isinstance(body, str | bytes):
        return "body is not a string"
    if encoding not in (None, "base64", "utf-8") and body:
        return f"unknown body_encoding {str(encoding)[:40]!r}"
    if encoding == "base64" and body:
        import base64
        import binascii

        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "body is not valid base64"
    return None


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: Any) -> None:
        problem = not_a_message(message)
        if problem is not None:
            log.error("dropped an item from the broker queue %r (not a kombu message: %s): %s",
                      queue, problem, repr(message)[:200])
            return
        super()._deliver(message, queue)
