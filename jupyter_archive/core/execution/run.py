"""The Queries service (``archive.queries``): compile, and run a compiled query where the planner says.

``compile`` shows a query's phases and its plan (``compiling``); ``query`` compiles (through
the compile cache) and runs a quick query; ``read_table`` streams a table page by page; ``run``
executes compiled statements on their plan: quick queries, paged reads and jobs all end there,
in ``execute`` on an engine's cursor (below) or on a SQL server (``pushdown``).

A compile-cache hit without variables or parameters goes straight to the engine: the cached
entry carries the compiled statements, their column metadata and their plan.
"""

from __future__ import annotations

import functools
import itertools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Unpack

import duckdb
import pyarrow as pa

from .. import sql as sqlmod
from ..catalog.model import TAP_SCHEMA_ALIAS, ContextRef, Principal
from ..errors import ArchiveError
from ..formats.base import annotate
from ..languages import DEFAULT_LANGUAGE
from ..sql import quote_ident
from . import pushdown
from .compiling import TextOptions, compile_text, with_plan
from .engines import engine_error
from .planner import ENGINE, SERVER, TAP_SCHEMA, Plan, plan
from .pool import WATCHDOG, QueryResult, rows_affected_result
from .spool import Spool
from .uploads import UploadSet

if TYPE_CHECKING:
    from ..catalog.namespace import Namespace
    from .pool import EnginePool

DEFAULT = object()  # "use the configured limit"
COMPILE_CACHE_SIZE = 512


class _Entry:
    """A compile-cache entry: the compiled query, its column metadata and its plan."""

    __slots__ = ("compiled", "meta", "plan", "plain")

    def __init__(self, compiled: sqlmod.Compiled, meta: dict, plan: Plan):
        self.compiled = compiled
        self.meta = meta
        self.plan = plan
        self.plain = not compiled.param_names  # no values to bind again on a hit


