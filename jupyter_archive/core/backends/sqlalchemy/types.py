"""What a SQL server's columns and rows become: Arrow types (and their DuckDB names), record batches.

PostgreSQL says each column's type (an OID); SQLite types values, not columns, so its result
types are judged from the first rows and a later value that does not fit is made to fit or refused.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ...errors import ArchiveError

NUMERIC = 1700  # PostgreSQL's numeric: a decimal with a precision, else float64

# PostgreSQL type OID -> Arrow type, for the types whose psycopg loaders we keep.
# Every other type is loaded as PostgreSQL's own text form (a string).
PG_SCALARS: dict[int, pa.DataType] = {
    16: pa.bool_(), 17: pa.binary(), 18: pa.string(), 19: pa.string(), 20: pa.int64(), 21: pa.int16(),
    23: pa.int32(), 25: pa.string(), 26: pa.int64(), 700: pa.float32(), 701: pa.float64(),
    1042: pa.string(), 1043: pa.string(), 1082: pa.date32(), 1083: pa.time64("us"),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), NUMERIC: pa.float64(),
}  # fmt: skip
# Array OID -> element OID (arrays of the scalars above become Arrow lists).
PG_ARRAYS = {1000: 16, 1001: 17, 1005: 21, 1007: 23, 1016: 20, 1021: 700, 1022: 701, 1009: 25,
             1015: 1043, 1014: 1042, 1182: 1082, 1115: 1114, 1185: 1184}  # fmt: skip
_DUCK_NAMES = {
    pa.bool_(): "BOOLEAN", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
    pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.binary(): "BLOB",
    pa.date32(): "DATE", pa.time64("us"): "TIME",
}  # fmt: skip
_SQLITE_AFFINITY = ((("INT",), "BIGINT"), (("CHAR", "CLOB", "TEXT"), "VARCHAR"), (("BLOB",), "BLOB"),
                    (("REAL", "FLOA", "DOUB"), "DOUBLE"))  # fmt: skip


def duck_type_name(t: pa.DataType) -> str:
    """The DuckDB name of an Arrow type: what ``ColumnInfo.datatype`` says everywhere in the archive."""
    if pa.types.is_list(t):
        return duck_type_name(t.value_type) + "[]"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    return _DUCK_NAMES.get(t, "VARCHAR")


def pg_arrow_type(oid: int, precision: int | None = None, scale: int | None = None) -> pa.DataType:
    """The Arrow type rows of a PostgreSQL type arrive as (numeric with a precision: a decimal)."""
    if oid == NUMERIC and precision and precision <= 38:
        return pa.decimal128(precision, scale or 0)
    if oid in PG_ARRAYS:
        return pa.list_(pg_arrow_type(PG_ARRAYS[oid]))
    return PG_SCALARS.get(oid, pa.string())


def sqlite_affinity(declared: str) -> str:
    """A SQLite declared type as the DuckDB name of its affinity (sqlite.org/datatype3.html)."""
    d = (declared or "").upper()
    return next((name for keys, name in _SQLITE_AFFINITY if any(k in d for k in keys)), d or "BLOB")


def sqlite_type(values: list) -> pa.DataType:
    """The Arrow type of a SQLite result column, judged from its first rows (SQLite types values)."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bytes}:
        return pa.binary()
    if kinds and kinds <= {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _coerce(value: Any, t: pa.DataType, column: str) -> Any:
    """A value that does not fit its column's type (SQLite's dynamic typing), made to fit or refused."""
    if value is None:
        return None
    if pa.types.is_string(t):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if pa.types.is_floating(t) and isinstance(value, int):
        return float(value)
    if pa.types.is_integer(t) and isinstance(value, float) and value.is_integer():
        return int(value)
    if pa.types.is_binary(t) and isinstance(value, str):
        return value.encode()
    raise ArchiveError("invalid_query", f"column {column!r}: {value!r} is not a {duck_type_name(t)} value; CAST it in the query", 400)


def to_batch(rows: list[tuple], schema: pa.Schema, floats: set[int]) -> pa.RecordBatch:
    """DBAPI rows as a record batch of ``schema`` (``floats``: columns of Decimals sent as float64)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = []
    for i, (f, values) in enumerate(zip(schema, columns, strict=True)):
        if i in floats:
            values = [None if v is None else float(v) for v in values]
        try:
            arrays.append(pa.array(values, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arrays.append(pa.array([_coerce(v, f.type, f.name) for v in values], type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
