"""``bridge jobs set --placement``: audited, and the job's RedBeat entry moves queue at once."""

from __future__ import annotations

import json
from typing import Any

import redis

from bridge.adapters.redbeat_entries import EntryStore
from bridge.store.audit import AuditRepo
from bridge.store.db import Registry
from bridge.store.repos import JobRepo
from tests.fleet.test_consolidation import PREFIX, env, line


def queue_of(redis_url: str, job_id: str) -> str:
    store = EntryStore(redis.Redis.from_url(redis_url, decode_responses=True), PREFIX)
    definition = store.read([job_id])[job_id][0]
    assert definition is not None
    return str(json.loads(definition)["options"]["queue"])


def test_a_job_placed_anywhere_moves_to_the_shared_queue_and_back(cli: Any, db_url: str,
                                                                  redis_url: str) -> None:
    registry = Registry(db_url)
    with registry.session() as s:
        JobRepo(s).upsert(line("web-01", 1, "purge-cdn-cache"))
    e = env(db_url, redis_url)
    assert cli("sync", env=e).code == 0
    job = "web-01.etc-cron.d-ops-1"
    assert queue_of(redis_url, job) == "bridge.host.web-01"
    r = cli("--actor", "ops", "jobs", "set", job, "--placement", "anywhere", "--reason",
            "a global cache", "--json", env=e)
    assert r.code == 0, r.err
    assert r.json()["placement"] == "anywhere" and r.json()["queue"] == "bridge"
    assert queue_of(redis_url, job) == "bridge"  # synced by the command itself
    shown = cli("jobs", "show", job, env=e).out
    assert "placement anywhere  queue bridge" in shown
    with registry.session() as s:
        (audit,) = [a for a in AuditRepo(s).query(job_id=job) if a.action == "jobs.set"]
    assert (audit.before["placement"], audit.after["placement"]) == ("host", "anywhere")
    assert audit.after["queue"] == "bridge" and audit.actor == "ops"
    assert cli("jobs", "set", job, "--placement", "host", env=e).code == 0
    assert queue_of(redis_url, job) == "bridge.host.web-01"
    bad = cli("jobs", "set", job, "--placement", "everywhere", env=e)
    assert bad.code == 2 and "expected host | anywhere" in bad.err
    registry.dispose()
