"""VOTable datatypes of Arrow types and of the engine's (DuckDB's) type names, in one table.

A result's VOTable FIELDs and json-table's ``datatype`` come from the Arrow type of a column
(:func:`votable_type`); TAP_SCHEMA and VOSI ``/tables`` from the engine's type name
(:func:`engine_votable_type`). Both read the table below, so they agree:

  bool -> boolean; int8/int16/uint8 -> short; int32/uint16 -> int; int64/uint32 -> long;
  float16/float32 -> float; float64/decimal -> double; timestamp/date -> char "*"
  xtype="timestamp" (ISO-8601); binary -> unsignedByte "*"; free text (strings, JSON text of
  nested values) -> unicodeChar "*" where UTF-16 can be written (binary VOTable, TAP_SCHEMA),
  char "*" in TABLEDATA (UTF-8 XML text); ASCII renderings (uint64 as decimal text: VOTable has
  no unsigned 64-bit type and a stream cannot know in advance whether every value fits a long;
  times of day, durations, UUIDs) -> char "*".

VOParquet's FIELDs (serialization ``parquet``) describe the Parquet columns, which keep the
result's own types: as TABLEDATA (text char "*", UTF-8 as Parquet stores it), except uint64 ->
long (the nearest VOTable integer: a reader combining FIELDs with the column needs a number)
and lists of numbers or booleans -> that datatype with arraysize "*" (or the fixed size).
"""

from __future__ import annotations

import pyarrow as pa

from .base import plain_type

# The fixed-width VOTable datatypes: the Arrow types and the engine type names that have them.
_SCALARS = (
    ("boolean", (pa.bool_(),), ("BOOLEAN",)),
    ("short", (pa.int8(), pa.int16(), pa.uint8()), ("TINYINT", "SMALLINT", "UTINYINT", "INT1", "INT2")),
    ("int", (pa.int32(), pa.uint16()), ("INTEGER", "USMALLINT", "INT", "INT4")),
    ("long", (pa.int64(), pa.uint32()), ("BIGINT", "UINTEGER", "INT8")),
    ("float", (pa.float32(),), ("REAL", "FLOAT", "FLOAT4")),
    ("double", (pa.float64(),), ("DOUBLE", "FLOAT8")),  # and decimals
)
_BY_ARROW = {t: datatype for datatype, types, _ in _SCALARS for t in types}
_BY_ENGINE = {name: datatype for datatype, _, names in _SCALARS for name in names}
_TIMESTAMP = ("char", "*", "timestamp")
_BYTES = ("unsignedByte", "*", None)
_UNICODE = ("unicodeChar", "*", None)
_CHAR = ("char", "*", None)


def votable_type(t: pa.DataType, serialization: str = "tabledata") -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) of the FIELD for an Arrow type in a given serialization."""
    t = plain_type(t)
    datatype = _BY_ARROW.get(t)
    if datatype is not None:
        return datatype, None, None
    if serialization == "parquet":
        if t == pa.uint64():
            return "long", None, None
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            item = votable_type(t.value_type, "parquet")
            if item[1] is None:  # an array of fixed-width values; anything else is text below
                return item[0], str(t.list_size) if pa.types.is_fixed_size_list(t) else "*", None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double", None, None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _TIMESTAMP
    if pa.types.is_binary(t):
        return _BYTES
    if serialization not in ("tabledata", "parquet") and not (pa.types.is_temporal(t) or t == pa.uint64()):
        return _UNICODE
    return _CHAR


def engine_votable_type(engine_type: str) -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) for an engine (DuckDB) type name, per TAP 1.1 / VOTable."""
    t = (engine_type or "").upper().strip()
    datatype = _BY_ENGINE.get(t)
    if datatype is not None:
        return datatype, None, None
    if t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        return "double", None, None
    if t.startswith("TIMESTAMP") or t == "DATE":
        return _TIMESTAMP
    if t in ("BLOB", "BYTEA"):
        return _BYTES
    if t.startswith("VARCHAR") or t in ("TEXT", "STRING", "JSON") or t.startswith("STRUCT") or t.endswith("[]"):
        return _UNICODE  # free text (UTF-8), as binary VOTable results carry it
    return _CHAR  # UBIGINT/HUGEINT, UUID, times...: ASCII renderings
