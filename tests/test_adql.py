"""ADQL through the SQL pipeline against a real in-memory DuckDB; geometry checked with astropy."""

from __future__ import annotations

import math

import astropy.units as u
import duckdb
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import Latitude, Longitude, SkyCoord
from cdshealpix.nested import lonlat_to_healpix

from jupyter_archive.core import adql, demo
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.sql import compile_query, rebind
from tests.test_sql import PHOTO, DictResolver

INDEX = adql.parse_healpix_spec(adql.DEMO_PHOTOOBJ_HEALPIX)


def photo_index(target):
    return INDEX if target.name.lower() == "photoobj" else None


@pytest.fixture
def con():
    c = duckdb.connect()
    c.sql("ATTACH ':memory:' AS demo")
    c.sql("ATTACH ':memory:' AS mydb")
    c.sql('CREATE TABLE demo.main."PhotoObj" ("objID" BIGINT, ra DOUBLE, dec DOUBLE, type VARCHAR, state VARCHAR)')
    c.executemany('INSERT INTO demo.main."PhotoObj" VALUES (?, ?, ?, ?, ?)', PHOTO)
    c.sql("CREATE TABLE demo.main.pts (id INTEGER, ra DOUBLE, dec DOUBLE)")
    yield c
    c.close()


@pytest.fixture
def resolver(con):
    return DictResolver(con)


def q(con, resolver, text, **kw):
    compiled = compile_query(text, "adql", resolver, **kw)
    st = compiled.statements[0]
    return con.sql(st.sql, params=st.params or None).fetchall()


def one(con, resolver, expr, **kw):
    return q(con, resolver, f"SELECT {expr} FROM demo.PhotoObj WHERE objID = 1", **kw)[0][0]


def error(resolver, text, **kw) -> ArchiveError:
    with pytest.raises(ArchiveError) as info:
        compile_query(text, "adql", resolver, **kw)
    return info.value


def load_points(con, ra, dec):
    con.sql("DELETE FROM demo.main.pts")
    con.executemany("INSERT INTO demo.main.pts VALUES (?, ?, ?)", [(i, float(a), float(d)) for i, (a, d) in enumerate(zip(ra, dec))])


def inside_ids(con, resolver, region: str) -> set[int]:
    rows = q(con, resolver, f"SELECT id FROM demo.pts WHERE CONTAINS(POINT('ICRS', ra, dec), {region}) = 1")
    return {r[0] for r in rows}


def around(rng, ra0, dec0, radius, n):
    """n random points within ``radius`` degrees of (ra0, dec0), via astropy offsets."""
    c = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    pa_ = rng.uniform(0, 360, n) * u.deg
    sep = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(radius)), 1, n))) * u.deg
    p = c.directional_offset_by(pa_, sep)
    return p.ra.deg, p.dec.deg


# --- basics ----------------------------------------------------------------------------------


def test_top_offset_and_order(con, resolver):
    assert q(con, resolver, "SELECT TOP 2 objID FROM demo.PhotoObj ORDER BY ra DESC") == [(6,), (5,)]
    assert q(con, resolver, "SELECT TOP 2 objID FROM demo.PhotoObj ORDER BY ra OFFSET 3") == [(4,), (5,)]
    assert q(con, resolver, "SELECT DISTINCT TOP 2 type FROM demo.photoobj ORDER BY type") == [("GALAXY",), ("QSO",)]
    sql = compile_query("SELECT TOP 3 ra FROM demo.PhotoObj ORDER BY ra", "adql", resolver).statements[0].sql
    assert "LIMIT 3" in sql and "NULLS" not in sql


