"""``bridge import crontab|quartz``: legacy definitions -> plan -> registry + RedBeat."""

from __future__ import annotations

import glob
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bridge.cli.context import STATE, emit_json, err
from bridge.cli.import_render import outcome_json, render_plan
from bridge.core.audit import current_actor
from bridge.core.errors import InputError
from bridge.core.spec import (
    ShadowMode,
)
from bridge.services.importer import run_import
from crontab_import.crontab import DEFAULT_MAX_LINES
from crontab_import.filetrust import is_live_path
from crontab_import.model import DEFAULT_MAX_BYTES, ImportItem, ParseResult

app = typer.Typer(
    help="Import legacy schedules (crontab files, Quartz job XML) into the registry and RedBeat.",
    no_args_is_help=True,
)

ADOPT_HELP = (
    "Take over job ids that another source (host, file, kind) owns, e.g. a `# bridge: id=` "
    "naming another file's job; audited as import.adopt. Without it that is an error."
)
HOST_SPOOLS = ("/var/spool/cron/crontabs", "/var/spool/cron")
DEFAULT_MAX_JOBS = 100_000


def finish_import(
    results: list[ParseResult],
    *,
    dry_run: bool,
    as_json: bool,
    prune: bool,
    include_inactive: bool,
    allow_errors: bool,
    timezone: str,
    adopt: bool = False,
) -> None:
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
    )
    if as_json:
        emit_json(outcome_json(outcome, timezone, dry_run))
    else:
        render_plan(outcome, timezone, dry_run)
    if outcome.plan.has_errors:
        if not as_json and not allow_errors:
            err.print(
                "nothing was imported: fix the errors above, or pass --allow-errors",
                markup=False,
                highlight=False,
            )
        raise typer.Exit(1 if allow_errors else 2)
    if outcome.sync_error:
        raise typer.Exit(3)


def with_shadow_mode(results: list[ParseResult], mode: ShadowMode | None) -> list[ParseResult]:
    """Stamp the chosen shadow mode on every imported job (an option of the import, not the
    legacy source); None keeps what the source says (e.g. a Quartz handler map's ``shadow``)."""
    if mode is None:
        return results

    def stamp(item: ImportItem) -> ImportItem:
        if item.job is None or item.job.policies.shadow_mode is mode:
            return item
        policies = replace(item.job.policies, shadow_mode=mode)
        return replace(item, job=item.job.with_(policies=policies))

    return [replace(r, items=tuple(stamp(i) for i in r.items)) for r in results]


def _host_paths() -> list[str]:
    paths = [p for p in ["/etc/crontab"] if os.path.isfile(p)]
    paths += sorted(p for p in glob.glob("/etc/cron.d/*") if os.path.isfile(p))
    for spool in HOST_SPOOLS:
        if os.path.isdir(spool):
            paths += sorted(p for p in glob.glob(f"{spool}/*") if os.path.isfile(p))
            break
    return paths


def _check_paths(paths: list[str]) -> list[str]:
    """Absolute paths (a job's source is the same file however it was named), readable."""
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
        if not os.access(p, os.R_OK):
            raise InputError(f"{p}: not readable (permission denied)")
    return [os.path.abspath(p) for p in paths]


