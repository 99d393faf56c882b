"""What a firing learns before its command runs: settings, the registry's word, slot, plan.

:func:`consult_registry` fills a :class:`LegacyFiring`: the settings, the job's row and
authority history from the registry (:mod:`bridge.store.bare`; when it is unreachable, the
cached authority file), the slot and the :class:`~legacy_wrappers.shim_plan.FiringPlan`.

The common case touches only light modules: the settings, the job's slots and the authority
file's freshness come from the shim's cache (:mod:`legacy_wrappers.shim_cache`) while their
inputs are unchanged. A miss computes them the full way (:func:`bridge.core.config.load_settings`,
the job's evaluator, :mod:`bridge.services.authority_files`) and refreshes the cache.
"""

from __future__ import annotations

import os

from bridge.store.bare import Store, StoreError, datetime
from legacy_wrappers import shim_cache
from legacy_wrappers.shim_os import syslog
from legacy_wrappers.shim_plan import CachedSlots, EventTimeline, FiringPlan, plan_firing

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hot path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from bridge.core.schedules import Evaluator
    from bridge.services.authority_files import Authority
    from bridge.store.bare import JobHead
    from legacy_wrappers.shim_plan import OwnerSource, SlotSource


class ShimSettings:
    """The settings the shim uses (a :class:`bridge.core.config.Settings` has the same names)."""

    __slots__ = ("authority_dir", "database_url", "spool_dir")

    def __init__(self, database_url: str, spool_dir: str, authority_dir: str) -> None:
        self.database_url, self.spool_dir = database_url, spool_dir
        self.authority_dir = authority_dir


class LegacyFiring:
    """Everything this firing learned before running: settings, registry, job, decision."""

    def __init__(self, job_id: str, fired: datetime, host: str) -> None:
        self.job_id, self.fired, self.host = job_id, fired, host
        self.settings: ShimSettings | Any = None
        self.store: Store | None = None
        self.decision: FiringPlan | None = None
        self.notes: list[str] = []
        self.in_registry = False  # the record reached the registry (then the spool is flushed)

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) or None


def consult_registry(firing: LegacyFiring) -> None:
    """Settings, registry (or the cached authority), slot and decision."""
    firing.settings, usable = shim_settings(firing)
    head: JobHead | None = None
    authority: OwnerSource | None = None
    slots: SlotSource | None = None
    unknown = "schedule unknown (registry unreachable, no cached authority file)"
    if usable:
        try:
            firing.store = Store(firing.settings.database_url)
            head, events = firing.store.job(firing.job_id)
        except StoreError as e:
            drop_store(firing, str(e))
        else:
            unknown = "job not in the registry"
            authority = EventTimeline(events)
            slots = _registry_slots(firing, head, events)
    if firing.store is None:
        authority, slots = _offline(firing)
    paused = head.paused if head is not None else None
    firing.decision = plan_firing(firing.fired, slots, authority,
                                  reachable=firing.store is not None, unknown=unknown,
                                  paused=paused)
    if firing.decision.note:
        firing.notes.append(firing.decision.note)


def shim_settings(firing: LegacyFiring) -> tuple[ShimSettings | Any, bool]:
    """The settings and whether the registry they name may be used (cached while the inputs
    of :func:`bridge.core.config.load_settings` are unchanged)."""
    cached = shim_cache.read_settings(os.environ)
    if cached is not None:
        return ShimSettings(*cached[1:]), True
    from bridge.core.config import Settings, load_settings
    from bridge.core.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as e:
        firing.notes.append(f"invalid settings ({e}): registry not used")
        syslog("err", f"{firing.job_id}: invalid settings: {e}")
        return Settings(), False
    shim_cache.write_settings(os.environ, ("ok", settings.database_url, settings.spool_dir,
                                           settings.authority_dir))
    return settings, True


def drop_store(firing: LegacyFiring, reason: str) -> None:
    if firing.store is not None:
        firing.store.close()
    firing.store = None
    firing.notes.append(f"registry unreachable ({reason}): record spooled")


