"""What a request carries, read in one layer: query-string parameters, form and JSON bodies,
listing windows and result formats, each checked by ``core.params`` and ``core.times``."""

from __future__ import annotations

import functools
from typing import Any

from tornado import httputil

from ...core import formats, params, times
from ...core.errors import ArchiveError


class Parameters:
    """Part of ``ArchiveHandler``: every face reads what a request carries through these."""

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Path segments (and tornado's own argument reads) as UTF-8 text, 400 in the face's shape."""
        return params.text(name or "path", value)

    #: What separates query-string parameters besides ``&`` (the DAX document writes ``start=0;count=10``).
    query_separators = ""

    @functools.cached_property
    def query_arguments(self) -> dict[str, list[bytes]]:
        """The query string's parameters as bytes by name (split on ``query_separators`` too)."""
        if not self.query_separators:
            return self.request.query_arguments
        query = self.request.query
        for sep in self.query_separators:
            query = query.replace(sep, "&")
        return httputil.parse_qs_bytes(query, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query-string parameter, as UTF-8 text (400 if it is not)."""
        values = self.query_arguments.get(name)
        return params.text(name, values[-1]) if values else default

    def args(self, name: str) -> list[str]:
        """Every value of a query-string parameter, in order, as UTF-8 text."""
        return [params.text(name, v) for v in self.query_arguments.get(name, [])]

    def arguments(self, *, form: bool = True) -> dict[str, list[str]]:
        """Every query-string parameter (then, with ``form``, every field of a form body) by
        name, values in order, as UTF-8 text."""
        out: dict[str, list[str]] = {}
        sources = [self.query_arguments] + ([self.form_fields()] if form else [])
        for source in sources:
            for name, values in source.items():
                out.setdefault(name, []).extend(params.text(name, v) for v in values)
        return out

    def form_fields(self) -> dict[str, list[bytes]]:
        """The fields of a url-encoded or multipart form body (tornado parsed them), as bytes."""
        return self.request.body_arguments if self.request.method in ("POST", "PUT", "PATCH") else {}

    def number_arg(self, name: str, default: float | None = None, **bounds) -> float | None:
        return params.number(name, self.arg(name), default=default, **bounds)

    def bool_arg(self, name: str, default: bool = False) -> bool:
        return params.boolean(name, self.arg(name), default=default)

    def time_arg(self, name: str) -> float | None:
        return times.parse(name, self.arg(name))

    def page(
        self, start: str | None, limit: str, default: int | None, maximum: int | None = None, *,
        first: int | None = 0, least: int = 1, values: dict[str, str] | None = None,
    ) -> tuple[int | None, int | None]:  # fmt: skip
        """The window of a listing, under the face's names for its two ends: ``start`` (none when
        the face has no such parameter; at least 0, ``first`` when absent) and ``limit`` (at least
        ``least``, ``default`` when absent, at most ``maximum``). Read from the query string, or
        from ``values`` when the face gathered its parameters itself."""
        read = self.arg if values is None else values.get
        offset = None if start is None else params.integer(start, read(start), default=first, minimum=0)
        count = params.integer(limit, read(limit), default=default, minimum=least)
        return offset, (min(count, maximum) if maximum is not None and count is not None else count)

    def json_body(self) -> dict:
        """The request body as a JSON object (depth-limited, see ``core.params``), or the fields
        of a form body (last value of each); keys as sent."""
        if self._json_body is None:
            self._json_body = self._read_json_body()
        return self._json_body

    _json_body: dict | None = None

    def body_field(self, name: str, default: Any = None, *, query: bool = False) -> Any:
        """A field of ``json_body``, its name matched case-insensitively (as ASP.NET's binder
        and Kasabi's forms do); when the body has none, the query string's value (``query``)
        or ``default``."""
        low = name.lower()
        for key, value in self.json_body().items():
            if key.lower() == low:
                return value
        return self.arg(name, default) if query else default

    def _read_json_body(self) -> dict:
        body = self.request.body or b""
        ctype = (self.request.headers.get("Content-Type") or "").lower()
        # Clients label JSON bodies loosely (or as form data by default), so a body that
        # looks like a JSON object is JSON whatever the Content-Type says.
        looks_json = body.lstrip()[:1] in (b"{", b"[")
        if not looks_json and ("application/x-www-form-urlencoded" in ctype or "multipart/form-data" in ctype):
            return {k: params.text(k, v[-1]) for k, v in self.form_fields().items()}
        if not body.strip():
            return {}
        data = params.parse_json(body)
        if not isinstance(data, dict):
            raise ArchiveError("bad_request", "the request body must be a JSON object")
        return data

    def negotiate(self, default: str, allowed: set[str] | None = None, media_map: dict[str, str] | None = None):
        """The result format from ``?format=`` or ``Accept`` (``media_map`` lets a face rename media types)."""
        accept = self.request.headers.get("Accept")
        if media_map and accept:
            for media, name in media_map.items():
                if accept.split(";")[0].strip().lower() == media:
                    return formats.by_name(name)
        return formats.negotiate(accept, self.arg("format"), default=default, allowed=allowed)
