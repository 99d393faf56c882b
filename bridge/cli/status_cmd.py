"""``bridge status``: can the bridge reach Redis and the registry, and what do they hold."""

from __future__ import annotations

from typing import Any

import typer

from bridge import redis_conn
from bridge.cli.context import STATE, emit_json, err, out
from bridge.errors import BridgeError, ExitCode
from bridge.redbeat import EntryStore
from bridge.store.repos import JobRepo


def _redis_status() -> tuple[dict[str, Any], BridgeError | None]:
    settings = STATE.settings
    doc: dict[str, Any] = {"ok": False, "url": settings.masked_redis_url}
    try:
        doc["version"] = redis_conn.ping(settings)
        doc["ok"] = True
        store = EntryStore(redis_conn.client(settings), settings.redbeat_key_prefix)
        doc["entries"] = store.count()
        doc["quarantined"] = store.quarantined()
        doc["beat"] = _beat(store)
    except BridgeError as e:
        doc["error"] = e.message
        return doc, e
    return doc, None


def _beat(store: EntryStore) -> dict[str, Any] | None:
    """Beat's liveness key: who holds the lock, when it last ticked, its SQL backlog."""
    import time

    from bridge.beat_store import beat_key

    prefix = STATE.settings.redbeat_key_prefix
    raw = store.r.hgetall(beat_key(prefix))
    if not raw:
        return None
    tick = float(raw.get("tick", 0) or 0)
    return {
        "holder": raw.get("holder"),
        "last_tick": tick,
        "age_seconds": round(time.time() - tick, 1) if tick else None,
        "backlog": int(raw.get("backlog", 0) or 0),
        "registry_error": raw.get("registry_error") or None,
    }


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
