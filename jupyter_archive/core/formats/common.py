"""Media types -> streaming writers for query results.

A result arrives as an Arrow schema plus an iterator of record batches; :class:`Format.encode`
turns it into byte chunks for the HTTP socket. Writers hold one batch (cut into slices of a
few MiB of output) at a time, never the whole result; only FITS, which needs the row count up
front, spools to a temporary file (see ``formats_fits``). :func:`negotiate` picks a format from
an Accept header or a ``?format=`` value; :func:`by_name` builds one directly.

Text rendering is vectorised with pyarrow.compute: every column becomes a string array of
ready-to-write literals and ``binary_join_element_wise`` glues them into rows, whose bytes are
then taken straight from the Arrow value buffer.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..schema import field_meta, per_object

CHUNK = 64 * 1024  # smallest chunk handed to the socket (except the last)
SLICE_BYTES = 4 * 1024 * 1024  # batches are cut so that one slice encodes to about this much


@dataclass
class ResultInfo:
    """What a writer needs to know about a result besides its rows."""

    truncated: bool = False  # the row limit cut the result (known before encoding starts)
    table_name: str = "Table1"  # CasJobs TableName, VOTable TABLE name, XML row element
    query: str | None = None  # the query text, for VOTable INFO QUERY
    row_limit: int | None = None  # the limit that cut it, for messages


@dataclass(frozen=True)
class Format:
    """A negotiated output format: its name, the Content-Type to send and writer options."""

    name: str
    media_type: str
    options: dict = field(default_factory=dict)

    def encode(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], info: ResultInfo | None = None) -> Iterator[bytes]:
        """Yield the encoded result as byte chunks; lazy: nothing runs before the first ``next``."""
        return _coalesce(_WRITERS[self.name], schema, batches, info or ResultInfo(), dict(self.options))


def _coalesce(writer, schema, batches, info, options) -> Iterator[bytes]:
    # Writers yield pieces of any size; group the small ones so the socket sees ~64 KiB+ writes
    # and never an empty chunk.
    pending: list[bytes] = []
    size = 0
    for piece in writer(_plain_schema(schema), iter(batches), info, options):
        if not piece:
            continue
        pending.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield pending[0] if len(pending) == 1 else b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


# ---------------------------------------------------------------------------------------------
# Type normalisation and slicing


def _plain_type(t: pa.DataType) -> pa.DataType:
    """The type writers see: dictionaries decoded, large/view/fixed variants made plain."""
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_date64(t):
        return pa.date32()
    return t


@per_object
def _plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema], metadata=schema.metadata)


def _plain(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = _plain_type(arr.type)
    return arr if t == arr.type else arr.cast(t)


def slices(
    batches: Iterable, row_bytes: int, render, *, multiple: int = 1, rows: int | None = None, parallel: bool = False
) -> Iterator:
    """Yield ``render(slice)`` for the incoming batches cut into slices of about SLICE_BYTES of
    output (``row_bytes``: an estimate per row), or of ``rows`` rows; slice lengths are multiples
    of ``multiple`` where the batch allows. Empty slices are skipped.

    ``parallel``: ``render`` releases the GIL for most of its work (pyarrow's CSV writer), so
    the next slice is rendered on another core while this one is sent; output stays in order."""
    rows = rows or max(1024, SLICE_BYTES // max(row_bytes, 1)) // multiple * multiple

    def cut() -> Iterator[pa.RecordBatch]:
        it = iter(batches)
        # Explicit dels: no reference to a finished batch may survive into the next fetch, so the
        # producer (DuckDB) can build the next batch without two being alive at once.
        while (b := next(it, None)) is not None:
            parts = b.to_batches() if isinstance(b, pa.Table) else [b]
            del b
            while parts:
                part = parts.pop(0)
                for off in range(0, part.num_rows, rows):
                    yield part.slice(off, rows)
                del part

    pieces = cut()
    head = list(itertools.islice(pieces, 2)) if parallel else []
    if not parallel or len(head) < 2:
        # One slice (any quick result): handing it to another thread costs more than it saves.
        for i, piece in enumerate(itertools.chain(_popping(head), pieces)):
            # From the second slice on this is an export: give the Arrow heap of this thread
            # back after each (the pool's threads take turns, each would keep its own).
            out = render(piece) if i == 0 else _render_releasing(render, piece)
            del piece
            yield out
            del out
        return
    pending: list = []  # at most two slices in flight: memory stays bounded
    try:
        for piece in itertools.chain(_popping(head), pieces):
            pending.append(_render_pool().submit(_render_releasing, render, piece))
            del piece
            if len(pending) == 2:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    finally:
        for f in pending:
            f.cancel()


def _popping(items: list) -> Iterator:
    """The items of a list, each dropped from it as it is given (no reference stays behind)."""
    while items:
        yield items.pop(0)


def _render_releasing(render, piece):
    try:
        return render(piece)
    finally:
        # Arrow's allocator keeps a heap per thread; without this the render threads' heaps hold
        # tens of MB after an export (~3 us a call).
        pa.default_memory_pool().release_unused()


_RENDER_POOL = None


def _render_pool():
    global _RENDER_POOL
    if _RENDER_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _RENDER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="archive-render")
    return _RENDER_POOL


@per_object
def _text_row_bytes(schema: pa.Schema) -> int:
    return sum(24 if _is_stringish(f.type) else 12 for f in schema) + 8


def _is_stringish(t: pa.DataType) -> bool:
    """Types rendered as quoted strings in JSON/CSV (text, times, base64 binary, JSON text)."""
    return not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_decimal(t) or pa.types.is_null(t))


def joined_bytes(arr: pa.Array) -> bytes:
    """The concatenated values of a string/binary array without nulls, straight from its buffer."""
    n = len(arr)
    if n == 0:
        return b""
    bufs = arr.buffers()
    width = 8 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else 4
    offs = np.frombuffer(bufs[1], dtype=np.int32 if width == 4 else np.int64, count=n + 1, offset=arr.offset * width)
    if offs[0] == offs[-1]:  # all empty (the value buffer may be absent)
        return b""
    return bufs[2][int(offs[0]):int(offs[-1])].to_pybytes()


def _any(mask) -> bool:
    return bool(pc.any(mask).as_py())


_NULL_STR = pa.scalar(None, pa.string())


def text(arr: pa.Array, style: str = "csv") -> pa.Array:
    """Render a column as a string array; nulls stay null.

    ``style`` decides non-finite floats: 'csv'/'json' make them null, 'votable' writes
    NaN/+Inf/-Inf, 'xml' writes NaN/INF/-INF (xs:double). Integers stay exact (no float
    detour), floats are shortest round-trip, timestamps ISO-8601 with 'T', binary base64.
    """
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_string(t):
        return arr
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "true", "false")
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(t):
        s = pc.cast(arr, pa.string())
        finite = pc.is_finite(arr)
        if not pc.all(finite).as_py():
            if style in ("csv", "json"):
                s = pc.if_else(finite, s, _NULL_STR)
            else:
                pos, nan = ("+Inf", "NaN") if style == "votable" else ("INF", "NaN")
                s = pc.if_else(pc.is_nan(arr), nan, s)
                s = pc.if_else(pc.and_(pc.is_inf(arr), pc.greater(arr, 0)), pos, s)
                s = pc.if_else(pc.and_(pc.is_inf(arr), pc.less(arr, 0)), "-INF" if style == "xml" else "-Inf", s)
        return s
    if pa.types.is_timestamp(t):
        naive = arr.view(pa.timestamp(t.unit)) if t.tz else arr  # keep the UTC instant
        s = pc.replace_substring(pc.cast(naive, pa.string()), " ", "T", max_replacements=1)
        if t.unit != "s":  # drop trailing zeros of the fraction: 10:30:00.500000 -> 10:30:00.5
            s = pc.replace_substring_regex(s, r"\.0+$|(\.\d*?[1-9])0+$", r"\1")
        return pc.binary_join_element_wise(s, "Z", "") if t.tz else s
    if pa.types.is_date(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_time(t):
        s = pc.cast(arr, pa.string())
        return pc.replace_substring_regex(s, r"\.0+$|(\.\d*?[1-9])0+$", r"\1") if t.unit != "s" else s
    if pa.types.is_binary(t):
        return pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in arr.to_pylist()], pa.string())
    if pa.types.is_duration(t):
        return pc.cast(arr.cast(pa.int64()), pa.string())
    # Nested and exotic types: JSON text, built in Python (rare in archive results).
    return pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in arr.to_pylist()], pa.string())


# ---------------------------------------------------------------------------------------------
# Escaping


def _replace_all(s: pa.Array, pairs) -> pa.Array:
    for old, new in pairs:
        s = pc.replace_substring(s, old, new)
    return s


_XML_BAD = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"


def xml_escape(s: pa.Array) -> pa.Array:
    """Escape a string array for XML character data (CR kept as &#13;, illegal chars -> U+FFFD)."""
    if not _any(pc.match_substring_regex(s, r"[&<>\r]|" + _XML_BAD)):
        return s
    s = _replace_all(s, (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")))
    return pc.replace_substring_regex(s, _XML_BAD, "\ufffd")


def xml_attr(value: str) -> str:
    """A Python string quoted for an XML attribute value (newlines preserved as char refs)."""
    value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", str(value))
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                     ("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#9;")):
        value = value.replace(old, new)
    return f'"{value}"'


def _json_quote(s: pa.Array) -> pa.Array:
    if _any(pc.match_substring_regex(s, r'["\\\x00-\x1f]')):
        s = _replace_all(s, (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")))
        if _any(pc.match_substring_regex(s, r"[\x00-\x1f]")):  # rare control chars: Python
            fix = lambda v: re.sub(r"[\x00-\x1f]", lambda m: "\\u%04x" % ord(m.group()), v)
            s = pa.array([None if v is None else fix(v) for v in s.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', s, '"', "")


def json_values(arr: pa.Array) -> pa.Array:
    """A column as JSON literals (no nulls left: NULL, NaN and inf become ``null``)."""
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        s = text(arr, "json")
    elif pa.types.is_floating(t):
        s = text(arr, "json")
        # keep floats looking like floats ("1.0", not "1") so typed readers keep the dtype; the
        # cheap numeric test first spares the regex for columns without integral values
        if _any(pc.equal(pc.floor(arr), arr)):
            s = pc.if_else(pc.match_substring_regex(s, r"^-?\d+$"), pc.binary_join_element_wise(s, ".0", ""), s)
    elif pa.types.is_null(t):
        s = pa.nulls(len(arr), pa.string())
    elif pa.types.is_string(t) or pa.types.is_temporal(t) or pa.types.is_binary(t):
        s = _json_quote(text(arr, "json"))
    else:  # nested values are already JSON text
        s = text(arr, "json")
    return pc.fill_null(s, "null") if s.null_count else s


def unique_names(names: Iterable[str], numbered) -> list[str]:
    """Names made unique ignoring case (FITS and .NET compare column names so): a name already
    taken becomes ``numbered(name, k)`` for k = 1, 2, ... until one is free."""
    seen, out = set(), []
    for name in names:
        candidate, k = name, 0
        while candidate.lower() in seen:
            k += 1
            candidate = numbered(name, k)
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def _encode_name(name: str) -> str:
    """An XML element name for a column, escaped the way .NET's XmlConvert.EncodeLocalName does."""
    out = []
    for i, ch in enumerate(name or "_"):
        ok = (ch.isalpha() or ch == "_") if i == 0 else (ch.isalnum() or ch in "._-")
        if ch == "_" and re.match(r"_x[0-9A-Fa-f]{4}_", name[i:]):
            ok = False  # a literal "_xHHHH_" would read as an escape
        if ok:
            out.append(ch)
        else:
            out.append(f"_x{ord(ch):04X}_" if ord(ch) <= 0xFFFF else f"_x{ord(ch):08X}_")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# CSV / TSV


def _csv_header(names, d, rd, q, e) -> bytes:
    special = {d, q, e, "\n", "\r", *rd}
    out = []
    for n in names:
        if any(c in special for c in n) or not n:
            n = q + (n.replace(e, e + e) if e != q else n).replace(q, e + q) + q
        out.append(n)
    return (d.join(out) + rd).encode()


def _write_csv(schema, batches, info, opt):
    d = opt.get("delimiter", ",")
    rd = opt.get("row_delimiter", "\n")
    q = opt.get("quote_char", '"')
    e = opt.get("escape_char", q)
    yield _csv_header(schema.names, d, rd, q, e)
    # pyarrow's writer quotes every string (and only strings) and escapes by doubling '"';
    # a delimiter that could appear inside numbers or another quote/escape needs our own path.
    fast = q == '"' and e == '"' and not (d.isalnum() or d in ".-+:")
    opts = pacsv.WriteOptions(include_header=False, delimiter=d, eol=rd, quoting_style="needed")

    def render(b):
        if not fast:
            return _delimited(b, d, rd, lambda a, t: _quote_csv(a, t, d, rd, q, e))
        cols = []
        for a in b.columns:
            a = _plain(a)
            t = a.type
            if pa.types.is_floating(t):
                finite = pc.is_finite(a)
                if not pc.all(finite).as_py():
                    a = pc.if_else(finite, a, pa.scalar(None, t))
            elif not (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
                      or pa.types.is_date32(t) or pa.types.is_decimal(t)):
                a = text(a, "csv")
            cols.append(a)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(pa.RecordBatch.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))]), sink, opts)
        return sink.getvalue().to_pybytes()

    yield from slices(batches, _text_row_bytes(schema), render, parallel=fast)


def _quote_csv(s, t, d, rd, q, e):
    raw = {d, q, e, "\n", "\r", *rd}
    if not _is_stringish(t) and not raw & set("0123456789+-.eEinfatrulsINFA"):
        return s  # numbers and booleans cannot contain any of the special characters
    if e != q:
        s = pc.replace_substring(s, e, e + e)
    s = pc.replace_substring(s, q, e + q)
    quoted = pc.binary_join_element_wise(q, s, q, "")
    if _is_stringish(t):  # as pyarrow does: strings always quoted, so "" (empty) differs from NULL
        return quoted
    special = "".join(re.escape(c) for c in raw)
    return pc.if_else(pc.match_substring_regex(s, f"[{special}]"), quoted, s)


def _tsv_escape(s, t):
    if _is_stringish(t) and _any(pc.match_substring_regex(s, r"[\\\t\n\r]")):
        s = _replace_all(s, (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")))
    return s


def _delimited(b, d, rd, escape) -> bytes:
    cols = []
    for a in b.columns:
        s = text(a, "csv")
        s = escape(s, _plain_type(a.type))
        cols.append(pc.fill_null(s, "") if s.null_count else s)
    if not cols:
        return b""
    rows = pc.binary_join_element_wise(*cols, d) if len(cols) > 1 else cols[0]
    return joined_bytes(pc.binary_join_element_wise(rows, rd, ""))


def _write_tsv(schema, batches, info, opt):
    esc = lambda n: n.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    yield ("\t".join(esc(n) for n in schema.names) + "\n").encode()
    yield from slices(batches, _text_row_bytes(schema), lambda b: _delimited(b, "\t", "\n", _tsv_escape))


# ---------------------------------------------------------------------------------------------
# JSON family


_EXP_ZEROS = re.compile(r"e([+-])0+(?=\d)")
_SMALL_ROWS = 64  # below this, per-column vectorised calls cost more than plain Python


def _py_json_column(a: pa.Array) -> list[str] | None:
    """A small column as JSON literals in Python, or None when its type needs the vectorised path.

    Same text as ``json_values``: exact integers, shortest round-trip floats (float32 as
    float32), integral floats kept as floats, non-finite floats as null.
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
                r = str(np.float32(v)) if single else repr(v)
                if "e" in r:  # Python writes 1e-07 where Arrow writes 1e-7
                    r = _EXP_ZEROS.sub(r"e\1", r)
                out.append(r if ("." in r or "e" in r) else r + ".0")
        return out
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ["null" if v is None else json.dumps(v, ensure_ascii=False) for v in values]
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
    for data in slices(batches, _text_row_bytes(schema) * 2, render):
        if first:  # the very first row has no leading comma
            data, first = data[1:], False
        yield data


def _write_json(schema, batches, info, opt):
    yield b"["
    yield from _json_array_body(schema, batches, objects=True)
    yield b"\n]\n"


def _write_ldjson(schema, batches, info, opt):
    render = lambda b: _json_rows(b, schema.names, objects=True, prefix="", suffix="\n")
    yield from slices(batches, _text_row_bytes(schema) * 2, render)


def _write_casjobs(schema, batches, info, opt):
    head = {"TableName": info.table_name, "Columns": schema.names}
    yield ('{"Result":[' + json.dumps(head, ensure_ascii=False)[:-1] + ',"Data":[').encode()
    yield from _json_array_body(schema, batches, objects=False)
    yield ('],"Truncated":' + json.dumps(bool(info.truncated)) + "}]}\n").encode()


def column_description(f: pa.Field) -> dict:
    """A column as json-table describes it: name, VOTable datatype, Arrow type, metadata."""
    from .votable import votable_type

    out = {"name": f.name, "datatype": votable_type(f.type)[0], "arrow_type": str(f.type)}
    out.update(field_meta(f))
    return out


@per_object
def _json_table_head(schema: pa.Schema) -> bytes:
    cols = [column_description(f) for f in schema]
    return ('{"columns":' + json.dumps(cols, ensure_ascii=False) + ',\n"data":[').encode()


def _write_json_table(schema, batches, info, opt):
    yield _json_table_head(schema)
    counter = [0]
    yield from _json_array_body(schema, batches, objects=False, counter=counter)
    yield (f'],\n"rows":{counter[0]},"truncated":' + json.dumps(bool(info.truncated)) + "}\n").encode()


# ---------------------------------------------------------------------------------------------
# Markup: XML (.NET DataSet shape) and HTML


def xml_text(arr: pa.Array) -> pa.Array:
    """A column as XML character data (xs: lexical forms, text escaped); nulls stay null."""
    s = text(arr, "xml")
    return xml_escape(s) if _is_stringish(_plain_type(arr.type)) else s


def tagged(open_, close: str):
    """A cell renderer: ``open_`` (a string or a string array) + the escaped value + ``close``."""
    return lambda s: pc.binary_join_element_wise(open_, s, close, "")


def markup_rows(b: pa.RecordBatch, row_open: str, row_close: str, cells) -> bytes:
    """The rows of a slice as markup: ``row_open``, one cell per column, ``row_close``.

    ``cells`` holds per column ``(render, empty)``: ``render(array)`` gives the whole cell
    text (tags included) with nulls left null, and ``empty`` is what a NULL cell becomes.
    """
    parts: list = [row_open]
    for (render, empty), a in zip(cells, b.columns):
        cell = render(a)
        parts.append(pc.fill_null(cell, empty) if cell.null_count else cell)
    parts.append(row_close)
    if len(parts) == 2:
        return ((row_open + row_close) * b.num_rows).encode()
    return joined_bytes(pc.binary_join_element_wise(*parts, ""))


def _write_xml(schema, batches, info, opt):
    row = _encode_name(info.table_name or "Table1")
    attr = ' truncated="true"' if info.truncated else ""
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<NewDataSet{attr}>\n'.encode()
    # a NULL is an omitted element, as .NET writes it
    cells = [(lambda a, t=tagged(f"<{n}>", f"</{n}>"): t(xml_text(a)), "") for n in map(_encode_name, schema.names)]
    render = lambda b: markup_rows(b, f"<{row}>", f"</{row}>\n", cells)
    yield from slices(batches, _text_row_bytes(schema) * 2, render)
    yield b"</NewDataSet>\n"


def _write_html(schema, batches, info, opt):
    """An HTML page holding the result as one table (a browsable answer, e.g. LSST metaserv's)."""
    title = html.escape(info.table_name or "result")
    heads = []
    for f in schema:
        meta = field_meta(f)
        hint = "; ".join(v for v in (meta.get("unit"), meta.get("description")) if v)
        heads.append(f"<th{' title=' + xml_attr(hint) if hint else ''}>{html.escape(f.name)}</th>")
    yield (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head><body>\n'
           f"<table>\n<caption>{title}</caption>\n<thead><tr>{''.join(heads)}</tr></thead>\n<tbody>\n").encode()
    cell = tagged("<td>", "</td>")
    cells = [(lambda a: cell(xml_text(a)), "<td></td>")] * len(schema)
    yield from slices(batches, _text_row_bytes(schema) * 2, lambda b: markup_rows(b, "<tr>", "</tr>\n", cells))
    note = "<p>The row limit cut this result.</p>\n" if info.truncated else ""
    yield f"</tbody>\n</table>\n{note}</body></html>\n".encode()


# ---------------------------------------------------------------------------------------------
# Parquet / Arrow IPC


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
            writer.write_batch(pa.RecordBatch.from_arrays([_plain(c) for c in b.columns], schema=schema))
            return sink.take()

        try:
            row_bytes = _text_row_bytes(schema)  # close enough to Arrow's own widths
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
_write_parquet = _binary_writer(_parquet_writer, 122_880)
_write_arrow = _binary_writer(lambda sink, schema: pa.ipc.new_stream(sink, schema), None)


def _write_votable(schema, batches, info, opt):
    from .votable import write_votable

    return write_votable(schema, batches, info, opt)


def _write_fits(schema, batches, info, opt):
    from .fits import write_fits

    return write_fits(schema, batches, info, opt)


def _write_dataset(schema, batches, info, opt):
    from .dataset import write_dataset

    return write_dataset(schema, batches, info, opt)


_WRITERS = {
    "csv": _write_csv, "tsv": _write_tsv, "json": _write_json, "json-table": _write_json_table,
    "json-array-casjobs": _write_casjobs, "ldjson": _write_ldjson, "votable": _write_votable,
    "fits": _write_fits, "parquet": _write_parquet, "arrow": _write_arrow, "xml": _write_xml,
    "dataset": _write_dataset, "html": _write_html,
}


# Negotiation lives in media.py; imported last because it needs Format and the writers.
from .registry import DEFAULT_FORMATS, MEDIA_TYPES, by_name, negotiate, parse_accept  # noqa: E402,F401
