"""Issue 15.6: a record the shim spools after it claimed the slot (the registry went away while
the command ran) completes that claim when the spool is uploaded -- never a claim left
``running`` with an expired lease for good. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.core.authority import Owner
from bridge.core.config import load_settings
from bridge.store.bare import Store
from bridge.store.db import Registry
from bridge.store.models import ClaimRow, RunRow
from legacy_wrappers import shim_consult, shim_plan, shim_run, spool, spool_flush
from tests.support.shim import JOB, add_job, away_from_minute_edge, cron_env, shim


def claims(db_url: str) -> list[tuple[str, int, str]]:
    reg = Registry(db_url)
    try:
        with reg.session() as s:
            return [(c.state, c.attempts, c.holder) for c in s.scalars(select(ClaimRow))]
    finally:
        reg.dispose()


def run_rows(db_url: str) -> list[RunRow]:
    reg = Registry(db_url)
    try:
        with reg.session() as s:
            return list(s.scalars(select(RunRow)))
    finally:
        reg.dispose()


def claimed_then_cut_off(db_url: str, spool_dir: Path, state: str = "failed") -> Any:
    """The shim's own steps: claim the slot, lose the registry, record (-> the spool)."""
    reg = Registry(db_url)
    add_job(reg, "* * * * *")
    reg.dispose()
    firing = shim_consult.LegacyFiring(JOB, datetime.now(UTC), "host-1")
    firing.settings = load_settings({"BRIDGE_DATABASE_URL": db_url,
                                     "BRIDGE_SPOOL_DIR": str(spool_dir)})
    firing.store = Store(db_url)
    firing.decision = shim_plan.FiringPlan("run", datetime(2026, 3, 8, 7, tzinfo=UTC), claim=True)
    ref, lost_to = shim_run.take_claim(firing)
    assert ref is not None and lost_to is None
    firing.store.conn.close()  # the registry goes away while the command runs
    shim_run.record_firing(firing, shim_run.run_row(firing, "authoritative", state), ref, state)
    assert not firing.in_registry and len(spool.spool_files(str(spool_dir))) == 1
    return ref


def test_the_upload_completes_the_claim_the_shim_held(  # type: ignore[no-untyped-def]
    cli, db_url: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    ref = claimed_then_cut_off(db_url, spool_dir)
    assert claims(db_url) == [("running", 1, ref.holder)]  # what the issue saw, for good
    r = cli("legacy", "flush", "--spool", str(spool_dir), "--json",
            env={"BRIDGE_DATABASE_URL": db_url})
    assert r.code == 0 and r.json()["uploaded"] == 1, r.out + r.err  # type: ignore[index]
    assert claims(db_url) == [("failed", 1, ref.holder)]
    [row] = run_rows(db_url)
    assert (row.role, row.status) == ("authoritative", "failed")


def test_a_claim_taken_over_meanwhile_is_left_to_its_new_holder(  # type: ignore[no-untyped-def]
    cli, db_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import update

    spool_dir = tmp_path / "spool"
    claimed_then_cut_off(db_url, spool_dir, state="succeeded")
    reg = Registry(db_url)
    with reg.session() as s:  # a takeover: another holder, the next attempt
        s.execute(update(ClaimRow).values(holder="celery:w1@x", attempts=2))
    reg.dispose()
    assert cli("legacy", "flush", "--spool", str(spool_dir),
               env={"BRIDGE_DATABASE_URL": db_url}).code == 0
    assert claims(db_url) == [("running", 2, "celery:w1@x")]


def test_a_bad_claim_field_rejects_the_line_instead_of_guessing() -> None:
    line = spool.encode({"record_key": "legacy:k", "job_id": JOB, "slot": "2026-03-08T07:00:00Z",
                         "path": "legacy", "role": "authoritative", "status": "succeeded",
                         "claim_holder": "h", "claim_attempts": 0, "claim_state": "running"})
    parsed = spool_flush.parse_spool(line, stale=False)
    assert parsed.records == [] and "claim_attempts" in parsed.rejects[0][2]


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_a_real_outage_mid_run_on_postgresql_then_flush_completes_the_claim(  # type: ignore[no-untyped-def]
    cli, pg_registry_url: str, tmp_path: Path
) -> None:
    """The real shim, whose registry connection the command itself terminates."""
    reg = Registry(pg_registry_url)
    add_job(reg, "* * * * *", owner=Owner.LEGACY)
    reg.dispose()
    app = f"bridge-shim-{os.getpid()}"
    libpq_url = pg_registry_url.replace("postgresql+psycopg://", "postgresql://")
    kill = (f"psql -qAt '{libpq_url}' -c \"select count(pg_terminate_backend(pid)) from "
            f"pg_stat_activity where application_name = '{app}' and pid <> pg_backend_pid()\"")
    env = cron_env(tmp_path, pg_registry_url, PGAPPNAME=app)
    away_from_minute_edge()
    got = shim(env, f"{kill}; echo ran")
    assert got.stdout == b"1\nran\n", got.stdout + got.stderr  # one shim connection killed
    [(state, attempts, holder)] = claims(pg_registry_url)
    assert (state, attempts) == ("running", 1)  # left behind by the outage
    r = cli("legacy", "flush", "--spool", env["BRIDGE_SPOOL_DIR"], "--json",
            env={"BRIDGE_DATABASE_URL": pg_registry_url})
    assert r.code == 0 and r.json()["uploaded"] == 1, r.out + r.err  # type: ignore[index]
    assert claims(pg_registry_url) == [("succeeded", 1, holder)]
