"""What the format writers share: plain types, slicing, text of arrays, escaping, names, markup rows.

Text rendering is vectorised with pyarrow.compute: every column becomes a string array of
ready-to-write literals and ``binary_join_element_wise`` glues them into rows, whose bytes are
then taken straight from the Arrow value buffer (:func:`joined_bytes`). Writers hold one batch,
cut into slices of a few MiB of output (:func:`slices`), at a time, never the whole result.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import per_object

SLICE_BYTES = 4 * 1024 * 1024  # batches are cut so that one slice encodes to about this much


# ---------------------------------------------------------------------------------------------
# Type normalisation and slicing


def plain_type(t: pa.DataType) -> pa.DataType:
    """The type writers see: dictionaries decoded, large/view/fixed variants made plain."""
    if pa.types.is_dictionary(t):
        return plain_type(t.value_type)
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
def plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with every type made plain (what writers are given)."""
    return pa.schema([f.with_type(plain_type(f.type)) for f in schema], metadata=schema.metadata)


def plain(arr) -> pa.Array:
    """A column (chunks combined) cast to its :func:`plain_type`."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = plain_type(arr.type)
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
def text_row_bytes(schema: pa.Schema) -> int:
    """A rough size of a row as text, to size slices."""
    return sum(24 if is_stringish(f.type) else 12 for f in schema) + 8


def is_stringish(t: pa.DataType) -> bool:
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


def any_true(mask) -> bool:
    """Whether any value of a boolean array is true."""
    return bool(pc.any(mask).as_py())


_NULL_STR = pa.scalar(None, pa.string())


def text(arr: pa.Array, style: str = "csv") -> pa.Array:
    """Render a column as a string array; nulls stay null.

    ``style`` decides non-finite floats: 'csv'/'json' make them null, 'votable' writes
    NaN/+Inf/-Inf, 'xml' writes NaN/INF/-INF (xs:double). Integers stay exact (no float
    detour), floats are shortest round-trip, timestamps ISO-8601 with 'T', binary base64.
    """
    arr = plain(arr)
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


def replace_all(s: pa.Array, pairs) -> pa.Array:
    """Every ``old`` of the ``(old, new)`` pairs replaced, in order."""
    for old, new in pairs:
        s = pc.replace_substring(s, old, new)
    return s


_XML_BAD = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"


def xml_escape(s: pa.Array) -> pa.Array:
    """Escape a string array for XML character data (CR kept as &#13;, illegal chars -> U+FFFD)."""
    if not any_true(pc.match_substring_regex(s, r"[&<>\r]|" + _XML_BAD)):
        return s
    s = replace_all(s, (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")))
    return pc.replace_substring_regex(s, _XML_BAD, "\ufffd")


def xml_attr(value: str) -> str:
    """A Python string quoted for an XML attribute value (newlines preserved as char refs)."""
    value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", str(value))
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                     ("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#9;")):
        value = value.replace(old, new)
    return f'"{value}"'


def _json_quote(s: pa.Array) -> pa.Array:
    if any_true(pc.match_substring_regex(s, r'["\\\x00-\x1f]')):
        s = replace_all(s, (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")))
        if any_true(pc.match_substring_regex(s, r"[\x00-\x1f]")):  # rare control chars: Python
            fix = lambda v: re.sub(r"[\x00-\x1f]", lambda m: "\\u%04x" % ord(m.group()), v)
            s = pa.array([None if v is None else fix(v) for v in s.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', s, '"', "")


def json_values(arr: pa.Array) -> pa.Array:
    """A column as JSON literals (no nulls left: NULL, NaN and inf become ``null``)."""
    arr = plain(arr)
    t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        s = text(arr, "json")
    elif pa.types.is_floating(t):
        s = text(arr, "json")
        # keep floats looking like floats ("1.0", not "1") so typed readers keep the dtype; the
        # cheap numeric test first spares the regex for columns without integral values
        if any_true(pc.equal(pc.floor(arr), arr)):
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


def encode_name(name: str) -> str:
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
# Markup rows (XML, HTML, the .NET DataSet)


def xml_text(arr: pa.Array) -> pa.Array:
    """A column as XML character data (xs: lexical forms, text escaped); nulls stay null."""
    s = text(arr, "xml")
    return xml_escape(s) if is_stringish(plain_type(arr.type)) else s


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
