"""The compact scan of the ``runs`` table behind a shadow report's fast path.

:func:`compact_rows` selects one job's window as plain tuples (:data:`CompactRow`) with the
conversions done in SQL: the slot as a key comparable to :func:`slot_keys` of the schedule's
slots, one integer code per record for its path, role and status (0 when its fire lag exceeds
the given limit or it is not a candidate for a quiet match), the exit status, the output digest
(when asked) and the row id. :mod:`shadow.scan` reads the codes (see its docstring for what a
quiet slot is). Known databases: :func:`supported`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.store.runs import RUNS

__all__ = ["CELERY", "CompactRow", "compact_rows", "compact_sql", "slot_keys", "supported"]

# (slot key, code, exit_status, output digest or None, row id); code: 0 = not a quiet candidate
CompactRow = tuple[Any, int, int | None, str | None, int]
# A candidate record's code is its kind (1/2 shadow failed-or-interrupted/succeeded, 3/4 the same
# authoritative, 5 observe/observed) times 1 on the legacy path, times CELERY on the celery path,
# so the sum of a slot's two codes names the pair (two records of one path never sum alike).
CELERY = 16
_KIND_SQL = (
    "CASE WHEN role IN ('authoritative', 'shadow') AND status IN ('succeeded', 'failed', "
    "'interrupted') THEN (CASE WHEN status = 'succeeded' THEN 2 ELSE 1 END) "
    "+ (CASE WHEN role = 'authoritative' THEN 2 ELSE 0 END) "
    "WHEN role = 'observe' AND status = 'observed' THEN 5 ELSE 0 END"
)
_CODE_SQL = (
    "CASE WHEN path IN ('legacy', 'celery') AND ({fire} IS NULL OR abs({lag}) <= {mark}) "
    f"THEN ({{kind}}) * (CASE path WHEN 'celery' THEN {CELERY} ELSE 1 END) ELSE 0 END"
)
_FIRE = "COALESCE(fired_at, started_at)"
_SQL = {  # dialect: (slot key, fire lag in seconds, placeholder)
    "sqlite": ("CAST(slot AS TEXT)", f"(julianday({_FIRE}) - julianday(slot)) * 86400.0", "?"),
    "postgresql": ("date_part('epoch', slot)", f"date_part('epoch', {_FIRE} - slot)", "%s"),
}


def supported(session: Session) -> bool:
    """Whether the compact scan knows this database (else use the general path)."""
    return session.connection().dialect.name in _SQL


def slot_keys(session: Session, slots: Sequence[datetime]) -> dict[Any, int]:
    """{key of the slot as :func:`compact_rows` selects it: its index} for expected slots."""
    dialect = session.connection().dialect
    if dialect.name == "postgresql":
        return {s.timestamp(): i for i, s in enumerate(slots)}
    to_db = RUNS.c.slot.type.dialect_impl(dialect).bind_processor(dialect)
    assert to_db is not None
    return {to_db(s): i for i, s in enumerate(slots)}


def compact_sql(dialect: str, digest: bool) -> str:
    key, lag, mark = _SQL[dialect]
    code = _CODE_SQL.format(fire=_FIRE, lag=lag, mark=mark, kind=_KIND_SQL)
    return (f"SELECT {key}, {code}, exit_status, {'output_digest' if digest else 'NULL'}, id "
            f"FROM runs WHERE job_id = {mark} AND slot > {mark} AND slot <= {mark} "
            "ORDER BY job_id, slot, id")


def compact_rows(session: Session, job_id: str, since: datetime, until: datetime, *,
                 lag_limit: float, digest: bool) -> list[CompactRow]:
    """One job's window ``(since, until]`` as :data:`CompactRow` tuples, ordered by slot and
    insertion; a record whose absolute fire lag exceeds ``lag_limit`` seconds gets code 0."""
    conn = session.connection()
    dialect = conn.dialect
    to_db = RUNS.c.slot.type.dialect_impl(dialect).bind_processor(dialect)
    bounds = [to_db(t) if to_db else t for t in (since, until)]
    raw = conn.connection.driver_connection
    assert raw is not None
    # PostgreSQL: binary results (no text parsing of the numbers)
    cursor = raw.cursor(binary=True) if dialect.name == "postgresql" else raw.cursor()
    try:
        cursor.execute(compact_sql(dialect.name, digest), [lag_limit, job_id, *bounds])
        return list(cursor.fetchall())
    finally:
        cursor.close()
