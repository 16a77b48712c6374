"""The JSON kinds: an array of row objects, line-delimited objects, CasJobs' and the archive's table.

``json``: ``[{"col": value, ...}, ...]``. ``ldjson``: one such object per line. CasJobs'
``json-array-casjobs``: ``{"Result": [{"TableName", "Columns", "Data": [[...], ...], "Truncated"}]}``.
``json-table``: ``{"columns": [name, VOTable datatype, Arrow type, metadata], "data": [[...]],
"rows", "truncated"}`` (a random sample adds ``"sample": {"rows", "total", "seed"}``), what the
archive's own widgets read. Values are JSON literals
(:func:`.common.json_values`): exact integers, shortest round-trip floats kept looking like
floats, NULL/NaN/inf as ``null``, times ISO-8601 text, binary base64.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pyarrow as pa

from .base import Writer, field_meta, float_text, not_acceptable, per_object, slices, text_row_bytes
from .datatypes import votable_type
from .text import joined_bytes, json_string, json_values

# pyarrow.compute: imported where used, so a server at rest does not hold it (~8 MB) before its first result
if TYPE_CHECKING:
    import pyarrow.compute as pc


_SMALL_ROWS = 64  # below this, per-column vectorised calls cost more than plain Python


def _py_json_column(a: pa.Array) -> list[str] | None:
    """A small column as JSON literals in Python, or None when its type needs the vectorised path.

    The same text as ``json_values``: exact integers, floats as Arrow writes them (``float_text``) kept
    looking like floats, non-finite floats as null, strings escaped alike.
    """
    t = a.type
    values = a.to_pylist()
    if pa.types.is_boolean(t):
        return ["null" if v is None else ("true" if v else "false") for v in values]
    if pa.types.is_integer(t):
        return ["null" if v is None else str(v) for v in values]
    if pa.types.is_floating(t):
        single = pa.types.is_float32(t) or pa.types.is_float16(t)
        out = []
        for v in values:
            if v is None or not math.isfinite(v):
                out.append("null")
            else:
                r = float_text(v, single)
                out.append(r if ("." in r or "e" in r) else r + ".0")
        return out
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ["null" if v is None else json_string(v) for v in values]
    if pa.types.is_null(t):
        return ["null"] * len(values)
    return None


def _json_rows_small(b: pa.RecordBatch, keys: list[str], open_: str, close: str, prefix: str, suffix: str) -> bytes | None:
    cols = []
    for a in b.columns:
        col = _py_json_column(a)
        if col is None:
            return None
        cols.append(col)
    rows = [prefix + open_ + ",".join(k + v for k, v in zip(keys, row)) + close + suffix for row in zip(*cols)]
    return "".join(rows).encode()


def _json_rows(b: pa.RecordBatch, names, *, objects: bool, prefix: str, suffix: str) -> bytes:
    """Rows as JSON objects or arrays, each wrapped in prefix/suffix, concatenated."""
    import pyarrow.compute as pc
    open_, close = ("{", "}") if objects else ("[", "]")
    keys = [json.dumps(n, ensure_ascii=False) + ":" if objects else "" for n in names]
    if 0 < b.num_rows <= _SMALL_ROWS and b.num_columns:
        small = _json_rows_small(b, keys, open_, close, prefix, suffix)
        if small is not None:
            return small
    parts: list = []
    literal = prefix + open_
    for key, a in zip(keys, b.columns):
        parts += [literal + key, json_values(a)]
        literal = ","
    if not parts:  # no columns: every row is an empty object/array
        return ((prefix + open_ + close + suffix) * b.num_rows).encode()
    parts.append(close + suffix)
    return joined_bytes(pc.binary_join_element_wise(*parts, ""))


def _json_array_body(schema, batches, *, objects: bool, counter: list | None = None):
    """The rows of a JSON array, comma-separated, streamed per slice."""
    def render(b):
        if counter is not None:
            counter[0] += b.num_rows
        return _json_rows(b, schema.names, objects=objects, prefix=",\n", suffix="")

    first = True
    for data in slices(batches, text_row_bytes(schema) * 2, render):
        if first:  # the very first row has no leading comma
            data, first = data[1:], False
        yield data


def write_json(schema, batches, info, opt):
    yield b"["
    yield from _json_array_body(schema, batches, objects=True)
    yield b"\n]\n"


def write_ldjson(schema, batches, info, opt):
    render = lambda b: _json_rows(b, schema.names, objects=True, prefix="", suffix="\n")
    yield from slices(batches, text_row_bytes(schema) * 2, render)


def write_casjobs(schema, batches, info, opt):
    head = {"TableName": info.table_name, "Columns": schema.names}
    yield ('{"Result":[' + json.dumps(head, ensure_ascii=False)[:-1] + ',"Data":[').encode()
    yield from _json_array_body(schema, batches, objects=False)
    yield ('],"Truncated":' + json.dumps(bool(info.truncated)) + "}]}\n").encode()


def column_description(f: pa.Field) -> dict:
    """A column as json-table describes it: name, VOTable datatype, Arrow type, metadata."""
    out = {"name": f.name, "datatype": votable_type(f.type)[0], "arrow_type": str(f.type)}
    out.update(field_meta(f))
    return out


@per_object
def _json_table_head(schema: pa.Schema) -> bytes:
    cols = [column_description(f) for f in schema]
    return ('{"columns":' + json.dumps(cols, ensure_ascii=False) + ',\n"data":[').encode()


def write_json_table(schema, batches, info, opt):
    yield _json_table_head(schema)
    counter = [0]
    yield from _json_array_body(schema, batches, objects=False, counter=counter)
    sample = f',"sample":{json.dumps(info.sample.to_json())}' if info.sample is not None else ""
    yield (f'],\n"rows":{counter[0]},"truncated":' + json.dumps(bool(info.truncated)) + sample + "}\n").encode()



def check_ldjson(opts: dict) -> None:
    """``mode``: Quasar's ``precise`` (the default) or ``readable``; both write the same JSON."""
    if str(opts.setdefault("mode", "precise")).lower() not in ("precise", "readable"):
        raise not_acceptable(f"Unknown ldjson mode {opts['mode']!r} (use precise or readable)", listing=False)


JSON = Writer("json", write_json, "application/json", {"application/json": {}})
CASJOBS = Writer(
    "json-array-casjobs", write_casjobs, "application/json", {"application/json+array": {}},
    names={"json-array-casjobs": {}, "casjobs": {}, "json-array": {}},
    alias_types=("application/json+array",),  # not a registered type: answered as plain JSON
)
LDJSON = Writer(
    "ldjson", write_ldjson, "application/ldjson; charset=UTF-8",
    {"application/ldjson": {}, "application/x-ldjson": {}, "application/json;boundary=NL": {}},
    names={"ldjson": {}, "ndjson": {}, "jsonl": {}}, params={"mode": "mode"}, check=check_ldjson,
)
JSON_TABLE = Writer("json-table", write_json_table, "application/json", {"application/vnd.archive.table+json": {}})
