"""Arrow IPC stream and Parquet: the result's own types, written batch by batch.

Both carry ``archive.truncated`` (``true``/``false``) in the schema metadata. The writers write
into a sink whose bytes are taken after each slice, so nothing accumulates.
"""

from __future__ import annotations

import pyarrow as pa

from .base import Writer, plain, slices, text_row_bytes


class _Drain:
    """A write-only file object whose contents are taken away after each batch."""

    closed = False

    def __init__(self):
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self):
        pass

    def close(self):
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> list[bytes]:
        out, self.parts = self.parts, []
        return out


def _with_truncated(schema, info) -> pa.Schema:
    md = dict(schema.metadata or {})
    md[b"archive.truncated"] = b"true" if info.truncated else b"false"
    return schema.with_metadata(md)


def _binary_writer(make, rows: int | None):
    def write(schema, batches, info, opt):
        schema = _with_truncated(schema, info)
        sink = _Drain()
        writer = make(sink, schema)

        def render(b):
            writer.write_batch(pa.RecordBatch.from_arrays([plain(c) for c in b.columns], schema=schema))
            return sink.take()

        try:
            row_bytes = text_row_bytes(schema)  # close enough to Arrow's own widths
            for parts in slices(batches, row_bytes, render, rows=rows):
                yield from parts
        finally:
            writer.close()
        yield from sink.take()

    return write


def _parquet_writer(sink, schema):
    import pyarrow.parquet as pq

    return pq.ParquetWriter(sink, schema, compression="zstd")


# Parquet: one row group per 122,880 rows (DuckDB's own row-group size): big enough for
# readers, small enough that the writer's buffered row group stays a few tens of MB.
write_parquet = _binary_writer(_parquet_writer, 122_880)
write_arrow = _binary_writer(lambda sink, schema: pa.ipc.new_stream(sink, schema), None)

PARQUET = Writer(
    "parquet", write_parquet, "application/vnd.apache.parquet",
    {"application/vnd.apache.parquet": {}, "application/x-parquet": {}, "application/parquet": {}},
)
ARROW = Writer("arrow", write_arrow, "application/vnd.apache.arrow.stream", {"application/vnd.apache.arrow.stream": {}})
