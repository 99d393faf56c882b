"""``bridge import crontab --inventory DIR``: one plan for a whole fleet, grouped by host.

Thin: read the tree (:mod:`crontab_import.inventory_fs`), parse each host's files in its
family's dialect and zone (:mod:`crontab_import.inventory`), plan and apply through the same
import service as a single host (:func:`bridge.services.importer.run_import` with
``fleet_hosts``), render a per-host summary and the jobs (text) or one JSON document.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from bridge.cli.context import STATE, emit_json, err, out
from bridge.core.audit import current_actor
from bridge.core.errors import InputError
from bridge.core.spec import describe_schedule
from bridge.services.importer import ImportOutcome, run_import
from crontab_import import inventory as inv
from crontab_import.inventory_fs import read_inventory
from crontab_import.model import ParseResult
from crontab_import.plan import PlanEntry, PlanStatus

INVENTORY_MAX_LINES = 2_000_000  # totals over the whole inventory (--max-lines)
INVENTORY_MAX_BYTES = 256 * 1024 * 1024  # (--max-bytes)

STATUS_COLUMNS = ("create", "update", "unchanged", "delete", "disabled", "inactive",
                  "unsupported", "error")


def fleet_results(inventory: inv.Inventory) -> list[ParseResult]:
    """Every readable host's parse results, plus one error-only result per host that could not
    be read (so the plan lists its errors; such a host is neither planned nor pruned)."""
    results: list[ParseResult] = []
    for reading in inventory.hosts:
        results += inv.host_results(reading)
        if reading.errors:
            first = reading.errors[0]
            results.append(ParseResult(first.file, errors=reading.errors, host=reading.host))
    return results


def check_job_count(results: list[ParseResult], max_jobs: int, where: str) -> None:
    jobs = sum(1 for r in results for i in r.items if i.id is not None)
    if jobs > max_jobs:
        raise InputError(
            f"{where}: {jobs} job lines, more than --max-jobs {max_jobs}: refused before planning",
            hint="raise --max-jobs if this is intended",
        )


def read_fleet(
    root: str,
    *,
    hosts: list[str] | None,
    timezone: str | None,
    check_owner: bool,
    max_lines: int | None,
    max_bytes: int | None,
    max_jobs: int,
) -> tuple[inv.Inventory, list[ParseResult]]:
    """The inventory under ``root`` and every host's parse results, within the limits."""
    inventory = read_inventory(
        root,
        check_owner=check_owner,
        max_bytes=max_bytes or INVENTORY_MAX_BYTES,
        max_lines=max_lines or INVENTORY_MAX_LINES,
        default_zone=timezone,
        only=frozenset(hosts) if hosts else None,
    )
    results = fleet_results(inventory)
    check_job_count(results, max_jobs, root)
    return inventory, results


def finish_fleet(
    inventory: inv.Inventory,
    results: list[ParseResult],
    *,
    dry_run: bool,
    prune: bool,
    include_inactive: bool,
    allow_errors: bool,
    adopt: bool,
    as_json: bool,
) -> None:
    """Plan (and unless ``dry_run`` apply and sync) the fleet's results; render; exit code."""
    outcome = run_import(
        STATE.registry(),
        STATE.settings,
        results,
        actor=STATE.actor or current_actor(),
        dry_run=dry_run,
        prune=prune,
        include_inactive=include_inactive,
        allow_errors=allow_errors,
        adopt=adopt,
        fleet_hosts=inventory.readable_hosts,
    )
    if as_json:
        emit_json(fleet_json(outcome, inventory, dry_run))
    else:
        render_fleet(outcome, inventory, dry_run)
    if outcome.plan.has_errors:
        if not as_json and not allow_errors:
            err.print("nothing was imported: fix the errors above, or pass --allow-errors",
                      markup=False, highlight=False)
        raise typer.Exit(1 if allow_errors else 2)
    if outcome.sync_error:
        raise typer.Exit(3)


def _host_rows(outcome: ImportOutcome, inventory: inv.Inventory) -> list[dict[str, Any]]:
    groups = outcome.plan.by_host()
    rows = []
    for reading in inventory.hosts:
        facts = reading.facts
        entries = groups.get(reading.host, [])
        rows.append({
            "host": reading.host,
            "readable": facts is not None,
            "family": facts.family.value if facts else None,
            "dialect": facts.family.dialect.value if facts else None,
            "os_release": {"id": facts.os_release.id, "id_like": list(facts.os_release.id_like)}
            if facts else None,
            "timezone": facts.zone.name if facts else None,
            "timezone_source": facts.zone.source if facts else None,
            "files": [f.path for f in reading.files],
            "summary": {s: sum(1 for e in entries if e.status.value == s)
                        for s in STATUS_COLUMNS},
            "notes": list(reading.notes),
            "errors": [e.to_json() for e in reading.errors],
        })
    return rows


