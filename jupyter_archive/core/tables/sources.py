"""Reading uploads: a file in CSV, Parquet, line-delimited JSON, VOTable or FITS as something
DuckDB can SELECT from (a :class:`Source`), and a reader's failure as an error naming the problem.

An upload arrives as a file in the principal's engine temp dir (the one directory the
locked-down engine may read), so the engine's own readers do the work: DuckDB's
``read_csv``/``read_parquet``/``read_json`` stream the file; VOTable and FITS go through
astropy: a FITS table is handed to DuckDB as Arrow record batches, a VOTable is parsed in a worker process into Parquet
(``formats.votable_in``: its parser holds the interpreter's lock for seconds). Column metadata (unit, UCD,
description, ...) of Parquet, VOTable and FITS uploads comes with the source.
"""

from __future__ import annotations

import csv
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..sql import quote_ident, quote_literal
from ..errors import ArchiveError, bad_request, one_line
from ..execution.engines import engine_error
from ..formats.base import META_KEYS
from ..formats.columns import to_arrow
from ..formats.votable_in import as_parquet

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb


FORMATS = ("csv", "parquet", "ldjson", "votable", "fits")
BATCH_ROWS = 65_536  # rows per Arrow batch when astropy tables are streamed into the engine

MEDIA_FORMATS = {
    "text/csv": "csv", "application/csv": "csv", "text/plain": "csv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet", "application/parquet": "parquet",
    "application/x-ndjson": "ldjson", "application/ndjson": "ldjson", "application/jsonl": "ldjson",
    "application/x-jsonlines": "ldjson", "application/jsonlines": "ldjson", "application/json": "ldjson",
    "application/x-ldjson": "ldjson",
    "application/x-votable+xml": "votable", "text/xml": "votable", "application/xml": "votable",
    "application/fits": "fits", "image/fits": "fits", "application/x-fits": "fits",
}  # fmt: skip
FORMAT_NAMES = {"csv": "csv", "parquet": "parquet", "json": "ldjson", "ldjson": "ldjson", "jsonl": "ldjson",
                "ndjson": "ldjson", "votable": "votable", "vot": "votable", "xml": "votable", "fits": "fits"}  # fmt: skip
# Media types that say nothing about the content: the body's first bytes decide.
VAGUE_MEDIA = {"", "application/octet-stream", "application/x-www-form-urlencoded", "binary/octet-stream"}

# Integer types: a CSV column sniffed as one is checked while it loads; a value appended to one must be whole.
INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_CSV_DIALECT = "header = true, delim = ',', quote = '\"', escape = '\"', comment = '', skip = 0, strict_mode = true"


def upload_format(media_type: str | None, name: str | None, head: bytes = b"") -> str:
    """The upload format from ``?format=``, else the Content-Type, else the body's first bytes."""
    if name:
        fmt = FORMAT_NAMES.get(name.strip().lower())
        if fmt is None:
            raise ArchiveError("unsupported_format", f"unknown upload format {name!r}; known: {', '.join(FORMATS)}", 415)
        return fmt
    media = (media_type or "").split(";")[0].strip().lower()
    if media.startswith("multipart/"):
        raise ArchiveError("unsupported_format", "send the file itself as the request body, not a multipart form", 415)
    if media in MEDIA_FORMATS:
        return MEDIA_FORMATS[media]
    if media not in VAGUE_MEDIA:
        raise ArchiveError(
            "unsupported_format", f"cannot upload {media}; send CSV, Parquet, line-delimited JSON, VOTable or FITS "
            f"(or say which with ?format=)", 415)  # fmt: skip
    return sniff_format(head)


