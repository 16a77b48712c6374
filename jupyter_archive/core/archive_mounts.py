"""The mount part of the Archive facade: mounting, unmounting and scanning data sources."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from .backends.duckdb import quote_ident, quote_literal
from .catalog import MYDB_ALIAS, SQL_SERVER_KINDS, Mount, Principal, TableInfo, normalise_path
from .errors import ArchiveError
from .mounts import check_spec
from .resolver import tables_in

log = logging.getLogger(__name__)


class MountsMixin:
    """Mounts from configuration, from the /mount API (persisted) and the demo."""

    # -- set-up -------------------------------------------------------------------------------
    def _setup_mounts(self) -> None:
        for spec in self.config.mounts:
            try:
                self.add_mount({**spec, "configured": True})
            except ArchiveError as exc:  # named as the setting it came from, which the server refuses to start with
                raise ArchiveError(exc.code, f"configured mount {spec.get('path')}: {exc.message}", exc.status, details={"setting": "mounts"}) from None
        for spec in self.mount_store.all():
            try:
                self.add_mount(spec)
            except ArchiveError as exc:  # a stored mount whose file went away must not stop the archive
                log.warning("mount %s not restored: %s", spec.get("path"), exc.message)
        if not self.config.mounts and self.config.demo:
            from .demo import ensure_demo

            path = ensure_demo(self.data_dir, rows=self.config.demo_rows)
            self.add_mount(
                {
                    "path": "/demo",
                    "type": "duckdb",
                    "location": str(path),
                    "context": "DEMO",
                    "readOnly": True,
                    "public": True,
                    "description": "The demo archive: SDSS-like photometry (PhotoObj) and spectra (SpecObj)",
                    "configured": True,
                }
            )

    def add_mount(self, spec: dict) -> Mount:
        """Mount a data source from a config dict: path, type, location, context, readOnly, public."""
        check_spec(spec)
        kind = spec.get("type") or spec["kind"]
        location = Path(spec["location"]).expanduser()
        path = spec["path"]
        context = spec.get("context") or normalise_path(path).strip("/").split("/")[-1].upper()
        mount = Mount(
            path=path,
            kind=kind,
            location=location,
            context=context,
            read_only=bool(spec.get("readOnly", True)),
            public=bool(spec.get("public", True)),
            description=spec.get("description", ""),
            schema_name=spec.get("schema", ""),
        )
        if kind in SQL_SERVER_KINDS:
            return self._add_sql_mount(mount, spec)
        self._check_mount_file(mount)
        mount = self.catalog.add_mount(mount)
        self._mount_specs[mount.path.lower()] = dict(spec)
        if kind == "duckdb":
            mount.engine_file = location
        else:
            from .backends.files import sync_cache

            mount.engine_file = self.data_dir / "cache" / f"{mount.alias}.duckdb"
            mount.engine_file.parent.mkdir(parents=True, exist_ok=True)
            sync_cache(location, mount.engine_file)
        if mount.read_only:
            self._mount_tables[mount.context.lower()] = self._scan_database(mount.engine_file, mount.context)
        self._mounts_changed()
        return mount

    def _check_mount_file(self, mount: Mount) -> None:
        """A DuckDB file is one mount's only, when that mount writes it (DuckDB lets one engine
        hold a file read-write, and then no other may open it), and never a user's MyDB."""
        if mount.kind != "duckdb":
            return
        real = mount.location.resolve()
        if real.parent == self.catalog.mydb_dir.resolve():
            raise ArchiveError("permission", f"{mount.location} is a user's MyDB: it cannot be mounted", 403)
        for other in self.catalog.mounts():
            if other.kind == "duckdb" and other.location.resolve() == real and not (other.read_only and mount.read_only):
                raise ArchiveError(
                    "conflict",
                    f"{mount.location} is already mounted at {other.path}; a writable DuckDB mount must be its file's only mount",
                    409,
                    details={"path": other.path},
                )

    def _add_sql_mount(self, mount: Mount, spec: dict) -> Mount:
        """A PostgreSQL server or SQLite file, reached through SQLAlchemy; queries are pushed down."""
        from .backends.sqlalchemy import SqlBackend

        uri = str(spec["location"])
        if mount.kind == "sqlite" and not uri.startswith("sqlite:"):
            uri = "sqlite:///" + str(Path(uri).expanduser().resolve())
        backend = SqlBackend(uri, context=mount.context, read_only=mount.read_only, pool_size=self.config.quick_workers)
        try:
            mount = self.catalog.add_mount(mount)
        except ArchiveError:
            backend.close()
            raise
        self._mount_specs[mount.path.lower()] = dict(spec)
        self.backends[mount.alias] = backend
        self._mount_tables[mount.context.lower()] = backend.tables()
        return mount

    def drop_mount(self, path: str) -> Mount | None:
        """Unmount the mount at ``path`` (engines are rebuilt without it)."""
        mount, rest = self.catalog.mount_at(path)
        if mount is None or rest:
            return None
        self.catalog.remove_mount(mount.context)
        backend = self.backends.pop(mount.alias, None)
        if backend is not None:
            backend.close()
        self._mount_specs.pop(mount.path.lower(), None)
        self._mount_tables.pop(mount.context.lower(), None)
        self._mounts_changed()
        return mount

    def mount_spec(self, path: str) -> dict | None:
        return self._mount_specs.get(normalise_path(path).lower())

    def _scan_database(self, path: Path, context: str) -> dict[str, TableInfo]:
        """Tables, columns and metadata of a read-only database file, read once at mount time."""
        from .backends.metadata import read_info, read_metadata

        # A file an engine still holds (read-write, by a writable mount being replaced) cannot be
        # opened by another instance: read it through that engine.
        held = self.engine_pool.lease_holding(path)
        if held is not None:
            con, alias = held
        else:
            con, alias = duckdb.connect(":memory:"), "src"
            con.execute(f"ATTACH {quote_literal(str(path))} AS src (READ_ONLY)")
        try:
            self._mount_info[context.lower()] = read_info(con, alias)
            return tables_in(con, alias, context, read_metadata(con, alias), exact_rows=True)
        finally:
            con.close()

    def positional_lookup(self, principal: Principal) -> PositionalLookup:
        """What the ADQL planner of one principal's query asks about positions."""
        return PositionalLookup(self, principal)

    def positional_index(self, target, principal: Principal | None = None):
        """The HEALPix index a table declares (``healpix:<table>`` in its database's
        archive_meta.info), for the ADQL planner's cone-search ranges; None when it has none.

        Read-only mounts were read at mount time; MyDB and writable mounts change with every
        upload, so theirs is read now (with ``principal``: whose MyDB)."""
        from .sql import healpix_index_from_info
        from .backends.metadata import read_info

        live = None
        if target.catalog == MYDB_ALIAS and principal is not None and not principal.anonymous:
            live = self.engine(principal, {MYDB_ALIAS})
        for m in self.catalog.mounts():
            if m.alias == target.catalog:
                if m.read_only or m.engine_file is None:
                    return healpix_index_from_info(self._mount_info.get(m.context.lower(), {}), target.name)
                live = self.mount_engine(m)
        if live is None:
            return None
        cur = live.cursor()
        try:
            return healpix_index_from_info(read_info(cur, target.catalog), target.name)
        finally:
            cur.close()


