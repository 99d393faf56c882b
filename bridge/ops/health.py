"""Continuous health: the periodic task ``bridge.reconcile`` and what it alerts on.

Every run (scheduled by beat every ``health_interval`` seconds, see the README) it:

1. reconciles the last ``health_window`` seconds (:mod:`bridge.services.reconcile`) and raises
   one alert per ``missed``, ``stuck``, ``failed``, ``late``, ``lost`` and ``duplicate`` finding
   (``duplicate`` is critical: invariant 4 was broken); ``skipped`` slots are policy, not
   alerts. With ``health_repair`` on (the default) it also repairs missed and stuck slots of
   every job whose ``repair`` policy is ``auto`` (the default), through the claim, each audited
   as ``repair`` (a slot re-sent less than ``max(2 x interval, 30 s)`` ago is not re-sent).
   **Bound**: a stuck slot (dead holder) is repaired at the first run after its lease expired
   (lease 30 s), a missed slot at the first run after its grace: within ``interval`` (60 s by
   default) plus the queue's latency. The takeover then settles a dead holder's run by the
   job's ``on_lost`` policy (``lost`` + alert, or one re-run);
2. checks **beat liveness** from the liveness hash beat stamps every tick
   (:func:`bridge.adapters.beat_store.beat_key`): no hash, or a ``tick`` older than
   ``health_beat_stale`` seconds, is a critical alert;
3. checks **worker liveness**: every queue a Celery-owned job publishes to, and every job queue
   with messages waiting (a host's queue during shadow too), must be consumed by a live worker.
   Consumers are read from the bridge transport's liveness keys
   (:func:`bridge.adapters.inflight.live_consumers`: each live worker names the queues it
   consumes), and from ``app.control.inspect().active_queues()`` only when those do not cover
   every needed queue (a worker on another transport). A queue nobody consumes is a critical
   alert whose detail carries the queue's length (``LLEN``) and, for a per-host queue
   (:mod:`bridge.core.placement`), the host whose worker is missing.

The decision is the pure :func:`health_alerts`; :func:`run_health` gathers the facts. Alerts go
through :func:`bridge.services.alerts.deliver` (log always; webhook / command when configured),
once per key: a finding alerts once; a beat or worker outage alerts once per hour it lasts (the
hour is part of its key).

Settings (:class:`bridge.core.config.Settings`, ``BRIDGE_<NAME>`` in the environment):
``health_interval`` (60), ``health_window`` (7200), ``health_grace`` (300),
``health_tolerance`` (60),
``health_beat_stale`` (60), ``health_repair`` (true), ``alert_webhook_url``,
``alert_webhook_secret``, ``alert_command`` (a shell-split argv), ``alert_dedupe_ttl``
(604800).
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.adapters.beat_store import beat_key
from bridge.adapters.inflight import live_consumers
from bridge.celery_app import app
from bridge.core.audit import current_actor
from bridge.core.config import Settings, load_settings
from bridge.core.dispatch import slot_iso
from bridge.core.placement import job_queue, queue_host
from bridge.core.reconcile import Finding, Kind, Window
from bridge.services.alerts import Alert, Delivery, RedisDeduper, Severity, deliver, sinks_from
from bridge.services.reconcile import Repair, reconcile_window, repair
from bridge.store.db import Registry

log = logging.getLogger("bridge.health")

TASK_NAME = "bridge.reconcile"
ALERTED_KINDS = frozenset(
    {Kind.MISSED, Kind.STUCK, Kind.FAILED, Kind.LATE, Kind.DUPLICATE, Kind.LOST}
)


def setting(settings: Any, name: str, default: Any) -> Any:
    """A bridge setting (see :class:`bridge.core.config.Settings`), ``default`` when unset."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        return default
    if isinstance(default, bool):
        return str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    return value


@dataclass(frozen=True)
class HealthConfig:
    interval: int = 60
    window: int = 7200
    grace: int = 300
    tolerance: int = 60
    beat_stale: int = 60
    repair: bool = True
    webhook_url: str | None = None
    webhook_secret: str | None = None
    command: tuple[str, ...] = ()
    dedupe_ttl: int = 604800

    @classmethod
    def from_settings(cls, settings: Any) -> HealthConfig:
        d = cls()
        command = setting(settings, "alert_command", "")
        return cls(
            interval=setting(settings, "health_interval", d.interval),
            window=setting(settings, "health_window", d.window),
            grace=setting(settings, "health_grace", d.grace),
            tolerance=setting(settings, "health_tolerance", d.tolerance),
            beat_stale=setting(settings, "health_beat_stale", d.beat_stale),
            repair=setting(settings, "health_repair", d.repair),
            webhook_url=setting(settings, "alert_webhook_url", "") or None,
            webhook_secret=setting(settings, "alert_webhook_secret", "") or None,
            command=tuple(shlex.split(command)) if command else (),
            dedupe_ttl=setting(settings, "alert_dedupe_ttl", d.dedupe_ttl),
        )


