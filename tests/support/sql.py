"""A small in-test resolver for the SQL pipeline's tests (no server), and the in-memory databases it
is tried on."""

from __future__ import annotations

import duckdb
import pytest

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.sql import TableTarget, compile_query

PHOTO = [
    # objID, ra, dec, type, state
    (1, 10.0, -1.0, "STAR", "CO"),
    (2, 20.0, 0.5, "GALAXY", "CA"),
    (3, 30.0, 1.5, "STAR", "CO"),
    (4, 40.0, 2.5, "GALAXY", "NY"),
    (5, 50.0, -3.0, "QSO", "CO"),
    (6, 60.0, 4.0, "STAR", "TX"),
]


class DictResolver:
    """Contexts from a dict (DEMO read-only, MyDB writable); tables listed live from DuckDB."""

    def __init__(self, con, default: str = "DEMO"):
        self.con = con
        self.contexts = {"DEMO": ("demo", False), "MyDB": ("mydb", True)}
        self.default = default

    def _context(self, name: str) -> str:
        if name == "" or name.lower() in ("dbo", "main"):
            return self.default
        for ctx in self.contexts:
            if ctx.lower() == name.lower():
                return ctx
        raise ArchiveError("unknown_context", f"unknown context {name!r}", 400)

    def _split(self, parts):
        if len(parts) == 1:
            return self.default, parts[0]
        if len(parts) == 2:
            return self._context(parts[0]), parts[1]
        if len(parts) == 3 and parts[1].lower() in ("", "dbo", "main"):
            return self._context(parts[0]), parts[2]
        raise ArchiveError("unknown_table", f"unknown table {'.'.join(parts)!r}", 400)

    def _tables(self, alias: str) -> dict[str, str]:
        rows = self.con.sql(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = $db "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = $db AND NOT internal",
            params={"db": alias},
        ).fetchall()
        return {r[0].lower(): r[0] for r in rows}

    def _target(self, ctx: str, name: str, *, write: bool, must_exist: bool = True) -> TableTarget:
        alias, writable = self.contexts[ctx]
        if write and not writable:
            raise ArchiveError(
                "permission", f"context {ctx} is read-only; write into your MyDB, e.g. mydb.{name}", 403
            )
        canonical = self._tables(alias).get(name.lower())
        if canonical is None and must_exist:
            message = f"unknown table {name!r} in context {ctx}"
            raise ArchiveError("unknown_table", message, 400, details={"table": name})
        return TableTarget(alias, "main", canonical or name, ctx, writable)

    def resolve_name(self, parts, *, write=False):
        ctx, name = self._split(tuple(parts))
        return self._target(ctx, name, write=write)

    def resolve_path(self, path, *, write=False):
        segs = path.strip("/").split("/")
        if len(segs) != 2:
            raise ArchiveError("unknown_table", f"path not found: {path}", 400)
        return self._target(self._context(segs[0]), segs[1], write=write)

    def new_table(self, parts_or_path, *, language):
        if isinstance(parts_or_path, str):
            parts_or_path = tuple(parts_or_path.strip("/").split("/"))
        ctx, name = self._split(tuple(parts_or_path))
        return self._target(ctx, name, write=True, must_exist=False)


def memory_con() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the empty databases DictResolver's contexts name (``demo``, ``mydb``)."""
    con = duckdb.connect()
    con.sql("ATTACH ':memory:' AS demo")
    con.sql("ATTACH ':memory:' AS mydb")
    return con


def photo_con() -> duckdb.DuckDBPyConnection:
    """`memory_con` with PHOTO as demo's PhotoObj."""
    con = memory_con()
    con.sql('CREATE TABLE demo.main."PhotoObj" ("objID" BIGINT, ra DOUBLE, dec DOUBLE, type VARCHAR, state VARCHAR)')
    con.executemany('INSERT INTO demo.main."PhotoObj" VALUES (?, ?, ?, ?, ?)', PHOTO)
    return con


SPEC = [(101, 1, 0.01), (102, 2, 0.1), (104, 4, 0.2), (105, 5, 2.1)]


def pipeline_con() -> duckdb.DuckDBPyConnection:
    """`photo_con` plus demo's SpecObj (SPEC) and a MyDB table ``T``: what the SQL pipeline tests query."""
    con = photo_con()
    con.sql('CREATE TABLE demo.main."SpecObj" ("specObjID" BIGINT, "bestObjID" BIGINT, z DOUBLE)')
    con.executemany('INSERT INTO demo.main."SpecObj" VALUES (?, ?, ?)', SPEC)
    con.sql('CREATE TABLE mydb.main."T" (x INTEGER, s VARCHAR)')
    con.sql("INSERT INTO mydb.main.\"T\" VALUES (1, 'a'), (2, 'b')")
    return con


def run(con, compiled):
    """Execute every statement in order; return the rows of the last one (None for no rows)."""
    rows = None
    for st in compiled.statements:
        rel = con.sql(st.sql, params=st.params or None)
        rows = rel.fetchall() if rel is not None else None
    return rows


def q(con, resolver, text, language="sql", **kw):
    """Compile ``text`` and run it on ``con``: the last statement's rows."""
    return run(con, compile_query(text, language, resolver, **kw))


def error(text, language, resolver, **kw) -> ArchiveError:
    """The ArchiveError compiling ``text`` raises (the test fails if it compiles)."""
    with pytest.raises(ArchiveError) as info:
        compile_query(text, language, resolver, **kw)
    return info.value


def mydb_tables(con) -> set[str]:
    """The table names in ``con``'s MyDB."""
    return {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables() WHERE database_name = 'mydb'").fetchall()}
