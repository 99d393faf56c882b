"""Debian cron's file-trust rules: which crontab files the daemon refuses to read at all
(cronie's, for RHEL-family hosts of an inventory: :func:`check_cronie`).

Verified on the real daemon (cron 3.0pl1-162; ``tests/importers/test_cron_file_trust.py`` runs
it in a private mount namespace and compares its log with :func:`check`; the table is in
``docs/cron-file-trust.md``). Checks, in cron's order, with cron's own log words:

``/etc/crontab`` and ``/etc/cron.d/*`` (symlinks followed: the target is checked)
  * ``WRONG FILE OWNER`` unless owned by root (uid 0)
  * ``INSECURE MODE (group/other writable)`` when ``mode & 0o022``
  * ``NUMBER OF HARD LINKS > 1``
``/var/spool/cron/crontabs/<user>``
  * ``ORPHAN (no passwd entry)`` when ``<user>`` is no user of this host
  * ``CAN'T OPEN`` for a symlink (cron opens spool files with ``O_NOFOLLOW``)
  * ``WRONG FILE OWNER`` unless owned by root or by ``<user>``
  * ``INSECURE MODE (mode 0600 expected)`` unless ``mode & 0o7777 == 0o600``
  * ``NUMBER OF HARD LINKS > 1``

:func:`read_source` opens the file once, checks the open descriptor (no race between the check
and the read) and reads at most ``max_bytes + 1`` bytes.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from bridge.core.spec import SourceKind

LIVE_CRONTAB = "/etc/crontab"
LIVE_CRON_D = "/etc/cron.d"
LIVE_SPOOL = "/var/spool/cron/crontabs"
NOT_VERIFIED = (
    "ownership and mode not verified: a copy outside /etc/crontab, /etc/cron.d and "
    f"{LIVE_SPOOL} (pass --check-owner if it kept its owner and mode)"
)


@dataclass(frozen=True)
class FileTrust:
    """``checked``: cron's rules were applied; ``refused``: cron's log word for the refusal
    (None = cron reads the file); ``detail``: what is wrong, for people."""

    file: str
    checked: bool
    refused: str | None = None
    detail: str | None = None

    @property
    def reason(self) -> str | None:
        if self.refused is None:
            return None
        return f"cron refuses this file: {self.refused} ({self.detail})"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "checked": self.checked,
            "refused": self.refused,
            "detail": self.detail if self.refused else (None if self.checked else NOT_VERIFIED),
        }


def is_live_path(path: str) -> bool:
    """Is ``path`` (absolute, as given) one of the files the local cron daemon reads?"""
    p = PurePosixPath(os.path.normpath(path))
    return str(p) == LIVE_CRONTAB or str(p.parent) in (LIVE_CRON_D, LIVE_SPOOL)


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def cron_refusal(st: os.stat_result, kind: SourceKind, user: str | None) -> tuple[str, str] | None:
    """Cron's refusal ``(log word, detail)`` for an open file's ``fstat``, or None."""
    mode = stat.S_IMODE(st.st_mode)
    if kind is SourceKind.USER_CRONTAB:
        assert user is not None
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            return "ORPHAN", f"no user '{user}' on this host"
        if st.st_uid not in (0, uid):
            return (
                "WRONG FILE OWNER",
                f"owned by {_owner_name(st.st_uid)}; a user crontab must be owned by "
                + (f"{user} or root" if user != "root" else "root"),
            )
        if mode != 0o600:
            return "INSECURE MODE", f"mode {mode:04o}; a user crontab must be mode 0600"
    else:
        if st.st_uid != 0:
            return (
                "WRONG FILE OWNER",
                f"owned by {_owner_name(st.st_uid)}; system crontabs must be owned by root",
            )
        if mode & 0o022:
            return "INSECURE MODE", f"mode {mode:04o} is group/other writable"
    if st.st_nlink != 1:
        return "NUMBER OF HARD LINKS > 1", f"{st.st_nlink} hard links"
    return None


def check_cronie(
    st: os.stat_result, kind: SourceKind, user: str | None
) -> tuple[str, str] | None:
    """cronie's refusal for a file's ``fstat`` (its ``check_open``, read in cronie's
    ``src/database.c``; not verified on a daemon here): the file must be regular, its mode
    ``& 07533`` exactly ``0400`` (readable by its owner; not executable; not group- or
    other-writable or -executable; no set-id or sticky bit), owned by root, or for a user
    crontab by that user, and a user crontab must have one hard link."""
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        return "NOT REGULAR", "not a regular file"
    if mode & 0o7533 != 0o400:
        return "BAD FILE MODE", f"mode {mode:04o}; cronie wants it readable by its owner, not " \
            "executable, not group/other-writable"
    uid = None
    if kind is SourceKind.USER_CRONTAB:
        assert user is not None
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            return "ORPHAN", f"no user '{user}' on this host"
    if st.st_uid != 0 and st.st_uid != uid:
        owners = f"{user} or root" if uid is not None and user != "root" else "root"
        return "WRONG FILE OWNER", f"owned by {_owner_name(st.st_uid)}; cronie wants {owners}"
    if uid is not None and st.st_nlink != 1:
        return "BAD LINK COUNT", f"{st.st_nlink} hard links"
    return None


def read_source(
    path: str, *, kind: SourceKind, user: str | None, check_owner: bool, max_bytes: int
) -> tuple[bytes, FileTrust]:
    """The file's first ``max_bytes + 1`` bytes and its trust verdict.

    With ``check_owner``, a user crontab is opened with ``O_NOFOLLOW`` as cron does (a symlink
    is refused: ``CAN'T OPEN``) and the open descriptor is checked."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) * (
        check_owner and kind is SourceKind.USER_CRONTAB
    )
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        with open(path, "rb") as f:  # list its jobs (inactive) all the same
            data = f.read(max_bytes + 1)
        return data, FileTrust(path, True, "CAN'T OPEN", "a symlink; cron does not follow it")
    with os.fdopen(fd, "rb") as f:
        verdict = cron_refusal(os.fstat(f.fileno()), kind, user) if check_owner else None
        data = f.read(max_bytes + 1)
    if verdict is None:
        return data, FileTrust(path, check_owner)
    return data, FileTrust(path, True, verdict[0], verdict[1])
