"""Writing tables: the one transaction that creates, appends to, replaces, drops or renames a
table together with its metadata and HEALPix index, so a failed write leaves the old table
exactly as it was.

Column metadata (unit, UCD, description, ...) of uploads is kept in the database's
``archive_meta`` schema (see ``backends/metadata.py``), as is each table's last-write time
(``info['modified:<name>']``) which CasJobs' table list shows. Everything here works on one
cursor of the engine that holds the database (``alias``).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING


from ..sql import quote_ident, quote_literal
from ..backends.metadata import META_SCHEMA
from ..catalog import MYDB_ALIAS, TableInfo
from ..errors import ArchiveError, bad_request, not_found
from ..formats.base import META_KEYS
from ..sql import HEALPIX_INFO_PREFIX, healpix_index, parse_healpix_spec
from .sources import INT_TYPES

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from .sources import Source


MODES = ("auto", "create", "append", "replace")  # auto: create, or append when the table exists
MAX_NAME = 128  # SQL Server's sysname, what CasJobs users are used to
_WIDTHS = {"BOOLEAN": 1, "TINYINT": 1, "UTINYINT": 1, "SMALLINT": 2, "USMALLINT": 2, "INTEGER": 4, "UINTEGER": 4,
           "FLOAT": 4, "DATE": 4, "HUGEINT": 16, "UHUGEINT": 16, "UUID": 16, "INTERVAL": 16, "VARCHAR": 16, "BLOB": 16}  # fmt: skip


def check_table_name(name: str) -> str:
    """``name`` if it can name a MyDB table, else a 400 that says why."""
    if not name or not name.strip():
        raise bad_request("a table name must not be empty")
    if name != name.strip():
        raise bad_request(f"invalid table name {name!r}: no leading or trailing spaces")
    if len(name) > MAX_NAME:
        raise bad_request(f"invalid table name: {len(name)} characters, at most {MAX_NAME} are allowed")
    bad = sorted({c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise bad_request(f"invalid table name {name!r}: it must not contain {', '.join(repr(c) for c in bad)}")
    return name


@dataclass
class UploadResult:
    """What an upload did: the table as it now is, whether it is new, and rows written."""

    table: TableInfo
    created: bool
    rows: int
    mode: str  # what was done: create | append | replace


def write(cur, source: Source, name: str, mode: str, alias: str) -> tuple[str, str, int]:
    """Load a source into table ``name`` in one transaction with its metadata and index:
    (what was done, the table's name, rows written)."""
    _ensure_meta(cur, alias)  # before the transaction: concurrent first uploads must not race on DDL
    sky = _sky_of(source)
    with _transaction(cur):
        done, final, rows = _write(cur, source, name, mode, alias, sky)
        _record(cur, final, source if done != "append" else None, alias)
        _index_positions(cur, final, source, done, alias, sky)
    return done, final, rows


def _sky_of(source: Source) -> tuple[str, str] | None:
    """The (ra, dec) columns of an upload whose types are known and that has no index column yet:
    a new table from it gets its HEALPix index in the same pass that loads it."""
    if any(t is None for _, t in source.columns) or any(c.lower() == healpix_index.COLUMN for c, _ in source.columns):
        return None
    return healpix_index.sky_columns(source.columns, source.column_meta)


def _write(cur, source: Source, name: str, mode: str, alias: str = MYDB_ALIAS, sky=None) -> tuple[str, str, int]:
    """Create, replace or append inside the open transaction: (what was done, table name, rows).

    ``sky``: (ra, dec) columns; a new table then gets its index column and is stored in its order."""
    existing = _existing(cur, name, alias)
    select = f"SELECT * FROM {source.from_sql}"
    if sky is not None:
        select = healpix_index.ordered(healpix_index.with_index(select, *sky))
    if existing is not None and existing[1] == "view":
        raise ArchiveError("conflict", f"{existing[0]} is a view in MyDB; drop it first to upload a table of that name", 409)
    if existing is None:
        if mode == "append":
            raise not_found(f"unknown table {name!r} in MyDB: nothing to append to", table=name)
        rows = cur.execute(f"CREATE TABLE {_target(name, alias)} AS {select}", source.params).fetchone()[0]
        return "create", name, int(rows or 0)
    if mode == "create":
        raise ArchiveError("conflict", f"table {existing[0]} already exists in MyDB; append to it or replace it", 409)
    if mode == "replace":
        cur.execute(f"DROP TABLE {_target(existing[0], alias)}")
        rows = cur.execute(f"CREATE TABLE {_target(name, alias)} AS {select}", source.params).fetchone()[0]
        return "replace", name, int(rows or 0)
    table_cols = cur.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
        "AND table_name = ? ORDER BY column_index",
        [alias, existing[0]],
    ).fetchall()
    by_name = {c.lower(): (c, t) for c, t in source.columns}
    if healpix_index.COLUMN not in by_name:  # an indexed table: the index of new rows is computed after
        table_cols = [(c, t) for c, t in table_cols if c.lower() != healpix_index.COLUMN]
    want = {c.lower() for c, _ in table_cols}
    if set(by_name) != want or len(by_name) != len(source.columns):
        missing = [c for c, _ in table_cols if c.lower() not in by_name]
        extra = [c for c, _ in source.columns if c.lower() not in want]
        why = "; ".join(p for p in (f"missing: {', '.join(missing)}" if missing else "",
                                     f"not in the table: {', '.join(extra)}" if extra else "") if p) or "duplicate names"  # fmt: skip
        raise bad_request(
            f"the upload's columns ({', '.join(c for c, _ in source.columns)}) do not match those of table "
            f"{existing[0]} ({', '.join(c for c, _ in table_cols)}): {why}", table=existing[0])  # fmt: skip
    exprs = [_fit(by_name[c.lower()][0], by_name[c.lower()][1], c, t) for c, t in table_cols]
    rows = cur.execute(
        f"INSERT INTO {_target(existing[0], alias)} ({', '.join(quote_ident(c) for c, _ in table_cols)}) "
        f"SELECT {', '.join(exprs)} FROM {source.from_sql}",
        source.params,
    ).fetchone()[0]
    return "append", existing[0], int(rows or 0)


