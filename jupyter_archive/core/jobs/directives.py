"""Directives: saved, named, foldered query definitions that run as jobs (SAS Data Loader's word).

A directive is a query with its language, context and an optional target table in the
owner's MyDB. It is checked through the SQL pipeline when saved, so a bad query is refused
then, and it runs as a ``directive`` job in the one job system. Ids are UUID4 strings (SAS
ids are UUIDs); a directive's path is ``folderPath + "/" + name``, unique per owner
(folders and names compare case-insensitively, like the archive's other paths).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import params, times
from ..catalog import MYDB, Principal, normalise_path
from ..errors import ArchiveError, bad_request, not_found, permission
from ..lanes import cheap_read
from ..languages import DEFAULT_LANGUAGE, LANGUAGES
from .query import query_request

if TYPE_CHECKING:
    from pathlib import Path

    from .model import Job
    from .service import Jobs

MAX_NAME = 256
MAX_PAGE = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS directives (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    folder_path TEXT NOT NULL COLLATE NOCASE,
    query TEXT NOT NULL,
    language TEXT NOT NULL,
    context TEXT,
    target_table TEXT,
    created REAL NOT NULL,
    modified REAL NOT NULL,
    owner_uid TEXT,
    UNIQUE (owner, folder_path, name)
);
CREATE INDEX IF NOT EXISTS directives_owner ON directives(owner, folder_path, name);
"""
_COLUMNS = (
    "id", "owner", "name", "description", "folder_path", "query", "language", "context", "target_table", "created", "modified",
    "owner_uid",
)  # fmt: skip
# What a caller may set (JSON name -> column); the rest is the store's.
_FIELDS = {
    "name": "name", "description": "description", "folderPath": "folder_path", "query": "query",
    "language": "language", "context": "context", "targetTable": "target_table",
}  # fmt: skip


@dataclass
class Directive:
    """One saved query definition owned by one user."""

    id: str
    owner: str
    name: str
    description: str
    folder_path: str
    query: str
    language: str
    context: str | None
    target_table: str | None
    created: float
    modified: float
    owner_uid: str  # the owner's identity (``Principal.ident``): what the directive belongs to

    @property
    def path(self) -> str:
        return self.folder_path.rstrip("/") + "/" + self.name

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "folderPath": self.folder_path,
            "path": self.path,
            "query": self.query,
            "language": self.language,
            "context": self.context,
            "targetTable": self.target_table,
            "owner": self.owner,
            "creationTimeStamp": times.iso(self.created),
            "modifiedTimeStamp": times.iso(self.modified),
        }


def normal_folder(value: Any) -> str:
    """``Users//alice/My Folder/`` -> ``/Users/alice/My Folder``; empty or missing -> ``/``."""
    if value is None:
        return "/"
    if not isinstance(value, str):
        raise bad_request("'folderPath' must be a string such as /Users/alice/My Folder")
    return normalise_path(value.strip())


def target_of(value: str | None) -> tuple[str, str] | str | None:
    """A directive's ``targetTable`` as a job target: ``T`` and ``mydb.T`` are MyDB table T."""
    if not value:
        return None
    if value.startswith("/"):
        return value  # a namespace path, e.g. /mydb/T; the resolver checks it
    parts = value.split(".")
    if len(parts) == 1:
        return (MYDB, value)
    if len(parts) == 2 and all(parts):
        return (parts[0], parts[1])
    raise bad_request(f"invalid targetTable {value!r}: use T or mydb.T", targetTable=value)


