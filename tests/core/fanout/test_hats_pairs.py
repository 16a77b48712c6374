"""Catalog x catalog cross-matches of two HATS catalogs (``execution/pairs.py``): every answer equal to
single-process DuckDB over all the files of both (the oracle), in-process and as a job fanned out over the
cluster by the right catalog's partitions with the left one's margin cache (or its neighbouring partitions
when it has none); pairs straddling a partition's edge found; what cannot be planned so refused clearly."""

from __future__ import annotations

import bisect
import math

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution.planner import CLUSTER, HATS

EPS = 1e-9  # degrees: pairs this close to the radius may fall either side of it
TABLES = {"stars": "sky.stars", "stars_dirs": "sky.stars_dirs", "near": "near.near"}


@pytest.fixture(scope="module")
def sky(hats_root, hats_near_root, local_cluster, tmp_path_factory):
    a = Archive(ArchiveConfig(data_dir=tmp_path_factory.mktemp("hats-pairs"), demo=False, dask_scheduler=local_cluster.scheduler_address,
                              mounts=[{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"},
                                      {"path": "/near", "type": "hats", "location": str(hats_near_root), "context": "NEAR"}]))  # fmt: skip
    a.start()
    yield a
    a.close()


@pytest.fixture(scope="module")
def oracle(hats_root, hats_near_root):
    con = duckdb.connect()
    for name, root in (("stars", hats_root), ("stars_dirs", hats_root), ("near", hats_near_root)):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{root / name}/dataset/**/*.parquet', hive_partitioning = false)")
    yield con
    con.close()


def _dist(a: str, b: str) -> str:
    return (f"degrees(2 * asin(sqrt(pow(sin(radians({b}.dec - {a}.dec) / 2), 2) + cos(radians({a}.dec)) * cos(radians({b}.dec)) "
            f"* pow(sin(radians({b}.ra - {a}.ra) / 2), 2))))")  # fmt: skip


def oracle_pairs(oracle, t: str, u: str, r: float, cone=None) -> tuple[set, set]:
    """The (t.objid, u.objid) pairs surely within r (r - EPS) and possibly within it (r + EPS)."""
    where = ""
    if cone is not None:
        where = f"AND {_dist('b', 'c')} < {cone[2]}"
    sql = (f"SELECT a.objid, b.objid, {_dist('a', 'b')} AS d FROM {t} AS a JOIN {u} AS b ON a.dec BETWEEN b.dec - {r + 1e-6} AND b.dec + {r + 1e-6} "
           f"{', (SELECT ' + repr(cone[0]) + ' AS ra, ' + repr(cone[1]) + ' AS dec) AS c' if cone else ''} "
           f"WHERE {_dist('a', 'b')} < {r + EPS} {where}")  # fmt: skip
    got = oracle.sql(sql).fetchall()
    return {(x, y) for x, y, d in got if d < r - EPS}, {(x, y) for x, y, _ in got}


def xmatch(t: str, u: str, r: float, cone=None, cols="a.objid AS a, b.objid AS b") -> str:
    q = (f"SELECT {cols} FROM {TABLES[t]} AS a JOIN {TABLES[u]} AS b "
         f"ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {r!r}))")  # fmt: skip
    if cone is not None:
        q += f" WHERE 1 = CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', {cone[0]!r}, {cone[1]!r}, {cone[2]!r}))"
    return q


def alice(a):
    return a.users.principal("alice")


def quick_pairs(a, text) -> list[tuple]:
    return [(r["a"], r["b"]) for r in a.queries.query(alice(a), text, "adql", row_limit=None).to_table().to_pylist()]


def plan_of(a, text, *, job=False, language="adql"):
    compiled = a.queries.compile(alice(a), text, language, explain=False)
    return a.queries.plan(alice(a), compiled.statements, job=job)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tables=st.sampled_from([("stars", "near"), ("near", "stars"), ("near", "near"), ("stars_dirs", "near")]),
    r=st.floats(0.5, 10.0).map(lambda x: x / 3600),
    cone=st.none() | st.tuples(st.floats(0, 359.99), st.floats(-89, 89), st.floats(0.5, 8.0)),
)
def test_generated_cross_matches_equal_the_oracle(sky, oracle, tables, r, cone):
    t, u = tables
    got = quick_pairs(sky, xmatch(t, u, r, cone))
    sure, maybe = oracle_pairs(oracle, t, u, r, cone)
    assert sure <= set(got) <= maybe and len(got) == len(set(got))


def job_pairs(a, text) -> set[tuple]:
    p = alice(a)
    job = a.jobs.wait(p, a.jobs.submit_query(p, text, "adql").id, timeout=300)
    assert job.state == "completed", job.error_message
    return {(row["a"], row["b"]) for row in a.jobs.result(p, job.id).to_table().to_pylist()}