def test_quoted_identifiers_and_strings(con, resolver):
    assert q(con, resolver, """SELECT "objID" FROM demo."PhotoObj" WHERE type = 'QSO'""") == [(5,)]


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("ABS(-2.5)", 2.5), ("CEILING(1.2)", 2), ("FLOOR(-1.2)", -2), ("DEGREES(PI())", 180.0),
        ("RADIANS(180.0)", math.pi), ("EXP(1.0)", math.e), ("LOG(EXP(2.0))", 2.0), ("LOG10(1000.0)", 3.0),
        ("MOD(7, 3)", 1), ("POWER(2.0, 10)", 1024.0), ("SQRT(16.0)", 4.0), ("ROUND(2.567, 2)", 2.57),
        ("ROUND(2.5)", 3), ("TRUNCATE(2.567, 2)", 2.56), ("TRUNCATE(-2.7)", -2), ("PI()", math.pi),
        ("ACOS(0.5)", math.acos(0.5)), ("ASIN(0.5)", math.asin(0.5)), ("ATAN(1.0)", math.pi / 4),
        ("ATAN2(1.0, -1.0)", math.atan2(1, -1)), ("COS(1.0)", math.cos(1)), ("SIN(1.0)", math.sin(1)),
        ("TAN(1.0)", math.tan(1)), ("COT(1.0)", 1 / math.tan(1)), ("LOWER('AbC')", "abc"),
        ("UPPER('AbC')", "ABC"), ("'ab' || 'cd'", "abcd"), ("COALESCE(NULL, 3)", 3),
        ("CAST(2.7 AS INTEGER)", 3),
    ],
)  # fmt: skip
def test_math_and_string_functions(con, resolver, expr, expected):
    got = one(con, resolver, expr)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert float(got) == pytest.approx(expected, rel=1e-12)


def test_rand_and_ilike(con, resolver):
    assert 0 <= one(con, resolver, "RAND()") < 1
    assert q(con, resolver, "SELECT objID FROM demo.PhotoObj WHERE type ILIKE 'q%'") == [(5,)]
    assert error(resolver, "SELECT RAND(3) FROM demo.PhotoObj").code == "unsupported"


def test_syntax_errors_with_position(resolver):
    err = error(resolver, "SELECT ra\nFROM demo.PhotoObj WHERE ra >")
    assert err.code == "syntax_error" and err.status == 400 and err.position is not None
    err = error(resolver, "SELECT ra FROM demo.PhotoObj LIMIT 5")
    assert err.code == "syntax_error" and "TOP" in err.message and err.position == (1, 30)


def test_refusals(resolver):
    assert "single SELECT" in error(resolver, "SELECT 1; SELECT 2").message
    assert error(resolver, "SELECT ra INTO mydb.x FROM demo.PhotoObj").code == "unsupported"
    assert error(resolver, "DELETE FROM mydb.T").code == "unsupported"
    err = error(resolver, "SELECT POINT('GALACTIC', ra, dec) FROM demo.PhotoObj")
    assert err.code == "unsupported" and "GALACTIC" in err.message
    err = error(resolver, "SELECT ra FROM demo.PhotoObj WHERE INTERSECTS(POLYGON(0,0,1,0,1,1), BOX(0,0,1,1)) = 1")
    assert err.code == "unsupported" and err.details["function"] == "INTERSECTS"
    err = error(resolver, "SELECT ra FROM demo.PhotoObj WHERE CONTAINS(POINT(ra, dec), s_region) = 1")
    assert err.code == "unsupported" and err.details["function"] == "CONTAINS"


# --- geometry --------------------------------------------------------------------------------

PAIRS = [(10, -1, 20, 0.5), (359.5, 1, 0.5, -1), (0, 89.9, 180, 89.9), (12.3, 45.6, 200.1, -33.3), (5, 5, 5, 5)]


@pytest.mark.parametrize("ra1,dec1,ra2,dec2", PAIRS)
def test_distance_matches_astropy(con, resolver, ra1, dec1, ra2, dec2):
    want = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg
    two = one(con, resolver, f"DISTANCE(POINT('ICRS', {ra1}, {dec1}), POINT('ICRS', {ra2}, {dec2}))")
    four = one(con, resolver, f"DISTANCE({ra1}, {dec1}, {ra2}, {dec2})")
    assert two == pytest.approx(want, abs=1e-9) and four == pytest.approx(want, abs=1e-9)