@dataclass(frozen=True)
class BeatState:
    holder: str | None
    tick: float | None  # epoch seconds of the last tick; None: no liveness hash at all


@dataclass(frozen=True)
class HealthFacts:
    findings: Sequence[Finding]
    beat: BeatState
    needed_queues: frozenset[str]
    consumed_queues: frozenset[str] | None  # None: no worker answered the inspection
    queue_lengths: Mapping[str, int] = field(default_factory=dict)


# --- pure core ------------------------------------------------------------------------------------


def finding_alert(f: Finding, now: datetime) -> Alert:
    severity = Severity.CRITICAL if f.kind in (Kind.DUPLICATE, Kind.LOST) else Severity.WARNING
    slot = slot_iso(f.slot)
    return Alert(key=f.key, kind=f.kind.value, severity=severity,
                 summary=f"{f.job_id} {slot}: {f.kind.value}", detail=f.detail,
                 job_id=f.job_id, slot=slot, at=now)


def beat_alert(beat: BeatState, now: datetime, stale_after: float) -> Alert | None:
    hour = now.strftime("%Y-%m-%dT%H")
    if beat.tick is None:
        return Alert(key=f"beat-missing|{hour}", kind="beat-down", severity=Severity.CRITICAL,
                     summary="beat: no liveness record",
                     detail="no beat has ticked since Redis was (re)started", at=now)
    age = now.timestamp() - beat.tick
    if age <= stale_after:
        return None
    return Alert(key=f"beat-stale|{hour}", kind="beat-down", severity=Severity.CRITICAL,
                 summary=f"beat: no tick for {age:.0f}s",
                 detail=f"last tick by {beat.holder or 'unknown'} {age:.0f}s ago "
                        f"(threshold {stale_after:.0f}s)", at=now)


def worker_alerts(facts: HealthFacts, now: datetime) -> list[Alert]:
    hour = now.strftime("%Y-%m-%dT%H")
    consumed = facts.consumed_queues or frozenset()
    out = []
    for queue in sorted(facts.needed_queues - consumed):
        length = facts.queue_lengths.get(queue, 0)
        who = "no worker answered" if facts.consumed_queues is None else "no worker consumes it"
        host = queue_host(queue)
        where = f"host {host}'s queue {queue}" if host else f"queue {queue}"
        hint = f"; start `bridge worker --host {host}` on {host}" if host else ""
        out.append(Alert(key=f"no-worker|{queue}|{hour}", kind="worker-down",
                         severity=Severity.CRITICAL, summary=f"{where}: {who}",
                         detail=f"{length} message(s) waiting in queue {queue}{hint}", at=now))
    return out


def health_alerts(facts: HealthFacts, now: datetime, beat_stale: float) -> list[Alert]:
    """Every alert the facts call for (pure)."""
    alerts = [finding_alert(f, now) for f in facts.findings if f.kind in ALERTED_KINDS]
    beat = beat_alert(facts.beat, now, beat_stale)
    if beat is not None:
        alerts.append(beat)
    return alerts + worker_alerts(facts, now)


# --- gathering facts -----------------------------------------------------------------------------


def read_beat(client: Any, prefix: str) -> BeatState:
    raw = client.hgetall(beat_key(prefix))
    if not raw:
        return BeatState(None, None)
    text = {_s(k): _s(v) for k, v in raw.items()}
    tick = text.get("tick")
    return BeatState(text.get("holder"), float(tick) if tick else None)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def inspected_queues(celery_app: Any, timeout: float = 2.0) -> frozenset[str] | None:
    """Queues some live worker consumes, by asking them; None when no worker answered."""
    replies = celery_app.control.inspect(timeout=timeout).active_queues()
    if not replies:
        return None
    return frozenset(q["name"] for queues in replies.values() for q in (queues or []))


