"""The shim under the real Debian cron daemon, side by side with the same lines run plainly.

One cron.d file (two root jobs: one with ``%`` stdin printing to cron's mail file, one exiting
3) is imported, rewritten through the shim and installed in /etc/cron.d next to an
un-rewritten copy whose only difference is ``OUT`` (where its commands write). Both copies
fire at the same minute; the commands' outputs (environment, cwd, stdin, session, signal
dispositions, descriptors) and exit statuses must be identical, and each shim run must be in
the registry against the right slot. Then the shim copy's registry becomes unreachable: at the
next minute the commands still run, the records land in the spool, and ``bridge legacy flush``
uploads them exactly once.

Settings reach the shim only through the cron file's environment lines (BRIDGE_DATABASE_URL,
BRIDGE_SPOOL_DIR, BRIDGE_AUTHORITY_DIR, XDG_CONFIG_HOME); both copies carry the same lines so
the commands see the same environment. The shim is reached through a tiny wrapper named
``bridge-cron-shell`` that records the shim's own exit status (cron only logs it to syslog).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.store.db import Registry
from bridge.store.runs import RunRepo
from legacy_wrappers import spool
from tests.support import wait_for
from tests.support.host_cron import local_cron_pids

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=80), pytest.mark.timeout(240)]

SHIM = str(Path(sys.executable).parent / "bridge-cron-shell")
PROBE = (
    "(echo \"argv0=$0\"; env | grep -v '^OUT=' | sort; echo \"cwd=$(pwd)\"; echo stdin:; cat; "
    "read -r _ _ _ _ pg sid _ < /proc/$$/stat; echo \"leader=$(( $$ == pg && pg == sid ))\"; "
    "while read -r k v; do case $k in SigBlk:|SigIgn:) echo \"$k $v\";; esac; "
    "done < /proc/$$/status; for f in /proc/$$/fd/*; do echo \"fd ${f##*/}\"; done)"
)


def crontab(work: Path, out: Path, settings: str) -> str:
    return "\n".join([
        settings,
        f"OUT={out}",
        "JOBNAME=a",
        f'* * * * * root {PROBE} >> "$OUT/a.txt" 2>&1; echo to-mail %line1%line2\\%x',
        f"SHELL={work}/rec.sh",  # job b: a SHELL recording the command's exit status
        "JOBNAME=b",
        '* * * * * root (echo run; echo err >&2) >> "$OUT/b.txt" 2>&1; exit 3',
        "",
    ])


# --- the daemon and the files ------------------------------------------------------------------


class Daemon:
    """Use the running cron; start ours when there is none (also if it vanishes mid-test)."""

    def __init__(self) -> None:
        self.ours: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("cron") or shutil.which("cron", path="/usr/sbin:/sbin")

    def ensure(self) -> None:
        if local_cron_pids() or (self.ours is not None and self.ours.poll() is None):
            return
        assert self.binary is not None
        self.ours = subprocess.Popen([self.binary, "-f", "-L", "15"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("cron to start", local_cron_pids, 10, interval=0.1)

    def stop(self) -> None:
        if self.ours is not None:
            self.ours.send_signal(signal.SIGTERM)
            try:
                self.ours.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.ours.kill()


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root to write /etc/cron.d")
    d = Daemon()
    if d.binary is None:
        pytest.skip("Debian's cron is not installed (apt-get install cron)")
    d.ensure()
    yield d
    d.stop()


@pytest.fixture
def cron_files() -> Iterator[Callable[[str, str], Path]]:
    """Install files in /etc/cron.d (atomically: a dotted temporary name cron ignores, then
    rename); every file is removed at the end, also on failure."""
    installed: list[Path] = []

    def install(name: str, text: str) -> Path:
        target = Path("/etc/cron.d") / name
        tmp = Path("/etc/cron.d") / f".{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, target)
        installed.append(target)
        return target

    yield install
    for path in installed:
        path.unlink(missing_ok=True)


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path("/tmp") / f"bridge-shim-cron-{secrets.token_hex(4)}"
    for sub in ("cron.d", "bin", "out-shim", "out-orig"):  # cron.d: parsed as cron.d format
        (path / sub).mkdir(parents=True)
    rec = path / "rec.sh"  # the crontab's SHELL: the command's own exit status, per job
    rec.write_text('#!/bin/sh\n/bin/sh "$@"\nrc=$?\necho "$rc" >> "$OUT/rc-$JOBNAME"\nexit $rc\n')
    wrapper = path / "bin" / "bridge-cron-shell"  # the shim's exit status, as cron sees it
    wrapper.write_text(f'#!/bin/sh\n{SHIM} "$@"\nrc=$?\necho "$rc" >> "$OUT/shim-rc-$JOBNAME"\n'
                       "exit $rc\n")
    for script in (rec, wrapper):
        script.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def settings_lines(work: Path, database_url: str) -> str:
    return "\n".join([f"BRIDGE_DATABASE_URL={database_url}", f"BRIDGE_SPOOL_DIR={work}/spool",
                      f"BRIDGE_AUTHORITY_DIR={work}/authority", f"XDG_CONFIG_HOME={work}/xdg"])


def cron_ran(daemon: Daemon, done: Callable[[], bool], limit: float = 75) -> None:
    """Wait until cron has run the jobs (restarting our cron if it vanished meanwhile)."""

    def check() -> bool:
        daemon.ensure()
        return done()

    wait_for("cron to run the jobs", check, limit, interval=0.5)
    time.sleep(1)  # cron mails a job's output after the job's shell exits: let it land


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def not_near_the_tick() -> None:
    if 60 - time.time() % 60 < 4:  # cron may not see a file installed right before its tick
        time.sleep(5)  # the minute boundary IS the condition


# --- the test ------------------------------------------------------------------------------------


def test_shim_under_debian_cron_matches_plain_cron_and_survives_a_dead_registry(
    daemon: Daemon, cron_files: Callable[[str, str], Path], work: Path, redis_url: str,
    cli: Callable[..., Any],
) -> None:
    name = f"bridgeshimtest{secrets.token_hex(3)}"
    registry_url = f"sqlite:///{work}/registry.db"
    env = {"BRIDGE_DATABASE_URL": registry_url, "BRIDGE_REDIS_URL": redis_url}
    live = settings_lines(work, registry_url)
    source = work / "cron.d" / name
    source.write_text(crontab(work, work / "out-shim", live))
    imported = cli("import", "crontab", "--system", "--timezone", "UTC", str(source), env=env)
    assert imported.code == 0, imported.err
    rewritten = work / "rewritten"
    result = cli("legacy", "rewrite", str(source), "--shim", str(work / "bin" /
                 "bridge-cron-shell"), "--out", str(rewritten), "--json", env=env)
    assert result.code == 0, result.err
    job_a, job_b = (f"etc-cron.d-{name}-{i}" for i in (1, 2))
    assert result.json()["managed"] == [job_a, job_b]

    not_near_the_tick()
    cron_files(f"bridge-shim-orig-{name[-6:]}", crontab(work, work / "out-orig", live))
    cron_files(f"bridge-shim-test-{name[-6:]}", rewritten.read_text())
    shim_rc, orig_rc = work / "out-shim", work / "out-orig"
    cron_ran(daemon, lambda: all(len(lines(d / f)) >= 1 for d, f in [
        (shim_rc, "shim-rc-a"), (shim_rc, "shim-rc-b"), (orig_rc, "a.txt"), (orig_rc, "rc-b")]))

    assert_same_outputs(work)
    assert lines(shim_rc / "shim-rc-a") == ["0"] and lines(shim_rc / "shim-rc-b") == ["3"]
    reg = Registry(registry_url)
    first = {job: rows(reg, job) for job in (job_a, job_b)}
    (a1,), (b1,) = first[job_a], first[job_b]
    tick = a1.slot
    assert b1.slot == tick and a1.fired_at is not None
    assert tick == a1.fired_at.replace(second=0, microsecond=0)  # the minute cron fired at
    assert (a1.role, a1.status, a1.exit_status) == ("authoritative", "succeeded", 0)
    assert (b1.role, b1.status, b1.exit_status) == ("authoritative", "failed", 3)
    assert a1.output_digest == hashlib.sha256(b"to-mail\n").hexdigest()  # cron's mail file
    assert b1.output_digest == hashlib.sha256(b"").hexdigest()

    # the registry becomes unreachable (both copies get the same lines: same environment)
    dead = settings_lines(work, f"sqlite:///{work}/missing/registry.db")
    cron_files(f"bridge-shim-test-{name[-6:]}", rewritten.read_text().replace(live, dead))
    cron_files(f"bridge-shim-orig-{name[-6:]}", crontab(work, work / "out-orig", dead))
    cron_ran(daemon, lambda: all(len(lines(d / f)) >= 2 for d, f in [
        (shim_rc, "shim-rc-a"), (shim_rc, "shim-rc-b"), (orig_rc, "rc-b")])
        and (orig_rc / "a.txt").read_text().count("argv0=") == 2)
    assert_same_outputs(work)
    assert lines(shim_rc / "shim-rc-a") == ["0", "0"] and lines(shim_rc / "shim-rc-b") == ["3", "3"]
    assert [len(rows(reg, job)) for job in (job_a, job_b)] == [1, 1]  # nothing reached it
    spooled = [spool.decode(line) for path in spool.spool_files(str(work / "spool"))
               for line in Path(path).read_bytes().splitlines()]
    assert sorted((r["job_id"], r["exit_status"]) for r in spooled) == [(job_a, 0), (job_b, 3)]
    assert all(r["slot"] > tick and r["slot"].second == 0 for r in spooled)
    assert all("registry unreachable" in r["error"] and "estimated" not in r["error"]
               for r in spooled)

    flushed = cli("legacy", "flush", "--spool", str(work / "spool"), "--json", env=env)
    assert flushed.code == 0 and flushed.json()["uploaded"] == 2
    again = cli("legacy", "flush", "--spool", str(work / "spool"), "--json", env=env)
    assert again.json()["uploaded"] == 0
    assert [len(rows(reg, job)) for job in (job_a, job_b)] == [2, 2]
    reg.dispose()


def rows(reg: Registry, job_id: str) -> list[Any]:
    with reg.session() as s:
        return RunRepo(s).for_job(job_id)


def assert_same_outputs(work: Path) -> None:
    for job in ("a", "b"):
        orig = (work / "out-orig" / f"{job}.txt").read_text()
        shim = (work / "out-shim" / f"{job}.txt").read_text()
        assert shim == orig, f"job {job}: output differs under the shim"
    assert lines(work / "out-shim" / "rc-b") == lines(work / "out-orig" / "rc-b")
    a = (work / "out-orig" / "a.txt").read_text()  # facts of cron itself (test_runner_vs_cron)
    assert "stdin:\nline1\nline2%x\n" in a and "leader=1\n" in a and "\nSHELL=/bin/sh\n" in a
    assert "SigIgn:" in a and "BRIDGE_JOB" not in a and "BRIDGE_SHELL" not in a
