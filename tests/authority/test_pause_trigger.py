"""``bridge pause|resume|trigger``: audited, synced to RedBeat, reruns explicit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from bridge.adapters.redbeat_entries import EntryStore
from bridge.core.authority import Owner
from bridge.core.claims import ClaimState, Holder
from bridge.core.config import Settings
from bridge.core.schedules import compile_schedule
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from legacy_wrappers.claims import Claims
from tests.authority.test_authority_cli import setup_jobs
from tests.shadow.helpers import make_spec


def env(db_url: str, redis_url: str) -> dict[str, str]:
    return {"BRIDGE_DATABASE_URL": db_url, "BRIDGE_REDIS_URL": redis_url}


def paused_in_redbeat(redis_url: str, job_id: str) -> bool:
    prefix = Settings(redis_url=redis_url).redbeat_key_prefix
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    raw = r.hget(EntryStore(r, prefix).key(job_id), "definition")
    r.close()
    assert raw is not None, "no RedBeat entry"
    return bool(json.loads(str(raw))["bridge"]["paused"])


def test_pause_and_resume_are_audited_and_synced(cli: Any, db_url: str, redis_url: str) -> None:
    registry = setup_jobs(db_url, make_spec(job_id="j1"))
    e = env(db_url, redis_url)
    r = cli("pause", "j1", "--reason", "vendor outage", env=e)
    assert r.code == 0, r.out + r.err
    with registry.session() as s:
        job = JobRepo(s).require("j1")
    assert job.paused and job.paused_reason == "vendor outage"
    assert paused_in_redbeat(redis_url, "j1")
    assert cli("resume", "j1", env=e).code == 0
    assert not paused_in_redbeat(redis_url, "j1")
    log = cli("audit", "log", "--job", "j1", "--json", env=e).json()["entries"]
    assert [(x["action"], x["reason"]) for x in log] == [("pause", "vendor outage"),
                                                        ("resume", None)]
    assert log[0]["after"] == {"paused": True, "reason": "vendor outage"}
    assert cli("pause", "nope", "--reason", "x", env=e).code == 2
    registry.dispose()


def _celery_job(db_url: str) -> Registry:
    registry = setup_jobs(db_url, make_spec(job_id="j1"))
    with registry.session() as s:
        AuthorityRepo(s).append("j1", Owner.CELERY, effective_slot=datetime(2020, 1, 1, tzinfo=UTC),
                                actor="t", reason=None)
    return registry


def test_trigger_refuses_an_already_run_slot_unless_rerun(cli: Any, db_url: str,
                                                          redis_url: str) -> None:
    registry = _celery_job(db_url)
    e = env(db_url, redis_url)
    slot = compile_schedule(make_spec().schedule).prev_at_or_before(datetime.now(UTC))
    assert slot is not None
    claims = Claims(registry)
    lease = claims.claim("j1", slot, Holder("beat-task"))
    assert not isinstance(lease, type(None)) and hasattr(lease, "complete")
    assert cli("trigger", "j1", env=e).code == 1  # running now
    lease.complete(ClaimState.SUCCEEDED)  # type: ignore[union-attr]
    r = cli("trigger", "j1", env=e)
    assert r.code == 1 and "already ran" in r.out + r.err
    assert cli("trigger", "j1", "--rerun", env=e).code == 2  # a rerun needs a reason
    r = cli("trigger", "j1", "--rerun", "--reason", "downstream lost the file", "--json", env=e)
    assert r.code == 0, r.out + r.err
    assert r.json()["slot"] == slot.isoformat() and r.json()["rerun"] is True
    released = claims.get("j1", slot)
    assert released is not None and released.state is ClaimState.ABANDONED
    # the rerun's task takes the released claim over exactly once
    again = claims.claim("j1", slot, Holder("rerun-task"))
    assert hasattr(again, "complete") and again.attempts == 2  # type: ignore[union-attr]
    assert not hasattr(claims.claim("j1", slot, Holder("third")), "complete")
    log = cli("audit", "log", "--job", "j1", "--json", env=e).json()["entries"]
    assert [x["action"] for x in log] == ["trigger.rerun", "trigger"]
    assert log[0]["before"]["claim"] == "succeeded"
    registry.dispose()


def test_trigger_sends_a_fresh_slot_and_checks_slot_and_owner(cli: Any, db_url: str,
                                                              redis_url: str) -> None:
    registry = _celery_job(db_url)
    e = env(db_url, redis_url)
    r = cli("trigger", "j1", "--json", env=e)
    assert r.code == 0, r.out + r.err
    r = redis.Redis.from_url(redis_url)
    assert r.llen("bridge") >= 1  # the message waits in the job's queue
    r.close()
    past = (datetime.now(UTC) - timedelta(days=1)).replace(minute=30, second=0, microsecond=0)
    assert cli("trigger", "j1", "--slot", past.isoformat(), env=e).code == 2  # not a slot
    future = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    assert cli("trigger", "j1", "--slot", future.isoformat(), env=e).code == 2
    with registry.session() as s:
        AuthorityRepo(s).append("j1", Owner.LEGACY, effective_slot=datetime(2021, 1, 1,
                                tzinfo=UTC), actor="t", reason=None)
    r = cli("trigger", "j1", env=e)
    assert r.code == 1 and "legacy owns" in r.out + r.err
    registry.dispose()
