"""Flipping authority: when, exactly, a job's slots move from one path to the other.

A flip is an authority event ``(job, owner, effective_slot)`` appended to the job's history
(:mod:`bridge.core.authority`): from ``effective_slot`` on, ``owner`` runs the job and the other
path stands down. The planning here is pure (values in, a :class:`FlipPlan` or a
:class:`Refusal` out); :func:`apply_flips` is the thin write, many jobs in the caller's single
transaction, and :func:`export_authority` refreshes the on-disk authority files afterwards.

The boundary slot
    Without ``at``: the first slot of the job's schedule strictly after ``now + margin``
    (``margin`` = ``settings.authority_safety_margin``, 120 s by default). Every slot at or
    before ``now + margin`` may already be dispatched, claimed or running on either path, so a
    flip never takes one of those: the answer to "who owns slot S?" never changes for a slot
    a process may already have asked about. Slots are UTC instants, so DST days need no
    special case: the evaluator of the job's own dialect yields the real next firing.
    With ``at``: it must be a slot of the schedule and lie strictly after ``now + margin``.

Refusals (none of them are overridable unless said so)
    * ``unmapped``: flipping an unmapped job (no handler Celery can run) to Celery; never,
      even forced. Flipping it (back) to legacy is always allowed.
    * ``already-owned``: the target already owns the boundary slot (a flip already pending
      counts).
    * ``not-a-slot`` / ``too-soon`` / ``no-slot``: a bad ``at``, or a schedule with no slot left.
    * ``mismatch``: an unresolved shadow mismatch where both paths were seen and disagree
      (``outcome_mismatch``, ``late``, ``duplicate``, ``unexpected_slot``) lies in the
      readiness window (to Celery only); explain it with a ``compare.ignore`` rule or fix it:
      ``force`` does not skip it. A *missing* side is lack of evidence: not ready; so is a
      ``lost`` run (its outcome is unknown).
    * ``not-ready``: the readiness check failed (to Celery only); ``force`` with a ``reason``
      overrides it and the flip is recorded ``forced``.
    * ``grouped``: a job consolidated into a fleet group, selected without its group; the
      group's flip carries its members' (:func:`member_plan`), at the group's boundary.
    A flip to legacy (the rollback) is never refused for readiness or mismatches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.dispatch import slot_iso
from bridge.core.reconcile import REPAIRABLE, Window, reconcile
from bridge.core.schedules import compile_schedule
from bridge.core.spec import JobSpec
from bridge.services.authority_files import export
from bridge.services.reconcile import window_facts
from bridge.store.audit import AuditRepo
from bridge.store.db import Session
from bridge.store.repos import AuthorityRepo

log = logging.getLogger(__name__)


class RefusalKind(StrEnum):
    UNMAPPED = "unmapped"
    ALREADY_OWNED = "already-owned"
    NOT_A_SLOT = "not-a-slot"
    TOO_SOON = "too-soon"
    NO_SLOT = "no-slot"
    MISMATCH = "mismatch"
    NOT_READY = "not-ready"
    NO_REASON = "no-reason"
    GROUPED = "grouped"  # a fleet group's member: its group is flipped, never it alone


class ReadinessLike(Protocol):
    """What planning needs of :class:`shadow.readiness.Readiness` (kept structural so the core
    does not depend on the shadow package)."""

    @property
    def ready(self) -> bool: ...

    @property
    def reasons(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Refusal:
    job_id: str
    kind: RefusalKind
    message: str

    def __str__(self) -> str:
        return f"{self.job_id}: refused ({self.kind.value}): {self.message}"


@dataclass(frozen=True)
class FlipPlan:
    """One job's flip: from ``boundary`` on, ``to`` owns the job's slots."""

    job_id: str
    to: Owner
    previous: Owner  # the owner of the boundary slot before the flip
    boundary: datetime  # UTC
    timezone: str
    forced: bool
    reason: str | None
    waived: tuple[str, ...] = ()  # readiness reasons a forced flip overrode

    @property
    def other(self) -> Owner:
        return Owner.LEGACY if self.to is Owner.CELERY else Owner.CELERY

    def local_boundary(self) -> datetime:
        return self.boundary.astimezone(ZoneInfo(self.timezone))

    def effects(self) -> str:
        """What each path will do at the boundary, in one line."""
        at = self.boundary.isoformat()
        return f"{self.other.value}: stands down from {at}; {self.to.value}: runs {at} " \
               "authoritatively"

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "to": self.to.value,
            "from": self.previous.value,
            "boundary": self.local_boundary().isoformat(),
            "boundary_utc": self.boundary.isoformat(),
            "timezone": self.timezone,
            "forced": self.forced,
            "reason": self.reason,
            "waived": list(self.waived),
            "effects": self.effects(),
        }


# --- pure planning -------------------------------------------------------------------------------


def boundary_slot(spec: JobSpec, now: datetime, margin: timedelta) -> datetime | None:
    """The first slot strictly after ``now + margin`` (None when the schedule has ended)."""
    return compile_schedule(spec.schedule).next_after(now + margin)


def _checked_at(spec: JobSpec, at: datetime, now: datetime,
                margin: timedelta) -> datetime | Refusal:
    evaluator = compile_schedule(spec.schedule)
    if evaluator.prev_at_or_before(at) != at:
        following = evaluator.next_after(at)
        hint = f" (next slot after it: {following.isoformat()})" if following else ""
        return Refusal(spec.id, RefusalKind.NOT_A_SLOT,
                       f"{at.isoformat()} is not a slot of the job's schedule{hint}")
    if at <= now + margin:
        return Refusal(spec.id, RefusalKind.TOO_SOON,
                       f"{at.isoformat()} is not after now + the {int(margin.total_seconds())} s "
                       "safety margin: it may already be running on either path")
    return at


def _boundary(spec: JobSpec, now: datetime, margin: timedelta,
              at: datetime | None) -> datetime | Refusal:
    if at is not None:
        return _checked_at(spec, at, now, margin)
    slot = boundary_slot(spec, now, margin)
    if slot is None:
        return Refusal(spec.id, RefusalKind.NO_SLOT, "the schedule has no slot left")
    return slot


def _gate(spec: JobSpec, readiness: ReadinessLike, mismatches: Sequence[datetime],
          force: bool, reason: str | None) -> Refusal | tuple[str, ...]:
    """Checks of a flip to Celery; the readiness reasons a forced flip waives."""
    if not spec.mapped:
        return Refusal(spec.id, RefusalKind.UNMAPPED,
                       "unmapped job: Celery has no handler to run, it never owns it "
                       "(not even forced)")
    if mismatches:
        newest = max(mismatches).isoformat()
        return Refusal(spec.id, RefusalKind.MISMATCH,
                       f"{len(mismatches)} unresolved mismatch(es) in the readiness window "
                       f"(newest at {newest}); resolve or explain them with compare.ignore")
    if readiness.ready:
        return ()
    if not force:
        return Refusal(spec.id, RefusalKind.NOT_READY,
                       "not ready: " + "; ".join(readiness.reasons)
                       + " (use --force --reason TEXT to override)")
    return tuple(readiness.reasons)


def plan_flip(
    spec: JobSpec,
    history: Sequence[AuthorityEvent],
    readiness: ReadinessLike,
    to: Owner,
    now: datetime,
    margin: timedelta,
    at: datetime | None = None,
    force: bool = False,
    reason: str | None = None,
    mismatches: Sequence[datetime] = (),
) -> FlipPlan | Refusal:
    """Plan one job's flip to ``to`` (see the module docstring for the rules)."""
    if force and not (reason and reason.strip()):
        return Refusal(spec.id, RefusalKind.NO_REASON, "a forced flip needs --reason TEXT")
    boundary = _boundary(spec, now, margin, at)
    if isinstance(boundary, Refusal):
        return boundary
    previous = owner_at(history, boundary)
    if previous is to:
        return Refusal(spec.id, RefusalKind.ALREADY_OWNED,
                       f"{to.value} already owns the job at {boundary.isoformat()}")
    waived: tuple[str, ...] = ()
    if to is Owner.CELERY:
        gate = _gate(spec, readiness, mismatches, force, reason)
        if isinstance(gate, Refusal):
            return gate
        waived = gate
    return FlipPlan(spec.id, to, previous, boundary, spec.schedule.timezone,
                    forced=force, reason=reason, waived=waived)


