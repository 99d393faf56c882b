"""Consolidation: the same crontab line on many hosts, replaced by one Celery job that runs once
per slot anywhere.

Groups (pure, :func:`find_groups`)
    Host-bound jobs whose lines are identical: same schedule (dialect, expression, zone), same
    command, stdin, user, shell and environment, on two hosts or more. Such a line was either
    deliberately run everywhere but guarded (a lock, an "am I the primary?" test), or is truly
    global; either way one run per slot anywhere can replace the N host-bound ones. A group's
    id is ``fleet.<the line's id on its hosts>`` (``fleet.etc-cron.d-backup-1``), with a short
    digest of the line appended when two groups would share it.

Consolidating a group (:func:`consolidate`, ``bridge fleet consolidate GROUP``)
    * a **group job** is registered under the group id: the line's schedule, handler and
      policies with ``placement=anywhere`` and no host (any worker runs it); it starts owned by
      legacy, so Celery only observes it (its shadow mode) until the group is flipped;
    * the members are recorded in ``fleet_members`` (migration 0006): RedBeat drops their
      entries (Celery runs the group job only); their legacy lines keep running on their hosts
      through the shim, recorded under their own ids;
    * shadow compares the group: the N legacy runs of a slot against its one Celery run, and
      says which host(s) ran it (:mod:`shadow.group`);
    * ``bridge authority flip GROUP --to celery`` moves the group **and every member** at one
      boundary slot (one transaction): from that slot each host's shim stands down and the
      group job runs once; ``--to legacy`` restores all N lines at one boundary. A member alone
      cannot be flipped (the flip names its group).
    Refused: a member already in a group, a group whose members do not all belong to legacy now
    and at every future slot (flip them back first), a group id taken by another job.

Splitting a group (:func:`split`, ``bridge fleet split GROUP``) undoes it while legacy owns
the group: the group job is deleted and the members get their RedBeat entries back.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.errors import NotFoundError, RefusedError
from bridge.core.hosts import SEPARATOR
from bridge.core.placement import host_bound
from bridge.core.spec import (
    CommandHandler,
    JobSpec,
    Placement,
    SourceKind,
    SourceLocation,
    describe_schedule,
)
from bridge.store.audit import AuditRepo
from bridge.store.db import Session
from bridge.store.fleet import FleetRepo
from bridge.store.repos import AuthorityRepo, JobRepo

GROUP_PREFIX = "fleet."
GROUP_TAG = "fleet-group"


@dataclass(frozen=True)
class LineGroup:
    """Identical host-bound lines on several hosts (members in host order)."""

    id: str
    key: str  # digest of the line (schedule + handler)
    members: tuple[tuple[str, str], ...]  # (job id, host)
    schedule: str
    timezone: str
    command: str
    user: str | None
    consolidated: bool = False

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(host for _, host in self.members)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.id, "hosts": list(self.hosts), "host_count": len(self.members),
            "members": [m for m, _ in self.members], "schedule": self.schedule,
            "timezone": self.timezone, "command": self.command, "user": self.user,
            "consolidated": self.consolidated,
        }


def line_key(spec: JobSpec) -> str:
    """What makes two lines identical: schedule and handler (command, stdin, user, shell, env)."""
    doc = spec.to_json()
    text = json.dumps({"schedule": doc["schedule"], "handler": doc["handler"]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def local_id(spec: JobSpec) -> str:
    """The job's id on its host (without the ``<host>.`` of an inventory id)."""
    prefix = f"{spec.host}{SEPARATOR}" if spec.host else ""
    return spec.id[len(prefix):] if prefix and spec.id.startswith(prefix) else spec.id


def find_groups(specs: Iterable[JobSpec], *, min_hosts: int = 2,
                grouped: Iterable[str] = ()) -> list[LineGroup]:
    """Identical command lines bound to ``min_hosts`` hosts or more (pure). ``grouped``: ids of
    jobs already consolidated (their groups are marked ``consolidated``)."""
    done = set(grouped)
    lines: dict[str, list[JobSpec]] = defaultdict(list)
    for spec in specs:
        if host_bound(spec) and isinstance(spec.handler, CommandHandler):
            lines[line_key(spec)].append(spec)
    groups: list[LineGroup] = []
    names: dict[str, int] = defaultdict(int)
    found = []
    for key, specs in lines.items():
        specs.sort(key=lambda s: (s.host or "", s.id))
        if len({s.host for s in specs}) >= min_hosts:
            found.append((key, specs))
            names[local_id(specs[0])] += 1
    for key, specs in sorted(found, key=lambda kv: (local_id(kv[1][0]), kv[0])):
        name = local_id(specs[0])
        group_id = GROUP_PREFIX + (name if names[name] == 1 else f"{name}-{key[:6]}")
        handler = specs[0].handler
        assert isinstance(handler, CommandHandler)
        groups.append(LineGroup(
            id=group_id, key=key, members=tuple((s.id, s.host or "") for s in specs),
            schedule=describe_schedule(specs[0].schedule), timezone=specs[0].schedule.timezone,
            command=handler.command, user=handler.user,
            consolidated=any(s.id in done for s in specs)))
    return groups