def _clean(fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Validate caller-set fields (JSON names) and return them by column name."""
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise bad_request(f"unknown directive field(s): {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    out: dict[str, Any] = {}
    if "name" in fields or creating:
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("a directive needs a 'name'")
        name = name.strip()
        if "/" in name or "\\" in name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise bad_request(f"invalid directive name {name!r}: no slashes or control characters, at most {MAX_NAME} characters")
        out["name"] = name
    if "folderPath" in fields or creating:
        out["folder_path"] = normal_folder(fields.get("folderPath"))
    if "query" in fields or creating:
        query = fields.get("query")
        if not isinstance(query, str) or not query.strip():
            raise bad_request("a directive needs a 'query' (SQL text)")
        out["query"] = query
    if "language" in fields or creating:
        language = (fields.get("language") or DEFAULT_LANGUAGE)
        if not isinstance(language, str) or language.lower() not in LANGUAGES:
            raise bad_request(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
        out["language"] = language.lower()
    for key in ("description", "context", "targetTable"):
        if key in fields or (creating and key != "description"):
            value = fields.get(key)
            if value is not None and not isinstance(value, str):
                raise bad_request(f"'{key}' must be a string")
            value = (value or "").strip()
            out[_FIELDS[key]] = value if (value or key == "description") else None
    if creating:
        out.setdefault("description", "")
    if out.get("target_table") is not None:
        target_of(out["target_table"])  # refuse a malformed name early
    return out


class DirectiveStore:
    """Directives of every user in ``directives.sqlite`` of the data dir; safe from many threads."""

    def __init__(self, path: Path, *, jobs: Jobs, users, queries):
        self.path = path
        self._jobs = jobs
        self._users = users
        self._queries = queries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "owner_uid" not in {r[1] for r in self._db.execute("PRAGMA table_info(directives)")}:
            # a store made before identities: owners keep their names as uid
            self._db.execute("ALTER TABLE directives ADD COLUMN owner_uid TEXT")
            self._db.execute("UPDATE directives SET owner_uid = owner")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ------------------------------------------------------------------------------
    def _row(self, where: str, args: tuple) -> Directive | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM directives WHERE {where}", args).fetchone()
        return Directive(*row) if row else None

    @cheap_read
    def get(self, principal: Principal, directive_id: str) -> Directive:
        """A directive the principal may see: their own, or any for an admin; else not_found."""
        _signed_in(principal)
        d = self._row("id = ?", (str(directive_id),))
        if d is None or (d.owner_uid != principal.ident and not principal.admin):
            raise not_found(f"unknown directive {directive_id!r}", directive=directive_id)
        return d

    @cheap_read
    def by_path(self, principal: Principal, path: str) -> Directive:
        """The principal's own directive at ``folderPath/name``."""
        _signed_in(principal)
        full = normal_folder(path)
        folder, _, name = full.rpartition("/")
        d = self._row("owner_uid = ? AND folder_path = ? AND name = ?", (principal.ident, folder or "/", name)) if name else None
        if d is None:
            raise not_found(f"no directive at {full!r}", directivePath=full)
        return d

    @cheap_read
    def list(
        self,
        principal: Principal,
        folder_path: str | None = None,
        start: int = 0,
        limit: int | None = None,
        *,
        all_users: bool = False,
    ) -> tuple[list[Directive], int]:
        """A page of the principal's directives (directly in one folder when given) and the total.

        Sorted by folder then name; ``all_users`` lists everyone's for an admin.
        """
        _signed_in(principal)
        start = params.integer("start", start, default=0, minimum=0)
        limit = params.integer("limit", limit, minimum=0)
        where, args = [], []
        if not (all_users and principal.admin):
            where.append("owner_uid = ?")
            args.append(principal.ident)
        if folder_path is not None:
            where.append("folder_path = ?")
            args.append(normal_folder(folder_path))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        page = f" LIMIT {min(limit, MAX_PAGE) if limit is not None else -1} OFFSET {start}"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM directives{clause}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM directives{clause} ORDER BY folder_path, name, id{page}", args
            ).fetchall()
        return [Directive(*r) for r in rows], total

    # -- writing ------------------------------------------------------------------------------
    def create(self, principal: Principal, fields: dict[str, Any]) -> Directive:
        """Save a new directive (``name``, ``query`` required); its query must compile."""
        _signed_in(principal)
        values = _clean(fields, creating=True)
        now = time.time()
        d = Directive(id=str(uuid.uuid4()), owner=principal.name, owner_uid=principal.ident, created=now, modified=now, **values)
        self._check(d)
        with self._lock:
            self._unique(d)
            self._db.execute(
                f"INSERT INTO directives({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                tuple(getattr(d, c) for c in _COLUMNS),
            )
        return d

    def update(self, principal: Principal, directive_id: str, fields: dict[str, Any]) -> Directive:
        """Change some fields of a directive; a changed query, context or target is checked again."""
        d = self.get(principal, directive_id)
        values = _clean(fields, creating=False)
        if not values:
            return d
        new = Directive(**{**d.__dict__, **values, "modified": max(time.time(), d.modified + 0.001)})
        if any(k in values for k in ("query", "language", "context", "target_table")):
            self._check(new)
        with self._lock:
            self._unique(new)
            sets = ", ".join(f"{k} = ?" for k in values)
            self._db.execute(f"UPDATE directives SET {sets}, modified = ? WHERE id = ?", (*values.values(), new.modified, d.id))
        return new

    def delete(self, principal: Principal, directive_id: str) -> None:
        """Forget a directive; the jobs it ran stay."""
        d = self.get(principal, directive_id)
        with self._lock:
            self._db.execute("DELETE FROM directives WHERE id = ?", (d.id,))

    def count(self, principal: Principal) -> int:
        """How many directives an identity has."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM directives WHERE owner_uid = ?", (principal.ident,)).fetchone()[0]

    def remove_owned(self, principal: Principal) -> None:
        """Forget every directive of an identity (its user is being deleted)."""
        with self._lock:
            self._db.execute("DELETE FROM directives WHERE owner_uid = ?", (principal.ident,))

    def _unique(self, d: Directive) -> None:
        # Called under the lock, so a check and its write cannot interleave with another's.
        # By name: a directive left by a deleted user of this name still takes its path.
        row = self._db.execute(
            "SELECT id FROM directives WHERE owner = ? AND folder_path = ? AND name = ? AND id != ?",
            (d.owner, d.folder_path, d.name, d.id),
        ).fetchone()
        if row:
            raise ArchiveError(
                "conflict", f"a directive named {d.name!r} already exists in {d.folder_path}", 409, details={"directive": row[0]}
            )

    def _request(self, d: Directive) -> dict:
        # A run refreshes its target table, so the target is replaced, not appended to.
        return query_request(
            d.query, d.language, context=d.context, target=target_of(d.target_table), replace=True,
            directive=d.id, directive_name=d.name,
        )  # fmt: skip

    def _check(self, d: Directive) -> None:
        """Compile the directive as its owner would run it: the pipeline's error if it cannot run."""
        owner = self._users.owner(d.owner, d.owner_uid)
        compiled = self._queries.compile(owner, d.query, d.language, context=d.context, explain=False)
        if len(compiled.statements) == 1 and compiled.statements[0].kind == "read":
            # The engine's plan finds unknown columns without running anything; a write or a
            # script may depend on tables it has yet to create, so those get the parser's check only.
            self._queries.compile(owner, d.query, d.language, context=d.context, explain=True)
        self._jobs.query_jobs.compile(owner, self._request(d))  # the target table: writable, after a SELECT

    # -- running ------------------------------------------------------------------------------
    def run(self, principal: Principal, ref: str, *, by_path: bool = False, face: str = "sas") -> Job:
        """Run a directive (by id, or by ``folderPath/name``) as a ``directive`` job of the caller."""
        d = self.by_path(principal, ref) if by_path else self.get(principal, ref)
        if d.owner_uid != principal.ident:
            # An admin may read anyone's directive, but a job runs as its owner's MyDB.
            raise permission(f"directive {d.id} belongs to {d.owner}; only its owner can run it", directive=d.id)
        req = self._request(d)
        compiled, into = self._jobs.query_jobs.compile(principal, req)
        req["modified_query"] = compiled.modified_query
        if into is not None:
            req["into"] = {"context": into.context, "name": into.name}
        return self._jobs.submit(principal, "directive", req, face=face)


def _signed_in(principal: Principal) -> None:
    if principal.anonymous:
        raise permission("directives need a signed-in user: log in to Jupyter or send an X-Auth-Token")
