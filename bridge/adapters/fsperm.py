"""Files and directories the bridge creates are private whatever the umask.

* :func:`private_dir`: every directory component this process creates is ``0700`` (``mode``);
  existing directories are left as they are (``~``, ``/var/lib`` belong to someone else).
* :func:`private_file_by_path`: create (or tighten) a file to ``0600`` without opening an
  existing one (safe for SQLite databases); a file another user owns is left alone.
* :func:`write_private`: write a whole file, created ``0600``.
* :func:`untrusted_reason`: why a file or directory may not be trusted by a process running as
  ``uid`` (None when it may): owned by ``uid`` or root and not writable by group or others.

``os.makedirs(mode=...)`` applies the mode to the leaf only and subtracts the umask; these
helpers ``chmod`` explicitly. Only the standard library: the legacy shim imports this module.
"""

from __future__ import annotations

import os
import stat

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> None:
    """Create ``path`` and its missing parents with exactly ``mode`` (umask ignored).

    ``os.path`` only (no ``pathlib``: the legacy shim calls this to write its spool during a
    registry outage, and ``pathlib``'s import costs that cron job milliseconds)."""
    target = os.path.expanduser(os.fspath(path))
    missing: list[str] = []
    probe = target
    while not os.path.exists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe.rstrip(os.sep)) or os.curdir
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue  # a concurrent creator: its mode is its own business
        os.chmod(directory, mode)


def private_file_by_path(path: str | os.PathLike[str], mode: int = FILE_MODE) -> None:
    """Create ``path`` ``0600`` or tighten it, without ever opening an existing file.

    POSIX record locks belong to the process and ``close()`` of ANY descriptor of a file drops
    all of them, so opening and closing a database file that a SQLite connection of this process
    holds would silently release that connection's locks (and corrupt the database under
    concurrent writers: "database disk image is malformed"). A missing file is created with
    ``O_EXCL`` (nobody can hold it yet); an existing one is only ``chmod``-ed by path."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileExistsError:
        st = os.stat(name)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & ~mode:
            os.chmod(name, stat.S_IMODE(st.st_mode) & mode)
        return
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
