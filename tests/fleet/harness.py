"""Several "hosts" on one machine, for real: each a private mount + UTS namespace.

A :class:`Host` is ``unshare --mount --uts --fork`` running, as root inside its namespace:
its own host name (``hostname web-01``: ``socket.gethostname()``, ``$(hostname)``), a tmpfs over
``/etc/cron.d``, ``/run`` and ``/var/spool/cron/crontabs``, an empty ``/etc/crontab``, its own
real Debian ``cron -f`` reading only the files installed for it, and its own ``bridge worker
--host NAME`` (its host's queue plus the shared one). Everything else (``/tmp``, the network:
Redis, PostgreSQL) is shared, as a fleet shares a broker and a registry. The whole namespace is
one process session: :meth:`Host.stop` ends it (cron, the worker, their children).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import BRIDGE, World
from tests.support import wait_for

HOST_SCRIPT = r"""
set -e
mount --make-rprivate /
hostname "$HOST_NAME"
mount -t tmpfs tmpfs /etc/cron.d
mount -t tmpfs tmpfs /run
mkdir -p /var/spool/cron/crontabs
mount -t tmpfs tmpfs /var/spool/cron/crontabs
mount --bind "$EMPTY_CRONTAB" /etc/crontab
for f in "$CRON_FILES"/*; do install -m 0644 "$f" "/etc/cron.d/$(basename "$f")"; done
cron -f -L 15 &
exec "$FLEET_BRIDGE_BIN" worker --host "$HOST_NAME" --pool threads --concurrency 8 -- \
    -n "fleet-$HOST_NAME@%h" --without-heartbeat -l INFO
"""


def namespaces_available() -> str | None:
    """Why the namespaced hosts cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, cron)"
    for tool in ("unshare", "hostname"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if shutil.which("cron", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "Debian's cron is not installed (apt-get install cron)"
    done = subprocess.run(["unshare", "--mount", "--uts", "--fork", "true"], capture_output=True)
    if done.returncode != 0:
        return f"unshare --mount --uts refused: {done.stderr.decode(errors='replace').strip()}"
    return None


@dataclass
class Host:
    name: str
    world: World
    cron_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.world.tmp / f"host-{self.name}.log"

    def start(self) -> None:
        empty = self.world.tmp / "empty-crontab"
        empty.touch()
        env = {**self.world.env, "HOST_NAME": self.name, "EMPTY_CRONTAB": str(empty),
               "CRON_FILES": str(self.cron_dir), "FLEET_BRIDGE_BIN": BRIDGE}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--uts", "--fork", "bash", "-c", HOST_SCRIPT], env=env,
                cwd=self.world.tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.world.logs.append(self.log)

    def ready(self) -> bool:
        return "ready." in self.log.read_text(errors="replace") if self.log.exists() else False

    def stop(self) -> None:
        """End the whole session: cron, the worker and their children. Also when the first
        process already exited (a worker that failed to start leaves cron running)."""
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # cron and the jobs it started share the session
            if not self._signal(0):
                return
            time.sleep(0.1)
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> bool:
        """Signal the host's session; False when nothing is left in it."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True


def start_hosts(hosts: list[Host], timeout: float = 90) -> None:
    for h in hosts:
        h.start()
    wait_for("every host's worker to be ready", lambda: all(h.ready() for h in hosts), timeout,
             hosts[0].world.tail_logs)


def effects(path: Path) -> Counter[tuple[str, str, str]]:
    """``(host, job, minute)`` -> how many times the side effect happened."""
    out: Counter[tuple[str, str, str]] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                out[(parts[0], parts[1], parts[2])] += 1
    return out
