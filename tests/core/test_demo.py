"""The demo archive: deterministic, sky-ordered, consistent, described, rebuilt only when needed."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import duckdb
import numpy as np
import pytest

from jupyter_archive.core import demo
from jupyter_archive.core.backends import metadata as md

ROWS = 20_000


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return demo.ensure_demo(tmp_path_factory.mktemp("demo"), rows=ROWS, seed=7)


@pytest.fixture(scope="module")
def con(built):
    c = duckdb.connect(str(built), read_only=True)
    yield c
    c.close()


def table_hash(path: Path) -> str:
    """Content hash of both tables, in storage (rowid) order."""
    h = hashlib.sha256()
    c = duckdb.connect(str(path), read_only=True)
    try:
        for table in ("PhotoObj", "SpecObj"):
            data = c.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchnumpy()
            for name, values in data.items():
                h.update(name.encode())
                values = np.asarray(values)
                h.update("\0".join(map(str, values)).encode() if values.dtype == object else values.tobytes())
    finally:
        c.close()
    return h.hexdigest()


def healpix_nested(ra_deg: np.ndarray, dec_deg: np.ndarray, order: int) -> np.ndarray:
    """Nested HEALPix index, written out here (after Gorski et al. 2005 / healpix_base's
    ``loc2pix``) so the test does not trust the library the generator uses."""
    nside = 1 << order
    z = np.sin(np.radians(dec_deg))
    za = np.abs(z)
    tt = np.mod(np.radians(ra_deg), 2 * np.pi) / (np.pi / 2)  # in [0, 4)

    # Equatorial belt
    t1 = nside * (0.5 + tt)
    t2 = nside * (z * 0.75)
    jp = (t1 - t2).astype(np.int64)
    jm = (t1 + t2).astype(np.int64)
    ifp = jp >> order
    ifm = jm >> order
    face_eq = np.where(ifp == ifm, ifp | 4, np.where(ifp < ifm, ifp, ifm + 8))
    ix_eq = jm & (nside - 1)
    iy_eq = nside - (jp & (nside - 1)) - 1

    # Polar caps
    ntt = np.minimum(tt.astype(np.int64), 3)
    tp = tt - ntt
    tmp = nside * np.sqrt(3 * (1 - za))
    jp_p = np.minimum((tp * tmp).astype(np.int64), nside - 1)
    jm_p = np.minimum(((1.0 - tp) * tmp).astype(np.int64), nside - 1)
    north = z >= 0
    face_p = np.where(north, ntt, ntt + 8)
    ix_p = np.where(north, nside - jm_p - 1, jp_p)
    iy_p = np.where(north, nside - jp_p - 1, jm_p)

    eq = za <= 2.0 / 3.0
    face = np.where(eq, face_eq, face_p)
    ix = np.where(eq, ix_eq, ix_p)
    iy = np.where(eq, iy_eq, iy_p)

    def spread(v):  # interleave bits: b_k -> b_2k
        out = np.zeros_like(v)
        for bit in range(order):
            out |= ((v >> bit) & 1) << (2 * bit)
        return out

    return (face << (2 * order)) + spread(ix) + (spread(iy) << 1)


def test_row_counts(con):
    assert con.execute("SELECT count(*) FROM PhotoObj").fetchone()[0] == ROWS
    n_spec = con.execute("SELECT count(*) FROM SpecObj").fetchone()[0]
    assert n_spec == round(ROWS * demo.SPEC_FRACTION)


def test_deterministic(tmp_path, built):
    again = demo.ensure_demo(tmp_path / "a", rows=ROWS, seed=7)
    other = demo.ensure_demo(tmp_path / "b", rows=ROWS, seed=8)
    assert table_hash(again) == table_hash(built)
    assert table_hash(other) != table_hash(built)


def test_schema(con):
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'PhotoObj'").fetchall())
    assert types["objid"] == "BIGINT" and types["flags"] == "BIGINT"
    assert types["ra"] == types["dec"] == "DOUBLE"
    for b in "ugriz":
        assert types[b] == types[f"err_{b}"] == "FLOAT"
    assert types["type"] == types["run"] == types["camcol"] == types["field"] == "SMALLINT"
    spec = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'SpecObj'").fetchall())
    assert spec == {
        "specobjid": "BIGINT", "bestobjid": "BIGINT", "ra": "DOUBLE", "dec": "DOUBLE",
        "z": "FLOAT", "zerr": "FLOAT", "class": "VARCHAR",
    }  # fmt: skip


def test_objid_unique_and_stored_in_order(con):
    n, distinct = con.execute("SELECT count(*), count(DISTINCT objid) FROM PhotoObj").fetchone()
    assert n == distinct
    objid = con.execute("SELECT objid FROM PhotoObj ORDER BY rowid").fetchnumpy()["objid"]
    assert np.all(np.diff(objid) > 0)
    best = con.execute("SELECT bestobjid FROM SpecObj ORDER BY rowid").fetchnumpy()["bestobjid"]
    assert np.all(np.diff(best) > 0)


def test_objid_encodes_healpix(con):
    d = con.execute("SELECT objid, ra, dec FROM PhotoObj").fetchnumpy()
    cell = d["objid"] >> demo.OBJID_SHIFT
    assert np.array_equal(cell, healpix_nested(d["ra"], d["dec"], demo.OBJID_HEALPIX_ORDER))
    assert demo.healpix_of_objid(int(d["objid"][0])) == int(cell[0])
    # The low bits number the objects of a cell 0, 1, 2, ...
    running = d["objid"] & ((1 << demo.OBJID_SHIFT) - 1)
    order = np.argsort(d["objid"])
    first_in_cell = np.r_[True, np.diff(cell[order]) != 0]
    assert np.all(running[order][first_in_cell] == 0)


def test_positions_inside_field_and_uniform_on_sphere(con):
    lo_ra, hi_ra, lo_dec, hi_dec = con.execute("SELECT min(ra), max(ra), min(dec), max(dec) FROM PhotoObj").fetchone()
    assert 150 <= lo_ra and hi_ra <= 160 and 0 <= lo_dec and hi_dec <= 10
    # Uniform on the sphere: the fraction above dec 5 is the area fraction, not 1/2.
    above = con.execute("SELECT avg((dec > 5)::INT) FROM PhotoObj").fetchone()[0]
    expected = (1 - np.sin(np.radians(5)) / np.sin(np.radians(10)))
    assert abs(above - expected) < 0.02


def test_configurable_field(tmp_path):
    path = demo.ensure_demo(tmp_path, rows=2000, seed=1, ra_min=10, ra_max=12, dec_min=-30, dec_max=-28)
    c = duckdb.connect(str(path), read_only=True)
    lo_ra, hi_ra, lo_dec, hi_dec = c.execute("SELECT min(ra), max(ra), min(dec), max(dec) FROM PhotoObj").fetchone()
    c.close()
    assert 10 <= lo_ra and hi_ra <= 12 and -30 <= lo_dec and hi_dec <= -28


def test_photometry_is_plausible(con):
    gal, r_lo, r_hi, camcol_lo, camcol_hi = con.execute(
        "SELECT avg((type = 3)::INT), min(r), max(r), min(camcol), max(camcol) FROM PhotoObj"
    ).fetchone()
    assert 0.55 < gal < 0.65
    assert set(con.execute("SELECT DISTINCT type FROM PhotoObj").fetchnumpy()["type"]) == {3, 6}
    assert 12 < r_lo < 15 and 23 < r_hi < 28
    assert (camcol_lo, camcol_hi) == (1, 6)
    # Errors grow with magnitude.
    bright, faint = con.execute(
        "SELECT avg(err_r) FILTER (WHERE r < 18), avg(err_r) FILTER (WHERE r > 22) FROM PhotoObj"
    ).fetchone()
    assert bright < 0.02 < 0.1 < faint


def test_specobj(con):
    missing = con.execute(
        "SELECT count(*) FROM SpecObj s ANTI JOIN PhotoObj p ON p.objid = s.bestobjid"
    ).fetchone()[0]
    assert missing == 0
    n, distinct = con.execute("SELECT count(*), count(DISTINCT specobjid) FROM SpecObj").fetchone()
    assert n == distinct
    assert con.execute("SELECT count(*) FROM SpecObj s JOIN PhotoObj p ON p.objid = s.bestobjid "
                   "WHERE s.ra <> p.ra OR s.dec <> p.dec").fetchone()[0] == 0  # fmt: skip
    # Spectra prefer bright objects.
    spec_r, all_r = con.execute(
        "SELECT (SELECT median(p.r) FROM SpecObj s JOIN PhotoObj p ON p.objid = s.bestobjid), "
        "(SELECT median(r) FROM PhotoObj)"
    ).fetchone()
    assert spec_r < all_r - 1
    by_class = {row[0]: row[1:] for row in con.execute(
        "SELECT class, count(*), min(z), max(z) FROM SpecObj GROUP BY class").fetchall()}  # fmt: skip
    assert set(by_class) == {"GALAXY", "STAR", "QSO"}
    assert 0.005 <= by_class["GALAXY"][1] and by_class["GALAXY"][2] <= 0.72
    assert -0.01 < by_class["STAR"][1] and by_class["STAR"][2] < 0.01
    assert 0.25 < by_class["QSO"][1] and by_class["QSO"][2] < 3.1
    # Galaxy spectra belong to type-3 objects.
    assert con.execute("SELECT count(*) FROM SpecObj s JOIN PhotoObj p ON p.objid = s.bestobjid "
                   "WHERE s.class = 'GALAXY' AND p.type <> 3").fetchone()[0] == 0  # fmt: skip


def test_metadata(built):
    with md.open_read_only(built) as (c, alias):
        meta = md.read_metadata(c, alias)
        info = md.read_info(c, alias)
    photo = meta["PhotoObj"]
    assert photo["description"]
    assert photo["columns"]["ra"] == {"unit": "deg", "ucd": "pos.eq.ra;meta.main", "description": photo["columns"]["ra"]["description"]}
    assert photo["columns"]["dec"]["ucd"] == "pos.eq.dec;meta.main"
    assert photo["columns"]["objid"]["ucd"] == "meta.id;meta.main"
    assert photo["columns"]["r"] == {**photo["columns"]["r"], "unit": "mag", "ucd": "phot.mag;em.opt.R"}
    assert photo["columns"]["err_r"]["ucd"] == "stat.error;phot.mag;em.opt.R"
    spec = meta["SpecObj"]["columns"]
    assert spec["bestobjid"]["ucd"] == "meta.id.cross"
    assert spec["z"]["ucd"] == "src.redshift"
    c = duckdb.connect(str(built), read_only=True)
    try:
        for table in ("PhotoObj", "SpecObj"):
            columns = [r[0] for r in c.execute(f"SELECT column_name FROM duckdb_columns() WHERE table_name = '{table}'").fetchall()]
            for col in columns:
                assert meta[table]["columns"][col].get("description"), (table, col)
                assert meta[table]["columns"][col].get("ucd"), (table, col)
    finally:
        c.close()
    assert info["generator_version"] == demo.GENERATOR_VERSION
    assert info["rows"] == str(ROWS) and info["seed"] == "7"


def test_not_rebuilt_when_unchanged(tmp_path):
    path = demo.ensure_demo(tmp_path, rows=1000, seed=3)
    before = os.stat(path)
    assert demo.ensure_demo(tmp_path, rows=1000, seed=3) == path
    after = os.stat(path)
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)


def test_objid_lookups_read_the_index(tmp_path):
    path = demo.ensure_demo(tmp_path, rows=1000, seed=3)
    with duckdb.connect(str(path), read_only=True) as c:
        objid = c.execute("SELECT objid FROM PhotoObj LIMIT 1 OFFSET 500").fetchone()[0]
        # The scan picks the index as it starts: only EXPLAIN ANALYZE shows it.
        plan = c.execute("EXPLAIN ANALYZE SELECT * FROM PhotoObj WHERE objid = ?", [objid]).fetchall()[0][1]
        assert "Index Scan" in plan, plan


def test_rebuilt_when_rows_or_seed_change(tmp_path):
    path = demo.ensure_demo(tmp_path, rows=1000, seed=3)
    ino = os.stat(path).st_ino
    demo.ensure_demo(tmp_path, rows=1500, seed=3)
    c = duckdb.connect(str(path), read_only=True)
    assert c.execute("SELECT count(*) FROM PhotoObj").fetchone()[0] == 1500
    c.close()
    assert os.stat(path).st_ino != ino
    ino = os.stat(path).st_ino
    demo.ensure_demo(tmp_path, rows=1500, seed=4)
    assert os.stat(path).st_ino != ino
    # No temporary files left behind (beside the file: its info, kept so a start need not open DuckDB).
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [".demo.duckdb.info.json", "demo.duckdb", "images"]


def test_rebuilt_when_file_is_corrupt(tmp_path):
    path = demo.demo_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database")
    demo.ensure_demo(tmp_path, rows=500, seed=1)
    c = duckdb.connect(str(path), read_only=True)
    assert c.execute("SELECT count(*) FROM PhotoObj").fetchone()[0] == 500
    c.close()


def _build_in_child(data_dir: str) -> str:
    return str(demo.ensure_demo(Path(data_dir), rows=3000, seed=11))


def test_racing_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    with ctx.Pool(2) as pool:
        paths = pool.map(_build_in_child, [str(tmp_path)] * 2)
    assert len(set(paths)) == 1
    c = duckdb.connect(paths[0], read_only=True)
    assert c.execute("SELECT count(*) FROM PhotoObj").fetchone()[0] == 3000
    c.close()
    assert sorted(p.name for p in Path(paths[0]).parent.iterdir() if not p.name.endswith(".lock")) == [".demo.duckdb.info.json", "demo.duckdb", "images"]


def test_empty(tmp_path):
    photo, spec = demo.generate(0, 1)
    assert photo.num_rows == 0 and spec.num_rows == 0
