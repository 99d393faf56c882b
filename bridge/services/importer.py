"""The import service: parse results -> plan -> (apply in one SQL transaction -> RedBeat sync).

A failed import changes nothing: the plan is applied only when it has no errors (or with
``allow_errors``, the error lines are left out and listed), inside one transaction; Redis is
synced only after the commit. The commit carries a ``sync_pending`` mark
(:mod:`bridge.services.sync`)
that only a completed sync removes, so a sync that fails or is killed leaves the import
resumable and visible: ``bridge sync --check`` reports it, ``bridge sync`` completes it.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bridge.adapters.redbeat_entries import SyncReport
from bridge.core.collector import paused_collector
from bridge.core.config import Settings
from bridge.core.errors import BridgeError
from bridge.core.hosts import host_problem
from bridge.core.spec import SourceKind
from bridge.store.audit import AuditRepo
from bridge.store.db import Registry, Session
from bridge.store.hosts import ids_by_source
from bridge.store.repos import AuthorityRepo, JobRepo
from crontab_import.inventory import bare_sources, qualify_results
from crontab_import.model import ParseResult
from crontab_import.plan import Ownership, Plan, PlanEntry, PlanStatus, make_plan


def this_host() -> str:
    """The importing machine: part of every imported job's owning source."""
    return socket.gethostname()


@dataclass(frozen=True)
class ImportOutcome:
    plan: Plan
    applied: ApplyResult | None
    sync: SyncReport | None
    sync_error: str | None = None


CRONTAB_KINDS = frozenset({SourceKind.USER_CRONTAB, SourceKind.SYSTEM_CRONTAB, SourceKind.CRON_D})


def _on_this_host(result: ParseResult, host: str) -> ParseResult:
    """A crontab file read on this machine: its jobs belong to this host (ids unchanged)."""
    if result.host is not None or host_problem(host) is not None:
        return result
    items = []
    for item in result.items:
        if item.source.kind not in CRONTAB_KINDS:
            items.append(item)
            continue
        job = item.job
        if job is not None:
            job = job.with_(source=replace(job.source, host=host))
        items.append(replace(item, source=replace(item.source, host=host), job=job))
    return replace(result, items=tuple(items))


def plan_import(
    registry: Registry,
    results: Sequence[ParseResult],
    *,
    prune: bool,
    include_inactive: bool,
    adopt: bool = False,
    host: str | None = None,
    fleet_hosts: Collection[str] | None = None,
) -> Plan:
    """``fleet_hosts``: an inventory import of these hosts (their files' results carry their
    host): ids are qualified with the host (:func:`crontab_import.inventory.qualify_results`),
    and a file the registry has for one of these hosts but the inventory lacks is pruned."""
    importer = host or this_host()
    results = [_on_this_host(r, importer) for r in results]
    by_source: dict[tuple[str, str], set[str]] = {}
    with registry.session() as s:
        repo = JobRepo(s)
        if fleet_hosts is not None:
            by_source = ids_by_source(s, fleet_hosts)
            results = list(qualify_results(results, bare_sources(by_source)))
        owners = repo.owners()
        # a stored job whose spec equals the parsed one is not decoded again (re-imports)
        parsed = [i.job for r in results for i in r.items if i.job is not None]
        known = [job for job in parsed if job.id in owners]
        existing = {j.id: j for j in repo.list(known=known)}
        by_file: dict[str | tuple[str, str], Iterable[str]] = {
            r.source_key: by_source.get((r.host, r.file), set())
            if r.host is not None
            else repo.ids_from_source(r.file)
            for r in results
        }
    read = {r.source_key for r in results}
    vanished = {key: ids for key, ids in by_source.items() if key not in read}
    return make_plan(
        results,
        existing,
        by_file,
        prune=prune,
        include_inactive=include_inactive,
        ownership=Ownership(owners, importer, adopt),
        vanished=vanished,
    )


