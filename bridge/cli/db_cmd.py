"""``bridge db``: registry schema management (Alembic migrations)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from bridge.cli.context import STATE, emit_json, out
from bridge.core.errors import InputError
from bridge.store import db

app = typer.Typer(help="Registry schema: apply or inspect migrations.", no_args_is_help=True)


def _report(state: db.SchemaState, as_json: bool, verb: str) -> None:
    reg = STATE.registry(check_schema=False)
    if as_json:
        emit_json(
            {
                "database": {"url": reg.masked_url},
                "current": state.current,
                "head": state.head,
                "up_to_date": state.up_to_date,
            }
        )
    else:
        out.print(f"{verb} {reg.masked_url}: schema at {state.current} (head {state.head})")


def _migrate(step: Callable[[Any, str], db.SchemaState], revision: str) -> db.SchemaState:
    """Run an Alembic step; an unknown or ambiguous revision is bad input (exit 2)."""
    if not revision.strip():
        raise InputError("the revision is empty (e.g. 'head', 'base' or '0001')")
    return step(STATE.registry(check_schema=False).engine, revision)


@app.command("upgrade")
def upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: the newest)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
) -> None:
    """Apply migrations up to REVISION. Safe to run again; refuses a newer database."""
    _report(_migrate(db.upgrade, revision), as_json, "upgraded")


@app.command("downgrade")
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. 'base' or '0001'."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: a downgrade can drop data."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
) -> None:
    """Revert migrations down to REVISION (drops tables for 'base': needs --yes)."""
    if not yes:
        raise typer.BadParameter("a downgrade can drop registry data; add --yes to confirm")
    _report(_migrate(db.downgrade, revision), as_json, "downgraded")


@app.command("current")
def current(as_json: bool = typer.Option(False, "--json", help="Print a JSON document.")) -> None:
    """Show the schema revision of the registry and the newest this code knows.

    Exit 1 when the database is behind (run `bridge db upgrade`)."""
    reg = STATE.registry(check_schema=False)
    state = db.schema_state(reg.engine)
    _report(state, as_json, "registry")
    if not state.up_to_date:
        raise typer.Exit(1)
