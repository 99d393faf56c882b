"""``bridge reconcile`` against a real registry, Redis and Celery worker.

A slot missed while no worker ran is reported ``missed``, ``--repair`` runs it once, a second
``--repair`` does nothing; a slot whose worker was SIGKILLed mid-run shows ``stuck`` (not yet
repairable while its lease lives), is repaired once the lease expired, and never runs twice.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.core.dispatch import slot_iso
from bridge.store.audit import AuditRepo
from legacy_wrappers.claims import Claims
from tests.ops.harness import OpsHarness, lines, top_of_hour
from tests.support import wait_for
from tests.support.services import broker_idle

pytestmark = pytest.mark.integration


@pytest.fixture
def ops(tmp_path: Path, redis_url: str) -> Iterator[OpsHarness]:
    h = OpsHarness(tmp_path, redis_url)
    yield h
    h.close()


def since_arg() -> str:
    return (top_of_hour() - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_slot_missed_without_workers_is_repaired_once(ops: OpsHarness, cli: Any) -> None:
    out = ops.tmp / "out.txt"
    ops.add_job("nightly", f"echo ran >> {out}")
    slot = slot_iso(top_of_hour())
    args = ("reconcile", "--since", since_arg(), "--grace", "0", "--json")

    first = cli(*args, env=ops.env)
    assert first.code == 1, first.err
    doc = first.json()
    assert [(f["kind"], f["job_id"], f["slot"], f["repairable"]) for f in doc["findings"]] == [
        ("missed", "nightly", slot, True)]

    dry = cli(*args, "--repair", "--dry-run", env=ops.env)
    assert [r["task_id"] for r in dry.json()["repairs"]] == [None]

    ops.start_worker()
    repaired = cli(*args, "--repair", env=ops.env)
    assert repaired.code == 1 and len(repaired.json()["repairs"]) == 1
    assert repaired.json()["repairs"][0]["task_id"]
    wait_for("the repaired run", lambda: lines(out) == ["ran"])

    again = cli(*args, "--repair", env=ops.env)
    assert again.code == 0, again.out
    assert again.json()["findings"] == [] and again.json()["repairs"] == []
    [made] = again.json()["repaired"]  # the repair stays visible in reconcile's output
    assert (made["job_id"], made["slot"], made["kind"]) == ("nightly", slot, "missed")
    wait_for("nothing left to deliver", lambda: broker_idle(ops.redis_url), 30)
    assert lines(out) == ["ran"]
    assert [(r.role, r.status) for r in ops.runs("nightly")] == [("authoritative", "succeeded")]
    with ops.registry.session() as s:
        audit = [a for a in AuditRepo(s).query(job_id="nightly") if a.action == "repair"]
    assert len(audit) == 1 and audit[0].after is not None and audit[0].after["slot"] == slot


@pytest.mark.slow(seconds=50)
def test_a_slot_whose_worker_was_killed_is_stuck_then_repaired_once(
    ops: OpsHarness, cli: Any
) -> None:
    started, done, pids = ops.tmp / "started.txt", ops.tmp / "done.txt", ops.tmp / "pids.txt"
    ops.add_job("long", f"echo $$ >> {pids}; echo go >> {started}; sleep 8; echo ok >> {done}",
                on_lost="rerun")
    slot = top_of_hour()
    worker = ops.start_worker()
    ops.client.send_task("bridge.run_job", args=["long", slot_iso(slot)], queue="bridge")
    wait_for("the run to start", lambda: lines(started) == ["go"])
    worker.kill_all()  # the whole worker dies mid-run: nobody renews the lease
    os.killpg(int(lines(pids)[0]), signal.SIGKILL)  # and its command (its own session)
    args = ("reconcile", "--since", since_arg(), "--grace", "0", "--json")

    stuck = cli(*args, "--repair", env=ops.env)
    assert stuck.code == 1
    [finding] = stuck.json()["findings"]
    assert finding["kind"] == "stuck" and not finding["repairable"], finding
    assert stuck.json()["repairs"] == []

    claim = Claims(ops.registry).get("long", slot)
    assert claim is not None and claim.state == "running"
    wait_for("the lease to expire", lambda: time.time() > claim.expires_at.timestamp() + 1, 60)
    ops.start_worker()
    repaired = cli(*args, "--repair", env=ops.env)
    [finding] = repaired.json()["findings"]
    assert finding["kind"] == "stuck" and finding["repairable"], finding
    assert len(repaired.json()["repairs"]) == 1
    wait_for("the repaired run to finish", lambda: lines(done) == ["ok"], 60)

    again = cli(*args, "--repair", env=ops.env)
    assert again.code == 0 and again.json()["repairs"] == [], again.out
    assert lines(started) == ["go", "go"] and lines(done) == ["ok"]
    runs = [(r.role, r.status, r.attempts) for r in ops.runs("long")]
    assert runs == [("authoritative", "interrupted", 1), ("authoritative", "succeeded", 2)]
