"""Directives in our own JSON API (``{base}archive/api/directives``): save, list, edit, run.

A directive is ``{"id", "name", "description", "folderPath", "path", "query", "language",
"context", "targetTable", "owner", "creationTimeStamp", "modifiedTimeStamp", "links"}``;
errors are the native ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from urllib.parse import quote

from ..core.jobs.directives import Directive
from .base import endpoint
from .native import PAGE_SIZE, NativeHandler, job_json

# Members a client may send back from a directive it read; they are the store's to set.
READ_ONLY = {"id", "path", "owner", "creationTimeStamp", "modifiedTimeStamp", "links"}


def directive_json(handler: NativeHandler, d: Directive) -> dict:
    """A directive in the native API, with links to itself, its runs and the SAS face's view."""
    out = d.to_json()
    me = handler.archive_url("api", "directives", quote(d.id))
    out["links"] = {"self": me, "run": me + "/run", "sas": handler.archive_url("sas", "directives", quote(d.id))}
    return out


def _fields(handler: NativeHandler) -> dict:
    return {k: v for k, v in handler.json_body().items() if k not in READ_ONLY}


class DirectivesHandler(NativeHandler):
    """``GET /directives`` (``folder``, ``offset``, ``limit``, ``all``); ``POST`` saves one (201)."""

    @endpoint()
    async def get(self):
        folder = self.arg("folder")
        offset, limit = self.page("offset", "limit", PAGE_SIZE)
        everyone = self.bool_arg("all")
        items, total = await self.call(
            self.archive.directives.list, self.principal, folder or None, offset, limit, all_users=everyone
        )
        self.send_json(
            {"directives": [directive_json(self, d) for d in items], "total": total, "offset": offset, "limit": limit}
        )

    @endpoint()
    async def post(self):
        d = await self.call(self.archive.directives.create, self.principal, _fields(self))
        body = directive_json(self, d)
        self.set_header("Location", body["links"]["self"])
        self.send_json(body, status=201)


class DirectiveHandler(NativeHandler):
    """``GET``, ``PATCH`` (some fields) and ``DELETE`` (204) one directive."""

    @endpoint()
    async def get(self, directive_id: str):
        d = await self.call(self.archive.directives.get, self.principal, directive_id)
        self.send_json(directive_json(self, d))

    @endpoint()
    async def patch(self, directive_id: str):
        d = await self.call(self.archive.directives.update, self.principal, directive_id, _fields(self))
        self.send_json(directive_json(self, d))

    @endpoint()
    async def delete(self, directive_id: str):
        await self.call(self.archive.directives.delete, self.principal, directive_id)
        self.set_status(204)
        self.finish()


class DirectiveRunHandler(NativeHandler):
    """``POST /directives/{id}/run``: submit a job of the directive (201 + Location of the job)."""

    @endpoint()
    async def post(self, directive_id: str):
        job = await self.call(self.archive.directives.run, self.principal, directive_id, face="native")
        body = job_json(self, job)
        self.set_header("Location", body["links"]["self"])
        self.send_json(body, status=201)


def native_directive_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/api/directives/?", DirectivesHandler),
        (r"archive/api/directives/(?P<directive_id>[^/]+)/?", DirectiveHandler),
        (r"archive/api/directives/(?P<directive_id>[^/]+)/run/?", DirectiveRunHandler),
    ]