def sniff_format(head: bytes) -> str:
    """Guess a format from the first bytes of a file (CSV when nothing else fits)."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if text.startswith(b"<"):
        return "votable"
    if text[:1] in (b"{", b"["):
        return "ldjson"
    return "csv"



@dataclass
class Source:
    """An upload as a FROM item, with its columns and the metadata it carried."""

    from_sql: str
    params: list
    columns: list[tuple[str, str | None]]  # (name, DuckDB type if known)
    description: str | None = None
    column_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None



def _csv_source(cur, path: Path, *, full: bool = False) -> Source:
    # The dialect is pinned (comma, double quotes, a header): left free, the sniffer may
    # "fit" a malformed file by skipping rows. Types come from a sample, which can miss a late
    # "1.5" that DuckDB would round into an integer column: integer columns are therefore read
    # so that such a value is seen while they load (an error then retries with ``full``, types
    # sniffed over the whole file: one more pass, only for such files). Integers that stayed
    # within 2**52 in the sample are read as DOUBLE (exact there) and checked to be whole
    # numbers in range; others are read as text, and a decimal point or an exponent (the
    # forms DuckDB's text-to-integer cast rounds: "1.5" -> 2, "1e-1" -> 0) is refused.
    sample = ", sample_size = -1" if full else ""
    row = cur.execute(
        f"SELECT Columns, DateFormat, TimestampFormat FROM sniff_csv(?, {_CSV_DIALECT}{sample})", [str(path)]
    ).fetchone()
    columns = [(c["name"], c["type"]) for c in row[0]]
    extra = "".join(f", {k} = {quote_literal(v)}" for k, v in (("dateformat", row[1]), ("timestampformat", row[2])) if v)

    def reader(read_as: dict[str, str]) -> str:
        spec = ", ".join(f"{quote_literal(n)}: {quote_literal(read_as.get(n, t))}" for n, t in columns)
        return f"read_csv(?, auto_detect = false, {_CSV_DIALECT}, columns = {{{spec}}}{extra})"

    checked = [] if full else [n for n, t in columns if t in INT_TYPES]
    if not checked:
        return Source(reader({}), [str(path)], columns)
    small = _small_in_sample(cur, reader({n: "VARCHAR" for n in checked}), str(path), checked)
    read_as = {n: "DOUBLE" if n in small else "VARCHAR" for n in checked}
    types = dict(columns)

    def check(n: str) -> str:
        q, fail = quote_ident(n), f"error({quote_literal(NOT_WHOLE + n)})"
        if n in small:
            whole = f"{q} = trunc({q}) AND abs({q}) <= {_EXACT_DOUBLE_INT}"
        else:
            # (substring tests, not a regular expression: a fifth of the cost; text that is
            # no number at all fails the cast)
            whole = f"NOT (contains({q}, '.') OR contains({q}, 'e') OR contains({q}, 'E'))"
        return f"CASE WHEN {q} IS NULL OR ({whole}) THEN CAST({q} AS {types[n]}) ELSE {fail} END AS {q}"

    select = ", ".join(check(n) if n in read_as else quote_ident(n) for n, _ in columns)
    return Source(f"(SELECT {select} FROM {reader(read_as)}) AS _upload", [str(path)], columns)


_EXACT_DOUBLE_INT = 1 << 52  # integers up to here read as DOUBLE are exact, with room to spare


def _small_in_sample(cur, reader: str, path: str, names: list[str]) -> set[str]:
    """The integer columns whose values in the file's first rows are all numbers within 2**52
    (``reader`` reads them as text: a word the sniffer's sample missed is no error here)."""

    def small(n: str) -> str:
        v = f"TRY_CAST({quote_ident(n)} AS DOUBLE)"
        return f"coalesce(bool_and({quote_ident(n)} IS NULL OR abs({v}) <= {_EXACT_DOUBLE_INT}), true)"

    row = cur.execute(f"SELECT {', '.join(small(n) for n in names)} FROM (SELECT * FROM {reader} LIMIT 20000)", [path]).fetchone()
    return {n for n, ok in zip(names, row, strict=True) if ok}


NOT_WHOLE = "not a whole number in integer column "


def _described(cur, from_sql: str, params: list) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in cur.execute(f"DESCRIBE SELECT * FROM {from_sql}", params).fetchall()]


def _parquet_source(cur, path: Path) -> Source:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise bad_request(f"the upload is not a valid Parquet file: {exc}") from None
    meta = {}
    for f in schema:
        md = f.metadata or {}
        meta[f.name] = {k: md[k.encode()].decode("utf-8", "replace") for k in META_KEYS if md.get(k.encode())}
    description = (schema.metadata or {}).get(b"description", b"").decode("utf-8", "replace") or None
    from_sql = "read_parquet(?)"
    return Source(from_sql, [str(path)], _described(cur, from_sql, [str(path)]), description, meta)


def _json_source(cur, path: Path) -> Source:
    # format auto: line-delimited objects, or one JSON array of objects.
    from_sql = "read_json(?, format = 'auto', records = true, sample_size = -1)"
    return Source(from_sql, [str(path)], _described(cur, from_sql, [str(path)]))


def _votable_source(cur, path: Path) -> Source:
    parquet, problem = as_parquet(path)  # astropy's parser holds the interpreter's lock for seconds: not this process's
    if parquet is None:
        raise bad_request(f"the upload is {problem}" if problem.startswith("not ") else f"cannot load the VOTABLE upload: {problem}")
    try:
        source = _parquet_source(cur, parquet)
    except BaseException:
        parquet.unlink(missing_ok=True)
        raise
    source.close = lambda: parquet.unlink(missing_ok=True)
    return source


