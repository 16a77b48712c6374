"""Writing tables into a user's MyDB: uploads, drop, rename, and the facts table listings show.

An upload arrives as a file in the principal's engine temp dir (the one directory the
locked-down engine may read), so the engine's own readers do the work: DuckDB's
``read_csv``/``read_parquet``/``read_json`` stream the file; VOTable and FITS go through
astropy and are handed to DuckDB as Arrow record batches. Every write (create, replace,
append, drop, rename) runs in one DuckDB transaction together with its metadata, so a
failed upload leaves the old table exactly as it was.

Column metadata (unit, UCD, description, ...) of Parquet, VOTable and FITS uploads is kept
in MyDB's ``archive_meta`` schema (see ``backends/metadata.py``), as is each table's
last-write time (``info['modified:<name>']``) which CasJobs' table list shows.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

from .sql import quote_ident, quote_literal
from .backends.metadata import META_SCHEMA
from .catalog import MYDB_ALIAS, Principal, TableInfo
from .errors import ArchiveError, bad_request, not_found, permission
from .execution.result import engine_error
from .schema import META_KEYS
from .sql import HEALPIX_INFO_PREFIX, healpix_index, parse_healpix_spec

if TYPE_CHECKING:
    from .archive import Archive
    from .catalog import ContextRef

FORMATS = ("csv", "parquet", "ldjson", "votable", "fits")
MODES = ("auto", "create", "append", "replace")  # auto: create, or append when the table exists
MAX_NAME = 128  # SQL Server's sysname, what CasJobs users are used to
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

_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_WIDTHS = {"BOOLEAN": 1, "TINYINT": 1, "UTINYINT": 1, "SMALLINT": 2, "USMALLINT": 2, "INTEGER": 4, "UINTEGER": 4,
           "FLOAT": 4, "DATE": 4, "HUGEINT": 16, "UHUGEINT": 16, "UUID": 16, "INTERVAL": 16, "VARCHAR": 16, "BLOB": 16}  # fmt: skip
_CSV_DIALECT = "header = true, delim = ',', quote = '\"', escape = '\"', comment = '', skip = 0, strict_mode = true"


# -- names, formats, where uploads go ------------------------------------------------------------
def check_table_name(name: str) -> str:
    """``name`` if it can name a MyDB table, else a 400 that says why."""
    if not name or not name.strip():
        raise bad_request("a table name must not be empty")
    if name != name.strip():
        raise bad_request(f"invalid table name {name!r}: no leading or trailing spaces")
    if len(name) > MAX_NAME:
        raise bad_request(f"invalid table name: {len(name)} characters, at most {MAX_NAME} are allowed")
    bad = sorted({c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise bad_request(f"invalid table name {name!r}: it must not contain {', '.join(repr(c) for c in bad)}")
    return name


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


def upload_path(archive: Archive, principal: Principal, context: str | ContextRef | None = None) -> Path:
    """A fresh file name in the temp dir of the engine that will load it: the one place it may read."""
    ref = archive.catalog.context(principal, context) if isinstance(context, str) else context
    engine = archive.engines.engine(principal, ()) if ref is None else archive.engines.context_engine(principal, ref)
    folder = engine.temp_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"upload-{uuid.uuid4().hex}.dat"


def writable_context(archive: Archive, principal: Principal, context: str | ContextRef) -> ContextRef:
    """The context a write goes to, if the principal may write there: their MyDB or a writable mount."""
    ref = archive.catalog.context(principal, context) if isinstance(context, str) else context
    if principal.anonymous:
        raise permission("writing needs a signed-in user", context=ref.name)
    if ref.mount is not None and ref.mount.read_only:
        raise permission(f"context {ref.name} is read-only: upload into MyDB instead", context=ref.name)
    if archive.catalog.is_resetting(principal, ref):
        raise ArchiveError("conflict", f"{ref.name} is being reset and is read-only until the reset ends", 409)
    return ref


# -- sources: an upload as something DuckDB can SELECT from ---------------------------------------
@dataclass
class Source:
    """An upload as a FROM item, with its columns and the metadata it carried."""

    from_sql: str
    params: list
    columns: list[tuple[str, str | None]]  # (name, DuckDB type if known)
    description: str | None = None
    column_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


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

    checked = [] if full else [n for n, t in columns if t in _INT_TYPES]
    if not checked:
        return Source(reader({}), [str(path)], columns)
    small = _small_in_sample(cur, reader({n: "VARCHAR" for n in checked}), str(path), checked)
    read_as = {n: "DOUBLE" if n in small else "VARCHAR" for n in checked}
    types = dict(columns)

    def check(n: str) -> str:
        q, fail = quote_ident(n), f"error({quote_literal(_NOT_WHOLE + n)})"
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


_NOT_WHOLE = "not a whole number in integer column "


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
    from astropy.io.votable import parse
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            vot = parse(str(path))
            resource_table = vot.get_first_table()
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for bad XML
            raise bad_request(f"the upload is not a valid VOTable: {_one_line(exc)}") from None
        table = resource_table.to_table(use_names_over_ids=True)
    meta = {}
    for f, name in zip(resource_table.fields, table.colnames):
        values = {"unit": f.unit, "ucd": f.ucd, "description": f.description, "utype": f.utype, "xtype": f.xtype}
        meta[name] = {k: str(v) for k, v in values.items() if v not in (None, "")}
    description = getattr(resource_table, "description", None) or None
    return _arrow_source(cur, table, meta, str(description) if description else None)


def _fits_source(cur, path: Path) -> Source:
    from astropy.io import fits
    from astropy.table import Table
    from astropy.utils.exceptions import AstropyWarning

    try:
        hdul = fits.open(path, memmap=True)
    except Exception as exc:  # noqa: BLE001
        raise bad_request(f"the upload is not a valid FITS file: {_one_line(exc)}") from None
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
    first = [_to_arrow(table[c][: min(n, BATCH_ROWS)]) for c in table.colnames]
    types = [a.type if not pa.types.is_null(a.type) else _to_arrow(table[c]).type for a, c in zip(first, table.colnames)]
    schema = pa.schema([pa.field(c, t) for c, t in zip(table.colnames, types)])

    def batches():
        for start in range(0, n, BATCH_ROWS):
            arrays = [_to_arrow(table[c][start : start + BATCH_ROWS]) for c in table.colnames]
            yield pa.RecordBatch.from_arrays([a.cast(t) for a, t in zip(arrays, types)], schema=schema)

    view = f"upload_{uuid.uuid4().hex}"
    cur.register(view, pa.RecordBatchReader.from_batches(schema, batches()))
    return Source(quote_ident(view), [], [(c, None) for c in table.colnames], description, meta, lambda: cur.unregister(view))


def _to_arrow(col) -> pa.Array:
    """One astropy column (or slice) as Arrow: native byte order, masked -> null, vectors -> lists."""
    arr = np.ma.asarray(col)
    mask = np.ma.getmaskarray(arr)
    data = np.ma.getdata(arr)
    if data.dtype.kind == "O":  # VOTable strings and variable-length arrays: Python objects
        out = []
        for v, m in zip(data, mask if mask.ndim == 1 else mask.any(axis=tuple(range(1, mask.ndim)))):
            if m or v is None:
                out.append(None)
            elif isinstance(v, bytes):
                out.append(v.decode("utf-8", "replace"))
            elif isinstance(v, np.ndarray):
                out.append(np.ma.filled(v.astype(v.dtype.newbyteorder("=")), 0).tolist() if v.dtype.kind != "O" else v.tolist())
            else:
                out.append(v.item() if isinstance(v, np.generic) else v)
        return pa.array(out)
    if not data.dtype.isnative:  # FITS is big-endian; Arrow wants native order
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype.kind == "S":
        data = np.char.decode(data, "utf-8", "replace")
    if data.ndim == 1:
        return pa.array(data, mask=mask if mask.any() else None)
    width = int(np.prod(data.shape[1:]))
    flat_mask = mask.reshape(-1) if mask.any() else None
    return pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1), mask=flat_mask), width)


_SOURCES = {"csv": _csv_source, "parquet": _parquet_source, "ldjson": _json_source,
            "votable": _votable_source, "fits": _fits_source}  # fmt: skip


# -- writes ---------------------------------------------------------------------------------------------
@dataclass
class UploadResult:
    """What an upload did: the table as it now is, whether it is new, and rows written."""

    table: TableInfo
    created: bool
    rows: int
    mode: str  # what was done: create | append | replace


def upload_table(
    archive: Archive, principal: Principal, context: str, name: str, path: Path, fmt: str, mode: str = "auto"
) -> UploadResult:
    """Load the file at ``path`` (in format ``fmt``) into table ``name`` of MyDB, all or nothing.

    ``mode``: ``create`` (409 if the table exists), ``append`` (404 if it does not; the columns
    must match by name, case-insensitively, in any order), ``replace``, or ``auto`` (create,
    else append). Appended values must fit the table's column types exactly (no rounding).
    """
    ref = writable_context(archive, principal, context)
    check_table_name(name)
    if mode not in MODES:
        raise bad_request(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    if fmt not in _SOURCES:
        raise ArchiveError("unsupported_format", f"unknown upload format {fmt!r}; known: {', '.join(FORMATS)}", 415)
    path = Path(path)
    if path.stat().st_size == 0:
        raise bad_request("the upload is empty: send the table's data as the request body")
    cur = archive.engines.context_engine(principal, ref).cursor()
    source = None
    try:
        try:
            for full in (False, True):
                source = _csv_source(cur, path, full=full) if fmt == "csv" else _SOURCES[fmt](cur, path)
                if not source.columns:
                    raise bad_request("the upload has no columns")
                _ensure_meta(cur, ref.alias)  # before the transaction: concurrent first uploads must not race on DDL
                sky = _sky_of(source)
                try:
                    with _transaction(cur):
                        done, final, rows = _write(cur, source, name, mode, ref.alias, sky)
                        _record(cur, final, source if done != "append" else None, ref.alias)
                        _index_positions(cur, final, source, done, ref.alias, sky)
                    break
                except duckdb.Error as exc:
                    # A late value the sampled types do not hold (a "1.5" or "abc" in an integer
                    # column): sniff the whole file and load again.
                    if fmt != "csv" or full or not (_NOT_WHOLE in str(exc) or isinstance(exc, duckdb.ConversionException)):
                        raise
                    source.close()
                    source = None
        except ArchiveError:
            raise
        except (duckdb.Error, pa.ArrowException) as exc:
            raise _read_error(exc, path, fmt) from None
        except Exception as exc:  # noqa: BLE001 - astropy and numpy fail in many ways on a bad file
            raise bad_request(f"cannot load the {fmt.upper()} upload: {_one_line(exc)}") from None
    finally:
        if source is not None:
            source.close()
        cur.close()
    return UploadResult(archive.catalog.table(principal, ref, final), done == "create", rows, done)


def _sky_of(source: Source) -> tuple[str, str] | None:
    """The (ra, dec) columns of an upload whose types are known and that has no index column yet:
    a new table from it gets its HEALPix index in the same pass that loads it."""
    if any(t is None for _, t in source.columns) or any(c.lower() == healpix_index.COLUMN for c, _ in source.columns):
        return None
    return healpix_index.sky_columns(source.columns, source.column_meta)


def _write(cur, source: Source, name: str, mode: str, alias: str = MYDB_ALIAS, sky=None) -> tuple[str, str, int]:
    """Create, replace or append inside the open transaction: (what was done, table name, rows).

    ``sky``: (ra, dec) columns; a new table then gets its index column and is stored in its order."""
    existing = _existing(cur, name, alias)
    select = f"SELECT * FROM {source.from_sql}"
    if sky is not None:
        select = healpix_index.ordered(healpix_index.with_index(select, *sky))
    if existing is not None and existing[1] == "view":
        raise ArchiveError("conflict", f"{existing[0]} is a view in MyDB; drop it first to upload a table of that name", 409)
    if existing is None:
        if mode == "append":
            raise not_found(f"unknown table {name!r} in MyDB: nothing to append to", table=name)
        rows = cur.execute(f"CREATE TABLE {_target(name, alias)} AS {select}", source.params).fetchone()[0]
        return "create", name, int(rows or 0)
    if mode == "create":
        raise ArchiveError("conflict", f"table {existing[0]} already exists in MyDB; append to it or replace it", 409)
    if mode == "replace":
        cur.execute(f"DROP TABLE {_target(existing[0], alias)}")
        rows = cur.execute(f"CREATE TABLE {_target(name, alias)} AS {select}", source.params).fetchone()[0]
        return "replace", name, int(rows or 0)
    table_cols = cur.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
        "AND table_name = ? ORDER BY column_index",
        [alias, existing[0]],
    ).fetchall()
    by_name = {c.lower(): (c, t) for c, t in source.columns}
    if healpix_index.COLUMN not in by_name:  # an indexed table: the index of new rows is computed after
        table_cols = [(c, t) for c, t in table_cols if c.lower() != healpix_index.COLUMN]
    want = {c.lower() for c, _ in table_cols}
    if set(by_name) != want or len(by_name) != len(source.columns):
        missing = [c for c, _ in table_cols if c.lower() not in by_name]
        extra = [c for c, _ in source.columns if c.lower() not in want]
        why = "; ".join(p for p in (f"missing: {', '.join(missing)}" if missing else "",
                                     f"not in the table: {', '.join(extra)}" if extra else "") if p) or "duplicate names"  # fmt: skip
        raise bad_request(
            f"the upload's columns ({', '.join(c for c, _ in source.columns)}) do not match those of table "
            f"{existing[0]} ({', '.join(c for c, _ in table_cols)}): {why}", table=existing[0])  # fmt: skip
    exprs = [_fit(by_name[c.lower()][0], by_name[c.lower()][1], c, t) for c, t in table_cols]
    rows = cur.execute(
        f"INSERT INTO {_target(existing[0], alias)} ({', '.join(quote_ident(c) for c, _ in table_cols)}) "
        f"SELECT {', '.join(exprs)} FROM {source.from_sql}",
        source.params,
    ).fetchone()[0]
    return "append", existing[0], int(rows or 0)


def _index_positions(cur, name: str, source: Source, done: str, alias: str, indexed=None) -> None:
    """Give a table with sky positions its HEALPix index (``healpix_index``), and declare it.

    ``indexed``: the (ra, dec) columns ``_write`` already made the index of."""
    key = f"{HEALPIX_INFO_PREFIX}{name}"
    declared = cur.execute(f"SELECT value FROM {_meta(alias)}.info WHERE key = ?", [key]).fetchall()
    if done == "append":
        if declared:  # fill the index of the appended rows
            index = parse_healpix_spec(declared[0][0])
            healpix_index.index_table(cur, alias, name, index.ra, index.dec)
        return
    sky = indexed
    if sky is None:
        columns = cur.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index",
            [alias, name],
        ).fetchall()
        sky = healpix_index.sky_columns(columns, source.column_meta)
        if sky is None or any(c.lower() == healpix_index.COLUMN for c, _ in columns):
            return
        healpix_index.index_table(cur, alias, name, *sky)
    cur.execute(
        f"INSERT OR REPLACE INTO {_meta(alias)}.columns VALUES (?, ?, NULL, 'pos.healpix', ?, NULL, NULL)",
        [name, healpix_index.COLUMN, healpix_index.DESCRIPTION],
    )
    cur.execute(f"INSERT OR REPLACE INTO {_meta(alias)}.info VALUES (?, ?)", [key, healpix_index.spec(*sky)])


def _fit(src: str, src_type: str | None, column: str, target_type: str) -> str:
    """A value converted to the table's column type, or an error naming column and value.

    A plain cast would round ``1.5`` into an integer column; this refuses it instead.
    """
    col = quote_ident(src)
    if src_type == target_type:
        return col
    as_t = f"TRY_CAST({col} AS {target_type})"
    ok = f"{as_t} IS NOT NULL"
    if target_type in _INT_TYPES and src_type not in _INT_TYPES:
        ok += f" AND TRY_CAST({col} AS DOUBLE) = {as_t}"
    msg = quote_literal(f"column {column}: value '") + f" || CAST({col} AS VARCHAR) || " + quote_literal(f"' is not a valid {target_type}")
    return f"CASE WHEN {col} IS NULL THEN NULL WHEN {ok} THEN {as_t} ELSE error({msg}) END"


def drop_table(archive: Archive, principal: Principal, context: str, name: str) -> None:
    """Drop a MyDB table or view and its metadata."""
    ref = writable_context(archive, principal, context)
    cur = archive.engines.context_engine(principal, ref).cursor()
    try:
        with _transaction(cur):
            existing = _existing(cur, name, ref.alias)
            if existing is None:
                raise not_found(f"unknown table {name!r} in {ref.name}", table=name)
            cur.execute(f"DROP {existing[1].upper()} {_target(existing[0], ref.alias)}")
            _forget(cur, existing[0], ref.alias)
    except duckdb.Error as exc:
        raise engine_error(exc) from None
    finally:
        cur.close()


def rename_table(archive: Archive, principal: Principal, context: str, name: str, new_name: str) -> TableInfo:
    """Rename a MyDB table (409 if another table has the new name); metadata follows it."""
    ref = writable_context(archive, principal, context)
    check_table_name(new_name)
    cur = archive.engines.context_engine(principal, ref).cursor()
    try:
        _ensure_meta(cur, ref.alias)
        with _transaction(cur):
            existing = _existing(cur, name, ref.alias)
            if existing is None:
                raise not_found(f"unknown table {name!r} in {ref.name}", table=name)
            other = _existing(cur, new_name, ref.alias)
            if other is not None and other[0].lower() != existing[0].lower():
                raise ArchiveError("conflict", f"{ref.name} already has a {other[1]} named {other[0]}", 409, details={"table": other[0]})
            if existing[0] != new_name:
                cur.execute(f"ALTER {existing[1].upper()} {_target(existing[0], ref.alias)} RENAME TO {quote_ident(new_name)}")
                if _has_meta(cur, ref.alias):
                    for t in ("tables", "columns"):
                        cur.execute(f"UPDATE {_meta(ref.alias)}.{t} SET table_name = ? WHERE lower(table_name) = lower(?)", [new_name, existing[0]])
                    cur.execute(f"DELETE FROM {_meta(ref.alias)}.info WHERE key = ?", [_modified_key(existing[0])])
                    cur.execute(
                        f"UPDATE {_meta(ref.alias)}.info SET key = ? WHERE lower(key) = lower(?)",
                        [HEALPIX_INFO_PREFIX + new_name, HEALPIX_INFO_PREFIX + existing[0]],
                    )
                _record(cur, new_name, None, ref.alias)
    except duckdb.Error as exc:
        raise engine_error(exc) from None
    finally:
        cur.close()
    return archive.catalog.table(principal, ref, new_name)


def _existing(cur, name: str, alias: str = MYDB_ALIAS) -> tuple[str, str] | None:
    """(exact name, 'table' | 'view') of a MyDB table or view named ``name`` in any case."""
    row = cur.execute(
        "SELECT table_name, 'table' FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
        "AND lower(table_name) = lower($n) UNION ALL SELECT view_name, 'view' FROM duckdb_views() "
        "WHERE database_name = $db AND schema_name = 'main' AND NOT internal AND lower(view_name) = lower($n)",
        {"db": alias, "n": name},
    ).fetchone()
    return (row[0], row[1]) if row else None


def _target(name: str, alias: str = MYDB_ALIAS) -> str:
    return f"{quote_ident(alias)}.main.{quote_ident(name)}"


@contextlib.contextmanager
def _transaction(cur):
    """BEGIN ... COMMIT on a cursor; ROLLBACK on any error, so nothing half-done is kept."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed statement may have aborted it already
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