def test_coords_centroid_coordsys_and_values(con, resolver):
    row = q(con, resolver, "SELECT COORD1(POINT('ICRS', ra, dec)), COORD2(POINT(ra, dec)), "
            "COORD1(CENTROID(CIRCLE('ICRS', 1, 2, 3))), COORDSYS(POINT('ICRS', 1, 2)), "
            "POINT('ICRS', ra, dec), CIRCLE(ra, dec, 0.5), POLYGON(1, 2, 3, 4, 5, 6) "
            "FROM demo.PhotoObj WHERE objID = 2")[0]  # fmt: skip
    assert row == (20.0, 0.5, 1.0, "ICRS", [20.0, 0.5], [20.0, 0.5, 0.5], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


@pytest.mark.parametrize("ra0,dec0,r", [(150, 5, 0.5), (0.2, 0.0, 1.0), (40, 89.5, 2.0)])
def test_contains_circle_and_distance_filter(con, resolver, ra0, dec0, r):
    rng = np.random.default_rng(1)
    ra, dec = around(rng, ra0, dec0, 2 * r, 2000)
    load_points(con, ra, dec)
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    want = set(np.flatnonzero(sep <= r).tolist())
    assert inside_ids(con, resolver, f"CIRCLE('ICRS', {ra0}, {dec0}, {r})") == want
    assert inside_ids(con, resolver, f"CIRCLE(POINT({ra0}, {dec0}), {r})") == want
    rows = q(con, resolver, f"SELECT id FROM demo.pts WHERE DISTANCE(POINT(ra, dec), POINT({ra0}, {dec0})) <= {r}")
    assert {x[0] for x in rows} == want
    outside = q(con, resolver, f"SELECT COUNT(*) FROM demo.pts WHERE 0 = CONTAINS(POINT(ra, dec), CIRCLE({ra0}, {dec0}, {r}))")
    assert outside[0][0] == 2000 - len(want)
    flags = q(con, resolver, f"SELECT id, CONTAINS(POINT(ra, dec), CIRCLE({ra0}, {dec0}, {r})) FROM demo.pts")
    assert {i for i, f in flags if f == 1} == want


def gnomonic(ra, dec, ra0, dec0):
    """Tangent-plane (x, y) about (ra0, dec0) via astropy's offset frame, and whether in front."""
    off = SkyCoord(ra * u.deg, dec * u.deg).transform_to(SkyCoord(ra0 * u.deg, dec0 * u.deg).skyoffset_frame())
    lon, lat = off.lon.rad, off.lat.rad
    front = np.cos(lat) * np.cos(lon) > 0
    return np.tan(lon), np.tan(lat) / np.cos(lon), front


@pytest.mark.parametrize("ra0,dec0,w,h", [(150, 5, 2, 1), (0, 0, 4, 2), (30, 70, 10, 6)])
def test_contains_box_is_the_great_circle_box(con, resolver, ra0, dec0, w, h):
    rng = np.random.default_rng(2)
    ra, dec = around(rng, ra0, dec0, max(w, h), 3000)
    load_points(con, ra, dec)
    x, y, front = gnomonic(ra, dec, ra0, dec0)
    inside = front & (np.abs(x) <= np.tan(np.radians(w / 2))) & (np.abs(y) <= np.tan(np.radians(h / 2)))
    want = set(np.flatnonzero(inside).tolist())
    assert 0 < len(want) < 3000
    assert inside_ids(con, resolver, f"BOX('ICRS', {ra0}, {dec0}, {w}, {h})") == want
    assert inside_ids(con, resolver, f"BOX(POINT('ICRS', {ra0}, {dec0}), {w}, {h})") == want


def planar_inside(x, y, vx, vy):
    """Even-odd crossing test in a plane (great circles are straight lines in gnomonic projection)."""
    inside = np.zeros(len(x), bool)
    for i in range(len(vx)):
        j = (i + 1) % len(vx)
        crosses = (vy[i] > y) != (vy[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = (vx[j] - vx[i]) * (y - vy[i]) / (vy[j] - vy[i]) + vx[i]
        inside ^= crosses & (x < xc)
    return inside


POLYGONS = {
    "square across ra=0": [(358, -2), (2, -2), (2, 2), (358, 2)],
    "concave (clockwise)": [(150, 0), (150, 4), (152, 4), (151, 2), (154, 2), (154, 0)],
    "around the pole": [(0, 85), (90, 85), (180, 85), (270, 85)],
    "triangle": [(10, 10), (14, 11), (11, 14)],
}


@pytest.mark.parametrize("name", POLYGONS)
def test_contains_polygon(con, resolver, name):
    verts = POLYGONS[name]
    centre = SkyCoord([v[0] for v in verts] * u.deg, [v[1] for v in verts] * u.deg).cartesian.mean()
    c = SkyCoord(centre, representation_type="cartesian").spherical
    ra0, dec0 = c.lon.deg, c.lat.deg
    rng = np.random.default_rng(3)
    ra, dec = around(rng, ra0, dec0, 8, 3000)
    load_points(con, ra, dec)
    x, y, _ = gnomonic(ra, dec, ra0, dec0)
    vx, vy, _ = gnomonic(np.array([v[0] for v in verts], float), np.array([v[1] for v in verts], float), ra0, dec0)
    want = set(np.flatnonzero(planar_inside(x, y, vx, vy)).tolist())
    assert 0 < len(want) < 3000
    flat = ", ".join(f"{a}, {d}" for a, d in verts)
    assert inside_ids(con, resolver, f"POLYGON('ICRS', {flat})") == want
    points = ", ".join(f"POINT({a}, {d})" for a, d in verts)
    assert inside_ids(con, resolver, f"POLYGON({points})") == want


def test_box_equals_polygon_of_its_corners(con, resolver):
    ra0, dec0, w, h = 30.0, 60.0, 8.0, 4.0
    off = SkyCoord(ra0 * u.deg, dec0 * u.deg).skyoffset_frame()
    tx, ty = math.tan(math.radians(w / 2)), math.tan(math.radians(h / 2))
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):  # inverse gnomonic of (+-tx, +-ty)
        lon, lat = math.atan(sx * tx), math.atan(sy * ty * math.cos(math.atan(sx * tx)))
        p = SkyCoord(lon * u.rad, lat * u.rad, frame=off).icrs
        corners.append(f"{float(p.ra.deg)!r}, {float(p.dec.deg)!r}")
    box = one(con, resolver, f"AREA(BOX({ra0}, {dec0}, {w}, {h}))")
    poly = one(con, resolver, f"AREA(POLYGON({', '.join(corners)}))")
    assert box == pytest.approx(poly, rel=1e-9)


def test_area(con, resolver):
    r = 2.0
    assert one(con, resolver, f"AREA(CIRCLE('ICRS', 10, 20, {r}))") == pytest.approx(
        2 * math.pi * (1 - math.cos(math.radians(r))) * (180 / math.pi) ** 2, rel=1e-12
    )
    assert one(con, resolver, "AREA(BOX(0, 0, 0.1, 0.1))") == pytest.approx(0.01, rel=1e-5)
    octant = 4 * math.pi / 8 * (180 / math.pi) ** 2
    assert one(con, resolver, "AREA(POLYGON(0, 0, 90, 0, 0, 90))") == pytest.approx(octant, rel=1e-12)
    assert one(con, resolver, "AREA(POLYGON(0, 90, 90, 0, 0, 0))") == pytest.approx(octant, rel=1e-12)
    assert one(con, resolver, "AREA(POINT(1, 2))") == 0


def test_intersects(con, resolver):
    assert one(con, resolver, "INTERSECTS(CIRCLE(0, 0, 1), CIRCLE(1.5, 0, 0.6))") == 1
    assert one(con, resolver, "INTERSECTS(CIRCLE(0, 0, 1), CIRCLE(1.5, 0, 0.4))") == 0
    assert one(con, resolver, "INTERSECTS(CIRCLE(359.5, 0, 1), CIRCLE(0.5, 0, 0.1))") == 1
    assert one(con, resolver, "INTERSECTS(POINT(0.5, 0.5), BOX(0, 0, 2, 2))") == 1
    assert one(con, resolver, "INTERSECTS(POLYGON(0, 0, 2, 0, 1, 2), POINT(5, 5))") == 0
    assert one(con, resolver, "CONTAINS(CIRCLE(0, 0, 0.5), CIRCLE(0.2, 0, 1))") == 1
    assert one(con, resolver, "CONTAINS(CIRCLE(0, 0, 0.9), CIRCLE(0.2, 0, 1))") == 0


# --- the HEALPix speed-up --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sky():
    """200k points (a 10x10 deg field, a field across ra=0, a polar cap), ids built like the demo's."""
    rng = np.random.default_rng(7)
    parts = []
    for ra_lo, ra_hi, dec_lo, dec_hi, n in ((150, 160, 0, 10, 120_000), (-5, 5, -5, 5, 40_000), (0, 360, 80, 90, 40_000)):
        ra = rng.uniform(ra_lo, ra_hi, n) % 360
        dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians([dec_lo, dec_hi])), n)))
        parts.append((ra, dec))
    ra, dec = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    cell = lonlat_to_healpix(Longitude(ra, u.deg), Latitude(dec, u.deg), INDEX.order).astype(np.int64)
    order = np.lexsort((np.arange(len(ra)), cell))
    ra, dec, cell = ra[order], dec[order], cell[order]
    rank = np.arange(len(cell)) - np.searchsorted(cell, cell)
    objid = (cell << INDEX.shift) | rank
    return pa.table({"objID": objid, "ra": ra, "dec": dec})


