"""The Redis broker transport the bridge's workers use: kombu's, minus one way to die.

kombu's Redis channel decodes each item it pops with ``BRPOP``; an item that is not a kombu
message (raw bytes pushed by hand, a foreign producer, a corrupted write) raises out of the
consumer loop and stops the worker ("Unrecoverable error"). The item is already popped, so
nothing is gained by dying: this channel logs it (truncated) and carries on. The same holds for
an item that is JSON but not a kombu message (``{}``, ``{"body": "x"}``, a body that is not
valid base64): kombu's ``KeyError('properties')`` made the consumer drop its connection and
reconnect; :meth:`Transport._deliver` checks the shape first (found by ``tests/fuzz``).
"""

from __future__ import annotations

import json
import logging
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger("bridge.transport")


class Channel(kombu_redis.Channel):
    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            log.error("dropped an undecodable item from the broker queue (not a kombu message): %s",
                      str(e)[:200])
            raise Empty() from e


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
