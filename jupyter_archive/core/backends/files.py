"""File directories as archive tables: every data file a table, every sub-folder a folder.

User SQL runs in DuckDB with external file access switched off, so a ``files`` mount is not
read in place: :func:`sync_cache` ingests the directory into a cache DuckDB file, which the
archive then attaches read-only. Supported files (extension case-insensitive):

* ``.csv`` and ``.tsv`` - DuckDB ``read_csv`` with dialect and type auto-detection;
* ``.parquet`` - DuckDB ``read_parquet``; field metadata ``unit``/``ucd``/``description``
  (and ``utype``/``xtype``) become column metadata, schema metadata ``description`` the
  table description;
* ``.jsonl``/``.ndjson``/``.ldjson``, and ``.json`` when line-delimited - DuckDB ``read_json``;
* ``.fits``/``.fit``/``.fits.gz`` - the first BINTABLE HDU with rows, read with astropy;
  ``TUNITn`` becomes the unit, ``TUCDn``/``TCOMMn`` the UCD/description, masked values NULL.

The table of ``sub/stars.csv`` is ``main."sub/stars"``. Hidden entries (``.name``, e.g.
``.ipynb_checkpoints``) are ignored. Files that resolve (through symlinks) outside the
directory are never read; unreadable or malformed files are skipped. Both are logged as
warnings and listed in the cache's ``archive_meta.files`` table with the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from .. import errors
from ..errors import one_line
from ..formats.base import META_KEYS
from ..formats.columns import to_arrow
from . import metadata as md

log = logging.getLogger(__name__)

#: Bump when ingestion changes, so existing caches are rebuilt.
CACHE_VERSION = "1"

# (suffix, reader) in order of preference when two files map to the same table name:
# self-describing formats (types and metadata) first.
_FORMATS: tuple[tuple[str, str], ...] = (
    (".parquet", "parquet"),
    (".fits", "fits"),
    (".fit", "fits"),
    (".fits.gz", "fits"),
    (".csv", "csv"),
    (".tsv", "tsv"),
    (".jsonl", "json"),
    (".ndjson", "json"),
    (".ldjson", "json"),
    (".json", "json"),
)
# Longest suffix first, so "x.fits.gz" is FITS and not an unknown ".gz".
_BY_LENGTH = sorted(enumerate(_FORMATS), key=lambda item: -len(item[1][0]))
_FILES_TABLE = f"{md.META_SCHEMA}.files"
_GLOB_CHARS = set("*?[]{}")


class _Skip(Exception):
    """A file that is not (or not only) a table: skipped with this reason."""


@dataclass
class _Entry:
    rel: str  # path relative to the directory, "/"-separated
    real: str | None  # resolved path; None when it lies outside the directory
    table: str
    kind: str
    priority: int
    size: int
    mtime_ns: int
    status: str = "pending"
    message: str | None = None


def sync_cache(directory: Path, cache_path: Path) -> bool:
    """Bring the cache database ``cache_path`` up to date with ``directory``.

    Returns ``True`` when the cache was (re)built, ``False`` when it already matched the
    directory (same files, sizes and modification times, same ingestion version). The new
    cache is built in a temporary file beside ``cache_path`` and renamed over it, so a reader
    sees the old or the new cache, never a partial one.
    """
    directory = Path(directory)
    cache_path = Path(cache_path)
    if not directory.is_dir():
        raise errors.not_found(f"files directory {directory} does not exist", directory=str(directory))
    root = os.path.realpath(directory)
    entries = list(_scan(root))
    manifest = sorted((e.rel, e.size, e.mtime_ns) for e in entries)
    if _cache_matches(cache_path, root, manifest):
        return False
    with md.build_lock(cache_path):
        if _cache_matches(cache_path, root, manifest):  # built by someone else meanwhile
            return False
        with md.atomic_database(cache_path) as tmp:
            _build(tmp, directory, root, entries)
    return True


def list_tables(cache_path: Path) -> list[str]:
    """Names of the tables in a cache built by :func:`sync_cache` (``[]`` if there is none)."""
    cache_path = Path(cache_path)
    if not cache_path.exists():
        return []
    with md.open_read_only(cache_path) as (con, alias):
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
            "ORDER BY table_name",
            [alias],
        ).fetchall()
    return [r[0] for r in rows]


def read_file_status(cache_path: Path) -> list[dict]:
    """The cache's record of every candidate file: path, table, status (``ok``, ``skipped``,
    ``error``, ``outside``, ``shadowed``) and message; for showing users why a file is missing."""
    with md.open_read_only(Path(cache_path)) as (con, alias):
        cur = con.execute(
            f"SELECT path, table_name, status, message FROM {md.quote_ident(alias)}.{_FILES_TABLE} ORDER BY path"
        )
        return [dict(zip(("path", "table", "status", "message"), row)) for row in cur.fetchall()]


# --- scanning -------------------------------------------------------------------------------


def _scan(root: str) -> Iterator[_Entry]:
    """Candidate files under ``root`` (a real path), in a deterministic order.

    Follows symlinked folders that stay inside ``root`` (each real folder once, so loops
    end). Nothing is opened here; files outside ``root`` are not even stat'ed.
    """
    seen_dirs = {root}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            if not _inside(real, root):
                # Recorded (with the link's own stat) so a retargeted link triggers a rebuild.
                with contextlib.suppress(OSError):
                    st = os.lstat(full)
                    yield _Entry(_rel(full, root) + "/", None, "", "folder", -1, st.st_size,
                                 st.st_mtime_ns, "outside", "folder resolves outside the directory")  # fmt: skip
                continue
            if real in seen_dirs:
                continue
            seen_dirs.add(real)
            keep.append(d)
        dirnames[:] = keep  # os.walk descends only into these
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            match = _format_of(name)
            if match is None:
                continue
            priority, suffix, kind = match
            full = os.path.join(dirpath, name)
            rel = _rel(full, root)
            table = rel[: len(rel) - len(suffix)]
            real = os.path.realpath(full)
            try:
                if _inside(real, root):
                    st = os.stat(real)
                    if not os.path.isfile(real):
                        continue
                    yield _Entry(rel, real, table, kind, priority, st.st_size, st.st_mtime_ns)
                else:
                    # Never read (nor stat) the target; the link's own stat notices a retarget.
                    st = os.lstat(full)
                    yield _Entry(rel, None, table, kind, priority, st.st_size, st.st_mtime_ns,
                                 "outside", "resolves outside the directory")  # fmt: skip
            except OSError as exc:  # e.g. a dangling symlink
                with contextlib.suppress(OSError):
                    st = os.lstat(full)
                    yield _Entry(rel, None, table, kind, priority, st.st_size, st.st_mtime_ns,
                                 "error", one_line(exc, kind=True))  # fmt: skip


def _format_of(name: str) -> tuple[int, str, str] | None:
    lower = name.lower()
    for priority, (suffix, kind) in _BY_LENGTH:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return priority, name[len(name) - len(suffix) :], kind
    return None


def _inside(real: str, root: str) -> bool:
    try:
        return os.path.commonpath([real, root]) == root
    except ValueError:  # different drives
        return False


def _rel(full: str, root: str) -> str:
    return Path(os.path.relpath(full, root)).as_posix()


def _cache_matches(cache_path: Path, root: str, manifest: list[tuple[str, int, int]]) -> bool:
    if not cache_path.exists():
        return False
    try:
        with md.open_read_only(cache_path) as (con, alias):
            info = md.read_info(con, alias)
            if info.get("files_cache_version") != CACHE_VERSION or info.get("files_directory") != root:
                return False
            rows = con.execute(
                f"SELECT path, size, mtime_ns FROM {md.quote_ident(alias)}.{_FILES_TABLE} ORDER BY path"
            ).fetchall()
    except duckdb.Error as exc:
        log.warning("files cache %s unreadable (%s); rebuilding", cache_path, exc)
        return False
    return sorted(rows) == manifest


# --- building -------------------------------------------------------------------------------


def _build(tmp: Path, shown: Path, root: str, entries: list[_Entry]) -> None:
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET enable_progress_bar = false")  # no terminal bar from a server-side build
        md.ensure_schema(con)
        con.execute(
            f"CREATE TABLE {_FILES_TABLE}(path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, "
            "table_name VARCHAR, status VARCHAR, message VARCHAR)"
        )
        # DuckDB names are case-insensitive, so "A.csv" and "a.parquet" are one table too.
        groups: dict[str, list[_Entry]] = {}
        for e in entries:
            if e.status == "pending":
                groups.setdefault(e.table.casefold(), []).append(e)
            else:
                log.warning("files mount %s: skipped %s: %s", shown, e.rel, e.message)
        for key in sorted(groups):
            group = sorted(groups[key], key=lambda e: (e.priority, e.rel))
            if len(group) > 1:
                log.warning("files mount %s: %s all map to table %r; using the first that loads",
                            shown, ", ".join(e.rel for e in group), group[0].table)  # fmt: skip
            winner = None
            for e in group:
                if winner is not None:
                    e.status, e.message = "shadowed", f"table {winner.table!r} comes from {winner.rel}"
                    continue
                try:
                    _load(con, e)
                except _Skip as exc:
                    e.status, e.message = "skipped", str(exc)
                    log.warning("files mount %s: skipped %s: %s", shown, e.rel, exc)
                except Exception as exc:  # any reader failure: skip the file, keep scanning
                    e.status, e.message = "error", one_line(exc, kind=True)
                    log.warning("files mount %s: skipped %s: %s", shown, e.rel, e.message)
                else:
                    e.status, winner = "ok", e
        if entries:
            con.executemany(
                f"INSERT INTO {_FILES_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
                [[e.rel, e.size, e.mtime_ns, e.table if e.status == "ok" else None, e.status, e.message]
                 for e in entries],
            )  # fmt: skip
        md.set_info(con, "files_cache_version", CACHE_VERSION)
        md.set_info(con, "files_directory", root)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _load(con: duckdb.DuckDBPyConnection, e: _Entry) -> None:
    """Create table ``e.table`` from file ``e`` with its metadata, all or nothing."""
    target = md.quote_ident(e.table)
    try:
        description, columns = _READERS[e.kind](con, target, e.real)
        columns = {c: m for c, m in columns.items() if m}
        if description or columns:
            md.write_metadata(con, e.table, description, columns)
    except BaseException:
        # Not one transaction: after a failed statement DuckDB refuses the rest of it,
        # and the CSV reader retries. Each CREATE is atomic; undo the table by hand.
        con.execute(f"DROP TABLE IF EXISTS {target}")
        raise


def _read_csv(con, target: str, real: str, delim: str | None = None) -> tuple[None, dict]:
    with _safe_path(real) as path:
        options, params = "auto_detect = true", [path]
        if delim is not None:
            options, params = options + ", delim = ?", [path, delim]
        try:
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM read_csv(?, {options})", params)
        except duckdb.Error:
            # Types are sniffed from a sample; a value later in the file may not fit. Retry
            # with the whole file as the sample (a really malformed file fails again).
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM read_csv(?, {options}, sample_size = -1)", params)
        if delim is None:
            _check_single_column(con, target, real, ",")
    return None, {}


def _read_tsv(con, target: str, real: str) -> tuple[None, dict]:
    return _read_csv(con, target, real, "\t")


def _check_single_column(con, target: str, real: str, delim: str) -> None:
    # When no dialect fits every row, DuckDB's sniffer falls back to one column holding
    # whole lines; a comma in the first line means the file was meant to be split.
    ncols = len(con.execute(f"SELECT * FROM {target} LIMIT 0").description)
    if ncols == 1:
        with open(real, "rb") as fh:
            first = fh.readline(1 << 16)
        if delim.encode() in first:
            raise _Skip("malformed CSV: rows do not have a consistent number of columns")


def _read_parquet(con, target: str, real: str) -> tuple[str | None, dict]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(real)  # also rejects non-Parquet files early, with a clear message
    columns = {}
    for field in schema:
        fmd = field.metadata or {}
        columns[field.name] = {k: fmd[k.encode()].decode("utf-8", "replace") for k in META_KEYS if fmd.get(k.encode())}
    smd = schema.metadata or {}
    description = smd.get(b"description", b"").decode("utf-8", "replace") or None
    with _safe_path(real) as path:
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM read_parquet(?)", [path])
    return description, columns


def _read_json(con, target: str, real: str) -> tuple[None, dict]:
    if real.lower().endswith(".json") and not _is_line_delimited(real):
        raise _Skip("not line-delimited JSON")
    with _safe_path(real) as path:
        con.execute(
            f"CREATE TABLE {target} AS SELECT * FROM read_json(?, format = 'newline_delimited')", [path]
        )
    return None, {}


def _is_line_delimited(real: str, limit: int = 1 << 24) -> bool:
    """Whether the first non-blank line of a ``.json`` file is a complete JSON object.

    Reads at most ``limit`` bytes per line: a big one-line JSON array must not be loaded whole.
    """
    with open(real, "rb") as fh:
        while True:
            line = fh.readline(limit)
            if not line:
                return False
            if line.strip():
                break
    if len(line) >= limit and not line.endswith(b"\n"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _read_fits(con, target: str, real: str) -> tuple[None, dict]:
    from astropy.io import fits
    from astropy.table import Table
    from astropy.utils.exceptions import AstropyWarning

    with fits.open(real) as hdul:
        hdu = next(
            (h for h in hdul if isinstance(h, fits.BinTableHDU) and int(h.header.get("NAXIS2", 0)) > 0),
            None,
        )
        if hdu is None:
            raise _Skip("no binary table HDU with rows")
        header = hdu.header
        with warnings.catch_warnings():
            # astropy warns about units it cannot parse; we keep the raw TUNIT text anyway.
            warnings.simplefilter("ignore", AstropyWarning)
            table = Table.read(hdu)
        columns: dict[str, dict] = {}
        arrays = []
        for i, name in enumerate(table.colnames, start=1):
            arrays.append(to_arrow(table[name]))
            meta = {}
            for key, card in (("unit", "TUNIT"), ("ucd", "TUCD"), ("description", "TCOMM")):
                value = header.get(f"{card}{i}")
                if isinstance(value, str) and value.strip():
                    meta[key] = value.strip()
            columns[name] = meta
        arrow = pa.Table.from_arrays(arrays, names=list(table.colnames))
    view = "fits_src"
    con.register(view, arrow)
    try:
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)
    return None, columns



_READERS = {
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
    "json": _read_json,
    "fits": _read_fits,
}


class _safe_path:
    """A path DuckDB will read literally: DuckDB expands ``* ? [ ]`` as globs, so a file named
    ``x[1].csv`` would read ``x1.csv``. Such paths are read through a temporary symlink
    (or copy, where symlinks are not allowed) with a plain name."""

    def __init__(self, real: str):
        self.real = real
        self.tmpdir: str | None = None

    def __enter__(self) -> str:
        if not (_GLOB_CHARS & set(self.real)):
            return self.real
        self.tmpdir = tempfile.mkdtemp(prefix="archive-files-")
        suffix = "".join(Path(self.real).suffixes[-2:]) if self.real.lower().endswith(".gz") else Path(self.real).suffix
        link = os.path.join(self.tmpdir, "source" + suffix)
        try:
            os.symlink(self.real, link)
        except OSError:
            shutil.copyfile(self.real, link)
        return link

    def __exit__(self, *exc) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
