"""Consolidating the same line on many hosts: ``bridge fleet groups|consolidate|split``, the
group's flip and rollback, RedBeat entries and the group's shadow comparison (in-process CLI,
real SQLite / PostgreSQL registry, real Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from bridge.adapters.redbeat_entries import EntryStore
from bridge.core.authority import Owner, owner_at
from bridge.core.runs import RunRecord
from bridge.core.spec import (
    CommandHandler,
    Dialect,
    JobSpec,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
)
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import record_many

HOSTS = ("web-01", "web-02", "web-03")
PREFIX = "{fleetb}:"


def line(host: str, n: int, command: str) -> JobSpec:
    return JobSpec(
        id=f"{host}.etc-cron.d-ops-{n}",
        schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="*/5 * * * *"),
        handler=CommandHandler(command=command, user="root"),
        source=SourceLocation(file="/etc/cron.d/ops", line=n, kind=SourceKind.CRON_D, host=host,
                              raw=f"*/5 * * * * root {command}"),
    )


def env(db_url: str, redis_url: str) -> dict[str, str]:
    return {"BRIDGE_DATABASE_URL": db_url, "BRIDGE_REDIS_URL": redis_url,
            "BRIDGE_REDBEAT_KEY_PREFIX": PREFIX}


def setup(db_url: str) -> Registry:
    registry = Registry(db_url)
    with registry.session() as s:
        for host in HOSTS:
            JobRepo(s).upsert(line(host, 1, "flock -n /shared/lock backup-all"))
            JobRepo(s).upsert(line(host, 2, f"logrotate /etc/{host}.conf"))  # differs per host
        JobRepo(s).upsert(line("db-01", 1, "flock -n /shared/lock backup-all").with_(
            schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="0 * * * *")))
    return registry


def entries(redis_url: str) -> dict[str, Any]:
    import json

    store = EntryStore(redis.Redis.from_url(redis_url, decode_responses=True), PREFIX)
    managed = sorted(store.managed())
    return {j: json.loads(d)["options"]["queue"]
            for j, (d, _, _) in store.read(managed).items() if d}


def test_identical_lines_on_three_hosts_form_one_group(cli: Any, db_url: str,
                                                       redis_url: str) -> None:
    setup(db_url).dispose()
    r = cli("fleet", "groups", "--json", env=env(db_url, redis_url))
    assert r.code == 0, r.err
    (group,) = r.json()["groups"]  # the per-host logrotate lines and the hourly one differ
    assert group["group"] == "fleet.etc-cron.d-ops-1"
    assert group["hosts"] == list(HOSTS) and group["host_count"] == 3
    assert group["members"] == [f"{h}.etc-cron.d-ops-1" for h in HOSTS]
    assert group["consolidated"] is False
    text = cli("fleet", "groups", env=env(db_url, redis_url)).out
    assert "fleet.etc-cron.d-ops-1  runs on 3 hosts (host-bound)" in text


def test_consolidate_flip_roll_back_and_split_a_group(cli: Any, db_url: str,
                                                       redis_url: str) -> None:
    registry = setup(db_url)
    e = env(db_url, redis_url)
    assert cli("sync", env=e).code == 0
    before = entries(redis_url)
    assert before["web-02.etc-cron.d-ops-1"] == "bridge.host.web-02"  # host-bound by default

    r = cli("fleet", "consolidate", "fleet.etc-cron.d-ops-1", "--reason", "guarded by flock",
            "--json", env=e)
    assert r.code == 0, r.out + r.err
    assert r.json()["job"] == "fleet.etc-cron.d-ops-1"
    after = entries(redis_url)
    assert after["fleet.etc-cron.d-ops-1"] == "bridge"  # once per slot, any worker
    assert not [j for j in after if j.endswith(".etc-cron.d-ops-1") and j.startswith("web-")]
    assert after["web-01.etc-cron.d-ops-2"] == "bridge.host.web-01"  # others untouched
    again = cli("fleet", "consolidate", "fleet.etc-cron.d-ops-1", env=e)
    assert again.code == 1 and "already consolidated into fleet.etc-cron.d-ops-1" in again.err
    (listed,) = cli("fleet", "groups", "--json", env=e).json()["groups"]
    assert listed["consolidated"] is True

    member = cli("authority", "flip", "web-02.etc-cron.d-ops-1", "--to", "celery", "--force",
                 "--reason", "x", env=e)
    assert member.code == 1 and "grouped" in member.out and "fleet.etc-cron.d-ops-1" in member.out
    flip = cli("authority", "flip", "fleet.etc-cron.d-ops-1", "--to", "celery", "--force",
               "--reason", "consolidate", "--json", env=e)
    assert flip.code == 0, flip.out + flip.err
    plans = flip.json()["flips"]
    assert [p["job_id"] for p in plans] == ["fleet.etc-cron.d-ops-1",
                                           *(f"{h}.etc-cron.d-ops-1" for h in HOSTS)]
    assert len({p["boundary_utc"] for p in plans}) == 1  # one boundary for the whole group
    boundary = datetime.fromisoformat(plans[0]["boundary_utc"])
    with registry.session() as s:
        histories = AuthorityRepo(s).histories()
    for job_id in [p["job_id"] for p in plans]:
        assert owner_at(histories[job_id], boundary) is Owner.CELERY
        assert owner_at(histories[job_id], boundary - timedelta(minutes=5)) is Owner.LEGACY
    assert owner_at(histories.get("web-01.etc-cron.d-ops-2", []), boundary) is Owner.LEGACY

    refused = cli("fleet", "split", "fleet.etc-cron.d-ops-1", env=e)
    assert refused.code == 1 and "flip it back first" in refused.err
    back = cli("authority", "flip", "fleet.etc-cron.d-ops-1", "--to", "legacy", "--reason",
               "rollback", "--json", env=e)
    assert back.code == 0, back.out
    back_plans = back.json()["flips"]
    assert len(back_plans) == 4 and len({p["boundary_utc"] for p in back_plans}) == 1
    rollback = datetime.fromisoformat(back_plans[0]["boundary_utc"])
    with registry.session() as s:
        histories = AuthorityRepo(s).histories()
    assert all(owner_at(histories[f"{h}.etc-cron.d-ops-1"], rollback) is Owner.LEGACY
               for h in HOSTS)

    split = cli("fleet", "split", "fleet.etc-cron.d-ops-1", "--json", env=e)
    assert split.code == 0, split.out + split.err  # the flip never took effect: legacy again
    assert split.json()["members"] == [f"{h}.etc-cron.d-ops-1" for h in HOSTS]
    restored = entries(redis_url)
    assert "fleet.etc-cron.d-ops-1" not in restored
    assert restored["web-03.etc-cron.d-ops-1"] == "bridge.host.web-03"
    log = cli("audit", "log", "--job", "fleet.etc-cron.d-ops-1", "--json", env=e).json()
    assert [x["action"] for x in log["entries"]] == [
        "fleet.consolidate", "flip.forced", "flip", "fleet.split"]
    registry.dispose()


def test_the_group_is_compared_against_every_members_legacy_run(cli: Any, db_url: str,
                                                                 redis_url: str) -> None:
    registry = setup(db_url)
    e = env(db_url, redis_url)
    assert cli("fleet", "consolidate", "fleet.etc-cron.d-ops-1", env=e).code == 0
    from sqlalchemy import update

    from bridge.store.models import JobRow

    with registry.session() as s:  # consolidated long ago, so the slots below are expected
        s.execute(update(JobRow).values(created_at=datetime(2000, 1, 1, tzinfo=UTC)))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    slots = [now.replace(minute=now.minute - now.minute % 5) - timedelta(minutes=5 * k)
             for k in (3, 2, 1)]
    obs = []
    for i, slot in enumerate(slots):
        fired = slot + timedelta(seconds=1)
        ran = HOSTS if i < 2 else HOSTS[:2]  # web-03's cron missed the last slot
        for host in ran:
            obs.append(RunRecord(job_id=f"{host}.etc-cron.d-ops-1", slot=slot, path="legacy",  # type: ignore[arg-type]
                                 role="authoritative", status="succeeded", fired_at=fired,  # type: ignore[arg-type]
                                 started_at=fired, finished_at=fired, exit_status=0, host=host))
        obs.append(RunRecord(job_id="fleet.etc-cron.d-ops-1", slot=slot, path="celery",  # type: ignore[arg-type]
                             role="observe", status="observed", fired_at=fired, host="w"))  # type: ignore[arg-type]
    with registry.session() as s:
        record_many(s, obs)
    since = (slots[0] - timedelta(seconds=1)).isoformat()
    until = slots[-1].isoformat()
    r = cli("shadow", "report", "--json", "--since", since, "--until", until, env=e)
    doc = r.json()
    jobs = {j["job_id"]: j for j in doc["jobs"]}
    assert "fleet.etc-cron.d-ops-1" in jobs
    assert not [j for j in jobs if j.startswith("web-") and j.endswith("ops-1")]  # via group
    group = jobs["fleet.etc-cron.d-ops-1"]
    assert group["counts"]["match"] == 3, group
    assert group["counts"].get("duplicate", 0) == 0  # N legacy runs are the group, not doubles
    from shadow.report import compare_stored

    with registry.session() as s:
        spec = JobRepo(s).require("fleet.etc-cron.d-ops-1").spec
        verdicts = compare_stored(s, spec, slots[0] - timedelta(seconds=1), slots[-1],
                                  datetime.now(UTC))
    assert [v.verdict.value for v in verdicts] == ["match"] * 3
    assert verdicts[0].detail.startswith("legacy ran on 3 of 3 host(s): web-01, web-02, web-03")
    assert verdicts[2].detail.startswith(
        "legacy ran on 2 of 3 host(s): web-01, web-02; no record from web-03")
    registry.dispose()