def member_plan(group: FlipPlan, member_id: str,
                history: Sequence[AuthorityEvent]) -> FlipPlan:
    """A fleet group member's flip, carried by its group's: the same owner and boundary (the
    member has the group's schedule), so every host's line moves at the group's slot."""
    reason = f"with group {group.job_id}" + (f": {group.reason}" if group.reason else "")
    return replace(group, job_id=member_id, previous=owner_at(history, group.boundary),
                   reason=reason)


# --- the thin service ----------------------------------------------------------------------------


def apply_flips(session: Session, plans: Sequence[FlipPlan], actor: str) -> None:
    """Append one authority event and one audit record per plan, in the caller's transaction
    (commit once for all jobs: all or nothing)."""
    authority, audit = AuthorityRepo(session), AuditRepo(session)
    for plan in plans:
        authority.append(plan.job_id, plan.to, effective_slot=plan.boundary, actor=actor,
                         reason=plan.reason, forced=plan.forced)
        audit.append(
            "flip.forced" if plan.forced else "flip",
            actor=actor,
            job_id=plan.job_id,
            reason=plan.reason,
            before={"owner": plan.previous.value},
            after={"owner": plan.to.value, "effective_slot": plan.boundary.isoformat(),
                   "forced": plan.forced, "waived": list(plan.waived)},
        )
    session.flush()


