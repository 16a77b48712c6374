"""ADQL through the SQL pipeline against a real in-memory DuckDB; geometry checked with astropy.

The HEALPix range filters a cone gets on an index-ordered table are in test_adql_healpix.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from astropy.coordinates import SkyCoord

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.sql import compile_query
from tests.support.sql import DictResolver, photo_con

@pytest.fixture
def con():
    c = photo_con()
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
    err = error(resolver, "SELECT ra FROM demo.PhotoObj WHERE CONTAINS(CIRCLE(0, 0, 1), POINT(0, 0)) = 1")
    assert err.code == "unsupported" and err.details["function"] == "CONTAINS" and "CIRCLE in POINT" in err.message
    err = error(resolver, "SELECT ra FROM demo.PhotoObj WHERE INTERSECTS(CIRCLE(0, 0, 100), BOX(ra, dec, 1, 1)) = 1")
    assert err.code == "unsupported" and "90 degrees" in err.message
    err = error(resolver, "SELECT ra FROM demo.PhotoObj WHERE CONTAINS(POINT(ra, dec), s_region) = 1")
    assert err.code == "unsupported" and err.details["function"] == "CONTAINS" and "xtype" in err.message


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


# --- region pairs and geometry columns -------------------------------------------------------
# Truth is computed independently: astropy's gnomonic projection about the pair makes great
# circles straight lines, so BOX and POLYGON become plane polygons and a CIRCLE a fine 360-gon;
# numpy then answers with plane geometry. Pairs whose boundaries come within EPS (tangent-plane
# units, ~0.006 deg) of each other are left out: there the answer rests on rounding.

EPS = 1e-4
ANCHORS = [(0.0, 0.0), (359.8, 40.0), (120.0, 87.6), (250.0, -88.8), (45.0, 10.0)]


@dataclass
class Shape:
    adql: str  # the ADQL constructor
    dali: list[float]  # the DALI array a geometry column holds (a BOX as the polygon of its corners)
    ra: np.ndarray  # boundary on the sky (a circle: 360 points)
    dec: np.ndarray
    kind: str
    centre: tuple[float, float]


def _lit(values) -> str:
    return ", ".join(repr(float(v)) for v in values)


def random_shape(rng, anchor, kind=None, spread=2.5, scale=1.0) -> Shape:
    """A random CIRCLE, BOX or POLYGON within ``spread`` deg of ``anchor``, sizes times ``scale``."""
    ra_c, dec_c = around(rng, *anchor, spread, 1)
    ra0, dec0 = float(ra_c[0]), float(dec_c[0])
    kind = kind or str(rng.choice(["circle", "box", "polygon"]))
    centre = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    if kind == "circle":
        r = float(rng.uniform(0.2, 1.5)) * scale
        b = centre.directional_offset_by(np.arange(360) * u.deg, r * u.deg)
        return Shape(f"CIRCLE({_lit([ra0, dec0, r])})", [ra0, dec0, r], b.ra.deg, b.dec.deg, kind, (ra0, dec0))
    if kind == "box":
        w, h = (float(x) * scale for x in rng.uniform(0.4, 3.0, 2))
        tx, ty = math.tan(math.radians(w / 2)), math.tan(math.radians(h / 2))
        lon = np.arctan(np.array([-tx, tx, tx, -tx]))  # inverse gnomonic of the corners (+-tx, +-ty)
        lat = np.arctan(np.array([-ty, -ty, ty, ty]) * np.cos(lon))
        b = SkyCoord(lon * u.rad, lat * u.rad, frame=centre.skyoffset_frame()).icrs
        dali = [c for pair in zip(b.ra.deg, b.dec.deg) for c in pair]
        return Shape(f"BOX({_lit([ra0, dec0, w, h])})", dali, b.ra.deg, b.dec.deg, kind, (ra0, dec0))
    n = int(rng.integers(3, 8))  # a star-shaped (possibly concave) polygon
    b = centre.directional_offset_by(np.sort(rng.uniform(0, 360, n)) * u.deg, rng.uniform(0.3, 1.8, n) * scale * u.deg)
    dali = [c for pair in zip(b.ra.deg, b.dec.deg) for c in pair]
    return Shape(f"POLYGON({_lit(dali)})", dali, b.ra.deg, b.dec.deg, kind, (ra0, dec0))


def _orient(p, q, r):
    return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])


def _point_segment_distance(pts, poly):
    a, b = poly[None, :, :], np.roll(poly, -1, 0)[None, :, :]
    p = pts[:, None, :]
    t = np.clip(np.sum((p - a) * (b - a), -1) / np.sum((b - a) ** 2, -1), 0, 1)
    return np.min(np.hypot(*np.moveaxis(a + t[..., None] * (b - a) - p, -1, 0)))


def plane_truth(s1: Shape, s2: Shape):
    """(intersects, s1 in s2, s2 in s1) in the gnomonic plane about the pair, or None if borderline."""
    ra, dec = np.concatenate([s1.ra, s2.ra]), np.concatenate([s1.dec, s2.dec])
    if SkyCoord(s1.ra[0] * u.deg, s1.dec[0] * u.deg).separation(SkyCoord(s2.ra[0] * u.deg, s2.dec[0] * u.deg)).deg > 30:
        return False, False, False  # shapes a few degrees across, far apart
    mid = SkyCoord(SkyCoord(ra * u.deg, dec * u.deg).cartesian.mean(), representation_type="cartesian").spherical
    x, y, front = gnomonic(ra, dec, mid.lon.deg, mid.lat.deg)
    assert front.all()
    p, q = np.stack([x, y], 1)[: len(s1.ra)], np.stack([x, y], 1)[len(s1.ra) :]
    a, b, c, d = p[:, None], np.roll(p, -1, 0)[:, None], q[None], np.roll(q, -1, 0)[None]
    cross = bool(np.any((_orient(a, b, c) * _orient(a, b, d) < 0) & (_orient(c, d, a) * _orient(c, d, b) < 0)))
    if not cross and min(_point_segment_distance(p, q), _point_segment_distance(q, p)) < EPS:
        return None
    p_in_q = planar_inside(p[:, 0], p[:, 1], q[:, 0], q[:, 1])
    q_in_p = planar_inside(q[:, 0], q[:, 1], p[:, 0], p[:, 1])
    return cross or p_in_q[0] or q_in_p[0], not cross and p_in_q.all(), not cross and q_in_p.all()


def random_pairs(seed, n):
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n:
        anchor = ANCHORS[len(pairs) % len(ANCHORS)]
        s1 = random_shape(rng, anchor, scale=1.5)
        nested = len(pairs) % 2  # every other pair: a small shape near the centre of a big one
        s2 = random_shape(rng, s1.centre, spread=0.4, scale=0.3) if nested else random_shape(rng, anchor)
        if nested and rng.uniform() < 0.5:
            s1, s2 = s2, s1
        truth = plane_truth(s1, s2)
        if truth is not None:
            pairs.append((s1, s2, truth))
    return pairs


def test_region_pairs_of_constants_are_decided_at_compile_time(con, resolver):
    pairs = random_pairs(11, 90)
    items = [f"{f}({a.adql}, {b.adql})" for a, b, _ in pairs for f in ("INTERSECTS", "CONTAINS", "CONTAINS")]
    items[2::3] = [f"CONTAINS({b.adql}, {a.adql})" for a, b, _ in pairs]
    text = f"SELECT {', '.join(items)} FROM demo.PhotoObj WHERE objID = 1"
    sql = compile_query(text, "adql", resolver).statements[0].sql
    assert "ATAN2" not in sql and "COS" not in sql  # folded: only TRUE/FALSE remain
    got = q(con, resolver, text)[0]
    want = tuple(int(t) for _, _, truth in pairs for t in truth)
    kinds = [f"{a.kind}/{b.kind}" for a, b, _ in pairs]
    wrong = [(kinds[i // 3], items[i], got[i]) for i in range(len(got)) if got[i] != want[i]]
    assert not wrong
    assert 20 < sum(want[0::3]) < 80 and sum(want[1::3]) + sum(want[2::3]) > 5  # both answers are exercised


class GeoResolver(DictResolver):
    """DictResolver that declares demo.shapes' DALI columns, as a mount's metadata would."""

    def column_meta(self, target):
        if target.name.lower() != "shapes":
            return {}
        return {"pos": {"xtype": "point"}, "circ": {"xtype": "circle"}, "s_region": {"xtype": "polygon", "unit": "deg"}}


@pytest.fixture
def shapes(con):
    """demo.shapes: per row a polygon (a random POLYGON or a BOX's corners), a circle and its centre."""
    rng = np.random.default_rng(5)
    rows, polys, circles = [], [], []
    for i in range(40):
        anchor = ANCHORS[i % len(ANCHORS)]
        poly = random_shape(rng, anchor, "box" if i % 3 == 0 else "polygon")
        small = i % 2 == 0  # half the circles small and near the polygon, so that some lie inside
        circle = random_shape(rng, poly.centre, "circle", 0.3, 0.3) if small else random_shape(rng, anchor, "circle")
        rows.append((i, circle.dali[:2], circle.dali, poly.dali))
        polys.append(poly)
        circles.append(circle)
    con.sql("CREATE TABLE demo.main.shapes (id INTEGER, pos DOUBLE[], circ DOUBLE[], s_region DOUBLE[])")
    con.executemany("INSERT INTO demo.main.shapes VALUES (?, ?, ?, ?)", rows)
    return polys, circles


def by_pair(rows):
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_geometry_columns_against_each_other(con, shapes):
    polys, circles = shapes
    res = GeoResolver(con)
    rows = q(con, res, "SELECT a.id, b.id, INTERSECTS(a.s_region, b.s_region), CONTAINS(a.s_region, b.s_region), "
             "INTERSECTS(b.circ, a.s_region), CONTAINS(a.circ, b.s_region), CONTAINS(b.s_region, a.circ) "
             "FROM demo.shapes AS a, demo.shapes AS b WHERE a.id % 5 = b.id % 5")  # fmt: skip
    got, checked = by_pair(rows), 0
    for (i, j), flags in got.items():
        pp, pc = plane_truth(polys[i], polys[j]), plane_truth(polys[i], circles[j])
        cp = plane_truth(circles[i], polys[j])
        if pp is None or pc is None or cp is None:
            continue
        assert flags == (int(pp[0]), int(pp[1]), int(pc[0]), int(cp[1]), int(cp[2])), (i, j)
        checked += 1
    assert checked > 200 and sum(f[0] for f in got.values()) > 60


def test_geometry_columns_against_constants_and_points(con, shapes):
    polys, circles = shapes
    res = GeoResolver(con)
    rng = np.random.default_rng(9)
    for anchor in ANCHORS[:3]:
        other = random_shape(rng, anchor, "polygon")
        rows = q(con, res, f"SELECT id, 0, INTERSECTS(s_region, {other.adql}), CONTAINS({other.adql}, s_region), "
                 f"INTERSECTS({other.adql}, circ) FROM demo.shapes")  # fmt: skip
        for (i, _), flags in by_pair(rows).items():
            a, b = plane_truth(polys[i], other), plane_truth(circles[i], other)
            if a is not None and b is not None:
                assert flags == (int(a[0]), int(a[2]), int(b[0])), i
    ra, dec = around(rng, *ANCHORS[0], 4.5, 3000)
    load_points(con, ra, dec)
    rows = q(con, res, "SELECT s.id, p.id FROM demo.shapes AS s JOIN demo.pts AS p "
             "ON CONTAINS(POINT(p.ra, p.dec), s.s_region) = 1 WHERE s.id % 5 = 0")  # fmt: skip
    got = {(i, j) for i, j in rows}
    want = set()
    for i in range(0, len(polys), 5):
        x, y, _ = gnomonic(ra, dec, *ANCHORS[0])
        vx, vy, _ = gnomonic(polys[i].ra, polys[i].dec, *ANCHORS[0])
        want |= {(i, int(j)) for j in np.flatnonzero(planar_inside(x, y, vx, vy))}
    assert got == want and len(want) > 100


def test_geometry_column_values_area_centroid_coords(con, shapes):
    polys, circles = shapes
    res = GeoResolver(con)
    rows = q(con, res, "SELECT id, AREA(s_region), CENTROID(s_region), COORD1(pos), COORD2(pos), AREA(circ), "
             "DISTANCE(pos, POINT(0, 0)), CONTAINS(pos, circ) FROM demo.shapes ORDER BY id")  # fmt: skip
    for i, area, centroid, c1, c2, circ_area, dist, inside in rows:
        p = polys[i]
        assert area == pytest.approx(one(con, res, f"AREA(POLYGON({_lit(p.dali)}))"), rel=1e-9)
        assert (c1, c2, inside) == (circles[i].dali[0], circles[i].dali[1], 1)
        r = circles[i].dali[2]
        assert circ_area == pytest.approx(2 * math.pi * (1 - math.cos(math.radians(r))) * (180 / math.pi) ** 2)
        sep = SkyCoord(c1 * u.deg, c2 * u.deg).separation(SkyCoord(0 * u.deg, 0 * u.deg)).deg
        assert dist == pytest.approx(sep, abs=1e-9)
        if p.kind == "box":  # BOX(ra, dec, w, h): closed-form area, centroid at the centre by symmetry
            ra0, dec0, w, h = (float(v) for v in p.adql[4:-1].split(","))
            assert area == pytest.approx(math.degrees(math.degrees(4 * math.asin(math.sin(math.radians(w / 2)) * math.sin(math.radians(h / 2))))), rel=1e-9)
            sep = SkyCoord(centroid[0] * u.deg, centroid[1] * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
            assert sep < 1e-9
    # A concave polygon over the pole: the centroid is the mean position of its surface (Monte Carlo).
    i = next(k for k in range(len(polys)) if polys[k].kind == "polygon" and ANCHORS[k % 5][1] > 80)
    p, centroid = polys[i], rows[i][2]
    mid = SkyCoord(SkyCoord(p.ra * u.deg, p.dec * u.deg).cartesian.mean(), representation_type="cartesian").spherical
    sra, sdec = around(np.random.default_rng(4), mid.lon.deg, mid.lat.deg, 5, 200_000)
    x, y, _ = gnomonic(sra, sdec, mid.lon.deg, mid.lat.deg)
    vx, vy, _ = gnomonic(p.ra, p.dec, mid.lon.deg, mid.lat.deg)
    inside = planar_inside(x, y, vx, vy)
    mean = SkyCoord(sra[inside] * u.deg, sdec[inside] * u.deg).cartesian.mean()
    want = SkyCoord(mean, representation_type="cartesian").spherical
    got = SkyCoord(centroid[0] * u.deg, centroid[1] * u.deg)
    assert got.separation(SkyCoord(want.lon, want.lat)).deg < 0.02
    assert one(con, res, f"COORD2(CENTROID({p.adql}))") == pytest.approx(centroid[1], abs=1e-9)


_CALLS = {  # a geometry call a select list may hold, by the name its column gets without an alias
    "distance": "DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 1))", "contains": "CONTAINS(POINT(ra, dec), CIRCLE(150, 1, 2))",
    "intersects": "INTERSECTS(CIRCLE(ra, dec, 1), BOX(150, 1, 2, 2))", "coord1": "COORD1(POINT(ra, dec))",
    "coord2": "COORD2(POINT(ra, dec))", "coordsys": "COORDSYS(POINT('ICRS', ra, dec))", "area": "AREA(CIRCLE(ra, dec, 1))",
    "point": "POINT(ra, dec)", "circle": "CIRCLE('ICRS', ra, dec, 0.5)", "centroid": "CENTROID(BOX(ra, dec, 1, 1))",
    "polygon": "POLYGON(ra, dec, ra + 1, dec, ra, dec + 1)",  # a BOX is no value: refused
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_CALLS)), st.sampled_from(["", "AS", "AS_QUOTED", "WRAPPED"])), min_size=1, max_size=5))
def test_a_geometry_call_in_a_select_list_is_named_after_its_function(items):
    """Not after the engine's formula it becomes (DuckDB names an item by its SQL): ``distance``, ``contains``, ...;
    an alias stays, and an item with a call inside it (``COALESCE(DISTANCE(...), NULL)``) is left to DuckDB."""
    c = photo_con()
    try:
        sel, want = [], []
        for i, (name, how) in enumerate(items):
            if how == "AS":
                sel.append(f"{_CALLS[name]} AS c{i}")
                want.append(f"c{i}")
            elif how == "AS_QUOTED":
                sel.append(f'{_CALLS[name]} AS "My {name}"')
                want.append(f"My {name}")
            elif how == "WRAPPED":
                sel.append(f"COALESCE({_CALLS[name]}, NULL)")
                want.append(None)
            else:
                sel.append(_CALLS[name])
                want.append(name)
        st_ = compile_query(f"SELECT TOP 1 {', '.join(sel)} FROM demo.PhotoObj", "adql", DictResolver(c)).statements[0]
        names = [d[0] for d in c.sql(st_.sql, params=st_.params or None).description]
        assert [n for n, w in zip(names, want) if w is not None] == [w for w in want if w is not None], (sel, names)
    finally:
        c.close()


