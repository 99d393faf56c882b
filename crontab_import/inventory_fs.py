"""Reading an inventory tree from disk: the thin I/O edge of :mod:`crontab_import.inventory`.

Each host folder is read as if it were that host's root: a symlink inside it is followed
*within the folder* (``etc/localtime -> /usr/share/zoneinfo/...`` is only read as a name; an
``etc/cron.d/x -> /opt/app/cron`` link reads ``DIR/host/opt/app/cron``), never into the
importing machine's own files (``..`` stops at the folder, as at ``/``); a link to a file the
folder does not hold is noted and not read.

Limits (``--max-bytes``, ``--max-lines``) are totals over the whole inventory, checked while
reading, before anything is parsed: the file that crosses one is named and nothing is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bridge.core.errors import InputError
from bridge.core.hosts import host_problem
from bridge.core.spec import SourceKind
from crontab_import import inventory as inv
from crontab_import.filetrust import FileTrust, check_cronie, cron_refusal
from crontab_import.model import ImportError_

MAX_LINK_HOPS = 16


@dataclass
class _Budget:
    max_bytes: int
    max_lines: int
    used_bytes: int = 0
    used_lines: int = 0

    def take(self, data: bytes, where: str) -> None:
        self.used_bytes += len(data)
        self.used_lines += data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        if self.used_bytes > self.max_bytes:
            raise InputError(
                f"the inventory is larger than --max-bytes {self.max_bytes} at this file: "
                "refused before parsing",
                file=where,
                hint="raise --max-bytes if this is intended",
            )
        if self.used_lines > self.max_lines:
            raise InputError(
                f"the inventory has more than --max-lines {self.max_lines} lines at this file: "
                "refused before parsing",
                file=where,
                hint="raise --max-lines if this is intended",
            )


@dataclass
class _Host:
    """One host folder, read as that host's root."""

    name: str
    root: Path
    errors: list[ImportError_] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(ImportError_(path, None, message, host=self.name))

    def resolve(self, path: str) -> Path | None:
        """The file in the folder that ``path`` on the host is (symlinks followed inside the
        folder, ``..`` stopping at it); None when there is nothing there."""
        parts = list(PurePosixPath(path).parts[1:])
        current = self.root
        hops = 0
        while parts:
            candidate = current / parts.pop(0)
            if candidate.is_symlink():
                hops += 1
                target = os.readlink(candidate)
                if hops > MAX_LINK_HOPS:
                    self.error(path, "too many levels of symbolic links")
                    return None
                absolute = target.startswith("/")
                parts = [*PurePosixPath(target).parts[1 if absolute else 0 :], *parts]
                current = self.root if absolute else current
                continue
            if candidate.name == "..":
                current = current.parent if current != self.root else self.root
                continue
            current = candidate
        return current if current.exists() else None

    def read_text(self, path: str) -> str | None:
        found = self.resolve(path)
        if found is None or not found.is_file():
            return None
        return found.read_bytes()[: 1 << 16].decode("utf-8", errors="replace")

    def names(self, directory: str) -> tuple[str, ...]:
        """The regular files (after links) in ``directory``; a link to a file the inventory
        does not hold is noted."""
        found = self.resolve(directory)
        if found is None or not found.is_dir():
            return ()
        names = []
        for entry in sorted(found.iterdir()):
            if not entry.is_symlink():  # inside the folder already: no link to follow
                if entry.is_file():
                    names.append(entry.name)
                continue
            resolved = self.resolve(f"{directory}/{entry.name}")
            if resolved is not None and resolved.is_file():
                names.append(entry.name)
            elif entry.is_symlink() and resolved is None:
                self.notes.append(
                    f"{self.name}{directory}/{entry.name}: a link to {os.readlink(entry)}, "
                    "which this host's folder does not hold: not read"
                )
        return tuple(names)