@pytest.fixture
def sky_con(sky):
    c = duckdb.connect()
    c.sql("ATTACH ':memory:' AS demo")
    c.sql("ATTACH ':memory:' AS mydb")
    c.register("src", sky)
    c.sql('CREATE TABLE demo.main."PhotoObj" AS SELECT * FROM src ORDER BY "objID"')
    yield c
    c.close()


CONES = [(155, 5, 0.2), (150.05, 0.1, 0.5), (160, 10, 1), (0, 0, 0.3), (359.9, -1, 0.5), (0.1, 4, 2), (33, 89.9, 0.5), (200, 85, 3), (155, 5, 0.001)]


def test_demo_convention_matches_demo_module():
    assert INDEX == ("objid", demo.OBJID_HEALPIX_ORDER, demo.OBJID_SHIFT, "ra", "dec")
    info = {"HEALPIX:photoobj": adql.DEMO_PHOTOOBJ_HEALPIX}
    assert adql.healpix_index_from_info(info, "PhotoObj") == INDEX
    assert adql.healpix_index_from_info(info, "SpecObj") is None
    with pytest.raises(ValueError):
        adql.parse_healpix_spec("objid,12,99,ra,dec")


@pytest.mark.parametrize("ra0,dec0,r", CONES)
def test_cone_speed_up_same_result(sky, sky_con, ra0, dec0, r):
    res = DictResolver(sky_con)
    sep = SkyCoord(sky["ra"].to_numpy() * u.deg, sky["dec"].to_numpy() * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    want = set(sky["objID"].to_numpy()[sep <= r].tolist())
    for text in (
        f"SELECT objID FROM demo.PhotoObj WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {r})) = 1",
        f"SELECT p.objID FROM demo.PhotoObj AS p WHERE p.dec > -90 AND 1 = CONTAINS(POINT(p.ra, p.dec), CIRCLE({ra0}, {dec0}, {r}))",
        f"SELECT objID FROM demo.PhotoObj WHERE DISTANCE(POINT(ra, dec), POINT({ra0}, {dec0})) <= {r}",
        f"SELECT objID FROM demo.PhotoObj WHERE {r} >= DISTANCE(POINT({ra0}, {dec0}), POINT(ra, dec))",
    ):
        fast = compile_query(text, "adql", res, positional_index=photo_index).statements[0]
        plain = compile_query(text, "adql", res).statements[0]
        assert '"objid" between' in fast.sql.lower() and '"objid" between' not in plain.sql.lower()
        got = {x[0] for x in sky_con.sql(fast.sql).fetchall()}
        assert got == {x[0] for x in sky_con.sql(plain.sql).fetchall()} == want


def test_cone_speed_up_with_parameters_survives_rebind(sky, sky_con):
    res = DictResolver(sky_con)
    text = "SELECT COUNT(*) FROM demo.PhotoObj WHERE CONTAINS(POINT(ra, dec), CIRCLE(:ra, :dec, :r)) = 1"
    compiled = compile_query(text, "adql", res, params={"ra": 155.0, "dec": 5.0, "r": 0.3}, positional_index=photo_index)
    st = compiled.statements[0]
    assert '"objid" between' in st.sql.lower() and "IS DISTINCT FROM" in st.sql
    plain = compile_query(text, "adql", res, params={"ra": 151.0, "dec": 2.0, "r": 0.4}).statements[0]
    again = rebind(compiled, params={"ra": 151.0, "dec": 2.0, "r": 0.4}).statements[0]
    want = sky_con.sql(plain.sql, params=plain.params).fetchall()
    assert want[0][0] > 100
    assert sky_con.sql(again.sql, params=again.params).fetchall() == want


def test_no_speed_up_when_not_applicable(sky_con):
    res = DictResolver(sky_con)
    for text in (
        "SELECT objID FROM demo.PhotoObj WHERE CONTAINS(POINT(ra, dec), CIRCLE(ra, 5, 1)) = 1",  # centre not constant
        "SELECT objID FROM demo.PhotoObj WHERE dec > 5 OR CONTAINS(POINT(ra, dec), CIRCLE(155, 5, 1)) = 1",  # under OR
        "SELECT objID FROM demo.PhotoObj WHERE CONTAINS(POINT(dec, ra), CIRCLE(155, 5, 1)) = 1",  # other columns
    ):
        assert '"objid" between' not in compile_query(text, "adql", res, positional_index=photo_index).statements[0].sql.lower()