# -- metadata in MyDB's archive_meta (same shape as backends/metadata.py, but qualified with the
# MyDB alias: the engine's pooled connections must not switch their default database) ------------
def _meta(alias: str) -> str:
    return f"{quote_ident(alias)}.{META_SCHEMA}"


def _meta_ddl(alias: str) -> str:
    m = _meta(alias)
    return f"""
CREATE SCHEMA IF NOT EXISTS {m};
CREATE TABLE IF NOT EXISTS {m}.tables(table_name VARCHAR PRIMARY KEY, description VARCHAR);
CREATE TABLE IF NOT EXISTS {m}.columns(table_name VARCHAR, column_name VARCHAR, unit VARCHAR, ucd VARCHAR,
    description VARCHAR, utype VARCHAR, xtype VARCHAR, PRIMARY KEY (table_name, column_name));
CREATE TABLE IF NOT EXISTS {m}.info(key VARCHAR PRIMARY KEY, value VARCHAR);
"""


def _modified_key(name: str) -> str:
    return f"modified:{name.lower()}"


def _has_meta(cur, alias: str = MYDB_ALIAS) -> bool:
    return bool(cur.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = 'info'",
        [alias, META_SCHEMA],
    ).fetchall())  # fmt: skip


def _ensure_meta(cur, alias: str = MYDB_ALIAS) -> None:
    if not _has_meta(cur, alias):
        cur.execute(_meta_ddl(alias))


