"""The one-screen operational view behind ``bridge status``: what runs, who owns what, what is
wrong. Each part is read independently; a part that cannot be read says why instead of failing
the whole view."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import redis

from bridge.core.authority import owner_at
from bridge.core.config import Settings
from bridge.core.placement import job_queue, queue_host
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo

WINDOW = timedelta(hours=24)
FINDING_KINDS = ("missed", "stuck", "failed", "late", "duplicate", "skipped", "lost")


def ownership(registry: Registry, now: datetime) -> dict[str, Any]:
    """Jobs by owner now (in all and per host), paused jobs, and the queues jobs route to."""
    with registry.session() as s:
        jobs = JobRepo(s).list()
        histories = AuthorityRepo(s).histories()
    now_owner = {j.id: owner_at(histories.get(j.id, []), now).value for j in jobs}
    owners = Counter(now_owner.values())
    by_host: dict[str, dict[str, int]] = {}
    for j in jobs:
        counts = by_host.setdefault(j.host or "", {"legacy": 0, "celery": 0})
        counts[now_owner[j.id]] += 1
    return {
        "by_owner": {"legacy": owners.get("legacy", 0), "celery": owners.get("celery", 0)},
        "by_host": dict(sorted(by_host.items())),
        "paused": sorted(j.id for j in jobs if j.paused),
        "queues": sorted({job_queue(j.spec) for j in jobs}),
    }


def shadow_summary(registry: Registry, now: datetime) -> dict[str, Any]:
    """Readiness and unresolved shadow mismatches over the last 24 h."""
    from shadow.report import build_report

    with registry.session() as s:
        ids = [j.id for j in JobRepo(s).list()]
        if not ids:
            return {"ready": 0, "jobs_with_unresolved": 0, "unresolved_slots": 0}
        report = build_report(s, ids, now - WINDOW, now, now, timeline_limit=0, mismatch_limit=0)
    totals = report.totals()
    return {
        "ready": totals["ready"],
        "jobs_with_unresolved": totals["jobs_with_unresolved"],
        "unresolved_slots": totals["unresolved"],
        "lost_slots": totals["counts"].get("lost", 0),
    }


def slot_findings(registry: Registry, settings: Settings, now: datetime) -> dict[str, int]:
    """Reconcile findings of the last 24 h by kind (missed, stuck, failed, ...)."""
    from bridge.core.reconcile import Window
    from bridge.services.reconcile import reconcile_window

    findings, _ = reconcile_window(
        registry,
        Window(now - WINDOW, now),
        now,
        grace=timedelta(seconds=settings.health_grace),
        tolerance=timedelta(seconds=settings.health_tolerance),
    )
    counts = Counter(f.kind.value for f in findings)
    return {kind: counts.get(kind, 0) for kind in (*FINDING_KINDS, *sorted(counts))
            if kind in FINDING_KINDS or counts.get(kind)}


def workers(settings: Settings, queues: list[str]) -> dict[str, Any]:
    """Workers answering a ping (1 s), the depth of every job queue, its live consumers (bridge
    transport liveness) and the queues nobody consumes: a host's queue (jobs are bound to that
    host) or any queue with messages waiting."""
    from bridge.adapters import redis_conn
    from bridge.adapters.inflight import live_consumers
    from bridge.celery_app import make_app
    from bridge.ops.health import queue_lengths

    replies = make_app(settings).control.inspect(timeout=1.0).ping() or {}
    client = redis_conn.client(settings)
    depth = queue_lengths(client, queues or [settings.default_queue])
    live = live_consumers(client)
    consumers = {q: live.get(q, 0) for q in depth}
    unconsumed = [
        {"queue": q, "host": queue_host(q), "waiting": n}
        for q, n in depth.items() if not consumers[q] and (n or queue_host(q))
    ]
    return {"online": sorted(replies), "queue_depth": depth, "consumers": consumers,
            "unconsumed": unconsumed}


def status_view(registry: Registry, settings: Settings, now: datetime) -> dict[str, Any]:
    view: dict[str, Any] = {}
    parts = (
        ("jobs", lambda: ownership(registry, now)),
        ("shadow", lambda: shadow_summary(registry, now)),
        ("slots_24h", lambda: slot_findings(registry, settings, now)),
    )
    for name, read in parts:
        try:
            view[name] = read()
        except Exception as e:  # one unreadable part must not hide the others
            view[name] = {"error": f"{type(e).__name__}: {e}"}
    queues = view["jobs"].get("queues", []) if isinstance(view.get("jobs"), dict) else []
    try:
        view["workers"] = workers(settings, queues)
    except (redis.RedisError, OSError) as e:
        view["workers"] = {"error": str(e)}
    return view
