"""Authority files: who owns each job's slots, on disk, for processes that cannot (or may not
right now) ask the registry: the legacy shim's offline cache and a Quartz listener plugin.

One file per job, ``<dir>/<job_id>.authority``, UTF-8, ``\\n``-terminated lines::

    cron-bridge-authority 1
    job etc-cron.d-certbot-1
    initial legacy
    1767225600 celery
    1769904000 legacy
    schedule {"dialect": "vixie", "expression": "0 */12 * * *", "timezone": "UTC", ...}

* Line 1 is the format header; a reader refuses any other header or version (an incompatible
  change bumps the version).
* ``job <id>``: the job id (the file name repeats it).
* ``initial <owner>``: the owner of every slot before the first timed line.
* ``<epoch_seconds> <owner>``: from this slot on (UTC, whole seconds, inclusive), ``<owner>``
  owns; these lines are sorted by time, strictly increasing, each naming a different owner than
  the one before. The owner of slot ``S`` is the owner of the last such line with
  ``epoch <= S``, else ``initial``. Owners are ``legacy`` or ``celery``.
* ``schedule <json>`` (optional): the job's schedule spec (``JobSpec.to_json()["schedule"]``),
  so the legacy shim can compute a slot while the registry is unreachable. Other readers
  ignore it.
* Readers ignore blank lines, ``#`` comments and lines starting with an unknown keyword (a
  compatible addition keeps version 1). A Java reader needs no JSON library: split each line
  at the first blank, switch on the first token.

The timed lines are the registry's authority history *resolved*: for an append-only history
where the last appended event effective at or before ``S`` wins
(:func:`bridge.core.authority.owner_at`),
:func:`resolve` computes the owner at every effective slot, so the file answers exactly what
the registry answers, for every slot, with a single sorted lookup.

Writes are atomic (a temporary file in the same directory, fsync, ``rename``): a reader sees
the old file or the new one, never a mix. Mode 0644, and the directories created for them
0755, whatever the umask: the owner is not a secret (the file holds no environment), and
cron users other than the exporting one must be able to read it -- but nobody else may write
it. :func:`read_trusted` (the legacy shim's reader) refuses a file or directory that is group-
or other-writable or owned by anyone but the reading user or root: such a file could have
been planted to make a legacy line stand down (or run a slot Celery owns) during an outage.

This module imports nothing heavy (no SQLAlchemy) at import time: the shim reads it on every
run. :func:`export` imports the store lazily.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.store.db import Registry

HEADER = "cron-bridge-authority"
VERSION = 1
SUFFIX = ".authority"
OWNERS = frozenset({"legacy", "celery"})
DEFAULT_OWNER = "legacy"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")  # bridge.core.spec.JOB_ID_RE
_TIMED = re.compile(r"^(-?\d+) (\S+)$")


class AuthorityFileError(ValueError):
    """A file this code must not trust: unknown version, malformed line, bad owner."""


@dataclass(frozen=True)
class Authority:
    """A job's resolved authority timeline (see the module docstring)."""

    job_id: str
    initial: str = DEFAULT_OWNER
    flips: tuple[tuple[datetime, str], ...] = ()  # (effective slot, owner), increasing
    schedule: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _JOB_ID.match(self.job_id):
            raise AuthorityFileError(f"bad job id {self.job_id!r}")
        for owner in (self.initial, *(o for _, o in self.flips)):
            if owner not in OWNERS:
                raise AuthorityFileError(f"unknown owner {owner!r} (legacy or celery)")
        times = [t for t, _ in self.flips]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise AuthorityFileError("authority lines are not strictly increasing in time")

    def owner_at(self, slot: datetime) -> str:
        """The owner of ``slot`` (aware datetime): the same answer as the registry's."""
        owner = self.initial
        for when, who in self.flips:
            if when > slot:
                break
            owner = who
        return owner


def resolve(
    job_id: str,
    events: Iterable[tuple[datetime | None, str]],
    schedule: Mapping[str, Any] | None = None,
) -> Authority:
    """Resolve an append-ordered history of ``(effective_slot or None, owner)`` into a sorted
    timeline that answers exactly like :func:`bridge.core.authority.owner_at` for every slot."""
    history = [(when, str(owner)) for when, owner in events]

    def owner_at(slot: datetime | None) -> str:
        owner = DEFAULT_OWNER
        for when, who in history:
            if when is None or (slot is not None and when <= slot):
                owner = who
        return owner

    initial = owner_at(None)
    flips: list[tuple[datetime, str]] = []
    current = initial
    for when in sorted({w for w, _ in history if w is not None}):
        owner = owner_at(when)
        if owner != current:
            flips.append((when.astimezone(UTC), owner))
            current = owner
    return Authority(job_id, initial, tuple(flips), schedule)


# --- text format (pure) ---------------------------------------------------------------------------


def render(authority: Authority) -> str:
    """The file's text (deterministic: same timeline, same bytes)."""
    lines = [f"{HEADER} {VERSION}", f"job {authority.job_id}", f"initial {authority.initial}"]
    lines += [f"{int(when.timestamp())} {owner}" for when, owner in authority.flips]
    if authority.schedule is not None:
        lines.append("schedule " + json.dumps(authority.schedule, sort_keys=True))
    return "\n".join(lines) + "\n"