def export_authority(registry: Any, directory: str | None) -> str | None:
    """Refresh the authority files (shim cache, Quartz plugin) after a flip; a problem is
    returned as a warning, never raised: the registry already holds the flip, and the shim
    asks the registry first."""
    if not directory:
        return None
    try:
        export(registry, directory)
    except Exception as e:  # the flip is committed; the files catch up on the next export
        log.warning("could not export authority files to %s: %s", directory, e)
        return f"authority files in {directory} not refreshed: {e} " \
               "(run `bridge authority export`)"
    return None


# --- before retiring a legacy line ----------------------------------------------------------------

UNFINISHED = "unfinished slot"  # how a retire refusal for an unfinished slot begins


def unfinished_slots(session: Session, job_id: str, since: datetime, now: datetime, *,
                     grace: timedelta, tolerance: timedelta) -> list[tuple[datetime, str]]:
    """The job's slots in ``(since, now]`` that are not finished: a claim still ``running``
    (a run under way, or a dead holder's), or a ``missed`` / ``stuck`` reconcile finding not
    yet repaired or declined. ``(slot, what)`` in slot order; empty when every slot is done."""
    inputs = window_facts(session, Window(since, now), job_id=job_id)
    found: dict[datetime, str] = {}
    for f in reconcile(inputs.jobs, inputs.histories, inputs.runs, inputs.claims,
                       Window(since, now), now, grace, tolerance,
                       repaired=inputs.repaired.keys()):
        if f.kind in REPAIRABLE:
            found[f.slot] = f"{f.kind.value}: {f.detail}"
    for c in inputs.claims:
        if c.state == "running" and c.slot not in found:
            found[c.slot] = f"claim running (holder {c.holder}, lease until " \
                            f"{slot_iso(c.expires_at)})"
    return sorted(found.items())


def unfinished_reason(unfinished: Sequence[tuple[datetime, str]]) -> str:
    """One line: how many slots are unfinished, and the oldest one with what is wrong."""
    slot, what = unfinished[0]
    more = f" (and {len(unfinished) - 1} more)" if len(unfinished) > 1 else ""
    return (f"{UNFINISHED} {slot_iso(slot)}{more}: {what}; wait for it, or repair/decline "
            "it (bridge reconcile --repair) before retiring")
