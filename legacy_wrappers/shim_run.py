"""The shim's recorded path: decide, claim, run, record (guarantees: :mod:`legacy_wrappers.shim`).

Imported only when ``BRIDGE_JOB`` names a job. What the firing learns before running is
:mod:`legacy_wrappers.shim_consult` (the plan itself: :mod:`legacy_wrappers.shim_plan`), the
command runs in :mod:`legacy_wrappers.shim_exec`, the registry is :mod:`bridge.store.bare`.
The rare paths (a contested claim, a spool to upload, the registry unreachable) import more.
"""

from __future__ import annotations

import os

from bridge.store.bare import UTC, ClaimRef, StoreError, datetime, first_line
from legacy_wrappers.shim_consult import LegacyFiring, consult_registry, drop_store
from legacy_wrappers.shim_exec import Child, outcome_status, run_as_cron
from legacy_wrappers.shim_os import quiet_warnings
from legacy_wrappers.shim_os import syslog as _syslog
from legacy_wrappers.shim_plan import FiringPlan, firing_key, minute_of

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hot path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def run_recorded(job_id: str, shell: str, command: str, env: dict[str, str],
                 fired_at: float) -> int:
    """The managed path: decide, maybe claim, run, record. Returns the exit status."""
    quiet_warnings()  # a library warning on stderr would be mailed as job output
    firing = LegacyFiring(job_id, datetime.fromtimestamp(fired_at, UTC), os.uname().nodename)
    claim, declined = before_running(firing)
    if declined is not None:
        role, status, error = declined
        after_running(firing, lambda: run_row(firing, role, status, error=error), None)
        return 0
    child = run_as_cron(shell, command, env, tick=_renewer(firing, claim))
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
        drop_store(firing, first_line(e))
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
            drop_store(firing, first_line(e))
            row = {**row, "error": "; ".join(n for n in (row["error"], firing.notes[-1]) if n)}
            if claim is not None:  # the upload completes it (legacy_wrappers.spool)
                row.update(claim_holder=claim.holder, claim_attempts=claim.attempts,
                           claim_state=state)
    spool_record(firing, row)


def spool_record(firing: LegacyFiring, row: dict[str, Any]) -> None:
    from legacy_wrappers import spool

    settings = firing.settings
    if settings is None:  # the shim failed before it read them: the defaults' spool
        from bridge.core.config import Settings

        settings = Settings()
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
    from legacy_wrappers.shim_os import signals

    signal, sig = signals(), -code
    try:  # noqa: SIM105 (contextlib is not imported on the hot path)
        signal.signal(sig, signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL/SIGSTOP cannot (and need not) be reset
        pass
    try:  # noqa: SIM105
        os.kill(os.getpid(), sig)
    except OSError:
        pass
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
