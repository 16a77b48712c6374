"""The IVOA TAP 1.1 face (``{base}archive/tap``): sync queries and the VOSI documents.

``sync`` (GET/POST, urlencoded or multipart) runs ADQL through the core and answers a
VOTable (BINARY2 by default) or another ``RESPONSEFORMAT``; errors are DALI error VOTables.
``UPLOAD`` brings VOTables inline or by URL of one of our own results (``core.tap_uploads``).
``capabilities``, ``availability``, ``tables``, ``tables/{name}`` and ``examples`` are the
VOSI/DALI documents pyvo, TOPCAT and taplint read. Queries naming TAP_SCHEMA run over the
caller's TAP_SCHEMA (``core.tap_schema``), which always equals ``/tables``. ``async`` (UWS)
is ``tap_uws``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from tornado import httputil, web

from ...core import formats, tap_schema, tap_uploads
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

VR = "http://www.ivoa.net/xml/VOResource/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
GEOMETRY = ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE", "COORD1", "COORD2", "AREA", "CENTROID")
# (ivo-id or None, mime, aliases) of each output format, as capabilities declares them
OUTPUTS = [
    ("ivo://ivoa.net/std/TAPRegExt#output-votable-binary2", "application/x-votable+xml", ("votable", "votable/b2")),
    ("ivo://ivoa.net/std/TAPRegExt#output-votable-td", "application/x-votable+xml;serialization=TABLEDATA", ("votable/td",)),
    (None, "text/csv", ("csv",)),
    (None, "text/tab-separated-values", ("tsv",)),
    (None, "application/fits", ("fits",)),
    (None, "application/vnd.apache.parquet", ("parquet",)),
    (None, "application/json", ("json",)),
]
EXAMPLES = [
    ("cone", "Cone search", "Objects within 0.1 degrees of (ra, dec) = (155, 5), nearest first.",
     "SELECT objid, ra, dec, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 155.0, 5.0)) AS dist\n"
     "FROM demo.PhotoObj\nWHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 155.0, 5.0, 0.1)) = 1\nORDER BY dist"),
    ("top", "First rows", "A first look at the photometric catalog.", "SELECT TOP 10 * FROM demo.PhotoObj"),
    ("columns", "Column metadata", "Units and UCDs of the columns of demo.PhotoObj, from TAP_SCHEMA.",
     "SELECT column_name, datatype, unit, ucd, description\nFROM TAP_SCHEMA.columns\nWHERE table_name = 'demo.PhotoObj'"),
]


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


def _el(tag: str, text, **attrs) -> str:
    """``<tag a="b">text</tag>``, or nothing when ``text`` is None."""
    if text is None:
        return ""
    a = "".join(f" {k.replace('_', ':', 1) if k.startswith('xsi_') else k}={quoteattr(str(v))}" for k, v in attrs.items())
    return f"<{tag}{a}>{escape(str(text))}</{tag}>"


def table_xml(t: tap_schema.TableDesc, tag: str = "table", ns: str = "") -> str:
    """A VODataService ``table`` element (``vosi:table`` with its namespaces for ``tables/{name}``)."""
    out = [f'<{tag}{ns} type="{t.type}">', _el("name", t.name), _el("description", t.description)]
    for c in t.columns:
        out.append(f'<column std="{"true" if c.std else "false"}">')
        out += [_el("name", c.name), _el("description", c.description), _el("unit", c.unit), _el("ucd", c.ucd),
                _el("utype", c.utype)]
        attrs = {"xsi_type": "vs:VOTableType"}
        if c.arraysize:
            attrs["arraysize"] = c.arraysize
        if c.xtype:
            attrs["extendedType"] = c.xtype
        out.append(_el("dataType", c.datatype, **attrs))
        out += [_el("flag", f) for f, on in (("indexed", c.indexed), ("principal", c.principal)) if on]
        out.append("</column>")
    for k in t.keys:
        out.append("<foreignKey>" + _el("targetTable", k.target_table))
        out += ["<fkColumn>" + _el("fromColumn", f) + _el("targetColumn", c) + "</fkColumn>" for f, c in k.columns]
        out.append(_el("description", k.description) + "</foreignKey>")
    out.append(f"</{tag}>")
    return "".join(x for x in out if x)


class TapHandler(ArchiveHandler):
    """Base of the TAP handlers: errors are DALI error VOTables; user errors answer 400."""

    face = "tap"
    error_media = VOTABLE_MEDIA

    def error_body(self, err: ArchiveError) -> tuple[int, bytes]:
        message = err.message
        if err.position:
            message = f"{message} (line {err.position[0]}, column {err.position[1]})"
        status = err.status
        if 400 <= status < 500 and status not in (401, 403, 404, 405, 413):
            status = 400  # DALI: parameter and query errors are 400, whatever the core's code
        return status, error_votable(message)

    @property
    def tap_url(self) -> str:
        """The service's base URL as clients reach it (…/archive/tap)."""
        return self.archive_url("tap", absolute=True)

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
        uploads = tap_uploads.stage(self.archive, specs, files, self.job_of_url) if specs else []
        return {
            "query": query,
            "row_limit": maxrec,
            "format": fmt_value,
            "uploads": uploads,
            "tap_schema": tap_schema.mentions_tap_schema(query),
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


@web.stream_request_body
class SyncHandler(TapParamsHandler):
    """``GET|POST sync``: run one ADQL query and answer its rows."""

    @endpoint(anonymous=True)
    async def get(self):
        await self.sync()

    @endpoint(anonymous=True)
    async def post(self):
        await self.sync()

    async def sync(self) -> None:
        params, files = self.tap_params()
        request = self.query_request(params, files)
        try:
            fmt = tap_format(request["format"])
            info = formats.ResultInfo(table_name="result", query=request["query"], row_limit=request["row_limit"])
            await self.query_and_stream(fmt, info, tap_uploads.run_sync, self.archive, self.principal, request)
        finally:
            tap_uploads.discard(request["uploads"])


class CapabilitiesHandler(TapHandler):
    """``GET capabilities``: VOSI capabilities with the TAPRegExt TableAccess description."""

    @endpoint(anonymous=True)
    async def get(self):
        base = escape(self.tap_url)
        geo = "".join(f"<feature><form>{f}</form></feature>" for f in GEOMETRY)
        outputs = []
        for ivo_id, mime, aliases in OUTPUTS:
            attr = f' ivo-id="{ivo_id}"' if ivo_id else ""
            outputs.append(f"<outputFormat{attr}>{_el('mime', mime)}{''.join(_el('alias', a) for a in aliases)}</outputFormat>")
        limits = self.archive.config

        def vosi(std: str, path: str) -> str:
            return (f'<capability standardID="ivo://ivoa.net/std/VOSI#{std}"><interface xsi:type="vs:ParamHTTP">'
                    f'<accessURL use="full">{base}/{path}</accessURL></interface></capability>')

        body = (
            f'<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" xmlns:vr="{VR}" '
            f'xmlns:vs="{VS}" xmlns:tr="{TR}" xmlns:xsi="{XSI}">'
            '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">'
            f'<interface xsi:type="vs:ParamHTTP" role="std" version="1.1"><accessURL use="base">{base}</accessURL></interface>'
            "<language><name>ADQL</name>"
            '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>'
            '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>'
            "<description>ADQL 2.1, compiled to the archive's SQL engine</description>"
            f'<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">{geo}</languageFeatures>'
            "</language>"
            + "".join(outputs)
            + '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
            '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>'
            f'<retentionPeriod><default>{int(limits.job_retention or 0)}</default></retentionPeriod>'
            # sync queries stop at the quick-query limit; async jobs run as long as they need (0)
            f"<executionDuration><default>0</default></executionDuration>"
            f'<outputLimit><default unit="row">{DEFAULT_MAXREC}</default><hard unit="row">{HARD_MAXREC}</hard></outputLimit>'
            f'<uploadLimit><hard unit="byte">{int(limits.upload_limit)}</hard></uploadLimit>'
            "</capability>"
            + vosi("capabilities", "capabilities") + vosi("availability", "availability") + vosi("tables-1.1", "tables")
            # image cutouts of the same archive (faces/soda.py)
            + '<capability standardID="ivo://ivoa.net/std/SODA#sync-1.0"><interface xsi:type="vs:ParamHTTP" role="std">'
            f'<accessURL use="base">{escape(self.soda_url)}</accessURL></interface></capability>'
            + '<capability standardID="ivo://ivoa.net/std/DALI#examples"><interface xsi:type="vr:WebBrowser">'
            f'<accessURL use="full">{base}/examples</accessURL></interface></capability>'
            "</vosi:capabilities>"
        )
        self.send_xml(body)


class AvailabilityHandler(TapHandler):
    """``GET availability``: the service is up whenever it answers."""

    @endpoint(anonymous=True)
    async def get(self):
        self.send_xml('<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
                      "<vosi:available>true</vosi:available></vosi:availability>")


class TablesHandler(TapHandler):
    """``GET tables``: the VODataService tableset (columns always included, whatever ``detail``)."""

    @endpoint(anonymous=True)
    async def get(self):
        schemas = await self.call(tap_schema.describe, self.archive, self.principal)
        out = [f'<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" xmlns:vs="{VS}" xmlns:xsi="{XSI}">']
        for s in schemas:
            out.append("<schema>" + _el("name", s.name) + _el("description", s.description))
            out += [table_xml(t) for t in s.tables]
            out.append("</schema>")
        out.append("</vosi:tableset>")
        self.send_xml("".join(out))


class TableHandler(TapHandler):
    """``GET tables/{name}``: one ``vosi:table`` (name compared case-insensitively)."""

    @endpoint(anonymous=True)
    async def get(self, name: str):
        schemas = await self.call(tap_schema.describe, self.archive, self.principal)
        table = tap_schema.find_table(schemas, name)
        if table is None:
            raise not_found(f"unknown table {name!r}")
        ns = f' xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" xmlns:vs="{VS}" xmlns:xsi="{XSI}"'
        self.send_xml(table_xml(table, "vosi:table", ns))


class ExamplesHandler(TapHandler):
    """``GET examples``: DALI examples, an XHTML page with RDFa-marked runnable queries."""

    @endpoint(anonymous=True)
    async def get(self):
        items = []
        for ident, title, text, query in EXAMPLES:
            items.append(
                f'<div id="{ident}" resource="#{ident}" typeof="example"><h2 property="name">{escape(title)}</h2>'
                f"<p>{escape(text)}</p>"
                f'<pre class="dali-example-query-sql" property="query">{escape(query)}</pre></div>'
            )
        body = (
            '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" vocab="http://www.ivoa.net/rdf/examples#">'
            "<head><title>TAP examples</title></head><body><h1>Example queries</h1>"
            + "".join(items) + "</body></html>"
        )
        self.finish(body, set_content_type="application/xhtml+xml; charset=UTF-8")


class NotFoundHandler(TapHandler):
    """Everything else under ``archive/tap``: a 404 error VOTable."""

    @endpoint(anonymous=True)
    async def get(self, path: str):
        raise not_found(f"no such TAP resource: {path!r} (try sync, capabilities, tables, availability, examples)")

    post = get


def tap_handlers() -> list[tuple[str, type]]:
    from .uws import uws_handlers  # it builds on this module's handlers

    return uws_handlers() + [
        (r"archive/tap/sync/?", SyncHandler),
        (r"archive/tap/capabilities/?", CapabilitiesHandler),
        (r"archive/tap/availability/?", AvailabilityHandler),
        (r"archive/tap/tables/?", TablesHandler),
        (r"archive/tap/tables/(?P<name>[^/]+)/?", TableHandler),
        (r"archive/tap/examples/?", ExamplesHandler),
        (r"archive/tap(?P<path>/?.*)", NotFoundHandler),
    ]