def run_import(
    registry: Registry,
    settings: Settings,
    results: Sequence[ParseResult],
    *,
    actor: str,
    dry_run: bool = False,
    prune: bool = True,
    include_inactive: bool = False,
    allow_errors: bool = False,
    sync: bool = True,
    now: datetime | None = None,
    adopt: bool = False,
    fleet_hosts: Collection[str] | None = None,
) -> ImportOutcome:
    """``adopt``: take over job ids another source owns (audited as ``import.adopt``);
    without it such an id is an error at its line and nothing is imported."""
    with paused_collector():  # see bridge.core.collector
        return _run_import(
            registry, settings, results, actor=actor, dry_run=dry_run, prune=prune,
            include_inactive=include_inactive, allow_errors=allow_errors, sync=sync, now=now,
            adopt=adopt, fleet_hosts=fleet_hosts,
        )  # fmt: skip


def _run_import(
    registry: Registry,
    settings: Settings,
    results: Sequence[ParseResult],
    *,
    actor: str,
    dry_run: bool,
    prune: bool,
    include_inactive: bool,
    allow_errors: bool,
    sync: bool,
    now: datetime | None,
    adopt: bool,
    fleet_hosts: Collection[str] | None,
) -> ImportOutcome:
    now = now or datetime.now(UTC)
    plan = plan_import(
        registry,
        results,
        prune=prune,
        include_inactive=include_inactive,
        adopt=adopt,
        fleet_hosts=fleet_hosts,
    )
    if dry_run or (plan.has_errors and not allow_errors):
        return ImportOutcome(plan, None, None)
    if sync:
        from bridge.services.sync import check_prefix

        check_prefix(registry, settings)  # another registry's prefix: refuse, change nothing
    with registry.session() as s:
        applied = apply_plan(plan, s, actor=actor)
        if sync and plan.changes:
            from bridge.services.sync import mark_pending

            mark_pending(
                s,
                {
                    "marked_at": datetime.now(UTC).isoformat(),
                    "actor": actor,
                    "files": list(plan.files),
                    "changes": len(plan.changes),
                },
            )
    report, sync_error = None, None
    if sync:
        from bridge.services.sync import sync_registry

        try:
            # every spec of the plan that is stored is equal to its row: none is decoded again
            held = [e.job for e in plan.entries if e.job is not None]
            report = sync_registry(registry, settings, now=now, known=held)
        except BridgeError as e:
            sync_error = str(e)
    return ImportOutcome(plan, applied, report, sync_error)


@dataclass(frozen=True)
class ApplyResult:
    created: int
    updated: int
    deleted: int


def apply_plan(plan: Plan, session: Session, *, actor: str) -> ApplyResult:
    """Write the plan's changes in ``session`` (the caller commits: all or nothing), in bulk."""
    jobs, audit = JobRepo(session), AuditRepo(session)
    writes = [e for e in plan.changes if e.status is not PlanStatus.DELETE]
    deletes = [e for e in plan.changes if e.status is PlanStatus.DELETE]
    host = next((e.owner.host for e in writes if e.owner is not None), None)
    jobs.write_many([e.job for e in writes if e.job is not None], host=host)
    jobs.delete_many([e.id for e in deletes if e.id is not None])
    created = [e.id for e in writes if e.status is PlanStatus.CREATE and e.id is not None]
    AuthorityRepo(session).start_legacy(
        created,
        actor=actor,
        reason="imported: the legacy scheduler owns every slot",
        hosts={e.id: e.host for e in writes if e.id is not None},
    )
    audit.append_many((_audit(e) for e in plan.changes), actor=actor)
    return ApplyResult(len(created), len(writes) - len(created), len(deletes))


def _audit(entry: PlanEntry) -> dict[str, object]:
    before: dict[str, Any] | None = (
        {"spec_hash": entry.previous.spec_hash} if entry.previous else None
    )
    after: dict[str, Any] | None = (
        None
        if entry.job is None or entry.status is PlanStatus.DELETE
        else {"spec_hash": entry.job.spec_hash(), "changed": list(entry.changed)}
    )
    action = f"import.{entry.status.value}"
    if entry.adopted_from is not None:
        action = "import.adopt"
        before = {**(before or {}), "owner": entry.adopted_from.to_json()}
        if after is not None and entry.owner is not None:
            after["owner"] = entry.owner.to_json()
    return {
        "action": action,
        "job_id": entry.id,
        "job_host": entry.host,
        "before": before,
        "after": after,
        "reason": (
            f"adopted from {entry.adopted_from.file}"
            if entry.adopted_from is not None
            else entry.reason if entry.status is PlanStatus.DELETE else None
        ),
    }
