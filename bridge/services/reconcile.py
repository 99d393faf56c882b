"""Reconciliation as a service: read the facts, judge them, re-send what is repairable.

The judging is pure (:mod:`bridge.core.reconcile`, where the finding kinds are described);
this module puts it to work: :func:`window_facts` reads the window's facts from the registry
(:mod:`bridge.store.reconcile_facts`) and asks the process table whether each running claim's
holder is gone (:mod:`bridge.adapters.processes`); :func:`reconcile_window` judges them;
:func:`repair` re-sends ``missed`` and ``stuck`` slots through the claim.

Repairs: each repairable finding is re-sent as ``bridge.run_job(job_id, slot)`` to the job's
queue; the task claims ``(job, slot)`` first, so a slot that actually ran is never run again.
Every repair is appended to the audit log first (action ``repair``,
``after = {"slot", "kind", "task_id"}``): a crash after sending still shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bridge.adapters.processes import holder_gone
from bridge.core.dispatch import slot_iso
from bridge.core.reconcile import (
    Finding,
    ReconcileInputs,
    RepairRecord,
    Window,
    plan_repairs,
    reconcile,
)
from bridge.store.audit import AuditRepo
from bridge.store.db import Registry, Session
from bridge.store.reconcile_facts import REPAIR_ACTION, load_facts, repairs_since

TASK_NAME = "bridge.run_job"


def window_facts(session: Session, window: Window, *, job_id: str | None = None) -> ReconcileInputs:
    """The window's facts, each running claim marked when its holder process is known gone."""
    facts = load_facts(session, window, job_id=job_id)
    claims = [replace(c, holder_gone=True) if c.state == "running" and holder_gone(c.holder)
              else c for c in facts.claims]
    return replace(facts, claims=claims)


def reconcile_window(
    registry: Registry,
    window: Window,
    now: datetime,
    *,
    grace: timedelta,
    tolerance: timedelta,
    job_id: str | None = None,
) -> tuple[list[Finding], ReconcileInputs]:
    """Read the registry and reconcile the window."""
    with registry.session() as s:
        inputs = window_facts(s, window, job_id=job_id)
    findings = reconcile(inputs.jobs, inputs.histories, inputs.runs, inputs.claims, window, now,
                         grace, tolerance, repaired=inputs.repaired.keys())
    return findings, inputs


def repairs_made(
    registry: Registry, since: datetime, job_ids: Collection[str] | None = None
) -> list[RepairRecord]:
    """Every repair recorded since ``since`` (the health task's and operators'), oldest first."""
    with registry.session() as s:
        return repairs_since(s, since, job_ids)


@dataclass(frozen=True)
class Repair:
    finding: Finding
    queue: str
    task_id: str | None  # None: not sent (dry run, or a recent repair is still pending)
    note: str

    def to_json(self) -> dict[str, Any]:
        return {**self.finding.to_json(), "queue": self.queue, "task_id": self.task_id,
                "note": self.note}


def repair(
    app: Any,
    registry: Registry,
    findings: Sequence[Finding],
    inputs: ReconcileInputs,
    now: datetime,
    *,
    actor: str,
    dry_run: bool,
    cooldown: timedelta = timedelta(minutes=10),
    honour_policy: bool = False,
) -> list[Repair]:
    """Re-send missed and stuck slots through the claim; audit each one (see the module doc).
    ``honour_policy``: the periodic health task leaves ``alert-only`` jobs alone;
    ``bridge reconcile --repair`` is an operator's explicit act and repairs every job."""
    out: list[Repair] = []
    plan = plan_repairs(findings, inputs, now, cooldown, honour_policy=honour_policy)
    for finding, queue, blocked in plan:
        if blocked is not None or dry_run:
            out.append(Repair(finding, queue, None, blocked or "dry run: would re-send"))
            continue
        task_id = str(uuid.uuid4())
        with registry.session() as s:  # audit first: a crash after sending still shows the repair
            AuditRepo(s).append(REPAIR_ACTION, actor=actor, job_id=finding.job_id,
                                reason=f"{finding.kind.value}: {finding.detail}",
                                after={"slot": slot_iso(finding.slot),
                                       "kind": finding.kind.value, "task_id": task_id})
        app.send_task(TASK_NAME, args=[finding.job_id, slot_iso(finding.slot)], queue=queue,
                      task_id=task_id)
        out.append(Repair(finding, queue, task_id, "re-sent through the claim"))
    return out