class Queries:
    """Compiles and runs queries for principals; ``jobs`` reads TAP uploads named by a job's URL."""

    def __init__(self, namespace: Namespace, engines: EnginePool, *, row_limit: int | None, time_limit: float | None, jobs=None):
        self._namespace = namespace
        self._engines = engines
        self.row_limit = row_limit  # the quick-query limits
        self.time_limit = time_limit
        self.jobs = jobs
        self._cache: OrderedDict = OrderedDict()
        self._cache_version = namespace.version
        self._lock = threading.Lock()
        self.column_meta_for = namespace.column_meta_for

    # -- compiling ------------------------------------------------------------------------------
    def compile(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        row_limit: int | None = None,
        explain: bool = True,
        **options: Unpack[TextOptions],
    ) -> sqlmod.Compiled:
        """Compile without running; with ``explain`` the plan is the last phase (the engine's
        plan, or the SQL pushed to a server)."""
        compiled, _ = compile_text(self._namespace, principal, text, language, options, row_limit)
        return with_plan(self._namespace, self._engines, principal, compiled, explain=explain)

    def compile_request(self, principal: Principal, request: dict, uploads: dict | None = None):
        """Compile a stored request (a job's: query, language, context, base_path, variables,
        params, row_limit); returns the compiled query and its resolver (for a target table)."""
        options = {k: request.get(k) for k in ("context", "base_path", "variables", "params")}
        language = request.get("language") or DEFAULT_LANGUAGE
        return compile_text(self._namespace, principal, request["query"], language, options, request.get("row_limit"), uploads)

    def _cached(self, principal, text, language, options: TextOptions, row_limit) -> _Entry:
        """Compile, reusing an earlier compile of the same text with new values when possible.

        Only reads of mounted (read-only) tables are cached: their resolution cannot change
        until the mounts do, which empties the cache. MyDB tables come and go, so queries
        touching them are compiled afresh (and not kept).
        """
        get = options.get
        variables, params = get("variables"), get("params")
        key = (
            principal, language, get("context"), get("base_path"), text,
            tuple(sorted(variables)) if variables else (), tuple(sorted(params)) if params else (), get("offset"), get("limit"), row_limit,
        )  # fmt: skip
        with self._lock:
            if self._cache_version != self._namespace.version:
                self._cache.clear()
                self._cache_version = self._namespace.version
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled, _ = compile_text(self._namespace, principal, text, language, options, row_limit)
        read_only = {m.alias for m in self._namespace.mounts() if m.read_only}
        cacheable = all(st.kind == "read" and all(t.catalog in read_only for t in st.tables) for st in compiled.statements)
        entry = _Entry(compiled, self._namespace.column_meta_for(principal, compiled.statements[-1]), self.plan(principal, compiled.statements))
        if cacheable:
            with self._lock:
                self._cache[key] = entry
                while len(self._cache) > COMPILE_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return entry

    # -- running --------------------------------------------------------------------------------
    def plan(self, principal: Principal, statements, pinned=None) -> Plan:
        """Where compiled statements run (``planner.plan``)."""
        return plan(self._namespace, self._engines, principal, statements, pinned)

    def query(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        row_limit: int | None | object = DEFAULT,
        time_limit: float | None | object = DEFAULT,
        uploads=None,
        **options: Unpack[TextOptions],
    ) -> QueryResult:
        """Run a quick query and return its streamed result (``Rows Affected`` for writes).

        ``uploads`` makes tables readable as ``TAP_UPLOAD.x``: an ``UploadSet`` the caller
        closes, or staged entries (``uploads.stage``), loaded now and dropped with the result.
        """
        if row_limit is DEFAULT:
            row_limit = self.row_limit
        if time_limit is DEFAULT:
            time_limit = self.time_limit
        if uploads is not None:
            return self._query_with_uploads(principal, text, language, options, row_limit, time_limit, uploads)
        entry = self._cached(principal, text, language, options, row_limit)
        compiled = entry.compiled if entry.plain else sqlmod.rebind(entry.compiled, variables=options.get("variables"), params=options.get("params"))
        if entry.plan.where != ENGINE:
            return self.run(principal, compiled, plan=entry.plan, row_limit=row_limit, time_limit=time_limit, column_meta=entry.meta)
        result = execute(
            entry.plan.engine.cursor(), compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=entry.meta
        )
        result.compiled = compiled
        return result

    def _query_with_uploads(self, principal, text, language, options: TextOptions, row_limit, time_limit, uploads):
        own = not isinstance(uploads, UploadSet)
        if own:
            if not uploads:
                return self.query(principal, text, language, row_limit=row_limit, time_limit=time_limit, **options)
            uploads = UploadSet(self._engines, principal, uploads, jobs=self.jobs)
        try:
            compiled, _ = compile_text(self._namespace, principal, text, language, options, row_limit, uploads.targets)
            result = self.run(
                principal, compiled, row_limit=row_limit, time_limit=time_limit, column_meta=uploads.column_meta, pinned=uploads.pin
            )
        except BaseException:
            if own:
                uploads.close()
            raise
        if own:
            result.also_on_close(uploads.close)
        return result

    def uploads(self, principal: Principal, entries: list[dict], *, cancel: threading.Event | None = None) -> UploadSet:
        """Staged uploads loaded into the principal's engine for one query or job (close it after)."""
        return UploadSet(self._engines, principal, entries, jobs=self.jobs, cancel=cancel)

    def run(
        self,
        principal: Principal,
        compiled: sqlmod.Compiled,
        *,
        row_limit: int | None = None,
        time_limit: float | None = None,
        column_meta: dict | None = None,
        pinned=None,
        plan: Plan | None = None,
        wait: float | None | object = DEFAULT,
        cancel: threading.Event | None = None,
        on_cancel=None,
        on_cursor=None,
    ) -> QueryResult:
        """Execute an already compiled query on its plan (made now unless given).

        ``column_meta`` adds units/UCDs for tables the catalog does not know (uploads), held in
        the engine of the lease ``pinned``. A job passes ``wait=None`` and ``cancel`` (it waits
        for a database held elsewhere until canceled), ``on_cancel`` (told how to interrupt a
        server) and ``on_cursor`` (given the engine's cursor before the query runs).
        """
        plan = plan or self.plan(principal, compiled.statements, pinned)
        meta = self._namespace.column_meta_for(principal, compiled.statements[-1])
        if column_meta:
            meta = {**column_meta, **meta} if meta else column_meta
        if plan.where == SERVER:
            result = pushdown.run(
                plan.backend, compiled, target=plan.engine, row_limit=row_limit, time_limit=time_limit, column_meta=meta, on_cancel=on_cancel
            )
        elif plan.where == TAP_SCHEMA:
            from ..catalog.tap_schema import COLUMN_META, arrow_tables, describe
            from .engines import memory_engine

            # execute() closes what it is given when the result closes: here the whole in-memory engine.
            con = memory_engine(TAP_SCHEMA_ALIAS, arrow_tables(describe(self._namespace, principal)))
            result = execute(con, compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=COLUMN_META)
        else:
            cursor = plan.engine.cursor() if wait is DEFAULT else plan.engine.cursor(timeout=wait, cancel=cancel)
            if on_cursor is not None:
                on_cursor(cursor)
            result = execute(cursor, compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=meta)
        result.compiled = compiled
        return result

    def read_table(
        self,
        principal: Principal,
        context: str | ContextRef,
        table: str,
        *,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
        descending: bool = False,
    ) -> QueryResult:
        """Stream a whole table (or a page of it): no quick-query row limit applies."""
        ns = self._namespace
        ref = context if isinstance(context, ContextRef) else ns.context(principal, context)
        info = ns.table(principal, ref, table)
        if offset is not None and offset < 0:
            raise ArchiveError("bad_request", f"invalid offset: {offset} (must be >= 0)")
        if limit is not None and limit < 1:
            raise ArchiveError("bad_request", f"invalid limit: {limit} (must be >= 1)")
        text = f"SELECT * FROM {quote_ident(ref.alias)}.main.{quote_ident(info.name)}"
        if order_by:
            names = {c.name.lower(): c.name for c in info.columns}
            if order_by.lower() not in names:
                raise ArchiveError("bad_request", f"unknown column {order_by!r} in table {info.name}")
            text += f" ORDER BY {quote_ident(names[order_by.lower()])} {'DESC' if descending else 'ASC'}"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        if offset:
            text += f" OFFSET {int(offset)}"
        target = sqlmod.TableTarget(ref.alias, "main", info.name, ref.name, ref.writable)
        st = sqlmod.Statement(kind="read", sql=text, params={}, source=text, into=None, tables=[target])
        compiled = sqlmod.Compiled("sql", [st], [], text, {})
        return self.run(principal, compiled, column_meta=info.column_meta())


