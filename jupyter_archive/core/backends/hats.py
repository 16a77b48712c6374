"""HATS catalogs as archive tables, read in place: the ``hats`` mount type.

A HATS catalog is HEALPix-partitioned Parquet (``dataset/Norder=k/Dir=d/Npix=n.parquet``, or
``Npix=n/`` folders) with its metadata beside it: ``properties`` (or ``hats.properties``),
``partition_info.csv``, ``dataset/_common_metadata`` and ``_metadata``. A mount's location is one
catalog or a folder of them; each object or source catalog is a table named by its catalog name.
Margin catalogs (``hats_cat_type=margin``) are not tables: they are kept beside the catalog they
border, for catalog x catalog work.

Everything a listing shows (columns, row count, size, HEALPix index, column statistics) is read here
once, at mount time, through the ``hats`` package, so no listing reads data. The partition file
list is taken from the catalog's metadata, never from user text; queries read those files with
DuckDB's ``read_parquet`` (see ``execution/partitions.py``). A catalog whose metadata is missing or
unreadable, or whose partition files are not all there, is refused with the reason.
"""

from __future__ import annotations

import bisect
import os
from array import array
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.model import ColumnInfo, TableInfo
from ..errors import ArchiveError
from ..sql import quote_ident, quote_literal

HEALPIX_ORDER = 29  # HATS's spatial index: nested HEALPix at order 29
_GLOB_CHARS = set("*?[]{}")  # DuckDB expands these in file names