def _record(cur, name: str, source: Source | None, alias: str = MYDB_ALIAS) -> None:
    """Note the table's write time; with ``source``, replace its metadata by the upload's."""
    if source is not None:
        _forget(cur, name, alias)
        cols = [[name, c, *(m.get(k) or None for k in META_KEYS)] for c, m in source.column_meta.items() if m]
        if source.description or cols:
            cur.execute(f"INSERT INTO {_meta(alias)}.tables VALUES (?, ?)", [name, source.description])
        if cols:
            cur.executemany(f"INSERT INTO {_meta(alias)}.columns VALUES ({', '.join('?' * (2 + len(META_KEYS)))})", cols)
    cur.execute(f"INSERT OR REPLACE INTO {_meta(alias)}.info VALUES (?, ?)", [_modified_key(name), repr(time.time())])


def _forget(cur, name: str, alias: str = MYDB_ALIAS) -> None:
    if not _has_meta(cur, alias):
        return
    for t in ("tables", "columns"):
        cur.execute(f"DELETE FROM {_meta(alias)}.{t} WHERE lower(table_name) = lower(?)", [name])
    cur.execute(f"DELETE FROM {_meta(alias)}.info WHERE key = ? OR lower(key) = lower(?)", [_modified_key(name), HEALPIX_INFO_PREFIX + name])