def _registry_slots(firing: LegacyFiring, head: JobHead | None,
                    events: Sequence[tuple[datetime | None, str]]) -> SlotSource | None:
    """The job's slot source, and the authority file kept current (both through the cache)."""
    cache = shim_cache.read_job(os.environ, firing.job_id)
    path = os.path.join(firing.settings.authority_dir, f"{firing.job_id}.authority")
    spec_hash = head.spec_hash if head is not None else ""
    fresh = cache is not None and cache.authority == shim_cache.authority_fingerprint(
        spec_hash, events, path)
    known, slot = False, None
    if cache is not None and head is not None:
        known, slot = cache.latest_slot(spec_hash, firing.fired.timestamp())
    if fresh and known:
        return CachedSlots(slot)
    schedule = _schedule(firing, head)
    if not fresh:
        _refresh_authority_file(firing, events, schedule)
    source: SlotSource | None = CachedSlots(slot) if known else None
    if not known and schedule:
        evaluator = _evaluator(firing, schedule)
        source = evaluator
        if evaluator is not None:
            cache = shim_cache.job_cache_from(evaluator, spec_hash, firing.fired.timestamp())
    if cache is not None:
        shim_cache.remember_authority(cache, spec_hash, events, path)
        shim_cache.write_job(os.environ, firing.job_id, cache)
    return source


def _offline(firing: LegacyFiring) -> tuple[OwnerSource | None, SlotSource | None]:
    """The registry is unreachable: the last authority this host saw (the authority file; from
    the cache while the file is the one the cache recorded) and the job's slots."""
    path = os.path.join(firing.settings.authority_dir, f"{firing.job_id}.authority")
    cache = shim_cache.read_job(os.environ, firing.job_id)
    rows = shim_cache.rows_behind(cache, path) if cache is not None else None
    if cache is not None and rows is not None:
        known, slot = cache.latest_slot(cache.file_spec, firing.fired.timestamp())
        if known:
            return EventTimeline(rows), CachedSlots(slot)
    cached = _cached_authority(firing)
    if cached is not None and cached.schedule:
        return cached, _evaluator(firing, cached.schedule)
    return cached, None


def _schedule(firing: LegacyFiring, head: JobHead | None) -> Mapping[str, Any] | None:
    if head is None:
        return None
    try:
        schedule = head.spec().get("schedule")
    except ValueError as e:  # not JSON: the registry row is damaged
        firing.notes.append(f"job spec unreadable: {e}")
        return None
    return schedule if isinstance(schedule, dict) else None


def _cached_authority(firing: LegacyFiring) -> Authority | None:
    from bridge.services import authority_files

    try:  # only a file nobody else could have planted (owner, mode): else run as legacy would
        return authority_files.read_trusted(firing.settings.authority_dir, firing.job_id)
    except (authority_files.AuthorityFileError, OSError) as e:
        firing.notes.append(f"cached authority unusable: {e}")
        if "untrusted" in str(e):
            syslog("warning", f"{firing.job_id}: {e}: ignored, the job runs as legacy")
        return None


def _refresh_authority_file(firing: LegacyFiring, events: Sequence[tuple[datetime | None, str]],
                            schedule: Mapping[str, Any] | None) -> None:
    """Every registry read keeps the on-disk authority file current (the outage fallback)."""
    from bridge.services import authority_files

    try:
        authority = authority_files.resolve(firing.job_id, events, schedule)
        authority_files.write(firing.settings.authority_dir, authority)
    except (OSError, ValueError) as e:  # ValueError: AuthorityFileError (a bad job id)
        syslog("warning", f"{firing.job_id}: cannot refresh the authority cache: {e}")


def _evaluator(firing: LegacyFiring, schedule: Mapping[str, Any]) -> Evaluator | None:
    from bridge.core.schedules import compile_schedule
    from bridge.core.spec import ScheduleSpec

    raw = dict(schedule)
    try:
        for name in ("start", "end"):
            raw[name] = datetime.fromisoformat(raw[name]) if raw.get(name) else None
        return compile_schedule(ScheduleSpec(**raw))
    except Exception as e:  # SpecError, ScheduleError, a newer spec's fields
        firing.notes.append(f"schedule unusable: {e}")
        return None

