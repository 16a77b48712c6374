"""Running a fanned-out query on the Dask cluster (``ArchiveApp.dask_scheduler``; ``scheduler.Cluster`` holds
its client). ``fan_out`` runs one compiled SELECT over a partitioned table: the
statement split by ``fanout.decompose``, one task (``batch.run_batch``) per batch of partition files,
the parts merged by the coordinator's DuckDB; what comes back is a stream of Arrow batches. Progress
is finished tasks over all tasks; a set cancel event cancels every future and interrupts the running
ones; a task that fails, or a worker that dies for good, fails the whole query with a clear message.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from ..errors import ArchiveError
from . import fanout
from .engines import engine_error
from .scheduler import Cluster, check_scheduler  # noqa: F401 - the cluster's holder, as its users import it

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb

POLL = 0.2  # seconds between the coordinator's looks at cancel, limits and workers
NO_WORKERS = 60.0  # seconds a job waits for a cluster with no worker before it fails
TASKS_PER_THREAD = 3  # a few batches per worker thread: scheduling costs ~30 ms a task


@dataclass
class FanOut:
    """One statement to fan out: compiled DuckDB SQL reading the partitioned ``table`` (by its name in ``sql``)."""

    sql: str
    table: str
    batches: list[list[str]]  # partition files, one list per task (``batches()`` makes them)
    root: str  # the catalog's root: the only directory the tasks' DuckDB may read
    params: dict = field(default_factory=dict)
    schema: pa.Schema | None = None  # the partitioned table's columns (read from its first file when None)
    shipped: dict[str, pa.Table] = field(default_factory=dict)  # small tables the tasks read (an upload), by name
    shipped_per_batch: list[dict[str, pa.Table]] | None = None  # each batch's own rows of them (e.g. its cells only)
    threads: int | None = None  # DuckDB threads in a task (None: DuckDB's default)
    time_limit: float | None = None
    pieces: Callable[[str], list[list[str]]] | None = None  # each batch's SQL texts from the task SQL (pairs.py); root may then be several


def batches(files: list[str], threads: int, per_thread: int = TASKS_PER_THREAD) -> list[list[str]]:
    """``files`` in about ``threads * per_thread`` contiguous batches (HATS lists them in sky order)."""
    n = max(1, min(len(files), threads * per_thread))
    size, extra = divmod(len(files), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(files[start:end])
        start = end
    return [b for b in out if b]


def fan_out(
    cluster: Cluster, plan: FanOut, *, cancel: threading.Event | None = None, progress: Callable[[int, int], None] | None = None
) -> pa.RecordBatchReader:
    """Run ``plan`` on the cluster; its rows as a stream of Arrow batches, in the statement's own columns.

    The statement is split (``fanout.decompose``) and checked on empty inputs before any task starts, so a
    statement that cannot be split, or is wrong, fails at once (``ArchiveError``, 400). ``progress(done,
    total)`` is called as tasks finish; ``cancel`` set stops everything (``ArchiveError`` "canceled", 409)."""
    names = list(plan.shipped)
    schema = plan.schema if plan.schema is not None else _file_schema(plan)
    inputs = {fanout.SOURCE: schema, **{fanout.SHIPPED.format(i): plan.shipped[n].schema for i, n in enumerate(names)}}
    columns = frozenset(f.lower() for s in inputs.values() for f in s.names)
    split = fanout.decompose(plan.sql, plan.table, names, columns)
    coordinator = _coordinator()
    try:
        result, parts = _check(coordinator, split, inputs, plan.params)
    except BaseException:
        coordinator.close()
        raise
    if not plan.batches:  # nothing to read: the statement over no rows
        coordinator.close()
        return _empty(split, inputs, plan.params, result)
    client = cluster.client()
    run = _Run(client, cluster, split, plan, names, cancel, progress)
    return pa.RecordBatchReader.from_batches(result, _shaped(result, run.stream(coordinator, parts)))


def _file_schema(plan: FanOut) -> pa.Schema:
    import pyarrow.parquet as pq

    first = next((f for b in plan.batches for f in b), None)
    if first is None:
        raise ArchiveError("bad_request", "the partitioned table has no files and no schema", 400)
    try:
        return pq.read_schema(first)
    except (OSError, pa.ArrowException) as exc:
        from ..backends.hats import changed_on_disk

        raise changed_on_disk(f"{first!r}: {exc}") or ArchiveError("catalog_changed", f"a partition file cannot be read: {exc}", 409) from None


_COORDINATOR: list[duckdb.DuckDBPyConnection] = []
_COORDINATOR_LOCK = threading.Lock()


def _coordinator() -> duckdb.DuckDBPyConnection:
    """A connection of the merging DuckDB (one locked-down instance, opened once); what a query registers
    and its temp table of parts are its connection's own."""
    import duckdb
    with _COORDINATOR_LOCK:
        if not _COORDINATOR:
            db = duckdb.connect(":memory:")
            db.execute("SET enable_progress_bar = false")
            db.execute("SET enable_external_access = false")
            db.execute("SET autoinstall_known_extensions = false")
            db.execute("SET autoload_known_extensions = false")
            db.execute("SET lock_configuration = true")
            _COORDINATOR.append(db)
        return _COORDINATOR[0].cursor()


