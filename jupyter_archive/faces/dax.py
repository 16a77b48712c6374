"""The LSST Data Access Services v0 face (``{base}archive/dax``): metaserv and dbserv sync.

Metadata (metaserv v0) under ``meta/v0/db``: levels, databases of a level, a database,
its tables, a table and its ``CREATE TABLE`` statement. Databases are contexts seen by
*level*: ``L2`` holds the mounts (the demo archive is database ``DEMO``), ``L3`` holds the
caller's own MyDB (database ``MyDB``; ``<user>_MyDB`` names it too). Answers use one
envelope: ``{"results": [...]}`` for lists, ``{"result": ...}`` for single things; errors
are ``{"exception": "<Kind>", "message": ...}``. JSON is the default; ``Accept`` (or
``format``) may ask for the same information as a table in another format: ``text/html``
(a page), ``text/csv``, ``text/tsv``, ``application/fitsTable``, VOTable, ... Listings take
``start``, ``count`` and ``containing`` joined by ``&`` or, as the document writes them, by
``;`` (``?start=2000;count=1000``).

Queries (dbserv v0): ``GET|POST db/v0/tap/sync`` with ``query`` runs MySQL-flavoured SQL
(the archive's ``mysql`` language; tables named ``DEMO.PhotoObj``, or bare names with
``db=DEMO``) and streams the rows as the document's VOTable-like JSON. Its errors are
``{"error": "<Kind>", "message": ...}``, as dax_dbserv wrote them. The document's result
media types ``application/VOTable`` and ``application/fitsTable`` are the archive's VOTable
and FITS; ``text/html`` gives a page.

Images (metaserv ``meta/v0/image`` and imgserv ``image/v0``) are in :mod:`.dax_images`.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
from tornado.httputil import split_host_and_port

from ..core import formats, params
from ..core.catalog import MYDB
from ..core.errors import ArchiveError, not_found
from ..core.lanes import cheap_read
from ..core.execution.pool import QueryResult
from .base import ArchiveHandler, endpoint

LEVELS = ("L2", "L3")
PAGE_SIZE = 1000  # the document's default count (maxResultsPerPage)
PUBLIC_OWNER = "archive"  # owner shown for mounts: they belong to the archive, not a person
# What metadata is offered as besides the document's JSON: every table format, and a page.
META_FORMATS = formats.DEFAULT_FORMATS | {"html"}

# Fixed listings of the service tree, by path below archive/dax.
INDEX = {
    "": {"results": ["db", "image", "meta"]},
    "meta": {"results": ["v0"]},
    "meta/v0": {"results": ["db", "image"]},
    "db": {"results": ["v0"]},
    "db/v0": {"results": ["tap"]},
    "db/v0/tap": {"Links": "/tap/sync"},
}

# Archive error codes -> the exception-like kind names the DAX services answer with.
KINDS = {
    "bad_request": "ValueError", "not_found": "NotFound", "permission": "PermissionError",
    "unauthorized": "AuthenticationError", "server_error": "InternalError", "syntax_error": "SyntaxError",
}  # fmt: skip


def error_kind(code: str) -> str:
    """``unknown_table`` -> ``UnknownTable``; a few codes get Python-like names (``ValueError``)."""
    return KINDS.get(code) or "".join(p.capitalize() for p in code.split("_")) or "Error"


def name_filter(containing: str | None):
    """A case-insensitive substring test; ``%`` is a wildcard, as in SQL LIKE (``%Stripe82%``)."""
    if not containing:
        return lambda name: True
    pattern = re.compile(".*".join(re.escape(p) for p in containing.split("%")), re.IGNORECASE | re.DOTALL)
    return lambda name: pattern.search(name) is not None


def meta_table(rows: list[dict], columns: tuple[str, ...] = ()) -> pa.Table:
    """Metadata as a table: one row per dict, one column per key (``columns`` first, even with
    no rows); lists and dicts become JSON text, a column of mixed kinds text."""
    names = list(dict.fromkeys([*columns, *(k for r in rows for k in r)]))
    arrays = []
    for name in names:
        values = [r.get(name) for r in rows]
        values = [json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for v in values]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None else str(v) for v in values], pa.string())
        arrays.append(arr.cast(pa.string()) if pa.types.is_null(arr.type) else arr)
    return pa.Table.from_arrays(arrays, names=names)


class DaxHandler(ArchiveHandler):
    """metaserv: errors as ``{"exception", "message"}``; JSON or a table in any format."""

    face = "dax"
    query_separators = ";"  # the document's listings: start=<x>;count=<y>
    error_key = "exception"  # what names the kind of error (dbserv's is "error")

    def error_body(self, err: ArchiveError):
        body = {self.error_key: error_kind(err.code), "message": err.message}
        if err.position:
            body["position"] = {"line": err.position[0], "column": err.position[1]}
        return err.status, body

    async def send_meta(self, doc, rows: list[dict], columns: tuple[str, ...] = (), name: str = "result") -> None:
        """Metadata: the document's JSON ``doc``, or ``rows`` as a table in the format asked for."""
        fmt = self.negotiate("json", META_FORMATS)
        if fmt.name == "json":
            self.send_json(doc)
            return
        table = meta_table(rows, columns)
        await self.stream(QueryResult(table.schema, table.to_batches(), None), fmt, formats.ResultInfo(table_name=name))

    async def send_page(self, names: list[str], *, stable: bool, rows: bool = True, name: str = "result") -> None:
        """A paged listing of names (``containing``, ``start``, ``count``), with the document's
        flags: each name a one-element array (``rows``, as metaserv v0) or a plain string."""
        start, count = self.page("start", "count", PAGE_SIZE, least=0)
        keep = name_filter(self.arg("containing"))
        names = [n for n in names if keep(n)]
        page = names[start : start + count]
        doc = {"results": [[n] for n in page] if rows else page, "more": start + count < len(names), "stable": stable}
        await self.send_meta(doc, [{"name": n} for n in page], ("name",), name)

    # -- databases by level ---------------------------------------------------------------------
    @cheap_read
    def databases(self, level: str) -> list:
        """The contexts a level holds for the caller: mounts (L2) or the caller's MyDB (L3)."""
        level = check_level(level)
        refs = self.archive.catalog.contexts(self.principal)
        if level == "L2":
            return [r for r in refs if r.mount is not None]
        return [r for r in refs if r.mount is None]

    @cheap_read
    def database(self, level: str, db: str):
        """One database of a level by name (case-insensitive), or 404."""
        level = check_level(level)
        low = db.lower()
        if level == "L3" and low in (MYDB.lower(), f"{self.principal.name}_{MYDB}".lower()):
            return self.archive.catalog.context(self.principal, MYDB)  # 403 for anonymous callers
        for ref in self.databases(level):
            if ref.name.lower() == low:
                return ref
        raise not_found(f"unknown database {db!r} in level {level}", level=level, db=db)


