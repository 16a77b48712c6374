"""VOTables read in a process of their own: table uploads into MyDB and TAP uploads.

astropy's VOTable parser turns every value of a TABLEDATA (or BINARY) table into Python objects while holding the
interpreter's lock: a 44 MB upload is seconds of it, and four at once left another user's metadata at a p99 of
160 ms and their quick queries at 580 ms (max 1.5 s). Parsed in a worker process, the server's lock stays free for
everyone else: the worker writes the table as Parquet beside the upload, each FIELD's metadata (unit, UCD,
description, utype, xtype, datatype) in its column's field metadata and the table's description in the schema's,
as a Parquet upload carries them, and the engine or Arrow reads that.

The workers (``WORKERS``, started with ``spawn``: the server has threads, which ``fork`` would copy mid-lock) start
at the first such upload and stop after ``IDLE`` seconds without one, so a server at rest holds none. A worker that
dies (past the process's memory cap, say) fails that upload with a clear error, and the next one starts afresh.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArchiveError

# multiprocessing and its pool: imported when a first VOTable comes, not by a server at rest
if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)

WORKERS = 2
IDLE = 60.0  # seconds without an upload after which the workers stop
BATCH_ROWS = 65_536  # rows converted to Arrow at a time

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_busy = 0
_last = 0.0
_watch: threading.Thread | None = None  # the thread that stops the workers once idle


def as_parquet(path: Path) -> tuple[Path | None, str | None]:
    """The VOTable at ``path`` as a Parquet file beside it (the caller removes it), parsed in a worker; or None and
    what is wrong with it ("not a valid VOTable: ...", "column 'x' cannot be read: ...", no FIELD). A 400 when its
    worker ended before it finished (out of memory; or it could not start: the workers import the server's main
    script as ``spawn`` does, which must guard what it runs with ``if __name__ == "__main__"``, as Jupyter's do)."""
    dst = path.with_name(path.name + ".parquet")
    problem = _run(_votable_to_parquet, str(path), str(dst))
    if problem is not None:
        dst.unlink(missing_ok=True)
        return None, problem
    return dst, None


def _run(fn, *args):
    """``fn(*args)`` in a worker process, waiting for it."""
    global _pool, _busy, _last, _watch
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
        pool = _pool
        _busy += 1
    try:
        return pool.submit(fn, *args).result()
    except BrokenProcessPool:
        with _lock:
            if _pool is pool:
                _pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        log.exception("a VOTable reader's process ended before it finished")
        raise ArchiveError("too_large", "the upload's reader ended before it finished (out of memory, most likely): send a smaller "
                           "table, or one as Parquet or CSV", 400) from None
    finally:
        with _lock:
            _busy -= 1
            _last = time.monotonic()
            if _watch is None:  # one watch at a time, however many uploads come
                _watch = threading.Thread(target=_stop_when_idle, name="archive-votable-idle", daemon=True)
                _watch.start()


def _stop_when_idle() -> None:
    """Wait until the workers have had nothing to do for ``IDLE`` seconds, then stop them (a thread)."""
    global _pool, _watch
    while True:
        with _lock:
            left = IDLE - (time.monotonic() - _last)
            if _pool is None or (left <= 0 and not _busy):
                pool, _pool, _watch = _pool, None, None
                break
        time.sleep(max(left, 0.1))
    if pool is not None:
        pool.shutdown(wait=False)


# -- in the worker -------------------------------------------------------------------------------------------------
def _votable_to_parquet(src: str, dst: str) -> str | None:
    """Write the VOTable at ``src`` as Parquet at ``dst``: None when done, else what is wrong with it."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.io.votable import parse
    from astropy.utils.exceptions import AstropyWarning

    from ..errors import one_line
    from .columns import to_arrow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            resource_table = parse(src).get_first_table()
            table = resource_table.to_table(use_names_over_ids=True)
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for bad XML
            return f"not a valid VOTable: {one_line(exc)}"
    if not resource_table.fields:
        return "the VOTable's table has no FIELD, so no columns to query"
    fields = []
    for f, name in zip(resource_table.fields, table.colnames, strict=True):
        try:
            first = to_arrow(table[name][:BATCH_ROWS])
            kind = to_arrow(table[name]).type if pa.types.is_null(first.type) else first.type
        except Exception as exc:  # noqa: BLE001 - values astropy read but Arrow cannot hold
            return f"column {name!r} cannot be read: {one_line(exc)}"
        values = {"unit": f.unit, "ucd": f.ucd, "description": f.description, "utype": f.utype, "xtype": f.xtype, "datatype": f.datatype}
        metadata = {k: str(v) for k, v in values.items() if v not in (None, "")}
        fields.append(pa.field(name, pa.string() if pa.types.is_null(kind) else kind, metadata=metadata or None))
    description = getattr(resource_table, "description", None)
    schema = pa.schema(fields, metadata={"description": str(description)} if description else None)
    try:
        with pq.ParquetWriter(dst, schema) as writer:
            for start in range(0, len(table), BATCH_ROWS):  # in batches: bounded memory past the parsed table
                arrays = [to_arrow(table[f.name][start : start + BATCH_ROWS]).cast(f.type) for f in schema]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    except Exception as exc:  # noqa: BLE001 - a value Arrow cannot hold
        return f"a value cannot be read: {one_line(exc)}"
    return None
