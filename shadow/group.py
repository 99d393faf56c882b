"""Shadow comparison of a consolidation group: N host-bound legacy lines vs one Celery job (pure).

A group job (:mod:`bridge.services.fleet`) stands for the same crontab line on N hosts. While
legacy owns it, each host's cron runs its own line (recorded under the member's job id) and
Celery runs the group job once per slot (recorded under the group's id). The comparator judges
one legacy side against one Celery side, so the members' records are folded first:

* per slot, the records of **one** member speak for the legacy side: the first member (in host
  order) that executed the slot, else the first that has any record of it. Several hosts
  executing the same slot is what the group replaces, not a duplicate;
* every verdict's detail then says which host(s) executed the slot, and which member hosts
  have no record of it at all (``legacy ran on 2 of 3 host(s): web-01, web-02; no record
  from web-03``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from bridge.core.runs import RunRecord
from shadow.verdicts import SlotVerdict


def fold_members(
    records: Iterable[RunRecord], hosts: Mapping[str, str | None]
) -> tuple[list[RunRecord], dict[datetime, tuple[str, ...]], dict[datetime, tuple[str, ...]]]:
    """The members' legacy records -> (one member's records per slot, the hosts that executed
    each slot, the hosts with any record of each slot). ``hosts``: member id -> its host, in
    host order (a member without a host is named by its id)."""
    order = {member: i for i, member in enumerate(hosts)}
    by_slot: dict[datetime, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.job_id in order:
            by_slot[r.slot][r.job_id].append(r)
    kept: list[RunRecord] = []
    executed: dict[datetime, tuple[str, ...]] = {}
    seen: dict[datetime, tuple[str, ...]] = {}
    for slot in sorted(by_slot):
        members = sorted(by_slot[slot], key=order.__getitem__)
        ran = [m for m in members if any(r.executed for r in by_slot[slot][m])]
        kept.extend(by_slot[slot][(ran or members)[0]])
        executed[slot] = tuple(hosts[m] or m for m in ran)
        seen[slot] = tuple(hosts[m] or m for m in members)
    return kept, executed, seen


def annotate(verdicts: Sequence[SlotVerdict], hosts: Mapping[str, str | None],
             executed: Mapping[datetime, tuple[str, ...]],
             seen: Mapping[datetime, tuple[str, ...]]) -> list[SlotVerdict]:
    """Each verdict's detail, prefixed with the legacy hosts that ran its slot."""
    every = [h or m for m, h in hosts.items()]
    out = []
    for v in verdicts:
        note = host_note(every, executed.get(v.slot, ()), seen.get(v.slot, ()))
        out.append(replace(v, detail=f"{note}; {v.detail}" if v.detail else note))
    return out


def host_note(every: Sequence[str], executed: Sequence[str], seen: Sequence[str]) -> str:
    """``legacy ran on 2 of 3 host(s): a, b; no record from c``."""
    text = f"legacy ran on {len(executed)} of {len(every)} host(s)"
    if executed:
        text += ": " + ", ".join(executed)
    silent = [h for h in every if h not in seen]
    if silent:
        text += "; no record from " + ", ".join(silent)
    return text
