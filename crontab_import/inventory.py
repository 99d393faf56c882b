"""A fleet's crontabs, collected into one tree: which files each host's cron reads, its zone,
its cron dialect, and the parse results of every file. Pure: values in, values out.

Layout (what ``ansible -m fetch`` or ``rsync -R`` leave): one folder per host, named after the
host (:mod:`bridge.core.hosts`), holding that host's files at their real paths::

    DIR/web-01/etc/os-release                  family: ID / ID_LIKE
    DIR/web-01/etc/timezone                    zone (Debian), or
    DIR/web-01/etc/localtime -> /usr/share/zoneinfo/Europe/Paris   (a symlink: its target)
    DIR/web-01/etc/crontab
    DIR/web-01/etc/cron.d/*
    DIR/web-01/var/spool/cron/crontabs/<user>  Debian family
    DIR/web-01/var/spool/cron/<user>           RHEL family (cronie)

Family (:func:`family_of`, from ``etc/os-release``): ``debian`` (ID or ID_LIKE debian/ubuntu)
reads like Debian cron 3.0pl1 (dialect ``vixie``); ``rhel`` (ID or ID_LIKE rhel/fedora/centos)
like cronie (dialect ``cronie``: CRON_TZ, RANDOM_DELAY, ``~`` and ``-`` lines, one bad line
skips only itself; see :mod:`crontab_import.cronie`). Any other family is refused: its cron
(busybox, SUSE's spool in ``tabs/``) is not one the bridge reproduces.

Files (:func:`select_files`): the ones that family's daemon reads. Debian: ``etc/crontab``,
``etc/cron.d/*`` (names with other characters than letters, digits, ``_``, ``-`` are listed
INACTIVE by the parser, as Debian never reads them), ``var/spool/cron/crontabs/*`` except dot
files. cronie: ``etc/crontab``, ``etc/cron.d/*`` and ``var/spool/cron/*`` except names cronie
skips (starting with ``.`` or ``#``, ending with ``~``, ``.rpmsave``, ``.rpmorig``,
``.rpmnew``), which are noted. Everything else (``etc/anacrontab``, ``cron.daily`` scripts, a
``var/spool/cron/*`` file on a Debian host) is not a crontab of that host's cron: noted, never
imported.

Zone (:func:`host_zone`): the target of the ``etc/localtime`` symlink (what the C library, and
so cron, uses: the part after ``zoneinfo/``, ``posix/`` dropped), else ``etc/timezone``; when
both exist and disagree, the link wins and the plan says so. ``right/`` zones (leap seconds)
are refused. A host with neither takes ``--timezone`` if given (said in the plan), else it is
an error naming the host.

Ids (:func:`qualify_results`): every job gets ``<host>.<its id on the host>``
(:func:`bridge.core.hosts.qualify`), except the files whose jobs the registry already holds
under bare ids for that host (imported on the host before fleets): those keep their ids.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.hosts import qualify
from bridge.core.spec import JOB_ID_RE, Dialect, SourceKind
from crontab_import.crontab import parse_crontab, with_trust
from crontab_import.filetrust import FileTrust
from crontab_import.model import ImportError_, ImportItem, ItemStatus, ParseResult

ETC_CRONTAB = "/etc/crontab"
CRON_D = "/etc/cron.d"
DEBIAN_SPOOL = "/var/spool/cron/crontabs"
CRONIE_SPOOL = "/var/spool/cron"
OS_RELEASE = "/etc/os-release"
TIMEZONE = "/etc/timezone"
LOCALTIME = "/etc/localtime"
NOT_CRONTABS = ("/etc/anacrontab",)
DEBIAN_IDS = frozenset({"debian", "ubuntu", "raspbian", "devuan", "linuxmint", "kali"})
RHEL_IDS = frozenset(
    {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "scientific", "cloudlinux"}
)
CRONIE_SKIPPED_SUFFIXES = ("~", ".rpmsave", ".rpmorig", ".rpmnew")
CRONIE_CLUSTER_FILE = ".cron.hostname"


class Family(StrEnum):
    DEBIAN = "debian"  # Debian cron 3.0pl1: dialect vixie
    RHEL = "rhel"  # cronie: dialect cronie

    @property
    def dialect(self) -> Dialect:
        return Dialect.VIXIE if self is Family.DEBIAN else Dialect.CRONIE


@dataclass(frozen=True)
class OsRelease:
    id: str | None
    id_like: tuple[str, ...] = ()


@dataclass(frozen=True)
class Zone:
    name: str
    source: str  # "etc/localtime", "etc/timezone" or "--timezone"


@dataclass(frozen=True)
class Listing:
    """The names found in one host folder's cron directories (regular files only)."""

    etc_crontab: bool = False
    cron_d: tuple[str, ...] = ()
    spool_crontabs: tuple[str, ...] = ()  # var/spool/cron/crontabs/*
    spool_cron: tuple[str, ...] = ()  # var/spool/cron/* (files directly in it)
    others: tuple[str, ...] = ()  # other cron-related paths present (etc/anacrontab)