def _params(sql: str, params: dict) -> dict | None:
    used = fanout.placeholders(sql)
    return {k: v for k, v in params.items() if k in used} or None


def _check(con: duckdb.DuckDBPyConnection, split: fanout.Decomposition, inputs: dict, params: dict) -> tuple[pa.Schema, pa.Schema]:
    """The result's and the parts' Arrow schemas, found by running the statement and its task on empty inputs."""
    import duckdb
    for name, schema in inputs.items():
        con.register(name, schema.empty_table())
    try:
        result = con.sql(split.original_sql, params=_params(split.original_sql, params)).to_arrow_table().schema
        task = con.sql(split.task_sql, params=_params(split.task_sql, params)).to_arrow_table()
        parts = task.rename_columns([f"__c{i}" for i in range(task.num_columns)]).schema
        if split.merge_sql is not None:
            con.register(fanout.PARTS, parts.empty_table())
            merged = con.sql(split.merge_sql, params=_params(split.merge_sql, params)).to_arrow_table().schema
            con.unregister(fanout.PARTS)
        else:
            merged = pa.schema(list(parts)[split.hidden:])
    except duckdb.Error as exc:
        raise engine_error(exc) from None
    finally:
        for name in inputs:
            con.unregister(name)
    if len(merged) != len(result):
        raise fanout.refuse("this statement")  # a split the checks above should have refused
    return result, parts


def _empty(split: fanout.Decomposition, inputs: dict, params: dict, result: pa.Schema) -> pa.RecordBatchReader:
    con = _coordinator()
    try:
        for name, schema in inputs.items():
            con.register(name, schema.empty_table())
        table = con.sql(split.original_sql, params=_params(split.original_sql, params)).to_arrow_table()
    finally:
        con.close()
    return pa.RecordBatchReader.from_batches(result, _shaped(result, iter(table.to_batches())))


