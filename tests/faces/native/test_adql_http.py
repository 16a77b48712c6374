"""ADQL through the native API on the demo: geometry, and cone searches that use PhotoObj's HEALPix-ordered objid."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from jupyter_archive.core.backends.metadata import write_metadata

from tests.support import body_json

FIELDS = [  # id, pos, s_region: a square across RA 0, a triangle near the pole
    (1, [0.0, 0.0], [359.0, -1.0, 1.0, -1.0, 1.0, 1.0, 359.0, 1.0]),
    (2, [60.0, 88.0], [0.0, 87.0, 120.0, 87.0, 240.0, 87.0]),
]


@pytest.fixture
def archive_data_dir(archive_data_dir):
    """The demo plus DEMO.fields, whose DALI columns the mount's metadata declares as geometry."""
    con = duckdb.connect(str(archive_data_dir / "demo" / "demo.duckdb"))
    con.sql("CREATE TABLE fields (id INTEGER, pos DOUBLE[], s_region DOUBLE[])")
    con.executemany("INSERT INTO fields VALUES (?, ?, ?)", FIELDS)
    write_metadata(con, "fields", "observed fields", {"pos": {"xtype": "point", "unit": "deg"}, "s_region": {"xtype": "polygon"}})
    con.close()
    return archive_data_dir


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


async def test_geometry_columns_and_region_pairs(fetch):
    resp = await adql(fetch, "SELECT id, AREA(s_region), COORD1(pos), CENTROID(s_region) FROM demo.fields "
                             "WHERE CONTAINS(POINT(0.5, 0.5), s_region) = 1 OR INTERSECTS(s_region, CIRCLE(180, 90, 2.5)) = 1 "
                             "ORDER BY id")  # fmt: skip
    assert resp.code == 200, resp.body
    rows = body_json(resp)["data"]
    assert [r[0] for r in rows] == [1, 2] and rows[0][2] == 0.0
    assert rows[0][1] == pytest.approx(4.0, rel=1e-3) and rows[1][3][1] == pytest.approx(90, abs=1e-9)
    resp = await adql(fetch, "SELECT TOP 1 INTERSECTS(BOX(0, 0, 2, 2), POLYGON(0.5, 0.5, 3, 0, 3, 3)), "
                             "CONTAINS(CIRCLE(10, 10, 1), BOX(10, 10, 4, 4)) FROM demo.fields")  # fmt: skip
    assert resp.code == 200 and body_json(resp)["data"] == [[1, 1]]
    bad = await adql(fetch, "SELECT id FROM demo.fields WHERE CONTAINS(POINT(0, 0), id) = 1")
    assert bad.code == 400 and "xtype" in body_json(bad)["error"]["message"]