def _index_positions(cur, name: str, source: Source, done: str, alias: str, indexed=None) -> None:
    """Give a table with sky positions its HEALPix index (``healpix_index``), and declare it.

    ``indexed``: the (ra, dec) columns ``_write`` already made the index of."""
    key = f"{HEALPIX_INFO_PREFIX}{name}"
    declared = cur.execute(f"SELECT value FROM {_meta(alias)}.info WHERE key = ?", [key]).fetchall()
    if done == "append":
        if declared:  # fill the index of the appended rows
            index = parse_healpix_spec(declared[0][0])
            healpix_index.index_table(cur, alias, name, index.ra, index.dec)
        return
    sky = indexed
    if sky is None:
        columns = cur.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index",
            [alias, name],
        ).fetchall()
        sky = healpix_index.sky_columns(columns, source.column_meta)
        if sky is None or any(c.lower() == healpix_index.COLUMN for c, _ in columns):
            return
        healpix_index.index_table(cur, alias, name, *sky)
    cur.execute(
        f"INSERT OR REPLACE INTO {_meta(alias)}.columns VALUES (?, ?, NULL, 'pos.healpix', ?, NULL, NULL)",
        [name, healpix_index.COLUMN, healpix_index.DESCRIPTION],
    )
    cur.execute(f"INSERT OR REPLACE INTO {_meta(alias)}.info VALUES (?, ?)", [key, healpix_index.spec(*sky)])


