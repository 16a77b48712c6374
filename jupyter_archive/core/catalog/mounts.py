"""The Mounts service: configured mounts at start, run-time ones (Quasar's /mount API), their checks.

``Mounts`` (``archive.mounts``) puts data sources into the namespace and takes them out: the
configured ones (and the demo) at start, those made at run time (``put``/``delete``, kept in
``MountStore``), scanning a read-only database's tables once, and the SQL servers reached
through SQLAlchemy. It tells the namespace (its version) and the engine pool when mounts change.

A mount configuration is a dict ``{path, type, location, context, readOnly, public,
description}``. Quasar clients send the one-key form ``{"duckdb": {"connectionUri": ...}}``;
both are accepted. Mounts made here are kept in the archive state and come back after a
restart; mounts from ``ArchiveApp.mounts`` are configuration and cannot be removed here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit


from ..errors import ArchiveError
from ..sql import quote_literal
from .model import SQL_SERVER_KINDS, ColumnInfo, Mount, Principal, TableInfo, normalise_path
from .namespace import tables_in

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..execution.pool import EnginePool
    from .namespace import Namespace

log = logging.getLogger(__name__)

KINDS = ("files", "duckdb", "sqlite", "postgresql", "hats")
FILE_KINDS = ("files", "duckdb", "sqlite", "hats")
DIRECTORY_KINDS = ("files", "hats")  # located at a directory; the others at a file or a URL
_CONTEXT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def parse_spec(path: str, body: dict) -> dict:
    """A mount configuration from a request body (Quasar one-key form or our flat form)."""
    if not isinstance(body, dict) or not body:
        raise ArchiveError("bad_request", "Invalid mount configuration: expected a JSON object such as "
                           '{"duckdb": {"connectionUri": "/data/survey.duckdb"}}')
    if len(body) == 1 and next(iter(body)) in KINDS:
        kind, inner = next(iter(body.items()))
        if not isinstance(inner, dict):
            raise ArchiveError("bad_request", f"Invalid mount configuration: {kind} needs an object with connectionUri")
        location = inner.get("connectionUri") or inner.get("location")
        extra = inner
    else:
        kind = body.get("type") or body.get("kind")
        location = body.get("location") or body.get("connectionUri")
        extra = body
    if kind not in KINDS:
        raise ArchiveError("bad_request", f"Invalid mount configuration: unknown mount type {kind!r}; known: {', '.join(KINDS)}")
    if not isinstance(location, str) or not location.strip():
        raise ArchiveError("bad_request", f"Invalid mount configuration: a {kind} mount needs a connectionUri")
    context = extra.get("context") or path.strip("/").split("/")[-1].upper()
    if not _CONTEXT.match(context or ""):
        raise ArchiveError("bad_request", f"Invalid mount configuration: context name {context!r} must be a letter then letters, digits or _")
    read_only = extra.get("readOnly", True)
    if not isinstance(read_only, bool):
        raise ArchiveError("bad_request", "Invalid mount configuration: readOnly must be true or false")
    if kind in DIRECTORY_KINDS and not read_only:
        raise ArchiveError("bad_request", f"Invalid mount configuration: a {kind} mount is read-only (its tables are files)")
    return {
        "path": path,
        "type": kind,
        "location": location.strip(),
        "context": context,
        "readOnly": read_only,
        "public": bool(extra.get("public", True)),
        "description": str(extra.get("description") or ""),
    }


def local_location(spec: dict) -> None:
    """A file kind's location as a path on this machine: a ``file://`` URL becomes its path; any other URL
    (``s3://``, ``http://``, ``memory://``, ...) is refused, saying what works. The archive's engines read
    the files themselves (DuckDB, with no network extension here), and a Dask cluster's workers read the
    same path, so a catalog elsewhere is mounted through a shared filesystem."""
    kind, loc = spec.get("type") or spec.get("kind"), spec["location"].strip()
    if kind not in FILE_KINDS or loc.startswith("sqlite:") or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", loc):
        return
    parts = urlsplit(loc)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        spec["location"] = unquote(parts.path)
        return
    raise ArchiveError(
        "bad_request",
        f"a {kind} mount's location is a folder or file on this server: a path or a file:// URL (on a shared filesystem, "
        f"at the same path, when a Dask cluster's workers read it); {parts.scheme}:// locations are not supported",
    )


def check_spec(spec) -> None:
    """Refuse a mount configuration (configured, stored or made at run time) that cannot be
    mounted, before anything is made: its keys, their types, and that a file location exists."""
    if not isinstance(spec, dict):
        raise ArchiveError("bad_request", f"a mount is an object such as {{\"path\": \"/sdss\", \"type\": \"duckdb\", \"location\": \"/data/sdss.duckdb\"}}, not {spec!r}")
    for key in ("path", "location"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise ArchiveError("bad_request", f"mount configuration lacks {key!r} (a non-empty string)")
    kind = spec.get("type") or spec.get("kind")
    if kind not in KINDS:
        raise ArchiveError("bad_request", f"unknown mount type {kind!r} for {spec['path']}; known: {', '.join(KINDS)}")
    for key in ("readOnly", "public"):
        if not isinstance(spec.get(key, True), bool):
            raise ArchiveError("bad_request", f"mount {spec['path']}: {key} must be true or false, not {spec[key]!r}")
    for key in ("context", "schema", "description", "images"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ArchiveError("bad_request", f"mount {spec['path']}: {key} must be a string, not {spec[key]!r}")
    local_location(spec)
    if kind not in FILE_KINDS or spec["location"].startswith("sqlite:"):
        return  # a server's URL: reached when mounted
    location = Path(spec["location"]).expanduser()
    if not location.exists():
        raise ArchiveError("bad_request", f"mount location {location} does not exist")
    if kind in DIRECTORY_KINDS and not location.is_dir():
        raise ArchiveError("bad_request", f"a {kind} mount needs a directory; {location} is not one")
    if kind in DIRECTORY_KINDS and not spec.get("readOnly", True):
        raise ArchiveError("bad_request", f"mount {spec['path']}: a {kind} mount is read-only (its tables are files)")
    if kind not in DIRECTORY_KINDS and not location.is_file():
        raise ArchiveError("bad_request", f"a {kind} mount needs a database file; {location} is not one")


def check_location(spec: dict, roots: list[str]) -> None:
    """Refuse a file mount outside the allowed roots (symlinks resolved first)."""
    if spec["type"] not in FILE_KINDS:
        return
    local_location(spec)
    loc = spec["location"]
    if loc.startswith("sqlite:///"):
        loc = loc[len("sqlite:///") - 1 :]
    if not os.path.isabs(loc):
        raise ArchiveError("bad_request", f"Invalid mount configuration: {spec['type']} location must be an absolute path")
    real = Path(loc).resolve()
    allowed = [Path(r).resolve() for r in roots]
    if not any(real == r or r in real.parents for r in allowed):
        raise ArchiveError(
            "permission",
            f"{loc} is outside the directories mounts may use ({', '.join(str(r) for r in allowed) or 'none configured'}); "
            "an admin can allow more with ArchiveApp.mount_roots",
            403,
        )
    if not real.exists():
        raise ArchiveError("bad_request", f"Invalid mount configuration: {loc} does not exist")
    if spec["type"] in DIRECTORY_KINDS and not real.is_dir():
        raise ArchiveError("bad_request", f"Invalid mount configuration: a {spec['type']} mount needs a directory, {loc} is not one")
    if spec["type"] not in DIRECTORY_KINDS and not real.is_file():
        raise ArchiveError("bad_request", f"Invalid mount configuration: {loc} is not a database file")
    spec["location"] = str(real)


def quasar_view(spec: dict, *, location: bool = True) -> dict:
    """A mount configuration as Quasar's GET /mount answers it (passwords masked; without ``location``, no
    ``connectionUri``: where its files are)."""
    uri = spec["location"]
    if spec["type"] == "postgresql":
        parts = urlsplit(uri)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":****@")
            uri = urlunsplit(parts._replace(netloc=netloc))
    view = {"connectionUri": uri} if location else {}
    return {spec["type"]: {**view, "readOnly": spec.get("readOnly", True), "context": spec.get("context"), "public": spec.get("public", True)}}


class MountStore:
    """Run-time mounts in SQLite (``mounts.sqlite`` in the data dir)."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS mounts (path TEXT PRIMARY KEY, spec TEXT NOT NULL)")

    def all(self) -> list[dict]:
        with self._lock:
            return [json.loads(r[0]) for r in self._db.execute("SELECT spec FROM mounts ORDER BY path")]

    def put(self, spec: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO mounts(path, spec) VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET spec = excluded.spec",
                (spec["path"].lower(), json.dumps(spec)),
            )

    def remove(self, path: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM mounts WHERE path = ?", (path.lower(),))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Mounts:
    """Mounts from configuration, from the /mount API (persisted) and the demo."""

    def __init__(self, config, data_dir: Path, namespace: Namespace, engines: EnginePool):
        self.config = config
        self.data_dir = Path(data_dir)
        self._namespace = namespace
        self._engines = engines
        self._specs: dict[str, dict] = {}  # path lower -> the configuration it was mounted with
        self.store = MountStore(self.data_dir / "mounts.sqlite")
        self._loading = False  # at start, files are described apart: the server at rest holds no DuckDB

    def load(self) -> None:
        """Mount what the configuration names, what was mounted at run time before, or the demo."""
        self._loading = True
        try:
            self._load()
        finally:
            self._loading = False

    def _load(self) -> None:
        for spec in self.config.mounts:
            try:
                self.add({**spec, "configured": True})
            except ArchiveError as exc:  # named as the setting it came from, which the server refuses to start with
                raise ArchiveError(exc.code, f"configured mount {spec.get('path')}: {exc.message}", exc.status, details={"setting": "mounts"}) from None
        for spec in self.store.all():
            try:
                self.add(spec)
            except ArchiveError as exc:  # a stored mount whose file went away must not stop the archive
                log.warning("mount %s not restored: %s", spec.get("path"), exc.message)
        if not self.config.mounts and self.config.demo:
            from ..demo import ensure_demo_apart

            path = ensure_demo_apart(self.data_dir, rows=self.config.demo_rows, then=f"{__name__}:describe_apart")
            self.add(
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
        if self.config.hats_demo_rows:
            from ..demo_hats import ensure_hats_demo_apart

            root = ensure_hats_demo_apart(self.data_dir, self.config.hats_demo_rows)
            description = "The HATS demo: a seeded sky of stars, partitioned by HEALPix (HATS), read in place"
            self.add({"path": "/sky", "type": "hats", "location": str(root), "context": "SKY", "description": description, "configured": True})

    def close(self) -> None:
        self.store.close()
        for backend in self._namespace.backends.values():
            backend.close()

    # -- mounting -------------------------------------------------------------------------------
    def add(self, spec: dict) -> Mount:
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
            owner=str(spec.get("owner") or ""),
        )
        if kind in SQL_SERVER_KINDS:
            return self._add_sql_mount(mount, spec)
        if kind == "hats":
            return self._add_hats_mount(mount, spec)
        self._check_mount_file(mount)
        mount = self._namespace.add_mount(mount)
        self._specs[mount.path.lower()] = dict(spec)
        if kind == "duckdb":
            mount.engine_file = location
        else:
            from ..backends.files import sync_cache

            mount.engine_file = self.data_dir / "cache" / f"{mount.alias}.duckdb"
            mount.engine_file.parent.mkdir(parents=True, exist_ok=True)
            sync_cache(location, mount.engine_file)
        if mount.read_only:
            self._namespace.mount_tables[mount.context.lower()] = self._scan_database(mount.engine_file, mount.context)
        self._changed()
        return mount

    def _check_mount_file(self, mount: Mount) -> None:
        """A DuckDB file is one mount's only, when that mount writes it (DuckDB lets one engine
        hold a file read-write, and then no other may open it), and never a user's MyDB."""
        if mount.kind != "duckdb":
            return
        real = mount.location.resolve()
        if real.parent == self._namespace.mydb_dir.resolve():
            raise ArchiveError("permission", f"{mount.location} is a user's MyDB: it cannot be mounted", 403)
        for other in self._namespace.mounts():
            if other.kind == "duckdb" and other.location.resolve() == real and not (other.read_only and mount.read_only):
                raise ArchiveError(
                    "conflict",
                    f"{mount.location} is already mounted at {other.path}; a writable DuckDB mount must be its file's only mount",
                    409,
                    details={"path": other.path},
                )

    def _add_sql_mount(self, mount: Mount, spec: dict) -> Mount:
        """A PostgreSQL server or SQLite file, reached through SQLAlchemy; queries are pushed down."""
        from ..backends.sqlalchemy import SqlBackend

        uri = str(spec["location"])
        if mount.kind == "sqlite" and not uri.startswith("sqlite:"):
            uri = "sqlite:///" + str(Path(uri).expanduser().resolve())
        backend = SqlBackend(uri, context=mount.context, read_only=mount.read_only, pool_size=self.config.quick_workers)
        try:
            mount = self._namespace.add_mount(mount)
        except ArchiveError:
            backend.close()
            raise
        self._specs[mount.path.lower()] = dict(spec)
        self._namespace.backends[mount.alias] = backend
        self._namespace.mount_tables[mount.context.lower()] = backend.tables()
        self._namespace.version += 1  # compiled queries name the mounts they saw
        return mount

    def _add_hats_mount(self, mount: Mount, spec: dict | None) -> Mount:
        """HATS catalogs read in place: their metadata read now (listings never read data); queries
        read the partition files the planner picks (``execution/partitions.py``). ``spec`` None: a mounted one read again."""
        from ..backends.hats import open_location

        tables = open_location(mount.location)  # refuses a malformed or partial catalog before anything changes
        if spec is not None:
            mount = self._namespace.add_mount(mount)
            self._specs[mount.path.lower()] = dict(spec)
        self._namespace.hats[mount.alias] = tables
        self._namespace.mount_tables[mount.context.lower()] = {k: t.info(mount.context) for k, t in tables.items()}
        self._namespace.mount_info[mount.context.lower()] = {f"healpix:{t.name}": t.healpix_spec for t in tables.values()}
        self._changed()  # engines may now read its files (their allowed directories)
        return mount

    def drop(self, path: str) -> Mount | None:
        """Unmount the mount at ``path`` (engines are rebuilt without it)."""
        mount, rest = self._namespace.mount_at(path)
        if mount is None or rest:
            return None
        self._namespace.remove_mount(mount.context)
        backend = self._namespace.backends.pop(mount.alias, None)
        if backend is not None:
            backend.close()
        self._namespace.hats.pop(mount.alias, None)
        self._specs.pop(mount.path.lower(), None)
        self._changed()
        return mount

    def spec(self, path: str) -> dict | None:
        """The configuration the mount at ``path`` was made with (None: no mount there)."""
        return self._specs.get(normalise_path(path).lower())

    def _changed(self) -> None:
        """Mounts came or went: compiled queries and engines follow (engines in use finish first)."""
        self._namespace.version += 1
        self._engines.refresh()

    def _scan_database(self, path: Path, context: str) -> dict[str, TableInfo]:
        """Tables, columns and metadata of a read-only database file, read once at mount time."""
        found = describe_database(path, context, self.data_dir, lambda: self._engines.lease_holding(path), apart=self._loading)
        self._namespace.mount_info[context.lower()] = found["info"]
        return {t["name"].lower(): TableInfo(**{**t, "columns": [ColumnInfo(**c) for c in t["columns"]]}) for t in found["tables"]}

    # -- the /mount API -------------------------------------------------------------------------
    def put(self, principal: Principal, path: str, body: dict) -> str:
        """Create or replace the run-time mount at ``path`` (admins only); ``"added"`` or ``"updated"``."""
        if not principal.admin:
            raise ArchiveError("permission", "mounting is for the archive's admins", 403)
        path = normalise_path(path)
        low = path.lower()
        if low == "/" or low == "/mydb" or low.startswith("/mydb/"):
            raise ArchiveError("conflict", f"Unable to mount at path: {path} is reserved", 409, details={"path": path})
        spec = parse_spec(path, body)
        check_location(spec, self.config.mount_roots)
        existing = self.spec(path)
        if existing and existing.get("configured"):
            raise ArchiveError(
                "conflict", f"the mount at {path} comes from ArchiveApp.mounts; change it in the configuration", 409, details={"path": path}
            )
        for m in self._namespace.mounts():
            other = m.path.lower()
            if other != low and (other.startswith(low + "/") or low.startswith(other + "/")):
                raise ArchiveError(
                    "conflict", f"Unable to mount at path: {path} would nest with the mount at {m.path}", 409, details={"path": path}
                )
            if other != low and m.context.lower() == spec["context"].lower():
                raise ArchiveError("conflict", f"context {spec['context']} is already the mount at {m.path}", 409)
        if existing:
            self.drop(path)
        try:
            self.add(spec)
        except ArchiveError:
            if existing:
                self.add(existing)
            raise
        self.store.put(spec)
        return "updated" if existing else "added"

    def replace_owned(self, spec: dict) -> Mount:
        """Mount (again) a user's own mount (``spec["owner"]``: a HATS import's), stored so it survives a restart."""
        other = self._namespace.mount(spec["context"])
        if other is not None and other.owner != spec["owner"]:
            raise ArchiveError("conflict", f"context {spec['context']} is already the mount at {other.path}", 409)
        if other is not None and self.spec(spec["path"]) == spec and other.kind == "hats":
            return self._add_hats_mount(other, None)  # read again, swapped in whole: its other catalogs never go missing
        if self.spec(spec["path"]) is not None:
            self.drop(spec["path"])
        mount = self.add(spec)
        self.store.put(spec)
        return mount

    def delete(self, principal: Principal, path: str) -> bool:
        """Remove the run-time mount at ``path`` (admins only); False when there was none."""
        if not principal.admin:
            raise ArchiveError("permission", "unmounting is for the archive's admins", 403)
        path = normalise_path(path)
        existing = self.spec(path)
        if existing is None:
            return False
        if existing.get("configured"):
            raise ArchiveError(
                "conflict", f"the mount at {path} comes from ArchiveApp.mounts; remove it from the configuration", 409, details={"path": path}
            )
        self.drop(path)
        self.store.remove(path)
        return True


def describe_database(path: Path, context: str, data_dir: Path, holding=lambda: None, apart: bool = True) -> dict:
    """The tables (as dicts of ``TableInfo``) and info of a read-only database file mounted as ``context``,
    kept while the file is unchanged (``metadata.described``), so a server start opens no DuckDB (about 25 MB
    at rest). ``holding()``: the ``(connection, alias)`` of an engine that holds the file, if one does.
    ``apart``: a description not kept yet is made in a child process (``metadata.call_apart``) unless an
    engine holds the file, so the server does not keep DuckDB loaded for it either."""
    from dataclasses import asdict, fields

    from ..backends.metadata import call_apart, described, kept_description, read_info, read_metadata

    # Beside a file of the data dir (the demo), so a copy of its folder comes with it; the others' in the cache,
    # keyed by their path too (another file, read anew).
    own = path.resolve().is_relative_to(Path(data_dir).resolve())
    cache = path.with_name(f".{path.name}.tables.json") if own else Path(data_dir) / "cache" / "scans" / f"{context.lower()}.json"
    layout = [[f.name for f in fields(c)] for c in (TableInfo, ColumnInfo)] + ([] if own else [str(path.resolve())])
    if (kept := kept_description(path, cache, layout)) is not None:
        return kept
    # A file an engine still holds (read-write, by a writable mount being replaced) cannot be
    # opened by another instance: read it through that engine.
    held = holding()
    if held is None and apart:
        try:
            call_apart(f"{__name__}:describe_apart", str(path), str(data_dir), context)
        except ValueError as exc:  # described here instead, where the error (if any) surfaces as for every mount
            log.debug("describing %s apart failed: %s", path, exc)

    def scan() -> dict:
        import duckdb

        if held is not None:
            con, alias = held
        else:
            con, alias = duckdb.connect(":memory:"), "src"
            con.execute(f"ATTACH {quote_literal(str(path))} AS src (READ_ONLY)")
        try:
            tables = tables_in(con, alias, context, read_metadata(con, alias), exact_rows=True)
            return {"info": read_info(con, alias), "tables": [asdict(t) for t in tables.values()]}
        finally:
            con.close()

    try:
        return described(path, cache, scan, layout=layout)
    finally:
        if held is not None:
            held[0].close()  # scan closed it, or another process kept the description first


def describe_apart(path: str | Path, data_dir: str | Path, context: str = "DEMO") -> None:
    """What :func:`describe_database` runs in its child process, and the child that builds a demo
    (``demo.ensure_demo_apart``): keeps the description the server's start will read."""
    describe_database(Path(path), context, Path(data_dir), apart=False)
