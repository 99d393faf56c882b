"""Bulk inserts for the import path: many rows, one executemany per chunk.

Values go through the columns' own bind processors, as in ``conn.execute(table.insert(),
rows)``, but a value that is the same in every row (a timestamp, the actor) is converted once,
not per row: for a 100k-job import that conversion cost more than the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain, islice
from typing import Any

WRITE_CHUNK = 2000  # rows per executemany on the bulk import path


def insert_many(
    conn: Any, table: Any, rows: Iterable[dict[str, Any]], constants: Mapping[str, Any]
) -> None:
    """INSERT ``rows`` (dicts with the same keys) plus ``constants`` (the same in every row),
    WRITE_CHUNK rows per executemany. Values go through the columns' own bind processors, as
    in ``conn.execute(table.insert(), rows)``, but a constant is converted once, not per row:
    on the import path (100k rows, timestamps in each) that conversion cost more than SQL."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return
    dialect = conn.dialect
    keys = [*first, *constants]
    compiled = table.insert().compile(dialect=dialect, column_keys=keys)
    names = list(compiled.positiontup) if compiled.positional else list(compiled.params)
    if sorted(names) != sorted(keys):  # bind names that are not the column keys: plain path
        rest = chain((first,), it)
        while plain := [{**r, **constants} for r in islice(rest, WRITE_CHUNK)]:
            conn.execute(table.insert(), plain)
        return
    procs = {k: table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys}
    fixed = {k: (procs[k](v) if procs[k] else v) for k, v in constants.items()}
    varying = [(k, procs[k]) for k in first]
    sql = str(compiled)
    chunk: list[Any] = []
    for row in chain((first,), it):
        values = dict(fixed)
        for k, proc in varying:
            values[k] = proc(row[k]) if proc is not None else row[k]
        chunk.append(tuple(values[n] for n in names) if compiled.positional else values)
        if len(chunk) == WRITE_CHUNK:
            conn.exec_driver_sql(sql, chunk)
            chunk = []
    if chunk:
        conn.exec_driver_sql(sql, chunk)