# -- listings ---------------------------------------------------------------------------------------------
def table_summaries(archive: Archive, principal: Principal, context: str) -> list[dict]:
    """Each table of a context as ``{name, rows, size_kb, modified}`` (modified: unix seconds).

    DuckDB keeps neither sizes nor write times per table: the size is estimated from the row
    count and column types; the time is the last upload/rename recorded in MyDB, else the
    database file's modification time.
    """
    ref = archive.catalog.context(principal, context)
    infos = archive.catalog.tables(principal, ref)
    recorded: dict[str, float] = {}
    if ref.mount is not None:
        files = [ref.mount.engine_file or ref.mount.location]
    else:
        mydb = archive.catalog.mydb_path(principal)
        files = [mydb, Path(str(mydb) + ".wal")]
        cur = archive.engines.context_engine(principal, ref).cursor()
        try:
            if _has_meta(cur, ref.alias):
                for key, value in cur.execute(f"SELECT key, value FROM {_meta(ref.alias)}.info WHERE key LIKE 'modified:%'").fetchall():
                    try:
                        recorded[key] = float(value)
                    except (TypeError, ValueError):
                        pass
        finally:
            cur.close()
    stamp = max((f.stat().st_mtime for f in files if f.exists()), default=time.time())
    return [
        {
            "name": t.name,
            "rows": int(t.rows or 0),
            "size_kb": _size_kb(t),
            "modified": recorded.get(_modified_key(t.name), stamp),
        }
        for t in infos
    ]


def _size_kb(t: TableInfo) -> int:
    """An estimate: rows times the in-memory width of each column (strings and nested: 16 bytes)."""
    width = 0
    for c in t.columns:
        base = c.datatype.upper().split("(")[0]
        width += _WIDTHS.get(base, 16 if "[" in base or base in ("STRUCT", "MAP", "UNION") else 8)
    return math.ceil((t.rows or 0) * width / 1024)


# -- errors -------------------------------------------------------------------------------------------------
def _read_error(exc: Exception, path: Path, fmt: str) -> ArchiveError:
    """A reader's failure as a 400 naming the problem (and the bad line, for CSV)."""
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