def test_pairs_straddling_partition_edges_are_found_through_the_margin(sky, oracle):
    r = 5 / 3600
    text = xmatch("near", "near", r) + " AND a.objid <> b.objid"
    xm = plan_of(sky, text, job=True).partitioned
    assert plan_of(sky, text, job=True).where == CLUSTER
    assert xm.margin is not None and any(p.margin for p in xm.pieces) and "margin cache (10 arcsec)" in xm.phase_detail("in-process")
    u = xm.reads[xm.u_reads[0]].table
    rows = oracle.sql(f"SELECT a.objid, b.objid, a._healpix_29, b._healpix_29 FROM near AS a JOIN near AS b "
                      f"ON a.dec BETWEEN b.dec - 0.003 AND b.dec + 0.003 WHERE {_dist('a', 'b')} < {r} AND a.objid <> b.objid").fetchall()  # fmt: skip

    def part(h):
        return bisect.bisect_right(u.starts, h) - 1

    straddling = {(x, y) for x, y, ha, hb in rows if part(ha) != part(hb)}
    assert len(straddling) > 100  # the data's pairs across the base cells' edges (tests/support/hats_data.py)
    assert job_pairs(sky, text) == {(x, y) for x, y, _, _ in rows}


def test_a_job_fans_the_pieces_out_and_answers_as_the_oracle(sky, oracle):
    r = 5 / 3600
    text = xmatch("near", "stars", r, cols="COUNT(*) AS n, SUM(a.objid - b.objid) AS s, MAX(b.g) AS g")
    assert plan_of(sky, text, job=True).where == CLUSTER
    assert plan_of(sky, text, job=False).where == HATS
    phases = {ph.name: ph.detail for ph in sky.queries.compile(alice(sky), text, "adql").phases}
    assert "pairs of partitions" in phases["partitions"] and "the Dask cluster" in phases["partitions"] and "tasks" in phases["partitions"]
    p = alice(sky)
    job = sky.jobs.wait(p, sky.jobs.submit_query(p, text, "adql").id, timeout=300)
    assert job.state == "completed", job.error_message
    (got,) = sky.jobs.result(p, job.id).to_table().to_pylist()
    sure, maybe = oracle_pairs(oracle, "near", "stars", r)
    assert len(sure) <= got["n"] <= len(maybe) and len(sure) > 1000
    if sure == maybe:
        s, g = oracle.sql(f"SELECT SUM(a.objid - b.objid), MAX(b.g) FROM near AS a JOIN stars AS b ON a.dec BETWEEN b.dec - 0.002 "
                          f"AND b.dec + 0.002 WHERE {_dist('a', 'b')} < {r}").fetchall()[0]  # fmt: skip
        assert got["s"] == s and math.isclose(got["g"], g)
    for t, u in (("stars_dirs", "near"), ("stars", "near")):  # no margin: padded; then t's partitions finer than u's
        pairs = job_pairs(sky, xmatch(t, u, r))
        sure, maybe = oracle_pairs(oracle, t, u, r)
        assert sure <= pairs <= maybe


def test_a_job_the_cluster_cannot_split_is_refused_not_run_on_the_server(sky):
    into = xmatch("near", "stars", 5 / 3600).replace(" FROM ", " INTO mydb.pairs FROM ", 1)
    assert plan_of(sky, into, job=False, language="sql").where == HATS  # a quick query (or /compile) runs in-process
    with pytest.raises(ArchiveError) as err:
        plan_of(sky, into, job=True, language="sql")
    assert err.value.status == 400 and "INTO mydb" in err.value.message and "cannot split" in err.value.message


def test_a_cone_reads_only_the_partitions_near_it(sky):
    xm = plan_of(sky, xmatch("stars", "near", 5 / 3600, cone=(40.0, 10.0, 1.0))).partitioned
    t, u = xm.reads[xm.t_read], xm.reads[xm.u_reads[0]]
    assert 0 < len(u.partitions) <= 4 and 0 < len(t.partitions) < t.table.partitions / 3


def test_what_cannot_be_planned_by_partitions_is_refused_with_what_to_do(sky):
    with pytest.raises(ArchiveError) as err:
        plan_of(sky, xmatch("stars", "near", 30 / 3600))
    assert err.value.status == 400 and "larger than the margin cache of stars (10 arcsec)" in err.value.message
    assert "margin_threshold" in err.value.message
    column = "SELECT a.objid FROM sky.stars AS a JOIN near.near AS b ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, b.g / 1e6))"
    with pytest.raises(ArchiveError) as err:
        plan_of(sky, column)
    assert err.value.status == 400 and "constant radius" in err.value.message
