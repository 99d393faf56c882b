"""``bridge fleet``: the same line on many hosts (see :mod:`bridge.services.fleet`)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.audit import current_actor
from bridge.core.errors import InputError
from bridge.services.fleet import consolidate, current_groups, split
from bridge.services.flip import export_authority
from bridge.services.sync import mark_pending, sync_registry

app = typer.Typer(help="Lines that run on many hosts: list and consolidate them.",
                  no_args_is_help=True)


@app.command("groups")
def groups(
    min_hosts: int = typer.Option(2, "--min-hosts", help="Only lines on at least N hosts."),
    as_json: bool = typer.Option(False, "--json", help='Print {"groups": [...]}.'),
) -> None:
    """Identical host-bound lines (schedule, command, user, environment) on several hosts."""
    if min_hosts < 1:
        raise InputError("--min-hosts must be at least 1")
    with STATE.registry().session() as s:
        found = current_groups(s, min_hosts)
    if as_json:
        emit_json({"groups": [g.to_json() for g in found]})
        return
    for g in found:
        state = "consolidated" if g.consolidated else "host-bound"
        out.print(f"{g.id}  runs on {len(g.members)} hosts ({state}): {g.schedule} "
                  f"{g.timezone}  {g.user or '-'}  {g.command}", markup=False, highlight=False)
        out.print(f"  hosts: {', '.join(g.hosts)}", markup=False, highlight=False)
    if not found:
        out.print("no line runs on several hosts", markup=False)


@app.command("consolidate")
def consolidate_cmd(
    group: str = typer.Argument(..., help="The group id (see `bridge fleet groups`)."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Replace the group's host-bound Celery jobs by one job that runs once per slot anywhere.
    Legacy keeps owning every line (shadow compares the group) until `bridge authority flip
    GROUP --to celery` moves all of them at one boundary."""
    registry = STATE.registry()
    now = datetime.now(UTC)
    actor = STATE.actor or current_actor()
    with registry.session() as s:
        done, spec = consolidate(s, group, now, actor, reason)
        mark_pending(s, {"marked_at": now.isoformat(), "actor": actor,
                         "files": [spec.source.file], "changes": len(done.members) + 1})
    report = sync_registry(registry, STATE.settings, known=[spec])
    warning = export_authority(registry, STATE.settings.authority_dir)
    doc = {**done.to_json(), "job": spec.id, "sync": report.to_json(),
           "warnings": [warning] if warning else []}
    if as_json:
        emit_json(doc)
        return
    out.print(f"{spec.id}: consolidates {len(done.members)} host-bound line(s) "
              f"({', '.join(done.hosts)}); runs once per slot on any worker, legacy owns it "
              f"until `bridge authority flip {spec.id} --to celery`", markup=False,
              highlight=False)
    if warning:
        out.print(f"warning: {warning}", markup=False, highlight=False)


@app.command("split")
def split_cmd(
    group: str = typer.Argument(..., help="A consolidated group id."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Undo a consolidation (legacy must own the group): the group job goes, every member's
    host-bound Celery job comes back."""
    registry = STATE.registry()
    now = datetime.now(UTC)
    actor = STATE.actor or current_actor()
    with registry.session() as s:
        members = split(s, group, now, actor, reason)
        mark_pending(s, {"marked_at": now.isoformat(), "actor": actor,
                         "files": [f"fleet:{group}"], "changes": len(members) + 1})
    report = sync_registry(registry, STATE.settings)
    if as_json:
        emit_json({"group": group, "members": members, "sync": report.to_json()})
        return
    out.print(f"{group}: split back into {len(members)} host-bound job(s)", markup=False,
              highlight=False)
