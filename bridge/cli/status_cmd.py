"""``bridge status``: can the bridge reach Redis and the registry, and what do they hold."""

from __future__ import annotations

from typing import Any

import typer

from bridge import redis_conn
from bridge.cli.context import STATE, emit_json, err, out
from bridge.errors import BridgeError, ExitCode
from bridge.store.repos import JobRepo


def _redis_status() -> tuple[dict[str, Any], BridgeError | None]:
    settings = STATE.settings
    doc: dict[str, Any] = {"ok": False, "url": settings.masked_redis_url}
    try:
        doc["version"] = redis_conn.ping(settings)
        doc["ok"] = True
        from bridge.redbeat import EntryStore

        store = EntryStore(redis_conn.client(settings), settings.redbeat_key_prefix)
        doc["entries"] = store.count()
        doc["quarantined"] = store.quarantined()
    except BridgeError as e:
        doc["error"] = e.message
        return doc, e
    return doc, None


def _database_status() -> tuple[dict[str, Any], int, BridgeError | None]:
    settings = STATE.settings
    doc: dict[str, Any] = {"ok": False, "url": settings.masked_database_url}
    try:
        reg = STATE.registry()
        doc["version"] = reg.ping()
        from bridge.store.db import schema_state

        doc["schema"] = schema_state(reg.engine).current
        with reg.session() as s:
            jobs = JobRepo(s).count()
        doc["ok"] = True
        return doc, jobs, None
    except BridgeError as e:
        doc["error"] = e.message
        return doc, 0, e


def status(as_json: bool = typer.Option(False, "--json", help="Print a JSON document.")) -> None:
    """Reachability and versions of Redis and the registry, and how many jobs it holds.

    Exit 3 when Redis or the database cannot be reached (one line names the masked URL)."""
    redis_doc, redis_err = _redis_status()
    db_doc, jobs, db_err = _database_status()
    doc = {
        "redis": redis_doc,
        "database": db_doc,
        "jobs": jobs,
        "timezone": STATE.settings.timezone,
    }
    if as_json:
        emit_json(doc)
    else:
        for name, d in (("redis", redis_doc), ("database", db_doc)):
            mark = "[green]ok[/green]" if d["ok"] else "[red]UNREACHABLE[/red]"
            detail = d.get("version") or d.get("error", "")
            out.print(f"{name:9} {mark}  {d['url']}  {detail}", highlight=False)
        if redis_doc.get("ok"):
            out.print(
                f"redbeat   {redis_doc['entries']} entries, "
                f"{len(redis_doc['quarantined'])} quarantined"
            )
        out.print(f"jobs      {jobs}")
    problem = redis_err or db_err
    if problem is not None:
        if problem.exit_code == ExitCode.UNREACHABLE or not as_json:
            err.print(f"error: {problem}", markup=False, highlight=False)
        raise typer.Exit(int(problem.exit_code))
