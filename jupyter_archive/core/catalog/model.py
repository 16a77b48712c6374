"""The namespace's vocabulary: who asks (Principal), mounts, contexts, tables and columns.

A *mount* puts a data source at a path (``/demo``) under a *context* name (``DEMO``, the
CasJobs word for it). Each user also has a context ``MyDB`` at ``/mydb``: their own
DuckDB file, writable by them only. Context names and paths are case-insensitive.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchiveError

log = logging.getLogger(__name__)

MYDB = "MyDB"
MYDB_ALIAS = "mydb"
_RESERVED_ALIASES = {"mydb", "memory", "system", "temp", "main", "archive_meta"}
MOUNT_KINDS = ("duckdb", "files", "sqlite", "postgresql", "hats")
SQL_SERVER_KINDS = ("sqlite", "postgresql")
# Schemas a TAP query may name besides the contexts: TAP_SCHEMA (the tables' description,
# loaded into an in-memory engine for the query) and TAP_UPLOAD (the tables the request brought).
TAP_SCHEMA = "TAP_SCHEMA"
TAP_SCHEMA_ALIAS = "tap_schema"  # the engine database holding TAP_SCHEMA's tables
TAP_UPLOAD = "TAP_UPLOAD"
# The engine's own in-memory catalog: user SQL can never name it (every table reference goes
# through the resolver), so per-query schemas there are private to the query that made them.
ENGINE_CATALOG = "memory"


@dataclass(frozen=True)
class Principal:
    """Who is asking: a named user (maybe admin) or the anonymous reader.

    ``uid`` is the identity of one incarnation of a user: a user deleted and made again under
    the same name gets a new one, so nothing the first one owned (jobs, directives, MyDB, an
    engine) can ever match the second. Users made before identities existed have their name
    as uid (empty means that too).
    """

    name: str
    admin: bool = False
    anonymous: bool = False
    uid: str = ""

    @property
    def ident(self) -> str:
        """What the user's things are owned by: the uid (the name for users older than uids)."""
        return self.uid or self.name

    @property
    def key(self) -> str:
        return "" if self.anonymous else self.ident

    @property
    def home(self) -> str:
        """The name of the user's own files (MyDB, temp dir): unique per identity, safe as a file name."""
        own = self.name if self.ident == self.name else f"{self.name}.{self.ident}"
        return safe_user_file(own).removesuffix(".duckdb")


ANONYMOUS = Principal("anonymous", anonymous=True)


@dataclass
class Mount:
    """A data source at a path of the namespace, known to CasJobs users as a context."""

    path: str  # "/demo": normalised, lower-case-insensitive, no trailing slash
    kind: str  # "duckdb" | "files" | "sqlite" | "postgresql" | "hats"
    location: Path  # database file or directory (for hats: a catalog or a folder of catalogs)
    context: str  # "DEMO"
    read_only: bool = True
    public: bool = True
    description: str = ""
    schema_name: str = ""  # the TAP schema name; defaults to the context in lower case
    alias: str = ""  # the engine's database alias
    engine_file: Path | None = None  # the DuckDB file attached (the cache for "files")
    owner: str = ""  # the identity of the one user who sees it (a HATS catalog they imported), or "" (as ``public`` says)

    def visible_to(self, principal) -> bool:
        """Whether ``principal`` sees this mount: public ones to all, others to signed-in users, an owned one to its owner."""
        return (self.public or not principal.anonymous) and (not self.owner or self.owner == principal.ident)

    def __post_init__(self):
        if not self.schema_name:
            self.schema_name = self.context.lower()


@dataclass
class ColumnInfo:
    name: str
    datatype: str  # the engine's type name, e.g. BIGINT
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None
    utype: str | None = None
    xtype: str | None = None
    statistics: dict | None = None  # min_value, max_value, null_count where the table's metadata has them (HATS)

    def to_json(self) -> dict:
        out = {"name": self.name, "datatype": self.datatype}
        for k in ("unit", "ucd", "description", "utype", "xtype", "statistics"):
            v = getattr(self, k)
            if v:
                out[k] = v
        return out


@dataclass
class TableInfo:
    name: str  # the table's name in its context ("PhotoObj", "sub/stars")
    context: str
    rows: int | None = None
    size_bytes: int | None = None
    description: str | None = None
    columns: list[ColumnInfo] = field(default_factory=list)
    modified: float | None = None  # unix seconds, when known

    def column_meta(self) -> dict[str, dict[str, str]]:
        """Units, UCDs, ... by column name; made once (a scan makes new TableInfos), not to be mutated."""
        cached = self.__dict__.get("_column_meta")
        if cached is None:
            cached = {c.name: {k: v for k, v in c.to_json().items() if k not in ("name", "datatype", "statistics")} for c in self.columns}
            self.__dict__["_column_meta"] = cached
        return cached

    def to_json(self, columns: bool = True) -> dict:
        out = {"name": self.name, "context": self.context, "rows": self.rows, "size": self.size_bytes}
        if self.description:
            out["description"] = self.description
        if columns:
            out["columns"] = [c.to_json() for c in self.columns]
        return out


@dataclass
class ContextRef:
    """A context as one principal sees it."""

    name: str  # "DEMO" or "MyDB"
    path: str  # "/demo" or "/mydb"
    alias: str  # the engine's database alias
    writable: bool
    mount: Mount | None = None  # None for MyDB

    def to_json(self) -> dict:
        m = self.mount
        return {
            "name": self.name,
            "path": self.path,
            "kind": m.kind if m else "mydb",
            "readOnly": not self.writable,
            "public": bool(m and m.public),
            "description": (m.description if m else "your own database: write query results and uploads here"),
            "schema": m.schema_name if m else "mydb",
        }


def normalise_path(path: str) -> str:
    """``/demo/`` -> ``/demo``; refuses ``..`` segments and empty names."""
    parts = []
    for seg in (path or "").replace("\\", "/").split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            raise ArchiveError("bad_request", f"invalid path {path!r}: '..' is not allowed", 400)
        parts.append(seg)
    return "/" + "/".join(parts)


def alias_for(context: str) -> str:
    """A safe DuckDB database alias for a context name."""
    alias = re.sub(r"[^a-z0-9_]", "_", context.lower()) or "ctx"
    if alias[0].isdigit() or alias in _RESERVED_ALIASES:
        alias = "ctx_" + alias
    return alias


def safe_user_file(name: str) -> str:
    """A file name for a user's MyDB that cannot escape the MyDB folder."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60].lstrip(".") or "user"
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{stem}-{digest}.duckdb"
