"""The runner against the truth: the same crontab lines run by Debian's cron daemon.

One /etc/cron.d file with several jobs (root with and without ``%`` stdin, an ordinary user, a
user whose home does not exist, crontab HOME/LOGNAME/variable lines, a SHELL that records the
exit status) fires once under the real daemon; then the runner runs the very same lines and every
observable is compared: the whole environment, working directory, stdin (kind and text), umask,
uid/gid/groups, argv[0], session leadership, exit status.

Variables that legitimately differ, and only those, are ignored: ``OUT`` (each side's output
path prefix, set by this test in the crontab and in the handler's env).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.core.spec import CommandHandler
from legacy_wrappers.runner import run_command
from tests.support import wait_for
from tests.support.host_cron import local_cron_pids

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=30)]

IGNORED_VARIABLES = frozenset({"OUT"})
TEST_USER = "bridgetest"
PROBE = (
    '(env; echo "CWD=$(pwd)"; echo "STDIN=$(readlink /proc/self/fd/0 | cut -d: -f1)"; '
    'echo "UMASK=$(umask)"; echo "IDS=$(id -u) $(id -g) $(id -G)"; echo "ARGV0=$0"; '
    "ps -o pid=,pgid=,sid= -p $$ | awk '{print \"LEADER=\" ($1==$2 && $2==$3)}'; "
    'echo "STDIN-TEXT<<"; cat; echo ">>")'
)


def crontab_text(workdir: Path) -> str:
    return "\n".join([
        f"OUT={workdir}/cron",
        f'* * * * * root {PROBE} > "$OUT-root.out" 2>&1 %line1%line2\\%x',
        f'* * * * * root {PROBE} > "$OUT-nopct.out" 2>&1',
        f'* * * * * {TEST_USER} {PROBE} > "$OUT-user.out" 2>&1 %for the user',
        f'* * * * * nobody {PROBE} > "$OUT-nobody.out" 2>&1',
        f"HOME={workdir}",
        "LOGNAME=someone-else",
        "FOO = bar baz",
        f'* * * * * root {PROBE} > "$OUT-home.out" 2>&1',
        f"SHELL={workdir}/rec.sh",
        "* * * * * root echo hi; exit 3",
        "",
    ])


OUTPUTS = ("root", "nopct", "user", "nobody", "home", "rc")


# --- a tiny crontab reader for this file only (the importer is tested elsewhere) ---------------


def split_percent(command: str) -> tuple[str, str | None]:
    """Cron's % rule: first unescaped % ends the command, later ones are newlines; \\% is %."""
    out, stdin, i, target = [], None, 0, None
    while i < len(command):
        ch = command[i]
        if ch == "\\" and command[i + 1 : i + 2] == "%":
            (out if target is None else target).append("%")
            i += 2
            continue
        if ch == "%":
            if target is None:
                target = []
            else:
                target.append("\n")
        else:
            (out if target is None else target).append(ch)
        i += 1
    if target is not None:
        stdin = "".join(target)
        stdin += "" if stdin.endswith("\n") else "\n"
    return "".join(out), stdin


