"""``bridge sync``: make RedBeat hold exactly the registry's jobs."""

from __future__ import annotations

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.services.sync import pending, sync_registry


def sync(
    check: bool = typer.Option(
        False, "--check", help="Report drift only; change nothing (exit 1 on drift)."
    ),
    take_over: bool = typer.Option(
        False,
        "--take-over",
        help="Hand the RedBeat key prefix to this registry even if another registry holds it "
        "(for a registry that was moved or recreated; the other registry's entries are deleted).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
) -> None:
    """Create, update, delete and re-score RedBeat entries so Redis matches the registry.

    Runs in pipelined batches; entries not made by the bridge are never touched. Safe to run at
    any time (beat also repairs missing entries by itself). A key prefix belongs to the first
    registry that synced it: a sync from another registry is refused (exit 2), changing nothing.
    --check also exits 1 when an import's RedBeat sync did not complete (failed or killed)."""
    registry = STATE.registry()
    report = sync_registry(registry, STATE.settings, apply=not check, take_over=take_over)
    unfinished = pending(registry)
    if as_json:
        emit_json({"check": check, **report.to_json(), "pending_import": unfinished})
    else:
        if unfinished is not None:
            what = "was" if check else "is now"
            out.print(
                f"import of {', '.join(unfinished.get('files', [])) or '?'} at "
                f"{unfinished.get('marked_at', '?')} by {unfinished.get('actor', '?')} "
                f"{what} not fully synced to RedBeat" + (" (run `bridge sync`)" if check else ""),
                markup=False,
                highlight=False,
            )
        verb = "would" if check else "did"
        for name in ("created", "updated", "deleted", "rescored"):
            ids = getattr(report, name)
            if ids:
                shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
                out.print(f"{verb} {name[:-1]}e {len(ids)}: {shown}".replace("ee ", "e "))
        out.print(f"{report.unchanged} unchanged" + ("; drift found" if report.drift else ""))
    if check and (report.drift or unfinished is not None):
        raise typer.Exit(1)
