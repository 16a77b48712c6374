"""HEALPix positional indexes made at ingest: uploaded tables with sky positions gain an index
column, are stored in its order, and ADQL cone searches and cross-matches on them use it."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy import units as u
from astropy.coordinates import SkyCoord
from cdshealpix.nested import lonlat_to_healpix

from jupyter_archive.core import healpix_index

from .conftest import body_json

API = ("archive", "api", "contexts")


def catalog(n=3000, seed=7):
    rng = np.random.default_rng(seed)
    return {"id": np.arange(n), "RA": rng.uniform(150, 160, n), "Dec": rng.uniform(0, 10, n), "mag": rng.uniform(15, 22, n)}


async def upload_csv(fetch, name, cols, **params):
    lines = [",".join(cols)] + [",".join(repr(float(v)) if isinstance(v, float | np.floating) else str(v) for v in row)
                                for row in zip(*cols.values())]
    return await fetch(*API, "mydb", "tables", name, method="POST", body="\n".join(lines) + "\n",
                       headers={"Content-Type": "text/csv"}, params=params)


async def adql(fetch, text, endpoint="query"):
    return await fetch("archive", "api", endpoint, method="POST", body=json.dumps({"query": text, "language": "adql"}))


def test_sky_columns_by_ucd_then_name():
    cols = [("a", "DOUBLE"), ("b", "DOUBLE"), ("ra", "DOUBLE"), ("dec", "DOUBLE")]
    meta = {"a": {"ucd": "pos.eq.ra;meta.main"}, "b": {"ucd": "pos.eq.dec;meta.main"}}
    assert healpix_index.sky_columns(cols, meta) == ("a", "b")
    assert healpix_index.sky_columns(cols, {}) == ("ra", "dec")
    assert healpix_index.sky_columns([("RAJ2000", "DOUBLE"), ("DEJ2000", "FLOAT")], {}) == ("RAJ2000", "DEJ2000")
    assert healpix_index.sky_columns([("ra", "VARCHAR"), ("dec", "DOUBLE")], {}) is None


async def test_upload_gains_an_ordered_index_used_by_cones(fetch):
    cols = catalog()
    assert (await upload_csv(fetch, "Stars", cols)).code in (200, 201)
    rows = body_json(await fetch("archive", "api", "query", method="POST", body=json.dumps(
        {"query": "SELECT id, RA, Dec, healpix_index FROM mydb.Stars", "context": "MyDB"})))["data"]
    got = np.array([r[3] for r in rows])
    expected = lonlat_to_healpix(np.array([r[1] for r in rows]) * u.deg, np.array([r[2] for r in rows]) * u.deg, healpix_index.ORDER)
    assert np.array_equal(got, expected.astype(np.int64))
    assert np.all(np.diff(got) >= 0)  # stored in index order
    ra0, dec0, r = 155.0, 5.0, 0.5
    text = f"SELECT id FROM mydb.Stars WHERE CONTAINS(POINT('ICRS', RA, Dec), CIRCLE('ICRS', {ra0}, {dec0}, {r})) = 1 ORDER BY id"
    found = [row[0] for row in body_json(await adql(fetch, text))["data"]]
    sep = SkyCoord(cols["RA"] * u.deg, cols["Dec"] * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    assert found == sorted(cols["id"][sep <= r].tolist()) and found
    plan = body_json(await adql(fetch, text, "compile"))
    engine_sql = next(p["detail"] for p in plan["phases"] if p["name"] == "Engine SQL")
    assert "healpix_index" in engine_sql and "BETWEEN" in engine_sql
    # the index column is described like any other
    schema = body_json(await fetch(*API, "mydb", "tables", "Stars"))
    col = next(c for c in schema["columns"] if c["name"] == "healpix_index")
    assert col["ucd"] == "pos.healpix" and "HEALPix" in col["description"]


async def test_append_fills_the_index_and_rename_keeps_it(fetch):
    cols = catalog(500)
    assert (await upload_csv(fetch, "Cat", cols)).code in (200, 201)
    more = catalog(200, seed=8)
    more["id"] = more["id"] + 1000
    resp = await upload_csv(fetch, "Cat", more, mode="append")
    assert resp.code in (200, 201), resp.body
    missing = body_json(await fetch("archive", "api", "query", method="POST", body=json.dumps(
        {"query": "SELECT count(*) FROM mydb.Cat WHERE healpix_index IS NULL"})))["data"]
    assert missing == [[0]]
    assert (await fetch(*API, "mydb", "tables", "Cat", "rename", method="POST", body=json.dumps({"name": "Cat2"}))).code == 200
    text = "SELECT id FROM mydb.Cat2 WHERE CONTAINS(POINT('ICRS', RA, Dec), CIRCLE('ICRS', 155, 5, 0.5)) = 1"
    engine_sql = next(p["detail"] for p in body_json(await adql(fetch, text, "compile"))["phases"] if p["name"] == "Engine SQL")
    assert "healpix_index" in engine_sql


async def test_tables_without_positions_are_left_alone(fetch):
    table = pa.table({"x": [1.0, 2.0], "name": ["a", "b"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    resp = await fetch(*API, "mydb", "tables", "Plain", method="POST", body=buf.getvalue(),
                       headers={"Content-Type": "application/vnd.apache.parquet"})
    assert resp.code in (200, 201), resp.body
    schema = body_json(await fetch(*API, "mydb", "tables", "Plain"))
    assert [c["name"] for c in schema["columns"]] == ["x", "name"]


async def test_null_positions_get_a_null_index(fetch):
    resp = await fetch(*API, "mydb", "tables", "Holes", method="POST", body="ra,dec\n10.0,20.0\n,\n",
                       headers={"Content-Type": "text/csv"})
    assert resp.code in (200, 201), resp.body
    rows = body_json(await fetch("archive", "api", "query", method="POST", body=json.dumps(
        {"query": "SELECT ra, healpix_index FROM mydb.Holes ORDER BY ra NULLS LAST"})))["data"]
    assert rows[0][1] is not None and rows[1] == [None, None]