def fleet_json(outcome: ImportOutcome, inventory: inv.Inventory, dry_run: bool) -> dict[str, Any]:
    """The single-import document (``outcome_json``) plus ``inventory`` and ``hosts``; every
    job carries its ``host``. Field names are documented in the README and stay stable."""
    from bridge.cli.import_render import outcome_json

    doc = outcome_json(outcome, None, dry_run)
    doc["notes"] = [*(n for h in inventory.hosts for n in h.notes), *doc["notes"]]
    return {"inventory": inventory.root, "hosts": _host_rows(outcome, inventory), **doc,
            "groups": [g.to_json() for g in _groups(outcome)]}


def _groups(outcome: ImportOutcome) -> list[Any]:
    """Identical lines on several hosts in this plan (``bridge fleet consolidate`` candidates)."""
    from bridge.services.fleet import plan_groups
    from crontab_import.plan import IMPORTED

    return plan_groups(e.job for e in outcome.plan.entries
                       if e.job is not None and e.status in IMPORTED)


def _entry_row(e: PlanEntry) -> list[str]:
    from bridge.cli.import_render import handler_text

    detail = e.reason or (", ".join(e.changed[:4]) if e.changed else handler_text(e))
    return [
        e.status.value,
        e.host or "-",
        e.id or "-",
        f"{e.file}:{e.line}" if e.line is not None else e.file,
        describe_schedule(e.job.schedule) if e.job else "-",
        detail,
    ]


def _entry_lines(entries: list[PlanEntry]) -> str:
    """One aligned plain line per job (thousands of them: a table would take seconds)."""
    rows = [_entry_row(e) for e in sorted(entries, key=lambda e: (e.host or "", e.file,
                                                                  e.line or 0))]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[5]])
                     for r in rows)


def render_fleet(outcome: ImportOutcome, inventory: inv.Inventory, dry_run: bool) -> None:
    plan = outcome.plan
    hosts = Table(title=f"fleet import plan ({'dry run, ' if dry_run else ''}"
                        f"{len(inventory.hosts)} host(s) in {inventory.root})")
    for col in ("host", "family", "zone", "files", *STATUS_COLUMNS):
        hosts.add_column(col, overflow="fold")
    for row in _host_rows(outcome, inventory):
        counts = [str(row["summary"][s] or "") for s in STATUS_COLUMNS]
        family = f"{row['family']} ({row['dialect']})" if row["readable"] else "unreadable"
        zone = f"{row['timezone']} ({row['timezone_source']})" if row["readable"] else ""
        hosts.add_row(row["host"], family, zone, str(len(row["files"])), *counts)
    out.print(hosts)
    shown = [e for e in plan.entries if e.status is not PlanStatus.UNCHANGED]
    if shown:
        out.print("jobs (status, host, id, source, schedule, detail; unchanged ones are left "
                  "out: --json lists every job)", markup=False, highlight=False)
        out.print(_entry_lines(shown), markup=False, highlight=False, soft_wrap=True)
    for g in _groups(outcome):
        out.print(f"group {g.id}: runs on {len(g.members)} hosts ({', '.join(g.hosts)}): "
                  f"{g.schedule} {g.command}; one Celery job can replace them: "
                  f"`bridge fleet consolidate {g.id}`", markup=False, highlight=False)
    for reading in inventory.hosts:
        for note in reading.notes:
            out.print(f"note: {note}", markup=False, highlight=False)
    for note in plan.notes:
        out.print(f"note: {note}", markup=False, highlight=False)
    unverified = sum(1 for t in plan.trust if not t.checked)
    if unverified:
        err.print(f"warning: {inventory.root}: ownership and mode of {unverified} inventory "
                  "file(s) not verified: copies lose them (pass --check-owner if the copy kept "
                  "owner and mode)", markup=False, highlight=False)
    for error in plan.errors:
        err.print(f"error: {error}", markup=False, highlight=False)
    from bridge.cli.import_render import render_totals

    render_totals(outcome)
