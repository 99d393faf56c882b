"""Prometheus metrics of the bridge, computed from the registry at scrape time.

One dedicated :class:`prometheus_client.CollectorRegistry` (:func:`build_registry`) holding one
:class:`BridgeCollector`. Served by ``bridge metrics serve --port 9808`` and, when
``BRIDGE_METRICS_PORT`` is set, by every worker's
MainProcess from ``worker_ready`` (:func:`start_worker_server`). Both read SQL, the source of
truth, so every process exposes the same numbers (no per-process counters to sum).

Series (label ``job`` is a registered job id, never a slot; rows naming an unknown job are
counted under ``job="<unknown>"``, so cardinality is bounded by the registry). Every series
with a ``job`` label also has ``host``: the job's host (:mod:`bridge.core.hosts`; empty for a
job bound to no machine and for ``<unknown>``), so ``sum by (host)`` works on each of them and
adds no cardinality (a job has one host):

=========================================== ========= ======================================
name                                        type      labels / meaning
=========================================== ========= ======================================
``bridge_runs_total``                       counter   job, path (legacy|celery), outcome
                                                      (the run's status): every observation
``bridge_fire_lag_seconds``                 histogram job, path: started_at - slot of every
                                                      execution (authoritative or shadow)
``bridge_run_duration_seconds``             histogram job, path: finished_at - started_at
``bridge_suppressed_duplicates_total``      counter   job, path: deliveries that lost the claim
``bridge_stand_downs_total``                counter   job: legacy firings that stood down
``bridge_slot_findings``                    gauge     job, kind (missed|stuck|failed|late|
                                                      duplicate|skipped|lost): reconciliation
                                                      of the last ``window`` seconds
``bridge_shadow_verdicts``                  gauge     job, verdict (and ``ignored``): the
                                                      shadow report's counts over the last
                                                      ``window`` seconds (jobs legacy owns
                                                      now, with records in the window)
``bridge_authority_jobs``                   gauge     owner: how many jobs each path owns now
``bridge_job_owner``                        gauge     job, owner: 1 for the current owner
``bridge_beat_last_tick_timestamp_seconds`` gauge     epoch of beat's last tick (liveness hash)
``bridge_beat_backlog``                     gauge     slot records beat holds for SQL
``bridge_beat_dispatch_batch_size``         gauge     messages in beat's last dispatched batch
``bridge_beat_dispatch_duration_seconds``   gauge     seconds beat's last batch took
``bridge_metrics_scrape_errors_total``      counter   scrapes whose SQL/Redis part failed
=========================================== ========= ======================================

The beat gauges read beat's liveness hash in Redis (``<prefix>:bridge:beat``), which the
``BridgeScheduler`` holding the lock writes: ``tick`` and ``backlog`` at every tick, ``batch``
and ``batch_seconds`` after every batch that published messages (one batch = up to 1,000 due
entries: planning, publishing, write-back). Any process with the Redis URL exposes the same
values; they are absent until a beat has ticked / dispatched.

Same rules as the reports: ``bridge_shadow_verdicts`` is the verdict counts of
``bridge shadow report`` over the window (:func:`shadow.report.build_report` itself), so a slot
before the job's import is never ``missing_legacy`` (a firing at one is ``before_import``), and
a run lost with its worker is ``lost``. ``bridge_slot_findings{kind="lost"}`` counts slots whose
authoritative run is ``lost`` (outcome unknown), apart from ``failed`` and ``missed``.

Bounded cost: counters and histograms are aggregated incrementally: each scrape reads only the
``runs`` rows added since the previous one (``id > watermark``, at most ``chunk`` rows; rows
still ``running`` are re-read until they settle), so a scrape's cost does not grow with
history. The gauges (authority, reconciliation, verdicts) are recomputed at most every
``refresh`` seconds over a bounded window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bridge.adapters.beat_store import beat_key
from bridge.core.authority import Owner, owner_at
from bridge.core.reconcile import Window
from bridge.services.reconcile import reconcile_window
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.run_feed import RunSample, jobs_with_runs, runs_after

log = logging.getLogger("bridge.metrics")

UNKNOWN = "<unknown>"
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
EXECUTION_ROLES = frozenset({"authoritative", "shadow"})


@dataclass
class Hist:
    """One histogram series: cumulative-ready bucket counts, sum and count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        value = max(0.0, value)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass
