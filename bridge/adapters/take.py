"""A take's batch, handed to kombu in one round trip (:mod:`bridge.adapters.transport`).

One take (``TAKE_SCRIPT``, :mod:`bridge.adapters.inflight`) moves up to the channel's free
prefetch of messages into its inflight lists. :func:`register_taken` then writes, in one
pipeline, each message's entry in kombu's ``unacked`` hash and index (exactly what kombu's
``QoS.append`` writes) and only after all of them removes each from its inflight list: Redis runs
a pipeline's commands in order, so at every instant each message is in an inflight list, the
unacked hash, or both (a copy the claim suppresses), never in neither. The channel then runs the
callbacks; :class:`QoS` skips the Redis write for the tags already registered. Per message this
is two round trips fewer than one ``BLMOVE`` + one ``HSET`` pipeline + one ``LREM`` each.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from bridge.adapters.message_shape import not_a_message


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        """kombu's, minus the Redis write for a message already registered as unacknowledged
        by :func:`register_taken`."""
        registered = getattr(self.channel, "registered", None)
        if registered is not None and delivery_tag in registered:
            registered.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        """kombu's bookkeeping now; the Redis write batched (:mod:`bridge.adapters.acks`)."""
        acks = getattr(self.channel, "acks", None)
        if acks is None:
            super().ack(delivery_tag)
            return
        acks.add(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        channel = self.channel
        if hasattr(channel, "restore_dead_inflight"):  # always: only our Channel uses this QoS
            channel.refresh_alive(force=True)
            channel.restore_dead_inflight()
        super().restore_visible(start, num, interval)


def registrable(item: Any) -> Any:
    """The decoded kombu message with the delivery info the unacked hash keeps, or None."""
    try:
        payload = loads(bytes_to_str(item))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not_a_message(payload) is not None:
        return None
    info = payload["properties"].get("delivery_info")
    if not isinstance(info, dict) or "exchange" not in info or "routing_key" not in info:
        return None
    return payload


def register_taken(channel: Any, client: Any, taken: list[tuple[str, str, Any]]) -> list[Any]:
    """For each taken ``(queue, queue key, item)``: its payload once registered as unacknowledged
    and removed from the channel's inflight list (one pipeline for all), or None (an item that
    is not a well-formed kombu message: left in the inflight list for the one-by-one way).

    The unacked entries are written by one ``ZADD`` and one ``HSET`` for the whole take, each
    entry the JSON kombu's ``QoS.append`` writes (``[message, exchange, routing_key]``) built
    around the item's own text (no second encoding of the message)."""
    payloads, ready = [], []
    index: dict[str, float] = {}
    entries: dict[str, str] = {}
    now = time.time()
    for _, key, item in taken:
        text = bytes_to_str(item)
        payload = registrable(text)
        payloads.append(payload)
        if payload is None:
            continue
        props = payload["properties"]
        info, tag = props["delivery_info"], props["delivery_tag"]
        index[tag] = now
        entries[tag] = unacked_entry(text, info["exchange"], info["routing_key"])
        ready.append((key, item, tag))
    if ready:
        with client.pipeline(transaction=False) as pipe:
            pipe.zadd(channel.unacked_index_key, index)
            pipe.hset(channel.unacked_key, mapping=entries)
            for key, item, _ in ready:  # after every unacked entry: never in neither place
                pipe.lrem(channel.inflight_key(key), 1, item)
            pipe.execute()
    channel.registered.update(tag for _, _, tag in ready)
    return payloads


def unacked_entry(message_text: str, exchange: Any, routing_key: Any) -> str:
    """``dumps([message, exchange, routing_key])`` for a message given as its JSON text."""
    return f"[{message_text}, {dumps(exchange)}, {dumps(routing_key)}]"
