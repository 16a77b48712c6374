"""The Queries service (``archive.queries``): compile, and run a compiled query where the planner says.

``compile`` shows a query's phases and plan (``compiling``); ``query`` compiles (through the compile cache, which
jobs' reads use too: a hit carries the compiled statements, column metadata and plan) and runs a quick query;
``read_table`` streams a table by pages; ``run`` executes compiled statements on their plan: quick queries, paged
reads and jobs all end there, in ``execute`` on an engine's cursor or on a SQL server. ``Admission``: whose turn.
"""

from __future__ import annotations

import functools
import itertools
import threading
import warnings
from collections import OrderedDict, deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Unpack

import pyarrow as pa

from .. import sql as sqlmod
from ..sql import literals
from ..catalog.model import MYDB_ALIAS, TAP_SCHEMA_ALIAS, ContextRef, Principal
from ..errors import ArchiveError
from ..formats.base import annotate
from ..lanes import user_share
from ..languages import DEFAULT_LANGUAGE
from . import pushdown
from .compiling import TextOptions, compile_text, table_read, with_plan
from .engines import engine_error
from .lookups import POINT
from .cluster import run_partitioned
from .planner import CLUSTER, ENGINE, SERVER, TAP_SCHEMA, Plan, plan
from .pool import WATCHDOG, QueryResult, recorded, rows_affected_result
from .spool import batches_of, hold
from .storage import watch_writes
from .uploads import UploadSet, query_with

if TYPE_CHECKING:
    import duckdb
    from ..catalog.namespace import Namespace
    from .pool import EnginePool

DEFAULT = object()  # "use the configured limit"
COMPILE_CACHE_SIZE = 512


def _point_read(compiled) -> bool:
    """One ``POINT`` read (no sky regions), what a key index may answer; of a template too (its numbers sentinels)."""
    return len(sts := compiled.statements) == 1 and sts[0].late is None and POINT.fullmatch(sts[0].sql) is not None


class _Entry:
    """A compile-cache entry: the compiled query, its column metadata and its plan."""

    __slots__ = ("compiled", "meta", "plan", "plain", "stamp")

    def __init__(self, compiled: sqlmod.Compiled, meta: dict, plan: Plan, stamp: tuple | None = None):
        # ``stamp``: for a read of MyDB, its file's stamp when compiled (stale once it changes)
        self.compiled, self.meta, self.plan, self.stamp = compiled, meta, plan, stamp
        self.plain = not compiled.param_names  # no values to bind again on a hit

    def bound(self, options) -> sqlmod.Compiled:
        """The compiled query with the values of ``options`` (variables, params) bound."""
        return self.compiled if self.plain else sqlmod.rebind(self.compiled, variables=options.get("variables"), params=options.get("params"))