@app.command("crontab")
def crontab(
    paths: list[str] = typer.Argument(None, help="Crontab files (user, /etc/crontab, cron.d)."),
    from_host: bool = typer.Option(
        False,
        "--from-host",
        help="Read /etc/crontab, /etc/cron.d/* and the user spool of this machine.",
    ),
    system: bool = typer.Option(False, "--system", help="Files have a user field (cron.d format)."),
    user: str = typer.Option(None, "--user", help="Owner of a user crontab (default: file name)."),
    timezone: str = typer.Option(
        None, "--timezone", help="The legacy host's zone (default: this machine's; always printed)."
    ),
    dialect: str = typer.Option(
        None, "--dialect", help="vixie (Debian, the default) or cronie (RHEL family: CRON_TZ, ...)."
    ),
    shadow_mode: ShadowMode = typer.Option(
        ShadowMode.OBSERVE, "--shadow-mode", help="observe | dry-run | execute."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing."),
    prune: bool = typer.Option(
        True, "--prune/--no-prune", help="Delete registry jobs that vanished from these files."
    ),
    include_inactive: bool = typer.Option(
        False,
        "--include-inactive",
        help="Also import jobs cron is NOT running today (their file is ignored).",
    ),
    allow_errors: bool = typer.Option(
        False,
        "--allow-errors",
        help="Import the valid jobs even when some lines are rejected (exit 1).",
    ),
    adopt: bool = typer.Option(False, "--adopt", help=ADOPT_HELP),
    check_owner: bool = typer.Option(
        False,
        "--check-owner",
        help="Apply cron's owner/mode/link rules to copies too (always applied to "
        "/etc/crontab, /etc/cron.d/* and /var/spool/cron/crontabs/*).",
    ),
    max_lines: int = typer.Option(
        None,
        "--max-lines",
        min=1,
        help=f"Refuse a file with more lines than this (default {DEFAULT_MAX_LINES}); with "
        "--inventory, the total over the inventory.",
    ),
    max_bytes: int = typer.Option(
        None,
        "--max-bytes",
        min=1,
        help=f"Refuse a file larger than this (default {DEFAULT_MAX_BYTES}); with --inventory, "
        "the total over the inventory.",
    ),
    max_jobs: int = typer.Option(
        DEFAULT_MAX_JOBS, "--max-jobs", min=1, help="Refuse more job lines than this in all."
    ),
    inventory: str = typer.Option(
        None,
        "--inventory",
        help="A tree collected from many hosts, one folder per host with its files at their "
        "real paths (DIR/web-01/etc/cron.d/backup): one plan for the fleet, by host.",
    ),
    hosts: list[str] = typer.Option(
        None, "--host", help="With --inventory: only this host's folder (repeat for more)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as one JSON document."),
) -> None:
    """Import crontab files: every job line becomes a registry job + RedBeat entry.

    Prints the plan (create/update/unchanged/delete/disabled/inactive/unsupported/error) and
    the next fire times. Any rejected line => nothing is imported (exit 2), unless
    --allow-errors. With --inventory DIR: every host folder of a fleet, each in its own
    family's cron dialect and zone; ids are <host>.<id>; a host missing from DIR is never
    pruned."""
    from crontab_import import crontab as parser

    if inventory is not None:
        if paths or from_host or system or user or dialect:
            raise InputError(
                "--inventory reads every host's files itself: give no paths, --from-host, "
                "--system, --user or --dialect (each host's family decides its dialect)"
            )
        from bridge.cli.fleet_import import finish_fleet, read_fleet

        tree, fleet = read_fleet(
            inventory, hosts=hosts, timezone=timezone, check_owner=check_owner,
            max_lines=max_lines, max_bytes=max_bytes, max_jobs=max_jobs,
        )
        finish_fleet(
            tree, with_shadow_mode(fleet, shadow_mode), dry_run=dry_run, prune=prune,
            include_inactive=include_inactive, allow_errors=allow_errors, adopt=adopt,
            as_json=as_json,
        )
        return
    if hosts:
        raise InputError("--host selects hosts of an --inventory")
    dialect = dialect or "vixie"
    max_lines = max_lines or DEFAULT_MAX_LINES
    max_bytes = max_bytes or DEFAULT_MAX_BYTES
    if dialect not in ("vixie", "cronie"):
        raise InputError(f"unknown dialect '{dialect}' (vixie or cronie)")
    files = _check_paths((paths or []) + (_host_paths() if from_host else []))
    if not files:
        raise InputError("no crontab files given (paths or --from-host)")
    zone = timezone or STATE.settings.timezone
    results = [
        parser.parse_file(
            p,
            kind="cron.d" if system else None,
            user=user,
            timezone=zone,
            dialect=dialect,
            check_owner=check_owner or is_live_path(p),
            max_bytes=max_bytes,
            max_lines=max_lines,
        )
        for p in files
    ]
    from bridge.cli.fleet_import import check_job_count

    check_job_count(results, max_jobs, "the files given")
    results = with_shadow_mode(results, shadow_mode)
    finish_import(
        results,
        dry_run=dry_run,
        as_json=as_json,
        prune=prune,
        include_inactive=include_inactive,
        allow_errors=allow_errors,
        timezone=zone,
        adopt=adopt,
    )


@app.command("quartz")
def quartz(
    paths: list[str] = typer.Argument(None, help="Quartz job_scheduling_data XML files."),
    handlers: str = typer.Option(
        None,
        "--handlers",
        help="TOML mapping job classes to commands or callables (unmapped jobs: observe only).",
    ),
    timezone: str = typer.Option(
        None,
        "--timezone",
        help="Zone for triggers without time-zone (the Quartz JVM's default zone).",
    ),
    shadow_mode: ShadowMode = typer.Option(
        None,
        "--shadow-mode",
        help="observe | dry-run | execute for every job (default: the handler map's `shadow`, "
        "else observe).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing."),
    prune: bool = typer.Option(
        True, "--prune/--no-prune", help="Delete registry jobs that vanished from these files."
    ),
    allow_errors: bool = typer.Option(
        False, "--allow-errors", help="Import the valid jobs even when some are rejected (exit 1)."
    ),
    adopt: bool = typer.Option(False, "--adopt", help=ADOPT_HELP),
    max_jobs: int = typer.Option(
        10000, "--max-jobs", min=1, help="Refuse a file with more triggers than this."
    ),
    max_bytes: int = typer.Option(
        DEFAULT_MAX_BYTES, "--max-bytes", min=1, help="Refuse a file larger than this."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as one JSON document."),
    jdbc: str = typer.Option(
        None,
        "--jdbc",
        help="Read a live Quartz JDBC JobStore (read-only): SQLAlchemy URL of its PostgreSQL, "
        "MySQL or MariaDB database.",
    ),
    table_prefix: str = typer.Option(
        "QRTZ_", "--table-prefix", help="With --jdbc: the JobStore's tablePrefix."
    ),
    sched_name: str = typer.Option(
        None,
        "--sched-name",
        help="With --jdbc: the scheduler (SCHED_NAME) to import when the tables hold several.",
    ),
    export: str = typer.Option(
        None, "--export", help="Read the JSON export written by the bridge's Quartz plugin."
    ),
) -> None:
    """Import Quartz job XML (2.0 and 1.8), a live JDBC JobStore (--jdbc) or the plugin's
    export (--export): one bridge job per trigger."""
    from crontab_import.quartz import xml_file
    from crontab_import.quartz.handlers import load_handler_map

    zone = timezone or STATE.settings.timezone
    mapping = load_handler_map(handlers) if handlers else None
    now = datetime.now(UTC)
    if sum(map(bool, (paths, jdbc, export))) != 1:
        raise InputError("give Quartz XML files, or --jdbc URL, or --export FILE (one of them)")
    if not jdbc and (sched_name or table_prefix != "QRTZ_"):
        raise InputError("--table-prefix and --sched-name need --jdbc URL")
    if jdbc or export:
        results = [
            _quartz_store(
                jdbc, export, table_prefix, sched_name, mapping, now, zone, max_jobs, max_bytes
            )
        ]
    else:
        files = _check_paths(paths)
        results = [
            xml_file.parse_file(
                p,
                handlers=mapping,
                now=now,
                default_timezone=zone,
                max_bytes=max_bytes,
                max_triggers=max_jobs,
            )
            for p in files
        ]
    results = with_shadow_mode(results, shadow_mode)
    finish_import(
        results,
        dry_run=dry_run,
        as_json=as_json,
        prune=prune,
        include_inactive=False,
        allow_errors=allow_errors,
        timezone=zone,
        adopt=adopt,
    )


def _quartz_store(
    jdbc: str | None,
    export: str | None,
    table_prefix: str,
    sched_name: str | None,
    mapping: Any,
    now: datetime,
    zone: str,
    max_jobs: int,
    max_bytes: int,
) -> ParseResult:
    """One Quartz scheduler's definitions from its JDBC tables or from the plugin's export.

    The same bounds as for XML: an export larger than ``max_bytes`` is refused before it is
    read; more than ``max_jobs`` triggers are refused before anything is planned."""
    from crontab_import.quartz import store

    if jdbc:
        from crontab_import.quartz import jdbc as quartz_jdbc

        rows = quartz_jdbc.read_store(jdbc, table_prefix=table_prefix, sched_name=sched_name)
        origin = rows.origin
    else:
        from crontab_import.quartz import export as quartz_export

        assert export is not None
        path = _check_paths([export])[0]
        size = os.path.getsize(path)
        if size > max_bytes:
            raise InputError(f"{path}: {size} bytes, more than --max-bytes {max_bytes}")
        rows = quartz_export.read_export(path)
        origin = path
    if len(rows.triggers) > max_jobs:
        raise InputError(
            f"{origin}: {len(rows.triggers)} triggers, more than --max-jobs {max_jobs}: refused"
        )
    return store.parse_store(rows, handlers=mapping, now=now, default_timezone=zone)
