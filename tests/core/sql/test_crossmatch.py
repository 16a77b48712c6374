"""Cross-matches on HEALPix cells (``core/sql/crossmatch.py``) against a brute-force oracle.

The oracle is the same query compiled without the positional index: the exact distance test over the
full product of the two tables, in DuckDB. Positions are generated (hypothesis, derandomised) around
the catalog's rows, at the poles, across RA 0/360 and at the radius itself; uploads hold NULLs and
duplicates.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import Latitude, Longitude
from cdshealpix.nested import lonlat_to_healpix, neighbours
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.sql import compile_query, crossmatch, healpix_index, rebind
from tests.support.sql import DictResolver, memory_con

#: Two catalogs with the same rows: an index like a MyDB upload's (order 20) and like the demo's
#: objid (order 12 in the high bits).
INDEXES = {
    "cat": healpix_index.parse_healpix_spec(healpix_index.spec("ra", "dec")),
    "photoobj": healpix_index.parse_healpix_spec("objid,12,35,ra,dec"),
}


def index_of(target):
    return INDEXES.get(target.name.lower())


def _sky(rng, n: int):
    """Uniform on the sphere, plus crowds at both poles, across RA 0/360 and at a face corner."""
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 8
    dec[:k] = 90 - rng.uniform(0, 0.05, k)
    dec[k:2 * k] = -90 + rng.uniform(0, 0.05, k)
    ra[2 * k:3 * k] = rng.uniform(-0.05, 0.05, k) % 360
    dec[2 * k:3 * k] = rng.uniform(-0.05, 0.05, k)
    ra[3 * k:4 * k] = 45 + rng.uniform(-0.05, 0.05, k)
    dec[3 * k:4 * k] = 41.8103 + rng.uniform(-0.05, 0.05, k)
    return ra, dec


@pytest.fixture(scope="module")
def xcon():
    rng = np.random.default_rng(17)
    ra, dec = _sky(rng, 6_000)
    con = memory_con()
    cell = lonlat_to_healpix(Longitude(ra, u.deg), Latitude(dec, u.deg), 12).astype(np.int64)
    con.register("src", pa.table({"id": np.arange(len(ra)), "ra": ra, "dec": dec, "objid": (cell << 35) | np.arange(len(ra))}))
    con.sql('CREATE TABLE demo.main."PhotoObj" AS SELECT * FROM src ORDER BY objid')
    con.sql(f"CREATE TABLE demo.main.cat AS {healpix_index.ordered(healpix_index.with_index('SELECT id, ra, dec FROM src', 'ra', 'dec'))}")
    con.sql("CREATE TABLE demo.main.up (uid INTEGER, ra DOUBLE, dec DOUBLE, r DOUBLE)")
    con.unregister("src")
    yield con
    con.close()


def offsets(ra, dec, sep, angle):
    """Points ``sep`` degrees from (ra, dec) towards ``angle``."""
    ra, dec, sep, angle = (np.radians(np.asarray(x, float)) for x in (ra, dec, sep, angle))
    s = np.sin(dec) * np.cos(sep) + np.cos(dec) * np.sin(sep) * np.cos(angle)
    lat = np.arcsin(np.clip(s, -1, 1))
    lon = ra + np.arctan2(np.sin(angle) * np.sin(sep) * np.cos(dec), np.cos(sep) - np.sin(dec) * s)
    return np.degrees(lon) % 360, np.degrees(lat)


RADII = [0.5 / 3600, 2 / 3600, 30 / 3600, 0.2, 3.0, 40.0]  # the last is over what order 0 serves


@st.composite
def uploads(draw):
    """(rows of (uid, ra, dec, r), radius): positions near catalog rows (up to 1.5 radii away, many
    right at the radius), at the poles and RA 0/360, with NULLs and duplicates."""
    radius = draw(st.sampled_from(RADII))
    seed = draw(st.integers(0, 2**31))
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(seed)
    ra, dec = _sky(rng, 6_000)  # the catalog's own rows, as in xcon
    pick = rng.integers(0, len(ra), n)
    sep = radius * rng.choice([0.0, 0.5, 1.0, 1.0 - 1e-9, 1.0 + 1e-9, 1.5], n)
    ura, udec = offsets(ra[pick], dec[pick], sep, rng.uniform(0, 360, n))
    rows = [(i, float(a), float(d), float(radius * rng.choice([0.5, 1.0]))) for i, (a, d) in enumerate(zip(ura, udec))]
    if draw(st.booleans()):
        rows += [(n, None, 0.0, radius), (n + 1, 12.0, None, radius), (n + 2, 0.0, 90.0, radius), (n + 3, 359.9999, -90.0, radius)]
    if draw(st.booleans()):
        rows += rows[: len(rows) // 2]  # duplicate rows: each is matched as often as it appears
    return rows, radius


FORMS = [
    "SELECT u.uid, p.id FROM demo.up AS u JOIN demo.{t} AS p ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, {r})) = 1",
    "SELECT p.id, u.uid FROM demo.{t} AS p, demo.up AS u WHERE p.id >= 0 AND 1 = CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', u.ra, u.dec, {r}))",
    "SELECT u.uid, p.id FROM demo.up AS u JOIN demo.{t} AS p ON DISTANCE(POINT(p.ra, p.dec), POINT(u.ra, u.dec)) < {r} AND u.uid >= 0",
    "SELECT u.uid, p.id FROM demo.up AS u LEFT JOIN demo.{t} AS p ON {r} >= DISTANCE(POINT(u.ra, u.dec), POINT(p.ra, p.dec))",
    "SELECT u.uid, p.id FROM demo.{t} AS p RIGHT JOIN demo.up AS u ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, {r})) = 1",
    "SELECT * FROM demo.up AS u LEFT OUTER JOIN demo.{t} AS p ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, u.r)) = 1",
    "SELECT u.uid, p.* FROM demo.up AS u JOIN demo.{t} AS p ON DISTANCE(p.ra, p.dec, u.ra, u.dec) <= u.r",
]


def _run(con, statement):
    return con.sql(statement.sql, params=statement.params or None)


@settings(max_examples=24, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=uploads(), form=st.sampled_from(FORMS), table=st.sampled_from(["cat", "PhotoObj"]))
def test_cross_match_equals_the_full_product(xcon, case, form, table):
    rows, radius = case
    xcon.sql("DELETE FROM demo.main.up")
    xcon.executemany("INSERT INTO demo.main.up VALUES (?, ?, ?, ?)", rows)
    res = DictResolver(xcon)
    text = form.format(t=table, r=repr(radius))
    fast = compile_query(text, "adql", res, positional_index=index_of).statements[0]
    plain = compile_query(text, "adql", res).statements[0]
    assert "__xm_cell" in fast.sql and "__xm_cell" not in plain.sql
    got, want = _run(xcon, fast), _run(xcon, plain)
    assert got.columns == want.columns
    assert sorted(got.fetchall(), key=repr) == sorted(want.fetchall(), key=repr)


def test_radius_as_a_parameter_and_rebound(xcon):
    rng = np.random.default_rng(5)
    ra, dec = _sky(rng, 6_000)
    xcon.sql("DELETE FROM demo.main.up")
    xcon.executemany("INSERT INTO demo.main.up VALUES (?, ?, ?, NULL)", [(i, float(ra[i]), float(dec[i])) for i in range(0, 6_000, 97)])
    res = DictResolver(xcon)
    text = "SELECT u.uid, p.id FROM demo.up AS u JOIN demo.cat AS p ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, :r)) = 1"
    compiled = compile_query(text, "adql", res, params={"r": 0.01}, positional_index=index_of)
    for r in (0.01, 1.5, 45.0, None):
        again = rebind(compiled, params={"r": r}).statements[0]
        plain = compile_query(text, "adql", res, params={"r": r}).statements[0]
        want = sorted(_run(xcon, plain).fetchall())
        assert sorted(_run(xcon, again).fetchall()) == want
        assert (len(want) > 62) == (r is not None)  # every row matches itself, and more


def test_joins_that_keep_the_catalogs_rows_are_left_as_written(xcon):
    res = DictResolver(xcon)
    for text in (
        "SELECT p.id, u.uid FROM demo.cat AS p LEFT JOIN demo.up AS u ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, 0.1)) = 1",
        "SELECT p.id, u.uid FROM demo.cat AS p FULL JOIN demo.up AS u ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, 0.1)) = 1",
        "SELECT u.uid FROM demo.up AS u JOIN demo.cat AS p ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, p.dec)) = 1",
    ):
        assert "__xm_cell" not in compile_query(text, "adql", res, positional_index=index_of).statements[0].sql


@pytest.mark.parametrize("order", [0, 1, 3, 12, 20])
def test_cells_are_each_positions_cell_and_its_neighbours(order):
    """The cells made in SQL equal cdshealpix's cell and neighbours, at face edges and corners too."""
    rng = np.random.default_rng(order)
    ra, dec = _sky(rng, 4000)
    # near (not on: a point on an edge may go either way) the faces' corners and edges
    ra[:200] = rng.choice([0.0, 45.0, 90.0, 180.0, 315.0], 200) + rng.uniform(-1e-7, 1e-7, 200)
    dec[:200] = np.clip(rng.choice([-90.0, -41.8103149, 0.0, 41.8103149, 90.0], 200) + rng.uniform(-1e-7, 1e-7, 200), -90, 90)
    con = memory_con()
    con.register("pts", pa.table({"ra": ra, "dec": dec}))
    got: dict[tuple, set] = {}
    sql = crossmatch.cells_sql("SELECT ra AS __xm_ra, dec AS __xm_dec FROM pts", f"SELECT {order}::BIGINT AS __xm_k, false AS __xm_all")
    for a, d, c in con.sql(sql).fetchall():
        got.setdefault((a, d), set()).add(c)
    cells = lonlat_to_healpix(Longitude(ra, u.deg), Latitude(dec, u.deg), order)
    want = neighbours(cells, order)
    assert [(a, d) for a, d, w in zip(ra, dec, want) if got[(a, d)] != {int(c) for c in w if c >= 0}] == []
