"""Beat's Redis side: load due entries and write them back, one round trip each.

Both operations are Lua scripts, so each is atomic and costs one round trip per chunk of up to
``limit`` entries (RedBeat 2.4.2 spends two MULTI/EXEC round trips per due entry):

* :meth:`BeatStore.load_due` checks that this beat still holds the RedBeat lock (and extends it),
  stamps the liveness hash ``<prefix>:bridge:beat``, and returns the due entries (key, score,
  definition, meta) plus the earliest future score (to know how long to sleep).
* :meth:`BeatStore.write_back` writes each entry's new meta (the ``last_slot`` watermark) and its
  next score together, only while the lock is still ours (a fenced write), and never resurrects an
  entry deleted meanwhile (``bridge sync`` may delete jobs while beat runs).

If the lock key vanished (Redis was flushed or restarted empty) and nobody else took it, the load
takes it back with ``SET NX`` semantics and reports ``relocked`` so the scheduler rebuilds the
entries from SQL at once. If another beat holds it, :class:`LockLost` is raised: the scheduler
logs one line and exits (code 3) without writing anything more; it never dispatches without the
lock.

The entry keys are not declared to the load script (they are unknown before it runs); with the
default prefix ``{bridge}:`` every key shares one Redis Cluster hash slot, which keeps the script
valid on a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import LockNotOwnedError

LOAD_DUE = """
local relocked = 0
if ARGV[3] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if not holder then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
    relocked = 1
  elseif holder ~= ARGV[3] then
    return {-1}
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
end
redis.call('HSET', KEYS[3], 'holder', ARGV[5], 'tick', ARGV[1], 'backlog', ARGV[6],
           'registry_error', ARGV[7])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES',
                       'LIMIT', 0, 1)
local out = {relocked, nxt[2] or ''}
for i = 1, #due, 2 do
  local v = redis.call('HMGET', due[i], 'definition', 'meta')
  out[#out + 1] = due[i]
  out[#out + 1] = due[i + 1]
  out[#out + 1] = v[1] or ''
  out[#out + 1] = v[2] or ''
end
return out
"""

WRITE_BACK = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
local written = 0
for i = 3, #KEYS do
  local j = 2 * (i - 3) + 2
  if redis.call('HEXISTS', KEYS[i], 'definition') == 1 then
    redis.call('HSET', KEYS[i], 'meta', ARGV[j])
    redis.call('ZADD', KEYS[1], ARGV[j + 1], KEYS[i])
    written = written + 1
  else
    redis.call('ZREM', KEYS[1], KEYS[i])
  end
end
return written
"""


class LockLost(LockNotOwnedError):
    """Another beat holds the RedBeat lock: this beat must stop dispatching."""


@dataclass(frozen=True)
class RawEntry:
    key: str
    score: float
    definition: str | None
    meta: str | None


@dataclass(frozen=True)
class DueBatch:
    entries: list[RawEntry]
    next_score: float | None  # earliest score after now, None when nothing is scheduled
    relocked: bool  # the lock key had vanished and was taken back


@dataclass(frozen=True)
class WriteBack:
    key: str
    meta: str
    score: float


def beat_key(prefix: str) -> str:
    """The liveness hash of the beat holding the lock: ``holder`` (host:pid), ``tick`` (epoch of
    the last tick), ``backlog`` (slot records waiting for the registry), ``registry_error``;
    ``batch`` / ``batch_seconds`` / ``batch_at``: messages in the last batch that published
    any, the seconds it took (planning, publishing, write-back) and when it ended (epoch)."""
    return prefix + ":bridge:beat"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_meta(meta: str | None) -> dict[str, Any]:
    """The meta hash field as a dict; unreadable meta counts as empty (no watermark)."""
    if not meta:
        return {}
    try:
        data = json.loads(meta)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class BeatStore:
    """The two scripts bound to one Redis client, schedule key, lock key and prefix."""

    def __init__(self, client: Any, *, prefix: str, schedule_key: str, lock_key: str | None):
        self.client = client
        self.prefix = prefix
        self.schedule_key = schedule_key
        self.lock_key = lock_key or prefix + ":lock"
        self._load = client.register_script(LOAD_DUE)
        self._write = client.register_script(WRITE_BACK)

    def load_due(
        self,
        now: float,
        *,
        limit: int,
        token: str,
        lock_ms: int,
        holder: str,
        backlog: int = 0,
        registry_error: str = "",
    ) -> DueBatch:
        """Check/extend the lock, stamp liveness, return up to ``limit`` due entries."""
        keys = [self.schedule_key, self.lock_key, beat_key(self.prefix)]
        args = [repr(now), limit, token, lock_ms, holder, backlog, registry_error]
        reply = self._load(keys=keys, args=args)
        if int(reply[0]) < 0:
            raise LockLost(f"beat lock {self.lock_key} is held by another beat")
        entries = [
            RawEntry(
                key=_text(reply[i]),
                score=float(reply[i + 1]),
                definition=_text(reply[i + 2]) or None,
                meta=_text(reply[i + 3]) or None,
            )
            for i in range(2, len(reply), 4)
        ]
        nxt = _text(reply[1])
        return DueBatch(entries, float(nxt) if nxt else None, bool(int(reply[0])))

    def note_batch(self, size: int, seconds: float, at: float) -> None:
        """Record the last dispatched batch in the liveness hash (see :func:`beat_key`)."""
        self.client.hset(beat_key(self.prefix), mapping={
            "batch": str(size), "batch_seconds": f"{seconds:.6f}", "batch_at": repr(at)})

    def write_back(self, writes: Sequence[WriteBack], *, token: str) -> int:
        """Write meta + score for each entry, fenced by the lock; returns how many were written."""
        if not writes:
            return 0
        keys = [self.schedule_key, self.lock_key, *(w.key for w in writes)]
        args: list[Any] = [token]
        for w in writes:
            args += [w.meta, repr(w.score)]
        written = int(self._write(keys=keys, args=args))
        if written < 0:
            raise LockLost(f"beat lock {self.lock_key} was taken over before the write-back")
        return written