def check_level(level: str) -> str:
    up = level.upper()
    if up not in LEVELS:
        raise not_found(f"unknown level {level!r}; levels: {', '.join(LEVELS)}", level=level)
    return up


class IndexHandler(DaxHandler):
    """``/``, ``/meta``, ``/meta/v0``, ``/db``, ``/db/v0``, ``/db/v0/tap``: what lies below."""

    @endpoint(anonymous=True)
    async def get(self, path: str):
        doc = INDEX[path.strip("/")]
        if "results" in doc:
            await self.send_meta(doc, [{"name": n} for n in doc["results"]], ("name",))
        else:  # /db/v0/tap: a link
            await self.send_meta(doc, [doc])


class LevelsHandler(DaxHandler):
    """``GET /meta/v0/db``: the levels of databases."""

    @endpoint(anonymous=True)
    async def get(self):
        await self.send_meta({"results": list(LEVELS)}, [{"level": v} for v in LEVELS], name="levels")


class DatabasesHandler(DaxHandler):
    """``GET /meta/v0/db/{level}``: database names (``containing``, ``start``, ``count``)."""

    @endpoint(anonymous=True)
    async def get(self, level: str):
        refs = await self.call(self.databases, level)
        await self.send_page([r.name for r in refs], stable=all(not r.writable for r in refs), name=check_level(level))


class DatabaseHandler(DaxHandler):
    """``GET /meta/v0/db/{level}/{db}``: ``[{name, owner, host, port}, {annotations}]``."""

    @endpoint(anonymous=True)
    async def get(self, level: str, db: str):
        ref = await self.call(self.database, level, db)
        tables = await self.call(self.archive.catalog.tables, self.principal, ref)
        host, port = split_host_and_port(self.request.host)
        port = port or (443 if self.request.protocol == "https" else 80)
        owner = self.principal.name if ref.mount is None else PUBLIC_OWNER
        about = {k: v for k, v in ref.to_json().items() if k != "name"}
        about.update(level=check_level(level), tables=len(tables))
        first = {"name": ref.name, "owner": owner, "host": host, "port": str(port)}
        await self.send_meta({"result": [first, about]}, [{**first, **about}], name=ref.name)


class TablesHandler(DaxHandler):
    """``GET /meta/v0/db/{level}/{db}/tables``: table names, ordered (``containing``, ``start``, ``count``)."""

    @endpoint(anonymous=True)
    async def get(self, level: str, db: str):
        ref = await self.call(self.database, level, db)
        tables = await self.call(self.archive.catalog.tables, self.principal, ref)
        await self.send_page(sorted((t.name for t in tables), key=str.lower), stable=not ref.writable, name=ref.name)


