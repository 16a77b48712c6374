"""SAS directives: the face's root, the directive collection, one directive; any other path a SAS 404."""

from __future__ import annotations

from ...core import times
from ...core.errors import ArchiveError, not_found
from ..base import endpoint
from .resources import API, COLLECTION, DIRECTIVE, DEFAULT_LIMIT, JOB, MAX_LIMIT, READ_ONLY, SasHandler


class RootHandler(SasHandler):
    """``GET /``: the top-level links."""

    @endpoint()
    async def get(self):
        self.send_sas(
            {
                "version": 1,
                "links": [
                    self.link("directives", "/directives", COLLECTION, item_type=DIRECTIVE),
                    self.link("createDirective", "/directives", DIRECTIVE, method="POST"),
                    self.link("jobs", "/jobs", COLLECTION, item_type=JOB),
                ],
            },
            API,
        )

    head = get


class DirectivesHandler(SasHandler):
    """``GET /directives`` (``directiveFolderPath`` | ``sasFolderPath``, ``start``, ``limit``); ``POST`` saves one."""

    @endpoint()
    async def get(self):
        start, limit = self.page("start", "limit", DEFAULT_LIMIT, MAX_LIMIT)
        path = self.arg("directiveFolderPath")
        folder = self.arg("sasFolderPath")
        params = {}
        if path:
            params["directiveFolderPath"] = path
            try:
                found = [await self.call(self.archive.directives.by_path, self.principal, path)]
            except ArchiveError as exc:
                if exc.code != "not_found":
                    raise
                found = []  # a filter that matches nothing is an empty collection
            items, total = found[start : start + limit], len(found)
        else:
            if folder:
                params["sasFolderPath"] = folder
            items, total = await self.call(self.archive.directives.list, self.principal, folder or None, start, limit)
        up = self.link("up", "/", API)
        body = self.collection("/directives", [self.directive_json(d) for d in items], total, start, limit, DIRECTIVE, params=params, up=up)
        self.send_sas(body, COLLECTION)

    head = get

    @endpoint()
    async def post(self):
        self.answer_type(DIRECTIVE)
        fields = {k: v for k, v in self.json_body().items() if k not in READ_ONLY}
        d = await self.call(self.archive.directives.create, self.principal, fields)
        self.set_header("Location", self.root + f"/directives/{d.id}")
        self.set_header("Last-Modified", times.http_date(d.modified))
        self.send_sas(self.directive_json(d), DIRECTIVE)


class DirectiveHandler(SasHandler):
    """``GET /directives/{id}`` with ``Last-Modified`` (and 304 for ``If-Modified-Since``)."""

    @endpoint()
    async def get(self, directive_id: str):
        d = await self.call(self.archive.directives.get, self.principal, directive_id)
        self.set_header("Last-Modified", times.http_date(d.modified))
        since = times.parse_http_date(self.request.headers.get("If-Modified-Since"))
        # HTTP dates have whole seconds: unchanged when modified in or before that second.
        if since is not None and int(d.modified) <= since:
            self.set_status(304)
            self.finish()
            return
        self.send_sas(self.directive_json(d), DIRECTIVE)

    head = get


class MissingHandler(SasHandler):
    """Any other path under the face: a SAS 404, not the server's HTML page."""

    @endpoint()
    async def get(self, rest: str):
        raise not_found(f"no SAS Data Loader resource at /{rest}", path="/" + rest)

    head = post = put = delete = patch = get
