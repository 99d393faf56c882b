"""The cron daemon of *this* mount namespace.

Tests that drive the machine's own cron (writing /etc/cron.d) must not mistake a daemon running
in another test's private mount namespace (the fleet and firelag harnesses start one per
simulated host) for the system daemon: that daemon reads another /etc/cron.d and would never run
our file. ``pgrep -x cron`` sees every namespace, so filter by ``/proc/<pid>/ns/mnt``.
"""

from __future__ import annotations

import os
from pathlib import Path


def _mount_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def local_cron_pids() -> list[int]:
    """Live ``cron`` processes sharing this process's mount namespace."""
    ours = _mount_ns("self")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "cron":
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:
            continue
        if _mount_ns(entry.name) == ours:
            found.append(int(entry.name))
    return found
