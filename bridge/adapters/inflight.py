"""The bridge transport's bookkeeping keys in Redis, and who consumes which queue.

Written by :mod:`bridge.adapters.transport` (see its module doc):

* ``_bridge.inflight.<channel>.<queue>``: a channel's inflight list (a message taken off the
  queue and not yet registered as unacknowledged);
* ``_bridge.inflight.index``: hash, inflight list key -> its queue key; every consuming channel
  registers each queue it consumes before its first poll;
* ``_bridge.alive.<channel>``: the channel's liveness (``SET EX``, refreshed while it runs);
* ``_bridge.bell.<queue>``: wake-up tokens a producer pushes after a message (:func:`ring`).

:func:`live_consumers` reads the index and the liveness keys: the queues some live worker
consumes (``bridge status``, the health task), with no broadcast to the workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from kombu.utils.encoding import bytes_to_str

INFLIGHT_PREFIX = "_bridge.inflight."
INFLIGHT_INDEX = "_bridge.inflight.index"  # hash: inflight list key -> its queue key
ALIVE_PREFIX = "_bridge.alive."
BELL_PREFIX = "_bridge.bell."
BELL_CAP = 64  # wake-up tokens kept per queue: enough to wake that many idle workers at once
MIN_ALIVE_TTL = 30  # seconds without a refresh before a channel's inflight list is restored

# KEYS: queue1, inflight1, queue2, inflight2, ...; ARGV[1]: at most this many items. Moves up
# to ARGV[1] items, one per queue in turn (round-robin, so no queue starves the others), each
# atomically into its inflight list; returns {queue key, item, queue key, item, ...} (empty:
# every queue was empty).
TAKE_SCRIPT = """
local limit, out, found = tonumber(ARGV[1]), {}, true
while found and #out < 2 * limit do
  found = false
  for i = 1, #KEYS, 2 do
    if #out >= 2 * limit then break end
    local item = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
    if item then
      out[#out + 1] = KEYS[i]
      out[#out + 1] = item
      found = true
    end
  end
end
return out
"""
TAKE_MAX = 64  # messages taken per round trip at most (and never more than the free prefetch)


def bell_key(queue_key: str) -> str:
    return BELL_PREFIX + queue_key


def owner_of(inflight_key: str) -> str:
    """The channel id an inflight list key belongs to."""
    return inflight_key[len(INFLIGHT_PREFIX):].split(".", 1)[0]


def ring(pipe: Any, queue_key: str, n: int = 1) -> None:
    """Push ``n`` wake-up tokens (at most ``BELL_CAP`` kept) on the queue's bell, in ``pipe``."""
    bell = bell_key(queue_key)
    pipe.lpush(bell, *(["1"] * min(n, BELL_CAP)))
    pipe.ltrim(bell, 0, BELL_CAP - 1)


def live_consumers(client: Any) -> dict[str, int]:
    """Queue key -> how many live bridge-transport channels consume it (from the inflight index
    and the ``alive`` keys; a channel registers every queue it consumes before its first poll)."""
    index: Mapping[Any, Any] = client.hgetall(INFLIGHT_INDEX) or {}
    entries = [(owner_of(bytes_to_str(k)), bytes_to_str(q)) for k, q in index.items()]
    owners = sorted({owner for owner, _ in entries})
    with client.pipeline(transaction=False) as pipe:
        for owner in owners:
            pipe.exists(f"{ALIVE_PREFIX}{owner}")
        alive = {owner for owner, n in zip(owners, pipe.execute(), strict=True) if n}
    counts: Counter[str] = Counter(queue for owner, queue in entries if owner in alive)
    return dict(counts)
