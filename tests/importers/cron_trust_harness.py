"""Run the real Debian cron daemon over crontab files with chosen owners, modes and links.

Runs (as root) inside a private mount namespace (``unshare --mount --fork``): tmpfs over
/etc/cron.d, /run, /var/spool/cron/crontabs and /dev (with /dev/null & co bound back and a
private /dev/log socket, so cron's syslog messages are captured), a file bound over
/etc/crontab. Each case names a file and its owner/mode/link; every job line ``touch``es a
marker named after its case, so "cron ran it" is observable, and cron's own refusal messages
(``WRONG FILE OWNER``, ``INSECURE MODE``, ...) are read from the captured log.

    python cron_trust_harness.py SPEC.json RESULT.json      (inside the namespace)

SPEC: ``{"cases": [{"name", "where": "cron.d"|"crontab"|"spool", "file", "owner", "mode",
"link": null|"hard"|"symlink"}], "wait_minute": bool, "work": DIR}``. RESULT: ``{"log": [...],
"ran": [case names]}``. :func:`run_cron` drives it from outside.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

WHERE = {
    "cron.d": Path("/etc/cron.d"),
    "spool": Path("/var/spool/cron/crontabs"),
}


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _setup_namespace(work: Path) -> None:
    _mount("--make-rprivate", "/")
    realdev = work / "realdev"
    realdev.mkdir(exist_ok=True)
    _mount("--rbind", "/dev", str(realdev))
    _mount("-t", "tmpfs", "tmpfs", "/dev")
    for node in ("null", "zero", "urandom", "random", "full"):
        Path(f"/dev/{node}").touch()
        _mount("--bind", str(realdev / node), f"/dev/{node}")
    for d in ("/etc/cron.d", "/run"):
        _mount("-t", "tmpfs", "tmpfs", d)
    WHERE["spool"].mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "tmpfs", str(WHERE["spool"]))
    os.chmod(WHERE["spool"], 0o1730)


def _syslog(lines: list[str]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    os.chmod("/dev/log", 0o666)

    def loop() -> None:
        while True:
            data = sock.recv(65536)
            lines.append(data.decode(errors="replace"))

    threading.Thread(target=loop, daemon=True).start()
    return sock


def _job_line(case: dict[str, Any], out: Path) -> str:
    user = "" if case["where"] == "spool" else "root "
    return f"* * * * * {user}touch {out / case['name']}\n"


def _place(case: dict[str, Any], work: Path, out: Path) -> None:
    text = _job_line(case, out)
    owner = pwd.getpwnam(case["owner"])
    if case["where"] == "crontab":
        target = work / f"etc-crontab-{case['name']}"
    else:
        target = WHERE[case["where"]] / (case.get("file") or case["name"])
    real = target
    if case.get("link") == "symlink":
        real = work / f"symlink-target-{case['name']}"
    real.write_text(text)
    os.chown(real, owner.pw_uid, owner.pw_gid)
    os.chmod(real, case["mode"])
    if case.get("link") == "hard":
        os.link(real, real.with_name(f".hardlink-{real.name}"))  # same file system
    if case.get("link") == "symlink":
        os.symlink(real, target)
    if case["where"] == "crontab":
        _mount("--bind", str(target), "/etc/crontab")


def inside(spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work"])
    out = Path(spec["out"])
    _setup_namespace(work)
    lines: list[str] = []
    _syslog(lines)
    if not any(c["where"] == "crontab" for c in spec["cases"]):
        empty = work / "empty-crontab"
        empty.write_text("")
        _mount("--bind", str(empty), "/etc/crontab")
    for case in spec["cases"]:
        _place(case, work, out)
    cron = subprocess.Popen(["cron", "-f", "-L", "15"])
    try:
        deadline = time.monotonic() + (150 if spec["wait_minute"] else 20)
        while time.monotonic() < deadline:
            if spec["wait_minute"]:
                ran = set(os.listdir(out))
                if spec["control"] in ran:
                    time.sleep(3)  # every job of the same minute has been started by now
                    break
            elif any("Running @reboot jobs" in line for line in lines):
                break  # every file has been loaded (or refused) by now
            time.sleep(0.2)
    finally:
        cron.terminate()
        cron.wait(10)
    time.sleep(0.2)
    result = {"log": lines, "ran": sorted(os.listdir(out))}
    Path(result_path).write_text(json.dumps(result))


def run_cron(
    cases: list[dict[str, Any]], work: Path, *, wait_minute: bool, control: str | None = None
) -> dict[str, Any]:
    """Run the harness in a fresh mount namespace; ``control``: the case whose marker says a
    minute has been processed (needed with ``wait_minute``)."""
    work.mkdir(parents=True, exist_ok=True)
    # the markers' directory must be reachable by every user a job runs as (pytest's own
    # temporary directories are 0700)
    out = Path(tempfile.mkdtemp(prefix="cron-trust-out-", dir="/tmp"))
    os.chmod(out, 0o1777)
    spec = work / "spec.json"
    result = work / "result.json"
    doc = {"cases": cases, "wait_minute": wait_minute, "work": str(work), "out": str(out)}
    spec.write_text(json.dumps({**doc, "control": control}))
    cmd = ["unshare", "--mount", "--fork", sys.executable, __file__, str(spec), str(result)]
    try:
        subprocess.run(cmd, check=True, timeout=200)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.read_text())  # type: ignore[no-any-return]


def available() -> str | None:
    """Why the harness cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root (mount namespace, chown)"
    for tool in ("cron", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


if __name__ == "__main__":
    inside(sys.argv[1], sys.argv[2])