class RunAggregates:
    """Counters and histograms folded from ``runs`` rows (pure: :meth:`fold`)."""

    runs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)
    stand_downs: dict[str, int] = field(default_factory=dict)
    lag: dict[tuple[str, str], Hist] = field(default_factory=dict)
    duration: dict[tuple[str, str], Hist] = field(default_factory=dict)

    def fold(self, row: RunSample, known: frozenset[str]) -> None:
        job = row.job_id if row.job_id in known else UNKNOWN
        key = (job, row.path)
        self.runs[(job, row.path, row.status)] = self.runs.get((job, row.path, row.status), 0) + 1
        if row.role == "suppressed":
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
        if row.role == "stand-down":
            self.stand_downs[job] = self.stand_downs.get(job, 0) + 1
        if row.role in EXECUTION_ROLES and row.started_at is not None:
            lag = (row.started_at - row.slot).total_seconds()
            self.lag.setdefault(key, Hist(LAG_BUCKETS)).observe(lag)
            if row.finished_at is not None:
                took = (row.finished_at - row.started_at).total_seconds()
                self.duration.setdefault(key, Hist(DURATION_BUCKETS)).observe(took)


@dataclass(frozen=True)
class Gauges:
    owners: dict[str, str]  # job -> owner now
    findings: dict[tuple[str, str], int]
    verdicts: dict[tuple[str, str], int]


class BridgeCollector(Collector):
    """See the module doc. Thread-safe (one lock around a scrape)."""

    def __init__(
        self,
        database_url: str,
        *,
        redis_client: Any = None,
        prefix: str = "{bridge}:",
        window: int = 3600,
        refresh: float = 30.0,
        chunk: int = 50_000,
        grace: int = 300,
        tolerance: int = 60,
    ) -> None:
        self.database_url = database_url
        self.redis_client = redis_client
        self.prefix = prefix
        self.window = window
        self.refresh = refresh
        self.chunk = chunk
        self.grace = grace
        self.tolerance = tolerance
        self.agg = RunAggregates()
        self.watermark = 0
        self.pending: set[int] = set()
        self.gauges = Gauges({}, {}, {})
        self.hosts: dict[str, str] = {}  # job -> its host ("" for none), the ``host`` label
        self.gauges_at = float("-inf")
        self.errors = 0
        self.checked = False
        self.lock = threading.Lock()

    # --- refreshing from SQL -------------------------------------------------------------------

    def update(self) -> None:
        """Fold new runs rows; recompute the gauges when due. Opens and closes its own engine,
        so a forked process never inherits a live connection from a scrape."""
        registry = Registry(self.database_url, check_schema=not self.checked)
        try:
            with registry.session() as s:
                jobs = JobRepo(s).list()
                self.hosts = {j.id: j.host or "" for j in jobs}
                known = frozenset(self.hosts)
                self._fold_new(s, known)
                if time.monotonic() - self.gauges_at >= self.refresh:
                    self.gauges = self._gauges(s, registry)
                    self.gauges_at = time.monotonic()
            self.checked = True
        finally:
            registry.dispose()

    def _fold_new(self, session: Any, known: frozenset[str]) -> None:
        for row in runs_after(session, self.watermark, self.pending, limit=self.chunk):
            self.watermark = max(self.watermark, row.id)
            if row.status == "running":
                self.pending.add(row.id)
                continue
            self.pending.discard(row.id)
            self.agg.fold(row, known)

    def _gauges(self, session: Any, registry: Registry) -> Gauges:
        now = datetime.now(UTC)
        jobs = JobRepo(session).list()
        histories = AuthorityRepo(session).histories([j.id for j in jobs])
        owners = {j.id: owner_at(histories.get(j.id, ()), now).value for j in jobs}
        window = Window(now - timedelta(seconds=self.window), now)
        findings, _ = reconcile_window(registry, window, now, grace=timedelta(seconds=self.grace),
                            tolerance=timedelta(seconds=self.tolerance))
        counts: dict[tuple[str, str], int] = {}
        for f in findings:
            counts[(f.job_id, f.kind.value)] = counts.get((f.job_id, f.kind.value), 0) + 1
        verdicts = shadow_verdicts(session, jobs, histories, window, now)
        return Gauges(owners, counts, verdicts)

    # --- exposition ----------------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            try:
                self.update()
            except Exception:  # a scrape never fails outright: the counters stay as they were
                self.errors += 1
                log.exception("metrics: reading the registry failed")
            families = list(self._families())
            families.extend(self._beat())
        return families

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape time; nothing to check at registration

    def _hosted(self, values: dict[Any, Any]) -> dict[Any, Any]:
        """Job-keyed values with the job's host appended to each key (the ``host`` label)."""
        return {(*key, self.hosts.get(key[0], "")): v for key, v in values.items()}

    def _families(self) -> Iterator[Metric]:
        a, g, hosted = self.agg, self.gauges, self._hosted
        yield _counter("bridge_runs", "Observations by job, path and outcome.",
                       ["job", "path", "outcome", "host"], hosted(a.runs))
        yield _hist("bridge_fire_lag_seconds", "Start minus slot of executions.", hosted(a.lag))
        yield _hist("bridge_run_duration_seconds", "Finish minus start of executions.",
                    hosted(a.duration))
        yield _counter("bridge_suppressed_duplicates", "Deliveries that lost the slot's claim.",
                       ["job", "path", "host"], hosted(a.suppressed))
        yield _counter("bridge_stand_downs", "Legacy firings that stood down for Celery.",
                       ["job", "host"], hosted({(k,): v for k, v in a.stand_downs.items()}))
        yield _gauge("bridge_slot_findings", "Reconciliation findings of the recent window.",
                     ["job", "kind", "host"], hosted(g.findings))
        yield _gauge("bridge_shadow_verdicts", "Shadow verdicts of the recent window.",
                     ["job", "verdict", "host"], hosted(g.verdicts))
        by_owner = {(o.value,): 0 for o in Owner}
        for owner in g.owners.values():
            by_owner[(owner,)] = by_owner.get((owner,), 0) + 1
        yield _gauge("bridge_authority_jobs", "Jobs owned by each path now.", ["owner"],
                     by_owner)
        yield _gauge("bridge_job_owner", "1 for the path that owns the job now.",
                     ["job", "owner", "host"], hosted({(j, o): 1 for j, o in g.owners.items()}))
        errors = CounterMetricFamily("bridge_metrics_scrape_errors",
                                     "Scrapes whose registry part failed.")
        errors.add_metric([], float(self.errors))
        yield errors

    def _beat(self) -> list[Metric]:
        if self.redis_client is None:
            return []
        try:
            raw = self.redis_client.hgetall(beat_key(self.prefix))
        except Exception:
            log.warning("metrics: reading beat's liveness hash failed", exc_info=True)
            return []
        text = {_s(k): _s(v) for k, v in raw.items()}
        out: list[Metric] = []
        for name, fieldname, doc in BEAT_FIELDS:
            if text.get(fieldname):
                gauge = GaugeMetricFamily(name, doc)
                gauge.add_metric([], float(text[fieldname]))
                out.append(gauge)
        return out


