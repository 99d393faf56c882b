"""``bridge flower``: Flower on the bridge's broker, never exposed without authentication.

Runs ``celery -A bridge.celery_app flower`` (the bridge's Celery app, hence its broker and
``task_send_sent_event``/``worker_send_task_events``) in place of this process. A non-loopback
``--address`` needs ``--basic-auth user:pass`` (or ``FLOWER_BASIC_AUTH``) or ``--auth`` (an
OAuth e-mail regex, with Flower's ``FLOWER_OAUTH2_*`` variables); otherwise exit 2. Flower 2.2's
HTTP API (``/api/...``) answers 401 unless basic auth / OAuth is set (or
``FLOWER_UNAUTHENTICATED_API=true``), so give ``--basic-auth`` even on loopback to script it.

Trust boundaries (issue 15.3):

* **Credentials never on a command line.** The basic-auth pairs reach Flower through the
  ``FLOWER_BASIC_AUTH`` environment variable (Flower reads every ``FLOWER_<OPTION>``), never
  as ``--basic_auth=...`` in its argv, which any local user can read in ``/proc/<pid>/cmdline``
  or ``ps``. (``/proc/<pid>/environ`` is readable only by the same user and root.) Prefer
  giving ``FLOWER_BASIC_AUTH`` to ``bridge flower`` too: ``--basic-auth`` is on the ``bridge``
  command line until it execs Flower.
* **/metrics behind the same authentication.** Stock Flower serves ``/metrics`` (worker
  names, task names and counts) to anyone. Flower runs through :func:`launch`, which wraps
  that handler in Tornado's ``authenticated``: with basic auth or OAuth configured a scrape
  needs the credentials (Prometheus ``basic_auth`` in the scrape config); ``--public-metrics``
  keeps the stock behaviour. On loopback without auth it stays open, as the UI does.
* **/healthcheck stays open** (load balancers probe it without credentials) and says nothing
  but ``OK``.

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


PUBLIC_METRICS_FLAG = "--bridge-public-metrics"


def flower_command(port: int, address: str, basic_auth: str | None, auth: str | None,
                   url_prefix: str | None, max_tasks: int, *, public_metrics: bool = False
                   ) -> tuple[list[str], dict[str, str]]:
    """The command line and the environment it needs (pure); the credentials are in the
    environment only. Raises ValueError for an unsafe or malformed request."""
    if not is_loopback(address) and not basic_auth and not auth:
        raise ValueError(
            f"refusing to expose Flower on {address} without authentication: "
            "pass --basic-auth user:pass (or FLOWER_BASIC_AUTH) or --auth for OAuth"
        )
    if basic_auth and any(":" not in pair or not pair.split(":", 1)[0]
                          for pair in basic_auth.split(",")):
        raise ValueError("--basic-auth must be user:password (comma-separated for several)")
    argv = [sys.executable, "-m", "bridge.cli.flower_cmd", "-A", "bridge.celery_app", "flower",
            f"--port={port}", f"--address={address}", f"--max_tasks={max_tasks}"]
    env: dict[str, str] = {}
    if basic_auth:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    if auth:
        argv.append(f"--auth={auth}")
    if url_prefix:
        argv.append(f"--url_prefix={url_prefix}")
    if public_metrics:
        argv.append(PUBLIC_METRICS_FLAG)
    return argv, env


def launch(argv: list[str]) -> None:
    """``python -m bridge.cli.flower_cmd <celery args>``: Celery's own entry point, with
    Flower's ``/metrics`` behind Flower's authentication unless :data:`PUBLIC_METRICS_FLAG`."""
    if PUBLIC_METRICS_FLAG in argv:
        argv = [a for a in argv if a != PUBLIC_METRICS_FLAG]
    else:
        from flower.views import monitor
        from tornado.web import authenticated

        monitor.Metrics.get = authenticated(monitor.Metrics.get)
    from celery.bin.celery import main

    sys.argv = ["celery", *argv]
    sys.exit(main())


def flower(
    port: int = typer.Option(5555, "--port", help="Port of the web UI."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind."),
    basic_auth: str = typer.Option(
        None, "--basic-auth", envvar="FLOWER_BASIC_AUTH", help="user:password[,user2:pw2]."
    ),
    auth: str = typer.Option(None, "--auth", help="OAuth: regex of allowed e-mail addresses."),
    url_prefix: str = typer.Option(None, "--url-prefix", help="Behind a reverse proxy."),
    max_tasks: int = typer.Option(10000, "--max-tasks", help="Tasks Flower keeps in memory."),
    public_metrics: bool = typer.Option(
        False, "--public-metrics",
        help="Serve /metrics without authentication (default: behind --basic-auth/--auth)."),
) -> None:
    """Start Flower against the bridge's broker (replaces this process).

    Credentials reach Flower through its environment (FLOWER_BASIC_AUTH), never its command
    line; /metrics needs them too unless --public-metrics; /healthcheck stays open ("OK")."""
    try:
        argv, extra = flower_command(port, address, basic_auth, auth, url_prefix, max_tasks,
                                     public_metrics=public_metrics)
    except ValueError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from e
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    env.update(extra)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    launch(sys.argv[1:])