class Queries:
    """Compiles and runs queries for principals; ``jobs`` reads TAP uploads named by a job's URL."""

    def __init__(self, namespace: Namespace, engines: EnginePool, *, row_limit: int | None, time_limit: float | None, jobs=None):
        self._namespace = namespace
        self._engines = engines
        self.row_limit = row_limit  # the quick-query limits
        self.time_limit = time_limit
        self.jobs = jobs
        self.cluster = None  # the archive's Dask cluster (cluster.Cluster): jobs over many HATS partitions fan out there
        self._cache: OrderedDict = OrderedDict()
        self._cache_version = namespace.version
        self._lock = threading.Lock()
        self.column_meta_for = namespace.column_meta_for
        self.lookups = None  # lookups.Lookups: the key indexes that answer point lookups (the archive's)
        self.history: deque = deque(maxlen=0)  # where ``query`` hands what ran (``recorded``): the archive's history, else nowhere

    # -- compiling ------------------------------------------------------------------------------
    def compile(
        self, principal: Principal, text: str, language: str = DEFAULT_LANGUAGE, *, row_limit: int | None = None, explain: bool = True,
        **options: Unpack[TextOptions],
    ) -> sqlmod.Compiled:  # fmt: skip
        """Compile without running; with ``explain`` the plan is the last phase (the engine's plan, or the SQL pushed to a server)."""
        compiled, _ = compile_text(self._namespace, principal, text, language, options, row_limit)
        return with_plan(self._namespace, self._engines, principal, compiled, explain=explain, cluster=self.cluster)

    def compile_request(self, principal: Principal, request: dict, uploads: dict | None = None):
        """Compile a stored request (a job's: query, language, context, base_path, variables, params, row_limit): the
        compiled query and its resolver; None without a ``target`` table: cached then, a job's run reuses its submit's."""
        options = {k: request.get(k) for k in ("context", "base_path", "variables", "params")}
        language, text, row_limit = request.get("language") or DEFAULT_LANGUAGE, request["query"], request.get("row_limit")
        if not uploads and not request.get("target"):
            return self._cached(principal, text, language, options, row_limit).bound(options), None
        return compile_text(self._namespace, principal, text, language, options, row_limit, uploads)

    def _cached(self, principal, text, language, options: TextOptions, row_limit, *, lookup: bool = False) -> _Entry | None:
        """Compile, reusing an earlier compile of the same text with new values when possible (a ``lookup``: or None; a shape rendered only if a ``_point_read``).

        Only reads are cached, by text and by shape (``literals``). Reads of mounted (read-only) tables stay valid until
        the mounts change, which empties the cache; a read of MyDB tables is valid while the caller's MyDB file is
        unchanged (``Namespace.mydb_stamp``, taken before compiling), as its tables are.
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
        if hit is not None and (hit.stamp is None or hit.stamp == self._namespace.mydb_stamp(principal)):
            return hit
        # The second level: the same text but for its numbers (``literals``), for texts without bound values.
        form, numbers = literals.shape(text) if not (variables or params or literals.MARK in text) else ("", [])
        shaped = ("shape", *key[:4], form, *key[5:]) if numbers else None  # never equal to a text's key
        with self._lock:
            if (known := self._cache.get(shaped) if shaped else None) is not None:
                self._cache.move_to_end(shaped)
        # The MyDB stamp only when the answer depends on it: a template reading MyDB, or (taken before) compiling.
        if (isinstance(known, _Entry) and known.compiled.matches(numbers)
                and (known.stamp is None or known.stamp == self._namespace.mydb_stamp(principal))):  # fmt: skip
            if lookup and not _point_read(known.compiled.compiled):
                return None  # not rendered on the event loop (a cone's sky cells) only to be found no lookup
            return _Entry(known.compiled.render(numbers), known.meta, known.plan, known.stamp)
        if lookup:
            return None
        stamp = None if principal.anonymous else self._namespace.mydb_stamp(principal)
        compiled, _ = compile_text(self._namespace, principal, text, language, options, row_limit)
        catalogs = {t.catalog for st in compiled.statements for t in st.tables}
        mydb = MYDB_ALIAS in catalogs
        readable = {m.alias for m in self._namespace.mounts() if m.read_only} | ({MYDB_ALIAS} if stamp is not None else set())
        cacheable = all(st.kind == "read" for st in compiled.statements) and catalogs <= readable
        meta = self._namespace.column_meta_for(principal, compiled.statements[-1])
        entry = _Entry(compiled, meta, self.plan(principal, compiled.statements), stamp if mydb else None)
        if cacheable and shaped:  # learnt once seen twice (a one-off text costs one compilation), again once stale
            stale = isinstance(known, _Entry) and known.compiled.matches(numbers)
            again = lambda t: compile_text(self._namespace, principal, t, language, options, row_limit)[0]  # noqa: E731
            template = literals.learn(text, compiled, again) if (tried := known == 1 or stale) else None
            learnt = _Entry(template, meta, entry.plan, entry.stamp) if template else 0 if tried else 1 if known is None else known
        if cacheable:
            with self._lock:
                self._cache[key] = entry
                if shaped:
                    self._cache[shaped] = learnt
                while len(self._cache) > COMPILE_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return entry

    # -- running --------------------------------------------------------------------------------
    def plan(self, principal: Principal, statements, pinned=None, *, job: bool = False) -> Plan:
        """Where compiled statements run (``planner.plan``); a ``job``'s may run on the cluster."""
        return plan(self._namespace, self._engines, principal, statements, pinned, cluster=self.cluster if job else None, job=job)

    @recorded
    def query(
        self, principal: Principal, text: str, language: str = DEFAULT_LANGUAGE, *, row_limit: int | None | object = DEFAULT,
        time_limit: float | None | object = DEFAULT, uploads=None, on_limit=None, **options: Unpack[TextOptions],
    ) -> QueryResult:  # fmt: skip
        """Run a quick query and return its streamed result (``Rows Affected`` for writes).

        ``uploads`` makes tables readable as ``TAP_UPLOAD.x``: an ``UploadSet`` the caller
        closes, or staged entries (``uploads.stage``), loaded now and dropped with the result. ``on_limit``: see
        ``execute`` (a query on the caller's DuckDB cursors only; elsewhere the limit interrupts).
        ``history``: where its history entry goes (``pool.recorded``); None for the archive's own queries, no user's.
        """
        row_limit = self.row_limit if row_limit is DEFAULT else row_limit
        time_limit = self.time_limit if time_limit is DEFAULT else time_limit
        if uploads:
            return query_with(self, self._namespace, principal, text, language, options, row_limit, time_limit, uploads)
        entry = self._cached(principal, text, language, options, row_limit)
        compiled = entry.bound(options)
        if entry.plan.where != ENGINE:
            return self.run(principal, compiled, plan=entry.plan, row_limit=row_limit, time_limit=time_limit, column_meta=entry.meta, on_limit=on_limit)
        cursor = entry.plan.engine.cursor()
        result = execute(cursor, compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=entry.meta, on_limit=on_limit)
        result.compiled = compiled
        return result

    @recorded
    def lookup(self, principal: Principal, text: str, language: str = DEFAULT_LANGUAGE, **options) -> QueryResult | None:
        """``query``'s result when a key index answers it now (``lookups``: no worker, no engine, no compiling), else None."""
        row_limit = self.row_limit if (row_limit := options.get("row_limit", DEFAULT)) is DEFAULT else row_limit
        # A long text is no point lookup, and looking it up in the cache (its shape) would hold the event loop.
        entry = None if options.get("uploads") or self.lookups is None or len(text) > 4096 else self._cached(
            principal, text, language, options, row_limit, lookup=True)  # fmt: skip
        if entry is None or entry.plan.where != ENGINE or not _point_read(entry.compiled):
            return None
        try:
            compiled = entry.bound(options)
        except ArchiveError:
            return None  # values it refuses: ``query`` says so (and lists it) once
        first = self.lookups.answer(self._namespace, principal, compiled.statements[0], entry.plan.engine.cursor, SMALL_ROWS, entry.stamp)
        if first is None:
            return None
        result = _prefetched(None, row_limit, entry.meta, None, None, first=first)
        result.compiled = compiled
        return result

    def uploads(self, principal: Principal, entries: list[dict], *, cancel: threading.Event | None = None) -> UploadSet:
        """Staged uploads loaded into the principal's engine for one query or job (close it after)."""
        return UploadSet(self._engines, principal, entries, jobs=self.jobs, cancel=cancel)

    def run(
        self, principal: Principal, compiled: sqlmod.Compiled, *, row_limit: int | None = None, time_limit: float | None = None,
        column_meta: dict | None = None, pinned=None, plan: Plan | None = None, wait: float | None | object = DEFAULT,
        cancel: threading.Event | None = None, on_cancel=None, on_cursor=None, on_limit=None,
    ) -> QueryResult:  # fmt: skip
        """Execute an already compiled query on its plan (made now unless given).

        ``column_meta`` adds units/UCDs for tables the catalog does not know (uploads), held in the engine of the lease
        ``pinned``. A job passes ``wait=None`` and ``cancel`` (it waits for a database held elsewhere until canceled),
        ``on_cancel`` (told how to interrupt a server) and ``on_cursor`` (given the engine's cursor before the query
        runs); ``on_limit`` as ``execute``'s where the query runs on one of the principal's DuckDB cursors (its engine,
        or HATS partitions in-process).
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
        elif plan.where == CLUSTER:
            out = run_partitioned(self.cluster, plan, compiled.statements, time_limit=time_limit, cancel=cancel, on_cursor=on_cursor)
            result = rows_affected_result(out) if isinstance(out, int) else _prefetched(out, row_limit, meta, None, None)
        else:
            cursor = plan.engine.cursor() if wait is DEFAULT else plan.engine.cursor(timeout=wait, cancel=cancel)
            if on_cursor is not None:
                on_cursor(cursor)
            result = execute(cursor, plan.ready(compiled.statements, cursor), row_limit=row_limit, time_limit=time_limit, column_meta=meta, on_limit=on_limit)
        result.compiled = compiled
        return result

    def read_table(
        self, principal: Principal, context: str | ContextRef, table: str, *,
        offset: int | None = None, limit: int | None = None, order_by: str | None = None, descending: bool = False,
    ) -> QueryResult:  # fmt: skip
        """Stream a whole table (or a page of it): no quick-query row limit applies."""
        compiled, meta = table_read(self._namespace, principal, context, table, offset=offset, limit=limit, order_by=order_by, descending=descending)
        return self.run(principal, compiled, column_meta=meta)


# -- who runs now: each user's fair share of the quick workers -------------------------------------


class Admission:
    """Admits requests to the quick workers, fairly across users (``Archive.admission``).

    At most ``workers`` requests run at once, ``per_user`` of one user's (default: all but one, so another user always
    finds one free). Over a limit ``enter`` gives a ticket (a ``Future``), set when the request's turn comes; waiting
    holds no thread. A freed worker goes to the waiting user running the fewest, ties in turn (round robin, not first
    come). A caller giving up ``withdraw``s its ticket and answers 429 (``busy``), as does one whose user has
    ``max_waiting`` waiting.
    """

    def __init__(self, workers: int, per_user: int = 0, *, wait: float = 30.0, max_waiting: int = 1000):
        self.workers = max(1, workers)
        self.per_user = user_share(self.workers, per_user)
        self.wait = wait  # seconds a request may wait for its turn
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._total = 0
        self._waiting: dict[str, deque[Future]] = {}  # by user, in turn order

    running = property(lambda self: self._total, doc="Requests admitted now, across users.")

    def enter(self, user: str) -> Future | None:
        """Admit one request of ``user`` now (None) or give its ticket for a later turn."""
        with self._lock:
            running = self._running.get(user, 0)
            # When a worker is free nobody under the per-user limit waits: each leave hands turns out at once.
            if self._total < self.workers and running < self.per_user:
                self._running[user] = running + 1
                self._total += 1
                return None
            if len(queue := self._waiting.setdefault(user, deque())) >= self.max_waiting:
                raise self.busy(user)
            queue.append(ticket := Future())
            return ticket

    def withdraw(self, user: str, ticket: Future) -> bool:
        """Give up a ticket: False if it still waited, True if its turn had come (then ``leave``)."""
        with self._lock:
            queue = self._waiting.get(user)
            if queue is not None and ticket in queue:
                queue.remove(ticket)
                if not queue:
                    del self._waiting[user]
                return False
            return True

    def leave(self, user: str) -> None:
        """One admitted request of ``user`` has ended: its worker goes to the next in turn."""
        with self._lock:
            if (left := self._running.pop(user, 1) - 1) > 0:
                self._running[user] = left
            self._total -= 1
            granted = []
            while self._total < self.workers:
                ready = [u for u in self._waiting if self._running.get(u, 0) < self.per_user]
                if not ready:
                    break
                turn = min(ready, key=lambda u: self._running.get(u, 0))  # the first of the fewest running
                queue = self._waiting.pop(turn)
                granted.append(queue.popleft())
                if queue:
                    self._waiting[turn] = queue  # to the back of the turn order
                self._running[turn] = self._running.get(turn, 0) + 1
                self._total += 1
        for ticket in granted:
            ticket.set_result(None)

    def busy(self, user: str) -> ArchiveError:
        """The 429 of a request that found no turn."""
        message = f"the archive is busy: {self.per_user} of your requests run at once and more wait; retry shortly"
        return ArchiveError("too_many_requests", message, 429, details={"retry_after": max(1, round(self.wait / 10))})


# -- executing on a cursor ----------------------------------------------------------------------
BATCH_ROWS = 131_072


def execute(
    cursor: duckdb.DuckDBPyConnection, statements: list, *, row_limit: int | None = None, time_limit: float | None = None,
    column_meta: dict[str, dict[str, str]] | None = None, batch_rows: int = BATCH_ROWS, on_limit=None,
) -> QueryResult:  # fmt: skip
    """Run ``statements`` (``sql.Statement``) in order on ``cursor``; stream the last one's rows.

    Earlier statements run for their effect. The cursor is closed when the result closes. A time limit interrupts the
    engine, during execution or while rows are streamed, unless ``on_limit(cursor)`` (asked then, on the watchdog's
    thread) says the query goes on (as a job).
    """
    import duckdb  # here: a server at rest need not hold it (~12 MB)
    timed_out = threading.Event()
    timer = None
    guard = threading.Lock()  # the watchdog must never interrupt the connection once it is given back
    closed, watch = [], None  # watch: of a write, stopped past the disk's room or the user's quota (``storage``)
    if time_limit:

        def _expire():
            if on_limit is not None and on_limit(cursor):
                return
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
        if watch is not None:
            watch.end()
        try:
            cursor.close()
        except duckdb.Error:
            pass

    def _check(exc: BaseException) -> ArchiveError:
        if watch is not None and (stopped := watch.error(exc)) is not None:
            return stopped
        if isinstance(exc, duckdb.InterruptException) or "Interrupted" in str(exc):
            if timed_out.is_set():
                return ArchiveError("time_limit", f"the query ran longer than the quick-query time limit of {time_limit:g} s; submit it as a job instead", 400)
            return ArchiveError("canceled", "the query was canceled", 409)
        return exc if isinstance(exc, ArchiveError) else engine_error(exc)

    try:
        watch = watch_writes(cursor, statements) if any(st.kind != "read" for st in statements) else None  # not for reads
        for st in statements[:-1]:
            rel = cursor.sql(st.sql, params=st.params or None)
            if rel is not None:
                # Reads before the last statement have no effect; run them (bounded) so errors surface.
                (rel.limit(1) if st.kind == "read" else rel).fetchall()
        last = statements[-1]
        if watch is not None and last.kind == "read":
            watch.end()  # the writes are done: checkpointed now, on this thread, not where the rows are read
        if last.kind == "read" and row_limit is not None and row_limit <= DBAPI_ROWS:
            # A quick query's rows are all fetched up front anyway: the DB-API path skips the relation API's extra bind
            # (~0.3 ms a query); its Arrow reader copies every row first, bounded by the row limit (more streams).
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
            rows = rel.fetchall() if rel is not None else None
            count = int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0
            _close()
            return rows_affected_result(count)
        reader = rel.to_arrow_reader(batch_rows)
        return _prefetched(reader, row_limit, column_meta, _close, _check)
    except (duckdb.Error, pa.ArrowException) as exc:
        error = _check(exc)
        _close()
        raise error from None
    except BaseException as exc:  # an ArchiveError, and whatever else: the connection goes back all the same
        _check(exc)  # a watched write: marked failed
        _close()
        raise


SMALL_ROWS = 64
DBAPI_ROWS = 100_000  # row limits up to this run on the DB-API path (whose Arrow reader holds a copy of every row)
# DuckDB types whose Python values convert to Arrow exactly as DuckDB's own Arrow export does.
_SIMPLE_TYPES = {
    "BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "TINYINT": pa.int8(),
    "UBIGINT": pa.uint64(), "UINTEGER": pa.uint32(), "USMALLINT": pa.uint16(), "UTINYINT": pa.uint8(),
    "DOUBLE": pa.float64(), "FLOAT": pa.float32(), "BOOLEAN": pa.bool_(), "VARCHAR": pa.string(),
    "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"),
}  # fmt: skip


def _small_batch(cursor) -> tuple[pa.RecordBatch, pa.Schema] | None:
    """The first rows of an executed query as an Arrow batch built from Python values, and its schema (one object per
    column shape, so what writers derive from it is remembered). For a handful of rows this is much cheaper than
    DuckDB's Arrow export (about 0.5 ms a query); a result with more rows continues through the Arrow reader after
    these (DuckDB resumes where fetchmany stopped). None unless every type is plain."""
    shape = _small_shape(tuple((d[0], str(d[1])) for d in cursor.description or ()))
    if shape is None:
        return None
    schema, struct = shape
    rows = cursor.fetchmany(SMALL_ROWS + 1)
    if struct is None:
        # Duplicate column names cannot be struct fields of one name each: build column by column.
        arrays = [pa.array(col, type=f.type) for col, f in zip(list(zip(*rows)) or [()] * len(schema), schema, strict=True)]
    else:  # one conversion of the row tuples as a struct array is 2-3x cheaper than one per column
        arrays = [pa.array(rows, type=struct)]
    if any(isinstance(a, pa.ChunkedArray) for a in arrays):  # over 2 GB of text in a few rows: pyarrow split it
        raise ArchiveError("too_large", f"the first {len(rows)} rows hold more than 2 GB of values; select less", 400)
    return (pa.record_batch(arrays, schema=schema) if struct is None else pa.RecordBatch.from_struct_array(arrays[0])), schema


@functools.lru_cache(maxsize=256)
def _small_shape(columns: tuple[tuple[str, str], ...]) -> tuple[pa.Schema, pa.StructType | None] | None:
    """(schema, struct type or None for duplicate names) of ``(name, engine type)`` columns all of plain types, else None."""
    types = [_SIMPLE_TYPES.get(t) for _, t in columns]
    if not columns or not all(types):
        return None
    schema = pa.schema([pa.field(n, t) for (n, _), t in zip(columns, types, strict=True)])
    unique = len({n for n, _ in columns}) == len(columns)
    return schema, pa.struct(list(schema)) if unique else None


def _prefetched(reader, row_limit, column_meta, on_close, check, *, first=None) -> QueryResult:
    """A QueryResult over an engine reader (and/or a first ``(batch, schema)`` already fetched): with a row limit every
    row (at most limit + 1) is read now, so truncation is known before anything is sent (held in bounded memory, the
    rest spooled: ``spool.hold``); else the first batch, so errors surface before the response starts."""
    first, schema = first if first is not None else (None, reader.schema)
    if column_meta:
        schema = annotate(schema, column_meta)
    prefetched: list[pa.RecordBatch] = [first] if first is not None and first.num_rows else []
    truncated = False
    if row_limit is not None and reader is None:  # a few rows, all in the first batch: cut at the limit
        truncated = bool(prefetched) and prefetched[0].num_rows > row_limit
        prefetched = [b for b in (p.slice(0, row_limit) for p in prefetched) if b.num_rows]
    elif row_limit is not None:
        engine = reader
        try:
            prefetched, reader, truncated = hold(itertools.chain(prefetched, batches_of(engine)), row_limit)
        finally:
            engine.close()
    else:
        try:
            prefetched.append(reader.read_next_batch())
        except StopIteration:
            reader.close()
            reader = None
    return QueryResult(schema, prefetched, reader, truncated=truncated, on_close=on_close, check_interrupt=check)
