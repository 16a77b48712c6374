"""One fanned-out task: the task SQL of a query over one batch of partition files, run on a Dask worker.

Workers import this module (and nothing else of the archive): it needs only DuckDB and pyarrow, plus
``distributed`` for the job's cancel event. Each task gets a fresh in-memory DuckDB locked down as the
archive's engines are: file access only under the catalog's root, no extensions, configuration locked.
Files named by a URL (``s3://``, ``gs://``, ...) are read through pyarrow's filesystems instead, and DuckDB
then reads no file at all.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

SOURCE = "__source"  # as fanout.SOURCE: the view over the batch's files
SHIPPED = "__shipped{}"
CANCEL_POLL = 0.5  # seconds between a task's looks at its job's cancel event


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _dataset(files: list[str]):
    import pyarrow.dataset as ds

    return ds.dataset(files, format="parquet")


def run_batch(
    sql: str, params: dict, files: list[str], root: str, shipped: list[pa.Table], cancel: str | None = None,
    threads: int | None = None, memory_limit: str | None = None,
) -> pa.Table:  # fmt: skip
    """Run ``sql`` over ``files`` (the view ``SOURCE``) and the ``shipped`` tables; its columns renamed
    ``__c0``, ``__c1``, ... by position. ``cancel`` names the job's ``distributed.Event``: once set, the
    query is interrupted, so a canceled job leaves no task running."""
    remote = any("://" in f for f in files)
    con = _instance("" if remote else root, threads, memory_limit).cursor()  # its own temp views and tables
    try:
        for i, table in enumerate(shipped):
            con.register(SHIPPED.format(i), table)
        if remote:
            con.register("__files", _dataset(files))  # read through pyarrow's filesystem: DuckDB reads no file
            con.execute(f'CREATE TEMP VIEW "{SOURCE}" AS SELECT * FROM __files')
        else:
            listed = ", ".join(_literal(f) for f in files)
            con.execute(f'CREATE TEMP VIEW "{SOURCE}" AS SELECT * FROM read_parquet([{listed}], hive_partitioning = false)')
        stop = threading.Event()
        if cancel:
            _watch(con, cancel, stop)
        try:
            table = con.sql(sql, params=params or None).to_arrow_table()
        finally:
            stop.set()
        return table.rename_columns([f"__c{i}" for i in range(table.num_columns)])
    finally:
        con.close()


def run_pieces(
    sqls: list[str], params: dict, root: str | tuple[str, ...], cancel: str | None = None, threads: int | None = None,
    memory_limit: str | None = None,
) -> pa.Table:  # fmt: skip
    """Run each of ``sqls`` (self-contained: they name their files) and return their rows together, columns
    renamed as ``run_batch``'s; ``root``: the directories they may read (a catalog x catalog cross-match's)."""
    con = _instance(root, threads, memory_limit).cursor()
    try:
        stop = threading.Event()
        if cancel:
            _watch(con, cancel, stop)
        try:
            parts = [con.sql(sql, params=params or None).to_arrow_table() for sql in sqls]
        finally:
            stop.set()
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        return table.rename_columns([f"__c{i}" for i in range(table.num_columns)])
    finally:
        con.close()


_INSTANCES: dict[tuple, duckdb.DuckDBPyConnection] = {}
_LOCK = threading.Lock()


def _instance(root: str | tuple[str, ...], threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """This worker's DuckDB for a catalog root, locked down once and kept (opening one costs ~0.1 s a task);
    each task takes a connection of its own."""
    key = (root, threads, memory_limit)
    with _LOCK:
        db = _INSTANCES.get(key)
        if db is None:
            config = {"threads": int(threads)} if threads else {}
            if memory_limit:
                config["memory_limit"] = memory_limit
            db = duckdb.connect(":memory:", config=config)
            # Only the catalog's root is readable (nothing at all for a URL catalog, read through pyarrow).
            roots = [root] if isinstance(root, str) else list(root)
            db.execute(f"SET allowed_directories = [{', '.join(_literal(r.rstrip('/') + '/') for r in roots if r)}]")
            db.execute("SET enable_progress_bar = false")  # a worker's stdout is no place for it
            db.execute("SET enable_external_access = false")
            db.execute("SET autoinstall_known_extensions = false")
            db.execute("SET autoload_known_extensions = false")
            db.execute("SET lock_configuration = true")
            _INSTANCES[key] = db
        return db


def shipped(tables: list[pa.Table]) -> list[pa.Table]:
    """The shipped tables as a task's result: what every task of a query reads, held once per worker."""
    return tables


def _watch(con: duckdb.DuckDBPyConnection, name: str, stop: threading.Event) -> None:
    """Interrupt ``con`` once the job's cancel event ``name`` is set, or once nobody wants this task's result
    any more (its client, the archive, went away: a server killed mid-job leaves no task running); or stop
    watching with ``stop``."""
    from distributed import Event, get_worker

    event = Event(name)
    if event.is_set():
        raise RuntimeError("the job was canceled")
    worker = get_worker()
    key = worker.get_current_task()

    def wanted() -> bool:
        task = worker.state.tasks.get(key)
        return task is not None and task.state not in ("cancelled", "released", "forgotten")

    def watch():
        while not stop.is_set():
            try:
                canceled = event.wait(timeout=CANCEL_POLL)
            except Exception:  # noqa: BLE001 - the event cannot be asked (its client gone, the worker closing)
                stop.wait(CANCEL_POLL)
                canceled = False
            if stop.is_set():
                return  # the task ended while we waited: its connection may be closed already
            if canceled or not wanted():
                try:
                    con.interrupt()
                except duckdb.ConnectionException:
                    pass  # closed as the task ended between the look above and now: nothing left to interrupt
                return

    threading.Thread(target=watch, name="archive-task-cancel", daemon=True).start()
