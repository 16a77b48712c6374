"""The HEALPix speed-up of ADQL cones: on a table ordered by HEALPix-built ids, a constant cone (CONTAINS or DISTANCE)
gets a range filter on the ids, and answers exactly as without it (checked against astropy's separations)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import Latitude, Longitude, SkyCoord
from cdshealpix.nested import lonlat_to_healpix

from jupyter_archive.core import demo
from jupyter_archive.core.sql import compile_query, healpix_index, rebind
from tests.support.sql import DictResolver, memory_con

INDEX = healpix_index.parse_healpix_spec(healpix_index.DEMO_PHOTOOBJ_HEALPIX)


def photo_index(target):
    return INDEX if target.name.lower() == "photoobj" else None


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
    c = memory_con()
    c.register("src", sky)
    c.sql('CREATE TABLE demo.main."PhotoObj" AS SELECT * FROM src ORDER BY "objID"')
    yield c
    c.close()


CONES = [(155, 5, 0.2), (150.05, 0.1, 0.5), (160, 10, 1), (0, 0, 0.3), (359.9, -1, 0.5), (0.1, 4, 2), (33, 89.9, 0.5), (200, 85, 3), (155, 5, 0.001)]


def test_demo_convention_matches_demo_module():
    assert INDEX == ("objid", demo.OBJID_HEALPIX_ORDER, demo.OBJID_SHIFT, "ra", "dec")
    info = {"HEALPIX:photoobj": healpix_index.DEMO_PHOTOOBJ_HEALPIX}
    assert healpix_index.healpix_index_from_info(info, "PhotoObj") == INDEX
    assert healpix_index.healpix_index_from_info(info, "SpecObj") is None
    with pytest.raises(ValueError):
        healpix_index.parse_healpix_spec("objid,12,99,ra,dec")


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
    assert '"objid" between' in st.sql.lower()
    plain = compile_query(text, "adql", res, params={"ra": 151.0, "dec": 2.0, "r": 0.4}).statements[0]
    again = rebind(compiled, params={"ra": 151.0, "dec": 2.0, "r": 0.4}).statements[0]
    # the ranges are made again for the values bound now
    fresh = compile_query(text, "adql", res, params={"ra": 151.0, "dec": 2.0, "r": 0.4}, positional_index=photo_index).statements[0]
    assert again.sql == fresh.sql != st.sql
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
