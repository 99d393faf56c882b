"""Alerts: what the health check found, sent once to every configured sink.

An :class:`Alert` has a stable ``key`` (a missed slot's key is ``missed|job|slot``); the JSON
document every sink receives is :meth:`Alert.to_json`::

    {"key": "missed|billing-nightly|2026-03-08T07:00:00Z", "kind": "missed",
     "severity": "warning", "job_id": "billing-nightly", "slot": "2026-03-08T07:00:00Z",
     "summary": "billing-nightly 2026-03-08T07:00:00Z: missed", "detail": "...",
     "at": "2026-03-08T07:10:00+00:00", "source": "cron-bridge"}

Sinks:

* :class:`LogSink` (always on): one WARNING/ERROR line on the ``bridge.services.alerts`` logger.
* :class:`WebhookSink`: ``POST`` of the JSON body, header ``X-Bridge-Secret`` when a secret is
  set; a non-2xx answer or a connection error is retried with exponential backoff
  (``backoff * 2**n``, ``attempts`` tries in all); after that the alert counts as not delivered.
* :class:`CommandSink`: runs ``argv`` (no shell) with the JSON document on stdin; non-zero exit
  is a failed delivery.

De-duplication (:class:`RedisDeduper`): before sending, ``SET <prefix>:bridge:alerted:<sha>
1 NX EX ttl``; only the caller that created the key sends, so one missed slot alerts once (per
TTL, default 7 days), even with several health checks running. Redis rather than SQL: the TTL
is native, the check is one atomic round trip, and losing Redis at worst repeats an alert
(better twice than never). A key is released again when *no* sink delivered the alert, so the
next check retries it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger("bridge.services.alerts")

SECRET_HEADER = "X-Bridge-Secret"
DEFAULT_DEDUPE_TTL = 7 * 86400


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    key: str
    kind: str
    severity: Severity
    summary: str
    detail: str
    job_id: str | None = None
    slot: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "severity": self.severity.value,
            "job_id": self.job_id,
            "slot": self.slot,
            "summary": self.summary,
            "detail": self.detail,
            "at": self.at.isoformat(),
            "source": "cron-bridge",
        }

    def body(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True).encode()


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, alert: Alert) -> bool:
        """Deliver one alert; ``True`` when it was delivered."""
        ...


@dataclass(frozen=True)
class LogSink:
    name: str = "log"

    def send(self, alert: Alert) -> bool:
        level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
        log.log(level, "alert %s: %s (%s)", alert.kind, alert.summary, alert.detail)
        return True


@dataclass(frozen=True)
class WebhookSink:
    url: str
    secret: str | None = None
    attempts: int = 4
    backoff: float = 1.0
    timeout: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    name: str = "webhook"

    def send(self, alert: Alert) -> bool:
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            problem = self._post(alert)
            if problem is None:
                return True
            from bridge.core.config import mask_url  # a URL's password never reaches a log line

            log.warning("webhook %s attempt %d/%d failed: %s", mask_url(self.url), attempt + 1,
                        self.attempts, problem)
        return False

    def _post(self, alert: Alert) -> str | None:
        headers = {"Content-Type": "application/json", "User-Agent": "cron-bridge"}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        request = urllib.request.Request(self.url, data=alert.body(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            return str(e)
        return None if 200 <= status < 300 else f"HTTP {status}"


@dataclass(frozen=True)
class CommandSink:
    argv: tuple[str, ...]
    timeout: float = 30.0
    name: str = "command"

    def send(self, alert: Alert) -> bool:
        try:
            done = subprocess.run(list(self.argv), input=alert.body(), timeout=self.timeout,
                                  capture_output=True, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("alert command %s failed: %s", self.argv[0], e)
            return False
        if done.returncode != 0:
            log.warning("alert command %s exited %d: %s", self.argv[0], done.returncode,
                        done.stderr.decode(errors="replace")[-500:])
        return done.returncode == 0


class Deduper(Protocol):
    def first(self, key: str) -> bool:
        """``True`` for the first caller to see ``key`` within the TTL."""
        ...

    def release(self, key: str) -> None:
        ...


class RedisDeduper:
    """``SET NX EX`` on ``<prefix>:bridge:alerted:<sha256(key)[:32]>``."""

    def __init__(self, client: Any, prefix: str, ttl: int = DEFAULT_DEDUPE_TTL) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}:bridge:alerted:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def first(self, key: str) -> bool:
        return bool(self.client.set(self.redis_key(key), "1", nx=True, ex=self.ttl))

    def release(self, key: str) -> None:
        self.client.delete(self.redis_key(key))


@dataclass(frozen=True)
class Delivery:
    alert: Alert
    sent_to: tuple[str, ...]
    deduplicated: bool = False


def deliver(
    alerts: Sequence[Alert], sinks: Sequence[Sink], dedupe: Deduper | None
) -> list[Delivery]:
    """Send each new alert to every sink; an alert seen before (dedupe) is sent nowhere."""
    out: list[Delivery] = []
    for alert in alerts:
        if dedupe is not None and not dedupe.first(alert.key):
            out.append(Delivery(alert, (), deduplicated=True))
            continue
        sent = tuple(s.name for s in sinks if _safe_send(s, alert))
        if dedupe is not None and not any(n != "log" for n in sent) and len(sinks) > 1:
            dedupe.release(alert.key)  # nothing beyond the log got it: try again next time
        out.append(Delivery(alert, sent))
    return out


def _safe_send(sink: Sink, alert: Alert) -> bool:
    try:
        return sink.send(alert)
    except Exception:  # one broken sink never silences the others
        log.exception("alert sink %s failed", sink.name)
        return False


def sinks_from(
    webhook_url: str | None, webhook_secret: str | None, command: Sequence[str] | None
) -> list[Sink]:
    """The log sink plus whatever is configured."""
    sinks: list[Sink] = [LogSink()]
    if webhook_url:
        sinks.append(WebhookSink(webhook_url, webhook_secret or None))
    if command:
        sinks.append(CommandSink(tuple(command)))
    return sinks