class PositionalLookup:
    """The ADQL planner's questions about positions (``adql.rewrite``'s ``positional_index``):
    a table's HEALPix index (calling it), and for a cross-match the positions of a small
    uploaded table (``points``), whose cones then bound the catalog's index ranges."""

    MAX_POINTS = 5000  # more centres than this: the range filter would be longer than it saves

    def __init__(self, archive, principal: Principal):
        self.archive = archive
        self.principal = principal

    def __call__(self, target):
        return self.archive.positional_index(target, self.principal)

    def points(self, target, ra: str, dec: str) -> list[tuple[float, float]] | None:
        from .tap_uploads import ENGINE_CATALOG, SCHEMA

        if target is None or target.context != SCHEMA:
            return None
        cur = self.archive.engine(self.principal, ()).cursor()  # the tables of an upload are in its memory
        try:
            rows = cur.sql(
                f"SELECT {quote_ident(ra)}::DOUBLE, {quote_ident(dec)}::DOUBLE FROM "
                f"{ENGINE_CATALOG}.{quote_ident(target.schema)}.{quote_ident(target.name)} LIMIT {self.MAX_POINTS + 1}"
            ).fetchall()
        except duckdb.Error:
            return None  # not loaded (a job checked before it runs) or not numeric: no speed-up
        finally:
            cur.close()
        if len(rows) > self.MAX_POINTS:
            return None
        return [(a, b) for a, b in rows if a is not None and b is not None]
