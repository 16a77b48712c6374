"""Queries on mounted SQL servers (PostgreSQL, SQLite): routed to the server in its own dialect.

A query whose tables all live on one SQL-server mount is pushed down whole. A query that
reads such a server and writes into a DuckDB database (``SELECT ... INTO mydb.T``, a job's
target table) streams the server's rows into DuckDB. Joining a server's tables with tables
of another backend in one query is refused with a clear error (the planner decides which).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import sqlglot
from sqlglot import exp

from .. import sql as sqlmod
from ..errors import ArchiveError
from ..sql import quote_ident
from .engines import engine_error
from .pool import EngineRef, QueryResult, rows_affected_result

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..backends.sqlalchemy import SqlBackend


def _names(statements) -> dict[tuple[str, str, str], str]:
    out = {}
    for st in statements:
        for t in st.tables or []:
            out[(t.catalog, t.schema, t.name)] = t.name
        if st.into is not None:
            out[(st.into.catalog, st.into.schema, st.into.name)] = st.into.name
    return out


def pushed_sql(backend: SqlBackend, compiled: sqlmod.Compiled) -> str:
    """The SQL sent to the server (what compile shows as the 'Pushed SQL' phase)."""
    out = []
    for st in compiled.statements:
        select = _select_part(st)
        out.append(backend.transpile(select or st.sql, _names([st])))
    return ";\n".join(out)


def _select_part(st: sqlmod.Statement) -> str | None:
    """For ``CREATE TABLE <duckdb> AS <select on the server>``: the select, else None."""
    if st.kind != "write" or st.into is None:
        return None
    tree = sqlglot.parse_one(st.sql, read="duckdb")
    if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
        return tree.expression.sql(dialect="duckdb", identify=True)
    return None


def run(
    backend: SqlBackend,
    compiled: sqlmod.Compiled,
    *,
    target: EngineRef | None = None,
    row_limit: int | None = None,
    time_limit: float | None = None,
    column_meta: dict | None = None,
    on_cancel=None,
) -> QueryResult:
    """Run compiled statements that read one SQL server: on the server, or copied into DuckDB
    (``target``: the engine holding the DuckDB table written)."""
    if len(compiled.statements) != 1:
        raise ArchiveError("bad_request", "queries on a SQL-server mount run one statement at a time")
    st = compiled.statements[0]
    if on_cancel is not None:
        on_cancel(backend.interrupt_all)
    if target is not None:
        return _copy_into(target, backend, st, time_limit=time_limit, column_meta=column_meta)
    return backend.run(st.sql, st.params, _names([st]), time_limit=time_limit, row_limit=row_limit, column_meta=column_meta)


def _copy_into(engine: EngineRef, backend, st, *, time_limit, column_meta) -> QueryResult:
    """``CREATE TABLE <duckdb target> AS <select on the server>``: the server's rows stream in."""
    import duckdb
    select = _select_part(st)
    if select is None:
        raise ArchiveError("bad_request", "only SELECT ... INTO / CREATE TABLE ... AS SELECT can copy from a SQL server")
    source = backend.run(select, st.params, _names([st]), time_limit=time_limit, column_meta=column_meta)
    tree = sqlglot.parse_one(st.sql, read="duckdb")
    replace = bool(tree.args.get("replace"))
    target = f"{quote_ident(st.into.catalog)}.{quote_ident(st.into.schema)}.{quote_ident(st.into.name)}"
    cur = engine.cursor()
    reader = pa.RecordBatchReader.from_batches(source.schema, source.batches())
    try:
        cur.register("__archive_source", reader)
        verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        cur.execute(f"{verb} {target} AS SELECT * FROM __archive_source")
        rows = cur.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
        cur.unregister("__archive_source")
    except duckdb.Error as exc:
        raise engine_error(exc) from None
    finally:
        source.close()
        cur.close()
    return rows_affected_result(int(rows))
