"""The ``bridge`` command: parse options, call one service, render (table or ``--json``).

Exit codes: 0 ok, 1 findings (diffs, drift, not ready, refused), 2 bad input, 3 infrastructure
unreachable. Errors are one line on stderr (and ``{"error": ...}`` on stdout under ``--json``
when the command printed no document); ``--debug`` (before or after the sub-command) adds the
traceback. The error boundary (:func:`run`) maps what escapes a command: a
:class:`~bridge.core.errors.BridgeError` by its own exit code, a connection failure of Redis / the
database / the broker to 3, an OS error on a named file to 2, and anything else -- a bug -- to
70 with a short id under which the traceback is saved (``<data dir>/errors/<id>.txt``).
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import sys
import traceback
import uuid
from typing import Any

import click
import typer
from typer._click.exceptions import ClickException as TyperClickException
from typer._click.exceptions import NoArgsIsHelpError as TyperNoArgsIsHelpError

from bridge.cli import (
    audit_cmd,
    authority_cmd,
    authority_ops,
    db_cmd,
    fleet_cmd,
    flower_cmd,
    import_cmd,
    jobs_cmd,
    legacy_cmd,
    metrics_cmd,
    ops_cmd,
    reconcile_cmd,
    retire_cmd,
    schedule_cmd,
    shadow_cmd,
    status_cmd,
    sync_cmd,
    worker_cmd,
)
from bridge.cli.context import STATE, emit_json, err
from bridge.core.errors import BridgeError, ExitCode, InputError

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
app.add_typer(fleet_cmd.app, name="fleet")
app.add_typer(schedule_cmd.app, name="schedule")
authority_cmd.app.command("flip")(authority_ops.flip)
authority_cmd.app.command("status")(authority_ops.status)
legacy_cmd.app.command("retire")(retire_cmd.retire_cmd)
app.add_typer(legacy_cmd.app, name="legacy")
app.add_typer(authority_cmd.app, name="authority")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(shadow_cmd.app, name="shadow")
app.command("pause")(ops_cmd.pause)
app.command("resume")(ops_cmd.resume)
app.command("trigger")(ops_cmd.trigger)
app.command("reconcile")(reconcile_cmd.reconcile_command)
app.add_typer(metrics_cmd.app, name="metrics")
app.command("flower")(flower_cmd.flower)
app.command("worker")(worker_cmd.worker)
app.add_typer(db_cmd.app, name="db")
app.command("status")(status_cmd.status)
app.command("sync")(sync_cmd.sync)


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, never bad input


def _set_debug(_ctx: Any, _param: Any, value: Any) -> Any:
    if value:
        STATE.debug = True
    return value


def command() -> Any:
    """The click command of :data:`app`, with ``--debug`` accepted by every sub-command too
    (so ``bridge status --debug`` works as well as ``bridge --debug status``)."""
    root: Any = typer.main.get_command(app)
    template = next(p for p in root.params if p.name == "debug")

    def visit(cmd: Any) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for sub in subs.values():
                visit(sub)
        elif not any(p.name == "debug" for p in cmd.params):
            option = copy.copy(template)
            option.expose_value = False
            option.callback = _set_debug
            cmd.params.append(option)

    for sub in root.commands.values():
        visit(sub)
    return root


def _mask(text: str) -> str:
    return re.sub(r"(//[^/@:\s]*:)[^@/\s]*@", r"\1***@", text)


def _fail(message: str, code: int, extra: dict[str, Any] | None = None) -> None:
    message = _mask(message).replace("\n", " ")
    err.print(f"error: {message}", markup=False, highlight=False)
    if STATE.json_output and not STATE.emitted:
        emit_json({"error": message, "exit_code": code, **(extra or {})})
    sys.exit(code)


def _infrastructure(e: BaseException) -> bool:
    """A connection failure of Redis, the database or the broker: exit 3, not a bug."""
    import redis
    from kombu.exceptions import OperationalError as KombuOperationalError

    from bridge.store.db import connection_failure

    kinds = (redis.ConnectionError, redis.TimeoutError, KombuOperationalError, ConnectionError,
             TimeoutError)
    return isinstance(e, kinds) or connection_failure(e)


def _save_traceback(error_id: str) -> str | None:
    from bridge.adapters.fsperm import private_dir, write_private
    from bridge.core.config import data_home

    try:
        directory = data_home() / "errors"
        private_dir(directory)
        path = directory / f"{error_id}.txt"
        write_private(path, _mask(traceback.format_exc()).encode())
        return str(path)
    except OSError:
        return None


def _internal(e: Exception, argv: list[str]) -> None:
    error_id = uuid.uuid4().hex[:8]
    if STATE.debug:
        traceback.print_exc()
    saved = _save_traceback(error_id)
    rerun = " ".join(["bridge", "--debug", *[a for a in argv if a != "--debug"]])[:200]
    where = f"; traceback in {saved}" if saved else ""
    _fail(f"internal error {error_id}: {type(e).__name__}: {e} (a bug{where}; "
          f"rerun as `{rerun}` to see it)", INTERNAL_ERROR, {"internal": True, "id": error_id})


def _missing_command(e: click.exceptions.NoArgsIsHelpError | TyperNoArgsIsHelpError) -> None:
    """A group run without its command: its formatted help on stderr (the usage, the
    commands), exit 2 -- a missing command is bad input, and scripts must not read help as
    output; with ``--json``, the one-line error document instead."""
    name = e.ctx.command_path if e.ctx is not None else "bridge"
    if STATE.json_output or e.ctx is None:
        _fail(f"{name}: a command is required (see `{name} --help`)", int(ExitCode.BAD_INPUT))
    sys.stderr.write(e.ctx.get_help() + "\n")
    sys.stderr.flush()
    raise SystemExit(int(ExitCode.BAD_INPUT))


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: never lets a traceback escape unless --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    words = args[: args.index("--")] if "--" in args else args
    STATE.json_output = "--json" in words or "--format=json" in words or any(
        a == "--format" and b == "json" for a, b in itertools.pairwise(words))
    code = 0
    try:
        if any("\x00" in a for a in args):  # no path, id or value can hold one (execve can't)
            raise InputError("an argument contains a NUL character")
        result = command().main(args=args, prog_name="bridge", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except BridgeError as e:
        if STATE.debug:
            traceback.print_exc()
        _fail(str(e), int(e.exit_code))
    except (click.exceptions.Exit, typer.Exit) as e:
        code = int(e.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        _fail("aborted", int(ExitCode.BAD_INPUT))
    except (click.exceptions.NoArgsIsHelpError, TyperNoArgsIsHelpError) as e:  # no command
        _missing_command(e)
    except (click.ClickException, TyperClickException) as e:
        _fail(e.format_message(), int(ExitCode.BAD_INPUT))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except RecursionError as e:  # before OSError/Exception: never from bad *setup*
        _internal(e, args)
    except Exception as e:  # the last line of defence: one line, never a traceback
        if _infrastructure(e):
            if STATE.debug:
                traceback.print_exc()
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()
            _fail(f"unreachable: {type(e).__name__}: {reason[0] if reason else ''}",
                  int(ExitCode.UNREACHABLE))
        elif isinstance(e, OSError) and e.filename is not None:
            if STATE.debug:
                traceback.print_exc()
            _fail(f"{os.fsdecode(e.filename)}: {e.strerror or e}", int(ExitCode.BAD_INPUT))
        else:
            _internal(e, args)
    finally:
        STATE.close()
    sys.exit(code)


if __name__ == "__main__":
    run()
