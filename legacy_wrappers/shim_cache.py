"""The shim's private cache: what it would otherwise recompute on every cron job.

Three answers are pure functions of inputs the shim sees anyway, and computing them costs more
than everything else a legacy run does (importing the settings validator, the spec and the
schedule evaluators, the authority-file writer): the shim keeps them in a per-user cache and
recomputes them only when an input changed.

* **Settings** (:func:`read_settings` / :func:`write_settings`): the three values the shim uses
  (``database_url``, ``spool_dir``, ``authority_dir``) of valid settings (invalid ones are
  never cached: the shim then reports them on every run), one file per key, keyed
  by everything :func:`bridge.core.config.load_settings` reads: every ``BRIDGE_*`` variable
  (but the per-job ``BRIDGE_JOB``, ``BRIDGE_SHELL``, ``BRIDGE_SHADOW``),
  ``HOME``, ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``, the working directory and the identity,
  size and times of each candidate ``bridge.toml`` (``BRIDGE_CONFIG``, ``./bridge.toml``,
  ``$XDG_CONFIG_HOME/cron-bridge/bridge.toml``).
* **Slots** (:class:`JobCache`): the job's slots from the latest at or before the moment they
  were computed up to a horizon (a day ahead, at most :data:`MAX_SLOTS`), keyed by the job's
  ``spec_hash`` (the registry's digest of the whole spec): within that range the latest slot
  at or before ``now`` is exactly the evaluator's ``prev_at_or_before(now)``.
* **Authority file refresh**: a fingerprint of the registry rows the job's authority file was
  last written (or found current) from, with that file's identity: while both hold, the file
  is current and is not rewritten. While the registry is unreachable, a file that still has
  that identity says what those rows say: the shim reads the rows from the cache (and the
  slots, when the file's schedule is the cached spec's) instead of parsing the file.

Where: ``$XDG_CACHE_HOME/cron-bridge/shim`` (else ``$HOME/.cache/cron-bridge/shim``), a
directory ``0700`` owned by the running user; a file is used only when it and the directory
are owned by this user and not accessible to group or others (never through a symlink), so
nobody else can plant an answer. Writes are atomic (``rename``), not fsynced: a lost or torn
file is a miss, never a wrong answer (each file starts with its format line and is parsed
strictly). Any problem means "no cache": the shim then computes as if it had none.

Standard library only (``os``): this module is on the hot path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hot path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from bridge.core.schedules import Evaluator

SETTINGS_FORMAT = "cron-bridge-shim-settings 1"
JOB_FORMAT = "cron-bridge-shim-job 2"
SEP = "\0"  # cannot occur in environment values, paths or URLs
MAX_SLOTS = 512
HORIZON_SECONDS = 86400
_KEYS_FROM_ENV = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")
# bridge.core.config.RUNTIME_VARIABLES that load_settings ignores (BRIDGE_CONFIG it reads):
# per-job values, left out of the key so every job of a crontab shares one settings entry
PER_JOB_VARIABLES = frozenset({"BRIDGE_JOB", "BRIDGE_SHELL", "BRIDGE_SHADOW"})


def cache_dir(env: Mapping[str, str]) -> str | None:
    """The cache directory for this user (None without ``HOME``: no cache)."""
    base = env.get("XDG_CACHE_HOME") or (
        os.path.join(env["HOME"], ".cache") if env.get("HOME") else "")
    return os.path.join(base, "cron-bridge", "shim") if base else None


def _trusted(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _read(directory: str, name: str) -> str | None:
    """The file's text when this user may trust it (see the module docstring), else None."""
    try:
        if not _trusted(os.stat(directory)):
            return None
        fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _trusted(os.fstat(fd)):
            return None
        data = os.read(fd, 1 << 20)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)


