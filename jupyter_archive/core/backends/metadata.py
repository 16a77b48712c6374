"""The metadata convention of the DuckDB files the archive mounts, and how such files are written.

A database file may hold a schema ``archive_meta`` with three tables::

    tables(table_name VARCHAR PRIMARY KEY, description VARCHAR)
    columns(table_name VARCHAR, column_name VARCHAR, unit VARCHAR, ucd VARCHAR,
            description VARCHAR, utype VARCHAR, xtype VARCHAR,
            PRIMARY KEY (table_name, column_name))
    info(key VARCHAR PRIMARY KEY, value VARCHAR)

``table_name`` is the name of a table in schema ``main`` of the same file. ``info`` holds
free-form facts about the file (which generator wrote it, from what). The archive hides
``archive_meta`` from table listings; its content surfaces as table and column metadata.

Also here: :func:`atomic_database`, the one way the archive writes such a file (build a
temporary file beside it, then rename it into place), used by the demo and the file cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path


from ..formats.base import META_KEYS

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

META_SCHEMA = "archive_meta"
CACHE_VERSION = 1  # of what :func:`described` keeps: a new layout of the descriptions bumps it

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {META_SCHEMA};
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.tables(
    table_name VARCHAR PRIMARY KEY,
    description VARCHAR);
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.columns(
    table_name VARCHAR,
    column_name VARCHAR,
    unit VARCHAR,
    ucd VARCHAR,
    description VARCHAR,
    utype VARCHAR,
    xtype VARCHAR,
    PRIMARY KEY (table_name, column_name));
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.info(
    key VARCHAR PRIMARY KEY,
    value VARCHAR);
"""


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB quoted identifier (safe for any string)."""
    return '"' + name.replace('"', '""') + '"'


def is_hidden_schema(schema_name: str) -> bool:
    """Whether table listings must leave out this schema (the metadata lives there)."""
    return schema_name.lower() == META_SCHEMA


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``archive_meta`` and its tables in the connection's default database if missing."""
    con.execute(_DDL)


