"""``bridge authority``: who owns each job's slots, for processes that read files."""

from __future__ import annotations

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.errors import InputError
from bridge.services.authority_files import AuthorityFileError, export

app = typer.Typer(
    help="Who owns each job's slots: export the authority files the legacy shim and the "
    "Quartz plugin read.",
    no_args_is_help=True,
)


@app.command("export")
def export_cmd(
    directory: str = typer.Option(
        None, "--dir", help="Where to write <job_id>.authority (default: the authority_dir "
        "setting, the shim's cache)."
    ),
    by_host: bool = typer.Option(
        False, "--by-host", help="A fleet: write DIR/<host>/<job_id>.authority, one folder per "
        "host to ship to that host's authority directory."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the export report as JSON."),
) -> None:
    """Write one <job_id>.authority file per registry job (atomically; unchanged files are
    left alone). Run it after flips and before planned registry downtime, so every legacy shim
    and Quartz plugin knows the current owners while the registry is unreachable."""
    target = directory or STATE.settings.authority_dir
    try:
        report = export(STATE.registry(), target, by_host=by_host)
    except (OSError, AuthorityFileError) as e:
        raise InputError(f"cannot write authority files to {target}: {e}") from e
    if as_json:
        emit_json(report.to_json())
        return
    out.print(
        f"{target}: {len(report.written)} file(s) written, {len(report.unchanged)} unchanged",
        markup=False, highlight=False,
    )