_SHAPES = {"POINT": "POINT('ICRS', {0}, {1})", "CIRCLE": "CIRCLE('ICRS', {0}, {1}, {2})",
           "BOX": "BOX('ICRS', {0}, {1}, {2}, {3})", "POLYGON": "POLYGON('ICRS', {0}, {1}, {2}, {3}, {4}, {5})"}
_USES = {  # a test of a geometry, and the kinds it takes
    "CONTAINS(POINT(ra, dec), {g}) = 1": ("CIRCLE", "BOX", "POLYGON"), "INTERSECTS({g}, CIRCLE(150, 1, 1)) = 1": tuple(_SHAPES),
    "DISTANCE({g}, POINT(1, 2)) < 1": ("POINT",), "DISTANCE({0}, {1}, ra, dec) < 1": ("POINT",),
}


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(_USES)), st.sampled_from(sorted(_SHAPES)), st.integers(0, 5),
       st.sampled_from(["1e309", "-1e309", "(1e308 * 10)", "9E999", "-(2e308)"]))
def test_a_coordinate_or_size_that_is_no_finite_number_is_refused(use, kind, at, bad):
    """A 400 naming the function, not an answer of NaN's arithmetic (every row, or none); finite extremes are kept."""
    assume(kind in _USES[use])
    values = ["150", "1", "0.5", "0.5", "151", "2"][: _SHAPES[kind].count("{")]
    assume(at < len(values))
    values[at] = bad
    cond = use.format(*values, g=_SHAPES[kind].format(*values))
    c = photo_con()
    try:
        with pytest.raises(ArchiveError) as info:
            compile_query(f"SELECT objID FROM demo.PhotoObj WHERE {cond}", "adql", DictResolver(c))
        assert info.value.status == 400 and "not a finite number" in info.value.message, info.value.message
        fine = cond.replace(bad, "-1e308" if bad.startswith("-") else "1e308")
        try:  # a finite extreme may be refused, but not for this (a CIRCLE of radius 1e308 is over 90 degrees)
            compile_query(f"SELECT objID FROM demo.PhotoObj WHERE {fine}", "adql", DictResolver(c))
        except ArchiveError as err:
            assert "finite" not in err.message, err.message
    finally:
        c.close()