BEAT_FIELDS = (
    ("bridge_beat_last_tick_timestamp_seconds", "tick", "Epoch of beat's last tick."),
    ("bridge_beat_backlog", "backlog", "Slot records beat holds for the registry."),
    ("bridge_beat_dispatch_batch_size", "batch", "Messages in beat's last batch."),
    ("bridge_beat_dispatch_duration_seconds", "batch_seconds", "Seconds beat's last batch took."),
)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), float(value))
    return family


def _gauge(name: str, doc: str, labels: list[str], values: dict[Any, int]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), float(value))
    return family


def _hist(name: str, doc: str, values: dict[tuple[str, str, str], Hist]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=["job", "path", "host"])
    for key, h in sorted(values.items()):
        family.add_metric(list(key), h.buckets(), h.total)
    return family


def shadow_verdicts(session: Any, jobs: Sequence[Any], histories: Any, window: Window,
                    now: datetime) -> dict[tuple[str, str], int]:
    """Verdict counts per job over the window: the counts of ``bridge shadow report --since
    <window>`` (:func:`shadow.report.build_report`, the same code), for the jobs legacy owns
    now that have records in the window. Zero counts are left out; ``ignored`` is a key like
    the report's."""
    from shadow.report import build_report

    active = jobs_with_runs(session, window.since, window.until)
    ids = [j.id for j in jobs
           if j.id in active and owner_at(histories.get(j.id, ()), now) is not Owner.CELERY]
    if not ids:
        return {}
    report = build_report(session, ids, window.since, window.until, now, timeline_limit=0,
                          mismatch_limit=0)
    return {(j.spec.id, key): count for j in report.jobs
            for key, count in j.summary.counts.items() if count}


def build_registry(collector: BridgeCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def collector_from_settings(settings: Any, *, with_redis: bool = True) -> BridgeCollector:
    client = None
    if with_redis:
        from bridge.adapters import redis_conn

        client = redis_conn.client(settings)
    return BridgeCollector(settings.database_url, redis_client=client,
                           prefix=settings.redbeat_key_prefix)


def serve(settings: Any, port: int, address: str = "127.0.0.1") -> Any:
    """Start the HTTP exposition on a daemon thread; returns the server."""
    registry = build_registry(collector_from_settings(settings))
    result = start_http_server(port, addr=address, registry=registry)
    return result[0] if isinstance(result, tuple) else result


def start_worker_server(sender: Any = None, **_: Any) -> None:
    """``worker_ready`` handler: serve the registry from the worker when a port is set."""
    from bridge.celery_app import app
    from bridge.core.config import load_settings
    from bridge.ops.health import setting

    settings = getattr(app.conf, "bridge_settings", None) or load_settings()
    port = setting(settings, "metrics_port", 0)
    if not port:
        return
    address = setting(settings, "metrics_address", "127.0.0.1")
    serve(settings, int(port), str(address))
    log.info("metrics: serving on http://%s:%s/metrics", address, port)


def connect_worker_signal() -> None:
    from celery.signals import worker_ready

    worker_ready.connect(start_worker_server, weak=False)


connect_worker_signal()