def read_inventory(
    root: str,
    *,
    check_owner: bool,
    max_bytes: int,
    max_lines: int,
    default_zone: str | None,
    only: frozenset[str] | None = None,
) -> inv.Inventory:
    """Every host folder under ``root`` (``only``: just these hosts)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{root}: not a directory (--inventory wants one folder per host)")
    budget = _Budget(max_bytes, max_lines)
    hosts = []
    names = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if only is not None:
        missing = sorted(only - set(names))
        if missing:
            raise InputError(f"{root}: no folder for host(s) {', '.join(missing)}")
        names = [n for n in names if n in only]
    for name in names:
        hosts.append(_read_host(base / name, name, budget, check_owner, default_zone))
    if not hosts:
        raise InputError(f"{root}: no host folders in it (one folder per host expected)")
    return inv.Inventory(os.path.abspath(root), tuple(hosts))


def _read_host(
    folder: Path, name: str, budget: _Budget, check_owner: bool, default_zone: str | None
) -> inv.HostReading:
    problem = host_problem(name)
    if problem is not None:
        error = ImportError_("", None, f"folder name is not a host name: {problem}", host=name)
        return inv.HostReading(name, None, errors=(error,))
    host = _Host(name, folder)
    text = host.read_text(inv.OS_RELEASE) or host.read_text("/usr/lib/os-release")
    if text is None:
        host.error(inv.OS_RELEASE, "missing: the host's family (and so its cron) is unknown")
        return inv.HostReading(name, None, errors=tuple(host.errors))
    release = inv.parse_os_release(text)
    family = inv.family_of(release)
    if family is None:
        host.error(
            inv.OS_RELEASE,
            f"ID '{release.id}' (ID_LIKE '{' '.join(release.id_like)}'): the bridge reads "
            "Debian cron (Debian family) and cronie (RHEL family) hosts only",
        )
        return inv.HostReading(name, None, errors=tuple(host.errors))
    localtime = folder / "etc" / "localtime"
    link = os.readlink(localtime) if localtime.is_symlink() else None
    zone, zone_notes, zone_problem = inv.host_zone(
        host.read_text(inv.TIMEZONE), link, default_zone
    )
    if zone is None:
        host.error(inv.LOCALTIME if link else inv.TIMEZONE, zone_problem or "no zone")
        return inv.HostReading(name, None, errors=tuple(host.errors))
    listing = inv.Listing(
        etc_crontab=(r := host.resolve(inv.ETC_CRONTAB)) is not None and r.is_file(),
        cron_d=host.names(inv.CRON_D),
        spool_crontabs=host.names(inv.DEBIAN_SPOOL),
        spool_cron=host.names(inv.CRONIE_SPOOL),
        others=tuple(p for p in inv.NOT_CRONTABS if host.resolve(p) is not None),
    )
    selection = inv.select_files(family, listing)
    files = tuple(
        f for path in selection.read
        if (f := _read_file(host, path, family, budget, check_owner)) is not None
    )
    notes = (*(f"{name}: {n}" for n in zone_notes), *host.notes,
             *(f"{name}{p}: {why}" for p, why in selection.skipped))
    facts = inv.HostFacts(name, family, release, zone)
    return inv.HostReading(name, facts, files, tuple(notes), tuple(host.errors))


def _read_file(
    host: _Host, path: str, family: inv.Family, budget: _Budget, check_owner: bool
) -> inv.HostFile | None:
    kind = inv.kind_of(path)
    literal = host.root / path.lstrip("/")
    found = host.resolve(path)
    if found is None:
        return None
    with open(found, "rb") as f:
        data = f.read(budget.max_bytes - budget.used_bytes + 1)
        st = os.fstat(f.fileno())
    budget.take(data, f"{host.name}{path}")
    if literal.is_symlink() and family is inv.Family.DEBIAN and kind is SourceKind.USER_CRONTAB:
        # Debian opens spool files with O_NOFOLLOW: its jobs are listed, never imported
        refused = FileTrust(str(literal), True, "CAN'T OPEN", "a symlink; cron does not follow it")
        return inv.HostFile(path, data, refused)
    trust = FileTrust(str(literal), False)
    if check_owner:
        user = PurePosixPath(path).name if kind is SourceKind.USER_CRONTAB else None
        rules = cron_refusal if family is inv.Family.DEBIAN else check_cronie
        verdict = rules(st, kind, user)
        trust = FileTrust(str(literal), True, *(verdict or (None, None)))
    return inv.HostFile(path, data, trust)
