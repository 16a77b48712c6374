"""ADQL through the native API on the demo: geometry, and cone searches that use PhotoObj's HEALPix-ordered objid."""

from __future__ import annotations

import json

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from .conftest import body_json


async def adql(fetch, text, **body):
    return await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": text, "language": "adql", **body}))


async def test_cone_search_uses_the_healpix_ranges_and_is_exact(fetch, demo_db):
    ra0, dec0, r = 155.0, 5.0, 0.2
    text = (f"SELECT objid, ra, dec FROM demo.PhotoObj "
            f"WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {r})) = 1 ORDER BY objid")
    resp = await adql(fetch, text)
    assert resp.code == 200, resp.body
    got = [row[0] for row in body_json(resp)["data"]]
    ra, dec, objid = (np.array(c) for c in zip(*demo_db.sql("SELECT ra, dec, objid FROM PhotoObj").fetchall()))
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    assert got == sorted(objid[sep <= r].tolist()) and got
    plan = body_json(await fetch("archive", "api", "compile", method="POST",
                                 body=json.dumps({"query": text, "language": "adql"})))
    engine_sql = next(p["detail"] for p in plan["phases"] if p["name"] == "Engine SQL")
    assert "BETWEEN" in engine_sql and "objid" in engine_sql  # the range predicate on the index


async def test_distance_and_top(fetch):
    resp = await adql(fetch, "SELECT TOP 3 objid, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 155, 5)) AS d "
                             "FROM demo.PhotoObj WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 155, 5)) < 0.1 ORDER BY d")
    assert resp.code == 200, resp.body
    rows = body_json(resp)["data"]
    assert 0 < len(rows) <= 3 and all(r[1] < 0.1 for r in rows) and [r[1] for r in rows] == sorted(r[1] for r in rows)
    bad = await adql(fetch, "SELECT objid FROM demo.PhotoObj LIMIT 3")
    assert bad.code == 400 and body_json(bad)["error"]["code"] == "syntax_error"
