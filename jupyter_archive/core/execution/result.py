"""A query's result: running compiled statements on a DuckDB cursor and streaming the rows as Arrow batches.

Also the watchdog that enforces time limits.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa

from ..errors import ArchiveError
from .engines import engine_error
from ..formats.base import annotate

ROWS_AFFECTED = "Rows Affected"
BATCH_ROWS = 131_072


class Watchdog:
    """One thread that fires callbacks at deadlines: the quick-query time limits.

    A thread per query (``threading.Timer``) costs milliseconds to start under load;
    this costs a heap push.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._canceled: set[int] = set()
        self._seq = 0
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        with self._cond:
            self._seq += 1
            entry = (time.monotonic() + delay, self._seq, callback)
            earliest = not self._heap or entry < self._heap[0]
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="archive-watchdog", daemon=True)
                self._thread.start()
            if earliest:
                # Only a new earliest deadline changes when the thread must wake; waking it for
                # every query would make it fight the query's thread for the GIL.
                self._cond.notify()
            return self._seq

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._canceled.add(handle)
            if len(self._canceled) > 1024 and 2 * len(self._canceled) > len(self._heap):
                # Canceled entries wait in the heap until their deadline; drop them in bulk.
                self._heap = [e for e in self._heap if e[1] not in self._canceled]
                heapq.heapify(self._heap)
                self._canceled.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, handle, callback = self._heap[0]
                now = time.monotonic()
                if handle in self._canceled:
                    heapq.heappop(self._heap)
                    self._canceled.discard(handle)
                    continue
                if when > now:
                    self._cond.wait(when - now)
                    continue
                heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # noqa: BLE001 - a failed interrupt must not stop the watchdog
                pass


WATCHDOG = Watchdog()


class QueryResult:
    """A running query's rows: schema known, batches pulled on demand, closed at the end.

    ``truncated`` is known before the first byte is sent: with a row limit the first rows
    (at most ``row_limit + 1``, a configured, bounded amount) are fetched up front.
    """

    def __init__(
        self,
        schema: pa.Schema,
        prefetched: list[pa.RecordBatch],
        reader: pa.RecordBatchReader | None,
        *,
        truncated: bool = False,
        rows_affected: int | None = None,
        on_close: Callable[[], None] | None = None,
        check_interrupt: Callable[[BaseException], ArchiveError] | None = None,
    ):
        self.schema = schema
        self.truncated = truncated
        self.rows_affected = rows_affected
        self._prefetched = prefetched
        self._reader = reader
        self._on_close = on_close
        self._check = check_interrupt or engine_error
        self.rows_sent = 0
        self.closed = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            while self._prefetched:
                b = self._prefetched.pop(0)
                self.rows_sent += b.num_rows
                yield b.cast(self.schema) if b.schema != self.schema else b
            if self._reader is not None:
                while True:
                    try:
                        b = self._reader.read_next_batch()
                    except StopIteration:
                        break
                    except duckdb.Error as exc:
                        raise self._check(exc) from None
                    except pa.ArrowException as exc:
                        raise self._check(exc) from None
                    self.rows_sent += b.num_rows
                    yield b.replace_schema_metadata(None).cast(self.schema) if b.schema != self.schema else b
        finally:
            self.close()

    @property
    def complete(self) -> bool:
        """All rows are already fetched (a small result): nothing more to pull from the engine."""
        return self._reader is None

    def to_table(self) -> pa.Table:
        """All rows at once; for small results (tests, widgets), never for exports."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._prefetched = []
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001 - closing after an engine error may fail again
                pass
        if self._on_close:
            self._on_close()

    def also_on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the result closes, after what already runs then (e.g. drop uploads)."""
        before = self._on_close

        def both():
            try:
                if before:
                    before()
            finally:
                fn()

        self._on_close = both

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rows_affected_result(count: int) -> QueryResult:
    schema = pa.schema([pa.field(ROWS_AFFECTED, pa.int64())])
    batch = pa.record_batch([pa.array([count], pa.int64())], schema=schema)
    return QueryResult(schema, [batch], None, rows_affected=count)


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
        if last.kind == "read" and row_limit is not None:
            # A quick query's rows are all fetched up front anyway: the DB-API path skips the
            # relation API's extra bind (~0.3 ms a query); its Arrow copy costs nothing here.
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
    with a row limit every row (at most limit + 1) is fetched now, so truncation is known before
    anything is sent; else the first batch, so errors surface before the response starts."""
    first, schema = first if first is not None else (None, reader.schema)
    if column_meta:
        schema = annotate(schema, column_meta)
    prefetched: list[pa.RecordBatch] = [first] if first is not None and first.num_rows else []
    truncated = False
    if row_limit is not None:
        total = sum(b.num_rows for b in prefetched)
        while total <= row_limit and reader is not None:
            try:
                b = reader.read_next_batch()
            except StopIteration:
                break
            prefetched.append(b)
            total += b.num_rows
        if total > row_limit:
            truncated = True
            keep = row_limit - (total - prefetched[-1].num_rows)
            prefetched[-1] = prefetched[-1].slice(0, keep)
        if reader is not None:
            reader.close()
            reader = None
    else:
        try:
            prefetched.append(reader.read_next_batch())
        except StopIteration:
            reader.close()
            reader = None
    return QueryResult(schema, prefetched, reader, truncated=truncated, on_close=on_close, check_interrupt=check)
