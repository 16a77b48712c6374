"""CSV and TSV: delimited text, one line per row, streamed per slice.

CSV follows RFC 4180 by default (``,``, ``"`` quoting strings, ``\n`` rows); the delimiter,
row delimiter, quote and escape characters are options (Accept parameters ``columnDelimiter``,
``rowDelimiter``, ``quoteChar``, ``escapeChar``, as Quasar sends them). With the default
quoting pyarrow's CSV writer does the work, on another core while the previous slice is sent (a few rows,
a quick query's, are written in Python for less, the same bytes).
TSV escapes tab, newline, CR and backslash as ``\t``, ``\n``, ``\r``, ``\\``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import pyarrow as pa

from .base import Writer, float_text, is_stringish, not_acceptable, plain, plain_type, slices, text_row_bytes
from .text import any_true, joined_bytes, replace_all, text

# pyarrow.compute and pyarrow.csv: imported where used, so a server at rest does not hold them (~8 MB) before its first result
if TYPE_CHECKING:
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv


def _csv_header(names, d, rd, q, e) -> bytes:
    special = {d, q, e, "\n", "\r", *rd}
    out = []
    for n in names:
        if any(c in special for c in n) or not n:
            n = q + (n.replace(e, e + e) if e != q else n).replace(q, e + q) + q
        out.append(n)
    return (d.join(out) + rd).encode()


def write_csv(schema, batches, info, opt):
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
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
        if b.num_rows <= _SMALL_ROWS and (small := _csv_rows_small(b, d, rd)) is not None:
            return small
        cols = []
        for a in b.columns:
            a = plain(a)
            t = a.type
            if pa.types.is_floating(t):
                if not _all_finite(a):
                    a = pc.if_else(pc.is_finite(a), a, pa.scalar(None, t))
            elif not (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
                      or pa.types.is_date32(t) or pa.types.is_decimal(t)):
                a = text(a, "csv")
            cols.append(a)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(pa.RecordBatch.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))]), sink, opts)
        return sink.getvalue().to_pybytes()

    yield from slices(batches, text_row_bytes(schema), render, parallel=fast)


_SMALL_ROWS = 64  # up to this many rows, Python writes them for less than pyarrow's CSV writer's setup (~0.15 ms)


def _csv_rows_small(b: pa.RecordBatch, d: str, rd: str) -> bytes | None:
    """A few rows as pyarrow's CSV writer writes them with the default quoting (every string quoted, ``"`` doubled;
    NULL, NaN and inf empty), or None when a column's type is not a plain one."""
    cols = []
    for a in b.columns:
        t, values = a.type, a.to_pylist()
        if pa.types.is_integer(t):
            cols.append(["" if v is None else str(v) for v in values])
        elif pa.types.is_floating(t):
            single = pa.types.is_float32(t) or pa.types.is_float16(t)
            cols.append(["" if v is None or not math.isfinite(v) else float_text(v, single) for v in values])
        elif pa.types.is_boolean(t):
            cols.append(["" if v is None else ("true" if v else "false") for v in values])
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            cols.append(["" if v is None else '"' + v.replace('"', '""') + '"' for v in values])
        else:
            return None
    return "".join(d.join(row) + rd for row in zip(*cols)).encode() if cols else None


def _all_finite(a: pa.Array) -> bool:
    """Whether every non-null value of a float column is finite (NaN and infinities are written empty)."""
    if len(a) <= 64:  # a quick result's few rows: Python's check costs a fraction of two compute calls
        return all(math.isfinite(x) for x in a.to_pylist() if x is not None)
    import pyarrow.compute as pc
    return pc.all(pc.is_finite(a)).as_py() is not False


def _quote_csv(s, t, d, rd, q, e):
    import pyarrow.compute as pc
    raw = {d, q, e, "\n", "\r", *rd}
    if not is_stringish(t) and not raw & set("0123456789+-.eEinfatrulsINFA"):
        return s  # numbers and booleans cannot contain any of the special characters
    if e != q:
        s = pc.replace_substring(s, e, e + e)
    s = pc.replace_substring(s, q, e + q)
    quoted = pc.binary_join_element_wise(q, s, q, "")
    if is_stringish(t):  # as pyarrow does: strings always quoted, so "" (empty) differs from NULL
        return quoted
    special = "".join(re.escape(c) for c in raw)
    return pc.if_else(pc.match_substring_regex(s, f"[{special}]"), quoted, s)


def _tsv_escape(s, t):
    import pyarrow.compute as pc
    if is_stringish(t) and any_true(pc.match_substring_regex(s, r"[\\\t\n\r]")):
        s = replace_all(s, (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")))
    return s


def _delimited(b, d, rd, escape) -> bytes:
    import pyarrow.compute as pc
    cols = []
    for a in b.columns:
        s = text(a, "csv")
        s = escape(s, plain_type(a.type))
        cols.append(pc.fill_null(s, "") if s.null_count else s)
    if not cols:
        return b""
    rows = pc.binary_join_element_wise(*cols, d) if len(cols) > 1 else cols[0]
    return joined_bytes(pc.binary_join_element_wise(rows, rd, ""))


def write_tsv(schema, batches, info, opt):
    esc = lambda n: n.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    yield ("\t".join(esc(n) for n in schema.names) + "\n").encode()
    yield from slices(batches, text_row_bytes(schema), lambda b: _delimited(b, "\t", "\n", _tsv_escape))



# ---------------------------------------------------------------------------------------------
# Options

_UNESCAPE = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\r\\n": "\r\n", "\\\\": "\\", '\\"': '"', "\\'": "'"}


def _one_char(label: str, value, *, crlf: bool = False) -> str:
    v = _UNESCAPE.get(value, value) if isinstance(value, str) else value
    if not isinstance(v, str) or not (len(v) == 1 or (crlf and v == "\r\n")):
        raise not_acceptable(f"CSV {label} must be exactly one character, got {value!r}", listing=False)
    return v


def check_csv(opts: dict) -> None:
    """The CSV characters, each one character (escapes such as ``\\t`` read), all different."""
    d = opts["delimiter"] = _one_char("column delimiter", opts.get("delimiter", ","))
    rd = opts["row_delimiter"] = _one_char("row delimiter", opts.get("row_delimiter", "\n"), crlf=True)
    q = opts["quote_char"] = _one_char("quote character", opts.get("quote_char", '"'))
    e = opts["escape_char"] = _one_char("escape character", opts.get("escape_char", q))
    if d in "\r\n" or q in "\r\n" or e in "\r\n" or len({d, q, rd}) < 3 or e in (d, *rd):
        raise not_acceptable(f"CSV delimiter {d!r}, row delimiter {rd!r}, quote {q!r} and "
                             f"escape {e!r} must differ and not be CR/LF", listing=False)


CSV = Writer(
    "csv", write_csv, "text/csv; charset=utf-8", {"text/csv": {}, "text/plain": {}},
    params={"columndelimiter": "delimiter", "rowdelimiter": "row_delimiter", "quotechar": "quote_char",
            "escapechar": "escape_char"},
    check=check_csv,
)
TSV = Writer("tsv", write_tsv, "text/tab-separated-values; charset=utf-8",
             {"text/tab-separated-values": {}, "text/tsv": {}})  # text/tsv: LSST DAX's name
