"""Files and directories the bridge creates are private whatever the umask.

* :func:`private_dir`: every directory component this process creates is ``0700`` (``mode``);
  existing directories are left as they are (``~``, ``/var/lib`` belong to someone else).
* :func:`private_file`: create (or tighten) a file to ``0600``; a file another user owns is left
  alone.
* :func:`write_private`: write a whole file, created ``0600``.
* :func:`untrusted_reason`: why a file or directory may not be trusted by a process running as
  ``uid`` (None when it may): owned by ``uid`` or root and not writable by group or others.

``os.makedirs(mode=...)`` applies the mode to the leaf only and subtracts the umask; these
helpers ``chmod`` explicitly. Only the standard library: the legacy shim imports this module.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> None:
    """Create ``path`` and its missing parents with exactly ``mode`` (umask ignored)."""
    target = Path(os.fspath(path)).expanduser()
    missing: list[Path] = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue  # a concurrent creator: its mode is its own business
        os.chmod(directory, mode)


def private_file(path: str | os.PathLike[str], mode: int = FILE_MODE) -> None:
    """Make sure ``path`` exists with no more than ``mode``: create it, or tighten a file this
    process owns that is more open (an older version, or a umask, left it 0644)."""
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & mode)
    finally:
        os.close(fd)


def write_private(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> None:
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def untrusted_reason(st: os.stat_result, uid: int | None = None) -> str | None:
    """Why a file or directory with this ``stat`` must not be trusted by ``uid`` (default: this
    process), or None: it must be owned by ``uid`` or root and not group/other-writable."""
    uid = os.geteuid() if uid is None else uid
    if st.st_uid not in (uid, 0):
        return f"owned by uid {st.st_uid} (neither uid {uid} nor root)"
    if stat.S_IMODE(st.st_mode) & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None
