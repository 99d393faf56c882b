"""The ``bridge`` command: parse options, call one service, render (table or ``--json``).

Exit codes: 0 ok, 1 findings (diffs, drift, not ready, refused), 2 bad input, 3 infrastructure
unreachable. Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import sys
import traceback

import click
import typer
from typer._click.exceptions import ClickException as TyperClickException

from bridge.cli import (
    audit_cmd,
    authority_cmd,
    authority_ops,
    db_cmd,
    flower_cmd,
    import_cmd,
    jobs_cmd,
    legacy_cmd,
    metrics_cmd,
    ops_cmd,
    reconcile_cmd,
    schedule_cmd,
    shadow_cmd,
    status_cmd,
    sync_cmd,
    worker_cmd,
)
from bridge.cli.context import STATE, err
from bridge.errors import BridgeError, ExitCode

app = typer.Typer(
    name="bridge",
    help=(
        "cron-bridge: move crontab and Quartz schedules onto Celery + RedBeat, legacy-exact, "
        "one job at a time.\n\n"
        "Import legacy definitions into the registry (SQL) and RedBeat, preview fire times, "
        "watch both paths in shadow mode, then flip authority job by job.\n\n"
        "Exit codes: 0 ok, 1 findings (diffs, drift, not ready), 2 bad input, "
        "3 infrastructure unreachable."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    actor: str = typer.Option(
        None, "--actor", help="Who is acting, for the audit log (default: the OS user)."
    ),
) -> None:
    STATE.debug = debug
    STATE.actor = actor


app.add_typer(import_cmd.app, name="import")
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(schedule_cmd.app, name="schedule")
authority_cmd.app.command("flip")(authority_ops.flip)
authority_cmd.app.command("status")(authority_ops.status)
legacy_cmd.app.command("retire")(authority_ops.retire_cmd)
app.add_typer(legacy_cmd.app, name="legacy")
app.add_typer(authority_cmd.app, name="authority")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(shadow_cmd.app, name="shadow")
app.command("pause")(ops_cmd.pause)
app.command("resume")(ops_cmd.resume)
app.command("trigger")(ops_cmd.trigger)
app.command("reconcile")(reconcile_cmd.reconcile)
app.add_typer(metrics_cmd.app, name="metrics")
app.command("flower")(flower_cmd.flower)
app.command("worker")(worker_cmd.worker)
app.add_typer(db_cmd.app, name="db")
app.command("status")(status_cmd.status)
app.command("sync")(sync_cmd.sync)


def _fail(message: str, code: int) -> None:
    err.print(f"error: {message}", markup=False, highlight=False)
    sys.exit(code)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: never lets a traceback escape unless --debug."""
    code = 0
    try:
        result = app(args=argv, standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except BridgeError as e:
        if STATE.debug:
            traceback.print_exc()
        _fail(str(e), int(e.exit_code))
    except (click.exceptions.Exit, typer.Exit) as e:
        code = int(e.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        _fail("aborted", int(ExitCode.BAD_INPUT))
    except (click.ClickException, TyperClickException) as e:
        _fail(e.format_message().replace("\n", " "), int(ExitCode.BAD_INPUT))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as e:  # the last line of defence: one line, never a traceback
        if STATE.debug:
            traceback.print_exc()
        _fail(f"internal error: {type(e).__name__}: {e} (rerun with --debug)", 70)
    finally:
        STATE.close()
    sys.exit(code)


if __name__ == "__main__":
    run()