def _fit(src: str, src_type: str | None, column: str, target_type: str) -> str:
    """A value converted to the table's column type, or an error naming column and value.

    A plain cast would round ``1.5`` into an integer column; this refuses it instead.
    """
    col = quote_ident(src)
    if src_type == target_type:
        return col
    as_t = f"TRY_CAST({col} AS {target_type})"
    ok = f"{as_t} IS NOT NULL"
    if target_type in INT_TYPES and src_type not in INT_TYPES:
        ok += f" AND TRY_CAST({col} AS DOUBLE) = {as_t}"
    msg = quote_literal(f"column {column}: value '") + f" || CAST({col} AS VARCHAR) || " + quote_literal(f"' is not a valid {target_type}")
    return f"CASE WHEN {col} IS NULL THEN NULL WHEN {ok} THEN {as_t} ELSE error({msg}) END"


def drop(cur, name: str, alias: str, context: str) -> None:
    """Drop a table or view of the database ``alias`` (context ``context``) and its metadata."""
    with _transaction(cur):
        existing = _existing(cur, name, alias)
        if existing is None:
            raise not_found(f"unknown table {name!r} in {context}", table=name)
        cur.execute(f"DROP {existing[1].upper()} {_target(existing[0], alias)}")
        _forget(cur, existing[0], alias)


def rename(cur, name: str, new_name: str, alias: str, context: str) -> None:
    """Rename a table (409 if another table has the new name); its metadata follows it."""
    _ensure_meta(cur, alias)
    with _transaction(cur):
        existing = _existing(cur, name, alias)
        if existing is None:
            raise not_found(f"unknown table {name!r} in {context}", table=name)
        other = _existing(cur, new_name, alias)
        if other is not None and other[0].lower() != existing[0].lower():
            raise ArchiveError("conflict", f"{context} already has a {other[1]} named {other[0]}", 409, details={"table": other[0]})
        if existing[0] != new_name:
            _no_indexes(cur, existing[0], alias, "renaming it")
            cur.execute(f"ALTER {existing[1].upper()} {_target(existing[0], alias)} RENAME TO {quote_ident(new_name)}")
            if _has_meta(cur, alias):
                for t in ("tables", "columns"):
                    cur.execute(f"UPDATE {_meta(alias)}.{t} SET table_name = ? WHERE lower(table_name) = lower(?)", [new_name, existing[0]])
                cur.execute(f"DELETE FROM {_meta(alias)}.info WHERE key = ?", [_modified_key(existing[0])])
                cur.execute(
                    f"UPDATE {_meta(alias)}.info SET key = ? WHERE lower(key) = lower(?)",
                    [HEALPIX_INFO_PREFIX + new_name, HEALPIX_INFO_PREFIX + existing[0]],
                )
            _record(cur, new_name, None, alias)


def _existing(cur, name: str, alias: str = MYDB_ALIAS) -> tuple[str, str] | None:
    """(exact name, 'table' | 'view') of a MyDB table or view named ``name`` in any case."""
    row = cur.execute(
        "SELECT table_name, 'table' FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
        "AND lower(table_name) = lower($n) UNION ALL SELECT view_name, 'view' FROM duckdb_views() "
        "WHERE database_name = $db AND schema_name = 'main' AND NOT internal AND lower(view_name) = lower($n)",
        {"db": alias, "n": name},
    ).fetchone()
    return (row[0], row[1]) if row else None


def _no_indexes(cur, table: str, alias: str, doing: str) -> None:
    """A 409 naming a table's indexes: DuckDB cannot rename a table that has any."""
    names = [r[0] for r in cur.execute(
        "SELECT index_name FROM duckdb_indexes() WHERE database_name = ? AND schema_name = 'main' AND table_name = ? "
        "ORDER BY index_name", [alias, table],
    ).fetchall()]  # fmt: skip
    if names:
        raise ArchiveError(
            "conflict", f"table {table} has indexes ({', '.join(names)}): drop them (DROP INDEX) before {doing}, and create them again after",
            409, details={"table": table, "indexes": names},
        )  # fmt: skip


def _target(name: str, alias: str = MYDB_ALIAS) -> str:
    return f"{quote_ident(alias)}.main.{quote_ident(name)}"