def handlers(text: str) -> list[CommandHandler]:
    env: list[tuple[str, str]] = []
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(None, 6)
        if len(fields) == 7 and fields[0] == "*":
            command, stdin = split_percent(fields[6])
            shell = dict(env).get("SHELL", "/bin/sh")
            jobs.append(CommandHandler(command=command, stdin=stdin, user=fields[5], shell=shell,
                                       env=tuple(env)))
        else:
            name, value = line.split("=", 1)
            env = [(k, v) for k, v in env if k != name.strip()] + [(name.strip(), value.strip())]
    return jobs


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path("/tmp") / f"bridge-cron-{secrets.token_hex(4)}"
    path.mkdir()
    path.chmod(0o1777)
    rec = path / "rec.sh"
    rec.write_text('#!/bin/sh\n/bin/sh "$@"\nrc=$?\necho "$rc" > "$OUT-rc.out"\nexit $rc\n')
    rec.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    """Use a running cron daemon, else start ours (and stop only ours)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to write /etc/cron.d and run jobs as other users")
    binary = shutil.which("cron") or shutil.which("cron", path="/usr/sbin:/sbin")
    if binary is None:
        pytest.skip("Debian's cron is not installed (apt-get install cron)")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", TEST_USER], check=True)
    running = bool(local_cron_pids())  # one of another mount namespace reads another cron.d
    ours = None if running else subprocess.Popen(
        [binary, "-f", "-L", "15"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield
    if ours is not None:
        ours.send_signal(signal.SIGTERM)
        try:
            ours.wait(timeout=10)
        except subprocess.TimeoutExpired:
            ours.kill()


def install_and_wait(text: str, workdir: Path) -> dict[str, str]:
    if 60 - time.time() % 60 < 3:  # too close to the tick: cron may not see the file in time
        time.sleep(4)  # the minute boundary IS the condition
    cron_file = Path("/etc/cron.d") / f"bridge-test-{secrets.token_hex(4)}"
    cron_file.write_text(text)
    cron_file.chmod(0o644)
    try:
        paths = {name: workdir / f"cron-{name}.out" for name in OUTPUTS}
        with contextlib.suppress(AssertionError):  # what did not run is reported below
            wait_for("cron to run every job", lambda: all(
                p.exists() and p.read_text().rstrip().endswith((">>", "3"))
                for p in paths.values()), 75, interval=0.5)
        time.sleep(1)  # cron mails a job's output after the job's shell exits: let it land
    finally:
        cron_file.unlink()
    missing = [n for n, p in paths.items() if not p.exists()]
    assert not missing, f"cron did not run {missing} within 75 s (is the daemon working?)"
    return {name: p.read_text() for name, p in paths.items()}


def runner_outputs(text: str, workdir: Path) -> tuple[dict[str, str], list[int | None]]:
    codes = []
    for handler in handlers(text):
        env = tuple((k, f"{workdir}/runner" if k == "OUT" else v) for k, v in handler.env)
        outcome = run_command(CommandHandler(command=handler.command, stdin=handler.stdin,
                                             user=handler.user, shell=handler.shell, env=env),
                              timeout=30)
        codes.append(outcome.exit_status)
    return {n: (workdir / f"runner-{n}.out").read_text() for n in OUTPUTS}, codes


def comparable(output: str) -> dict[str, str]:
    lines = output.split("STDIN-TEXT<<\n", 1)
    facts = dict(line.split("=", 1) for line in lines[0].splitlines() if "=" in line)
    facts = {k: v for k, v in facts.items() if k not in IGNORED_VARIABLES}
    if len(lines) > 1:
        facts["<stdin text>"] = lines[1]
    return facts


def test_runner_matches_debian_cron_for_the_same_lines(cron_daemon: None, workdir: Path) -> None:
    text = crontab_text(workdir)
    cron = install_and_wait(text, workdir)
    runner, codes = runner_outputs(text, workdir)
    for name in OUTPUTS:
        assert comparable(runner[name]) == comparable(cron[name]), f"job '{name}' differs"
    # the facts themselves, as verified on Debian 12 (cron 3.0pl1-162)
    root, nopct, home, user = (comparable(cron[n]) for n in ("root", "nopct", "home", "user"))
    assert {k: root[k] for k in ("HOME", "LOGNAME", "PATH", "SHELL", "CWD")} == {
        "HOME": "/root", "LOGNAME": "root", "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh",
        "CWD": "/root"}
    assert root["<stdin text>"] == "line1\nline2%x\n>>\n"
    assert nopct["STDIN"] == "pipe" and nopct["<stdin text>"] == ">>\n"
    assert "USER" not in user and user["LOGNAME"] == TEST_USER
    assert home["CWD"] == str(workdir) and home["LOGNAME"] == "root" and home["FOO"] == "bar baz"
    assert comparable(cron["nobody"])["CWD"] == "/var/spool/cron"
    assert root["LEADER"] == "1"
    assert cron["rc"].strip() == runner["rc"].strip() == "3" and codes[-1] == 3