def write_metadata(
    con: duckdb.DuckDBPyConnection,
    table_name: str,
    description: str | None = None,
    columns: Mapping[str, Mapping[str, str | None]] | None = None,
) -> None:
    """Record the description and column metadata of ``main.<table_name>``.

    ``columns`` maps a column name to ``{"unit": ..., "ucd": ..., "description": ...}``
    (also ``utype``, ``xtype``; missing or ``None`` values are stored as NULL). This replaces
    whatever was recorded for that table before.
    """
    ensure_schema(con)
    rows = []
    for column, meta in (columns or {}).items():
        unknown = set(meta) - set(META_KEYS)
        if unknown:
            raise ValueError(f"unknown column metadata key(s) {sorted(unknown)} for {table_name}.{column}")
        rows.append([table_name, column, *(_text(meta.get(k)) for k in META_KEYS)])
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"INSERT OR REPLACE INTO {META_SCHEMA}.tables VALUES (?, ?)", [table_name, _text(description)]
        )
        con.execute(f"DELETE FROM {META_SCHEMA}.columns WHERE table_name = ?", [table_name])
        if rows:
            con.executemany(
                f"INSERT INTO {META_SCHEMA}.columns (table_name, column_name, {', '.join(META_KEYS)}) "
                f"VALUES ({', '.join('?' * (2 + len(META_KEYS)))})",
                rows,
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def read_metadata(con: duckdb.DuckDBPyConnection, catalog_alias: str | None = None) -> dict[str, dict]:
    """All table metadata of a database: ``{table_name: {"description": str | None, "columns": {...}}}``.

    ``catalog_alias`` names an ATTACHed database (``None``: the connection's current one).
    Each ``columns`` value is ``{column_name: {key: value}}`` with only the non-empty keys of
    :data:`~jupyter_archive.core.formats.base.META_KEYS`. Returns ``{}`` when there is no metadata.
    """
    catalog = catalog_alias or _current_catalog(con)
    present = _meta_tables(con, catalog)
    prefix = f"{quote_ident(catalog)}.{META_SCHEMA}"
    out: dict[str, dict] = {}
    if "tables" in present:
        for table_name, description in con.execute(f"SELECT table_name, description FROM {prefix}.tables").fetchall():
            out[table_name] = {"description": description, "columns": {}}
    if "columns" in present:
        rows = con.execute(
            f"SELECT table_name, column_name, {', '.join(META_KEYS)} FROM {prefix}.columns"
        ).fetchall()
        for table_name, column_name, *values in rows:
            entry = out.setdefault(table_name, {"description": None, "columns": {}})
            entry["columns"][column_name] = {k: v for k, v in zip(META_KEYS, values) if v}
    return out


def set_info(con: duckdb.DuckDBPyConnection, key: str, value: object) -> None:
    """Store ``info[key] = str(value)`` in the connection's default database."""
    ensure_schema(con)
    con.execute(f"INSERT OR REPLACE INTO {META_SCHEMA}.info VALUES (?, ?)", [key, _text(value)])


def get_info(
    con: duckdb.DuckDBPyConnection, key: str, catalog_alias: str | None = None, default: str | None = None
) -> str | None:
    """``info[key]`` of a database (``catalog_alias`` as in :func:`read_metadata`), else ``default``."""
    return read_info(con, catalog_alias).get(key, default)


def read_info(con: duckdb.DuckDBPyConnection, catalog_alias: str | None = None) -> dict[str, str]:
    """The whole ``info`` table of a database as a dict (``{}`` when absent)."""
    catalog = catalog_alias or _current_catalog(con)
    if "info" not in _meta_tables(con, catalog):
        return {}
    rows = con.execute(f"SELECT key, value FROM {quote_ident(catalog)}.{META_SCHEMA}.info").fetchall()
    return {k: v for k, v in rows}


@contextlib.contextmanager
def open_read_only(path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A private in-memory connection with the database file ``path`` attached read-only.

    Yields ``(connection, alias)``. Attaching (rather than ``duckdb.connect(path)``) avoids
    DuckDB's per-process instance cache, which refuses a second open with other options.
    """
    import duckdb
    con = duckdb.connect(":memory:")
    alias = "db_" + uuid.uuid4().hex[:12]
    try:
        con.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(path)])
        yield con, alias
    finally:
        con.close()


def _key(path: Path, layout: object) -> list:
    key = [CACHE_VERSION, layout]  # not the path: a copy of a folder (made with its times) keeps what was kept in it
    for f in (path, path.with_name(path.name + ".wal")):  # a write-ahead log not yet checkpointed is content too
        st = f.stat() if f == path or f.exists() else None
        key += [st.st_size, st.st_mtime_ns] if st else [None, None]
    return key


def kept_description(path: Path, cache: Path, layout: object = None) -> dict | None:
    """What :func:`described` kept in ``cache`` for ``path`` as it is now, or None."""
    try:
        kept = json.loads(cache.read_text())
        if kept.get("key") == _key(path, layout):
            return kept["description"]
    except (OSError, ValueError, AttributeError):
        pass  # absent, unreadable or of another layout
    return None


def described(path: Path, cache: Path, describe: Callable[[], dict], layout: object = None) -> dict:
    """What ``describe()`` says of the database file ``path`` (a JSON-able dict), kept in the file
    ``cache`` while ``path`` is unchanged (same size and modification time) and the description's
    ``layout`` (JSON-able, e.g. the field names it holds) is the same.

    Why: a server reads its read-only databases' tables and facts at every start; opening DuckDB
    for that costs about 25 MB held at rest, and the answer only changes with the file.
    """
    kept = kept_description(path, cache, layout)
    if kept is not None:
        return kept
    key = _key(path, layout)
    description = describe()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps({"key": key, "description": description}))
        os.replace(tmp, cache)
    except (OSError, TypeError, ValueError) as exc:  # a read-only place, or not JSON-able: described again next time
        log.debug("cannot keep the description of %s in %s: %s", path, cache, exc)
    return description


def call_apart(target: str, *args: str) -> None:
    """Call ``target`` (``"module:function"`` of this package) with ``args`` (strings) in a child
    Python process: what it loads (DuckDB, a generator's arrays; tens of MB) is not kept by the
    server afterwards. What the child makes, it leaves in files. ValueError with the child's last
    line of error when it fails."""
    import subprocess
    import sys

    code = "import sys, importlib; m, _, f = sys.argv[1].partition(':'); getattr(importlib.import_module(m), f)(*sys.argv[2:])"
    package_root = str(Path(__file__).parents[3])  # the child imports this very package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", code, target, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise ValueError((done.stderr.strip().splitlines() or ["no message"])[-1])


def read_info_of(path: Path) -> dict[str, str]:
    """The ``archive_meta.info`` of a database file the archive wrote (the demo), kept beside it
    (:func:`described`): a server reads it at every start to see whether the file is current."""

    def describe() -> dict:
        with open_read_only(path) as (con, alias):
            return read_info(con, alias)

    return described(path, _info_cache(path), describe)


def info_kept(path: Path) -> bool:
    """Whether :func:`read_info_of` answers for ``path`` without opening it."""
    return path.exists() and kept_description(path, _info_cache(path)) is not None


def _info_cache(path: Path) -> Path:
    return path.with_name(f".{path.name}.info.json")


@contextlib.contextmanager
def atomic_database(path: Path) -> Iterator[Path]:
    """Build a DuckDB file at ``path`` so readers only ever see a complete file.

    Yields a fresh temporary path in the same directory (so the final rename stays on one
    filesystem). The caller builds and closes its database there; on a clean exit the file
    is moved over ``path`` with :func:`os.replace`, on an error it is deleted. Builders that
    race each other simply replace in turn: each rename installs a complete file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        # A stale WAL beside the old file would be replayed onto the new one; ours was checkpointed.
        with contextlib.suppress(FileNotFoundError):
            os.remove(str(path) + ".wal")
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Serialise builders of ``path`` across processes (a lock file beside it).

    Only an economy — it keeps two processes from doing the same expensive build at once;
    correctness comes from :func:`atomic_database`. Without ``fcntl`` (Windows) it does nothing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def _current_catalog(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_database()").fetchone()[0]


def _meta_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    rows = con.execute(
        "SELECT lower(table_name) FROM duckdb_tables() WHERE database_name = ? AND lower(schema_name) = ?",
        [catalog, META_SCHEMA],
    ).fetchall()
    return {r[0] for r in rows}
