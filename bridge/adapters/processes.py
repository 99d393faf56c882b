"""Is a process still there? The local process table, read for reconciliation's claims."""

from __future__ import annotations

import os
import socket


def holder_gone(holder: str, host: str | None = None) -> bool:
    """``lineage@host:pid`` on this host whose process no longer exists (else False: unknown)."""
    instance = holder.split("@", 1)[1] if "@" in holder else ""
    where, _, pid = instance.rpartition(":")
    if where != (host or socket.gethostname()) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return zombie(int(pid))


def zombie(pid: int) -> bool:
    """A dead process nobody reaped yet (its parent died too) still answers ``kill 0``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