@dataclass
class HatsTable:
    """One HATS catalog as a table: where its files are and what its metadata says."""

    name: str
    path: Path
    ra: str
    dec: str
    index_column: str
    rows: int
    columns: list[ColumnInfo]
    orders: list[int]  # per partition, sorted by the partition's first order-29 cell
    starts: list[int]  # first order-29 cell of each partition
    ends: list[int]  # one past its last
    files: list[tuple[str, ...]]  # the Parquet files of each partition
    stamps: list[tuple[tuple[int, int], ...]] = field(default_factory=list)  # each file's (size, mtime_ns) when mounted
    size_bytes: int = 0
    statistics: dict[str, dict] = field(default_factory=dict)  # column -> min_value, max_value, null_count
    margins: dict[str, Path] = field(default_factory=dict)  # margin catalog name -> its path
    # Every row group's first and last index value, in index order (``dataset/_metadata``; empty: unknown)
    group_min: array = field(default_factory=lambda: array("q"))
    group_max: array = field(default_factory=lambda: array("q"))

    @property
    def partitions(self) -> int:
        return len(self.files)

    @property
    def healpix_spec(self) -> str:
        """The archive's HEALPix index spec (``sql.parse_healpix_spec``) of the table."""
        return f"{self.index_column},{HEALPIX_ORDER},0,{self.ra},{self.dec}"

    def info(self, context: str) -> TableInfo:
        return TableInfo(name=self.name, context=context, rows=self.rows, size_bytes=self.size_bytes,
                         description=f"HATS catalog ({self.partitions} partitions)", columns=list(self.columns))  # fmt: skip

    def touched(self, ranges: list[tuple[int, int]] | None) -> list[int]:
        """The partitions (indexes into ``files``) holding any order-29 cell of the inclusive
        ``ranges``; all of them for None."""
        if ranges is None:
            return list(range(self.partitions))
        hit: set[int] = set()
        for lo, hi in ranges:
            # partitions are disjoint and sorted: the first that may hold lo, then on while they start <= hi
            i = max(bisect.bisect_right(self.starts, lo) - 1, 0)
            while i < self.partitions and self.starts[i] <= hi:
                if self.ends[i] > lo:
                    hit.add(i)
                i += 1
        return sorted(hit)

    def coarsen(self, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Sorted inclusive index ``ranges`` with each gap closed that no row group lies in unread: DuckDB skips
        the same row groups (by their index statistics) and plans one ``BETWEEN`` per range, which costs more
        than the rows a gap inside a read row group leaves out (the exact test drops them anyway)."""
        if len(ranges) < 2 or not self.group_min:
            return ranges
        out = [ranges[0]]
        for lo, hi in ranges[1:]:
            if self._gap_unread(out[-1][1] + 1, lo - 1, ranges):
                out.append((lo, hi))
            else:
                out[-1] = (out[-1][0], hi)
        return out

    def _gap_unread(self, a: int, b: int, ranges) -> bool:
        """Whether a row group holding values in ``[a, b]`` meets none of ``ranges`` (so is not read)."""
        i = bisect.bisect_left(self.group_max, a)  # row groups are disjoint and sorted: the first ending at a or after
        while i < len(self.group_min) and self.group_min[i] <= b:
            lo, hi = self.group_min[i], self.group_max[i]
            if not any(x <= hi and y >= lo for x, y in ranges):
                return True
            i += 1  # at most the two row groups at the gap's ends meet a range
        return False

    def check(self, partitions: list[int]) -> None:
        """Refuse to read partitions whose files changed on disk since the catalog was mounted (gone, not a
        file, another size or time): their rows may no longer be what the metadata says. A stat per file:
        microseconds against the read."""
        for i in partitions if self.stamps else ():
            for name, stamp in zip(self.files[i], self.stamps[i]):
                try:
                    st = os.stat(name)
                except OSError as exc:
                    raise _changed(self.name, self.path, name, "cannot be read (permission denied)" if isinstance(exc, PermissionError) else MISSING) from None
                if not stat.S_ISREG(st.st_mode):
                    raise _changed(self.name, self.path, name, MISSING)
                if (st.st_size, st.st_mtime_ns) != stamp:
                    raise _changed(self.name, self.path, name, REWRITTEN)

    def read_sql(self, partitions: list[int]) -> str:
        """DuckDB's read of those partitions' files."""
        return self.read_files_sql([f for i in partitions for f in self.files[i]])

    def read_files_sql(self, files: list[str]) -> str:
        """DuckDB's read of some of the table's files (none at all reads nothing, typed as the table)."""
        if not files:
            cols = ", ".join(f"CAST(NULL AS {c.datatype}) AS {quote_ident(c.name)}" for c in self.columns)
            return f"(SELECT {cols} WHERE FALSE)"
        listed = ", ".join(quote_literal(f) for f in files)
        return f"read_parquet([{listed}], hive_partitioning = false, union_by_name = false)"


# A partition file named (quoted) in an engine's or a reader's message: the catalog's root, and the file under it.
_PARTITION_FILE = re.compile(r"""["']?(?P<root>/[^"'\n]*?)/(?P<file>dataset/Norder=\d+/Dir=\d+/Npix=\d+[^"'\s]*)""")


def changed_on_disk(message: str) -> ArchiveError | None:
    """The clear error of a read that failed on a HATS partition file (a DuckDB, pyarrow or worker message
    naming it): the catalog changed on disk after it was mounted, so its metadata lists files that are
    gone, unreadable or rewritten; None when the message names no partition file. Only the message is read
    (no file is looked at: user SQL can raise any message), and only the catalog's folder and the file's
    path inside it are named, never where the server keeps it."""
    m = _PARTITION_FILE.search(message)
    if m is None:
        return None
    low = message.lower()
    if "permission denied" in low:
        what = "cannot be read (permission denied)"
    elif "no files found" in low or "no such file" in low or "not found" in low or "is a directory" in low:
        what = MISSING + " where the query ran (a Dask worker may not see the catalog's folder)"
    else:
        what = REWRITTEN
    root = Path(m.group("root"))
    return _changed(root.name, root, str(root / m.group("file")), what)


MISSING = "is missing (or is no longer a file)"
REWRITTEN = "is not the file it was (rewritten, truncated or replaced)"


def _changed(catalog: str, root: Path, name: str, what: str) -> ArchiveError:
    inside = os.path.relpath(name, root) if name.startswith(str(root)) else os.path.basename(name)
    return ArchiveError(
        "catalog_changed",
        f"the HATS catalog {catalog!r} changed on disk after it was mounted: its file {inside} {what}; it must be "
        "mounted again (unmounted and mounted, or the archive restarted) before it can be queried",
        409,
    )


def _refuse(where: Path, why: str) -> ArchiveError:
    return ArchiveError("bad_request", f"{where} is not a readable HATS catalog: {why}")


def _is_catalog(path: Path) -> bool:
    return (path / "properties").is_file() or (path / "hats.properties").is_file()


def open_location(location: Path) -> dict[str, HatsTable]:
    """The tables of a HATS location (one catalog, or a folder of catalogs) by lower-case name,
    margins attached to their catalogs; refused with the reason when any catalog is unusable."""
    location = Path(location)
    if not location.is_dir():
        raise ArchiveError("bad_request", f"a hats mount needs a directory; {location} is not one")
    if _GLOB_CHARS & set(str(location.resolve())):
        raise ArchiveError("bad_request", f"a hats mount's path may not contain any of * ? [ ] {{ }}: {location}")
    if _is_catalog(location):
        paths = [location]
    else:
        paths = sorted(p for p in location.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_catalog(p))
        if not paths:
            raise _refuse(location, "no properties file, and no folder in it holds a catalog")
    tables: dict[str, HatsTable] = {}
    margins: list[tuple[str, str, Path]] = []
    for path in paths:
        kind, name, table_or_primary = _open_catalog(path)
        if kind == "margin":
            margins.append((name, table_or_primary, path))
            continue
        if name.lower() in tables:
            raise _refuse(path, f"a second catalog named {name!r} in {location}")
        tables[name.lower()] = table_or_primary
    for name, primary, path in margins:
        owner = tables.get(str(primary or "").rsplit("/", 1)[-1].lower())
        if owner is not None:
            owner.margins[name] = path
    if not tables:
        raise _refuse(location, "it holds margin catalogs only")
    return tables


def _open_catalog(path: Path):
    """``("margin", name, primary catalog name)`` or ``("table", name, HatsTable)``."""
    import hats

    try:
        cat = hats.read_hats(path)
    except Exception as exc:  # hats raises many kinds for unreadable metadata: all refuse the mount
        raise _refuse(path, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable metadata'}") from None
    info = cat.catalog_info
    kind = str(getattr(info.catalog_type, "value", info.catalog_type) or "").lower()
    name = str(info.catalog_name or path.name)
    if kind == "margin":
        return "margin", name, str(getattr(info, "primary_catalog", "") or "")
    if kind not in ("object", "source"):
        raise _refuse(path, f"catalog type {kind or 'unknown'!r} is not a table (object or source catalogs are)")
    if not info.ra_column or not info.dec_column:
        raise _refuse(path, "its properties name no hats_col_ra / hats_col_dec")
    schema = cat.schema
    if schema is None:
        raise _refuse(path, "no dataset/_common_metadata or _metadata to read its columns from")
    index_column = str(getattr(info, "healpix_column", None) or "_healpix_29")
    if index_column not in schema.names:
        raise _refuse(path, f"its columns have no {index_column} (the HEALPix index)")
    columns = _columns(schema)
    suffix = getattr(info, "npix_suffix", ".parquet") or ".parquet"
    from hats.io import paths as hats_paths

    parts = []
    size = 0
    for pixel in cat.get_healpix_pixels():
        where = Path(str(hats_paths.pixel_catalog_file(cat.catalog_base_dir, pixel, npix_suffix=suffix)))
        if where.is_dir():
            files = sorted(str(f) for f in where.iterdir() if f.is_file() and f.name.endswith(".parquet") and not f.name.startswith("."))
        else:
            files = [str(where)] if where.is_file() else []
        if not files:
            raise _refuse(path, f"partition Norder={pixel.order} Npix={pixel.pixel} has no file ({where} is missing)")
        stats = [os.stat(f) for f in files]
        size += sum(st.st_size for st in stats)
        shift = 2 * (HEALPIX_ORDER - pixel.order)
        stamps = tuple((st.st_size, st.st_mtime_ns) for st in stats)
        parts.append((pixel.pixel << shift, (pixel.pixel + 1) << shift, pixel.order, tuple(files), stamps))
    if not parts:
        raise _refuse(path, "its partition_info lists no partition")
    parts.sort()
    statistics, groups = _statistics(cat, schema.names, index_column)
    table = HatsTable(
        name=name, path=path, ra=info.ra_column, dec=info.dec_column, index_column=index_column,
        rows=int(info.total_rows) if info.total_rows is not None else None,
        columns=columns, starts=[p[0] for p in parts], ends=[p[1] for p in parts], orders=[p[2] for p in parts],
        files=[p[3] for p in parts], stamps=[p[4] for p in parts], size_bytes=size, statistics=statistics,
        group_min=array("q", [g[0] for g in groups]), group_max=array("q", [g[1] for g in groups]),
    )  # fmt: skip
    for column in table.columns:
        column.statistics = table.statistics.get(column.name)
    return "table", name, table


def _columns(schema) -> list[ColumnInfo]:
    """The columns as the engine types them (DuckDB reads the Arrow schema), units and UCDs from field metadata."""
    import duckdb

    from ..formats.base import META_KEYS

    con = duckdb.connect(":memory:")
    try:
        con.register("_schema", schema.empty_table())
        types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE _schema)").fetchall())
    finally:
        con.close()
    out = []
    for f in schema:
        fmd = f.metadata or {}
        meta = {k: fmd[k.encode()].decode("utf-8", "replace") for k in META_KEYS if fmd.get(k.encode())}
        out.append(ColumnInfo(f.name, types[f.name], **meta))
    return out


def _statistics(cat, names: list[str], index: str) -> tuple[dict[str, dict], list[tuple[int, int]]]:
    """Per-column ``min_value``, ``max_value`` (in the column's own type) and ``null_count`` over every row
    group the catalog's ``dataset/_metadata`` lists: the Parquet footers' statistics, so no data file is read.
    A column is left out where a row group has no exact min and max (a null count where one lacks it); a
    catalog without ``_metadata`` falls back on the hats package's own aggregate (numbers as floats).
    And each row group's (min, max) of the ``index`` column, sorted ([] unless all are known and disjoint)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(Path(str(cat.catalog_base_dir)) / "dataset" / "_metadata")
    except Exception:  # noqa: BLE001 - optional metadata: a catalog without it is still a catalog
        return _hats_statistics(cat), []
    out: dict[str, dict] = {n: {"min_value": None, "max_value": None, "null_count": 0} for n in names}
    groups: list[tuple[int, int]] | None = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            name, st = column.path_in_schema, column.statistics
            if (now := out.get(name)) is None:
                continue  # a nested field, or a column gone from the schema
            if st is None or not st.has_min_max or not getattr(st, "is_min_value_exact", True) or not getattr(st, "is_max_value_exact", True):
                now["min_value"] = now["max_value"] = _GONE
            elif now["min_value"] is not _GONE:
                now["min_value"] = st.min if now["min_value"] is None else min(now["min_value"], st.min)
                now["max_value"] = st.max if now["max_value"] is None else max(now["max_value"], st.max)
            if now.get("null_count") is not None:
                now["null_count"] = now["null_count"] + st.null_count if st is not None and st.has_null_count else None
            if name == index and groups is not None:
                if st is not None and st.has_min_max and now["min_value"] is not _GONE:
                    groups.append((int(st.min), int(st.max)))
                else:
                    groups = None
    groups = sorted(groups or [])
    if any(groups[i][1] >= groups[i + 1][0] for i in range(len(groups) - 1)):
        groups = []  # overlapping row groups (rows not in index order): no gap can be told unread
    stats = {}
    for name, now in out.items():
        kept = {k: _plain(v) for k, v in now.items() if v is not None and v is not _GONE}
        if meta.num_row_groups and kept:
            stats[name] = kept
    return stats, groups


_GONE = object()  # a column some row group has no statistics for


def _plain(value):
    """A statistic as JSON can carry it (dates and times as ISO text)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _hats_statistics(cat) -> dict[str, dict]:
    try:
        frame = cat.aggregate_column_statistics(warn_on_modified_catalog=False)
    except Exception:  # noqa: BLE001 - optional metadata: a catalog without it is still a catalog
        return {}
    if frame is None or len(frame) == 0:
        return {}
    return {str(name): {k: _plain(row[k].item()) for k in ("min_value", "max_value", "null_count") if k in row} for name, row in frame.iterrows()}
