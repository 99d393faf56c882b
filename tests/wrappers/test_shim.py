"""``bridge-cron-shell`` as cron runs it: a subprocess invoked as ``<shim> -c CMD``.

Every passthrough property is checked against the reference, the same command run by the plain
shell the way cron would run it (``$BRIDGE_SHELL -c CMD`` with SHELL restored): stdin, stdout,
stderr, exit status, environment, argv[0], session, signal dispositions, inherited fds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.core.authority import Owner
from bridge.store.db import Registry
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo
from legacy_wrappers import spool, spool_flush
from legacy_wrappers.claims import AlreadyClaimed, Claims, Holder
from legacy_wrappers.shim_os import child_environment
from legacy_wrappers.shim_plan import plan_firing
from tests.support import wait_for
from tests.support.shim import (
    JOB,
    SHIM,
    add_job,
    away_from_minute_edge,
    cron_env,
    dead_pg,
    plain,
    runs,
    shim,
)

pytestmark = pytest.mark.integration  # the shim runs as a real subprocess

BIG = "seq 1 150000"  # ~1 MB, more than any pipe buffer
NOISY = (f"cat; printf '\\000\\001\\377bin\\n'; {BIG}; echo to-err >&2; seq 1 3000 >&2; "
         "printf 'tail'; exit 5")
STDIN = b"line1\nline2\x00\xff\n"


# --- fixtures and helpers: tests/support/shim.py, the registry fixture: tests/wrappers/conftest.py


def minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


# --- passthrough ----------------------------------------------------------------------------------


@pytest.mark.parametrize("merged", [False, True], ids=["split-pipes", "one-pipe"])
def test_output_stdin_and_exit_status_pass_through_byte_exact(
    tmp_path: Path, registry: Registry, db_url: str, merged: bool
) -> None:
    env = cron_env(tmp_path, db_url)
    want = plain(env, NOISY, stdin=STDIN, merged=merged)
    away_from_minute_edge()
    got = shim(env, NOISY, stdin=STDIN, merged=merged)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert want.returncode == 5 and len(want.stdout) > 900_000 and b"\x00\x01\xffbin" in want.stdout
    (row,) = runs(registry)
    assert row.exit_status == 5 and row.status == "failed"
    if merged:  # one pipe: the digest is the merged stream, as the runner computes it
        assert row.output_digest == hashlib.sha256(want.stdout).hexdigest()


def test_regular_output_file_is_written_directly_and_digested(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    """Debian cron hands the job one read-write temporary file as stdout and stderr."""
    env = cron_env(tmp_path, db_url)
    shell, child_env = child_environment(env)
    outputs = []
    for argv, environment in (([shell, "-c", NOISY], child_env), ([SHIM, "-c", NOISY], env)):
        with open(tmp_path / "out", "w+b") as f:
            f.write(b"before\n")  # the shim digests only what the command wrote
            f.flush()
            proc = subprocess.run(argv, env=environment, input=STDIN, stdout=f, stderr=f,
                                  timeout=120, cwd=tmp_path)
            f.seek(0)
            outputs.append((proc.returncode, f.read()))
    assert outputs[0] == outputs[1]
    (row,) = runs(registry)
    assert row.output_digest == hashlib.sha256(outputs[1][1][len(b"before\n"):]).hexdigest()


def test_unmanaged_line_execs_the_shell_and_records_nothing(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url, job="")
    got, want = shim(env, NOISY, stdin=STDIN), plain(env, NOISY, stdin=STDIN)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert runs(registry) == []


@pytest.mark.parametrize("job", [JOB, ""], ids=["recorded", "unmanaged"])
def test_command_sees_cron_environment_with_shell_restored(
    tmp_path: Path, registry: Registry, db_url: str, job: str
) -> None:
    env = cron_env(tmp_path, db_url, job=job, BRIDGE_SHELL="/bin/bash")
    probe = 'echo "argv0=$0"; env | sort; echo "cwd=$(pwd)"'
    got = shim(env, probe)
    assert got.stdout == plain(env, probe).stdout
    lines = got.stdout.decode().splitlines()
    assert "argv0=/bin/bash" in lines and "SHELL=/bin/bash" in lines and "FOO=bar baz" in lines
    assert not [line for line in lines if line.startswith(("BRIDGE_JOB=", "BRIDGE_SHELL="))]


def test_session_signal_dispositions_and_inherited_fds_are_cron_s(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    """pid = pgid = sid; SIGINT/SIGQUIT ignored by cron stay ignored, SIGPIPE is default again;
    the fds cron leaked (and no fd of the shim's: registry, pipes) reach the command."""
    env = cron_env(tmp_path, db_url)
    # builtins only: the shell reads its own state (a child would see the shell mid-wait)
    probe = ("read -r _ _ _ _ pg sid _ < /proc/$$/stat; "
             "echo \"leader=$(( $$ == pg && pg == sid ))\"; "
             "while read -r k v; do case $k in SigBlk:|SigIgn:) echo \"$k $v\";; esac; "
             "done < /proc/$$/status; for f in /proc/$$/fd/*; do printf '%s ' \"${f##*/}\"; done")
    leaked = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(leaked, True)

    def cron_like() -> None:  # what cron's jobs get (checked under the real daemon)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)

    try:
        kw = {"pass_fds": (leaked,), "preexec_fn": cron_like, "start_new_session": True}
        want = plain(env, probe, **kw).stdout.decode()
        got = shim(env, probe, **kw).stdout.decode()
    finally:
        os.close(leaked)
    assert got == want, (got, want)
    assert "leader=1" in got and "SigIgn: 0000000000000006" in got
    assert "SigBlk: 0000000000000000" in got and f" {leaked}" in got


def test_exec_failure_reports_like_cron(tmp_path: Path, registry: Registry, db_url: str) -> None:
    for job in (JOB, ""):
        got = shim(cron_env(tmp_path, db_url, job=job, BRIDGE_SHELL="/nonexistent/sh"), "true")
        assert (got.returncode, got.stdout) == (1, b"")
        assert got.stderr == b"/nonexistent/sh: execle: No such file or directory\n"


def test_sigterm_is_forwarded_and_a_signal_death_is_reproduced(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    command = "trap 'echo got-term; kill $!; exit 7' TERM; sleep 30 >/dev/null 2>&1 & wait"
    proc = subprocess.Popen([SHIM, "-c", command],
                            env=env, stdout=subprocess.PIPE, cwd=tmp_path)
    wait_for("the shim's claim", lambda: runs_or_claims(registry), 30, interval=0.05)
    time.sleep(0.3)  # the command is past installing its TERM trap
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (7, b"got-term\n")
    (row,) = runs(registry)
    assert row.status == "interrupted" and row.exit_status == 7
    with registry.session() as s:
        s.query(RunRow).delete()
    _delete_claims(registry)
    killed = shim(env, "kill -TERM $$")
    assert killed.returncode == -signal.SIGTERM
    (row,) = runs(registry)
    assert row.exit_status == -signal.SIGTERM and row.status == "failed"


def runs_or_claims(reg: Registry) -> bool:
    from bridge.store.claims import CLAIMS

    with reg.engine.connect() as conn:
        return conn.execute(CLAIMS.select()).first() is not None


def _delete_claims(reg: Registry) -> None:
    from bridge.store.claims import CLAIMS

    with reg.engine.begin() as conn:
        conn.execute(CLAIMS.delete())


# --- recording ------------------------------------------------------------------------------------


def test_run_is_recorded_against_its_slot_and_claimed_like_a_celery_claim(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    away_from_minute_edge()
    before = datetime.now(UTC)
    got = shim(cron_env(tmp_path, db_url), "echo hello")
    assert got.returncode == 0 and got.stdout == b"hello\n"
    (row,) = runs(registry)
    assert row.slot == minute(before) and row.path == "legacy" and row.role == "authoritative"
    assert row.status == "succeeded" and row.exit_status == 0 and row.error is None
    assert row.output_digest == hashlib.sha256(b"hello\n").hexdigest()
    assert row.output_sample == "hello\n" and row.host == os.uname().nodename
    assert row.fired_at and row.started_at and row.finished_at
    assert before <= row.fired_at <= row.started_at <= row.finished_at
    assert row.record_key and row.record_key.startswith("legacy:")
    # the same (job, slot) for the Celery path's claims: one row, completed, not claimable
    lost = Claims(registry).claim(JOB, row.slot, Holder("celery-task-1"))
    assert isinstance(lost, AlreadyClaimed) and lost.state.value == "succeeded"
    assert lost.claim.path == "legacy"
    # the authority cache was refreshed from the registry
    cached = (tmp_path / "authority" / f"{JOB}.authority").read_text()
    assert cached.startswith("cron-bridge-authority 1\n") and "initial legacy" in cached


def test_stand_down_when_celery_owns_the_slot(tmp_path: Path, db_url: str) -> None:
    reg = Registry(db_url)
    add_job(reg, "* * * * *", owner=Owner.CELERY)
    marker = tmp_path / "ran"
    got = shim(cron_env(tmp_path, db_url), f"touch {marker}; echo ran")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"", b"")
    assert not marker.exists()
    (row,) = runs(reg)
    assert (row.role, row.status, row.exit_status) == ("stand-down", "stood-down", None)
    reg.dispose()


def test_paused_job_is_skipped_and_recorded(tmp_path: Path, db_url: str) -> None:
    reg = Registry(db_url)
    add_job(reg, "* * * * *")
    with reg.session() as s:
        JobRepo(s).set_paused(JOB, True, "incident 42")
    marker = tmp_path / "ran"
    got = shim(cron_env(tmp_path, db_url), f"touch {marker}; echo ran")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"", b"")
    assert not marker.exists()
    (row,) = runs(reg)
    assert (row.role, row.status, row.error) == ("scheduler", "skipped", "paused: incident 42")
    reg.dispose()


def test_second_claimant_is_suppressed_and_does_not_run(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    away_from_minute_edge()
    slot = minute(datetime.now(UTC))
    assert not isinstance(Claims(registry).claim(JOB, slot, Holder("legacy-host-a")),
                          AlreadyClaimed)
    marker = tmp_path / "ran"
    got = shim(cron_env(tmp_path, db_url), f"touch {marker}; echo ran")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"", b"")
    assert not marker.exists()
    (row,) = runs(registry)
    assert (row.slot, row.role, row.status) == (slot, "suppressed", "suppressed")
    assert row.error is not None and "already claimed by legacy-host-a" in row.error


def test_expired_claim_is_taken_over_through_claims(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    """A crashed earlier claimant: the shim's conflict path asks Claims, which takes over."""
    away_from_minute_edge()
    slot = minute(datetime.now(UTC))
    old = Claims(registry, clock=lambda: datetime.now(UTC) - timedelta(minutes=5))
    assert not isinstance(old.claim(JOB, slot, Holder("crashed")), AlreadyClaimed)
    got = shim(cron_env(tmp_path, db_url), "echo ran")
    assert got.stdout == b"ran\n"
    (row,) = runs(registry)
    assert row.role == "authoritative" and row.status == "succeeded"
    claim = Claims(registry).get(JOB, slot)
    assert claim is not None and claim.attempts == 2 and claim.state.value == "succeeded"


def test_no_slot_within_tolerance_still_runs_and_says_so(tmp_path: Path, db_url: str) -> None:
    reg = Registry(db_url)
    now = datetime.now(UTC)
    far = now - timedelta(hours=2)
    add_job(reg, f"{far.minute} {far.hour} * * *")
    got = shim(cron_env(tmp_path, db_url), "echo ran")
    assert got.stdout == b"ran\n" and got.returncode == 0
    (row,) = runs(reg)
    assert row.error is not None and "no slot within tolerance" in row.error
    assert row.role == "authoritative" and row.slot >= minute(now)
    reg.dispose()


class _Every:
    """A fake evaluator: slots every ``step`` seconds from T0."""

    def __init__(self, step: int) -> None:
        self.step = step

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        return base + timedelta(seconds=(t - base).total_seconds() // self.step * self.step)

    def next_after(self, t: datetime) -> datetime | None:  # pragma: no cover - unused
        return None


def test_decide_slot_tolerance_and_owner() -> None:
    from bridge.services.authority_files import resolve

    slot = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    hourly = _Every(3600)
    legacy = resolve(JOB, [(None, "legacy")])
    nxt = slot + timedelta(hours=1)
    flipped = resolve(JOB, [(None, "legacy"), (nxt, "celery")])
    assert plan_firing(slot + timedelta(seconds=90), hourly, legacy, reachable=True).slot == slot
    late = plan_firing(slot + timedelta(seconds=91), hourly, legacy, reachable=True)
    assert late.action == "run" and not late.claim
    assert "no slot within tolerance" in str(late.note)
    stand_down = plan_firing(nxt + timedelta(seconds=2), hourly, flipped, reachable=True)
    assert stand_down.action == "stand-down" and stand_down.slot == nxt
    assert plan_firing(slot + timedelta(seconds=2), hourly, flipped, reachable=True).claim is True
    assert plan_firing(slot, hourly, legacy, reachable=False).claim is False
    assert plan_firing(slot, None, None, reachable=False).note is not None


# --- registry unreachable: spool, flush -----------------------------------------------------------


def test_dead_database_runs_the_job_spools_and_flush_uploads_exactly_once(
    tmp_path: Path, registry: Registry, db_url: str, cli: Callable[..., Any]
) -> None:
    env = cron_env(tmp_path, db_url)
    away_from_minute_edge()
    assert shim(env, "true").returncode == 0  # registry up: the authority cache is written
    _delete_claims(registry)
    down = {**env, "BRIDGE_DATABASE_URL": dead_pg()}
    got, want = shim(down, NOISY, stdin=STDIN), plain(down, NOISY, stdin=STDIN)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    files = spool.spool_files(env["BRIDGE_SPOOL_DIR"])
    (line,) = Path(files[0]).read_bytes().splitlines()
    record = spool.decode(line)
    assert record["job_id"] == JOB and record["exit_status"] == 5
    assert record["slot"] == minute(record["fired_at"])
    assert "registry unreachable" in record["error"]
    flush_env = {"BRIDGE_DATABASE_URL": db_url, "BRIDGE_SPOOL_DIR": env["BRIDGE_SPOOL_DIR"]}
    first = cli("legacy", "flush", "--json", env=flush_env)
    assert first.code == 0, first.err
    assert first.json()["uploaded"] == 1 and spool.spool_files(env["BRIDGE_SPOOL_DIR"]) == []
    assert [r.status for r in runs(registry)] == ["succeeded", "failed"]
    Path(files[0]).write_bytes(line + b"\n")  # the same record again (a restored backup)
    again = cli("legacy", "ingest", "--cron-spool", env["BRIDGE_SPOOL_DIR"], "--json",
                env=flush_env)
    assert (again.json()["uploaded"], again.json()["duplicates"]) == (0, 1)
    assert len(runs(registry)) == 2


def test_dead_database_with_celery_in_the_cache_stands_down(
    tmp_path: Path, db_url: str
) -> None:
    reg = Registry(db_url)
    add_job(reg, "* * * * *", owner=Owner.CELERY)
    env = cron_env(tmp_path, db_url)
    shim(env, "true")  # caches "initial celery"
    got = shim({**env, "BRIDGE_DATABASE_URL": dead_pg()}, "echo ran")
    assert (got.returncode, got.stdout) == (0, b"")
    (path,) = spool.spool_files(env["BRIDGE_SPOOL_DIR"])
    record = spool.decode(Path(path).read_bytes().strip())
    assert (record["role"], record["status"]) == ("stand-down", "stood-down")
    reg.dispose()


def test_next_successful_run_flushes_the_spool(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    env = cron_env(tmp_path, db_url)
    missing = f"sqlite:///{tmp_path}/missing/registry.db"
    got = shim({**env, "BRIDGE_DATABASE_URL": missing}, "echo offline")
    assert got.stdout == b"offline\n"
    assert len(spool.spool_files(env["BRIDGE_SPOOL_DIR"])) == 1
    record = spool.decode(Path(spool.spool_files(env["BRIDGE_SPOOL_DIR"])[0]).read_bytes())
    assert "slot estimated from the clock" in record["error"]  # no cache yet: schedule unknown
    _delete_claims(registry)
    assert shim(env, "echo online").stdout == b"online\n"
    assert spool.spool_files(env["BRIDGE_SPOOL_DIR"]) == []
    assert sorted(r.output_sample or "" for r in runs(registry)) == ["offline\n", "online\n"]


def test_unwritable_spool_never_touches_the_job(tmp_path: Path, db_url: str) -> None:
    env = cron_env(tmp_path, dead_pg(), BRIDGE_SPOOL_DIR="/dev/null/spool")
    got, want = shim(env, NOISY, stdin=STDIN), plain(env, NOISY, stdin=STDIN)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)


# --- the spool file protocol ----------------------------------------------------------------------


def spooled(job: str = JOB, key: str = "k1", **extra: Any) -> dict[str, Any]:
    record = {"record_key": f"legacy:{key}", "job_id": job, "slot": datetime(2026, 3, 8, 7, 0,
              tzinfo=UTC), "path": "legacy", "role": "authoritative", "status": "succeeded",
              "exit_status": 0, "host": "h"}
    record.update(extra)
    return record


def test_half_written_last_line_is_kept_for_the_next_flush(
    tmp_path: Path, db_url: str
) -> None:
    reg = Registry(db_url)
    directory = tmp_path / "spool"
    directory.mkdir()
    one, two = spool.encode(spooled(key="a")), spool.encode(spooled(key="b"))
    path = directory / "quartz-20260308-h.jsonl"
    path.write_bytes(one + two[:25])
    report = spool_flush.flush(reg, str(directory))
    assert (report.uploaded, report.kept_partial, report.removed) == (1, (str(path),), ())
    assert path.read_bytes() == one + two[:25]
    assert spool_flush.flush(reg, str(directory)).uploaded == 0  # re-flush adds nothing
    with open(path, "ab") as f:
        f.write(two[25:])
    report = spool_flush.flush(reg, str(directory))
    assert (report.uploaded, report.duplicates, report.removed) == (1, 1, (str(path),))
    assert len(runs(reg)) == 2
    reg.dispose()


def test_append_after_a_torn_line_keeps_the_new_record_and_rejects_the_torn_one(
    tmp_path: Path, db_url: str
) -> None:
    reg = Registry(db_url)
    directory = str(tmp_path / "spool")
    written = spool.append(directory, spooled(key="a"))
    with open(written, "ab") as f:
        f.write(spool.encode(spooled(key="torn"))[:30])  # a writer crashed mid-line
    assert spool.append(directory, spooled(key="b")) == written
    report = spool_flush.flush(reg, directory)
    assert (report.uploaded, report.rejected) == (2, 1)
    assert spool.spool_files(directory) == []
    (rejected,) = os.listdir(os.path.join(directory, "rejected"))
    assert Path(directory, "rejected", rejected).read_bytes().startswith(b'{"v":1')
    reg.dispose()


def test_invalid_records_are_rejected_not_uploaded_and_not_lost(
    tmp_path: Path, db_url: str, cli: Callable[..., Any]
) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    good = spool.encode(spooled(key="ok"))
    bad = [b"not json\n", json.dumps({"v": 2}).encode() + b"\n",
           spool.encode(spooled(key="x", status="bogus")),
           spool.encode({k: v for k, v in spooled(key="y").items() if k != "job_id"})]
    (directory / "cron-x.jsonl").write_bytes(good + b"".join(bad))
    result = cli("legacy", "flush", "--spool", str(directory), "--json",
                 env={"BRIDGE_DATABASE_URL": db_url})
    assert result.code == 1
    doc = result.json()
    assert (doc["uploaded"], doc["rejected"]) == (1, 4)
    assert (directory / "rejected" / "cron-x.jsonl").read_bytes() == b"".join(bad)


def test_flush_with_registry_down_exits_3_and_keeps_the_spool(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    directory = tmp_path / "spool"
    spool.append(str(directory), spooled())
    result = cli("legacy", "flush", "--spool", str(directory), env={
        "BRIDGE_DATABASE_URL": dead_pg()})
    assert result.code == 3 and "unreachable" in result.err
    assert len(spool.spool_files(str(directory))) == 1


@pytest.mark.parametrize("driver", ["libpq", "psycopg"])
def test_lean_store_claims_renews_and_completes_like_claims(
    db_url: str, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shim's driver-level statements against the SQLAlchemy-side view of the same rows
    (PostgreSQL: libpq through ctypes, and psycopg when no libpq can be loaded)."""
    from bridge.store import libpq
    from bridge.store.bare import LEASE_SECONDS, Store

    if driver == "psycopg":
        if db_url.startswith("sqlite"):
            pytest.skip("SQLite has one driver")
        monkeypatch.setattr(libpq, "load_libpq", lambda: None)

    reg = Registry(db_url)
    slot = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    add_job(reg, "* * * * *")
    with reg.session() as s:
        AuthorityRepo(s).append(JOB, Owner.CELERY, effective_slot=slot, actor="t", reason=None)
    store = Store(db_url)
    if not db_url.startswith("sqlite"):
        assert isinstance(store.conn, libpq.LibPq) is (driver == "libpq")
    head, events = store.job(JOB)
    assert head is not None and head.spec()["schedule"]["expression"] == "* * * * *"
    with reg.session() as s:
        assert head.spec_hash == JobRepo(s).require(JOB).spec_hash and head.paused is None
    assert events == [(None, "legacy"), (slot, "celery")]
    assert store.job("no-such-job") == (None, [])
    ref = store.claim(JOB, slot, "legacy:h:1@cron", now)
    assert ref is not None and store.claim(JOB, slot, "legacy:h:2@cron", now) is None
    assert store.renew(ref, now + timedelta(seconds=20))
    info = Claims(reg).get(JOB, slot)
    assert info is not None and info.expires_at == now + timedelta(seconds=20 + LEASE_SECONDS)
    assert info.holder == "legacy:h:1@cron" and info.path == "legacy"
    row = {"job_id": JOB, "slot": slot, "path": "legacy", "role": "authoritative",
           "status": "succeeded", "record_key": "legacy:t1", "fired_at": now, "attempts": 1}
    assert store.finish(ref, "succeeded", row) is True
    assert store.finish(ref, "succeeded", row) is False  # fenced: no longer running; row kept once
    store.close()
    claim = Claims(reg).get(JOB, slot)
    assert claim is not None and claim.state.value == "succeeded"
    (stored,) = runs(reg)
    assert stored.slot == slot and stored.fired_at == now
    reg.dispose()


def test_a_locked_spool_file_is_skipped_by_flush_and_writers_go_elsewhere(
    tmp_path: Path, sqlite_registry_url: str
) -> None:
    """POSIX record locks (Java's FileChannel.lock takes the same): a file held by another
    process is not flushed this time, and a writer that cannot get it uses a private file."""
    directory = str(tmp_path / "spool")
    first = spool.append(directory, spooled(key="a"))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({first!r}, os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); time.sleep(30)")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        second = spool.append(directory, spooled(key="b"))
        assert second != first and second.endswith(".jsonl")
        reg = Registry(sqlite_registry_url)
        report = spool_flush.flush(reg, directory)
        assert (report.busy, report.uploaded, report.removed) == ((first,), 1, (second,))
    finally:
        holder.kill()
        holder.wait()
    assert spool_flush.flush(reg, directory).uploaded == 1
    assert spool.spool_files(directory) == []
    reg.dispose()


def test_job_missing_from_the_registry_still_runs_and_is_recorded(
    tmp_path: Path, registry: Registry, db_url: str
) -> None:
    got = shim(cron_env(tmp_path, db_url, job="deleted-job-7"), "echo still-here; exit 2")
    assert (got.returncode, got.stdout) == (2, b"still-here\n")
    with registry.session() as s:
        (row,) = RunRepo(s).for_job("deleted-job-7")
    assert row.error is not None and "job not in the registry" in row.error
    assert row.status == "failed" and row.slot.second == 0


def test_a_record_the_database_refuses_is_rejected_without_blocking_the_rest(
    tmp_path: Path, pg_registry_url: str
) -> None:
    reg = Registry(pg_registry_url)
    directory = tmp_path / "spool"
    directory.mkdir()
    too_long = spool.encode(spooled(job="j" * 300, key="long"))  # jobs.id is VARCHAR(200)
    (directory / "cron-x.jsonl").write_bytes(spool.encode(spooled(key="a")) + too_long +
                                             spool.encode(spooled(key="b")))
    report = spool_flush.flush(reg, str(directory))
    assert (report.uploaded, report.rejected) == (2, 1)
    assert "refused by the database" in report.rejections[0]
    assert (directory / "rejected" / "cron-x.jsonl").read_bytes() == too_long
    reg.dispose()