class TableHandler(DaxHandler):
    """``GET .../tables/{t}``: ``[{name, descr}, {columns, rows, ...}]``; as a table, its columns."""

    @endpoint(anonymous=True)
    async def get(self, level: str, db: str, table: str):
        ref = await self.call(self.database, level, db)
        info = await self.call(self.archive.catalog.table, self.principal, ref, table)
        descr = info.description or ""
        about = {"context": ref.name, "rows": info.rows, "columns": [c.to_json() for c in info.columns]}
        # The document names the key "description" but its example shows "descr": send both.
        doc = {"result": [{"name": info.name, "descr": descr, "description": descr}, about]}
        await self.send_meta(doc, about["columns"], ("name", "datatype", "unit", "ucd", "description"), info.name)


class SchemaHandler(DaxHandler):
    """``GET .../tables/{t}/schema``: ``[name, "CREATE TABLE ..."]`` as the engine has it."""

    @endpoint(anonymous=True)
    async def get(self, level: str, db: str, table: str):
        ref = await self.call(self.database, level, db)
        info = await self.call(self.archive.catalog.table, self.principal, ref, table)
        ddl = await self.call(self.archive.catalog.table_ddl, self.principal, ref, info.name)
        await self.send_meta({"result": [info.name, ddl]}, [{"name": info.name, "schema": ddl}], name=info.name)


class NotFoundHandler(DaxHandler):
    """Anything else under ``archive/dax``: 404 in the face's shape, not Jupyter's HTML page."""

    async def _missing(self, path: str):
        if path.strip("/").startswith("image") or path.strip("/") == "meta/v0/image":
            raise not_found("the image service (imgserv) is not available in this archive", path=path)
        raise not_found(f"no such DAX resource: /{path}", path=path)

    get = endpoint(anonymous=True)(_missing)
    post = put = delete = patch = get


# -------------------------------------------------------------------------------------------------
# dbserv


class DbservHandler(DaxHandler):
    """dbserv: errors as ``{"error", "message"}``; parameters joined by ``&`` only (SQL has ``;``)."""

    error_key = "error"
    query_separators = ""


class SyncHandler(DbservHandler):
    """``GET|POST /db/v0/tap/sync?query=...[&db=DEMO]``: run a query, stream its rows.

    ``query`` (or ``sql``) comes as a query-string or form field, or in a JSON body. The
    document's JSON is the default; ``Accept`` or ``format`` may ask for another archive
    format (CSV, VOTable as ``application/VOTable`` too, FITS as ``application/fitsTable``
    too, an HTML page, ...).
    """

    @endpoint(anonymous=True)
    async def get(self):
        await self._sync()

    post = get

    def _arg(self, body: dict, name: str) -> str | None:
        """A parameter from the query string or a form body, else from a JSON body."""
        values = self.arguments().get(name)
        return params.text(name, values[-1] if values else body.get(name))

    async def _sync(self):
        looks_json = (self.request.body or b"").lstrip()[:1] == b"{"
        body = self.json_body() if self.request.method == "POST" and looks_json else {}
        query = self._arg(body, "query") or self._arg(body, "sql")
        if not query or not query.strip():
            self.send_json({"Info": "Listing queries is not implemented"})
            return
        db = self._arg(body, "db") or None
        if db and not self.principal.anonymous and db.lower() == f"{self.principal.name}_{MYDB}".lower():
            db = MYDB  # the name metaserv also accepts for the caller's MyDB
        fmt = formats.negotiate(self.request.headers.get("Accept"), self._arg(body, "format"), default="json", allowed=META_FORMATS)
        if fmt.name == "json":
            fmt = formats.DBSERV_JSON
        info = formats.ResultInfo(table_name="result", query=query)
        await self.quick_query(fmt, info, self.principal, query, "mysql", context=db)


_DB = r"archive/dax/meta/v0/db/(?P<level>[^/]+)/(?P<db>[^/]+)"


def dax_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/dax(?P<path>/?|/meta/?|/meta/v0/?|/db/?|/db/v0/?|/db/v0/tap/?)", IndexHandler),
        (r"archive/dax/meta/v0/db/?", LevelsHandler),
        (r"archive/dax/meta/v0/db/(?P<level>[^/]+)/?", DatabasesHandler),
        (_DB + r"/?", DatabaseHandler),
        (_DB + r"/tables/?", TablesHandler),
        (_DB + r"/tables/(?P<table>.+)/schema/?", SchemaHandler),
        (_DB + r"/tables/(?P<table>.+?)/?", TableHandler),
        (r"archive/dax/db/v0/tap/sync/?", SyncHandler),
        (r"archive/dax/(?P<path>.*)", NotFoundHandler),  # last: everything else under dax
    ]
