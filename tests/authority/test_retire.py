"""``bridge legacy retire``: comment out stable Celery-owned jobs' lines; --restore undoes it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.runs import RunRecord
from bridge.core.spec import JobSpec
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import record_many
from crontab_import.crontab import parse_crontab
from crontab_import.model import ItemStatus
from legacy_wrappers.retire import eligibility, job_lines, restore, retire
from tests.shadow.helpers import backdate_imports, utc

CRONTAB = (
    "# m h dom mon dow command\r\n"
    "MAILTO=ops@example.com\n"
    "0 * * * * /usr/bin/hourly --flag\r\n"
    "# Name: nightly\n"
    "30 2 * * * /usr/bin/nightly > /dev/null 2>&1\n"
    "*/5 * * * * /usr/bin/often %stdin text\n"
    "@reboot /usr/bin/boot\n"
)


def event(owner: Owner, effective: str | None) -> AuthorityEvent:
    return AuthorityEvent("j", utc(effective) if effective else None, owner, "t", None, False,
                          utc("2026-01-01T00:00:00Z"))


def test_retire_comments_out_only_the_chosen_lines_and_restore_is_exact() -> None:
    lines = job_lines(CRONTAB, file="/var/spool/cron/crontabs/alice")
    assert sorted(lines.values()) == [3, 5, 6]
    chosen = {k: v for k, v in lines.items() if v in (3, 6)}
    result = retire(CRONTAB, chosen, date(2026, 3, 2))
    out = result.text.split("\n")
    assert out[2] == f"# bridge-retired 2026-03-02 {lines_id(lines, 3)}: " \
                     "0 * * * * /usr/bin/hourly --flag\r"
    assert out[5].startswith("# bridge-retired 2026-03-02 ")
    assert [a for a, b in zip(out, CRONTAB.split("\n"), strict=True) if a != b] == [out[2], out[5]]
    assert restore(result.text).text == CRONTAB
    assert restore(result.text, [lines_id(lines, 3)]).text.split("\n")[5] == out[5]


def lines_id(lines: dict[str, int], number: int) -> str:
    return next(k for k, v in lines.items() if v == number)


def test_retiring_again_keeps_ids_stable() -> None:
    lines = job_lines(CRONTAB, file="/f")
    once = retire(CRONTAB, {lines_id(lines, 3): 3}, date(2026, 3, 2)).text
    again = job_lines(once, file="/f")
    assert again == {k: v for k, v in lines.items() if v != 3}


def test_retired_lines_parse_as_disabled_with_stable_ids() -> None:
    lines = job_lines(CRONTAB, file="/var/spool/cron/crontabs/alice")
    result = retire(CRONTAB, {lines_id(lines, 3): 3}, date(2026, 3, 2))
    parsed = parse_crontab(result.text, file="/var/spool/cron/crontabs/alice", timezone="UTC")
    by_line = {i.source.line: i for i in parsed.items}
    assert by_line[3].status is ItemStatus.DISABLED
    assert by_line[3].id == lines_id(lines, 3)
    assert {i.id for i in parsed.items if i.status is not ItemStatus.DISABLED and i.job} == \
        {lines_id(lines, 5), lines_id(lines, 6)}


def test_eligibility_needs_a_stable_celery_period_without_trouble() -> None:
    now, week = utc("2026-03-20T00:00:00Z"), timedelta(days=7)
    flipped = [event(Owner.LEGACY, None), event(Owner.CELERY, "2026-03-01T00:00:00Z")]
    assert eligibility("j", flipped, now=now, stable=week).eligible
    assert not eligibility("j", [event(Owner.LEGACY, None)], now=now, stable=week).eligible
    recent = [event(Owner.LEGACY, None), event(Owner.CELERY, "2026-03-15T00:00:00Z")]
    assert "less than 7 day" in eligibility("j", recent, now=now, stable=week).reason
    back = [*flipped, event(Owner.LEGACY, "2026-03-10T00:00:00Z")]
    assert not eligibility("j", back, now=now, stable=week).eligible
    bad = eligibility("j", flipped, now=now, stable=week, unresolved=[utc("2026-03-05T00:00Z")])
    assert not bad.eligible and "unresolved" in bad.reason
    failed = eligibility("j", flipped, now=now, stable=week, failures=[utc("2026-03-05T00:00Z")])
    assert not failed.eligible and "failed" in failed.reason


def test_retire_cli_retires_stable_jobs_and_restores(cli: Any, db_url: str,
                                                     tmp_path: Path) -> None:
    src = tmp_path / "alice"
    src.write_bytes(CRONTAB.encode())
    e = {"BRIDGE_DATABASE_URL": db_url}
    parsed = parse_crontab(CRONTAB, file=str(src), timezone="UTC")
    specs = [i.job for i in parsed.items
             if i.job is not None and i.status is not ItemStatus.DISABLED]
    hourly = next(sp for sp in specs if "hourly" in str(sp.handler))
    nightly = next(sp for sp in specs if "nightly" in str(sp.handler))
    flipped_at = (datetime.now(UTC) - timedelta(days=8)).replace(minute=0, second=0, microsecond=0)
    registry = Registry(db_url)
    with registry.session() as s:
        for sp in specs:
            JobRepo(s).upsert(sp)
        backdate_imports(s)
        for sp in (hourly, nightly):
            AuthorityRepo(s).append(sp.id, Owner.CELERY, actor="t", reason=None,
                                    effective_slot=flipped_at)
        record_many(s, celery_era(hourly.id, flipped_at, datetime.now(UTC)))  # nightly: none
    registry.dispose()
    out = tmp_path / "alice.retired"
    r = cli("legacy", "retire", str(src), "--out", str(out), "--stable-days", "7", "--json",
            env=e)
    assert r.code == 1, r.out + r.err  # nightly's slots are unfinished (missed): a finding
    doc = r.json()
    assert [x["job_id"] for x in doc["retired"]] == [hourly.id]
    kept = {x["job_id"]: x["reason"] for x in doc["kept"]}
    assert set(kept) == {sp.id for sp in specs} - {hourly.id}
    assert kept[nightly.id].startswith("unfinished slot ")  # Celery never ran: missed slots
    assert ": missed: " in kept[nightly.id]
    assert out.read_bytes().decode().count("# bridge-retired ") == 1
    r = cli("legacy", "retire", str(out), "--source", str(src), "--restore", "--out",
            str(tmp_path / "back"), env=e)
    assert r.code == 0
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    log = cli("audit", "log", "--json", env=e).json()["entries"]
    assert [x["action"] for x in log if x["action"].startswith("legacy.")] == \
        ["legacy.retire", "legacy.restore"]


def celery_era(job_id: str, since: datetime, until: datetime) -> list[RunRecord]:
    """Hourly slots after a flip: Celery ran each one, the legacy shim stood down."""
    out, slot = [], since
    while slot <= until - timedelta(seconds=2):
        fired = slot + timedelta(seconds=1)
        out.append(RunRecord(job_id=job_id, slot=slot, path="celery", role="authoritative",  # type: ignore[arg-type]
                               status="succeeded", fired_at=fired, started_at=fired,  # type: ignore[arg-type]
                               finished_at=fired, exit_status=0))
        out.append(RunRecord(job_id=job_id, slot=slot, path="legacy", role="stand-down",  # type: ignore[arg-type]
                               status="stood-down", fired_at=fired))  # type: ignore[arg-type]
        slot += timedelta(hours=1)
    return out


def _flipped_hourly(db_url: str, tmp_path: Path) -> tuple[Path, JobSpec, datetime]:
    """The crontab imported, its hourly job owned by Celery for 8 days, every slot run."""
    src = tmp_path / "alice"
    src.write_bytes(CRONTAB.encode())
    parsed = parse_crontab(CRONTAB, file=str(src), timezone="UTC")
    specs = [i.job for i in parsed.items
             if i.job is not None and i.status is not ItemStatus.DISABLED]
    hourly = next(sp for sp in specs if "hourly" in str(sp.handler))
    now = datetime.now(UTC)
    flipped_at = (now - timedelta(days=8)).replace(minute=0, second=0, microsecond=0)
    registry = Registry(db_url)
    with registry.session() as s:
        for sp in specs:
            JobRepo(s).upsert(sp)
        backdate_imports(s)
        AuthorityRepo(s).append(hourly.id, Owner.CELERY, actor="t", reason=None,
                                effective_slot=flipped_at)
        record_many(s, celery_era(hourly.id, flipped_at, now))
    registry.dispose()
    return src, hourly, now.replace(minute=0, second=0, microsecond=0)


def test_retire_refuses_a_job_whose_killed_run_left_its_claim_running(
        cli: Any, db_url: str, tmp_path: Path) -> None:
    """#14.2: the worker was SIGKILLed mid-run 3 hours ago: its start marker says `running`,
    its claim stays `running` past its lease. The shadow report calls that slot a timing
    match; retire must still keep the line (one-line reason, exit 1)."""
    from sqlalchemy import delete

    from bridge.store.models import ClaimRow, RunRow

    src, hourly, top = _flipped_hourly(db_url, tmp_path)
    slot = top - timedelta(hours=3)
    registry = Registry(db_url)
    with registry.session() as s:
        s.execute(delete(RunRow).where(RunRow.job_id == hourly.id, RunRow.slot == slot,
                                       RunRow.path == "celery"))
        record_many(s, [RunRecord(job_id=hourly.id, slot=slot, path="celery",  # type: ignore[arg-type]
                                    role="authoritative", status="running",  # type: ignore[arg-type]
                                    started_at=slot + timedelta(seconds=1),
                                    host="w1")])
        s.add(ClaimRow(job_id=hourly.id, slot=slot, holder="w1:4242", path="celery",
                       state="running", attempts=1, expires_at=slot + timedelta(minutes=5)))
    registry.dispose()
    e = {"BRIDGE_DATABASE_URL": db_url}
    out = tmp_path / "alice.retired"
    r = cli("legacy", "retire", str(src), "--out", str(out), "--stable-days", "0", env=e)
    assert r.code == 1, r.out + r.err
    stamp = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    line = next(x for x in r.out.splitlines() if x.startswith(f"kept {hourly.id}:"))
    assert f"unfinished slot {stamp}: stuck" in line
    assert "# bridge-retired" not in out.read_text()
    r = cli("legacy", "retire", str(src), "--stable-days", "0", env=e)  # stdout: the file
    assert r.code == 1 and r.out == CRONTAB
    assert f"kept {hourly.id}: unfinished slot {stamp}" in r.err


def test_retire_refuses_while_a_run_is_under_way_or_a_slot_was_missed(
        cli: Any, db_url: str, tmp_path: Path) -> None:
    from sqlalchemy import delete

    from bridge.store.models import ClaimRow, RunRow

    src, hourly, top = _flipped_hourly(db_url, tmp_path)
    missed = top - timedelta(hours=5)
    registry = Registry(db_url)
    with registry.session() as s:
        s.execute(delete(RunRow).where(RunRow.job_id == hourly.id, RunRow.slot == missed,
                                       RunRow.path == "celery"))
        s.add(ClaimRow(job_id=hourly.id, slot=top, holder="w1:1", path="celery",
                       state="running", attempts=1,
                       expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    registry.dispose()
    r = cli("legacy", "retire", str(src), "--out", str(tmp_path / "o"), "--stable-days", "0",
            "--json", env={"BRIDGE_DATABASE_URL": db_url})
    assert r.code == 1, r.err
    kept = {x["job_id"]: x["reason"] for x in r.json()["kept"]}
    reason = kept[hourly.id]
    stamp = missed.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reason.startswith(f"unfinished slot {stamp} (and 1 more): missed"), reason
    assert "\n" not in reason and r.json()["retired"] == []
