"""The tables a SQL server offers, as archive table metadata: names, columns (with their DuckDB
type names and comments), row counts (exact for small tables, within a time budget) and sizes."""

from __future__ import annotations

import sqlite3
import time

from ...catalog import ColumnInfo, TableInfo
from ..metadata import quote_ident
from .types import NUMERIC, duck_type_name, pg_arrow_type, sqlite_affinity

_COUNT_BELOW = 100_000  # trust the planner's estimate from this many rows up


def pg_tables(con, deadline: float, *, context: str, default_schema: str | None) -> tuple[dict[str, TableInfo], dict]:
    """Every table and view a PostgreSQL connection may read (see ``SqlBackend.tables``), and
    its remote (schema, table) by lower-case archive name; row counts until ``deadline``."""
    from psycopg import sql as pgsql

    cur = con.cursor()
    rels = cur.execute(
        """SELECT c.oid, n.nspname, c.relname, c.reltuples::bigint, obj_description(c.oid, 'pg_class'),
                  CASE WHEN c.relkind IN ('r', 'm') THEN pg_total_relation_size(c.oid) END
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
             AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
           ORDER BY n.nspname <> current_schema(), n.nspname, c.relname""",
        (),
    ).fetchall()
    columns: dict[int, list[ColumnInfo]] = {}
    for relid, name, oid, typmod, note in cur.execute(
        """SELECT a.attrelid, a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,
                  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, col_description(a.attrelid, a.attnum)
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum""",
        ([r[0] for r in rels],),
    ):
        precision = scale = None
        if oid == NUMERIC and typmod and typmod >= 4:  # typmod packs (precision << 16 | scale) + 4
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        t = pg_arrow_type(oid, precision, scale)
        columns.setdefault(relid, []).append(ColumnInfo(name, duck_type_name(t), description=note))
    out: dict[str, TableInfo] = {}
    remote: dict[str, tuple[str | None, str]] = {}
    for relid, schema, table, estimate, note, size in rels:
        key = table if schema == default_schema else f"{schema}/{table}"
        if key.lower() in out:
            continue  # names differing only in case: the archive's names are case-insensitive
        rows = int(estimate) if estimate is not None and estimate >= 0 else None
        left = deadline - time.monotonic()
        if (rows is None or rows < _COUNT_BELOW) and left > 0:
            # Small or never-analysed relations get an exact count, each bounded in time.
            cur.execute("SAVEPOINT archive_count")
            try:
                cur.execute(f"SET LOCAL statement_timeout = {max(1, int(min(left, 1.0) * 1000))}")
                q = pgsql.SQL("SELECT count(*) FROM {}.{}").format(pgsql.Identifier(schema), pgsql.Identifier(table))
                rows = cur.execute(q).fetchone()[0]
                cur.execute("RELEASE SAVEPOINT archive_count")
            except Exception:  # noqa: BLE001 - too slow, or unreadable: keep the estimate
                cur.execute("ROLLBACK TO SAVEPOINT archive_count")
        out[key.lower()] = TableInfo(key, context, rows=rows, size_bytes=size, description=note, columns=columns.get(relid, []))
        remote[key.lower()] = (schema, table)
    return out, remote


def sqlite_tables(con: sqlite3.Connection, deadline: float, *, context: str) -> tuple[dict[str, TableInfo], dict]:
    """Every table and view of a SQLite file, as ``pg_tables``; SQLite counts by scanning, so
    counting stops at ``deadline``."""
    out: dict[str, TableInfo] = {}
    remote: dict[str, tuple[str | None, str]] = {}
    for (name,) in con.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall():
        quoted = quote_ident(name)
        cols = [ColumnInfo(r[1], sqlite_affinity(r[2])) for r in con.execute(f"PRAGMA table_xinfo({quoted})") if r[6] != 1]
        rows = None
        if time.monotonic() < deadline:  # SQLite counts by scanning: stop at the deadline
            con.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                rows = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
            except sqlite3.Error:
                pass
            finally:
                con.set_progress_handler(None, 0)
        out.setdefault(name.lower(), TableInfo(name, context, rows=rows, columns=cols))
        remote.setdefault(name.lower(), (None, name))
    return out, remote
