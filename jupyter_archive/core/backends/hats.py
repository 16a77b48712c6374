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
    size_bytes: int = 0
    statistics: dict[str, dict] = field(default_factory=dict)  # column -> min_value, max_value, null_count
    margins: dict[str, Path] = field(default_factory=dict)  # margin catalog name -> its path

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
        size += sum(os.path.getsize(f) for f in files)
        shift = 2 * (HEALPIX_ORDER - pixel.order)
        parts.append((pixel.pixel << shift, (pixel.pixel + 1) << shift, pixel.order, tuple(files)))
    if not parts:
        raise _refuse(path, "its partition_info lists no partition")
    parts.sort()
    table = HatsTable(
        name=name, path=path, ra=info.ra_column, dec=info.dec_column, index_column=index_column,
        rows=int(info.total_rows) if info.total_rows is not None else None,
        columns=columns, starts=[p[0] for p in parts], ends=[p[1] for p in parts], orders=[p[2] for p in parts],
        files=[p[3] for p in parts], size_bytes=size, statistics=_statistics(cat),
    )  # fmt: skip
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


def _statistics(cat) -> dict[str, dict]:
    """Per-column min, max and null count from the catalog's statistics files ({} when it has none)."""
    try:
        frame = cat.aggregate_column_statistics(warn_on_modified_catalog=False)
    except Exception:  # optional metadata: a catalog without it is still a catalog
        return {}
    if frame is None or len(frame) == 0:
        return {}
    return {str(name): {k: row[k] for k in ("min_value", "max_value", "null_count") if k in row} for name, row in frame.iterrows()}
