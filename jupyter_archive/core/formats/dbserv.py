"""The LSST DAX dbserv result document (seed-systems 2.2): VOTable-like JSON, streamed per slice.

``{"result": {"metadata": {"elements"}, "table": {"metadata", "data"}, "truncated"}}``: the
project document puts ``metadata`` beside ``table``, dax_dbserv (2018) inside it; it is
small, so both places have it and clients of either read it. Each element is a column's name,
dbserv datatype (``long``, ``double``, ``boolean``, ``text``, ``binary``), xtype (``timestamp``,
``date``) and metadata; rows are arrays of JSON literals, binary as base64 (as dax_dbserv).

Not asked for by a name or media type: the DAX face answers its JSON requests with
:data:`DBSERV_JSON`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa

from .base import Format, Writer, field_meta, slices, text_row_bytes
from .text import joined_bytes, json_values, text

# pyarrow.compute: imported where used, so a server at rest does not hold it (~8 MB) before its first result
if TYPE_CHECKING:
    import pyarrow.compute as pc


def _datatype(t: pa.DataType) -> tuple[str, str | None]:
    """An Arrow type as dbserv's ``(datatype, xtype)`` (seed-systems 2.2)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return "long", None
    if pa.types.is_floating(t):
        return "double", None
    if pa.types.is_decimal(t):
        return ("double" if t.scale else "long"), None
    if pa.types.is_boolean(t):
        return "boolean", None
    if pa.types.is_timestamp(t):
        return "text", "timestamp"
    if pa.types.is_date(t):
        return "text", "date"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary", None  # base64, as dax_dbserv
    return "text", None


def _element(f: pa.Field) -> dict:
    datatype, xtype = _datatype(f.type)
    out = {"name": f.name, "datatype": datatype}
    if xtype:
        out["xtype"] = xtype
    out.update({k: v for k, v in field_meta(f).items() if k in ("unit", "ucd", "description")})
    return out


def _json_column(arr: pa.Array, datatype: str) -> pa.Array:
    t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
    if datatype == "text" and not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_temporal(t)):
        # nested and exotic values as text, so every "text" cell is a JSON string
        arr = text(arr, "json")
    return json_values(arr)


def _json_rows(batch: pa.RecordBatch, datatypes: list[str]) -> bytes:
    """Rows as ``,[v1,v2,...]`` each, concatenated."""
    import pyarrow.compute as pc
    if batch.num_rows == 0:
        return b""
    if batch.num_columns == 0:
        return b",[]" * batch.num_rows
    cols = [_json_column(a, dt) for a, dt in zip(batch.columns, datatypes)]
    inner = pc.binary_join_element_wise(*cols, ",")
    return joined_bytes(pc.binary_join_element_wise(",[", inner, "]", ""))


def write_dbserv(schema: pa.Schema, batches, info, options):
    """Yield the dbserv result document: metadata, then the rows slice by slice."""
    elements = [_element(f) for f in schema]
    datatypes = [e["datatype"] for e in elements]
    meta = json.dumps({"elements": elements}, ensure_ascii=False)
    yield ('{"result":{"metadata":' + meta + ',"table":{"metadata":' + meta + ',"data":[').encode()
    first = True
    for data in slices(batches, text_row_bytes(schema) * 2, lambda b: _json_rows(b, datatypes)):
        if first:  # the first row has no leading comma
            data, first = data[1:], False
        yield data
    yield ('\n]},"truncated":' + json.dumps(bool(info.truncated)) + "}}\n").encode()


DBSERV = Writer("dax-json", write_dbserv, "application/json", names={}, opt_in=True)
#: The dbserv JSON, the DAX face's answer where the document's JSON is asked for.
DBSERV_JSON = Format(DBSERV.name, DBSERV.content_type)
