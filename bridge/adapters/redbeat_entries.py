"""RedBeat entries for bridge jobs: encoding, and ``sync`` (make Redis match the registry).

Key layout (RedBeat's, so its tooling and lock keep working):

* ``<prefix><job_id>`` — a hash with ``definition`` (JSON: name, task, args, options, schedule,
  enabled, plus a ``bridge`` section) and ``meta`` (JSON: ``last_slot``, ``last_run_at``,
  ``total_run_count``);
* ``<prefix>:schedule`` — RedBeat's zset: member = entry key, score = the next slot (UTC epoch);
* ``<prefix>:bridge:index`` — the set of job ids whose entries the bridge manages (entries made by
  anything else under the same prefix are never touched);
* ``<prefix>:bridge:quarantine`` — zset of entries the scheduler could not use (score = when),
  with reasons in the hash ``<prefix>:bridge:quarantine:why``.

The default prefix ``{bridge}:`` carries a Redis Cluster hash tag, so every key lands in one slot
(RedBeat's MULTI/EXEC pipelines and the lock need that on a cluster).

The schedule is stored with ``"__type__": "bridge"`` and a version: stock RedBeat cannot use it
(it would crash on it, which is why beat must run :class:`bridge.beat.scheduler.BridgeScheduler`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any, Protocol

import redis

from bridge.core.placement import job_queue
from bridge.core.schedules import Evaluator, compile_schedule
from bridge.core.spec import JobSpec, ScheduleSpec

ENCODING_VERSION = 1
TASK_NAME = "bridge.run_job"
BATCH = 1000

EntryState = tuple[str | None, str | None, float | None]  # definition, meta, score


def schedule_key(prefix: str) -> str:
    return prefix + ":schedule"


def index_key(prefix: str) -> str:
    return prefix + ":bridge:index"


def quarantine_key(prefix: str) -> str:
    return prefix + ":bridge:quarantine"


def quarantine_why_key(prefix: str) -> str:
    return prefix + ":bridge:quarantine:why"


def encode_schedule(s: ScheduleSpec) -> dict[str, Any]:
    return {
        "__type__": "bridge",
        "v": ENCODING_VERSION,
        "dialect": s.dialect.value,
        "expression": s.expression,
        "timezone": s.timezone,
        "start": s.start.isoformat() if s.start else None,
        "end": s.end.isoformat() if s.end else None,
        "interval_ms": s.interval_ms,
        "interval": s.interval,
        "interval_unit": s.interval_unit.value if s.interval_unit else None,
        "repeat_count": s.repeat_count,
    }


def decode_schedule(data: dict[str, Any]) -> ScheduleSpec:
    if data.get("__type__") != "bridge":
        raise ValueError(f"not a bridge schedule (__type__={data.get('__type__')!r})")
    if data.get("v") != ENCODING_VERSION:
        raise ValueError(f"bridge schedule encoding v{data.get('v')} is not supported")
    start, end = data.get("start"), data.get("end")
    return ScheduleSpec(
        dialect=data["dialect"],
        timezone=data["timezone"],
        expression=data.get("expression"),
        start=datetime.fromisoformat(start) if start else None,
        end=datetime.fromisoformat(end) if end else None,
        interval_ms=data.get("interval_ms"),
        interval=data.get("interval"),
        interval_unit=data.get("interval_unit"),
        repeat_count=data.get("repeat_count"),
    )


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=4096)
def _schedule_text(s: ScheduleSpec) -> str:
    return _compact(encode_schedule(s))


def encode_definition(spec: JobSpec, spec_hash: str, *, paused: bool = False) -> str:
    """The entry's ``definition``: sorted compact JSON of name, task, args, kwargs, options,
    schedule, enabled and the bridge section. The schedule's text is shared by the jobs that
    share it and put in its (sorted) place between ``options`` and ``task``."""
    p = spec.policies
    head = {
        "args": [spec.id],
        "bridge": {
            "spec_hash": spec_hash,
            "paused": paused,
            "misfire": p.misfire.value,
            "grace": p.misfire_grace_seconds,
            "catchup": p.catchup_window_seconds,
            "jitter": p.jitter_seconds,
        },
        "enabled": True,
        "kwargs": {},
        "name": spec.id,
        "options": {"queue": job_queue(spec)},
    }
    tail = f',"schedule":{_schedule_text(spec.schedule)},"task":{_compact(TASK_NAME)}}}'
    return _compact(head)[:-1] + tail


@dataclass(frozen=True)
class Desired:
    """What one job's entry must look like."""

    job_id: str
    definition: str
    spec: JobSpec
    watermark: datetime | None = None  # latest slot on record in SQL (rebuilds after data loss)


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    rescored: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def drift(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.rescored)

    def to_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "rescored": self.rescored,
            "unchanged": self.unchanged,
            "drift": self.drift,
        }


