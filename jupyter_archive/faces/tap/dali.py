"""What the TAP resources share (DALI): parameters read from the query string and from bodies
STILTS and TOPCAT send, the query request they make, result formats, and DALI error VOTables
(user errors answer 400)."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from tornado import httputil

from ...core import formats
from ...core.execution import uploads as tap_uploads
from ...core.errors import ArchiveError, bad_request, not_found
from ...core.params import integer
from ..base import ArchiveHandler, LimitedBody, endpoint

DEFAULT_MAXREC = 100_000
HARD_MAXREC = 10_000_000
LANGS = ("ADQL", "ADQL-2.0", "ADQL-2.1")
VOTABLE_MEDIA = "application/x-votable+xml"
# RESPONSEFORMAT values that TAP clients use for VOTable but our media table maps elsewhere
_VOTABLE_ALIASES = {"text/xml", "application/xml", "votable/b2", "binary2"}
TAP_FORMATS = {"votable", "csv", "tsv", "fits", "parquet", "json"}
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def error_votable(message: str) -> bytes:
    """A DALI error document: QUERY_STATUS=ERROR with the message as the INFO's text."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
        '<RESOURCE type="results">\n'
        f'<INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>\n'
        "</RESOURCE>\n</VOTABLE>\n"
    ).encode()


def tap_format(value: str | None) -> formats.Format:
    """The result format for RESPONSEFORMAT/FORMAT (short name or media type; VOTable by default)."""
    value = (value or "").strip()
    if not value or value.lower() in _VOTABLE_ALIASES:
        return formats.by_name("votable")
    return formats.negotiate(None, value, default="votable", allowed=TAP_FORMATS)


_DISPOSITION = re.compile(rb'name="([^"]*)"', re.IGNORECASE)


def parse_multipart(ctype: str, body: bytes) -> tuple[dict[str, list[bytes]], dict[str, bytes]]:
    """Form fields and file parts of a multipart body, read by hand: tornado >= 6.5 refuses the
    leading CRLF preamble STILTS/TOPCAT send (and other quirks), so this is the fallback parser."""
    boundary = None
    for part in ctype.split(";")[1:]:
        key, _, val = part.strip().partition("=")
        if key.lower() == "boundary":
            boundary = val.strip().strip('"').encode()
    if not boundary:
        raise bad_request("multipart/form-data body without a boundary")
    fields: dict[str, list[bytes]] = {}
    files: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        m = _DISPOSITION.search(head)
        if not m:
            continue
        name, data = m.group(1).decode("utf-8", "replace"), data.removesuffix(b"\r\n")
        if b"filename=" in head.lower():
            files[name] = data
        else:
            fields.setdefault(name, []).append(data)
    return fields, files


class TapHandler(ArchiveHandler):
    """Base of the TAP handlers: errors are DALI error VOTables; user errors answer 400."""

    face = "tap"
    error_media = VOTABLE_MEDIA

    def error_body(self, err: ArchiveError) -> tuple[int, bytes]:
        message = err.message
        if err.position:
            message = f"{message} (line {err.position[0]}, column {err.position[1]})"
        status = err.status
        if 400 <= status < 500 and status not in (401, 403, 404, 405, 413, 429):
            status = 400  # DALI: parameter and query errors are 400, whatever the core's code
        return status, error_votable(message)

    @property
    def tap_url(self) -> str:
        """The service's base URL as clients reach it (…/archive/tap)."""
        return self.archive_url("tap", absolute=True)

    def job_url(self, job) -> str:
        """A TAP async (UWS) job's URL: also where a sync query that went on as a job is followed (``went_on``)."""
        return self.archive_url("tap", "async", job.id, absolute=True)

    follow_url = job_url

    @property
    def soda_url(self) -> str:
        """The SODA sync endpoint of the same server (image cutouts)."""
        return self.archive_url("soda", "sync", absolute=True)

    def send_xml(self, body: str, media: str = "text/xml; charset=UTF-8") -> None:
        self.finish('<?xml version="1.0" encoding="UTF-8"?>\n' + body, set_content_type=media)


