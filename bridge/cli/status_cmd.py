"""``bridge status``: can the bridge reach Redis and the registry, and what do they hold."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text

from bridge.adapters import redis_conn
from bridge.adapters.redbeat_entries import EntryStore
from bridge.cli.context import STATE, emit_json, err, out
from bridge.core.errors import BridgeError, ExitCode, RefusedError
from bridge.store.hosts import jobs_per_host
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

    from bridge.adapters.beat_store import beat_key

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
        from bridge.store.db import ensure_schema, schema_state

        reg = STATE.registry(check_schema=False)
        doc["version"] = reg.ping()
        state = schema_state(reg.engine)
        if reg.engine.dialect.name == "sqlite" and state.known and not state.up_to_date:
            state = ensure_schema(reg.engine)  # what every command does to a SQLite registry
        doc["ok"] = True  # reachable, whatever its schema
        doc["schema"], doc["head"], doc["migrated"] = state.current, state.head, state.up_to_date
        if not state.known:
            raise RefusedError(f"reachable, schema {state.current} is newer than this "
                               f"cron-bridge knows (head {state.head}): upgrade cron-bridge")
        if not state.up_to_date:
            raise RefusedError(f"reachable, schema not migrated ({state.current or 'empty'}, "
                               f"head {state.head}): run `bridge db upgrade`")
        with reg.session() as s:
            jobs = JobRepo(s).count()
            doc["hosts"] = jobs_per_host(s)  # jobs bound to no host are left out
        return doc, jobs, None
    except BridgeError as e:
        doc["error"] = e.message
        return doc, 0, e


def status(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
    quick: bool = typer.Option(
        False, "--quick", help="Only reachability, versions and counts (skip the operational view)."
    ),
) -> None:
    """One screen: Redis and the registry (reachable? versions), beat (holder, last tick),
    workers online and queue depth, jobs by owner, readiness and unresolved shadow mismatches,
    missed/stuck/failed/lost slots in the last 24 h, quarantined entries.

    Exit 3 when Redis or the database cannot be reached (one line names the masked URL)."""
    redis_doc, redis_err = _redis_status()
    db_doc, jobs, db_err = _database_status()
    doc: dict[str, Any] = {
        "redis": redis_doc,
        "database": db_doc,
        "jobs": jobs,
        "timezone": STATE.settings.timezone,
    }
    if not quick and redis_err is None and db_err is None:
        from datetime import UTC, datetime

        from bridge.ops.overview import status_view

        doc["overview"] = status_view(STATE.registry(), STATE.settings, datetime.now(UTC))
    if as_json:
        emit_json(doc)
    else:
        _render(doc, redis_doc, db_doc, jobs)
    problem = redis_err or db_err
    if problem is not None:
        if problem.exit_code == ExitCode.UNREACHABLE or not as_json:
            err.print(f"error: {problem}", markup=False, highlight=False)
        raise typer.Exit(int(problem.exit_code))


def _render(
    doc: dict[str, Any], redis_doc: dict[str, Any], db_doc: dict[str, Any], jobs: int
) -> None:
    for name, d in (("redis", redis_doc), ("database", db_doc)):
        mark = Text("ok", "green") if d["ok"] else Text("UNREACHABLE", "red")
        if d["ok"] and d.get("error"):
            mark = Text("reachable", "yellow")
        detail = d.get("error") or d.get("version") or ""
        out.print(Text.assemble(f"{name:9} ", mark, f"  {d['url']}  {detail}"), highlight=False)
    if redis_doc.get("ok"):
        out.print(
            f"redbeat   {redis_doc['entries']} entries, "
            f"{len(redis_doc['quarantined'])} quarantined",
            highlight=False,
        )
        beat = redis_doc.get("beat")
        out.print(
            "beat      "
            + (
                f"{beat['holder']}, last tick {beat['age_seconds']}s ago, "
                f"SQL backlog {beat['backlog']}"
                if beat
                else "no beat has run"
            ),
            highlight=False,
        )
    hosts = db_doc.get("hosts") or {}
    out.print(f"jobs      {jobs}" + (f" on {len(hosts)} host(s)" if hosts else ""),
              highlight=False)
    view = doc.get("overview")
    if not view:
        return
    for line in _overview_lines(view):
        out.print(line, highlight=False)


def _overview_lines(view: dict[str, Any]) -> list[str]:
    lines = []
    j, w, sh, sl = (view.get(k, {}) for k in ("jobs", "workers", "shadow", "slots_24h"))
    if "by_owner" in j:
        lines.append(
            f"owners    legacy {j['by_owner']['legacy']}, celery {j['by_owner']['celery']}"
            f"; paused {len(j['paused'])}"
        )
    if "online" in w:
        depth = ", ".join(f"{q}={n}" for q, n in w["queue_depth"].items())
        lines.append(f"workers   {len(w['online'])} online; queue depth {depth}")
        for u in w.get("unconsumed", []):
            whose = f"host {u['host']}'s queue" if u["host"] else "queue"
            hint = f" (start `bridge worker --host {u['host']}` there)" if u["host"] else ""
            lines.append(f"ALERT     {whose} {u['queue']}: no live consumer, "
                         f"{u['waiting']} message(s) waiting{hint}")
    if "ready" in sh:
        lines.append(
            f"shadow    {sh['ready']} ready; {sh['jobs_with_unresolved']} job(s) with "
            f"unresolved mismatches ({sh['unresolved_slots']} slots"
            + (f", {sh['lost_slots']} lost" if sh.get("lost_slots") else "")
            + ", last 24 h)"
        )
    if "missed" in sl:
        lines.append("slots 24h " + ", ".join(f"{k} {v}" for k, v in sl.items()))
    for name in ("jobs", "workers", "shadow", "slots_24h"):
        part = view.get(name, {})
        if isinstance(part, dict) and "error" in part:
            lines.append(f"{name:9} unavailable: {part['error']}")
    return lines