# -- executing on a cursor ----------------------------------------------------------------------

BATCH_ROWS = 131_072


def execute(
    cursor: duckdb.DuckDBPyConnection,
    statements: list,
    *,
    row_limit: int | None = None,
    time_limit: float | None = None,
    column_meta: dict[str, dict[str, str]] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> QueryResult:
    """Run ``statements`` (``sql.Statement``) in order on ``cursor``; stream the last one's rows.

    Earlier statements run for their effect. The cursor is closed when the result closes.
    A time limit interrupts the engine, during execution or while rows are streamed.
    """
    timed_out = threading.Event()
    timer = None
    guard = threading.Lock()  # the watchdog must never interrupt the connection once it is given back
    closed = []
    if time_limit:

        def _expire():
            with guard:
                if not closed:
                    timed_out.set()
                    cursor.interrupt()

        timer = WATCHDOG.schedule(time_limit, _expire)

    def _close():
        with guard:
            if closed:
                return
            closed.append(True)
            if timer is not None:
                WATCHDOG.cancel(timer)
        try:
            cursor.close()
        except duckdb.Error:
            pass

    def _check(exc: BaseException) -> ArchiveError:
        if isinstance(exc, duckdb.InterruptException) or "Interrupted" in str(exc):
            if timed_out.is_set():
                return ArchiveError(
                    "time_limit",
                    f"the query ran longer than the quick-query time limit of {time_limit:g} s; submit it as a job instead",
                    400,
                )
            return ArchiveError("canceled", "the query was canceled", 409)
        if isinstance(exc, ArchiveError):
            return exc
        return engine_error(exc)

    try:
        for st in statements[:-1]:
            rel = cursor.sql(st.sql, params=st.params or None)
            if rel is not None:
                # Reads before the last statement have no effect; run them (bounded) so errors surface.
                (rel.limit(1) if st.kind == "read" else rel).fetchall()
        last = statements[-1]
        if last.kind == "read" and row_limit is not None and row_limit <= DBAPI_ROWS:
            # A quick query's rows are all fetched up front anyway: the DB-API path skips the
            # relation API's extra bind (~0.3 ms a query); its Arrow reader copies every row
            # first, bounded here by the row limit (a larger limit streams through the relation).
            con = getattr(cursor, "con", cursor)  # a pool lease's connection, without its indirection
            con.execute(last.sql, last.params or None)
            first = _small_batch(con)
            reader = None
            if first is None or first[0].num_rows > SMALL_ROWS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    reader = con.to_arrow_reader(batch_rows)
            return _prefetched(reader, row_limit, column_meta, _close, _check, first=first)
        rel = cursor.sql(last.sql, params=last.params or None)
        if last.kind != "read" or rel is None:
            count = 0
            if rel is not None:
                rows = rel.fetchall()
                if rows and rows[0] and isinstance(rows[0][0], int):
                    count = int(rows[0][0])
            _close()
            return rows_affected_result(count)
        reader = rel.to_arrow_reader(batch_rows)
        return _prefetched(reader, row_limit, column_meta, _close, _check)
    except ArchiveError:
        _close()
        raise
    except (duckdb.Error, pa.ArrowException) as exc:
        _close()
        raise _check(exc) from None


SMALL_ROWS = 64
#: Row limits up to this run on the DB-API path (whose Arrow reader holds a copy of every row).
DBAPI_ROWS = 100_000
# DuckDB types whose Python values convert to Arrow exactly as DuckDB's own Arrow export does.
_SIMPLE_TYPES = {
    "BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "TINYINT": pa.int8(),
    "UBIGINT": pa.uint64(), "UINTEGER": pa.uint32(), "USMALLINT": pa.uint16(), "UTINYINT": pa.uint8(),
    "DOUBLE": pa.float64(), "FLOAT": pa.float32(), "BOOLEAN": pa.bool_(), "VARCHAR": pa.string(),
    "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"),
}  # fmt: skip