def _fits_source(cur, path: Path) -> Source:
    from astropy.io import fits
    from astropy.table import Table
    from astropy.utils.exceptions import AstropyWarning

    try:
        hdul = fits.open(path, memmap=True)
    except Exception as exc:  # noqa: BLE001
        raise bad_request(f"the upload is not a valid FITS file: {one_line(exc)}") from None
    hdu = next((h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
    if hdu is None:
        hdul.close()
        raise bad_request("the FITS upload holds no table extension")
    try:
        with warnings.catch_warnings():
            # astropy warns about units it cannot parse; the raw TUNIT text is kept anyway.
            warnings.simplefilter("ignore", AstropyWarning)
            table = Table.read(hdu)
    except BaseException:
        hdul.close()
        raise
    meta = {}
    for i, name in enumerate(table.colnames, start=1):
        cards = (("unit", "TUNIT"), ("ucd", "TUCD"), ("description", "TCOMM"))
        values = {k: hdu.header.get(f"{card}{i}") for k, card in cards}
        meta[name] = {k: v.strip() for k, v in values.items() if isinstance(v, str) and v.strip()}
    source = _arrow_source(cur, table, meta, None)
    unregister = source.close

    def close():
        unregister()
        hdul.close()

    source.close = close
    return source


def _arrow_source(cur, table, meta: dict, description: str | None) -> Source:
    """An astropy table handed to DuckDB as a stream of Arrow batches (bounded memory)."""
    n = len(table)
    first = [to_arrow(table[c][: min(n, BATCH_ROWS)]) for c in table.colnames]
    types = [a.type if not pa.types.is_null(a.type) else to_arrow(table[c]).type for a, c in zip(first, table.colnames)]
    schema = pa.schema([pa.field(c, t) for c, t in zip(table.colnames, types)])

    def batches():
        for start in range(0, n, BATCH_ROWS):
            arrays = [to_arrow(table[c][start : start + BATCH_ROWS]) for c in table.colnames]
            yield pa.RecordBatch.from_arrays([a.cast(t) for a, t in zip(arrays, types)], schema=schema)

    view = f"upload_{uuid.uuid4().hex}"
    cur.register(view, pa.RecordBatchReader.from_batches(schema, batches()))
    return Source(quote_ident(view), [], [(c, None) for c in table.colnames], description, meta, lambda: cur.unregister(view))



_SOURCES = {"csv": _csv_source, "parquet": _parquet_source, "ldjson": _json_source,
            "votable": _votable_source, "fits": _fits_source}  # fmt: skip



def open_source(cur, path: Path, fmt: str, *, full: bool = False) -> Source:
    """An upload file as a :class:`Source` (``full``: a CSV's types sniffed over the whole file)."""
    return _csv_source(cur, path, full=full) if fmt == "csv" else _SOURCES[fmt](cur, path)


def read_error(exc: Exception, path: Path, fmt: str) -> ArchiveError:
    """A reader's failure as a 400 naming the problem (and the bad line, for CSV)."""
    import duckdb
    err = engine_error(exc)
    if err.status == 409 or (err.status >= 500 and isinstance(exc, duckdb.Error)):
        return err  # a conflict, or the engine's own trouble (disk full, ...): not the file's fault
    # DuckDB's CSV errors: the problem, a blank line, then hints and the reader's options.
    text = str(exc).replace(str(path), "the upload").split("\nPossible fixes")[0].split("\n\n")[0]
    lines = [ln.strip()[:200] for ln in text.splitlines() if ln.strip()]
    message = "; ".join(lines[:4]) or err.message
    if fmt == "csv" and "sniffing" in message.lower():
        message = _csv_problem(path) or "the CSV has no consistent layout (a header line, then rows with as many values, every quote closed)"
    message = message.split(": ", 1)[1] if message.startswith(("Invalid Input Error:", "Conversion Error:")) else message
    return ArchiveError("bad_upload", f"cannot load the {fmt.upper()} upload: {message}", 400)


def _csv_problem(path: Path) -> str | None:
    """The first line of a CSV file whose number of values differs from the header's."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
            for row in reader:
                if row and len(row) != len(header):
                    return f"line {reader.line_num} has {len(row)} values, the header has {len(header)}"
        except csv.Error as exc:
            return f"line {reader.line_num}: {exc}"
        except StopIteration:
            return "the upload has no header line"
    return None