class TapParamsHandler(LimitedBody, TapHandler):
    """A TAP handler reading its own body (subclasses are ``@web.stream_request_body``): tornado's
    parser refuses what STILTS sends, and a body is refused from its headers, or bounded while
    it arrives (``LimitedBody``), before it is parsed."""

    body_anonymous = True  # TAP lets anonymous callers in when the archive allows them
    _chunks: list[bytes] = ()  # type: ignore[assignment] - none until a body is accepted

    def body_started(self) -> None:
        self._chunks = []

    def body_chunk(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def body_refused(self) -> None:
        self._chunks = []

    def tap_params(self) -> tuple[dict[str, str], dict[str, bytes]]:
        """Parameters by upper-case name (query string, then body; the last value wins) and the
        body's file parts by name (inline uploads)."""
        named = {name.upper(): values[-1] for name, values in self.arguments().items() if values}
        return named, self._body_parts()[1]

    def form_fields(self) -> dict[str, list[bytes]]:
        return self._body_parts()[0]

    _parts: tuple[dict[str, list[bytes]], dict[str, bytes]] | None = None

    def _body_parts(self) -> tuple[dict[str, list[bytes]], dict[str, bytes]]:
        """The streamed body's form fields and file parts (parsed once)."""
        if self._parts is not None:
            return self._parts
        files: dict[str, bytes] = {}
        body = b"".join(self._chunks)
        ctype = self.request.headers.get("Content-Type", "")
        args: dict[str, list[bytes]] = {}
        if body and ctype.lower().startswith("multipart/form-data"):
            parts: dict = {}
            try:
                # the CRLF preamble STILTS sends is what tornado >= 6.5 refuses
                httputil.parse_body_arguments(ctype, body.lstrip(b"\r\n"), args, parts, self.request.headers)
                files = {k: v[-1]["body"] for k, v in parts.items() if v}
            except httputil.HTTPInputError:
                args, files = parse_multipart(ctype, body)
        elif body:
            try:
                httputil.parse_body_arguments(ctype, body, args, {}, self.request.headers)
            except httputil.HTTPInputError as exc:
                raise bad_request(f"cannot read the request body: {exc}") from None
        self._parts = (args, files)
        return self._parts

    def query_request(self, params: dict[str, str], files: dict[str, bytes], *, complete: bool = True) -> dict:
        """The core's request for a TAP query (sync, or an async job), checked; inline uploads
        are staged on disk. ``complete=False`` lets an async job be created without a query yet."""
        request = params.get("REQUEST")
        if request is not None and request.strip() and request.strip().lower() != "doquery":
            raise bad_request(f"unsupported REQUEST {request!r}: this service runs REQUEST=doQuery")
        lang = (params.get("LANG") or "").strip()
        if lang and lang.upper() not in LANGS:
            raise bad_request(f"unsupported LANG {lang!r}; supported: {', '.join(LANGS)}")
        query = params.get("QUERY") or ""
        if complete:
            if not lang:
                raise bad_request(f"LANG is required (one of {', '.join(LANGS)})")
            if not query.strip():
                raise bad_request("QUERY is required: an ADQL SELECT statement")
        maxrec = self.maxrec(params.get("MAXREC"))
        fmt_value = params.get("RESPONSEFORMAT") or params.get("FORMAT")
        tap_format(fmt_value)  # refuse an unknown format now, not when the result is read
        specs = tap_uploads.parse(params.get("UPLOAD") or "")
        uploads = tap_uploads.stage(self.archive.data_dir, specs, files, self.job_of_url) if specs else []
        return {
            "query": query,
            "row_limit": maxrec,
            "format": fmt_value,
            "uploads": uploads,
            "tap": {k.lower(): v for k, v in params.items()},
        }

    def job_of_url(self, url: str) -> int | None:
        """The job whose result ``url`` is, when it is a result URL of this very service."""
        own = self.archive_url(absolute=True)
        if not url.startswith(own):
            return None
        m = re.fullmatch(r"(?:tap/async/(\d+)/results/result|api/jobs/(\d+)/results)/?", url[len(own):].split("?")[0])
        return int(m.group(1) or m.group(2)) if m else None

    @staticmethod
    def maxrec(raw: str | None) -> int:
        """MAXREC as a row limit: the default when absent, capped at the hard limit."""
        value = integer("MAXREC", raw, default=DEFAULT_MAXREC, minimum=0, maximum=None)
        return min(value, HARD_MAXREC)


class NotFoundHandler(TapHandler):
    """Everything else under ``archive/tap``: a 404 error VOTable."""

    @endpoint(anonymous=True)
    async def get(self, path: str):
        raise not_found(f"no such TAP resource: {path!r} (try sync, capabilities, tables, availability, examples)")

    post = get
