"""Where query jobs keep results that are not MyDB tables: Parquet files, read back paged.

A stored result is written in row groups of ``ROW_GROUP`` rows and read back ``BATCH`` rows at a
time on the reading thread alone, so reading one costs a few MB of Arrow memory whatever its size:
Arrow's Parquet reader holds a whole row group's compressed column chunks and a page-sized
buffer per column while it decodes, and each of its threads keeps its own heap afterwards. A
page starts at the row group holding its first row (the footer says where each begins).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..errors import ArchiveError, not_found
from ..execution.storage import file_size, size_text
from ..memory import release_memory
from ..execution.pool import QueryResult

# pyarrow.parquet (with pyarrow.fs): imported where used, ~4 MB a server at rest need not hold
if TYPE_CHECKING:
    import pyarrow.parquet as pq


#: Rows of a stored result's row group: what the reader holds of it is ~1 MB of compressed column chunks
#: (at DuckDB's 122,880 rows ~9 MB, and a 5,000,000-row result read as CSV peaked ~35 MB higher in the server).
ROW_GROUP = 16_384
#: Rows of a batch read back: one row group's worth.
BATCH = 16_384
#: Bytes of rows written past which the freed memory is given back at once (``release_memory``): a large result's
#: buffers. Trimming the C heap after every small job took the allocator's locks from every thread, ~2% of a job's time.
RELEASE_AFTER = 8 << 20


class ResultStore:
    """Result files under ``root`` (``<job id>.parquet``), written atomically."""

    def __init__(self, root: Path, *, room: Callable[[Path], None] | None = None, quota: int | None = None,
                 owned: Callable[[str], list[int]] | None = None):  # fmt: skip
        self.root = Path(root)
        self._room = room  # raises the 507 of a disk with no room left to write at a path (``storage.Storage.room``)
        self.quota = quota  # bytes one owner's stored results may take, those being written included (None: any)
        self._owned = owned  # an owner identity's job ids (``JobStore.ids_of``): what they hold, counted once
        self._held: dict[str, int] = {}  # owner identity -> bytes of their results, stored and being written
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: int) -> Path:
        return self.root / f"{int(job_id)}.parquet"

    def write(
        self,
        job_id: int,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        on_rows: Callable[[int], None] | None = None,
        owner: str | None = None,
    ) -> int:
        """Write batches as the job's result; returns the row count. Nothing is left on failure: nor when the disk has
        no room left (``room``), nor when the ``owner``'s results would pass the quota (a 507 either way)."""
        import pyarrow.parquet as pq
        final = self.path(job_id)
        tmp = final.with_suffix(".parquet.tmp")
        rows = size = counted = 0
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in batches:
                    if batch.num_rows:
                        if self._room is not None:
                            self._room(tmp)  # a result never fills the disk: it fails whole, its file gone
                        writer.write_batch(batch, row_group_size=ROW_GROUP)
                        rows += batch.num_rows
                        size += batch.nbytes
                        if owner is not None and self.quota is not None:
                            counted = self._count(owner, counted, tmp)
                        if on_rows:
                            on_rows(rows)
            with self._lock:  # counted and in place together: a first count of the owner's files sees it once
                os.replace(tmp, final)
                if owner is not None and owner in self._held:
                    self._held[owner] += file_size(final) - counted
                counted = 0
        finally:
            if counted:
                with self._lock:
                    self._held[owner] -= counted
            if tmp.exists():
                tmp.unlink()
            if size >= RELEASE_AFTER:
                release_memory()
        return rows

    def _count(self, owner: str, counted: int, tmp: Path) -> int:
        """Count what a result being written has grown by (``counted`` so far) to its owner: the new count, or the
        507 of their quota (the caller takes the count back)."""
        now = file_size(tmp)
        with self._lock:
            held = self._held_by(owner) + now - counted
            if held <= self.quota:
                self._held[owner] = held
                return now
        raise ArchiveError(
            "quota_exceeded",
            f"this result would take your stored job results past their quota of {size_text(self.quota)}: "
            "delete jobs you no longer need, or write the result into MyDB (SELECT ... INTO)",
            507,
            details={"quota_bytes": self.quota},
        )

    def _held_by(self, owner: str) -> int:  # with the lock held
        if owner not in self._held:
            self._held[owner] = sum(file_size(self.path(i)) for i in self._owned(owner)) if self._owned else 0
        return self._held[owner]

    def held(self, owner: str) -> int:
        """Bytes of the owner's stored results (and of those being written)."""
        with self._lock:
            return self._held_by(owner)

    def usage(self, owner: str) -> dict:
        """What the owner's results take of the disk and of their quota (None: no quota), in bytes."""
        return {"bytes": self.held(owner), "quota": self.quota}

    def read(self, job_id: int, *, offset: int = 0, limit: int | None = None) -> QueryResult:
        """A page of a stored result as a streamed QueryResult (batches read lazily)."""
        import pyarrow.parquet as pq
        path = self.path(job_id)
        if not path.exists():
            raise not_found(f"job {job_id} has no stored result (it expired or was deleted)", job=job_id)
        # pre_buffer would read ahead, and keep, every row group's bytes: a 5M-row result held 356 MB.
        pf = pq.ParquetFile(path, pre_buffer=False)
        schema = pf.schema_arrow
        first, skip = _row_group_of(pf.metadata, max(offset, 0))

        def batches() -> Iterator[pa.RecordBatch]:
            skipping, left = skip, None if limit is None else max(limit, 0)
            groups = range(first, pf.metadata.num_row_groups)
            if not groups or left == 0:
                return
            # use_threads=False: decoded here, on the thread that reads; Arrow's own threads would each keep a heap
            for batch in pf.iter_batches(batch_size=BATCH, row_groups=groups, use_threads=False):
                if skipping >= batch.num_rows:  # a row group longer than a batch (a result stored before ROW_GROUP)
                    skipping -= batch.num_rows
                    continue
                if skipping:
                    batch, skipping = batch.slice(skipping), 0
                if left is not None:
                    batch = batch.slice(0, left)
                    left -= batch.num_rows
                yield batch
                if left == 0:
                    return

        gen = batches()
        return QueryResult(schema, [], _Reader(gen), on_close=pf.close if hasattr(pf, "close") else None)

    def remove(self, job_id: int, owner: str | None = None) -> None:
        path = self.path(job_id)
        with self._lock:
            size = file_size(path)
            try:
                path.unlink()
            except FileNotFoundError:
                return
            if owner in self._held:
                self._held[owner] -= size


def _row_group_of(metadata, offset: int) -> tuple[int, int]:
    """The row group holding row ``offset`` (the number of row groups when past the end) and the
    rows of it before that row."""
    for i in range(metadata.num_row_groups):
        rows = metadata.row_group(i).num_rows
        if offset < rows:
            return i, offset
        offset -= rows
    return metadata.num_row_groups, 0


class _Reader:
    """The little of RecordBatchReader that QueryResult uses, over a generator."""

    def __init__(self, gen: Iterator[pa.RecordBatch]):
        self._gen = gen

    def read_next_batch(self) -> pa.RecordBatch:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