def _small_batch(cursor) -> tuple[pa.RecordBatch, pa.Schema] | None:
    """The first rows of an executed query as an Arrow batch built from Python values, and
    its schema (one object per column shape, so what writers derive from it is remembered).

    For a handful of rows this is much cheaper than DuckDB's Arrow export (about 0.5 ms a
    query); a result with more rows continues through the Arrow reader after these (DuckDB
    resumes where fetchmany stopped). None when a column type is not a plain one.
    """
    shape = _small_shape(tuple((d[0], str(d[1])) for d in cursor.description or ()))
    if shape is None:
        return None
    schema, struct = shape
    rows = cursor.fetchmany(SMALL_ROWS + 1)
    if struct is None:
        # Duplicate column names cannot be struct fields of one name each: build column by column.
        columns = list(zip(*rows)) if rows else [()] * len(schema)
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
        return pa.record_batch(arrays, schema=schema), schema
    # One conversion of the row tuples as a struct array is 2-3x cheaper than one per column.
    return pa.RecordBatch.from_struct_array(pa.array(rows, type=struct)), schema


@functools.lru_cache(maxsize=256)
def _small_shape(columns: tuple[tuple[str, str], ...]) -> tuple[pa.Schema, pa.StructType | None] | None:
    """(schema, struct type or None for duplicate names) of ``(name, engine type)`` columns
    that are all plain types, else None."""
    types = [_SIMPLE_TYPES.get(t) for _, t in columns]
    if not columns or not all(types):
        return None
    schema = pa.schema([pa.field(n, t) for (n, _), t in zip(columns, types, strict=True)])
    unique = len({n for n, _ in columns}) == len(columns)
    return schema, pa.struct(list(schema)) if unique else None


def _prefetched(reader, row_limit, column_meta, on_close, check, *, first=None) -> QueryResult:
    """A QueryResult over an engine reader (and/or a first ``(batch, schema)`` already fetched):
    with a row limit every row (at most limit + 1) is read now, so truncation is known before
    anything is sent (held in bounded memory, the rest spooled: ``hold``); else the first
    batch, so errors surface before the response starts."""
    first, schema = first if first is not None else (None, reader.schema)
    if column_meta:
        schema = annotate(schema, column_meta)
    prefetched: list[pa.RecordBatch] = [first] if first is not None and first.num_rows else []
    truncated = False
    if row_limit is not None:
        engine = reader
        try:
            prefetched, reader, truncated = hold(itertools.chain(prefetched, batches_of(engine)), row_limit)
        finally:
            if engine is not None:
                engine.close()
    else:
        try:
            prefetched.append(reader.read_next_batch())
        except StopIteration:
            reader.close()
            reader = None
    return QueryResult(schema, prefetched, reader, truncated=truncated, on_close=on_close, check_interrupt=check)


#: Rows held in memory while a row-limited result is read (Arrow bytes); past it they spool to disk.
HOLD_BYTES = 16 * 1024 * 1024


def hold(batches: Iterator[pa.RecordBatch], row_limit: int):
    """Read ``batches`` until ``row_limit + 1`` rows or their end (so truncation is known before
    anything is sent), holding at most ``HOLD_BYTES`` of them in memory.

    Returns ``(held, spool, truncated)``: the batches in memory, then a :class:`Spool` of the
    rest (None when everything fit) to read after them; the last row kept is the limit's.
    """
    held: list[pa.RecordBatch] = []
    total = size = 0
    spool = None
    try:
        for b in batches:
            if total + b.num_rows > row_limit:
                b = b.slice(0, row_limit - total)
                total = row_limit + 1  # one row past the limit was seen: the result is cut
            else:
                total += b.num_rows
            if b.num_rows:
                if spool is None and size + b.nbytes > HOLD_BYTES:
                    spool = Spool(b.schema)
                if spool is None:
                    held.append(b)
                    size += b.nbytes
                else:
                    spool.write(b)
            del b  # no reference survives into the next fetch
            if total > row_limit:
                break
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if spool is not None:
        spool.finish()
    return held, spool, total > row_limit


def batches_of(reader) -> Iterator[pa.RecordBatch]:
    """The batches of a RecordBatchReader (None: none), one at a time."""
    while reader is not None:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
