"""Text of Arrow arrays for the text writers: literals, escaping, names and markup rows.

Text rendering is vectorised with pyarrow.compute: every column becomes a string array of
ready-to-write literals and ``binary_join_element_wise`` glues them into rows, whose bytes are
then taken straight from the Arrow value buffer (:func:`joined_bytes`). What every writer uses
(plain types, slices, column metadata) is in :mod:`.base`.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pyarrow as pa

from .base import is_stringish, plain, plain_type

# pyarrow.compute: imported where used, so a server at rest does not hold it (~8 MB) before its first result
if TYPE_CHECKING:
    import pyarrow.compute as pc


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
    import pyarrow.compute as pc
    return bool(pc.any(mask).as_py())


_NULL_STR = pa.nulls(1, pa.string())[0]  # not pa.scalar(None, ...): converting a Python value makes pyarrow load pandas (~40 MB)


def text(arr: pa.Array, style: str = "csv") -> pa.Array:
    """Render a column as a string array; nulls stay null.

    ``style`` decides non-finite floats: 'csv'/'json' make them null, 'votable' writes
    NaN/+Inf/-Inf, 'xml' writes NaN/INF/-INF (xs:double). Integers stay exact (no float
    detour), floats are shortest round-trip, timestamps ISO-8601 with 'T', binary base64.
    """
    import pyarrow.compute as pc
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
    import pyarrow.compute as pc
    for old, new in pairs:
        s = pc.replace_substring(s, old, new)
    return s


_XML_BAD = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"


def xml_escape(s: pa.Array) -> pa.Array:
    """Escape a string array for XML character data (CR kept as &#13;, illegal chars -> U+FFFD)."""
    import pyarrow.compute as pc
    if not any_true(pc.match_substring_regex(s, r"[&<>\r]|" + _XML_BAD)):
        return s
    s = replace_all(s, (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")))
    return pc.replace_substring_regex(s, _XML_BAD, "\ufffd")


def xml_string(value: str) -> str:
    """A Python string escaped for XML character data exactly as :func:`xml_escape` escapes an array's.

    For one value (a FIELD's DESCRIPTION): making an Arrow array of Python objects imports pandas
    the first time (pyarrow checks for its types), 0.27 s and ~53 MB that a server never gives back."""
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        value = value.replace(old, new)
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", value)


def xml_attr(value: str) -> str:
    """A Python string quoted for an XML attribute value (newlines preserved as char refs)."""
    value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", str(value))
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                     ("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#9;")):
        value = value.replace(old, new)
    return f'"{value}"'


def _json_quote(s: pa.Array) -> pa.Array:
    import pyarrow.compute as pc
    if any_true(pc.match_substring_regex(s, r'["\\\x00-\x1f]')):
        s = replace_all(s, (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")))
        if any_true(pc.match_substring_regex(s, r"[\x00-\x1f]")):  # rare control chars: Python
            fix = lambda v: re.sub(r"[\x00-\x1f]", lambda m: "\\u%04x" % ord(m.group()), v)
            s = pa.array([None if v is None else fix(v) for v in s.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', s, '"', "")


def json_values(arr: pa.Array) -> pa.Array:
    """A column as JSON literals (no nulls left: NULL, NaN and inf become ``null``)."""
    import pyarrow.compute as pc
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
    import pyarrow.compute as pc
    return lambda s: pc.binary_join_element_wise(open_, s, close, "")


def markup_rows(b: pa.RecordBatch, row_open: str, row_close: str, cells) -> bytes:
    """The rows of a slice as markup: ``row_open``, one cell per column, ``row_close``.

    ``cells`` holds per column ``(render, empty)``: ``render(array)`` gives the whole cell
    text (tags included) with nulls left null, and ``empty`` is what a NULL cell becomes.
    """
    import pyarrow.compute as pc
    parts: list = [row_open]
    for (render, empty), a in zip(cells, b.columns):
        cell = render(a)
        parts.append(pc.fill_null(cell, empty) if cell.null_count else cell)
    parts.append(row_close)
    if len(parts) == 2:
        return ((row_open + row_close) * b.num_rows).encode()
    return joined_bytes(pc.binary_join_element_wise(*parts, ""))


# ---------------------------------------------------------------------------------------------
# Single values in Python: a small result's few rows (json.py) cost less written value by value
# than through vector calls, and must read exactly as the vector path writes them (base.float_text too).

_JSON_ESCAPES = re.compile(r'["\\\x00-\x1f]')
_CONTROL = re.compile(r"[\x00-\x1f]")


def json_string(s: str) -> str:
    """A string as a JSON literal, escaped as ``json_values`` escapes a column (non-ASCII kept)."""
    if _JSON_ESCAPES.search(s):
        s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        s = _CONTROL.sub(lambda m: "\\u%04x" % ord(m.group()), s)
    return '"' + s + '"'