def group_spec(group: LineGroup, first: JobSpec) -> JobSpec:
    """The group job: ``first``'s line, placed anywhere, bound to no host."""
    return first.with_(
        id=group.id,
        source=SourceLocation(file=f"fleet:{group.id}", line=None, raw=first.source.raw,
                              kind=SourceKind.MANUAL),
        policies=replace(first.policies, placement=Placement.ANYWHERE),
        description=first.description or f"{group.command} (on {len(group.members)} hosts)",
        tags=tuple(dict.fromkeys([*first.tags, GROUP_TAG])),
    )


def _legacy_throughout(history: Sequence[AuthorityEvent], now: datetime) -> bool:
    """Legacy owns the job now and at every later slot a flip takes effect at."""
    later = [e.effective_slot for e in history
             if e.effective_slot is not None and e.effective_slot > now]
    return all(owner_at(history, t) is Owner.LEGACY for t in [now, *later])


def current_groups(session: Session, min_hosts: int = 2) -> list[LineGroup]:
    grouped = FleetRepo(session).group_of()
    return find_groups([j.spec for j in JobRepo(session).list()], min_hosts=min_hosts,
                       grouped=grouped)


def plan_groups(specs: Iterable[JobSpec]) -> list[LineGroup]:
    """The groups an import plan's jobs form (``runs on N hosts``; pure)."""
    return find_groups(specs)


def consolidate(session: Session, group_id: str, now: datetime, actor: str,
                reason: str | None) -> tuple[LineGroup, JobSpec]:
    """Register the group job and its members (see the module doc); in the caller's
    transaction. Raises NotFoundError / RefusedError."""
    groups = {g.id: g for g in current_groups(session)}
    group = groups.get(group_id)
    if group is None:
        raise NotFoundError(f"no group '{group_id}' (see `bridge fleet groups`)")
    fleet, jobs = FleetRepo(session), JobRepo(session)
    already = fleet.group_of()
    taken = [m for m, _ in group.members if m in already]
    if taken:
        raise RefusedError(f"{taken[0]} is already consolidated into {already[taken[0]]}")
    if jobs.get(group.id) is not None:
        raise RefusedError(f"job id '{group.id}' is taken by another job")
    histories = AuthorityRepo(session).histories([m for m, _ in group.members])
    flipped = [m for m, _ in group.members if not _legacy_throughout(histories.get(m, []), now)]
    if flipped:
        raise RefusedError(f"{flipped[0]} is not owned by legacy now and at every later slot: "
                           "flip it back to legacy before consolidating its line")
    first = jobs.require(group.members[0][0]).spec
    spec = group_spec(group, first)
    jobs.upsert(spec)
    fleet.add(group.id, group.members, actor)
    AuditRepo(session).append("fleet.consolidate", actor=actor, job_id=group.id, reason=reason,
                              after={"members": [m for m, _ in group.members],
                                     "hosts": list(group.hosts)})
    return replace(group, consolidated=True), spec


def split(session: Session, group_id: str, now: datetime, actor: str,
          reason: str | None) -> list[str]:
    """Undo a consolidation while legacy owns the group; the members, in host order."""
    members = FleetRepo(session).members(group_id).get(group_id)
    if not members:
        raise NotFoundError(f"'{group_id}' is not a consolidated group")
    history = AuthorityRepo(session).history(group_id)
    if not _legacy_throughout(history, now):
        raise RefusedError(f"{group_id} is not owned by legacy now and at every later slot: "
                           f"flip it back first (bridge authority flip {group_id} --to legacy)")
    FleetRepo(session).remove(group_id)
    JobRepo(session).delete(group_id)
    ids = [m for m, _ in members]
    AuditRepo(session).append("fleet.split", actor=actor, job_id=group_id, reason=reason,
                              before={"members": ids})
    return ids
