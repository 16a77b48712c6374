"""Where query jobs keep results that are not MyDB tables: Parquet files, read back paged."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..errors import not_found
from ..memory import release_memory
from ..execution.pool import QueryResult

# pyarrow.parquet (with pyarrow.fs): imported where used, ~4 MB a server at rest need not hold
if TYPE_CHECKING:
    import pyarrow.parquet as pq


class ResultStore:
    """Result files under ``root`` (``<job id>.parquet``), written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: int) -> Path:
        return self.root / f"{int(job_id)}.parquet"

    def write(
        self,
        job_id: int,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        on_rows: Callable[[int], None] | None = None,
    ) -> int:
        """Write batches as the job's result; returns the row count. Nothing is left on failure."""
        import pyarrow.parquet as pq
        final = self.path(job_id)
        tmp = final.with_suffix(".parquet.tmp")
        rows = 0
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in batches:
                    if batch.num_rows:
                        writer.write_batch(batch)
                        rows += batch.num_rows
                        if on_rows:
                            on_rows(rows)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
            release_memory()
        return rows

    def read(self, job_id: int, *, offset: int = 0, limit: int | None = None) -> QueryResult:
        """A page of a stored result as a streamed QueryResult (batches read lazily)."""
        import pyarrow.parquet as pq
        path = self.path(job_id)
        if not path.exists():
            raise not_found(f"job {job_id} has no stored result (it expired or was deleted)", job=job_id)
        # pre_buffer would read ahead, and keep, every row group's bytes: a 5M-row result held 356 MB.
        pf = pq.ParquetFile(path, pre_buffer=False)
        schema = pf.schema_arrow

        def batches() -> Iterator[pa.RecordBatch]:
            skip, left = offset, limit
            for batch in pf.iter_batches(batch_size=65_536):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                if skip:
                    batch, skip = batch.slice(skip), 0
                if left is not None:
                    if left <= 0:
                        break
                    batch = batch.slice(0, left)
                    left -= batch.num_rows
                yield batch

        gen = batches()
        return QueryResult(schema, [], _Reader(gen), on_close=pf.close if hasattr(pf, "close") else None)

    def remove(self, job_id: int) -> None:
        try:
            self.path(job_id).unlink()
        except FileNotFoundError:
            pass


class _Reader:
    """The little of RecordBatchReader that QueryResult uses, over a generator."""

    def __init__(self, gen: Iterator[pa.RecordBatch]):
        self._gen = gen

    def read_next_batch(self) -> pa.RecordBatch:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
