"""Arrow IPC stream and Parquet: the result's own types, written batch by batch.

Both carry ``archive.truncated`` (``true``/``false``) in the schema metadata, and a random sample
``archive.sample`` (``10000 of 1234567; seed=0``). Parquet is
VOParquet (IVOA note 1.0): its key-value metadata holds ``IVOA.VOTable-Parquet.version`` and
``IVOA.VOTable-Parquet.content``, the result's VOTable without DATA (FIELDs with units, UCDs and
descriptions, rendered by :mod:`.votable`), all known before the first row. The writers write
into a sink whose bytes are taken after each slice, so nothing accumulates.
"""

from __future__ import annotations

import pyarrow as pa

from .base import Writer, pipelined, plain, slices, text_row_bytes
from .votable import description


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


def _with_truncated(schema, info, more: dict[bytes, bytes] | None = None) -> pa.Schema:
    md = {**(schema.metadata or {}), **(more or {})}
    md[b"archive.truncated"] = b"true" if info.truncated else b"false"
    if info.sample is not None:
        md[b"archive.sample"] = info.sample.said().encode()
    return schema.with_metadata(md)


def write_arrow(schema, batches, info, opt):
    schema = _with_truncated(schema, info)
    sink = _Drain()
    writer = pa.ipc.new_stream(sink, schema)

    def render(b):
        writer.write_batch(pa.RecordBatch.from_arrays([plain(c) for c in b.columns], schema=schema))
        return sink.take()

    try:
        for parts in slices(batches, text_row_bytes(schema), render):  # text widths: close enough to Arrow's
            yield from parts
    finally:
        writer.close()
    yield from sink.take()


#: Rows of a Parquet row group: DuckDB's own (COPY's default), big enough for readers, a few tens of MB at most.
ROW_GROUP = 122_880


def write_parquet(schema, batches, info, opt):
    """Parquet as DuckDB's COPY writes it (snappy, row groups of ~122,880 rows, statistics),
    each row group encoded on the render pool while the engine makes the next, its bytes sent
    as soon as it is written."""
    import pyarrow.parquet as pq

    # the FIELDs of the schema as given (one object per quick query's shape: remembered, see base.per_object)
    schema = _with_truncated(schema, info, _voparquet(schema, info))
    sink = _Drain()
    # Dictionaries pay off for text and small integers; for wide numbers (coordinates, ids) the
    # writer would build one only to give it up, at half its speed.
    dictionary = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)
                  or pa.types.is_boolean(f.type) or (pa.types.is_integer(f.type) and f.type.bit_width <= 16)]
    writer = pq.ParquetWriter(sink, schema, compression="snappy", use_dictionary=dictionary)

    def render(group: list[pa.RecordBatch]):
        table = pa.Table.from_batches([pa.RecordBatch.from_arrays([plain(c) for c in b.columns], schema=schema) for b in group], schema=schema)
        writer.write_table(table, row_group_size=table.num_rows)
        return sink.take()

    try:
        for parts in pipelined(_row_groups(batches, ROW_GROUP), render):
            yield from parts
    finally:
        writer.close()
    yield from sink.take()


def _voparquet(schema, info) -> dict[bytes, bytes]:
    """The VOParquet keys (type and encoding as IRSA writes them; astropy needs only the first two)."""
    return {b"IVOA.VOTable-Parquet.version": b"1.0", b"IVOA.VOTable-Parquet.content": description(schema, info),
            b"IVOA.VOTable-Parquet.type": b"Parquet-local-XML", b"IVOA.VOTable-Parquet.encoding": b"utf-8"}


def _row_groups(batches, rows: int):
    """The batches in groups of about ``rows`` rows (whole batches joined, long ones cut)."""
    group, n = [], 0
    for b in batches:
        step = rows if b.num_rows > 2 * rows else max(b.num_rows, 1)
        for off in range(0, b.num_rows, step):
            part = b.slice(off, step)
            group.append(part)
            n += part.num_rows
            if n >= rows:
                yield group
                group, n = [], 0
        del b
    if group:
        yield group


PARQUET = Writer(
    "parquet", write_parquet, "application/vnd.apache.parquet",
    {"application/vnd.apache.parquet": {}, "application/x-parquet": {}, "application/parquet": {}},
    names={"parquet": {}, "vo-parquet": {}, "voparquet": {}},
)
ARROW = Writer("arrow", write_arrow, "application/vnd.apache.arrow.stream", {"application/vnd.apache.arrow.stream": {}})
