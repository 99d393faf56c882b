"""``bridge authority flip|status`` and ``bridge audit log`` through the in-process CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.authority import Owner
from bridge.core.runs import RunRecord
from bridge.core.schedules import compile_schedule
from bridge.core.spec import JobSpec
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import record_many
from tests.shadow.helpers import backdate_imports, make_spec


def setup_jobs(db_url: str, *specs: JobSpec) -> Registry:
    registry = Registry(db_url)
    with registry.session() as s:
        for spec in specs:
            JobRepo(s).upsert(spec)
            AuthorityRepo(s).append(spec.id, Owner.LEGACY, effective_slot=None, actor="import",
                                    reason=None)
        backdate_imports(s)
    return registry


def matched_history(registry: Registry, spec: JobSpec, count: int, now: datetime) -> None:
    """``count`` matched slots before ``now``: legacy authoritative, Celery dry-run shadow."""
    evaluator = compile_schedule(spec.schedule)
    slots: list[datetime] = []
    t = now
    while len(slots) < count:
        slot = evaluator.prev_at_or_before(t)
        assert slot is not None
        slots.append(slot)
        t = slot - timedelta(seconds=1)
    obs = []
    for slot in slots:
        fired = slot + timedelta(seconds=1)
        for path, role in (("legacy", "authoritative"), ("celery", "shadow")):
            obs.append(RunRecord(job_id=spec.id, slot=slot, path=path, role=role,  # type: ignore[arg-type]
                                   status="succeeded", fired_at=fired, started_at=fired,  # type: ignore[arg-type]
                                   finished_at=fired + timedelta(seconds=1), exit_status=0))
    with registry.session() as s:
        record_many(s, obs)


def env(db_url: str, **extra: str) -> dict[str, str]:
    return {"BRIDGE_DATABASE_URL": db_url, **extra}


def test_flip_a_ready_job_then_roll_back(cli: Any, db_url: str, tmp_path: Any) -> None:
    spec = make_spec("*/5 * * * *", job_id="j1")
    registry = setup_jobs(db_url, spec)
    now = datetime.now(UTC)
    matched_history(registry, spec, 24, now)
    adir = tmp_path / "authority"
    e = env(db_url, BRIDGE_AUTHORITY_DIR=str(adir))
    r = cli("authority", "flip", "j1", "--to", "celery", "--json", env=e)
    assert r.code == 0, r.out + r.err
    doc = r.json()
    assert doc["applied"] and not doc["refused"]
    (flip,) = doc["flips"]
    boundary = datetime.fromisoformat(flip["boundary_utc"])
    assert boundary > now + timedelta(seconds=120)
    assert boundary <= now + timedelta(seconds=120 + 300)
    assert flip["effects"].startswith("legacy: stands down from")
    assert (adir / "j1.authority").exists()  # the shim's cache sees the flip
    st = cli("authority", "status", "--job", "j1", "--json", env=e).json()["jobs"][0]
    assert st["owner_now"] == "legacy" and st["owner_at_next_slot"] in ("legacy", "celery")
    assert st["last_flip"]["owner"] == "celery" and st["last_flip"]["forced"] is False
    r = cli("authority", "flip", "j1", "--to", "celery", env=e)
    assert r.code == 1 and "already-owned" in r.out
    r = cli("authority", "flip", "j1", "--to", "legacy", "--reason", "rollback", env=e)
    assert r.code == 0 and "celery: stands down from" in r.out
    log = cli("audit", "log", "--job", "j1", "--json", env=e).json()["entries"]
    assert [x["action"] for x in log] == ["flip", "flip"]
    assert log[1]["reason"] == "rollback"
    registry.dispose()


def test_many_jobs_all_or_nothing_and_forced_flip(cli: Any, db_url: str) -> None:
    ready, not_ready = make_spec(job_id="a-1"), make_spec(job_id="a-2")
    registry = setup_jobs(db_url, ready, not_ready, make_spec(job_id="b-1", mapped=False))
    matched_history(registry, ready, 5, datetime.now(UTC))
    e = env(db_url)
    r = cli("authority", "flip", "a-*", "--to", "celery", env=e)
    assert r.code == 1
    assert "a-2: refused (not-ready)" in r.out and "nothing flipped" in r.out
    assert "a-1" not in r.out.replace("a-1:", "")  # the ready job is not flipped either
    with registry.session() as s:
        assert all(len(h) == 1 for h in AuthorityRepo(s).histories().values())
    dry = cli("authority", "flip", "--all-ready", "--to", "celery", "--dry-run", "--json", env=e)
    assert dry.code == 0 and [f["job_id"] for f in dry.json()["flips"]] == ["a-1"]
    assert not dry.json()["applied"]
    assert cli("authority", "flip", "a-2", "--to", "celery", "--force", env=e).code == 1
    r = cli("authority", "flip", "a-2", "--to", "celery", "--force", "--reason", "deadline",
            env=e)
    assert r.code == 0 and "(forced)" in r.out
    r = cli("authority", "flip", "b-1", "--to", "celery", "--force", "--reason", "x", env=e)
    assert r.code == 1 and "unmapped" in r.out
    st = cli("authority", "status", "--job", "a-2", "--json", env=e).json()["jobs"][0]
    assert st["last_flip"]["forced"] is True and st["last_flip"]["reason"] == "deadline"
    log = cli("audit", "log", "--json", "--since", "1h", env=e).json()["entries"]
    assert [(x["action"], x["job_id"]) for x in log] == [("flip.forced", "a-2")]
    text = cli("authority", "status", env=e).out
    assert "a-2: owner legacy" in text and "FORCED" in text
    registry.dispose()


def test_at_must_be_a_slot_and_bad_input_exits_2(cli: Any, db_url: str) -> None:
    spec = make_spec(job_id="j1")
    registry = setup_jobs(db_url, spec)
    e = env(db_url)
    future = (datetime.now(UTC) + timedelta(days=2)).replace(minute=30, second=0, microsecond=0)
    r = cli("authority", "flip", "j1", "--to", "legacy", "--at", future.isoformat(), env=e)
    assert r.code == 1 and "not-a-slot" in r.out
    ok = future.replace(minute=0)
    r = cli("authority", "flip", "j1", "--to", "celery", "--force", "--reason", "r", "--at",
            ok.isoformat(), "--json", env=e)
    assert r.code == 0 and r.json()["flips"][0]["boundary_utc"] == ok.isoformat()
    assert cli("authority", "flip", "j1", "--to", "celery", "--at", "soon", env=e).code == 2
    assert cli("authority", "flip", "nope", "--to", "celery", env=e).code == 2
    assert cli("authority", "flip", "--to", "celery", env=e).code == 2
    registry.dispose()
