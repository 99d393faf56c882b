"""Alert sinks and de-duplication against real endpoints: a local HTTP server, a command,
the private Redis; and the health check's decisions (pure) and a full run (real services)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.core.reconcile import Finding, Kind
from bridge.ops.health import BeatState, HealthConfig, HealthFacts, health_alerts, run_health
from bridge.services.alerts import (
    SECRET_HEADER,
    Alert,
    CommandSink,
    LogSink,
    RedisDeduper,
    Severity,
    Sink,
    WebhookSink,
    deliver,
)

NOW = datetime(2026, 3, 8, 7, 20, tzinfo=UTC)
SLOT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def alert(key: str = "missed|j|2026-03-08T07:00:00Z") -> Alert:
    return Alert(key=key, kind="missed", severity=Severity.WARNING, summary="j: missed",
                 detail="no run", job_id="j", slot="2026-03-08T07:00:00Z", at=NOW)


class Receiver:
    """A webhook endpoint answering 500 for the first ``failures`` posts, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, Any], str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((json.loads(body), self.headers.get(SECRET_HEADER)))
                failing = len(outer.received) <= outer.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


def test_webhook_retries_with_backoff_until_the_endpoint_accepts(receiver: Receiver) -> None:
    pauses: list[float] = []
    sink = WebhookSink(receiver.url, secret="s3cret", attempts=4, backoff=0.5,
                       sleep=pauses.append)
    assert sink.send(alert())
    assert pauses == [0.5, 1.0]
    assert len(receiver.received) == 3
    body, secret = receiver.received[-1]
    assert secret == "s3cret"
    assert body["key"] == "missed|j|2026-03-08T07:00:00Z" and body["kind"] == "missed"
    assert body["slot"] == "2026-03-08T07:00:00Z" and body["source"] == "cron-bridge"


def test_webhook_gives_up_after_its_attempts() -> None:
    r = Receiver(failures=10)
    try:
        assert not WebhookSink(r.url, attempts=2, backoff=0, sleep=lambda _: None).send(alert())
        assert len(r.received) == 2
    finally:
        r.close()


@pytest.mark.integration
def test_command_sink_gets_the_json_on_stdin(tmp_path: Path) -> None:
    target = tmp_path / "alert.json"
    script = f"import sys; open({str(target)!r}, 'w').write(sys.stdin.read())"
    assert CommandSink((sys.executable, "-c", script)).send(alert())
    assert json.loads(target.read_text())["job_id"] == "j"
    assert not CommandSink((sys.executable, "-c", "raise SystemExit(3)")).send(alert())


def test_one_missed_slot_alerts_once(receiver: Receiver, client: redis.Redis) -> None:
    dedupe = RedisDeduper(client, "{t}:", ttl=60)
    sinks: list[Sink] = [LogSink(), WebhookSink(receiver.url, sleep=lambda _: None)]
    first = deliver([alert()], sinks, dedupe)
    second = deliver([alert()], sinks, dedupe)
    assert first[0].sent_to == ("log", "webhook") and not first[0].deduplicated
    assert second[0].deduplicated and second[0].sent_to == ()
    assert len(receiver.received) == 3  # two 500s and the accepted one; no second alert
    assert 0 < client.ttl(dedupe.redis_key(alert().key)) <= 60


def test_an_alert_nobody_received_is_retried_next_time(client: redis.Redis) -> None:
    dead = Receiver(failures=100)
    try:
        dedupe = RedisDeduper(client, "{t}:", ttl=60)
        sinks: list[Sink] = [LogSink(), WebhookSink(dead.url, attempts=1, sleep=lambda _: None)]
        deliver([alert()], sinks, dedupe)
        again = deliver([alert()], sinks, dedupe)
        assert not again[0].deduplicated and len(dead.received) == 2
    finally:
        dead.close()


def facts(**changes: Any) -> HealthFacts:
    base: dict[str, Any] = {
        "findings": [],
        "beat": BeatState("beat@h:1", NOW.timestamp() - 5),
        "needed_queues": frozenset({"bridge"}),
        "consumed_queues": frozenset({"bridge"}),
        "queue_lengths": {"bridge": 0},
    }
    return HealthFacts(**{**base, **changes})


def test_healthy_facts_raise_nothing() -> None:
    assert health_alerts(facts(), NOW, 60) == []


def test_findings_beat_and_worker_outages_alert() -> None:
    findings = [Finding(Kind.MISSED, "j", SLOT, "no run", True),
                Finding(Kind.DUPLICATE, "j", SLOT, "two"),
                Finding(Kind.SKIPPED, "j", SLOT, "paused")]
    alerts = health_alerts(facts(findings=findings,
                                 beat=BeatState("beat@h:1", NOW.timestamp() - 600),
                                 consumed_queues=None, queue_lengths={"bridge": 7}), NOW, 60)
    got = [(a.kind, a.severity.value) for a in alerts]
    assert got == [("missed", "warning"), ("duplicate", "critical"), ("beat-down", "critical"),
                   ("worker-down", "critical")]
    assert "7 message(s)" in alerts[-1].detail and "600s" in alerts[2].summary
    assert alerts[0].key == "missed|j|2026-03-08T07:00:00Z"


def test_an_outage_alerts_once_per_hour() -> None:
    stale = facts(beat=BeatState(None, None))
    a = health_alerts(stale, NOW, 60)[0].key
    b = health_alerts(stale, NOW + timedelta(minutes=5), 60)[0].key
    c = health_alerts(stale, NOW + timedelta(hours=1), 60)[0].key
    assert a == b != c


@pytest.mark.integration
def test_the_health_run_alerts_on_a_missed_slot_and_a_dead_fleet_once(
    tmp_path: Path, redis_url: str, receiver: Receiver, client: redis.Redis
) -> None:
    from tests.ops.harness import OpsHarness

    ops = OpsHarness(tmp_path, redis_url)
    try:
        ops.add_job("nightly", "true")
        config = HealthConfig(grace=0, window=3600, webhook_url=receiver.url)
        report = run_health(ops.client, ops.settings, client, config)
        kinds = sorted(d.alert.kind for d in report.deliveries)
        assert kinds == ["beat-down", "missed", "worker-down"]
        assert all(not d.deduplicated for d in report.deliveries)
        again = run_health(ops.client, ops.settings, client, config)
        assert all(d.deduplicated for d in again.deliveries)
        assert sorted(b["kind"] for b, _ in receiver.received[2:]) == kinds

        ops.start_worker()  # a live worker consuming the job's queue: no worker alert
        live = run_health(ops.client, ops.settings, client, config)
        assert live.facts.consumed_queues is not None and "bridge" in live.facts.consumed_queues
        assert "worker-down" not in {d.alert.kind for d in live.deliveries}
    finally:
        ops.close()
