"""Where a row-limited result's rows wait, past what memory holds, until they are sent.

A quick query (TAP sync, CasJobs, the native API) answers whether the row limit cut it before
the first byte goes out (``X-Archive-Truncated``, Arrow's schema metadata, the DataSet head),
so every row up to ``row_limit + 1`` is read before sending (``hold``). The first few MB of
them stay in memory; the rest go to a :class:`Spool`, an anonymous temporary file holding an
Arrow IPC stream, read back batch by batch while the answer is sent: a limit of millions of rows
costs disk, not memory. The file has no name once opened, so nothing outlives the process.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

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
