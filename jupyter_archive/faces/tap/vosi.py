"""The VOSI and DALI documents pyvo, TOPCAT and taplint read: ``capabilities``,
``availability``, ``tables``, ``tables/{name}`` (the caller's TAP_SCHEMA) and ``examples``."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from ...core.catalog import tap_schema
from ...core.errors import not_found
from ..base import endpoint
from .dali import DEFAULT_MAXREC, HARD_MAXREC, XSI, TapHandler

VR = "http://www.ivoa.net/xml/VOResource/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
GEOMETRY = ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE", "COORD1", "COORD2", "AREA", "CENTROID")
# (ivo-id or None, mime, aliases) of each output format, as capabilities declares them
OUTPUTS = [
    ("ivo://ivoa.net/std/TAPRegExt#output-votable-binary2", "application/x-votable+xml", ("votable", "votable/b2")),
    ("ivo://ivoa.net/std/TAPRegExt#output-votable-td", "application/x-votable+xml;serialization=TABLEDATA", ("votable/td",)),
    (None, "text/csv", ("csv",)),
    (None, "text/tab-separated-values", ("tsv",)),
    (None, "application/fits", ("fits",)),
    (None, "application/vnd.apache.parquet", ("parquet", "vo-parquet")),  # VOParquet: VOTable metadata inside
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
        schemas = await self.call(tap_schema.describe, self.archive.catalog, self.principal)
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
        schemas = await self.call(tap_schema.describe, self.archive.catalog, self.principal)
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
