"""SQL servers as archive mounts: PostgreSQL (psycopg 3) or a SQLite file, reached through SQLAlchemy.

Queries are pushed down: the pipeline's DuckDB SQL (``core/sql/``) is re-parsed with sqlglot, its
table references become the remote schema-qualified names, and it is emitted in the server's dialect.
Rows stream back from a server-side cursor in chunks, as Arrow record batches whose schema is known
before the first one. SQLAlchemy supplies the URLs and the connection pool; rows are read through the
driver's own cursors (a named psycopg cursor is what ``stream_results`` uses), which give the type
OIDs, ``cancel()`` and ``interrupt()``.

SqlBackend (here) holds the connection pool and the table listing; beside it: dialect.py (the SQL as
the server runs it), statement.py (one statement on one connection), types.py (columns and rows as
Arrow), listing.py (the server's tables), failures.py (the server's errors as archive errors).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlglot import exp

from ...catalog import TableInfo
from ...errors import ArchiveError
from ...execution.pool import QueryResult, rows_affected_result
from ...execution.spool import batches_of, hold
from ...formats.base import annotate
from .dialect import emit, parse, write_kind
from .failures import connect_error, server_error
from .listing import pg_tables, sqlite_tables
from .statement import Statement, release
from .types import NUMERIC, PG_ARRAYS, PG_SCALARS, pg_arrow_type, sqlite_type, to_batch

_COUNT_BUDGET = 3.0  # seconds tables() may spend on exact row counts


class SqlBackend:
    """A mounted SQL server (PostgreSQL, or a SQLite file) reached through SQLAlchemy; queries are pushed down."""

    dialect: str  # sqlglot dialect name: "postgres" or "sqlite"

    def __init__(self, uri: str, *, context: str, read_only: bool = True, pool_size: int = 4):
        self.context, self.read_only = context, read_only
        self._lock = threading.Lock()
        self._active: set[Statement] = set()
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
        fairy = self.checkout()  # connect now: a bad mount fails when it is mounted
        try:
            if self.dialect == "postgres":
                with fairy.driver_connection.cursor() as cur:
                    self._default_schema = cur.execute("SELECT current_schema()").fetchone()[0] or "public"
            else:
                fairy.driver_connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except Exception as exc:  # noqa: BLE001
            release(fairy, discard=True)
            raise self._connect_error(exc) from None
        release(fairy)

    # -- connections ------------------------------------------------------------------------------
    def _on_connect(self, con, _record) -> None:
        """Each new PostgreSQL connection: unmapped types load as text; transactions read-only."""
        from psycopg.postgres import types
        from psycopg.types.string import TextLoader

        keep = set(PG_SCALARS) | set(PG_ARRAYS)
        for oid in {o for info in types for o in (info.oid, info.array_oid) if o and o not in keep}:
            con.adapters.register_loader(oid, TextLoader)
        if self.read_only:
            con.read_only = True  # every transaction is BEGIN READ ONLY: the server refuses writes

    def checkout(self):
        """A pooled connection (503 when the mount is closed or every connection is busy)."""
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
        return connect_error(exc, self.where, self._scrub)

    # -- metadata ---------------------------------------------------------------------------------
    def tables(self, *, count_budget: float = _COUNT_BUDGET) -> dict[str, TableInfo]:
        """Every table and view, keyed by lower-case archive name: ``table``, or ``schema/table``
        outside the default schema. Row counts are exact for small tables (within ``count_budget``
        seconds in all), else the planner's estimate."""
        fairy = self.checkout()
        deadline = time.monotonic() + count_budget
        try:
            if self.dialect == "postgres":
                out, remote = pg_tables(fairy.driver_connection, deadline, context=self.context, default_schema=self._default_schema)
            else:
                out, remote = sqlite_tables(fairy.driver_connection, deadline, context=self.context)
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None
        finally:
            release(fairy)
        with self._lock:
            self._names = {k: (*remote[k], [c.name for c in info.columns]) for k, info in out.items()}
        return out

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

    def _remote(self, table_name: str) -> tuple[str | None, str, list[str]]:
        """The remote (schema, table, columns) of an archive table name (no columns when unknown here)."""
        found = self._lookup(table_name)
        schema, table = self.remote_name(table_name)
        return schema, table, found[2] if found else []

    # -- SQL --------------------------------------------------------------------------------------
    def transpile(self, duckdb_sql: str, tables: dict[tuple[str, str, str], str]) -> str:
        """The pipeline's DuckDB SQL as this server runs it (what compile shows as "Pushed SQL")."""
        return emit(parse(duckdb_sql, self.where), tables, dialect=self.dialect, where=self.where, remote=self._remote)

    # -- running ----------------------------------------------------------------------------------
    def run(self, duckdb_sql: str, params: dict, tables: dict[tuple[str, str, str], str], *, time_limit: float | None = None,
            batch_rows: int = 65_536, column_meta: dict | None = None, row_limit: int | None = None) -> QueryResult:  # fmt: skip
        """Run one pipeline statement on the server; rows stream from a server-side cursor.

        The first batch is fetched before returning, so errors surface before any byte is sent.
        With ``row_limit`` (as in ``query.execute``) at most ``row_limit + 1`` rows are fetched and
        ``truncated`` says whether there were more. Closing the result closes the cursor and gives
        the connection back to the pool.
        """
        tree = parse(duckdb_sql, self.where)
        writes = write_kind(tree)
        if writes and self.read_only:
            raise ArchiveError("permission", f"the mount {self.context} is read-only: {writes} is not allowed on {self.where}", 403)
        sql = emit(tree, tables, dialect=self.dialect, where=self.where, remote=self._remote)
        run = Statement(self, time_limit, batch_rows)
        try:
            run.checkout()
            if isinstance(tree, (exp.Query, exp.Values)) and not writes:
                return self._read(run, sql, dict(params or {}), column_meta, row_limit)
            return self._write(run, sql, dict(params or {}), column_meta)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as an ArchiveError
            err = run.error(exc)
            run.close()
            raise err from None

    def _execute(self, run: Statement, sql: str, params: dict, *, server_side: bool) -> None:
        if self.dialect == "postgres":
            if run.time_limit:  # the server's own limit backs up the cancel request (a proxy may drop it)
                run.con.execute(f"SET LOCAL statement_timeout = {max(1, int(run.time_limit * 1000))}")
            run.cursor = run.con.cursor(name=f"archive_{next(self._seq)}") if server_side else run.con.cursor()
        else:
            run.cursor = run.con.cursor()
        run.check_live()
        run.cursor.execute(sql, params)
        run.check_live()

    def _schema(self, run: Statement, rows: list[tuple], column_meta: dict | None) -> None:
        """The result's Arrow schema, from the cursor's description (SQLite: from the first rows too)."""
        fields = []
        for i, d in enumerate(run.cursor.description):
            if self.dialect == "postgres":
                t = pg_arrow_type(d.type_code, d.precision, d.scale)
                if d.type_code == NUMERIC and not pa.types.is_decimal(t):
                    run.floats.add(i)
            else:  # SQLite types values, not columns
                t = sqlite_type([r[i] for r in rows])
            fields.append(pa.field(d[0], t))
        run.schema = annotate(pa.schema(fields), column_meta) if column_meta else pa.schema(fields)

    def _read(self, run: Statement, sql: str, params: dict, column_meta: dict | None, row_limit: int | None) -> QueryResult:
        self._execute(run, sql, params, server_side=True)
        rows = run.cursor.fetchmany(run.batch_rows)
        self._schema(run, rows, column_meta)
        first = [to_batch(rows, run.schema, run.floats)] if rows else []
        more = run if len(rows) == run.batch_rows else None
        if row_limit is None and more is not None:
            return QueryResult(run.schema, first, run, on_close=run.close, check_interrupt=run.error)
        if row_limit is None:
            run.close()
            return QueryResult(run.schema, first, None)
        try:  # every wanted row is read now (truncation is known before sending), in bounded memory
            held, spool, truncated = hold(itertools.chain(first, batches_of(more)), row_limit)
        finally:
            run.close()  # the connection goes back to the pool
        return QueryResult(run.schema, held, spool, truncated=truncated)

    def _write(self, run: Statement, sql: str, params: dict, column_meta: dict | None) -> QueryResult:
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
        return QueryResult(run.schema, [to_batch(rows, run.schema, run.floats)], None, rows_affected=len(rows))

    # -- errors -----------------------------------------------------------------------------------
    def error(self, exc: BaseException | None) -> ArchiveError:
        """A driver exception as an ArchiveError carrying the server's own message."""
        return server_error(exc, self.dialect, context=self.context, where=self.where, scrub=self._scrub)

    # -- lifetime ---------------------------------------------------------------------------------
    def started(self, run: Statement) -> None:
        """A statement holds a connection now (``interrupt_all`` reaches it)."""
        with self._lock:
            self._active.add(run)

    def ended(self, run: Statement) -> None:
        with self._lock:
            self._active.discard(run)

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