@lru_cache(maxsize=4096)
def _evaluator(spec: ScheduleSpec) -> Evaluator:
    return compile_schedule(spec)  # pure and immutable: shared by every job with this schedule


@lru_cache(maxsize=4096)
def next_score(spec: ScheduleSpec, after: datetime) -> float:
    """The entry's score: the next slot after ``after`` as a UTC epoch, or -1 when none.
    (Pure: the many jobs of an import that share a schedule and a base share one answer.)"""
    nxt = _evaluator(spec).next_after(after)
    return -1.0 if nxt is None else nxt.timestamp()


def _chunks(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# Writing a chunk of entries is one script call, the work done inside Redis: a 100k-job import
# would otherwise spend most of its sync packing and parsing ~5 commands per entry in Python.
# (Reads stay plain read commands: a script's declared keys count as written under Redis ACLs.)
# KEYS: schedule, index, quarantine, quarantine reasons, then one entry key per entry;
# ARGV[1]: a JSON array, per entry [job id, definition, meta, score, release from quarantine]
# (one argument: packing five per entry cost more than the rest of the call).
_PUT_LUA = """
local entries = cjson.decode(ARGV[1])
for i, e in ipairs(entries) do
  local key = KEYS[4 + i]
  redis.call('HSET', key, 'definition', e[2], 'meta', e[3])
  redis.call('ZADD', KEYS[1], e[4], key)
  redis.call('SADD', KEYS[2], e[1])
  if e[5] then
    redis.call('ZREM', KEYS[3], e[1])
    redis.call('HDEL', KEYS[4], e[1])
  end
end
return #entries
"""


class EntryStore:
    """Reads and writes bridge entries in Redis, always in pipelined batches."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix
        self._quarantined: set[str] = set()
        self._put_entries = client.register_script(_PUT_LUA)

    def key(self, job_id: str) -> str:
        return self.prefix + job_id

    def count(self) -> int:
        return int(self.r.scard(index_key(self.prefix)))

    def managed(self) -> set[str]:
        return set(self.r.smembers(index_key(self.prefix)))  # type: ignore[arg-type]

    def quarantined(self) -> dict[str, str]:
        members: list[str] = list(self.r.zrange(quarantine_key(self.prefix), 0, -1))  # type: ignore[arg-type]
        why: dict[str, str] = dict(self.r.hgetall(quarantine_why_key(self.prefix)))  # type: ignore[arg-type]
        return {m: why.get(m, "") for m in members}

    def quarantine(self, job_id: str, reason: str, now: datetime) -> None:
        with self.r.pipeline() as pipe:
            pipe.zrem(schedule_key(self.prefix), self.key(job_id))
            pipe.zadd(quarantine_key(self.prefix), {job_id: now.timestamp()})
            pipe.hset(quarantine_why_key(self.prefix), job_id, reason)
            pipe.execute()

    def release(self, job_id: str) -> None:
        with self.r.pipeline() as pipe:
            pipe.zrem(quarantine_key(self.prefix), job_id)
            pipe.hdel(quarantine_why_key(self.prefix), job_id)
            pipe.execute()

    def read(
        self, job_ids: Sequence[str]
    ) -> dict[str, tuple[str | None, str | None, float | None]]:
        """job id -> (definition, meta, score) for each id, one round trip per chunk."""
        out: dict[str, EntryState] = {}
        sk = schedule_key(self.prefix)
        for chunk in _chunks(job_ids):
            if not self.r.exists(*(self.key(j) for j in chunk)):
                out.update(dict.fromkeys(chunk, (None, None, None)))  # all new (an import)
                continue
            with self.r.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hmget(self.key(job_id), "definition", "meta")
                    pipe.zscore(sk, self.key(job_id))
                replies = pipe.execute()
            for i, job_id in enumerate(chunk):
                definition, meta = replies[2 * i]
                out[job_id] = (definition, meta, replies[2 * i + 1])
        return out

    def sync(self, desired: Iterable[Desired], now: datetime, *, apply: bool = True) -> SyncReport:
        """Make Redis hold exactly ``desired`` among bridge-managed entries.

        ``desired`` is consumed a chunk at a time (read, compared, written), so a generator
        keeps only one chunk of encoded entries alive however many jobs there are."""
        report = SyncReport()
        managed = self.managed()
        quarantined = self._quarantined = set(self.quarantined())
        seen: set[str] = set()
        for chunk in _chunks(desired):
            wanted = {d.job_id: d for d in chunk if d.job_id not in seen}
            seen.update(wanted)
            current = self.read(list(wanted))
            writes: list[tuple[str, Any]] = []
            for job_id, d in wanted.items():
                definition, meta, score = current[job_id]
                if job_id in quarantined and definition == d.definition:
                    report.unchanged += 1  # beat quarantined it; only a new definition releases it
                    continue
                action = self._plan_entry(d, definition, meta, score, now, writes)
                if action == "create":
                    report.created.append(job_id)
                elif action == "update":
                    report.updated.append(job_id)
                elif action == "rescore":
                    report.rescored.append(job_id)
                else:
                    report.unchanged += 1
            if apply and writes:
                self._write(writes)
        stale = sorted(managed - seen)
        report.deleted.extend(stale)
        if apply and stale:
            self._write([("delete", job_id) for job_id in stale])
        return report

    def _plan_entry(
        self,
        d: Desired,
        definition: str | None,
        meta: str | None,
        score: float | None,
        now: datetime,
        writes: list[tuple[str, Any]],
    ) -> str:
        last_slot = _last_slot(meta)
        if definition is None:
            # Rebuilt after Redis lost it: resume from the last slot SQL saw (bounded by the
            # catch-up window) so the slots missed meanwhile follow the job's misfire policy.
            base = last_slot or _resume_point(d, now)
            writes.append(("put", (d, next_score(d.spec.schedule, base), base)))
            return "create"
        if definition != d.definition:
            # a changed schedule starts from now: the old schedule's past is not replayed
            base = max(now, last_slot) if last_slot else now
            writes.append(("put", (d, next_score(d.spec.schedule, base), base)))
            return "update"
        expected = next_score(d.spec.schedule, last_slot) if last_slot else score
        if score is None or expected is None or abs(float(score) - float(expected)) > 0.5:
            fixed = expected if expected is not None else next_score(d.spec.schedule, now)
            writes.append(("score", (d.job_id, fixed)))
            return "rescore"
        return "unchanged"

    def _write(self, writes: list[tuple[str, Any]]) -> None:
        sk, ik = schedule_key(self.prefix), index_key(self.prefix)
        qk, qwk = quarantine_key(self.prefix), quarantine_why_key(self.prefix)
        for chunk in _chunks(w for w in writes if w[0] == "put"):
            keys, entries = [sk, ik, qk, qwk], list[list[Any]]()
            for _, (d, score, base) in chunk:
                keys.append(self.key(d.job_id))
                meta = json.dumps({"last_slot": base.timestamp()})
                release = d.job_id in self._quarantined
                entries.append([d.job_id, d.definition, meta, repr(float(score)), release])
            self._put_entries(keys=keys, args=[json.dumps(entries)])
        for chunk in _chunks(w for w in writes if w[0] != "put"):
            with self.r.pipeline(transaction=True) as pipe:
                for op, arg in chunk:
                    if op == "score":
                        job_id, score = arg
                        pipe.zadd(sk, {self.key(job_id): score})
                    elif op == "delete":
                        pipe.zrem(sk, self.key(arg))
                        pipe.delete(self.key(arg))
                        pipe.srem(ik, arg)
                        pipe.zrem(quarantine_key(self.prefix), arg)
                        pipe.hdel(quarantine_why_key(self.prefix), arg)
                pipe.execute()


def _resume_point(d: Desired, now: datetime) -> datetime:
    """Where a rebuilt entry resumes: the SQL watermark, at most one catch-up window back."""
    if d.watermark is None:
        return now
    window = timedelta(
        seconds=max(d.spec.policies.catchup_window_seconds, d.spec.policies.misfire_grace_seconds)
    )
    return min(now, max(d.watermark, now - window))


@lru_cache(maxsize=1024)
def _last_slot(meta: str | None) -> datetime | None:
    if not meta:
        return None
    try:
        value = json.loads(meta).get("last_slot")
    except (ValueError, AttributeError):
        return None
    return datetime.fromtimestamp(float(value), UTC) if value is not None else None


class Schedulable(Protocol):
    """A registry job as far as its entry goes (a stored job, or just these three)."""

    @property
    def spec(self) -> JobSpec: ...
    @property
    def spec_hash(self) -> str: ...
    @property
    def paused(self) -> bool: ...


def desired_from(
    jobs: Iterable[Schedulable], watermarks: Mapping[str, datetime] | None = None
) -> Iterator[Desired]:
    """The desired entries of registry jobs and the latest slot each has on record in SQL,
    encoded as they are consumed (:meth:`EntryStore.sync` takes a chunk at a time)."""
    marks = watermarks or {}
    for j in jobs:
        yield Desired(
            j.spec.id,
            encode_definition(j.spec, j.spec_hash, paused=j.paused),
            j.spec,
            marks.get(j.spec.id),
        )
