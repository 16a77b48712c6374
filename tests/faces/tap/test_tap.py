"""The TAP face through the real server: sync queries, VOSI documents, TAP_SCHEMA, and pyvo/votlint as clients."""

from __future__ import annotations

import io
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.votable import parse_single_table

from tests.support.faces import QUERY, in_thread, infos, rows, votlint

pyvo = pytest.importorskip("pyvo")


def sync(fetch, params: dict, method="POST", **kw):
    if method == "GET":
        return fetch("archive", "tap", "sync", params=params, **kw)
    return fetch("archive", "tap", "sync", method="POST", body=urllib.parse.urlencode(params),
                 headers={"Content-Type": "application/x-www-form-urlencoded"}, **kw)


# -- sync ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_sync_query_equals_the_database(fetch, demo_db, method):
    resp = await sync(fetch, {"request": "doQuery", "lang": "ADQL", "query": QUERY, "DUMMY": "ignore-me"}, method)
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"].startswith("application/x-votable+xml")
    assert b"<BINARY2>" in resp.body
    assert ("QUERY_STATUS", "OK", "") in infos(resp.body)
    expected = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 5").fetchall()
    assert rows(resp.body) == expected


async def test_sync_multipart_with_crlf_preamble(fetch, demo_db):
    b = "<<<--B-->>>"
    parts = "".join(f"--{b}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    for k, v in {"REQUEST": "doQuery", "LANG": "ADQL-2.0", "QUERY": QUERY, "FORMAT": "votable/td"}.items())
    body = ("\r\n" + parts + f"--{b}--\r\n").encode()
    resp = await fetch("archive", "tap", "sync", method="POST", body=body,
                       headers={"Content-Type": f'multipart/form-data; boundary="{b}"'})
    assert resp.code == 200, resp.body
    assert b"<TABLEDATA>" in resp.body
    assert [r[0] for r in rows(resp.body)] == [r[0] for r in demo_db.sql("SELECT objid FROM PhotoObj ORDER BY objid LIMIT 5").fetchall()]


async def test_maxrec_truncates_with_overflow_and_zero_gives_metadata(fetch):
    resp = await sync(fetch, {"LANG": "ADQL", "QUERY": "SELECT objid FROM demo.PhotoObj", "MAXREC": "7"})
    assert resp.code == 200, resp.body
    assert len(rows(resp.body)) == 7
    assert ("QUERY_STATUS", "OVERFLOW", "") in infos(resp.body)
    exact = await sync(fetch, {"LANG": "ADQL", "QUERY": "SELECT TOP 7 objid FROM demo.PhotoObj", "MAXREC": "7"})
    assert "OVERFLOW" not in [i[1] for i in infos(exact.body)]
    zero = await sync(fetch, {"LANG": "ADQL", "QUERY": QUERY, "MAXREC": "0"})
    assert zero.code == 200, zero.body
    table = parse_single_table(io.BytesIO(zero.body))
    assert [f.name for f in table.fields] == ["objid", "ra", "dec"] and len(table.array) == 0
    assert table.get_field_by_id_or_name("ra").unit == u.deg
    assert ("QUERY_STATUS", "OVERFLOW", "") in infos(zero.body)


async def test_response_formats(fetch, demo_db):
    expected = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 5").fetchall()
    csv = await sync(fetch, {"LANG": "ADQL", "QUERY": QUERY, "RESPONSEFORMAT": "csv"})
    assert csv.code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    lines = csv.body.decode().strip().splitlines()
    assert lines[0] == "objid,ra,dec" and [int(x.split(",")[0]) for x in lines[1:]] == [r[0] for r in expected]
    fit = await sync(fetch, {"LANG": "ADQL", "QUERY": QUERY, "RESPONSEFORMAT": "application/fits"})
    assert fit.code == 200, fit.body
    with fits.open(io.BytesIO(fit.body)) as hdul:
        assert list(hdul[1].data["objid"]) == [r[0] for r in expected]
    bad = await sync(fetch, {"LANG": "ADQL", "QUERY": QUERY, "RESPONSEFORMAT": "image/gif"})
    assert bad.code == 400 and infos(bad.body)[0][:2] == ("QUERY_STATUS", "ERROR")


@pytest.mark.parametrize(
    "params, text",
    [
        ({"LANG": "ADQL", "QUERY": "SELECT objid FROM demo.PhotoObj LIMIT 3"}, ""),
        ({"LANG": "OOBLECK", "QUERY": QUERY}, "OOBLECK"),
        ({"LANG": "ADQL"}, "QUERY"),
        ({"REQUEST": "getCapabilities", "LANG": "ADQL", "QUERY": QUERY}, "REQUEST"),
        ({"LANG": "ADQL", "QUERY": QUERY, "MAXREC": "-1"}, "MAXREC"),
        ({"LANG": "ADQL", "QUERY": "SELECT * FROM demo.NoSuchTable"}, "NoSuchTable"),
        ({"LANG": "ADQL", "QUERY": QUERY, "UPLOAD": "t,param:t"}, "UPLOAD"),
    ],
)
async def test_errors_are_error_votables(fetch, params, text):
    resp = await sync(fetch, params)
    assert resp.code == 400, resp.body
    assert resp.headers["Content-Type"].startswith("application/x-votable+xml")
    (name, value, message), = infos(resp.body)
    assert (name, value) == ("QUERY_STATUS", "ERROR") and text in message and "Traceback" not in message


async def test_cone_search_matches_astropy(fetch, demo_db):
    ra0, dec0, r = 155.0, 5.0, 0.2
    q = (f"SELECT objid FROM demo.PhotoObj WHERE CONTAINS(POINT('ICRS', ra, dec), "
         f"CIRCLE('ICRS', {ra0}, {dec0}, {r})) = 1 ORDER BY objid")
    resp = await sync(fetch, {"LANG": "ADQL", "QUERY": q})
    assert resp.code == 200, resp.body
    got = [row[0] for row in rows(resp.body)]
    ra, dec, objid = (np.array(c) for c in zip(*demo_db.sql("SELECT ra, dec, objid FROM PhotoObj").fetchall()))
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    assert got == sorted(objid[sep <= r].tolist()) and got


async def test_votlint_accepts_results_and_errors(fetch, tmp_path):
    for fmt in ("votable", "votable/td"):
        resp = await sync(fetch, {"LANG": "ADQL", "QUERY": "SELECT TOP 20 * FROM demo.PhotoObj", "FORMAT": fmt, "MAXREC": "10"})
        assert resp.code == 200
        assert votlint(tmp_path, resp.body) == []
    err = await sync(fetch, {"LANG": "OOBLECK", "QUERY": QUERY})
    assert votlint(tmp_path, err.body) == []


# -- VOSI ----------------------------------------------------------------------------------------

NS = {"vosi": "http://www.ivoa.net/xml/VOSICapabilities/v1.0", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


async def test_capabilities_and_availability(fetch, jp_base_url):
    resp = await fetch("archive", "tap", "capabilities")
    assert resp.code == 200 and "xml" in resp.headers["Content-Type"]
    root = ET.fromstring(resp.body)
    caps = {c.get("standardID"): c for c in root.findall("capability")}
    assert set(caps) >= {"ivo://ivoa.net/std/TAP", "ivo://ivoa.net/std/VOSI#capabilities",
                         "ivo://ivoa.net/std/VOSI#availability", "ivo://ivoa.net/std/VOSI#tables-1.1",
                         "ivo://ivoa.net/std/SODA#sync-1.0"}
    soda = caps["ivo://ivoa.net/std/SODA#sync-1.0"].find("interface/accessURL").text
    assert soda.endswith(f"{jp_base_url}archive/soda/sync")
    tap = caps["ivo://ivoa.net/std/TAP"]
    assert tap.get(XSI_TYPE) == "tr:TableAccess"
    assert tap.find("interface/accessURL").text.endswith(f"{jp_base_url}archive/tap")
    assert [v.text for v in tap.findall("language/version")] == ["2.0", "2.1"]
    forms = {f.text for f in tap.findall("language/languageFeatures/feature/form")}
    assert {"POINT", "CIRCLE", "CONTAINS", "DISTANCE", "AREA"} <= forms
    assert tap.find("outputLimit/hard").text == "10000000"
    assert {m.get("ivo-id").split("#")[1] for m in tap.findall("uploadMethod")} == {"upload-inline", "upload-http"}
    avail = ET.fromstring((await fetch("archive", "tap", "availability")).body)
    assert avail.find("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available").text == "true"
    ex = await fetch("archive", "tap", "examples")
    assert ex.code == 200 and b'property="query"' in ex.body and b"CIRCLE" in ex.body


async def tap_query(fetch, q):
    resp = await sync(fetch, {"LANG": "ADQL", "QUERY": q, "FORMAT": "votable/td"})
    assert resp.code == 200, resp.body
    return rows(resp.body)


async def test_tables_and_tap_schema_agree(fetch):
    root = ET.fromstring((await fetch("archive", "tap", "tables")).body)
    schemas = {s.findtext("name"): s for s in root.findall("schema")}
    assert {"demo", "TAP_SCHEMA"} <= set(schemas)
    photo = next(t for t in schemas["demo"].findall("table") if t.findtext("name") == "demo.PhotoObj")
    ra = next(c for c in photo.findall("column") if c.findtext("name") == "ra")
    assert (ra.findtext("unit"), ra.findtext("ucd"), ra.findtext("dataType")) == ("deg", "pos.eq.ra;meta.main", "double")
    vosi_names = sorted(t.findtext("name") for s in schemas.values() for t in s.findall("table"))
    tap_names = sorted(r[0] for r in await tap_query(fetch, "SELECT table_name FROM TAP_SCHEMA.tables"))
    assert "demo.PhotoObj" in tap_names and vosi_names == tap_names
    cols = await tap_query(fetch, "SELECT column_name, unit, ucd, datatype, principal FROM tap_schema.columns "
                                  "WHERE table_name = 'demo.PhotoObj' AND column_name = 'ra'")
    assert cols == [("ra", "deg", "pos.eq.ra;meta.main", "double", 1)]
    assert (await tap_query(fetch, "SELECT COUNT(*) AS nr FROM TAP_SCHEMA.keys")) == [(5,)]
    one = ET.fromstring((await fetch("archive", "tap", "tables", "DEMO.photoobj")).body)
    assert one.findtext("name") == "demo.PhotoObj" and one.findall("column")
    missing = await fetch("archive", "tap", "tables", "demo.nope")
    assert missing.code == 404 and infos(missing.body)[0][1] == "ERROR"
    join = await sync(fetch, {"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_SCHEMA.tables, demo.PhotoObj"})
    assert join.code == 400 and "not supported" in infos(join.body)[0][2]


# -- pyvo ----------------------------------------------------------------------------------------


async def test_pyvo_sync_overflow_tables_and_errors(tap_service, demo_db):
    svc = tap_service

    def work():
        res = svc.run_sync(QUERY)
        over = svc.search("SELECT objid FROM demo.PhotoObj", maxrec=5)
        names = [t.name for t in svc.tables]
        with pytest.raises(pyvo.dal.DALQueryError) as bad:
            svc.run_sync("SELECT objid FROM demo.PhotoObj LIMIT 3")
        return res, over, names, bad.value, svc.hardlimit, svc.examples

    res, over, names, bad, hard, examples = await in_thread(work)
    assert [tuple(r) for r in res.to_table()] == demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 5").fetchall()
    assert len(over) == 5 and over.query_status == "OVERFLOW"
    assert "demo.PhotoObj" in names and "TAP_SCHEMA.columns" in names
    assert str(bad)
    assert hard == 10_000_000 and len(examples) == 3
