"""A result as a .NET DataSet in XML with its inline schema (CasJobs' ``application/x-dataset``).

This is what ``DataSet.WriteXml(stream, XmlWriteMode.WriteSchema)`` writes for a data set
``NewDataSet`` holding one table (``Table1`` for CasJobs): an ``xs:schema`` that declares the
table's columns with the XSD types .NET maps its column types to (``msdata`` annotations as
.NET writes them), then one element per row with one child per non-NULL value. So
``DataSet.ReadXml`` gives back typed columns: Int64 for ``xs:long``, Double for ``xs:double``,
DateTime for ``xs:dateTime``, TimeSpan for ``xs:duration``, Byte[] for ``xs:base64Binary``...

Arrow -> XSD: int8 byte, int16 short, int32 int, int64 long, uint8 unsignedByte, uint16
unsignedShort, uint32 unsignedInt, uint64 unsignedLong, float32 float, float64 double,
decimal decimal (precision <= 28, what System.Decimal holds; wider ones are exact text),
bool boolean, string string, binary base64Binary, timestamp and date dateTime (a time zone
makes the column ``msdata:DateTimeMode="Utc"``), time of day and duration duration; anything
else (intervals, nested values) is text. Column names are XML-encoded as .NET encodes them
(``Rows Affected`` -> ``Rows_x0020_Affected``) and made unique ignoring case, as a DataTable
needs (``a``, ``a1``, ...). Characters XML 1.0 cannot carry become U+FFFD; values that start
or end with white space carry ``xml:space="preserve"``, as .NET writes them, so a reader
keeps them. A result cut by the row limit says so in a comment (and the face's header).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from .base import Writer, plain_type, slices, text_row_bytes
from .text import encode_name, markup_rows, tagged, text, unique_names, xml_attr, xml_text

# pyarrow.compute: imported where used, so a server at rest does not hold it (~8 MB) before its first result
if TYPE_CHECKING:
    import pyarrow.compute as pc

XS = "http://www.w3.org/2001/XMLSchema"
MSDATA = "urn:schemas-microsoft-com:xml-msdata"
DATASET = "NewDataSet"  # .NET's default DataSet name
MAX_DECIMAL_PRECISION = 28  # System.Decimal holds 28-29 significant digits

_INTS = {
    pa.int8(): "byte", pa.int16(): "short", pa.int32(): "int", pa.int64(): "long",
    pa.uint8(): "unsignedByte", pa.uint16(): "unsignedShort", pa.uint32(): "unsignedInt", pa.uint64(): "unsignedLong",
}  # fmt: skip
_UNIT_SECONDS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def xsd_type(t: pa.DataType) -> str:
    """The XSD type (without ``xs:``) .NET declares for a column of this Arrow type."""
    t = plain_type(t)
    if t in _INTS:
        return _INTS[t]
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return "decimal" if t.precision <= MAX_DECIMAL_PRECISION else "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_binary(t):
        return "base64Binary"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "dateTime"
    if pa.types.is_time(t) or pa.types.is_duration(t):
        return "duration"
    return "string"


def _duration(seconds: float) -> str:
    """Seconds as an xs:duration (``P1DT2H3M4.5S``), as XmlConvert writes a TimeSpan."""
    sign = "-" if seconds < 0 else ""
    micros = round(abs(seconds) * 1_000_000)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    secs = f"{micros / 1_000_000:.6f}".rstrip("0").rstrip(".")
    out = sign + "P" + (f"{days}D" if days else "") + "T"
    out += (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    out += f"{secs}S" if secs != "0" or out.endswith("T") else ""
    return out


def _values(arr: pa.Array, xsd: str) -> pa.Array:
    """A column as the lexical forms of its XSD type, escaped for XML; nulls stay null."""
    import pyarrow.compute as pc
    t = plain_type(arr.type)
    if xsd == "dateTime" and pa.types.is_date(t):
        return pc.binary_join_element_wise(text(arr, "xml"), "T00:00:00", "")
    if xsd == "duration":
        if pa.types.is_time(t):
            seconds = [None if v is None else (v.hour * 3600 + v.minute * 60 + v.second + v.microsecond / 1e6)
                       for v in arr.to_pylist()]  # fmt: skip
        else:
            unit = _UNIT_SECONDS[t.unit]
            seconds = [None if v is None else v * unit for v in arr.cast(pa.int64()).to_pylist()]
        return pa.array([None if s is None else _duration(s) for s in seconds], pa.string())
    if xsd == "string" and not (pa.types.is_string(t) or pa.types.is_null(t)):
        return xml_text(text(arr, "xml"))  # exact text of wide decimals, JSON of nested values
    return xml_text(arr)


def _cell(name: str, xsd: str):
    """The cell renderer of one column: its element around the value."""
    import pyarrow.compute as pc
    plain = f"<{name}>"
    close = f"</{name}>"
    if xsd != "string":
        wrap = tagged(plain, close)
        return lambda a: wrap(_values(a, xsd))
    keep = f'<{name} xml:space="preserve">'

    def render(a: pa.Array) -> pa.Array:
        s = _values(a, xsd)
        # Without xml:space a reader may drop a value that is only white space.
        padded = pc.match_substring_regex(s, r"^\s|\s$")
        return pc.binary_join_element_wise(pc.if_else(padded, keep, plain), s, close, "")

    return render


def column_names(names: list[str]) -> list[str]:
    """Encoded column names, unique ignoring case (``a``, ``A1``), unnamed ones ``Column1``..."""
    encoded = [encode_name(name) if name else f"Column{i + 1}" for i, name in enumerate(names)]
    return unique_names(encoded, lambda name, k: f"{name}{k}")


def _schema(table: str, fields: list[tuple[str, pa.DataType]]) -> str:
    cols = []
    for name, t in fields:
        xsd = xsd_type(t)
        attrs = ""
        if xsd == "dateTime":
            tz = pa.types.is_timestamp(plain_type(t)) and plain_type(t).tz
            attrs = f' msdata:DateTimeMode="{"Utc" if tz else "Unspecified"}"'
        cols.append(f'                <xs:element name={xml_attr(name)}{attrs} type="xs:{xsd}" minOccurs="0" />\n')
    body = (
        "            <xs:complexType>\n              <xs:sequence>\n" + "".join(cols)
        + "              </xs:sequence>\n            </xs:complexType>\n"
    ) if cols else "            <xs:complexType />\n"  # fmt: skip
    return (
        f'  <xs:schema id="{DATASET}" xmlns="" xmlns:xs="{XS}" xmlns:msdata="{MSDATA}">\n'
        f'    <xs:element name="{DATASET}" msdata:IsDataSet="true" msdata:UseCurrentLocale="true">\n'
        "      <xs:complexType>\n"
        '        <xs:choice minOccurs="0" maxOccurs="unbounded">\n'
        f"          <xs:element name={xml_attr(table)}>\n{body}          </xs:element>\n"
        "        </xs:choice>\n      </xs:complexType>\n    </xs:element>\n  </xs:schema>\n"
    )


def write_dataset(schema: pa.Schema, batches, info, opt):
    """Yield the DataSet XML: declaration, schema, rows (streamed slice by slice), end tag."""
    table = encode_name(info.table_name or "Table1")
    names = column_names(schema.names)
    head = f'<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n<{DATASET}>\n'
    head += _schema(table, [(n, f.type) for n, f in zip(names, schema)])
    if info.truncated:
        limit = f" of {info.row_limit} rows" if info.row_limit else ""
        head += f"  <!-- truncated: the row limit{limit} cut this result -->\n"
    yield head.encode()
    cells = [(_cell(n, xsd_type(f.type)), "") for n, f in zip(names, schema)]  # NULL: no element
    yield from slices(batches, text_row_bytes(schema) * 2, lambda b: markup_rows(b, f"  <{table}>", f"</{table}>\n", cells))
    yield f"</{DATASET}>\n".encode()


DATASET_XML = Writer("dataset", write_dataset, "application/x-dataset", {"application/x-dataset": {}})