def _shaped(result: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each batch with the statement's own column names and types (the parts carry positional names)."""
    for b in batches:
        arrays = [a if a.type == f.type else a.cast(f.type) for a, f in zip(b.columns, result)]
        yield pa.RecordBatch.from_arrays(arrays, schema=result)


class _Run:
    """One fanned-out statement on the cluster: its futures, their results as they come, cancel and failure."""

    def __init__(self, client, cluster: Cluster, split, plan: FanOut, names: list[str], cancel, progress):
        from distributed import Event

        self.client = client
        self.split = split
        self.plan = plan
        self.cancel = cancel or threading.Event()
        self.progress = progress
        self.token = f"archive-fanout-{uuid.uuid4().hex}"
        self.event = Event(self.token, client=client)
        params = _params(split.task_sql, plan.params) or {}
        shared = [plan.shipped[n] for n in names] if plan.pieces is None else []
        if plan.shipped_per_batch is None and shared:
            # Sent once, not with every task; a task (not scattered data), so a worker's death only recomputes it.
            from .batch import shipped

            shared = client.submit(shipped, shared, key=f"{self.token}-shipped", pure=False)
        self.shared = shared
        self.futures = []
        if plan.pieces is not None:  # each task runs its SQL texts (over files they name) and returns their parts
            for i, sqls in enumerate(plan.pieces(split.task_sql)):
                self.futures.append(client.submit(_task("run_pieces"), sqls, params, plan.root, self.token, plan.threads,
                                                  cluster.memory_limit, key=f"{self.token}-{i}", pure=False))  # fmt: skip
        for i, files in enumerate(plan.batches if plan.pieces is None else []):
            mine = [plan.shipped_per_batch[i].get(n, plan.shipped[n]) for n in names] if plan.shipped_per_batch else shared
            self.futures.append(client.submit(
                _task(), split.task_sql, params, files, plan.root, mine, self.token, plan.threads, cluster.memory_limit,
                key=f"{self.token}-{i}", pure=False,
            ))  # fmt: skip
        self.total = len(self.futures)
        self.done = 0
        self.deadline = time.monotonic() + plan.time_limit if plan.time_limit else None

    def stream(self, con: duckdb.DuckDBPyConnection, parts: pa.Schema) -> Iterator[pa.RecordBatch]:
        """The statement's rows: parts passed on as they come (concatenation) or merged once all are in."""
        import duckdb
        try:
            if self.split.merge_sql is None:
                yield from self._concatenated()
                return
            con.register("__empty", parts.empty_table())
            con.execute(f'CREATE TEMP TABLE "{fanout.PARTS}" AS SELECT * FROM __empty')
            con.unregister("__empty")
            for part in self._parts():
                con.register("__part", part)
                con.execute(f'INSERT INTO "{fanout.PARTS}" SELECT * FROM __part')
                con.unregister("__part")
            try:
                reader = con.sql(self.split.merge_sql, params=_params(self.split.merge_sql, self.plan.params)).to_arrow_reader(65536)
                yield from reader
            except duckdb.Error as exc:
                raise engine_error(exc) from None
        finally:
            self._stop()
            con.close()

    def _concatenated(self) -> Iterator[pa.RecordBatch]:
        skip, left = self.split.offset, self.split.limit
        for part in self._parts():
            part = part.select(list(range(self.split.hidden, part.num_columns)))
            if skip:
                cut = min(skip, part.num_rows)
                part, skip = part.slice(cut), skip - cut
            if left is not None:
                part = part.slice(0, left)
                left -= part.num_rows
            yield from part.to_batches()
            if left == 0:
                return  # enough rows: the other tasks are canceled on the way out

    def _parts(self) -> Iterator[pa.Table]:
        from distributed import wait

        pending = set(self.futures)
        empty_since = None
        while pending:
            self._check_limits()
            try:
                finished, pending = wait(pending, timeout=POLL, return_when="FIRST_COMPLETED")
            except TimeoutError:
                finished = set()
            except Exception as exc:  # noqa: BLE001 - a future lost or canceled by the cluster itself
                raise ArchiveError("cluster_error", f"the Dask cluster lost part of this query: {exc}", 503) from None
            if not finished:
                empty_since = self._check_workers(empty_since)
                continue
            for future in finished:
                if future.status != "finished":
                    raise self._failure(future)
                part = future.result()
                future.release()
                self.done += 1
                if self.progress is not None:
                    self.progress(self.done, self.total)
                yield part

    def _check_limits(self) -> None:
        if self.cancel.is_set():
            raise ArchiveError("canceled", "the query was canceled", 409)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ArchiveError("time_limit", f"the query ran longer than its limit of {self.plan.time_limit:g} s", 400)

    def _check_workers(self, since: float | None) -> float | None:
        if self.client.nthreads():
            return None
        now = time.monotonic()
        if since is not None and now - since > NO_WORKERS:
            raise ArchiveError("unavailable", f"the Dask cluster has had no worker for {NO_WORKERS:g} s: the query cannot run", 503)
        return since or now

    def _failure(self, future) -> ArchiveError:
        import duckdb
        from distributed.scheduler import KilledWorker

        try:
            exc = future.exception()
        except Exception as err:  # noqa: BLE001 - a canceled or lost future
            exc = err
        if isinstance(exc, KilledWorker):
            return ArchiveError(
                "cluster_error",
                "a worker of the Dask cluster died while running part of this query (each time it was tried); "
                "the query failed: it may need more memory than a worker has, so try a smaller region or fewer columns",
                503,
            )
        if isinstance(exc, duckdb.InterruptException) and self.cancel.is_set():
            return ArchiveError("canceled", "the query was canceled", 409)
        if isinstance(exc, duckdb.Error):
            return engine_error(exc)
        return ArchiveError("cluster_error", f"part of this query failed on the Dask cluster: {type(exc).__name__}: {exc}", 503)

    def _stop(self) -> None:
        """Cancel what is left: queued tasks are dropped, running ones interrupted through the event."""
        left = [f for f in self.futures if f.status in ("pending", "lost")]
        try:
            if left:
                self.event.set()
                self.client.cancel(left, force=True)
        finally:
            for f in self.futures:
                f.release()
            if hasattr(self.shared, "release"):
                self.shared.release()


def _task(name: str = "run_batch"):
    from . import batch

    return getattr(batch, name)


class JobView:
    """What a job sees of a fanned-out query: the two calls it makes on a DuckDB cursor (its progress,
    and interrupting it), and ``fan_out``'s progress callback behind them."""

    def __init__(self, cancel: threading.Event | None):
        self.cancel = cancel if cancel is not None else threading.Event()
        self.done = self.total = 0
        self.detail = ""  # what ran where, for the job's log

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def query_progress(self) -> float:
        return 100.0 * self.done / self.total if self.total else -1

    def interrupt(self) -> None:
        self.cancel.set()

    def close(self) -> None:
        """Nothing to give back: the query's own stream closes what it holds."""


def run_partitioned(cluster: Cluster, plan, statements, *, time_limit=None, cancel=None, on_cursor=None) -> pa.RecordBatchReader | int:
    """A job's one statement over one HATS catalog (``planner.CLUSTER``) fanned out over the cluster: its rows,
    or, for ``SELECT ... INTO mydb``, how many it wrote. A cross-match's other table is read through the
    plan's engine and shipped, each batch of partitions with only the rows that can match there."""
    from .partitions import placeholder

    if hasattr(plan.partitioned, "fan_out"):  # a catalog x catalog cross-match (pairs.py): its own pieces
        for r in plan.partitioned.reads:  # a catalog changed on disk fails here, not in its tasks
            r.table.check(r.partitions)
        return plan.partitioned.fan_out(cluster, statements, time_limit=time_limit, cancel=cancel, on_cursor=on_cursor)
    read, st = plan.partitioned.reads[0], statements[0]
    read.table.check(read.partitions)  # a catalog changed on disk fails here, not in its tasks
    view = JobView(cancel)
    if on_cursor is not None:
        on_cursor(view)
    select, create = plan.partitioned.shapes[0], None
    ship = None
    if read.near is not None:
        from .crossmatches import shipped, task_shape

        cursor = plan.engine.cursor(timeout=None, cancel=view.cancel)
        try:
            ship = shipped(read, cursor, st.params, cluster.threads(), batches, plan.cells)
        finally:
            cursor.close()
        select = task_shape(read.near, select, ship.order) or select
    typed = None
    if st.kind == "write":
        from .cluster_writes import select_of

        select, create = select_of(select)
        # the SELECT over no rows gives its engine types (made from u, not the cells shipped to the tasks)
        typed = (select_of(plan.partitioned.shapes[0])[0] if ship is not None else select).replace(f'"{placeholder(0)}"', read.table.read_files_sql([]))
    if plan.outer:  # a cross-match the cluster splits only by its matched rows: pairs there, the rest here
        from .crossmatches import outer

        return outer(plan, st, select, create, typed, read, ship, lambda fan: fan_out(cluster, fan, cancel=view.cancel, progress=view), view, time_limit)
    fan = FanOut(sql=select, table=placeholder(0), batches=[], root=str(read.table.path), params=dict(st.params or {}), time_limit=time_limit)
    if ship is None:
        fan.batches = batches(read.files, cluster.threads())
        view.detail = f"the Dask cluster: {len(fan.batches)} tasks over {len(read.partitions)} of {read.table.partitions} partitions"
    else:
        ship.into(fan)
        view.detail = (
            f"the Dask cluster: {len(fan.batches)} tasks over {ship.partitions} of {read.table.partitions} partitions "
            f"(those the positions of {read.near.name} touch), {sum(r.num_rows for r in ship.rows)} of its rows shipped"
        )
    reader = fan_out(cluster, fan, cancel=view.cancel, progress=view)
    if create is None:
        return reader
    from .cluster_writes import written

    return written(plan.engine, create, typed, _params(typed, st.params or {}), reader, view.cancel)