def _write(directory: str, name: str, text: str) -> None:
    """Atomically replace the file (creating the directory ``0700``); errors are ignored."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _trusted(os.stat(directory)):
            return
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(directory, name))
    except OSError:
        return


def _identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


# --- settings -------------------------------------------------------------------------------------


def settings_key(env: Mapping[str, str]) -> str | None:
    """Everything the settings depend on, as one string (None: not cacheable here)."""
    if not env.get("HOME"):
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(env["HOME"], ".config")
    named = env.get("BRIDGE_CONFIG")
    files = [os.path.expanduser(named) if named else "-", os.path.join(cwd, "bridge.toml"),
             os.path.join(config_home, "cron-bridge", "bridge.toml")]
    parts = [repr(sorted((k, v) for k, v in env.items()
                         if k.startswith("BRIDGE_") and k not in PER_JOB_VARIABLES)),
             repr([(k, env.get(k)) for k in _KEYS_FROM_ENV]), repr(cwd),
             repr([(f, _identity(f) if f != "-" else "-") for f in files])]
    return "\n".join(parts)


def _settings_file(key: str) -> str:
    """One file per set of inputs (a user's crontabs may name several registries)."""
    from legacy_wrappers.shim_os import sha256

    return "settings-" + sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def read_settings(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """``("ok", database_url, spool_dir, authority_dir)`` as last computed for these inputs;
    None on a miss."""
    directory, key = cache_dir(env), settings_key(env)
    if directory is None or key is None:
        return None
    text = _read(directory, _settings_file(key))
    if text is None:
        return None
    fields = text.split(SEP)
    if fields[:2] != [SETTINGS_FORMAT, key]:
        return None
    value = tuple(fields[2:])
    return value if value[:1] == ("ok",) and len(value) == 4 else None


def write_settings(env: Mapping[str, str], value: Sequence[str]) -> None:
    """Remember ``value`` (as :func:`read_settings` returns it) for these inputs."""
    directory, key = cache_dir(env), settings_key(env)
    if directory is None or key is None or any(SEP in v for v in value):
        return
    _write(directory, _settings_file(key), SEP.join([SETTINGS_FORMAT, key, *value]))


# --- per job: slots and the authority file's fingerprint ----------------------------------------


def _job_file(job_id: str) -> str | None:
    if not job_id or "/" in job_id or job_id.startswith(".") or len(job_id) > 200:
        return None
    return f"{job_id}.job"


class JobCache:
    """One job's cached slots and authority-file fingerprint (see the module docstring).

    ``anchor``..``horizon`` (epoch seconds) is the range the slots answer for; ``slots`` are
    the schedule's slots in it plus the latest one at or before ``anchor`` (first, if any).
    ``authority`` is the fingerprint of the last authority-file refresh; ``rows`` the registry's
    authority rows it was made from, ``file`` the file's identity right after it and
    ``file_spec`` the spec hash its schedule line came from: while the file keeps that
    identity, it says exactly what ``rows`` say (the registry-unreachable path reads them
    instead of parsing the file)."""

    __slots__ = ("anchor", "authority", "file", "file_spec", "horizon", "rows", "slots",
                 "spec_hash")

    def __init__(self, spec_hash: str, anchor: int, horizon: int, slots: list[int],
                 authority: str = "", rows: str = "", file: str = "-",
                 file_spec: str = "") -> None:
        self.spec_hash, self.anchor, self.horizon = spec_hash, anchor, horizon
        self.slots, self.authority = slots, authority
        self.rows, self.file, self.file_spec = rows, file, file_spec

    def latest_slot(self, spec_hash: str, now: float) -> tuple[bool, int | None]:
        """``(True, slot or None)``: the latest slot at or before ``now`` as the evaluator
        would answer; ``(False, None)``: this cache cannot answer (spec changed, out of range)."""
        if spec_hash != self.spec_hash or not self.anchor <= now <= self.horizon:
            return False, None
        from _bisect import bisect_right  # the C module: ``bisect`` itself costs an import

        i = bisect_right(self.slots, now)
        return True, (self.slots[i - 1] if i else None)


def job_cache_from(evaluator: Evaluator, spec_hash: str, now: float) -> JobCache:
    """The job's slots from the latest at or before ``now`` up to a day ahead (fewer when the
    :data:`MAX_SLOTS` come first: the range then ends at the last slot listed)."""
    from datetime import UTC, datetime

    anchor = int(now)
    horizon = anchor + HORIZON_SECONDS
    first = evaluator.prev_at_or_before(datetime.fromtimestamp(anchor, UTC))
    slots = [] if first is None else [int(first.timestamp())]
    t = datetime.fromtimestamp(anchor, UTC)
    while len(slots) < MAX_SLOTS:
        nxt = evaluator.next_after(t)
        if nxt is None or nxt.timestamp() > horizon:
            break
        slots.append(int(nxt.timestamp()))
        t = nxt
    else:
        horizon = slots[-1]
    return JobCache(spec_hash, anchor, horizon, slots)


def read_job(env: Mapping[str, str], job_id: str) -> JobCache | None:
    directory, name = cache_dir(env), _job_file(job_id)
    if directory is None or name is None:
        return None
    text = _read(directory, name)
    if text is None:
        return None
    fields = text.split(SEP)
    if len(fields) != 9 or fields[0] != JOB_FORMAT:
        return None
    try:
        slots = [int(s) for s in fields[4].split()] if fields[4] else []
        return JobCache(fields[1], int(fields[2]), int(fields[3]), slots, *fields[5:])
    except ValueError:
        return None


def write_job(env: Mapping[str, str], job_id: str, cache: JobCache) -> None:
    directory, name = cache_dir(env), _job_file(job_id)
    texts = (cache.spec_hash, cache.authority, cache.rows, cache.file, cache.file_spec)
    if directory is None or name is None or any(SEP in t for t in texts):
        return
    _write(directory, name, SEP.join([
        JOB_FORMAT, cache.spec_hash, str(cache.anchor), str(cache.horizon),
        " ".join(map(str, cache.slots)), *texts[1:]]))


def authority_fingerprint(spec_hash: str, events: Sequence[object], path: str) -> str:
    """What the job's authority file was written from, and the file's identity afterwards."""
    return repr((spec_hash, [repr(e) for e in events], path, _identity(path)))


def remember_authority(cache: JobCache, spec_hash: str,
                       events: Sequence[tuple[datetime | None, str]], path: str) -> None:
    """Record in ``cache`` that the authority file at ``path`` is current for these rows (a
    missing file -- its refresh failed -- is recorded as never current: the next run retries)."""
    identity = _identity(path)
    cache.authority = authority_fingerprint(spec_hash, events, path) if identity != "-" else ""
    cache.rows = " ".join(f"{'-' if when is None else when.isoformat()}|{owner}"
                          for when, owner in events)
    cache.file, cache.file_spec = identity, spec_hash


def rows_behind(cache: JobCache, path: str) -> list[tuple[datetime | None, str]] | None:
    """The authority rows the file at ``path`` was made from, while it is unchanged since
    (None: changed, never recorded, or unreadable here)."""
    if cache.file == "-" or cache.file != _identity(path):
        return None
    from bridge.store.bare import datetime  # the C class (see bridge.store.bare)

    try:
        out: list[tuple[datetime | None, str]] = []
        for item in cache.rows.split():
            when, owner = item.split("|")
            out.append((None if when == "-" else datetime.fromisoformat(when), owner))
    except ValueError:
        return None
    return out