@dataclass(frozen=True)
class Selection:
    """The host paths its cron reads, and the ones it does not (with why)."""

    read: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HostFile:
    path: str  # the path on the host: /etc/cron.d/backup
    data: bytes
    trust: FileTrust


@dataclass(frozen=True)
class HostFacts:
    host: str
    family: Family
    os_release: OsRelease
    zone: Zone


@dataclass(frozen=True)
class HostReading:
    """One host folder, read: its facts and crontab files, or the errors that stop it."""

    host: str
    facts: HostFacts | None
    files: tuple[HostFile, ...] = ()
    notes: tuple[str, ...] = ()
    errors: tuple[ImportError_, ...] = ()


@dataclass(frozen=True)
class Inventory:
    root: str
    hosts: tuple[HostReading, ...]

    @property
    def readable_hosts(self) -> tuple[str, ...]:
        """Hosts whose folder was read without errors: only they are planned (and pruned)."""
        return tuple(h.host for h in self.hosts if h.facts is not None)

    @property
    def errors(self) -> tuple[ImportError_, ...]:
        return tuple(e for h in self.hosts for e in h.errors)


# --- facts --------------------------------------------------------------------------------------


def parse_os_release(text: str) -> OsRelease:
    """``ID`` and ``ID_LIKE`` of an os-release file (shell-style ``KEY=value`` lines)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, raw = line.strip().partition("=")
        if not eq or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw, comments=False)
        except ValueError:
            words = [raw.strip("\"'")]
        values[key.strip()] = " ".join(words)
    ident = values.get("ID", "").strip().lower() or None
    return OsRelease(ident, tuple(values.get("ID_LIKE", "").lower().split()))


def family_of(release: OsRelease) -> Family | None:
    names = {release.id or "", *release.id_like}
    if release.id in DEBIAN_IDS or names & {"debian", "ubuntu"}:
        return Family.DEBIAN
    if release.id in RHEL_IDS or names & {"rhel", "fedora", "centos"}:
        return Family.RHEL
    return None


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def zone_of_link(target: str) -> str | None:
    """The zone a ``/etc/localtime`` symlink target names (None when it names none)."""
    _, sep, rest = target.partition("zoneinfo/")
    if not sep or not rest:
        return None
    return rest.removeprefix("posix/")


def host_zone(
    timezone_text: str | None,
    localtime_link: str | None,
    default: str | None,
) -> tuple[Zone | None, tuple[str, ...], str | None]:
    """(zone, notes, problem): see the module docstring for the rules."""
    notes: list[str] = []
    from_file = None
    if timezone_text is not None:
        lines = [ln.strip() for ln in timezone_text.splitlines() if ln.strip()]
        from_file = lines[0] if lines else None
    from_link = zone_of_link(localtime_link) if localtime_link is not None else None
    if from_link is not None and from_link.startswith("right/"):
        return None, (), (
            f"etc/localtime links to '{localtime_link}': a leap-second ('right/') zone, whose "
            "clock cron follows 27 s off civil time; the bridge cannot reproduce it"
        )
    if localtime_link is not None and from_link is None:
        notes.append(f"etc/localtime links to '{localtime_link}', which names no zone")
    for name, where in ((from_link, "etc/localtime"), (from_file, "etc/timezone")):
        if name is not None and not _known_zone(name):
            return None, tuple(notes), f"{where} names an unknown zone '{name}'"
    if from_link and from_file and from_link != from_file:
        notes.append(
            f"etc/timezone says '{from_file}' but etc/localtime links to '{from_link}': cron "
            f"follows etc/localtime, so jobs run in {from_link}"
        )
    if from_link:
        return Zone(from_link, "etc/localtime"), tuple(notes), None
    if from_file:
        return Zone(from_file, "etc/timezone"), tuple(notes), None
    if default is not None:
        notes.append(f"no etc/timezone and no etc/localtime link: --timezone {default} assumed")
        return Zone(default, "--timezone"), tuple(notes), None
    return None, tuple(notes), (
        "no etc/timezone and no etc/localtime symlink: the host's zone is unknown (copy "
        "etc/timezone into the host's folder, or pass --timezone for such hosts)"
    )


# --- files --------------------------------------------------------------------------------------


def cronie_skips(name: str) -> bool:
    """cronie's ``not_a_crontab``: names its daemon never reads in cron.d and the spool."""
    return name[:1] in (".", "#") or name.endswith(CRONIE_SKIPPED_SUFFIXES)


