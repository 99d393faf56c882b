"""The Redis broker transport the bridge's workers use: kombu's, minus one way to die.

kombu's Redis channel decodes each item it pops with ``BRPOP``; an item that is not a kombu
message (raw bytes pushed by hand, a foreign producer, a corrupted write) raises out of the
consumer loop and stops the worker ("Unrecoverable error"). The item is already popped, so
nothing is gained by dying: this channel logs it (truncated) and carries on.
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
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            log.error("dropped an undecodable item from the broker queue (not a kombu message): %s",
                      str(e)[:200])
            raise Empty() from e


class Transport(kombu_redis.Transport):
    Channel = Channel
