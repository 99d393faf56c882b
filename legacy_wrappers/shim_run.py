"""The shim's recorded path: decide, claim, run, record (guarantees: :mod:`legacy_wrappers.shim`).

Imported only when ``BRIDGE_JOB`` names a job. Pure core first (:func:`plan_firing`,
:func:`firing_key`), then the flow (:func:`run_recorded`); the command itself runs in
:mod:`legacy_wrappers.shim_exec`, the registry is :mod:`bridge.store.bare`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.store.bare import ClaimRef, Store, StoreError, first_line
from legacy_wrappers.shim_exec import Child, outcome_status, run_command
from legacy_wrappers.shim_os import syslog as _syslog

if TYPE_CHECKING:
    from bridge.core.config import Settings
    from bridge.core.schedules import Evaluator
    from bridge.services.authority_files import Authority

TOLERANCE_SECONDS = 90


# --- deciding (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FiringPlan:
    """What to do with this firing: ``run`` (claimed when ``claim``), ``stand-down`` (Celery owns
    the slot) or ``skip`` (the job is paused: `bridge pause`)."""

    action: str
    slot: datetime
    claim: bool = False
    note: str | None = None


def minute_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def plan_firing(
    now: datetime,
    evaluator: Evaluator | None,
    authority: Authority | None,
    *,
    reachable: bool,
    tolerance: float = TOLERANCE_SECONDS,
    unknown: str = "schedule unknown",
    paused: str | None = None,
) -> FiringPlan:
    """Slot, owner and action for a firing at ``now`` (rules: :mod:`legacy_wrappers.shim`)."""
    if evaluator is None:
        return FiringPlan("run", minute_of(now), note=f"{unknown}: slot estimated from the clock")
    slot = evaluator.prev_at_or_before(now)
    if slot is None or (now - slot).total_seconds() > tolerance:
        latest = "none" if slot is None else slot.isoformat()
        note = f"no slot within tolerance ({tolerance:g} s; latest slot {latest})"
        return FiringPlan("run", minute_of(now), note=note)
    owner = authority.owner_at(slot) if authority is not None else "legacy"
    if owner == "celery":
        return FiringPlan("stand-down", slot)
    if paused is not None:
        return FiringPlan("skip", slot, note=f"paused: {paused or 'no reason given'}")
    unsure = None if authority else "authority unknown (no cached authority file): ran as legacy"
    return FiringPlan("run", slot, claim=reachable, note=unsure)


def firing_key(job_id: str, slot: datetime, host: str, fired: datetime) -> str:
    """Unique per firing (two hosts firing one slot get two records), fixed before the first
    write attempt (a record that reached the registry and the spool is stored once)."""
    import hashlib

    seed = f"{job_id}\0{slot.isoformat()}\0{host}\0{os.getpid()}\0{fired.isoformat()}"
    return "legacy:" + hashlib.sha256(seed.encode()).hexdigest()[:40]


# --- the recorded path ----------------------------------------------------------------------------


@dataclass
class LegacyFiring:
    """Everything this firing learned before running: settings, registry, job, decision."""

    job_id: str
    fired: datetime
    host: str
    settings: Settings | None = None
    store: Store | None = None
    decision: FiringPlan | None = None
    notes: list[str] = field(default_factory=list)
    in_registry: bool = False  # the record reached the registry (then the spool is flushed)

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) or None


def run_recorded(job_id: str, shell: str, command: str, env: dict[str, str],
                 fired_at: float) -> int:
    """The managed path: decide, maybe claim, run, record. Returns the exit status."""
    import warnings

    warnings.simplefilter("ignore")  # a library warning on stderr would be mailed as job output
    firing = LegacyFiring(job_id, datetime.fromtimestamp(fired_at, UTC), os.uname().nodename)
    claim, declined = before_running(firing)
    if declined is not None:
        role, status, error = declined
        after_running(firing, lambda: run_row(firing, role, status, error=error), None)
        return 0
    child = run_command(shell, command, env, tick=_renewer(firing, claim))
    status = outcome_status(child)
    after_running(firing, lambda: run_row(firing, "authoritative", status, child=child), claim,
                  status)
    return _exit_like(child.code)


def before_running(
    firing: LegacyFiring,
) -> tuple[ClaimRef | None, tuple[str, str, str | None] | None]:
    """(our claim, None) to run, or (None, (role, status, error)) to decline. Never raises: a
    bug here is logged and the command runs (the legacy job must not break)."""
    try:
        consult_registry(firing)
        assert firing.decision is not None
        if firing.decision.action == "stand-down":
            return None, ("stand-down", "stood-down", None)
        if firing.decision.action == "skip":
            return None, ("scheduler", "skipped", None)  # the note says why
        claim, lost_to = take_claim(firing)
        if lost_to is not None:
            return None, ("suppressed", "suppressed", lost_to)
        return claim, None
    except Exception as e:
        _syslog("err", f"{firing.job_id}: shim error before running (job runs anyway): {e!r}")
        firing.notes.append(f"shim error: {e!r}")
        firing.decision = firing.decision or FiringPlan("run", minute_of(firing.fired))
        return None, None


def after_running(firing: LegacyFiring, make_row: Callable[[], dict[str, Any]],
                  claim: ClaimRef | None, state: str = "succeeded") -> None:
    """Record (registry, else spool, else syslog), then flush the spool. Never raises."""
    try:
        record_firing(firing, make_row(), claim, state)
        _flush_spool(firing)
    except Exception as e:
        _syslog("err", f"{firing.job_id}: shim error while recording: {e!r}")


def consult_registry(firing: LegacyFiring) -> None:
    """Settings, registry (or the cached authority), slot and decision."""
    from bridge.services import authority_files

    firing.settings, usable = _settings(firing)
    spec: dict[str, Any] | None = None
    authority = None
    unknown = "schedule unknown (registry unreachable, no cached authority file)"
    if usable:
        try:
            firing.store = Store(firing.settings.database_url)
            spec, events = firing.store.job(firing.job_id)
        except StoreError as e:
            _drop_store(firing, str(e))
        else:
            unknown = "job not in the registry"
            schedule = spec.get("schedule") if spec else None
            authority = authority_files.resolve(firing.job_id, events, schedule)
            _refresh_cache(firing, authority)
    if firing.store is None:
        authority = _cached_authority(firing)
        spec = {"schedule": authority.schedule} if authority and authority.schedule else None
    evaluator = _evaluator(firing, spec)
    paused = spec.get("paused") if spec and firing.store is not None else None
    firing.decision = plan_firing(firing.fired, evaluator, authority,
                                  reachable=firing.store is not None, unknown=unknown,
                                  paused=paused)
    if firing.decision.note:
        firing.notes.append(firing.decision.note)


def _settings(firing: LegacyFiring) -> tuple[Settings, bool]:
    """The settings and whether the registry they name may be used."""
    from bridge.core.config import Settings, load_settings
    from bridge.core.errors import ConfigError

    try:
        return load_settings(), True
    except ConfigError as e:
        firing.notes.append(f"invalid settings ({e}): registry not used")
        _syslog("err", f"{firing.job_id}: invalid settings: {e}")
        return Settings(), False


def _drop_store(firing: LegacyFiring, reason: str) -> None:
    if firing.store is not None:
        firing.store.close()
    firing.store = None
    firing.notes.append(f"registry unreachable ({reason}): record spooled")


def _cached_authority(firing: LegacyFiring) -> Authority | None:
    from bridge.services import authority_files

    assert firing.settings is not None
    try:  # only a file nobody else could have planted (owner, mode): else run as legacy would
        return authority_files.read_trusted(firing.settings.authority_dir, firing.job_id)
    except (authority_files.AuthorityFileError, OSError) as e:
        firing.notes.append(f"cached authority unusable: {e}")
        if "untrusted" in str(e):
            _syslog("warning", f"{firing.job_id}: {e}: ignored, the job runs as legacy")
        return None


def _refresh_cache(firing: LegacyFiring, authority: Authority) -> None:
    from bridge.services import authority_files

    assert firing.settings is not None
    try:
        authority_files.write(firing.settings.authority_dir, authority)
    except (OSError, ValueError) as e:  # ValueError: AuthorityFileError (a bad job id)
        _syslog("warning", f"{firing.job_id}: cannot refresh the authority cache: {e}")


def _evaluator(firing: LegacyFiring, spec: Mapping[str, Any] | None) -> Evaluator | None:
    if not spec or not spec.get("schedule"):
        return None
    from bridge.core.schedules import compile_schedule
    from bridge.core.spec import ScheduleSpec

    raw = dict(spec["schedule"])
    try:
        for name in ("start", "end"):
            raw[name] = datetime.fromisoformat(raw[name]) if raw.get(name) else None
        return compile_schedule(ScheduleSpec(**raw))
    except Exception as e:  # SpecError, ScheduleError, a newer spec's fields
        firing.notes.append(f"schedule unusable: {e}")
        return None


def take_claim(firing: LegacyFiring) -> tuple[ClaimRef | None, str | None]:
    """(our claim or None, None) or (None, why the slot is someone else's)."""
    decision, store = firing.decision, firing.store
    if decision is None or not decision.claim or store is None:
        return None, None
    lineage, instance = f"legacy:{firing.host}:{os.getpid()}", "cron"
    holder = f"{lineage}@{instance}"[:255]  # str(bridge.core.claims.Holder)
    try:
        ref = store.claim(firing.job_id, decision.slot, holder, datetime.now(UTC))
        if ref is not None:
            return ref, None
        return contested_claim(store.url, firing.job_id, decision.slot, lineage, instance)
    except Exception as e:  # StoreError, or the registry died between the two paths
        _drop_store(firing, first_line(e))
        return None, None


def _renewer(firing: LegacyFiring, claim: ClaimRef | None) -> Callable[[], None] | None:
    if claim is None:
        return None

    def renew() -> None:
        store = firing.store
        if store is None:
            return
        try:
            if not store.renew(claim, datetime.now(UTC)):
                firing.notes.append("claim lease lost while running")
        except StoreError as e:
            firing.notes.append(f"lease renewal failed: {e}")

    return renew


def run_row(firing: LegacyFiring, role: str, status: str, *, child: Child | None = None,
         error: str | None = None) -> dict[str, Any]:
    """A ``runs`` row (the columns of :class:`bridge.core.runs.RunRecord`)."""
    assert firing.decision is not None
    slot = firing.decision.slot
    notes = [n for n in (error, firing.note, child.exec_error if child else None) if n]
    row: dict[str, Any] = {
        "job_id": firing.job_id, "slot": slot, "path": "legacy", "role": role,
        "status": status, "fired_at": firing.fired, "started_at": None, "finished_at": None,
        "exit_status": None, "task_state": None, "attempts": 1, "output_digest": None,
        "output_sample": None, "host": firing.host, "error": "; ".join(notes) or None,
        "record_key": firing_key(firing.job_id, slot, firing.host, firing.fired),
    }
    if child is not None:
        row.update(started_at=child.started, finished_at=child.finished, exit_status=child.code,
                   output_digest=child.capture.digest.hexdigest(),
                   output_sample=child.capture.sample())
    return row


def record_firing(firing: LegacyFiring, row: dict[str, Any], claim: ClaimRef | None,
           state: str = "succeeded") -> None:
    """Write the row (and complete the claim) in the registry, else spool it, else syslog."""
    if firing.store is not None:
        try:
            if not firing.store.finish(claim, state, row):
                _syslog("warning", f"{firing.job_id}: claim lost before completion")
            firing.store.close()
            firing.in_registry = True
            return
        except Exception as e:
            _drop_store(firing, first_line(e))
            row = {**row, "error": "; ".join(n for n in (row["error"], firing.notes[-1]) if n)}
            if claim is not None:  # the upload completes it (legacy_wrappers.spool)
                row.update(claim_holder=claim.holder, claim_attempts=claim.attempts,
                           claim_state=state)
    spool_record(firing, row)


def spool_record(firing: LegacyFiring, row: dict[str, Any]) -> None:
    from bridge.core.config import Settings
    from legacy_wrappers import spool

    settings = firing.settings or Settings()
    try:
        spool.append(settings.spool_dir, row)
    except Exception as e:
        lost = spool.encode({**row, "output_sample": None}).decode().strip()
        _syslog("err", f"{firing.job_id}: spool {settings.spool_dir} unwritable ({e}); "
                       f"record: {lost}")


def _flush_spool(firing: LegacyFiring) -> None:
    """After a registry write: upload the spool when files wait there (cheap when empty)."""
    settings = firing.settings
    if settings is None or not firing.in_registry:
        return
    try:
        names = os.listdir(settings.spool_dir)
    except OSError:
        return  # no spool directory: nothing was ever spooled here
    if not any(n.endswith(".jsonl") for n in names):
        return
    try:
        from legacy_wrappers import spool_flush

        def registry() -> Any:
            from bridge.store.db import Registry

            return Registry(settings.database_url, check_schema=False)

        spool_flush.flush_if_pending(registry, settings.spool_dir)
    except Exception as e:
        _syslog("warning", f"spool flush failed (next run retries): {e}")


def _exit_like(code: int) -> int:
    """The command's status as our own: re-raise the signal that killed it."""
    if code >= 0:
        return code
    import signal

    sig = -code
    with suppress(OSError, ValueError):  # SIGKILL/SIGSTOP cannot (and need not) be reset
        signal.signal(sig, signal.SIG_DFL)
    with suppress(OSError):
        os.kill(os.getpid(), sig)
    return 128 + sig  # a signal whose default is to be ignored: the shell's convention


def contested_claim(url: str, job_id: str, slot: datetime, lineage: str,
                    instance: str) -> tuple[ClaimRef | None, str | None]:
    """The rare path: the slot's row exists. :class:`Claims` decides (a takeover of an expired
    lease, or :class:`AlreadyClaimed`); returns (our claim, None) or (None, the reason)."""
    from bridge.core.claims import AlreadyClaimed, Holder
    from bridge.store.db import Registry
    from legacy_wrappers.claims import Claims

    registry = Registry(url, check_schema=False)
    try:
        result = Claims(registry).claim(job_id, slot, Holder(lineage, instance), path="legacy")
    finally:
        registry.dispose()
    if isinstance(result, AlreadyClaimed):
        return None, result.reason
    return ClaimRef(result.info.id, result.info.holder, result.info.attempts), None
