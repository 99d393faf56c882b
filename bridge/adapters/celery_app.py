"""The factory of the bridge's Celery application (:func:`make_app`); the face that builds it
for ``celery -A bridge.celery_app worker|beat`` is :mod:`bridge.celery_app`.

Settings that matter for "exactly once per slot":

* JSON only (``task_serializer``, ``accept_content``, events): a message carries a job id and a
  slot, never a pickled object or a command.
* ``task_acks_late`` + ``task_reject_on_worker_lost``: a run whose worker dies is redelivered and
  resumes through the claim (the claim, not the broker, guarantees at most one execution).
* ``worker_prefetch_multiplier=1``: a worker holds one unacknowledged message per process, so a
  long job does not strand due slots behind it.
* ``broker_transport_options.visibility_timeout`` (``BRIDGE_VISIBILITY_TIMEOUT``, default 12 h):
  Redis redelivers a message not acknowledged within it. With acks_late a job running longer than
  this would be delivered twice; the claim suppresses the duplicate, and the worker warns at
  start-up about any job whose timeout exceeds it.
* ``task_send_sent_event`` (beat's ``task-sent`` events) on; ``worker_send_task_events`` only
  with ``BRIDGE_TASK_EVENTS=1`` (``bridge worker --events``): a worker sends its heartbeats
  always and its task events once Flower (which broadcasts ``enable_events`` every 5 s while it
  runs) or another monitor switches them on. Task events nobody consumes cost a fifth of a
  burst's worker CPU (``docs/benchmarks.md``).
* ``broker_transport`` ``bridge.adapters.transport:Transport`` (plain Redis URLs): consumes with an
  atomic
  ``BLMOVE`` into a per-worker inflight list, so a worker killed between taking a message and
  registering it as unacknowledged loses nothing (``priority_steps=[0]`` keeps one key per
  queue for it).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from bridge.adapters.redis_conn import is_sentinel, parse_sentinel
from bridge.core.config import Settings, load_settings


def redbeat_settings(settings: Settings) -> dict[str, Any]:
    url = settings.redis_url
    conf: dict[str, Any] = {
        "redbeat_key_prefix": settings.redbeat_key_prefix,
        "redbeat_lock_timeout": settings.redbeat_lock_timeout,
    }
    if is_sentinel(url):
        target = parse_sentinel(url)
        conf["redbeat_redis_url"] = "redis-sentinel://"
        conf["redbeat_redis_options"] = {
            "sentinels": [list(h) for h in target.hosts],
            "password": target.password,
            "service_name": settings.redis_sentinel_master,
            "db": target.db,
            "socket_timeout": 5,
        }
    else:
        conf["redbeat_redis_url"] = url
        conf["redbeat_redis_options"] = {}
    return conf


def broker_settings(settings: Settings) -> dict[str, Any]:
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        # look for messages of dead workers every few seconds, not kombu's 10 x 10 s
        "unacked_restore_interval": min(10, max(1, settings.visibility_timeout // 10)),
        "unacked_restore_throttle": 1,
        # one Redis key per queue (the bridge publishes no priorities): lets the bridge transport
        # consume with an atomic BLMOVE instead of BRPOP (bridge/adapters/transport.py)
        "priority_steps": [0],
    }
    conf: dict[str, Any] = {"broker_url": settings.redis_url}
    if is_sentinel(settings.redis_url):
        transport["master_name"] = settings.redis_sentinel_master
    elif settings.redis_url.startswith(("redis://", "rediss://")):
        conf["broker_transport"] = "bridge.adapters.transport:Transport"  # survives queue garbage
    conf["broker_transport_options"] = transport
    return conf


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("bridge")
    app.conf.update(
        **broker_settings(settings),
        **redbeat_settings(settings),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=True,
        task_track_started=True,
        task_default_queue=settings.default_queue,
        task_ignore_result=True,
        enable_utc=True,
        timezone="UTC",
        beat_max_loop_interval=settings.beat_max_interval,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        imports=("legacy_wrappers.tasks", "bridge.ops.health", "bridge.ops.metrics"),
        beat_schedule={
            "bridge-reconcile": {
                "task": "bridge.reconcile",
                "schedule": float(settings.health_interval),
                "options": {
                    "queue": settings.default_queue,
                    "expires": float(settings.health_interval),
                },
            }
        },
    )
    app.conf.bridge_settings = settings
    app.conf.bridge_rehydrate_interval = settings.rehydrate_interval
    return app

