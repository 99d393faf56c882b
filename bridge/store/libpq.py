"""PostgreSQL for the legacy shim's bare driver (:mod:`bridge.store.bare`): libpq through
``ctypes``, else psycopg. A module of its own so the SQLite path never compiles it.

:class:`LibPq` is just enough of a DB-API connection for :class:`bridge.store.bare.Store`: text
parameters and results, ``%s`` placeholders, autocommit unless ``BEGIN`` is executed.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the shim's hot path imports this module
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

CONNECT_TIMEOUT_SECONDS = 5


def connect_pg(url: str) -> Any:
    """libpq through ``_ctypes`` when it can be loaded, else psycopg (whose import
    alone costs 80-130 ms: more than everything else the shim does)."""
    scheme, rest = url.split("://", 1)
    conninfo = f"{scheme.split('+', 1)[0]}://{rest}"
    libpq = load_libpq()
    if libpq is not None:
        return LibPq(libpq, conninfo)
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def _libpq_candidates() -> Iterator[str]:
    """The system's libpq, then the copy bundled with psycopg-binary (found, not imported;
    looked for only when the system has none)."""
    yield "libpq.so.5"
    import importlib.util

    spec = importlib.util.find_spec("psycopg_binary")
    if spec is not None and spec.origin:
        libs = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "psycopg_binary.libs")
        try:
            names = sorted(os.listdir(libs))
        except OSError:
            return
        yield from (os.path.join(libs, n) for n in names if n.startswith("libpq"))


def load_libpq() -> Any:
    """libpq with the signatures :class:`LibPq` uses, or None when none can be loaded.

    Bound through ``_ctypes``, the C module under ``ctypes``: ``ctypes`` itself (its Python
    layer, ``struct``) costs the shim about 3 ms more per cron job; the few types used here are
    its own definitions (``c_void_p``, ``c_int``, ``c_char_p``: :class:`_Types`)."""
    t = _Types()
    for candidate in _libpq_candidates():
        lib = _Library()
        try:
            lib._handle = t.dlopen(candidate, os.RTLD_NOW | os.RTLD_LOCAL)  # as ctypes.CDLL
        except OSError:
            continue
        p, i, s = t.c_void_p, t.c_int, t.c_char_p
        for name, res, args in [
            ("PQconnectdb", p, [s]), ("PQstatus", i, [p]), ("PQerrorMessage", s, [p]),
            ("PQfinish", None, [p]), ("PQresultStatus", i, [p]), ("PQclear", None, [p]),
            ("PQexecParams", p, [p, s, i, p, t.POINTER(s), p, p, i]),
            ("PQresultErrorMessage", s, [p]), ("PQresultErrorField", s, [p, i]),
            ("PQntuples", i, [p]), ("PQnfields", i, [p]), ("PQgetvalue", s, [p, i, i]),
            ("PQgetisnull", i, [p, i, i]), ("PQcmdTuples", s, [p]),
        ]:
            fn = t.function((name, lib))
            fn.restype, fn.argtypes = res, args
            setattr(lib, name, fn)
        lib.c_char_p = s
        return lib
    return None


class _Library:
    """A loaded library (what ``_ctypes`` function pointers resolve their symbol in: ``_handle``)
    and its bound functions as attributes (as a ``ctypes.CDLL``)."""

    _handle: int
    c_char_p: Any


class _Types:
    """``ctypes``' definitions of the types libpq's signatures use, on ``_ctypes``."""

    def __init__(self) -> None:
        import _ctypes

        class c_void_p(_ctypes._SimpleCData):
            _type_ = "P"

        class c_int(_ctypes._SimpleCData):
            _type_ = "i"

        class c_char_p(_ctypes._SimpleCData):
            _type_ = "z"

        class function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = c_int

        self.c_void_p: Any = c_void_p
        self.c_int: Any = c_int
        self.c_char_p: Any = c_char_p
        self.function: Any = function
        self.POINTER: Any = _ctypes.POINTER
        self.dlopen: Any = _ctypes.dlopen


class LibPqError(Exception):
    """A libpq failure; ``sqlstate`` as PostgreSQL reports it."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class UniqueViolation(LibPqError):
    """SQLSTATE 23505 (named like psycopg's: :class:`bridge.store.bare.Store` knows it by name)."""


class LibPq:
    """Just enough of a DB-API connection over libpq for :class:`Store` (text parameters and
    results, ``%s`` placeholders, autocommit unless ``BEGIN`` is executed)."""

    def __init__(self, lib: Any, conninfo: str) -> None:
        self.lib = lib
        sep = "&" if "?" in conninfo else "?"
        full = (f"{conninfo}{sep}connect_timeout={CONNECT_TIMEOUT_SECONDS}"
                "&client_encoding=UTF8&options=-c%20DateStyle%3DISO")
        self.conn = lib.PQconnectdb(full.encode())
        if not self.conn or lib.PQstatus(self.conn) != 0:  # CONNECTION_OK
            message = (lib.PQerrorMessage(self.conn) or b"out of memory").decode(errors="replace")
            self.close()
            raise LibPqError(message.strip())

    def cursor(self) -> LibPqCursor:
        return LibPqCursor(self)

    def close(self) -> None:
        if self.conn:
            self.lib.PQfinish(self.conn)
            self.conn = None


class LibPqCursor:
    def __init__(self, conn: LibPq) -> None:
        self.conn = conn
        self.rows: list[tuple[str | None, ...]] = []
        self.rowcount = -1

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        lib, parts = self.conn.lib, sql.split("%s")
        text = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]
        values = (lib.c_char_p * max(len(params), 1))(
            *[None if v is None else str(v).encode() for v in params])
        res = lib.PQexecParams(self.conn.conn, text.encode(), len(params), None, values, None,
                               None, 0)
        try:
            if lib.PQresultStatus(res) not in (1, 2):  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
                message = (lib.PQresultErrorMessage(res) if res else None) or \
                    lib.PQerrorMessage(self.conn.conn) or b"no result"
                state = (lib.PQresultErrorField(res, ord("C")) or b"").decode() if res else None
                kind = UniqueViolation if state == "23505" else LibPqError
                raise kind(message.decode(errors="replace").strip(), state)
            self.rows = [
                tuple(None if lib.PQgetisnull(res, r, c) else
                      lib.PQgetvalue(res, r, c).decode() for c in range(lib.PQnfields(res)))
                for r in range(lib.PQntuples(res))
            ]
            self.rowcount = int(lib.PQcmdTuples(res) or b"-1")
        finally:
            if res:
                lib.PQclear(res)

    def fetchone(self) -> tuple[str | None, ...] | None:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[tuple[str | None, ...]]:
        rows, self.rows = self.rows, []
        return rows
