"""HATS mounts in the core: every answer equal to DuckDB over all of the catalog's files, only the
partitions a cone touches read, metadata answers without data, malformed catalogs refused, files
out of users' reach."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.catalog import ANONYMOUS
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from tests.support.hats_data import sky_archive

EPS = 1e-9  # degrees: rows this close to a cone's edge may fall either side of it


@pytest.fixture(scope="module")
def sky(hats_root, tmp_path_factory):
    data = tmp_path_factory.mktemp("hats-archive")
    private = tmp_path_factory.mktemp("hats-private")
    shutil.copytree(hats_root / "stars", private / "stars")
    a = sky_archive(data, hats_root, {"path": "/inner", "type": "hats", "location": str(private / "stars"), "context": "INNER", "public": False})
    yield a
    a.close()


def user(a):
    return a.users.principal("alice")


def rows(a, text, language="adql", principal=None, **kw):
    return a.queries.query(principal or user(a), text, language, row_limit=None, **kw).to_table().to_pylist()


def cone_ids(hats_oracle, table, ra, dec, r) -> tuple[set, set]:
    """The objids surely inside (r - EPS) and possibly inside (r + EPS) a cone, by the haversine."""
    d = (f"degrees(2 * asin(sqrt(pow(sin(radians(dec - {dec}) / 2), 2) + cos(radians(dec)) * cos(radians({dec})) "
         f"* pow(sin(radians(ra - {ra}) / 2), 2))))")  # fmt: skip
    got = hats_oracle.sql(f"SELECT objid, {d} AS d FROM {table} WHERE {d} < {r} + {EPS}").fetchall()
    return {i for i, x in got if x < r - EPS}, {i for i, _ in got}


def plan_of(a, text, language="adql"):
    compiled = a.queries.compile(user(a), text, language)
    return a.queries.plan(user(a), compiled.statements), compiled


def cone(table, ra, dec, r, cols="objid"):
    return f"SELECT {cols} FROM sky.{table} WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, {r!r})) = 1"


@pytest.mark.parametrize("table", ["stars", "stars_dirs"])
@pytest.mark.parametrize(
    "ra, dec, r",
    [(10.0, 5.0, 0.5), (0.0, 0.0, 0.4), (359.9, 0.1, 0.3), (0.05, -0.2, 1.0), (45.0, 89.9, 0.8), (200.0, -89.8, 0.5),
     (90.0, 41.8103, 0.6), (135.0, 0.0, 0.1), (67.5, 19.47122, 0.25)],  # fmt: skip
)
def test_cones_equal_the_full_scan_and_read_few_partitions(sky, hats_oracle, table, ra, dec, r):
    got = {row["objid"] for row in rows(sky, cone(table, ra, dec, r))}
    sure, maybe = cone_ids(hats_oracle, table, ra, dec, r)
    assert sure <= got <= maybe
    plan, compiled = plan_of(sky, cone(table, ra, dec, r))
    (read,) = plan.partitioned.reads
    assert 0 < len(read.partitions) < read.table.partitions / 4  # pruned
    assert all(f.startswith(str(read.table.path)) for f in read.files)
    phase = next(p for p in compiled.phases if p.name == "partitions")
    assert f"read {len(read.partitions)}, total {read.table.partitions}" in phase.detail and "in-process" in phase.detail


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ra=st.floats(0, 359.999), dec=st.floats(-89.99, 89.99), r=st.floats(0.001, 2.0))
def test_generated_cones_equal_the_full_scan(sky, hats_oracle, ra, dec, r):
    got = [row["objid"] for row in rows(sky, cone("stars", ra, dec, r) + " ORDER BY objid")]
    sure, maybe = cone_ids(hats_oracle, "stars", ra, dec, r)
    assert sure <= set(got) <= maybe and len(got) == len(set(got))


def test_distance_and_point_lookups_equal_the_full_scan(sky, hats_oracle):
    ra, dec = hats_oracle.sql("SELECT ra, dec FROM stars WHERE objid = 4242").fetchall()[0]
    got = rows(sky, f"SELECT objid FROM sky.stars WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra!r}, {dec!r})) < 1.0 / 3600")
    assert [r["objid"] for r in got] == [4242]
    plan, _ = plan_of(sky, f"SELECT objid FROM sky.stars WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra!r}, {dec!r})) < 0.001")
    assert len(plan.partitioned.reads[0].partitions) == 1
    near = rows(sky, f"SELECT TOP 5 objid, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, 5)) AS d FROM sky.stars "
                     "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 5, 1)) ORDER BY d, objid")  # fmt: skip
    sure, maybe = cone_ids(hats_oracle, "stars", 10, 5, 1)
    assert len(near) == 5 and {r["objid"] for r in near} <= maybe


def test_boxes_polygons_and_whole_table_queries_equal_the_full_scan(sky, hats_oracle):
    box = rows(sky, "SELECT objid FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 20, 10, 2, 1))")
    want = hats_oracle.sql("SELECT objid FROM stars WHERE ra BETWEEN 19 AND 21 AND dec BETWEEN 9.5 AND 10.5").fetchall()
    assert abs(len(box) - len(want)) <= 2 and len(box) > 0  # ADQL's box has great-circle sides
    poly = rows(sky, "SELECT objid FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 0.5, -1, 1.5, -1, 1, 1))")
    assert 0 < len(poly) < 200
    assert rows(sky, "SELECT COUNT(*) AS n FROM sky.stars") == [{"n": 200_000}]
    for q in ("SELECT flags, COUNT(*) AS n, SUM(objid) AS s, MIN(g) AS lo, MAX(r) AS hi, AVG(dec) AS m FROM {t} GROUP BY flags ORDER BY flags",
              "SELECT TOP 7 objid, g FROM {t} ORDER BY g DESC, objid",
              "SELECT COUNT(*) AS n FROM {t} WHERE g < 17"):  # fmt: skip
        got = rows(sky, q.format(t="sky.stars"))
        rel = hats_oracle.sql(q.replace("TOP 7 ", "").format(t="stars") + (" LIMIT 7" if "TOP 7" in q else ""))
        want = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
        assert [{k: pytest.approx(v) for k, v in r.items()} for r in got] == want


def test_count_and_listings_come_from_the_metadata(sky):
    plan, _ = plan_of(sky, "SELECT COUNT(*) FROM sky.stars")
    (read,) = plan.partitioned.reads
    assert read.count and read.files == []  # no file read
    (st_,) = plan.ready(sky.queries.compile(user(sky), "SELECT COUNT(*) FROM sky.stars", "adql").statements)
    assert "read_parquet" not in st_.sql
    tables = {t.name: t for t in sky.catalog.tables(user(sky), "SKY")}
    assert set(tables) == {"stars", "stars_dirs"}  # the margin is no table
    assert tables["stars"].rows == 200_000 and tables["stars"].size_bytes > 0
    assert [c.name for c in tables["stars"].columns] == ["objid", "ra", "dec", "g", "r", "flags", "_healpix_29"]
    hats = sky.catalog.hats["sky"]["stars"]
    assert "stars_10arcs" in hats.margins and hats.statistics["objid"]["max_value"] == 200_000
    whole, _ = plan_of(sky, "SELECT objid FROM sky.stars WHERE g < 12")
    assert len(whole.partitioned.reads[0].partitions) == hats.partitions  # no region: every partition


@pytest.mark.parametrize("table", ["stars", "stars_dirs"])
def test_column_statistics_come_from_the_metadata_and_equal_the_data(sky, hats_oracle, table):
    columns = {c.name: c for c in sky.catalog.table(user(sky), "SKY", table).columns}
    for name, column in columns.items():
        lo, hi, nulls = hats_oracle.sql(f'SELECT min("{name}"), max("{name}"), count(*) - count("{name}") FROM {table}').fetchall()[0]
        assert column.statistics == {"min_value": lo, "max_value": hi, "null_count": nulls}, name
        assert type(column.statistics["min_value"]) is type(lo)  # in the column's own type
        assert "statistics" in column.to_json()


def test_sql_languages_read_hats_tables_too(sky, hats_oracle):
    got = rows(sky, "SELECT TOP 3 objid FROM stars ORDER BY objid", "sql", context="SKY")
    assert [r["objid"] for r in got] == [1, 2, 3]
    got = rows(sky, "SELECT a.objid FROM stars AS a JOIN stars_dirs AS b ON a.objid = b.objid WHERE a.objid < 5 ORDER BY 1", "sql", context="SKY")
    assert [r["objid"] for r in got] == [1, 2, 3, 4]


def test_malformed_catalogs_are_refused_at_mount(sky, hats_root, tmp_path):
    def mount(location):
        with pytest.raises(ArchiveError) as err:
            sky.mounts.add({"path": "/bad", "type": "hats", "location": str(location), "context": "BAD"})
        assert err.value.status == 400
        return err.value.message

    partial = tmp_path / "partial"
    shutil.copytree(hats_root / "stars", partial)
    next(iter(sorted((partial / "dataset").rglob("Npix=*.parquet")))).unlink()
    assert "has no file" in mount(partial)
    bare = tmp_path / "bare"
    shutil.copytree(hats_root / "stars", bare)
    (bare / "properties").unlink()
    (bare / "hats.properties").unlink()
    assert "no properties" in mount(bare)
    broken = tmp_path / "broken"
    shutil.copytree(hats_root / "stars", broken)
    (broken / "partition_info.csv").write_text("not,a\npartition,list\n")
    for f in ("_metadata", "_common_metadata"):
        (broken / "dataset" / f).write_bytes(b"garbage")
    assert "not a readable HATS catalog" in mount(broken)
    assert sky.catalog.mount("BAD") is None


def test_users_sql_cannot_reach_files_and_engines_read_only_visible_roots(sky, hats_root, tmp_path):
    some = str(next(iter(sorted((hats_root / "stars" / "dataset").rglob("*.parquet")))))
    for q in (f"SELECT * FROM read_parquet('{some}')", f"SELECT * FROM '{some}'", f"SELECT * FROM parquet_scan(['{some}'])"):
        with pytest.raises(ArchiveError):
            rows(sky, q, "sql", context="SKY")
    inner = sky.catalog.mount("INNER").location
    private_file = str(next(iter(sorted((inner / "dataset").rglob("*.parquet")))))
    anonymous = ANONYMOUS
    assert rows(sky, "SELECT COUNT(*) AS n FROM stars WHERE g < 0", "sql", context="SKY", principal=anonymous) == [{"n": 0}]
    with pytest.raises(ArchiveError):
        rows(sky, "SELECT COUNT(*) FROM stars", "sql", context="INNER", principal=anonymous)
    # The engines themselves: the anonymous reader's may read the public root only, a user's both.
    for principal, private_ok in ((anonymous, False), (user(sky), True)):
        cur = sky.engines.engine(principal, ()).cursor()
        try:
            assert cur.sql(f"SELECT count(*) FROM read_parquet('{some}')").fetchall()[0][0] > 0
            if private_ok:
                assert cur.sql(f"SELECT count(*) FROM read_parquet('{private_file}')").fetchall()[0][0] > 0
            else:
                with pytest.raises(duckdb.PermissionException):
                    cur.sql(f"SELECT count(*) FROM read_parquet('{private_file}')").fetchall()
            with pytest.raises(duckdb.PermissionException):
                cur.sql(f"SELECT count(*) FROM read_csv('{tmp_path}/x.csv')").fetchall()
        finally:
            cur.close()


def test_the_hats_demo_is_written_once_and_mounted(tmp_path):
    def start():
        a = Archive(ArchiveConfig(data_dir=tmp_path, demo=False, hats_demo_rows=3_000))
        a.start()
        return a

    a = start()
    try:
        assert rows(a, "SELECT COUNT(*) AS n FROM sky.stars") == [{"n": 3_000}]
        assert rows(a, "SELECT COUNT(*) AS n FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 90, 0.5))")[0]["n"] > 0
    finally:
        a.close()
    stamp = (tmp_path / "hats-demo" / "stars" / "properties").stat().st_mtime_ns
    a = start()
    a.close()
    assert (tmp_path / "hats-demo" / "stars" / "properties").stat().st_mtime_ns == stamp  # not written again
