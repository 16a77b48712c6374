"""HEALPix positional indexes made at ingest: uploaded tables with sky positions gain an index
column, are stored in its order, and ADQL cone searches and cross-matches on them use it."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy import units as u
from astropy.coordinates import SkyCoord
from cdshealpix.nested import healpix_to_lonlat, lonlat_to_healpix

from jupyter_archive.core.sql import healpix_index

from tests.support import body_json

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


def _sql_indices(ra, dec, dtype="DOUBLE"):
    con = duckdb.connect()
    con.register("pts", pa.table({"i": np.arange(len(ra)), "ra": ra, "dec": dec}))
    sql = healpix_index.with_index(f"SELECT i, CAST(ra AS {dtype}) AS ra, CAST(dec AS {dtype}) AS dec FROM pts", "ra", "dec")
    got = con.execute(f"{sql} ORDER BY i").fetchnumpy()[healpix_index.COLUMN]
    return np.ma.filled(np.ma.masked_array(got), -1).astype(np.int64)


def test_sql_index_equals_cdshealpix_over_the_sphere():
    rng = np.random.default_rng(20261123)
    n = 500_000
    ra = np.concatenate([rng.uniform(-400, 760, n), [0, 360, -360, 720, 359.9999999999, 1e-12, 180]])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n))), [90, -90, 89.9999999, -89.9999999, 41.8, -41.81, 0.5]])
    polar = rng.uniform(-90, 90, 20_000)
    polar = np.sign(polar) * (90 - np.abs(polar) * 1e-4)  # within 0.009 degrees of a pole
    ra, dec = np.concatenate([ra, rng.uniform(0, 360, polar.size)]), np.concatenate([dec, polar])
    expected = lonlat_to_healpix((ra % 360) * u.deg, dec * u.deg, healpix_index.ORDER).astype(np.int64)
    got = _sql_indices(ra, dec)
    assert np.array_equal(got, expected), np.nonzero(got != expected)[0][:10]


def test_sql_index_of_cell_corners_is_a_cell_touching_them():
    # Exact corners (the centre of base cells, their vertices): either touching cell is right.
    ra = np.array([0, 45, 90, 135, 180, 225, 270, 315] * 3, dtype=float)
    dec = np.repeat([0.0, np.degrees(np.arcsin(2 / 3)), -np.degrees(np.arcsin(2 / 3))], 8)
    got = _sql_indices(ra, dec)
    lon, lat = healpix_to_lonlat(got, healpix_index.ORDER)
    sep = SkyCoord(lon, lat).separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
    assert np.all(sep < 0.5), sep  # order-20 cells are ~0.2 arcsec across


def test_sql_index_is_null_for_missing_or_impossible_positions():
    ra = np.array([10.0, np.nan, 10.0, np.inf, 10.0, 10.0])
    dec = np.array([np.nan, 10.0, 91.0, 10.0, -90.5, 20.0])
    got = _sql_indices(ra, dec)
    assert got[:5].tolist() == [-1] * 5 and got[5] >= 0
    # float columns (REAL) are indexed as their double values
    f32 = _sql_indices(np.float32([12.5]), np.float32([-33.25]), "FLOAT")
    assert f32[0] == lonlat_to_healpix([12.5] * u.deg, [-33.25] * u.deg, healpix_index.ORDER)[0]


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
