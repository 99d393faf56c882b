"""``bridge flower``: Flower on the bridge's broker, never exposed without authentication.

Runs ``celery -A bridge.celery_app flower`` (the bridge's Celery app, hence its broker and
``task_send_sent_event``/``worker_send_task_events``) in place of this process. A non-loopback
``--address`` needs ``--basic-auth user:pass`` (or ``FLOWER_BASIC_AUTH``) or ``--auth`` (an
OAuth e-mail regex, with Flower's ``FLOWER_OAUTH2_*`` variables); otherwise exit 2. Flower's
``/metrics`` and ``/healthcheck`` are not behind its auth: bind it behind a proxy if that
matters. Flower 2.2's HTTP API (``/api/...``) answers 401 unless basic auth / OAuth is set
(or ``FLOWER_UNAUTHENTICATED_API=true``), so give ``--basic-auth`` even on loopback to script it.

Finding a job's runs: the task name stays ``bridge.run_job`` (one task type in Flower's filters
and in its ``/metrics`` labels); the args ``['JOB', 'SLOT']`` are shown and searchable: type
``args:billing-nightly`` in the Tasks search box, or ``/api/tasks?search=args:billing-nightly``.
(Publishing with Celery's ``shadow=f"bridge.run_job[{job_id}]"`` would show the job id in the
name column too, at the price of one Flower task type and one ``flower_*{task=...}`` series per
job; not done.)
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys

import typer

from bridge.cli.context import err


def is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return address == "localhost"
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_argv(port: int, address: str, basic_auth: str | None, auth: str | None,
                url_prefix: str | None, max_tasks: int) -> list[str]:
    """The command line (pure); raises ValueError for an unsafe or malformed request."""
    if not is_loopback(address) and not basic_auth and not auth:
        raise ValueError(
            f"refusing to expose Flower on {address} without authentication: "
            "pass --basic-auth user:pass (or FLOWER_BASIC_AUTH) or --auth for OAuth"
        )
    if basic_auth and any(":" not in pair or not pair.split(":", 1)[0]
                          for pair in basic_auth.split(",")):
        raise ValueError("--basic-auth must be user:password (comma-separated for several)")
    celery = shutil.which("celery", path=os.path.dirname(sys.executable)) or "celery"
    argv = [celery, "-A", "bridge.celery_app", "flower", f"--port={port}",
            f"--address={address}", f"--max_tasks={max_tasks}"]
    if basic_auth:
        argv.append(f"--basic_auth={basic_auth}")
    if auth:
        argv.append(f"--auth={auth}")
    if url_prefix:
        argv.append(f"--url_prefix={url_prefix}")
    return argv


def flower(
    port: int = typer.Option(5555, "--port", help="Port of the web UI."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind."),
    basic_auth: str = typer.Option(
        None, "--basic-auth", envvar="FLOWER_BASIC_AUTH", help="user:password[,user2:pw2]."
    ),
    auth: str = typer.Option(None, "--auth", help="OAuth: regex of allowed e-mail addresses."),
    url_prefix: str = typer.Option(None, "--url-prefix", help="Behind a reverse proxy."),
    max_tasks: int = typer.Option(10000, "--max-tasks", help="Tasks Flower keeps in memory."),
) -> None:
    """Start Flower against the bridge's broker (replaces this process)."""
    try:
        argv = flower_argv(port, address, basic_auth, auth, url_prefix, max_tasks)
    except ValueError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from e
    env = dict(os.environ)
    env.pop("FLOWER_BASIC_AUTH", None)  # passed explicitly; never twice
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)
