"""``bridge metrics``: the Prometheus exposition of the registry (see :mod:`bridge.ops.metrics`)."""

from __future__ import annotations

import sys
import threading

import typer

from bridge.cli.context import STATE, err

app = typer.Typer(help="Prometheus metrics computed from the registry.", no_args_is_help=True)


@app.command("serve")
def serve(
    port: int = typer.Option(9808, "--port", help="TCP port of /metrics."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind."),
) -> None:
    """Serve /metrics (Prometheus text format) until interrupted."""
    from bridge.ops import metrics

    try:
        metrics.serve(STATE.settings, port, address)
    except OSError as e:
        err.print(f"error: cannot listen on {address}:{port}: {e}", markup=False)
        raise typer.Exit(3) from e
    err.print(f"serving metrics on http://{address}:{port}/metrics", markup=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        return


@app.command("show")
def show() -> None:
    """Print the exposition once (what a scrape would return)."""
    from prometheus_client import generate_latest

    from bridge.ops import metrics

    registry = metrics.build_registry(metrics.collector_from_settings(STATE.settings))
    sys.stdout.write(generate_latest(registry).decode())
