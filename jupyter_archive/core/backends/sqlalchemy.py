"""SQL servers as archive mounts: PostgreSQL (psycopg 3) or a SQLite file, reached through SQLAlchemy.

Queries are pushed down: the pipeline's DuckDB SQL (``core/sql/``) is re-parsed with sqlglot, its
table references become the remote schema-qualified names, and it is emitted in the server's dialect.
Rows stream back from a server-side cursor in chunks, as Arrow record batches whose schema is known
before the first one. SQLAlchemy supplies the URLs and the connection pool; rows are read through the
driver's own cursors (a named psycopg cursor is what ``stream_results`` uses), which give the type
OIDs, ``cancel()`` and ``interrupt()``.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ErrorLevel, SqlglotError

from ..catalog import ColumnInfo, TableInfo
from ..errors import ArchiveError
from ..execution.result import WATCHDOG, QueryResult, rows_affected_result
from ..schema import annotate

_COUNT_BUDGET = 3.0  # seconds tables() may spend on exact row counts
_COUNT_BELOW = 100_000  # trust the planner's estimate from this many rows up
_NUMERIC = 1700

# PostgreSQL type OID -> Arrow type, for the types whose psycopg loaders we keep.
# Every other type is loaded as PostgreSQL's own text form (a string).
_PG_SCALARS: dict[int, pa.DataType] = {
    16: pa.bool_(), 17: pa.binary(), 18: pa.string(), 19: pa.string(), 20: pa.int64(), 21: pa.int16(),
    23: pa.int32(), 25: pa.string(), 26: pa.int64(), 700: pa.float32(), 701: pa.float64(),
    1042: pa.string(), 1043: pa.string(), 1082: pa.date32(), 1083: pa.time64("us"),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), _NUMERIC: pa.float64(),
}  # fmt: skip
# Array OID -> element OID (arrays of the scalars above become Arrow lists).
_PG_ARRAYS = {1000: 16, 1001: 17, 1005: 21, 1007: 23, 1016: 20, 1021: 700, 1022: 701, 1009: 25,
              1015: 1043, 1014: 1042, 1182: 1082, 1115: 1114, 1185: 1184}  # fmt: skip
_DUCK_NAMES = {
    pa.bool_(): "BOOLEAN", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
    pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.binary(): "BLOB",
    pa.date32(): "DATE", pa.time64("us"): "TIME",
}  # fmt: skip
_SQLITE_AFFINITY = ((("INT",), "BIGINT"), (("CHAR", "CLOB", "TEXT"), "VARCHAR"), (("BLOB",), "BLOB"),
                    (("REAL", "FLOA", "DOUB"), "DOUBLE"))  # fmt: skip
# How a server error reaches the user: kind -> (archive code, HTTP status, message).
_KINDS = {
    "read_only": ("permission", 403, "the mount {context} is read-only: {msg}"), "permission": ("permission", 403, "not allowed: {msg}"),
    "syntax_error": ("syntax_error", 400, "{msg}"), "invalid_query": ("invalid_query", 400, "{msg}"),
    "value": ("invalid_query", 400, "a value cannot be converted: {msg}"), "canceled": ("canceled", 409, "the query was canceled: {msg}"),
    "too_large": ("too_large", 400, "the query needs more than {where} allows: {msg}"), "conflict": ("conflict", 409, "{msg}"),
    "unreachable": ("engine_error", 503, "lost the connection to {where}: {msg}"), "engine_error": ("engine_error", 500, "{where}: {msg}"),
}  # fmt: skip
# SQLSTATE class or code -> kind; the longest match wins.
_PG_STATES = {"25006": "read_only", "42501": "permission", "42601": "syntax_error", "57014": "canceled", "42": "invalid_query",
              "22": "invalid_query", "23": "invalid_query", "0A": "invalid_query", "2B": "invalid_query", "44": "invalid_query",
              "53": "too_large", "54": "too_large", "40": "conflict", "08": "unreachable"}  # fmt: skip
# SQLite's messages -> kind (syntax errors and unknown names share SQLITE_ERROR: the message decides).
_SQLITE_MESSAGES = ((("readonly", "read-only"), "read_only"), (("syntax error", "incomplete input"), "syntax_error"),
                    (("interrupted",), "canceled"), (("locked", "busy"), "conflict"),
                    (("no such", "ambiguous", "misuse", "wrong number", "too many", "unrecognized"), "invalid_query"))  # fmt: skip
_VALUE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError)


class _SQLite(SQLite):
    """SQLite with `backquoted` names: SQLite reads an unknown "name" as a string (a typo as data)."""

    class Tokenizer(SQLite.Tokenizer):
        IDENTIFIERS = ["`", '"', ("[", "]")]


def duck_type_name(t: pa.DataType) -> str:
    """The DuckDB name of an Arrow type: what ``ColumnInfo.datatype`` says everywhere in the archive."""
    if pa.types.is_list(t):
        return duck_type_name(t.value_type) + "[]"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    return _DUCK_NAMES.get(t, "VARCHAR")


def pg_arrow_type(oid: int, precision: int | None = None, scale: int | None = None) -> pa.DataType:
    """The Arrow type rows of a PostgreSQL type arrive as (numeric with a precision: a decimal)."""
    if oid == _NUMERIC and precision and precision <= 38:
        return pa.decimal128(precision, scale or 0)
    if oid in _PG_ARRAYS:
        return pa.list_(pg_arrow_type(_PG_ARRAYS[oid]))
    return _PG_SCALARS.get(oid, pa.string())


def _sqlite_affinity(declared: str) -> str:
    """A SQLite declared type as the DuckDB name of its affinity (sqlite.org/datatype3.html)."""
    d = (declared or "").upper()
    return next((name for keys, name in _SQLITE_AFFINITY if any(k in d for k in keys)), d or "BLOB")


def _sqlite_type(values: list) -> pa.DataType:
    """The Arrow type of a SQLite result column, judged from its first rows (SQLite types values)."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bytes}:
        return pa.binary()
    if kinds and kinds <= {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _coerce(value: Any, t: pa.DataType, column: str) -> Any:
    """A value that does not fit its column's type (SQLite's dynamic typing), made to fit or refused."""
    if value is None:
        return None
    if pa.types.is_string(t):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if pa.types.is_floating(t) and isinstance(value, int):
        return float(value)
    if pa.types.is_integer(t) and isinstance(value, float) and value.is_integer():
        return int(value)
    if pa.types.is_binary(t) and isinstance(value, str):
        return value.encode()
    raise ArchiveError("invalid_query", f"column {column!r}: {value!r} is not a {duck_type_name(t)} value; CAST it in the query", 400)


def _to_batch(rows: list[tuple], schema: pa.Schema, floats: set[int]) -> pa.RecordBatch:
    """DBAPI rows as a record batch of ``schema`` (``floats``: columns of Decimals sent as float64)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = []
    for i, (f, values) in enumerate(zip(schema, columns, strict=True)):
        if i in floats:
            values = [None if v is None else float(v) for v in values]
        try:
            arrays.append(pa.array(values, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arrays.append(pa.array([_coerce(v, f.type, f.name) for v in values], type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write_kind(tree: exp.Expr) -> str | None:
    """What the statement writes with (``INSERT``, ...), anywhere in it (a data-modifying CTE too)."""
    kinds = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command)
    node = next((n for n in tree.walk() if isinstance(n, kinds)), None)
    return None if node is None else str(node.this if isinstance(node, exp.Command) else node.key).upper()


def _release(fairy, *, discard: bool = False) -> None:
    """Give a pooled connection back (the pool rolls it back), or close it for good."""
    try:
        fairy.invalidate() if discard else fairy.close()
    except Exception:  # noqa: BLE001 - a broken connection is dropped by the pool either way
        pass


class _Run:
    """One statement on one pooled connection: its cursor, time limit and interruption.

    It is also the result's reader (``read_next_batch``/``close``, what QueryResult uses).
    """

    def __init__(self, backend: SqlBackend, time_limit: float | None, batch_rows: int):
        self.backend, self.time_limit, self.batch_rows = backend, time_limit, max(1, int(batch_rows))
        self.fairy: Any = None  # SQLAlchemy's pooled connection
        self.con: Any = None  # the driver's connection
        self.cursor: Any = None
        self.schema: pa.Schema | None = None
        self.floats: set[int] = set()  # numeric columns read as Decimal, sent as float64
        self.reason: str | None = None  # "time_limit" or "canceled" once interrupted
        self.interrupted = self.closed = False
        self.timer: int | None = None
        self.lock = threading.Lock()  # held while a cancel is sent: the connection is never given back mid-cancel

    def checkout(self) -> None:
        self.fairy = self.backend._checkout()
        self.con = self.fairy.driver_connection
        with self.backend._lock:
            self.backend._active.add(self)
        if self.time_limit:
            self.timer = WATCHDOG.schedule(self.time_limit, self._expire)

    def _expire(self) -> None:
        if self.backend.dialect == "sqlite":
            self.interrupt("time_limit")
        else:  # a cancel request is a network round trip: keep it off the shared watchdog thread
            threading.Thread(target=self.interrupt, args=("time_limit",), daemon=True).start()

    def interrupt(self, reason: str) -> None:
        with self.lock:
            if self.closed:
                return
            self.reason = self.reason or reason
            self.interrupted = True
            try:
                if self.backend.dialect == "sqlite":
                    self.con.interrupt()
                elif hasattr(self.con, "cancel_safe"):
                    self.con.cancel_safe(timeout=10)
                else:
                    self.con.cancel()
            except Exception:  # noqa: BLE001 - the flag still stops the next fetch
                pass

    def check_live(self) -> None:
        if self.reason:
            raise self.error(None)

    def read_next_batch(self) -> pa.RecordBatch:
        self.check_live()
        try:
            rows = self.cursor.fetchmany(self.batch_rows)
        except Exception as exc:  # noqa: BLE001 - any driver error becomes an ArchiveError
            raise self.error(exc) from None
        if not rows:
            raise StopIteration
        return _to_batch(rows, self.schema, self.floats)

    def error(self, exc: BaseException | None) -> ArchiveError:
        if isinstance(exc, ArchiveError):
            return exc
        # PostgreSQL's statement_timeout (57014) or SQLite's interrupt may beat the watchdog's flag.
        server_timeout = getattr(exc, "sqlstate", None) == "57014" or (isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc))
        if self.reason == "time_limit" or (self.time_limit and server_timeout):
            limit = f"the quick-query time limit of {self.time_limit:g} s"
            return ArchiveError("time_limit", f"the query ran longer than {limit}; submit it as a job instead", 400)
        if self.reason == "canceled":
            return ArchiveError("canceled", "the query was canceled", 409)
        return self.backend._error(exc)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.timer is not None:
            WATCHDOG.cancel(self.timer)
        with self.backend._lock:
            self.backend._active.discard(self)
        if self.cursor is not None:
            try:
                self.cursor.close()
            except Exception:  # noqa: BLE001 - a canceled or broken transaction may refuse CLOSE
                pass
        if self.fairy is not None:  # a late cancel request must not hit the connection's next query
            _release(self.fairy, discard=self.interrupted)


class SqlBackend:
    """A mounted SQL server (PostgreSQL, or a SQLite file) reached through SQLAlchemy; queries are pushed down."""

    dialect: str  # sqlglot dialect name: "postgres" or "sqlite"

    def __init__(self, uri: str, *, context: str, read_only: bool = True, pool_size: int = 4):
        self.context, self.read_only = context, read_only
        self._lock = threading.Lock()
        self._active: set[_Run] = set()
        self._names: dict[str, tuple[str | None, str, list[str]]] = {}  # lower name -> (schema, table, columns)
        self._seq = itertools.count(1)
        self._closed = False
        try:
            url = sa.engine.make_url(uri)
        except Exception:  # noqa: BLE001 - the URI may hold a password: never echo it
            raise ArchiveError("bad_request", "the SQL mount URI is not a URL like dialect://user:password@host:port/database", 400) from None
        self._password = url.password or None
        pool = {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": 30}
        kind = url.get_backend_name()
        if kind in ("postgresql", "postgres"):
            self.dialect = "postgres"
            self.where = f"PostgreSQL database {url.database!r} on {url.host or 'localhost'}:{url.port or 5432}"
            args = {"connect_timeout": 10, "application_name": "jupyter_archive"}
            self._engine = sa.create_engine(url.set(drivername="postgresql+psycopg"), pool_pre_ping=True, connect_args=args, **pool)
            sa.event.listen(self._engine, "connect", self._on_connect)
        elif kind == "sqlite":
            self.dialect = "sqlite"
            if not url.database or url.database == ":memory:":
                raise ArchiveError("bad_request", "a SQLite mount needs a database file: sqlite:////absolute/path.db", 400)
            path = Path(url.database).expanduser().resolve()
            self.where = f"SQLite file {path}"
            target = path.as_uri() + ("?mode=ro" if read_only else "?mode=rwc")  # ro: SQLite refuses every write

            def creator():
                return sqlite3.connect(target, uri=True, check_same_thread=False)

            self._engine = sa.create_engine("sqlite://", creator=creator, poolclass=sa.pool.QueuePool, **pool)
        else:
            raise ArchiveError("bad_request", f"SQL mounts support postgresql:// and sqlite:// URIs, not {kind}://", 400)
        self._default_schema: str | None = None
        fairy = self._checkout()  # connect now: a bad mount fails when it is mounted
        try:
            if self.dialect == "postgres":
                with fairy.driver_connection.cursor() as cur:
                    self._default_schema = cur.execute("SELECT current_schema()").fetchone()[0] or "public"
            else:
                fairy.driver_connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except Exception as exc:  # noqa: BLE001
            _release(fairy, discard=True)
            raise self._connect_error(exc) from None
        _release(fairy)

    # -- connections ------------------------------------------------------------------------------
    def _on_connect(self, con, _record) -> None:
        """Each new PostgreSQL connection: unmapped types load as text; transactions read-only."""
        from psycopg.postgres import types
        from psycopg.types.string import TextLoader

        keep = set(_PG_SCALARS) | set(_PG_ARRAYS)
        for oid in {o for info in types for o in (info.oid, info.array_oid) if o and o not in keep}:
            con.adapters.register_loader(oid, TextLoader)
        if self.read_only:
            con.read_only = True  # every transaction is BEGIN READ ONLY: the server refuses writes

    def _checkout(self):
        if self._closed:
            raise ArchiveError("engine_error", f"the mount {self.context} is closed", 503)
        try:
            return self._engine.raw_connection()
        except sa.exc.TimeoutError:
            raise ArchiveError("engine_error", f"all connections to {self.where} are busy; try again later", 503) from None
        except Exception as exc:  # noqa: BLE001
            raise self._connect_error(exc) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _connect_error(self, exc: BaseException) -> ArchiveError:
        text = self._scrub(str(getattr(exc, "orig", None) or exc))
        first = " ".join(line.strip() for line in text.splitlines() if line.strip())[:500]
        refused = ("password authentication", "does not exist", "no pg_hba.conf", "not a database", "unable to open")
        if any(k in text for k in refused):
            return ArchiveError("bad_request", f"cannot open {self.where}: {first}", 400)
        return ArchiveError("engine_error", f"cannot connect to {self.where}: {first}", 503)

    # -- metadata ---------------------------------------------------------------------------------
    def tables(self, *, count_budget: float = _COUNT_BUDGET) -> dict[str, TableInfo]:
        """Every table and view, keyed by lower-case archive name: ``table``, or ``schema/table``
        outside the default schema. Row counts are exact for small tables (within ``count_budget``
        seconds in all), else the planner's estimate."""
        fairy = self._checkout()
        lister = self._pg_tables if self.dialect == "postgres" else self._sqlite_tables
        try:
            out, remote = lister(fairy.driver_connection, time.monotonic() + count_budget)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        finally:
            _release(fairy)
        with self._lock:
            self._names = {k: (*remote[k], [c.name for c in info.columns]) for k, info in out.items()}
        return out

    def _pg_tables(self, con, deadline: float) -> tuple[dict[str, TableInfo], dict]:
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
            if oid == _NUMERIC and typmod and typmod >= 4:  # typmod packs (precision << 16 | scale) + 4
                precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
            t = pg_arrow_type(oid, precision, scale)
            columns.setdefault(relid, []).append(ColumnInfo(name, duck_type_name(t), description=note))
        out: dict[str, TableInfo] = {}
        remote: dict[str, tuple[str | None, str]] = {}
        for relid, schema, table, estimate, note, size in rels:
            key = table if schema == self._default_schema else f"{schema}/{table}"
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
            out[key.lower()] = TableInfo(key, self.context, rows=rows, size_bytes=size, description=note, columns=columns.get(relid, []))
            remote[key.lower()] = (schema, table)
        return out, remote

    def _sqlite_tables(self, con: sqlite3.Connection, deadline: float) -> tuple[dict[str, TableInfo], dict]:
        out: dict[str, TableInfo] = {}
        remote: dict[str, tuple[str | None, str]] = {}
        for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall():
            quoted = '"' + name.replace('"', '""') + '"'
            cols = [ColumnInfo(r[1], _sqlite_affinity(r[2])) for r in con.execute(f"PRAGMA table_xinfo({quoted})") if r[6] != 1]
            rows = None
            if time.monotonic() < deadline:  # SQLite counts by scanning: stop at the deadline
                con.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
                try:
                    rows = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
                except sqlite3.Error:
                    pass
                finally:
                    con.set_progress_handler(None, 0)
            out.setdefault(name.lower(), TableInfo(name, self.context, rows=rows, columns=cols))
            remote.setdefault(name.lower(), (None, name))
        return out, remote

    def _lookup(self, table_name: str) -> tuple[str | None, str, list[str]] | None:
        if table_name.lower() not in self._names:
            try:
                self.tables(count_budget=0)  # a table made since the last listing
            except ArchiveError:
                return None
        return self._names.get(table_name.lower())

    def remote_name(self, table_name: str) -> tuple[str | None, str]:
        """The remote ``(schema, table)`` of an archive table name (schema ``None`` for SQLite)."""
        found = self._lookup(table_name)
        if found:
            return found[0], found[1]
        # Unknown here: the server will say so, in its own words, when the query runs.
        if self.dialect == "postgres" and "/" in table_name:
            schema, table = table_name.split("/", 1)
            return schema, table
        return self._default_schema, table_name

    # -- SQL --------------------------------------------------------------------------------------
    def _parse(self, duckdb_sql: str) -> exp.Expr:
        try:
            trees = [t for t in sqlglot.parse(duckdb_sql, read="duckdb") if t is not None]
        except SqlglotError as exc:
            raise ArchiveError("syntax_error", f"cannot parse the engine SQL: {exc}", 400) from None
        if len(trees) != 1:
            raise ArchiveError("bad_request", f"expected one statement to push down to {self.where}, got {len(trees)}", 400)
        return trees[0]

    def transpile(self, duckdb_sql: str, tables: dict[tuple[str, str, str], str]) -> str:
        """The pipeline's DuckDB SQL as this server runs it (what compile shows as "Pushed SQL")."""
        return self._emit(self._parse(duckdb_sql), tables)

    def _emit(self, tree: exp.Expr, tables: dict[tuple[str, str, str], str]) -> str:
        tree = tree.copy()
        lookup = {tuple(p.lower() for p in key): name for key, name in tables.items()}
        qualifiers: dict[str, str] = {}  # a column qualifier (lower) -> the name its table goes by
        columns: dict[str, str] = {}  # lower -> the remote spelling, over the referenced tables
        exact: set[str] = set()
        placed: set[int] = set()  # identifiers written here: already the remote's names
        for t in list(tree.find_all(exp.Table)):
            key = (t.catalog.lower(), t.db.lower(), t.name.lower())
            if key not in lookup:
                if t.catalog or t.db:
                    raise ArchiveError("unknown_table", f"table {'.'.join(p for p in key if p)} is not in {self.where}", 400)
                continue  # a CTE's name
            engine_name, found = t.name, self._lookup(lookup[key])
            schema, remote = self.remote_name(lookup[key])
            for c in found[2] if found else []:
                columns.setdefault(c.lower(), c)
                exact.add(c)
            t.set("this", exp.to_identifier(remote, quoted=True))
            t.set("db", exp.to_identifier(schema, quoted=True) if schema else None)
            t.set("catalog", None)
            placed.update(id(t.args[k]) for k in ("this", "db") if t.args.get(k))
            if t.args.get("alias") is None:
                if remote != engine_name:  # keep the name the query's column qualifiers use
                    t.set("alias", exp.TableAlias(this=exp.to_identifier(engine_name, quoted=True)))
                qualifiers[engine_name.lower()] = engine_name
        for col in tree.find_all(exp.Column):  # "pg"."main"."stars"."mag" -> "stars"."mag"
            col.set("catalog", None)
            col.set("db", None)
        # DuckDB matches names case-insensitively, PostgreSQL (quoted) does not: write every column
        # as the server spells it, and every other name (aliases) as it was defined.
        first: dict[str, str] = {}
        for ident in tree.find_all(exp.Identifier):
            if isinstance(ident.parent, (exp.TableAlias, exp.Alias)) and id(ident) not in placed:
                first.setdefault(ident.name.lower(), ident.name)
        for ident in list(tree.find_all(exp.Identifier)):
            if id(ident) in placed or isinstance(ident.parent, (exp.Anonymous, exp.UserDefinedFunction)):
                continue
            name, low = ident.name, ident.name.lower()
            if isinstance(ident.parent, exp.Column) and ident.arg_key == "table" and low in qualifiers:
                new = qualifiers[low]
            else:
                new = name if name in exact else columns.get(low) or first.setdefault(low, name)
            ident.set("this", new)
            ident.set("quoted", True)
        token = "ARCHIVEPARAM" + uuid.uuid4().hex  # a stand-in no SQL text contains
        for ph in list(tree.find_all(exp.Placeholder)):
            if not re.fullmatch(r"\w+", ph.name or ""):
                raise ArchiveError("bad_request", f"unsupported parameter {ph.sql('duckdb')!r} in the engine SQL", 400)
            ph.replace(exp.Var(this=f"{token}{ph.name}{token}"))
        try:
            sql = tree.sql(dialect=_SQLite if self.dialect == "sqlite" else self.dialect, identify=True, unsupported_level=ErrorLevel.RAISE)
        except SqlglotError as exc:
            raise ArchiveError("invalid_query", f"this query cannot run on {self.where}: {exc}", 400) from None
        if self.dialect == "postgres":
            sql = sql.replace("%", "%%")  # psycopg reads every % as the start of a placeholder
            return re.sub(f"{token}(\\w+){token}", r"%(\1)s", sql)
        return re.sub(f"{token}(\\w+){token}", r":\1", sql)

    # -- running ----------------------------------------------------------------------------------
    def run(self, duckdb_sql: str, params: dict, tables: dict[tuple[str, str, str], str], *, time_limit: float | None = None,
            batch_rows: int = 65_536, column_meta: dict | None = None, row_limit: int | None = None) -> QueryResult:  # fmt: skip
        """Run one pipeline statement on the server; rows stream from a server-side cursor.

        The first batch is fetched before returning, so errors surface before any byte is sent.
        With ``row_limit`` (as in ``query.execute``) at most ``row_limit + 1`` rows are fetched and
        ``truncated`` says whether there were more. Closing the result closes the cursor and gives
        the connection back to the pool.
        """
        tree = self._parse(duckdb_sql)
        writes = _write_kind(tree)
        if writes and self.read_only:
            raise ArchiveError("permission", f"the mount {self.context} is read-only: {writes} is not allowed on {self.where}", 403)
        sql = self._emit(tree, tables)
        run = _Run(self, time_limit, batch_rows)
        try:
            run.checkout()
            if isinstance(tree, (exp.Query, exp.Values)) and not writes:
                return self._read(run, sql, dict(params or {}), column_meta, row_limit)
            return self._write(run, sql, dict(params or {}), column_meta)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as an ArchiveError
            err = run.error(exc)
            run.close()
            raise err from None

    def _execute(self, run: _Run, sql: str, params: dict, *, server_side: bool) -> None:
        if self.dialect == "postgres":
            if run.time_limit:  # the server's own limit backs up the cancel request (a proxy may drop it)
                run.con.execute(f"SET LOCAL statement_timeout = {max(1, int(run.time_limit * 1000))}")
            run.cursor = run.con.cursor(name=f"archive_{next(self._seq)}") if server_side else run.con.cursor()
        else:
            run.cursor = run.con.cursor()
        run.check_live()
        run.cursor.execute(sql, params)
        run.check_live()

    def _schema(self, run: _Run, rows: list[tuple], column_meta: dict | None) -> None:
        """The result's Arrow schema, from the cursor's description (SQLite: from the first rows too)."""
        fields = []
        for i, d in enumerate(run.cursor.description):
            if self.dialect == "postgres":
                t = pg_arrow_type(d.type_code, d.precision, d.scale)
                if d.type_code == _NUMERIC and not pa.types.is_decimal(t):
                    run.floats.add(i)
            else:  # SQLite types values, not columns
                t = _sqlite_type([r[i] for r in rows])
            fields.append(pa.field(d[0], t))
        run.schema = annotate(pa.schema(fields), column_meta) if column_meta else pa.schema(fields)

    def _read(self, run: _Run, sql: str, params: dict, column_meta: dict | None, row_limit: int | None) -> QueryResult:
        self._execute(run, sql, params, server_side=True)
        n = run.batch_rows if row_limit is None else max(1, min(run.batch_rows, row_limit + 1))
        batches: list[pa.RecordBatch] = []
        total = 0
        while True:
            rows = run.cursor.fetchmany(n)
            if run.schema is None:
                self._schema(run, rows, column_meta)
            if rows:
                batches.append(_to_batch(rows, run.schema, run.floats))
                total += len(rows)
            if len(rows) < n or row_limit is None or total > row_limit:
                break
        truncated = row_limit is not None and total > row_limit
        if truncated:
            batches[-1] = batches[-1].slice(0, row_limit - (total - batches[-1].num_rows))
        if len(rows) < n or row_limit is not None:  # every wanted row is here: give the connection back
            run.close()
            return QueryResult(run.schema, batches, None, truncated=truncated)
        return QueryResult(run.schema, batches, run, on_close=run.close, check_interrupt=run.error)

    def _write(self, run: _Run, sql: str, params: dict, column_meta: dict | None) -> QueryResult:
        self._execute(run, sql, params, server_side=False)
        cur, rows = run.cursor, None
        if cur.description:  # INSERT ... RETURNING: a small result, read whole before committing
            rows = cur.fetchall()
            self._schema(run, rows, column_meta)
        count = max(cur.rowcount or 0, 0)
        run.con.commit()
        run.close()
        if rows is None:
            return rows_affected_result(count)
        return QueryResult(run.schema, [_to_batch(rows, run.schema, run.floats)], None, rows_affected=len(rows))

    # -- errors -----------------------------------------------------------------------------------
    def _error(self, exc: BaseException | None) -> ArchiveError:
        """A driver exception as an ArchiveError carrying the server's own message."""
        if isinstance(exc, ArchiveError):
            return exc
        exc = getattr(exc, "orig", None) or exc
        kind, name = "engine_error", type(exc).__name__
        if self.dialect == "postgres":
            state = getattr(exc, "sqlstate", None) or ""
            diag = getattr(exc, "diag", None)
            msg = diag.message_primary if diag is not None and diag.message_primary else str(exc).split("\nLINE ")[0]
            hint = diag.message_hint if diag is not None else None
            msg = msg.strip() + (f" ({hint})" if hint else "")
            match = max((s for s in _PG_STATES if state.startswith(s)), key=len, default=None)
            if match:
                kind = _PG_STATES[match]
            elif name in ("OperationalError", "InterfaceError"):
                kind = "unreachable"
            elif name == "DataError" or isinstance(exc, _VALUE_ERRORS):
                kind = "value"
        else:
            msg = str(exc).strip()
            if isinstance(exc, sqlite3.OperationalError):
                kind = next((k for words, k in _SQLITE_MESSAGES if any(w in msg.lower() for w in words)), kind)
            elif isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError)):
                kind = "invalid_query"
            elif isinstance(exc, _VALUE_ERRORS):
                kind = "value"
        code, status, text = _KINDS[kind]
        return ArchiveError(code, text.format(msg=self._scrub(msg) or name, context=self.context, where=self.where), status)

    # -- lifetime ---------------------------------------------------------------------------------
    def interrupt_all(self) -> None:
        """Cancel every query running on this mount (a canceled job, or the mount closing)."""
        with self._lock:
            runs = list(self._active)
        for run in runs:
            run.interrupt("canceled")

    def close(self) -> None:
        """Cancel running queries and close every pooled connection."""
        self._closed = True
        self.interrupt_all()
        self._engine.dispose()

    @property
    def active(self) -> int:
        """How many statements hold a connection now (open results included)."""
        return len(self._active)