def parse(text: str, *, where: str = "<authority>") -> Authority:
    """Read a file's text; :class:`AuthorityFileError` naming ``where:line`` when refused."""
    lines = text.split("\n")
    if lines[0].strip() != f"{HEADER} {VERSION}":
        raise AuthorityFileError(
            f"{where}:1: not a version {VERSION} authority file (header {lines[0][:60]!r})"
        )
    values: dict[str, Any] = {"job_id": None, "initial": DEFAULT_OWNER, "schedule": None}
    flips: list[tuple[datetime, str]] = []
    for number, raw in enumerate(lines[1:], 2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            _parse_line(line, values, flips)
        except (ValueError, OverflowError) as e:
            raise AuthorityFileError(f"{where}:{number}: {e}") from e
    if values["job_id"] is None:
        raise AuthorityFileError(f"{where}: no 'job' line")
    try:
        return Authority(values["job_id"], values["initial"], tuple(flips), values["schedule"])
    except AuthorityFileError as e:
        raise AuthorityFileError(f"{where}: {e}") from e


def _parse_line(line: str, values: dict[str, Any], flips: list[tuple[datetime, str]]) -> None:
    timed = _TIMED.match(line)
    if timed is not None:
        flips.append((datetime.fromtimestamp(int(timed.group(1)), UTC), timed.group(2)))
        return
    keyword, _, rest = line.partition(" ")
    if keyword == "job":
        values["job_id"] = rest.strip()
    elif keyword == "initial":
        values["initial"] = rest.strip()
    elif keyword == "schedule":
        schedule = json.loads(rest)
        if not isinstance(schedule, dict):
            raise ValueError("schedule is not a JSON object")
        values["schedule"] = schedule
    elif line[0].isdigit() or line[0] == "-":
        raise ValueError(f"malformed authority line {line[:80]!r}")
    # any other keyword: a compatible addition from a newer writer, ignored


# --- files ----------------------------------------------------------------------------------------


def path_for(directory: str | os.PathLike[str], job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise AuthorityFileError(f"bad job id {job_id!r}")
    return os.path.join(os.fspath(directory), job_id + SUFFIX)


def read(directory: str | os.PathLike[str], job_id: str) -> Authority | None:
    """The job's file, or None when there is none. Raises :class:`AuthorityFileError` for a
    file that is unreadable as version 1, or that names another job."""
    path = path_for(directory, job_id)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise AuthorityFileError(f"{path}: cannot read: {e}") from e
    authority = parse(text, where=path)
    if authority.job_id != job_id:
        raise AuthorityFileError(f"{path}: names job {authority.job_id!r}, not {job_id!r}")
    return authority


def read_trusted(directory: str | os.PathLike[str], job_id: str) -> Authority | None:
    """:func:`read`, but only a file this user may trust (see the module docstring): raises
    :class:`AuthorityFileError` naming the reason for a directory or file that is group/other-
    writable or owned by another user than this one or root. None when there is no file."""
    from bridge.adapters.fsperm import untrusted_reason

    path = path_for(directory, job_id)
    try:
        dir_reason = untrusted_reason(os.stat(os.fspath(directory)))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AuthorityFileError(f"{directory}: cannot read: {e}") from e
    if dir_reason is not None:
        raise AuthorityFileError(f"{directory}: untrusted authority directory: {dir_reason}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AuthorityFileError(f"{path}: cannot read (a symlink?): {e}") from e
    with os.fdopen(fd, "rb") as f:
        reason = untrusted_reason(os.fstat(f.fileno()))
        if reason is not None:
            raise AuthorityFileError(f"{path}: untrusted authority file: {reason}")
        data = f.read(1 << 20)
    try:
        authority = parse(data.decode("utf-8"), where=path)
    except UnicodeDecodeError as e:
        raise AuthorityFileError(f"{path}: cannot read: {e}") from e
    if authority.job_id != job_id:
        raise AuthorityFileError(f"{path}: names job {authority.job_id!r}, not {job_id!r}")
    return authority


def _make_dirs(directory: str) -> None:
    """Create ``directory`` and missing parents 0755 (readable, writable by us only)."""
    from bridge.adapters.fsperm import private_dir

    private_dir(directory or ".", 0o755)


def write(directory: str | os.PathLike[str], authority: Authority) -> bool:
    """Write the job's file atomically if its content changed; True when written.

    Creates ``directory`` if needed. Raises OSError when it cannot write."""
    path = path_for(directory, authority.job_id)
    data = render(authority).encode("utf-8")
    try:
        with open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    _make_dirs(os.path.dirname(path))
    _atomic_write(path, data)
    return True


def _atomic_write(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)  # whatever the umask
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- export from the registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExportReport:
    directory: str
    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"dir": self.directory, "written": list(self.written),
                "unchanged": list(self.unchanged), "jobs": len(self.written) + len(self.unchanged)}


def export(
    registry: Registry, directory: str | os.PathLike[str], *, by_host: bool = False
) -> ExportReport:
    """Write one file per job of the registry (files whose content is unchanged are left
    alone). Files of jobs no longer in the registry are left in place. ``by_host``: a fleet's
    files, ``<directory>/<host>/<job_id>.authority`` per host (a job bound to no host stays in
    ``directory``), each folder to ship to that host's authority directory."""
    from bridge.store.repos import AuthorityRepo, JobRepo

    with registry.session() as s:
        jobs = JobRepo(s).list()
        histories = AuthorityRepo(s).histories()
    written: list[str] = []
    unchanged: list[str] = []
    for job in jobs:
        events = [(e.effective_slot, e.owner.value) for e in histories.get(job.id, [])]
        authority = resolve(job.id, events, job.spec.to_json()["schedule"])
        target = os.path.join(directory, job.host) if by_host and job.host else directory
        (written if write(target, authority) else unchanged).append(job.id)
    return ExportReport(os.fspath(directory), tuple(written), tuple(unchanged))