def consumed_queues(celery_app: Any, redis_client: Any,
                    needed: frozenset[str]) -> frozenset[str] | None:
    """Queues some live worker consumes: the bridge transport's liveness keys first, the
    workers' answers only when those leave a needed queue uncovered; None: nobody answered."""
    live = frozenset(q for q, n in live_consumers(redis_client).items() if n)
    if needed <= live:
        return live
    asked = inspected_queues(celery_app)
    if asked is None:
        return live or None
    return live | asked


def needed_queues(jobs: Sequence[Any], histories: Mapping[str, Sequence[Any]],
                  now: datetime, lengths: Mapping[str, int] | None = None) -> frozenset[str]:
    """Queues that must have a live consumer: those of Celery-owned jobs, and any job queue
    with messages waiting (``lengths``)."""
    from bridge.core.authority import Owner, owner_at

    mapped = [j for j in jobs if j.spec.mapped]
    waiting = {q for q, n in (lengths or {}).items() if n}
    return frozenset(
        {job_queue(j.spec) for j in mapped
         if owner_at(histories.get(j.id, ()), now) is Owner.CELERY}
        | {q for q in (job_queue(j.spec) for j in mapped) if q in waiting}
    )


def queue_lengths(redis_client: Any, queues: Sequence[str]) -> dict[str, int]:
    with redis_client.pipeline(transaction=False) as pipe:
        for q in queues:
            pipe.llen(q)
        return {q: int(n) for q, n in zip(queues, pipe.execute(), strict=True)}


@dataclass(frozen=True)
class HealthReport:
    facts: HealthFacts
    deliveries: Sequence[Delivery]
    repaired: int
    repairs: Sequence[Repair] = ()


def run_health(celery_app: Any, settings: Settings, redis_client: Any,
               config: HealthConfig, now: datetime | None = None) -> HealthReport:
    """Gather the facts, alert on them (deduplicated), optionally repair."""
    now = now or datetime.now(UTC)
    registry = Registry(settings.database_url)
    try:
        window = Window(now - timedelta(seconds=config.window), now)
        findings, inputs = reconcile_window(registry, window, now,
                                            grace=timedelta(seconds=config.grace),
                                            tolerance=timedelta(seconds=config.tolerance))
        lengths = queue_lengths(redis_client, sorted(
            {job_queue(j.spec) for j in inputs.jobs if j.spec.mapped}))
        needed = needed_queues(inputs.jobs, inputs.histories, now, lengths)
        facts = HealthFacts(
            findings=findings,
            beat=read_beat(redis_client, settings.redbeat_key_prefix),
            needed_queues=needed,
            consumed_queues=consumed_queues(celery_app, redis_client, needed),
            queue_lengths=lengths,
        )
        repaired = 0
        done: list[Repair] = []
        if config.repair:
            done = repair(celery_app, registry, findings, inputs, now,
                          actor=f"health:{current_actor()}", dry_run=False,
                          cooldown=timedelta(seconds=max(2 * config.interval, 30)),
                          honour_policy=True)
            repaired = sum(1 for r in done if r.task_id)
            for r in done:
                log.warning("health: %s %s %s: %s%s", "repaired" if r.task_id else "not repaired",
                            r.finding.job_id, slot_iso(r.finding.slot), r.finding.kind.value,
                            f" (task {r.task_id})" if r.task_id else f" ({r.note})")
    finally:
        registry.dispose()
    alerts = health_alerts(facts, now, config.beat_stale)
    sinks = sinks_from(config.webhook_url, config.webhook_secret, config.command)
    dedupe = RedisDeduper(redis_client, settings.redbeat_key_prefix, config.dedupe_ttl)
    return HealthReport(facts, deliver(alerts, sinks, dedupe), repaired, done)


@app.task(name=TASK_NAME, ignore_result=True, acks_late=False)
def reconcile_task() -> dict[str, int]:
    """The periodic health check (see the module doc); returns counts for the task log."""
    import redis

    from bridge.adapters import redis_conn

    settings = getattr(app.conf, "bridge_settings", None) or load_settings()
    config = HealthConfig.from_settings(settings)
    started = time.monotonic()
    client: redis.Redis = redis_conn.client(settings)
    report = run_health(app, settings, client, config)
    sent = sum(1 for d in report.deliveries if not d.deduplicated)
    log.info("health: %d findings, %d alerts sent, %d repaired in %.1fs",
             len(report.facts.findings), sent, report.repaired, time.monotonic() - started)
    return {"findings": len(report.facts.findings), "alerts": sent, "repaired": report.repaired}