def select_files(family: Family, listing: Listing) -> Selection:
    read: list[str] = [ETC_CRONTAB] if listing.etc_crontab else []
    skipped: list[tuple[str, str]] = [(p, "not a crontab (anacron's table)") for p in
                                      listing.others if p in NOT_CRONTABS]
    if family is Family.DEBIAN:
        read += [f"{CRON_D}/{n}" for n in listing.cron_d]
        for name in listing.spool_crontabs:
            path = f"{DEBIAN_SPOOL}/{name}"
            if name.startswith("."):
                skipped.append((path, "a dot file: Debian cron skips it"))
            else:
                read.append(path)
        skipped += [(f"{CRONIE_SPOOL}/{n}", "not read by Debian cron (its spool is "
                     f"{DEBIAN_SPOOL})") for n in listing.spool_cron]
        return Selection(tuple(read), tuple(skipped))
    for directory, names in ((CRON_D, listing.cron_d), (CRONIE_SPOOL, listing.spool_cron)):
        for name in names:
            path = f"{directory}/{name}"
            if name == CRONIE_CLUSTER_FILE and directory == CRONIE_SPOOL:
                skipped.append((path, "cronie cluster mode (crond -c) reads this spool only on "
                                "the host this file names; check it before trusting the plan"))
            elif cronie_skips(name):
                skipped.append((path, "cronie skips names starting with '.' or '#' or ending "
                                "with '~', '.rpmsave', '.rpmorig', '.rpmnew'"))
            else:
                read.append(path)
    skipped += [(f"{DEBIAN_SPOOL}/{n}", f"not read by cronie (its spool is {CRONIE_SPOOL})")
                for n in listing.spool_crontabs]
    return Selection(tuple(read), tuple(skipped))


def kind_of(path: str) -> SourceKind:
    if path == ETC_CRONTAB:
        return SourceKind.SYSTEM_CRONTAB
    if path.startswith(CRON_D + "/"):
        return SourceKind.CRON_D
    return SourceKind.USER_CRONTAB


# --- parse results ------------------------------------------------------------------------------


def host_results(reading: HostReading) -> tuple[ParseResult, ...]:
    """Every crontab file of one host, parsed in its family's dialect and zone, its jobs
    belonging to the host (ids not yet qualified: :func:`qualify_results`)."""
    facts = reading.facts
    if facts is None:
        return ()
    out = []
    for f in reading.files:
        result = parse_crontab(
            f.data,
            file=f.path,
            timezone=facts.zone.name,
            kind=kind_of(f.path),
            dialect=facts.family.dialect,
            host=facts.host,
        )
        out.append(with_host(with_trust(result, f.trust), facts.host))
    return tuple(out)


def with_host(result: ParseResult, host: str) -> ParseResult:
    """``result`` (parsed with ``host``) as one host's file: its errors and notes name the
    host, and the plan prunes it by (host, file)."""
    prefix = f"{result.file}:"
    notes = tuple(
        host + n if n.startswith(prefix) or n == result.file else f"{host}{result.file}: {n}"
        for n in result.notes
    )
    return replace(
        result,
        host=host,
        errors=tuple(replace(e, host=host) for e in result.errors),
        notes=notes,
    )


def bare_sources(
    ids_by_source: Mapping[tuple[str, str], Iterable[str]],
) -> frozenset[tuple[str, str]]:
    """(host, file) pairs whose registry jobs have bare ids: imported on the host before it was
    part of a fleet import; they keep their ids."""
    return frozenset(
        (host, file)
        for (host, file), ids in ids_by_source.items()
        if any(not i.startswith(host + ".") for i in ids)
    )


def qualify_results(
    results: Iterable[ParseResult], bare: Collection[tuple[str, str]] = frozenset()
) -> tuple[ParseResult, ...]:
    """Give every hosted job its fleet id ``<host>.<id>`` (except in ``bare`` sources)."""
    out = []
    for r in results:
        if r.host is None or (r.host, r.file) in bare:
            out.append(r)
            continue
        items, errors = [], list(r.errors)
        for item in r.items:
            done, error = _qualified(item, r.host)
            items.append(done)
            if error is not None:
                errors.append(error)
        out.append(replace(r, items=tuple(items), errors=tuple(errors)))
    return tuple(out)


def _qualified(item: ImportItem, host: str) -> tuple[ImportItem, ImportError_ | None]:
    if item.id is None:
        return item, None
    new_id = qualify(host, item.id)
    if not JOB_ID_RE.match(new_id):
        message = (f"job id '{new_id}' is longer than 200 characters: shorten it with "
                   "'# bridge: id=...' above the line")
        error = ImportError_(item.source.file, item.source.line, message, host=host)
        return replace(item, id=new_id, job=None, status=ItemStatus.ERROR, reason=message), error
    job = item.job.with_(id=new_id) if item.job is not None else None
    return replace(item, id=new_id, job=job), None
