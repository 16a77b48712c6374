"""Where a row-limited result's rows wait, past what memory holds, until they are sent.

A quick query (TAP sync, CasJobs, the native API) answers whether the row limit cut it before
the first byte goes out (``X-Archive-Truncated``, Arrow's schema metadata, the DataSet head),
so every row up to ``row_limit + 1`` is read before sending (``run.hold``). The first few MB of
them stay in memory; the rest go to a :class:`Spool`, an anonymous temporary file holding an
Arrow IPC stream, read back batch by batch while the answer is sent: a limit of millions of rows
costs disk, not memory. The file has no name once opened, so nothing outlives the process.
"""

from __future__ import annotations

import tempfile

import pyarrow as pa


class Spool:
    """Record batches written to an anonymous temporary file, then read back once, in order;
    the reader side is the little of ``RecordBatchReader`` that ``QueryResult`` uses."""

    def __init__(self, schema: pa.Schema):
        self._file = tempfile.TemporaryFile(prefix="archive-spool-")
        self._sink = pa.PythonFile(self._file, mode="w")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self._reader = None

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def finish(self) -> None:
        """Done writing: read from the start."""
        self._writer.close()
        self._file.flush()
        self._file.seek(0)
        self._reader = pa.ipc.open_stream(pa.PythonFile(self._file, mode="r"))

    def read_next_batch(self) -> pa.RecordBatch:
        if self._reader is None:
            raise StopIteration
        return self._reader.read_next_batch()

    def close(self) -> None:
        self._reader = None
        self._file.close()
