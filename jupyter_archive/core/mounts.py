"""Mounts made at run time (Quasar's /mount API): their configurations, checks and persistence.

A mount configuration is a dict ``{path, type, location, context, readOnly, public,
description}``. Quasar clients send the one-key form ``{"duckdb": {"connectionUri": ...}}``;
both are accepted. Mounts made here are kept in the archive state and come back after a
restart; mounts from ``ArchiveApp.mounts`` are configuration and cannot be removed here.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import ArchiveError

KINDS = ("files", "duckdb", "sqlite", "postgresql")
FILE_KINDS = ("files", "duckdb", "sqlite")
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
    if kind == "files" and not read_only:
        raise ArchiveError("bad_request", "Invalid mount configuration: a files mount is read-only (its tables are files)")
    return {
        "path": path,
        "type": kind,
        "location": location.strip(),
        "context": context,
        "readOnly": read_only,
        "public": bool(extra.get("public", True)),
        "description": str(extra.get("description") or ""),
    }


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
    if kind not in FILE_KINDS or spec["location"].startswith("sqlite:"):
        return  # a server's URL: reached when mounted
    location = Path(spec["location"]).expanduser()
    if not location.exists():
        raise ArchiveError("bad_request", f"mount location {location} does not exist")
    if kind == "files" and not location.is_dir():
        raise ArchiveError("bad_request", f"a files mount needs a directory; {location} is not one")
    if kind != "files" and not location.is_file():
        raise ArchiveError("bad_request", f"a {kind} mount needs a database file; {location} is not one")


def check_location(spec: dict, roots: list[str]) -> None:
    """Refuse a file mount outside the allowed roots (symlinks resolved first)."""
    if spec["type"] not in FILE_KINDS:
        return
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
    if spec["type"] == "files" and not real.is_dir():
        raise ArchiveError("bad_request", f"Invalid mount configuration: a files mount needs a directory, {loc} is not one")
    if spec["type"] != "files" and not real.is_file():
        raise ArchiveError("bad_request", f"Invalid mount configuration: {loc} is not a database file")
    spec["location"] = str(real)


def quasar_view(spec: dict) -> dict:
    """A mount configuration as Quasar's GET /mount answers it (passwords masked)."""
    uri = spec["location"]
    if spec["type"] == "postgresql":
        parts = urlsplit(uri)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":****@")
            uri = urlunsplit(parts._replace(netloc=netloc))
    return {
        spec["type"]: {
            "connectionUri": uri,
            "readOnly": spec.get("readOnly", True),
            "context": spec.get("context"),
            "public": spec.get("public", True),
        }
    }


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


def put_mount(archive, principal, path: str, body: dict) -> str:
    """Create or replace the run-time mount at ``path`` (admins only); ``"added"`` or ``"updated"``."""
    from .catalog import normalise_path

    if not principal.admin:
        raise ArchiveError("permission", "mounting is for the archive's admins", 403)
    path = normalise_path(path)
    low = path.lower()
    if low == "/" or low == "/mydb" or low.startswith("/mydb/"):
        raise ArchiveError("conflict", f"Unable to mount at path: {path} is reserved", 409, details={"path": path})
    spec = parse_spec(path, body)
    check_location(spec, archive.config.mount_roots)
    existing = archive.mount_spec(path)
    if existing and existing.get("configured"):
        raise ArchiveError(
            "conflict", f"the mount at {path} comes from ArchiveApp.mounts; change it in the configuration", 409, details={"path": path}
        )
    for m in archive.catalog.mounts():
        other = m.path.lower()
        if other != low and (other.startswith(low + "/") or low.startswith(other + "/")):
            raise ArchiveError(
                "conflict", f"Unable to mount at path: {path} would nest with the mount at {m.path}", 409, details={"path": path}
            )
        if other != low and m.context.lower() == spec["context"].lower():
            raise ArchiveError("conflict", f"context {spec['context']} is already the mount at {m.path}", 409)
    if existing:
        archive.drop_mount(path)
    try:
        archive.add_mount(spec)
    except ArchiveError:
        if existing:
            archive.add_mount(existing)
        raise
    archive.mount_store.put(spec)
    return "updated" if existing else "added"


def delete_mount(archive, principal, path: str) -> bool:
    """Remove the run-time mount at ``path`` (admins only); False when there was none."""
    from .catalog import normalise_path

    if not principal.admin:
        raise ArchiveError("permission", "unmounting is for the archive's admins", 403)
    path = normalise_path(path)
    existing = archive.mount_spec(path)
    if existing is None:
        return False
    if existing.get("configured"):
        raise ArchiveError(
            "conflict", f"the mount at {path} comes from ArchiveApp.mounts; remove it from the configuration", 409, details={"path": path}
        )
    archive.drop_mount(path)
    archive.mount_store.remove(path)
    return True
