"""The table every format test encodes and reads back, and how read-back values are compared with it."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math

import numpy as np
import pyarrow as pa

from jupyter_archive.core.formats import ResultInfo, by_name
from jupyter_archive.core.formats.base import with_meta


ALL = ["csv", "tsv", "json", "json-table", "json-array-casjobs", "ldjson", "votable", "fits", "parquet", "arrow", "xml",
       "dataset", "html"]
SERIALIZATIONS = ["tabledata", "binary", "binary2"]
TRICKY = 'a,b "c"\nd\te\rf'


def _field(name, typ, **meta):
    return with_meta(pa.field(name, typ), **meta)


SCHEMA = pa.schema([
    _field("id", pa.int64(), ucd="meta.id;meta.main", description="object id"),
    _field("u64", pa.uint64()),
    _field("i8", pa.int8()), _field("i16", pa.int16()), _field("i32", pa.int32()),
    _field("u8", pa.uint8()), _field("u16", pa.uint16()), _field("u32", pa.uint32()),
    _field("ra", pa.float64(), unit="deg", ucd="pos.eq.ra;meta.main", description='Right <ascension> & "J2000"'),
    _field("mag", pa.float32(), unit="mag", ucd="phot.mag"),
    _field("name", pa.string(), description="object name"),
    _field("flag", pa.bool_()), _field("ts", pa.timestamp("us")), _field("d", pa.date32()),
    _field("blob", pa.binary()), _field("dec", pa.decimal128(10, 3)),
])
KIND = {"id": "int", "u64": "int", "i8": "int", "i16": "int", "i32": "int", "u8": "int", "u16": "int",
        "u32": "int", "ra": "float", "mag": "float32", "name": "str", "flag": "bool", "ts": "ts",
        "d": "date", "blob": "bytes", "dec": "decimal"}
ROWS = [
    [2**53 + 1, 2**64 - 1, -128, -32768, -(2**31), 255, 65535, 2**32 - 1, 10.5, 1.5, "München 東京", True,
     dt.datetime(2015, 1, 31, 10, 30), dt.date(2015, 1, 31), b"\x00\xff", decimal.Decimal("1.250")],
    [-(2**62) - 7, 0, 127, 32767, 2**31 - 1, 0, 0, 0, 0.1, float("nan"), TRICKY, False,
     dt.datetime(1999, 12, 31, 23, 59, 59, 500000), dt.date(1970, 1, 1), b"", decimal.Decimal("-3.500")],
    [None] * 16,
    [9007199254740995, 5, 0, 1, 2, 3, 4, 5, 1 / 3, 2.5, "plain", True,
     dt.datetime(2000, 1, 1), dt.date(2000, 1, 1), b"abc", decimal.Decimal("0")],
    [12345678901234567, 7, -1, -2, -3, 9, 10, 11, -1e-300, -3.25, "", False,
     dt.datetime(2024, 2, 29, 0, 0, 0, 123456), dt.date(2024, 2, 29), b"\x01", decimal.Decimal("99.999")],
]
SOURCE = pa.table([pa.array(col, type=f.type) for col, f in zip(zip(*ROWS), SCHEMA)], schema=SCHEMA)
EMPTY = SOURCE.slice(0, 0)
COLS = SCHEMA.names


def encode(fmt, table=SOURCE, info=None, chunk=2) -> bytes:
    fmt = by_name(fmt) if isinstance(fmt, str) else fmt
    chunks = list(fmt.encode(table.schema, iter(table.to_batches(max_chunksize=chunk)), info or ResultInfo()))
    assert all(chunks), "no empty chunks"
    return b"".join(chunks)


# --- comparing ------------------------------------------------------------------------------


def _missing(v) -> bool:
    return v is None or v is np.ma.masked or (isinstance(v, float) and math.isnan(v))


def _empty(v) -> bool:
    return isinstance(v, (str, bytes, list, tuple, np.ndarray)) and len(v) == 0


def from_text(kind, s):
    """A value as the text formats render it, parsed back to Python."""
    if s is None:
        return None
    return {
        "int": int, "float": float, "float32": float, "str": str, "decimal": decimal.Decimal,
        "bool": lambda x: {"true": True, "false": False, "T": True, "F": False}[x],
        "ts": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "bytes": base64.b64decode,
    }[kind](s)


def same(kind, got, want, *, empty_is_null=False) -> bool:
    """Whether a read-back value equals the source value (nulls, NaN and masked all 'missing')."""
    if _missing(want) or (kind in ("float", "float32") and want is not None and math.isnan(want)):
        return _missing(got) or (empty_is_null and _empty(got))
    if _missing(got):
        return empty_is_null and _empty(want)
    if kind == "float32":
        return np.float32(got) == np.float32(want)
    if kind in ("float", "decimal"):
        return float(got) == float(want)
    if kind == "int":
        return int(got) == want and not isinstance(got, float)
    if kind == "bytes" and not isinstance(got, (bytes, str)):
        return bytes(np.asarray(got, dtype=np.uint8)) == want
    if isinstance(got, bytes) and kind == "str":
        got = got.decode()
    return got == want


def assert_rows(rows, *, parse=None, empty_is_null=(), source=ROWS):
    """rows: list of {column: value}; parse(column, value) converts before comparing."""
    assert len(rows) == len(source)
    for i, (row, src) in enumerate(zip(rows, source)):
        for name, want in zip(COLS, src):
            got = row.get(name)
            if parse:
                got = parse(name, got)
            ok = same(KIND[name], got, want, empty_is_null=name in empty_is_null)
            assert ok, f"row {i} column {name}: got {got!r}, want {want!r}"
