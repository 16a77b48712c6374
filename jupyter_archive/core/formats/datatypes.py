"""VOTable datatypes of Arrow types: a result's VOTable FIELDs and json-table's ``datatype``.

  bool -> boolean; int8/int16/uint8 -> short; int32/uint16 -> int; int64/uint32 -> long;
  uint64 -> char arraysize="*" (decimal text: VOTable has no unsigned 64-bit type and a stream
  cannot know in advance whether every value fits a long); float16/float32 -> float;
  float64/decimal -> double; timestamp/date -> char "*" xtype="timestamp" (ISO-8601);
  binary -> unsignedByte "*"; free text -> unicodeChar "*" in binary serializations, char "*"
  in TABLEDATA; other ASCII renderings (times of day, durations) -> char "*".
"""

from __future__ import annotations

import pyarrow as pa

from .common import plain_type


def votable_type(t: pa.DataType, serialization: str = "tabledata") -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) of the FIELD for an Arrow type in a given serialization."""
    t = plain_type(t)
    if pa.types.is_boolean(t):
        return "boolean", None, None
    if t in (pa.int8(), pa.int16(), pa.uint8()):
        return "short", None, None
    if t in (pa.int32(), pa.uint16()):
        return "int", None, None
    if t in (pa.int64(), pa.uint32()):
        return "long", None, None
    if t == pa.float32():
        return "float", None, None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double", None, None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "char", "*", "timestamp"
    if pa.types.is_binary(t):
        return "unsignedByte", "*", None
    if serialization != "tabledata" and not (pa.types.is_temporal(t) or t == pa.uint64()):
        return "unicodeChar", "*", None
    return "char", "*", None
