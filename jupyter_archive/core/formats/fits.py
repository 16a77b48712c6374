"""FITS writer: an empty primary HDU plus one BINTABLE.

A BINTABLE header states NAXIS2 (the row count), the string widths and the heap size before the
first row, so this is the one writer that cannot stream straight through: it spools the
(converted) batches to a temporary Arrow IPC file on disk, collecting those numbers, then emits
header, rows and heap while reading the spool back one batch at a time. The temporary file is
deleted when the generator finishes or is closed. astropy only builds the header cards; rows are
numpy big-endian structured arrays.

Column mapping: bool -> L; uint8 -> B; int8/int16 -> I; uint16/int32 -> J; uint32/int64 -> K;
uint64 -> K with TZERO = 2**63; float32 -> E; float64/decimal -> D; binary -> PB() (heap);
everything else -> text in an A column as wide as its longest value (bytes, UTF-8, min 1).
Nulls: floats NaN, booleans 0, text empty, integers TNULL (the type's minimum, or its maximum
when the minimum occurs in the data).
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from .base import Writer, field_meta, plain, slices
from .text import joined_bytes, text, unique_names

# pyarrow.compute: imported where used, so a server at rest does not hold it (~8 MB) before its first result
if TYPE_CHECKING:
    import pyarrow.compute as pc

BLOCK = 2880
_U64_ZERO = 2**63

# FITS integer columns, narrowest first: (TFORM, big-endian dtype, TZERO, min, max) in values
_LADDER = [("B", "u1", 0, 0, 255), ("I", ">i2", 0, -(2**15), 2**15 - 1),
           ("J", ">i4", 0, -(2**31), 2**31 - 1), ("K", ">i8", 0, -(2**63), 2**63 - 1),
           ("K", ">i8", _U64_ZERO, 0, 2**64 - 1)]
# Arrow integer type -> where on the ladder it starts
_INTS = {pa.uint8(): 0, pa.int8(): 1, pa.int16(): 1, pa.uint16(): 2, pa.int32(): 2,
         pa.uint32(): 3, pa.int64(): 3, pa.uint64(): 3}


def _kind(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if t in _INTS:
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_binary(t):
        return "bytes"
    return "text"


class _Column:
    """What the spool learns about one column: kind, spool type and the header numbers."""

    def __init__(self, f: pa.Field):
        self.field = f
        self.kind = _kind(f.type)
        self.nulls = 0
        self.lo = self.hi = None  # integer range seen
        self.width = 0  # longest text / binary value in bytes
        self.heap = 0  # binary bytes in total
        self.bzero = 0
        if self.kind == "int":
            self.spool_type = f.type
        elif self.kind == "float":
            self.spool_type = pa.float32() if f.type == pa.float32() else pa.float64()
            self.tform, self.dtype = ("E", ">f4") if f.type == pa.float32() else ("D", ">f8")
        else:
            self.spool_type = {"bool": pa.bool_(), "bytes": pa.binary()}.get(self.kind, pa.string())

    def convert(self, a: pa.Array) -> pa.Array:
        import pyarrow.compute as pc
        a = plain(a)
        if self.kind == "text":
            a = text(a, "csv")
        elif a.type != self.spool_type:
            a = a.cast(self.spool_type)
        self.nulls += a.null_count
        if self.kind == "int" and len(a) > a.null_count:
            mm = pc.min_max(a).as_py()
            self.lo = mm["min"] if self.lo is None else min(self.lo, mm["min"])
            self.hi = mm["max"] if self.hi is None else max(self.hi, mm["max"])
        elif self.kind in ("text", "bytes") and len(a):
            lengths = pc.binary_length(a)
            self.width = max(self.width, pc.max(lengths).as_py() or 0)
            self.heap += pc.sum(lengths).as_py() or 0
        return a

    def finish(self):
        """Fix the integer TFORM once the whole range is known: the narrowest type that holds
        the values and, when there are nulls, still has a free TNULL at one end of its range.
        With nulls, uint64 values >= 2**63 (TZERO + TNULL upsets astropy) and int64 columns
        using both extremes are written as text instead."""
        self.null = None
        if self.kind != "int":
            return
        lo, hi = (self.lo, self.hi) if self.lo is not None else (0, 0)
        for tform, dtype, bzero, tmin, tmax in _LADDER[_INTS[self.field.type]:]:
            if lo < tmin or hi > tmax or (self.nulls and bzero):
                continue
            if self.nulls:
                if lo > tmin:
                    self.null = tmin
                elif hi < tmax:
                    self.null = tmax
                else:
                    continue
            self.tform, self.dtype, self.bzero = tform, dtype, bzero
            return
        self.kind = "text"
        self.width = max(len(str(lo)), len(str(hi)))

    def fits_column(self, name: str):
        """The astropy ``fits.Column`` of this column, once ``finish`` has fixed its format."""
        from astropy.io import fits  # astropy loads only when a FITS file is written

        unit = field_meta(self.field).get("unit")
        kw = {"name": name, "unit": _ascii(unit) if unit else None}
        if self.kind == "int":
            kw.update(format=self.tform, null=self.null, bzero=self.bzero or None)
        elif self.kind == "float":
            kw["format"] = self.tform
        elif self.kind == "bool":
            kw["format"] = "L"
        elif self.kind == "bytes":
            kw["format"] = f"PB({self.width})"
        else:
            kw["format"] = f"{max(self.width, 1)}A"
        return fits.Column(**kw)

    def record_dtype(self) -> tuple:
        if self.kind in ("int", "float"):
            return (self.dtype,)
        if self.kind == "bool":
            return ("u1",)
        if self.kind == "bytes":
            return (">i4", (2,))
        return (f"S{max(self.width, 1)}",)


def _ascii(value: str) -> str:
    """FITS headers are printable ASCII: fold accents (München -> Munchen, µm -> um), "_" else."""
    value = unicodedata.normalize("NFKD", value.replace("µ", "u").replace("μ", "u"))
    return "".join(c if " " <= c <= "~" else "_" for c in value if not unicodedata.combining(c))


def _unique_names(names: list[str]) -> list[str]:
    # FITS column names are compared case-insensitively; astropy refuses duplicates
    return unique_names([_ascii(n) or "col" for n in names], lambda name, k: f"{name}_{k + 1}")


def _fixed_width(a: pa.Array, width: int) -> np.ndarray:
    """String/binary values (no nulls) left-aligned in an (n, width) NUL-padded byte matrix."""
    n = len(a)
    out = np.zeros((n, width), np.uint8)
    bufs = a.buffers()
    offs = np.frombuffer(bufs[1], np.int32, n + 1, a.offset * 4).astype(np.int64)
    total = int(offs[-1] - offs[0])
    if total:
        lens = np.diff(offs)
        starts = np.repeat(np.arange(n, dtype=np.int64) * width - (offs[:-1] - offs[0]), lens)
        out.reshape(-1)[starts + np.arange(total)] = np.frombuffer(bufs[2], np.uint8)[offs[0]:offs[-1]]
    return out


def _rows(b: pa.RecordBatch, cols: list[_Column], heap_pos: list[int]) -> np.ndarray:
    import pyarrow.compute as pc
    n = b.num_rows
    rec = np.empty(n, dtype=np.dtype([(f"f{j}", *c.record_dtype()) for j, c in enumerate(cols)]))
    for j, (a, c) in enumerate(zip(b.columns, cols)):
        key = f"f{j}"
        if c.kind == "int":
            if c.bzero:  # stored = value - 2**63: flip the top bit (no nulls here, see finish)
                rec[key] = (a.to_numpy() ^ np.uint64(_U64_ZERO)).view(np.int64)
            else:
                if a.type == pa.uint64() or a.null_count:
                    a = a.cast(pa.int64())  # fits: finish() checked the range
                rec[key] = (pc.fill_null(a, c.null) if a.null_count else a).to_numpy()
        elif c.kind == "float":
            rec[key] = (pc.fill_null(a, float("nan")) if a.null_count else a).to_numpy()
        elif c.kind == "bool":
            v = np.where(pc.fill_null(a, False).to_numpy(zero_copy_only=False), ord("T"), ord("F")).astype(np.uint8)
            if a.null_count:
                v[a.is_null().to_numpy(zero_copy_only=False)] = 0  # FITS: 0 byte = undefined logical
            rec[key] = v
        elif c.kind == "bytes":
            lens = pc.binary_length(pc.fill_null(a, b"")).to_numpy().astype(np.int64)
            rec[key][:, 0] = lens
            rec[key][:, 1] = heap_pos[0] + np.concatenate([[0], np.cumsum(lens)[:-1]])
            heap_pos[0] += int(lens.sum())  # one heap: batches in order, columns in order
        else:
            if not pa.types.is_string(a.type):  # an integer column that became text
                a = pc.cast(a, pa.string())
            a = pc.fill_null(a, "") if a.null_count else a
            rec[key] = _fixed_width(a, max(c.width, 1)).view(f"S{max(c.width, 1)}").reshape(n)
    return rec


def _header(cols: list[_Column], nrows: int, info) -> bytes:
    from astropy.io import fits

    names = _unique_names([c.field.name for c in cols])
    hdu = fits.BinTableHDU.from_columns([c.fits_column(nm) for c, nm in zip(cols, names)], nrows=0)
    hdr = hdu.header
    hdr["NAXIS2"] = nrows
    hdr["PCOUNT"] = sum(c.heap for c in cols if c.kind == "bytes")
    hdr["EXTNAME"] = _ascii(info.table_name or "Table1")
    if info.truncated:
        hdr["TRUNCATE"] = (True, "result cut at row limit")
    return fits.PrimaryHDU().header.tostring().encode("ascii") + hdr.tostring().encode("ascii")


def write_fits(schema: pa.Schema, batches, info, options):
    """Yield a FITS file (primary HDU + BINTABLE) for the result, spooling through a temp file."""
    import pyarrow.compute as pc
    cols = [_Column(f) for f in schema]
    spool_schema = pa.schema([pa.field(f"c{j}", c.spool_type) for j, c in enumerate(cols)])
    fd, path = tempfile.mkstemp(prefix="archive-fits-", suffix=".arrows")
    os.close(fd)
    try:
        row_bytes = sum(8 if c.kind != "text" else 24 for c in cols) + 1
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, spool_schema) as writer:

            def spool(b):
                arrays = [c.convert(a) for c, a in zip(cols, b.columns)]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=spool_schema))
                return b.num_rows

            nrows = sum(slices(batches, row_bytes, spool))
        for c in cols:
            c.finish()
        yield _header(cols, nrows, info)
        size = 0
        heap_pos = [0]
        with pa.OSFile(path, "rb") as src:
            for b in pa.ipc.open_stream(src):
                rec = _rows(b, cols, heap_pos)
                size += rec.nbytes
                yield rec.view(np.uint8).tobytes()
        if any(c.kind == "bytes" for c in cols):  # second pass: the heap, in descriptor order
            with pa.OSFile(path, "rb") as src:
                for b in pa.ipc.open_stream(src):
                    for a, c in zip(b.columns, cols):
                        if c.kind == "bytes" and len(a):
                            chunk = joined_bytes(pc.fill_null(a, b""))
                            size += len(chunk)
                            yield chunk
        if size % BLOCK:
            yield bytes(BLOCK - size % BLOCK)
    finally:
        os.unlink(path)


# application/fitsTable: LSST DAX's name
FITS = Writer("fits", write_fits, "application/fits", {"application/fits": {}, "application/fitsTable": {}})