@contextlib.contextmanager
def _transaction(cur):
    """BEGIN ... COMMIT on a cursor; ROLLBACK on any error, so nothing half-done is kept."""
    import duckdb
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed statement may have aborted it already
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


# -- metadata in MyDB's archive_meta (same shape as backends/metadata.py, but qualified with the
# MyDB alias: the engine's pooled connections must not switch their default database) ------------
def _meta(alias: str) -> str:
    return f"{quote_ident(alias)}.{META_SCHEMA}"


def _meta_ddl(alias: str) -> str:
    m = _meta(alias)
    return f"""
CREATE SCHEMA IF NOT EXISTS {m};
CREATE TABLE IF NOT EXISTS {m}.tables(table_name VARCHAR PRIMARY KEY, description VARCHAR);
CREATE TABLE IF NOT EXISTS {m}.columns(table_name VARCHAR, column_name VARCHAR, unit VARCHAR, ucd VARCHAR,
    description VARCHAR, utype VARCHAR, xtype VARCHAR, PRIMARY KEY (table_name, column_name));
CREATE TABLE IF NOT EXISTS {m}.info(key VARCHAR PRIMARY KEY, value VARCHAR);
"""


def _modified_key(name: str) -> str:
    return f"modified:{name.lower()}"


def _has_meta(cur, alias: str = MYDB_ALIAS) -> bool:
    return bool(cur.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = 'info'",
        [alias, META_SCHEMA],
    ).fetchall())  # fmt: skip


def _ensure_meta(cur, alias: str = MYDB_ALIAS) -> None:
    if _has_meta(cur, alias):
        return
    with _META_DDL:  # two first writes at once each made it, and one failed on the other's: a catalog write-write conflict
        if not _has_meta(cur, alias):
            cur.execute(_meta_ddl(alias))


_META_DDL = threading.Lock()


def _record(cur, name: str, source: Source | None, alias: str = MYDB_ALIAS) -> None:
    """Note the table's write time; with ``source``, replace its metadata by the upload's."""
    if source is not None:
        _forget(cur, name, alias)
        cols = [[name, c, *(m.get(k) or None for k in META_KEYS)] for c, m in source.column_meta.items() if m]
        if source.description or cols:
            cur.execute(f"INSERT INTO {_meta(alias)}.tables VALUES (?, ?)", [name, source.description])
        if cols:
            cur.executemany(f"INSERT INTO {_meta(alias)}.columns VALUES ({', '.join('?' * (2 + len(META_KEYS)))})", cols)
    cur.execute(f"INSERT OR REPLACE INTO {_meta(alias)}.info VALUES (?, ?)", [_modified_key(name), repr(time.time())])


def _forget(cur, name: str, alias: str = MYDB_ALIAS) -> None:
    if not _has_meta(cur, alias):
        return
    for t in ("tables", "columns"):
        cur.execute(f"DELETE FROM {_meta(alias)}.{t} WHERE lower(table_name) = lower(?)", [name])
    cur.execute(f"DELETE FROM {_meta(alias)}.info WHERE key = ? OR lower(key) = lower(?)", [_modified_key(name), HEALPIX_INFO_PREFIX + name])



def modified_times(cur, alias: str) -> dict[str, float]:
    """The last-write times recorded in a database, by table name in lower case."""
    recorded: dict[str, float] = {}
    if _has_meta(cur, alias):
        for key, value in cur.execute(f"SELECT key, value FROM {_meta(alias)}.info WHERE key LIKE 'modified:%'").fetchall():
            try:
                recorded[key[len("modified:"):]] = float(value)
            except (TypeError, ValueError):
                pass
    return recorded


def size_kb(t: TableInfo) -> int:
    """An estimate: rows times the in-memory width of each column (strings and nested: 16 bytes)."""
    width = 0
    for c in t.columns:
        base = c.datatype.upper().split("(")[0]
        width += _WIDTHS.get(base, 16 if "[" in base or base in ("STRUCT", "MAP", "UNION") else 8)
    return math.ceil((t.rows or 0) * width / 1024)

