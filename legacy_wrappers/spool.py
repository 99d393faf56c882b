"""The legacy side's local spool: records written while the registry is unreachable, uploaded
later, exactly once (design.md §2 invariant 7: nothing lost on a bad day).

Format (version 1)
  A spool directory holds files named ``*.jsonl`` (other names, dotfiles and the ``rejected/``
  subdirectory are ignored). Each line is one JSON object (ASCII, ``\\n``-terminated)::

    {"v": 1, "source": "cron", "record_key": "legacy:…", "job_id": "etc-cron.d-backup-1",
     "slot": "2026-03-08T07:00:00Z", "path": "legacy", "role": "authoritative",
     "status": "succeeded", "fired_at": "2026-03-08T07:00:00.412Z", "started_at": "…",
     "finished_at": "…", "exit_status": 0, "attempts": 1, "output_digest": "<sha256 hex>",
     "output_sample": "…", "host": "web-1", "error": null}

  Required: ``v`` (1), ``record_key`` (at most 128 characters, unique per firing: the upload is
  idempotent by it), ``job_id``, ``slot`` (UTC, whole seconds), ``path``, ``role``,
  ``status`` (the vocabulary of :mod:`bridge.core.runs`). Times are ISO-8601 with ``Z`` or
  ``+00:00`` (fractions allowed except in ``slot``). Optional: every other ``runs`` column
  (``fired_at started_at finished_at exit_status attempts output_digest output_sample host
  error task_state``). Unknown keys are ignored, so a writer may add its own.
  A Quartz listener plugin writes the same objects with ``"source": "quartz"``:
  ``slot`` = the trigger's scheduledFireTime, ``fired_at`` = fireTime, ``finished_at`` = when
  the job finished, ``status`` = outcome (``succeeded`` | ``failed``), ``error`` = the
  exception (class: message), ``host``, plus ``job_key`` and ``trigger_key``
  (``group.name``). Until the Quartz ingest maps keys to job ids, a record without ``job_id``
  is rejected (quarantined, not lost).

  Claim completion (optional): a record the shim spooled *after* it had claimed the slot (the
  registry went away while the command ran) carries ``claim_holder``, ``claim_attempts`` and
  ``claim_state`` (the final state: ``succeeded`` | ``failed`` | ``interrupted``). The upload
  completes that claim in the same transaction as the record -- only while the claim is still
  ``running`` under that holder and attempt (a claim taken over meanwhile is left to its new
  holder) -- so an outage never leaves a claim ``running`` with an expired lease for good.

Writers (:func:`append`)
  Append with ``O_APPEND``, one ``write`` per complete line, then ``fsync``, while holding an
  exclusive POSIX record lock (``lockf``; Java's ``FileChannel.lock()`` takes the same lock) on
  the file; after locking, the writer checks that the path still names the inode it opened
  (a flusher may have removed it) and reopens if not. If the file does not end with a
  newline (a writer crashed mid-line) the new line is preceded by one, so the torn line
  becomes a line of its own (rejected at upload) and never swallows a good record. The
  legacy shim appends to ``cron-<UTC date>-<host>-u<uid>.jsonl``; when that file stays locked
  for over 2 s it writes a private ``…-p<pid>-<random>.jsonl`` instead.

Upload: :mod:`legacy_wrappers.spool_flush`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from bridge.store.bare import UTC, datetime  # the C classes (see bridge.store.bare)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the shim writes the spool during an outage
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SPOOL_VERSION = 1
SUFFIX = ".jsonl"
LOCK_WAIT_SECONDS = 2.0
REQUIRED = ("record_key", "job_id", "slot", "path", "role", "status")
TIMES = ("slot", "fired_at", "started_at", "finished_at")
COLUMNS = (
    *REQUIRED,
    "fired_at",
    "started_at",
    "finished_at",
    "exit_status",
    "attempts",
    "output_digest",
    "output_sample",
    "host",
    "error",
    "task_state",
)


CLAIM_STATES = frozenset({"succeeded", "failed", "interrupted"})


class SpoolError(ValueError):
    """A spool line that is not a valid version 1 record (the reason says why)."""


# --- the line format (pure) -----------------------------------------------------------------------


def iso(t: datetime) -> str:
    """UTC ISO-8601 with ``Z``; fractions only when present."""
    text = t.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def encode(record: Mapping[str, Any], *, source: str = "cron") -> bytes:
    """One spool line (with its newline) for a ``runs``-shaped record."""
    body: dict[str, Any] = {"v": SPOOL_VERSION, "source": source}
    for key, value in record.items():
        body[key] = iso(value) if isinstance(value, datetime) else value
    return (_json_line(body) + "\n").encode("ascii")


def _json_line(body: Mapping[str, Any]) -> str:
    """``json.dumps(body, separators=(",", ":"), ensure_ascii=True)``, the same text: the shim
    spools during an outage, and ``json``'s import (``re``, ``enum``) costs that cron job
    several milliseconds. Strings go through ``json``'s own C escaper; anything but a string,
    an int, a bool or None (never in a record the shim writes) is left to ``json`` itself."""
    from _json import encode_basestring_ascii as quote

    parts = []
    for key, value in body.items():
        if value is None:
            text = "null"
        elif value is True or value is False:
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = quote(value)
        elif type(value) is int:
            text = int.__repr__(value)
        else:
            import json

            return json.dumps(body, separators=(",", ":"), ensure_ascii=True)
        if not isinstance(key, str):
            import json

            return json.dumps(body, separators=(",", ":"), ensure_ascii=True)
        parts.append(f"{quote(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpoolError(f"{name} must be an ISO-8601 string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise SpoolError(f"{name}: {e}") from e
    if t.tzinfo is None:
        raise SpoolError(f"{name} has no UTC offset")
    return t.astimezone(UTC)


def decode(line: bytes) -> dict[str, Any]:
    """The ``runs`` column values of one spool line; :class:`SpoolError` when invalid."""
    import json

    try:
        body = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise SpoolError(f"not JSON: {e}") from e
    if not isinstance(body, dict):
        raise SpoolError("not a JSON object")
    if body.get("v") != SPOOL_VERSION:
        raise SpoolError(f"unknown spool version {body.get('v')!r}")
    missing = [k for k in REQUIRED if body.get(k) in (None, "")]
    if missing:
        raise SpoolError(f"missing {', '.join(missing)}")
    out = {k: body[k] for k in COLUMNS if k in body}
    for name in TIMES:
        if name in out:
            out[name] = _time(out[name], name)
    return out


def claim_of(line: bytes) -> dict[str, Any] | None:
    """The claim a valid record asks to complete (see the module docstring), or None."""
    import json

    body = json.loads(line)
    holder, attempts, state = (body.get(k) for k in ("claim_holder", "claim_attempts",
                                                     "claim_state"))
    if holder is None and attempts is None and state is None:
        return None
    if not isinstance(holder, str) or not holder or len(holder) > 255:
        raise SpoolError("claim_holder must be a non-empty string (at most 255 characters)")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise SpoolError("claim_attempts must be a positive integer")
    if state not in CLAIM_STATES:
        raise SpoolError(f"claim_state must be one of {sorted(CLAIM_STATES)}")
    return {"holder": holder, "attempts": attempts, "state": state}


# --- writing --------------------------------------------------------------------------------------


def shim_file_name(now: datetime, host: str, uid: int) -> str:
    safe_host = "".join(c if c.isalnum() or c in "-_" else "_" for c in host)[:64] or "host"
    return f"cron-{now.astimezone(UTC):%Y%m%d}-{safe_host}-u{uid}{SUFFIX}"


def lock(fd: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN) or time.monotonic() >= deadline:
                return False
        time.sleep(0.02)


def same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _write_locked(fd: int, line: bytes) -> None:
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        line = b"\n" + line  # a torn line before us: end it, keep ours whole
    view = memoryview(line)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _append_to(path: str, line: bytes, wait: float, exclusive: bool = False) -> bool:
    """Append under the lock; False when the lock was not obtained in time."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    for _ in range(20):
        fd = os.open(path, flags, 0o600)
        try:
            if not lock(fd, wait):
                return False
            if not same_file(fd, path):
                continue  # removed by a flusher between our open and our lock: reopen
            _write_locked(fd, line)
            return True
        finally:
            os.close(fd)
    return False


def append(spool_dir: str, record: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """Append one record durably; returns the file written. Raises OSError when the spool
    cannot be written at all (the caller decides where the record goes then)."""
    from bridge.adapters.fsperm import private_dir

    line = encode(record)
    private_dir(spool_dir)  # 0700 for every directory created, whatever the umask
    now = now or datetime.now(UTC)
    host = os.uname().nodename
    path = os.path.join(spool_dir, shim_file_name(now, host, os.getuid()))
    if not _append_to(path, line, LOCK_WAIT_SECONDS):
        private = path[: -len(SUFFIX)] + f"-p{os.getpid()}-{os.urandom(3).hex()}{SUFFIX}"
        if not _append_to(private, line, LOCK_WAIT_SECONDS, exclusive=True):
            raise OSError(errno.EAGAIN, "spool file stayed locked", private)
        path = private
    _fsync_dir(spool_dir)
    return path


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def spool_files(spool_dir: str) -> list[str]:
    """The spool files waiting in ``spool_dir`` (sorted; none when it does not exist)."""
    try:
        names = os.listdir(spool_dir)
    except OSError:
        return []
    return sorted(
        os.path.join(spool_dir, n) for n in names if n.endswith(SUFFIX) and not n.startswith(".")
    )
