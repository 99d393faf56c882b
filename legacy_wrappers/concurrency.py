"""Per-group concurrency limits: a Redis lease semaphore shared by every worker.

``Policies.max_concurrency`` (with ``Policies.group``) bounds how many *authoritative* runs of
the jobs in one group execute at once, across all workers and hosts. Shadow runs (legacy owns
the slot) ignore the limit: they are observations, not the job's real work.

The semaphore
  One sorted set per group, ``<redbeat_key_prefix>:bridge:group:<group>``; a member is a
  permit holder (the run's claim holder, ``<task id>@<host>:<pid>``), its score the permit's
  expiry as an epoch in seconds. :meth:`GroupSemaphore.acquire` is one Lua script, so it is
  atomic on the Redis server: drop the expired members, then ``ZADD`` the holder if ``ZCARD``
  is below the limit (1) or refuse (0). Re-acquiring a permit one already holds just extends
  it. :meth:`~GroupSemaphore.release` is ``ZREM``; :meth:`~GroupSemaphore.renew` extends a
  permit still held (never resurrects one that expired, which a full group may have reused).
  The key itself expires a while after the last expiry in it, so a retired group leaves
  nothing behind. The limit is read from each caller's spec: while a change of the limit
  rolls out, the workers that already have the new spec apply the new one.

Lease
  A permit lasts as long as the run's claim lease (30 s) and is renewed by the claim's own
  heartbeat (a :attr:`legacy_wrappers.claims.Lease.companions` hook, every 10 s): a worker
  that dies (SIGKILL, host lost) frees its permit within one lease period, as it frees the
  slot's claim. A finished run releases its permit at once (``finally``).

Where it sits in ``bridge.run_job`` (authoritative path)
  claim the slot -> overlap check -> **acquire the group permit** -> run -> record -> release.
  The claim comes first so duplicate deliveries never take (or even touch) a permit. When the
  group is full the task does not run and does not record a row (the eventual run records the
  slot); it *parks* the claim and retries itself:

  1. ``task.retry(countdown=2..5 s)`` is published first (a crash right after it leaves a
     running claim of the same lineage, which the retry waits out and takes over: the usual
     redelivery path);
  2. the claim is set ``deferred`` (:meth:`legacy_wrappers.claims.Lease.defer`: fenced on
     holder and attempt, ``attempts`` unchanged because nothing ran). A crash between 1. and
     2. is covered by 1.; a crash before 1. by ``acks_late`` (the message is redelivered, same
     lineage).
  3. The retry (same task id, i.e. same lineage) resumes the deferred claim
     (``Action.RESUME``, attempts unchanged) and tries the permit again.

  So the slot is never lost (only its own lineage may resume it, and that lineage always has a
  message in flight), never run twice (the claim is the guard: a duplicate or a manual re-send
  of a deferred slot is refused and recorded ``suppressed``), and a deferral does not use up
  the job's retry budget or takeover limit. A Redis error while acquiring parks the claim the
  same way and retries through the task's infrastructure path (30 s). Waiting slots are not
  ordered: whichever retry finds a free permit first runs (no FIFO fairness), and a group that
  stays full keeps its slots waiting (each deferral is logged, not recorded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from bridge.core.config import Settings

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 30.0
KEY_GRACE_SECONDS = 3600  # the key outlives its latest permit by this much

# KEYS[1] = group key; ARGV = holder, limit, now, expires_at, key ttl (s)
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] = group key; ARGV = holder, now, expires_at, key ttl (s)
_RENEW = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score == false or tonumber(score) < tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def group_key(prefix: str, group: str) -> str:
    return f"{prefix}:bridge:group:{group}"


class GroupSemaphore:
    """The permits of one group (see the module docstring). Thread-safe, like its client."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        group: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("a permit ttl must be > 0")
        self.client = client
        self.group = group
        self.key = group_key(prefix, group)
        self.ttl = ttl
        self.clock = clock
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    def _key_ttl(self) -> int:
        return int(self.ttl) + KEY_GRACE_SECONDS

    def acquire(self, holder: str, limit: int) -> bool:
        """Take a permit for ``holder`` if fewer than ``limit`` live ones are held."""
        if limit < 1:
            raise ValueError("a concurrency limit must be >= 1")
        now = self.clock()
        won = self._acquire(
            keys=[self.key], args=[holder, limit, repr(now), repr(now + self.ttl), self._key_ttl()]
        )
        return int(won) == 1

    def renew(self, holder: str) -> bool:
        """Extend ``holder``'s live permit by one ttl; ``False`` if it is not held (expired)."""
        now = self.clock()
        renewed = self._renew(
            keys=[self.key], args=[holder, repr(now), repr(now + self.ttl), self._key_ttl()]
        )
        return int(renewed) == 1

    def release(self, holder: str) -> None:
        self.client.zrem(self.key, holder)

    def holders(self) -> list[str]:
        """The live permit holders (expired ones are ignored, not removed)."""
        return [str(m) for m in self.client.zrangebyscore(self.key, self.clock(), "+inf")]

    def permit(self, holder: str, limit: int) -> Permit | None:
        """A :class:`Permit` for ``holder``, or ``None`` when the group is full."""
        return Permit(self, holder) if self.acquire(holder, limit) else None


@dataclass
class Permit:
    """One held permit; :meth:`renew` fits :attr:`legacy_wrappers.claims.Lease.companions`."""

    semaphore: GroupSemaphore
    holder: str

    def renew(self) -> bool:
        if self.semaphore.renew(self.holder):
            return True
        log.warning(
            "group %s permit of %s expired while its run continues; the group may briefly run "
            "one more than its limit", self.semaphore.group, self.holder,
        )
        return False

    def release(self) -> None:
        try:
            self.semaphore.release(self.holder)
        except (redis.RedisError, OSError) as e:  # it expires on its own within one ttl
            log.warning("could not release group %s permit of %s: %s",
                        self.semaphore.group, self.holder, e)


class Semaphores:
    """The semaphores of one process, one per group, over one Redis client (made lazily)."""

    def __init__(self, settings: Settings, *, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.settings = settings
        self.ttl = ttl
        self._client: redis.Redis | None = None
        self._groups: dict[str, GroupSemaphore] = {}

    def group(self, name: str) -> GroupSemaphore:
        sem = self._groups.get(name)
        if sem is None:
            if self._client is None:
                from bridge.adapters.redis_conn import client

                self._client = client(self.settings)
            sem = GroupSemaphore(
                self._client, self.settings.redbeat_key_prefix, name, ttl=self.ttl
            )
            self._groups[name] = sem
        return sem

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._groups.clear()
