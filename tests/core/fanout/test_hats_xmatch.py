"""Cross-matches of a MyDB table with a HATS catalog, and SELECT ... INTO mydb over one, through the archive:
only the partitions the table's positions touch are read (in-process and on the cluster), a job over many of
them fans out with each task given only its rows of the table, and every answer is the one single-process
DuckDB over all the files gives; INTO mydb on the cluster writes what the in-process INTO writes, and a failed
job writes nothing."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.execution.crossmatches import touched
from jupyter_archive.core.execution.planner import CLUSTER, CLUSTER_PARTITIONS, HATS

EPS = 1e-9  # degrees: pairs this close to the radius may fall either side of it


@pytest.fixture(scope="module")
def stars(hats_oracle):
    """(objid, ra, dec) of every catalog row."""
    return [np.asarray(c) for c in zip(*hats_oracle.sql("SELECT objid, ra, dec FROM stars ORDER BY objid").fetchall())]


def alice(a):
    return a.users.principal("alice")


def upload(a, name: str, ra, dec) -> pa.Table:
    """``mydb.<name>`` (uid, ura, udec) with these positions."""
    table = pa.table({"uid": np.arange(len(ra), dtype=np.int64), "ura": np.asarray(ra, float), "udec": np.asarray(dec, float)})
    path = a.tables.upload_path(alice(a), "MyDB")
    pq.write_table(table, path)
    try:
        a.tables.upload(alice(a), "MyDB", name, path, "parquet", mode="replace")
    finally:
        path.unlink(missing_ok=True)
    return table


def xmatch(name: str, r: float, select="u.uid, s.objid") -> str:
    return (f"SELECT {select} FROM mydb.{name} AS u JOIN sky.stars AS s "
            f"ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ura, u.udec, {r!r}))")  # fmt: skip


def pairs_of(hats_oracle, table: pa.Table, r: float) -> tuple[set, set]:
    """The (uid, objid) pairs surely within r (r - EPS) and possibly within it (r + EPS), by brute force."""
    hats_oracle.register("__up", table)
    try:
        d = ("degrees(2 * asin(least(1.0, sqrt(pow(sin(radians(s.dec - u.udec) / 2), 2) + cos(radians(s.dec)) * cos(radians(u.udec)) "
             "* pow(sin(radians(s.ra - u.ura) / 2), 2)))))")  # fmt: skip
        got = hats_oracle.sql(f"SELECT u.uid, s.objid, {d} AS d FROM __up AS u, stars AS s WHERE s.dec BETWEEN u.udec - {r + 1e-6} AND u.udec + {r + 1e-6} AND {d} < {r + EPS}").fetchall()
    finally:
        hats_oracle.unregister("__up")
    return {(u, o) for u, o, x in got if x < r - EPS}, {(u, o) for u, o, _ in got}


def run_job(a, text, language="adql", **kw):
    p = alice(a)
    job = a.jobs.wait(p, a.jobs.submit_query(p, text, language, **kw).id, timeout=300)
    assert job.state == "completed", (job.state, job.error_message)
    log = " ".join(line for _, line in a.jobs.log(p, job.id))
    return job, log


def job_pairs(a, text):
    job, log = run_job(a, text)
    rows = a.jobs.result(alice(a), job.id).to_table().to_pylist()
    return [(r["uid"], r["objid"]) for r in rows], log


def positions(draw, stars, n_near, n_edge, r):
    """Uploaded positions: catalog rows moved by up to 1.5 r, points on partition edges (HEALPix order 1 and 2
    cell corners and edge midpoints), near the poles and on either side of RA = 0."""
    import cdshealpix.nested as hp

    objid, ra, dec = stars
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pick = rng.integers(0, len(ra), n_near)
    sep, angle = rng.uniform(0, 1.5 * r, n_near), rng.uniform(0, 2 * np.pi, n_near)
    up_dec = np.clip(dec[pick] + sep * np.cos(angle), -90, 90)
    up_ra = (ra[pick] + sep * np.sin(angle) / np.maximum(np.cos(np.radians(up_dec)), 1e-6)) % 360
    depth = draw(st.sampled_from([1, 2]))
    cells = rng.integers(0, 12 * 4**depth, n_edge)
    lon, lat = hp.vertices(cells.astype(np.uint64), depth)
    corner = rng.integers(0, 4, n_edge)
    e_ra = np.asarray(lon.to_value("deg"))[np.arange(n_edge), corner]
    e_dec = np.asarray(lat.to_value("deg"))[np.arange(n_edge), corner]
    special = np.array([[0.0, 0.0], [359.9999, 0.0], [0.0001, 10.0], [359.99, -20.0], [12.0, 89.95], [200.0, -89.9], [45.0, 90.0]])
    return np.concatenate([up_ra, e_ra % 360, special[:, 0]]), np.concatenate([up_dec, e_dec, special[:, 1]])


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), r=st.sampled_from([1 / 3600, 0.05, 0.4, 1.2]))
def test_generated_uploads_fan_out_and_equal_brute_force(sky, hats_oracle, stars, data, r):
    ra, dec = positions(data.draw, stars, 150, 40, r)
    table = upload(sky, "gen", ra, dec)
    text = xmatch("gen", r)
    compiled = sky.queries.compile(alice(sky), text, "adql", explain=False)
    assert sky.queries.plan(alice(sky), compiled.statements, job=True).where == CLUSTER
    got, log = job_pairs(sky, text)
    assert len(got) == len(set(got))  # each pair once, though rows near partition edges go to two tasks
    surely, possibly = pairs_of(hats_oracle, table, r)
    assert surely <= set(got) <= possibly
    assert "ran on the Dask cluster" in log and "those the positions of mydb.main.gen touch" in log
    shipped = int(log.split(" of its rows shipped")[0].rsplit(", ", 1)[-1])
    tasks = int(log.split("ran on the Dask cluster: ")[1].split(" tasks")[0])
    assert table.num_rows <= shipped < tasks * table.num_rows  # each task only the rows near its partitions


def test_a_compact_upload_prunes_partitions_and_stays_in_process(sky, hats_oracle, stars):
    objid, ra, dec = stars
    near = (np.abs(ra - 40) < 1.5) & (np.abs(dec - 10) < 1.5)
    table = upload(sky, "field", ra[near] + 1e-4, dec[near])
    r = 2 / 3600
    text = xmatch("field", r)
    p = alice(sky)
    compiled = sky.queries.compile(p, text, "adql", explain=False)
    plan = sky.queries.plan(p, compiled.statements, job=True)
    assert plan.where == HATS  # a job whose positions touch few partitions stays in-process
    read = plan.partitioned.reads[0]
    table_of = read.table
    cursor = plan.engine.cursor()
    try:
        parts = touched(read, cursor, compiled.statements[0].params)
        ready = plan.ready(compiled.statements, cursor)[0].sql
    finally:
        cursor.close()
    assert 0 < len(parts) < CLUSTER_PARTITIONS and len(parts) < table_of.partitions / 4
    assert ready.count(".parquet'") == sum(len(table_of.files[i]) for i in parts)  # only those files are read
    # every matched row lies in a partition read
    got = {(r["uid"], r["objid"]) for r in sky.queries.query(p, text, "adql", row_limit=None).to_table().to_pylist()}
    surely, possibly = pairs_of(hats_oracle, table, r)
    assert surely <= got <= possibly and len(surely) >= table.num_rows // 2
    phases = {ph.name: ph.detail for ph in sky.queries.compile(p, text, "adql").phases}
    assert "pruned by the positions of mydb.main.field when it runs" in phases["partitions"]


def test_nearest_match_per_uploaded_row_and_aggregates_fan_out(sky, hats_oracle, stars):
    objid, ra, dec = stars
    rng = np.random.default_rng(5)
    pick = rng.integers(0, len(ra), 300)
    table = upload(sky, "many", ra[pick] + 0.05, dec[pick])
    r = 0.3
    dist = "DISTANCE(POINT('ICRS', s.ra, s.dec), POINT('ICRS', u.ura, u.udec))"
    # the nearest per uploaded row, in ADQL: the least distance per row (MIN decomposes)
    text = xmatch("many", r, f"u.uid, COUNT(*) AS n, MIN({dist}) AS d") + " GROUP BY u.uid ORDER BY u.uid"
    job, log = run_job(sky, text)
    got = sky.jobs.result(alice(sky), job.id).to_table().to_pylist()
    surely, possibly = pairs_of(hats_oracle, table, r)
    counts = {}
    for u, _ in surely:
        counts[u] = counts.get(u, 0) + 1
    assert "ran on the Dask cluster" in log
    assert {g["uid"] for g in got} >= set(counts) and all(counts.get(g["uid"], 0) <= g["n"] for g in got)
    assert sum(g["n"] for g in got) <= len(possibly)
    # and in SQL: QUALIFY row_number() per uploaded row, the nearest objid itself
    sql = ("SELECT u.uid, s.objid FROM mydb.many AS u JOIN sky.stars AS s "
           "ON CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ura, u.udec, 0.3)) = 1 "
           "QUALIFY row_number() OVER (PARTITION BY u.uid ORDER BY DISTANCE(POINT('ICRS', s.ra, s.dec), POINT('ICRS', u.ura, u.udec)), s.objid) = 1 "
           "ORDER BY u.uid")  # fmt: skip
    job, log = run_job(sky, sql, "adql")
    nearest = {r["uid"]: r["objid"] for r in sky.jobs.result(alice(sky), job.id).to_table().to_pylist()}
    assert "ran on the Dask cluster" in log
    by_d = {}
    hats_oracle.register("__up", table)
    try:
        for u, o, d in hats_oracle.sql(
            "SELECT u.uid, s.objid, degrees(2 * asin(least(1.0, sqrt(pow(sin(radians(s.dec - u.udec) / 2), 2) + cos(radians(s.dec)) "
            "* cos(radians(u.udec)) * pow(sin(radians(s.ra - u.ura) / 2), 2))))) AS d FROM __up AS u, stars AS s "
            "WHERE s.dec BETWEEN u.udec - 0.31 AND u.udec + 0.31"
        ).fetchall():
            if d < r - EPS and (u not in by_d or (d, o) < by_d[u]):
                by_d[u] = (d, o)
    finally:
        hats_oracle.unregister("__up")
    assert {u: o for u, (_, o) in by_d.items()} == nearest


def test_into_mydb_on_the_cluster_writes_what_in_process_writes(sky, hats_oracle):
    p = alice(sky)
    text = "SELECT objid, ra, dec, g, flags, g - r AS color INTO mydb.red FROM stars WHERE g - r > 0.4"
    compiled = sky.queries.compile(p, text, "sql", explain=False, context="SKY")
    assert sky.queries.plan(p, compiled.statements, job=True).where == CLUSTER
    job, log = run_job(sky, text, "sql", context="SKY")
    assert "ran on the Dask cluster" in log and job.rows > 0
    sky.queries.query(p, text.replace("mydb.red", "mydb.red_here"), "sql", context="SKY").close()  # the same, in-process (a quick query)
    read = "SELECT * FROM mydb.{} ORDER BY objid"
    got, here = (sky.queries.query(p, read.format(t), "sql", row_limit=None).to_table() for t in ("red", "red_here"))
    assert got.schema == here.schema and got.equals(here)
    assert got.num_rows == job.rows == hats_oracle.sql("SELECT COUNT(*) FROM stars WHERE g - r > 0.4").fetchall()[0][0]
    # SUM over a BIGINT is a HUGEINT in-process: the cluster's table has the same column types
    agg = "SELECT flags, COUNT(*) AS n, SUM(objid) AS s, AVG(g) AS m INTO mydb.sums FROM stars GROUP BY flags"
    run_job(sky, agg, "sql", context="SKY")
    sky.queries.query(p, agg.replace("mydb.sums", "mydb.sums_here"), "sql", context="SKY").close()
    a, b = ([(c.name, c.datatype) for c in sky.catalog.table(p, "MyDB", t).columns] for t in ("sums", "sums_here"))
    assert a == b and ("s", "HUGEINT") in a
    a, b = (sky.queries.query(p, f"SELECT * FROM mydb.{t} ORDER BY flags", "sql").to_table().to_pylist() for t in ("sums", "sums_here"))
    assert len(a) == len(b) and all(x["n"] == y["n"] and x["s"] == y["s"] and math.isclose(x["m"], y["m"], rel_tol=1e-12) for x, y in zip(a, b))


def test_a_failed_into_job_on_the_cluster_leaves_no_table(sky):
    p = alice(sky)
    # one row of one task fails its cast; the other tasks' rows never reach MyDB
    bad = "SELECT objid, CAST(CASE WHEN objid = 123457 THEN 'x' ELSE '1' END AS INTEGER) AS one INTO mydb.broken FROM sky.stars"
    job = sky.jobs.wait(p, sky.jobs.submit_query(p, bad, "sql", context="SKY").id, timeout=300)
    assert job.state == "failed" and "x" in str(job.error_message), job.error_message
    assert "broken" not in {t.name.lower() for t in sky.catalog.tables(p, "MyDB")}
    with pytest.raises(Exception, match="(?i)broken"):
        sky.queries.query(p, "SELECT COUNT(*) FROM mydb.broken", "sql").close()


def test_an_outer_cross_match_keeping_unmatched_rows_fans_out_and_is_right(sky, hats_oracle, stars):
    objid, ra, dec = stars
    rng = np.random.default_rng(11)
    pick = rng.integers(0, len(ra), 200)
    table = upload(sky, "lefty", np.concatenate([ra[pick] + 1e-4, rng.uniform(0, 360, 100)]), np.concatenate([dec[pick], rng.uniform(-60, 60, 100)]))
    r = 2 / 3600
    text = (f"SELECT u.uid, s.objid FROM mydb.lefty AS u LEFT JOIN sky.stars AS s "
            f"ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ura, u.udec, {r!r}))")  # fmt: skip
    p = alice(sky)
    compiled = sky.queries.compile(p, text, "adql", explain=False)
    plan = sky.queries.plan(p, compiled.statements, job=True)
    assert plan.where == CLUSTER and plan.outer  # the matched rows on the cluster, u's unmatched ones added here
    surely, possibly = pairs_of(hats_oracle, table, r)
    assert surely == possibly
    matched = {u for u, _ in surely}
    want = sorted([*surely, *((u, None) for u in range(table.num_rows) if u not in matched)], key=repr)
    job, log = run_job(sky, text)
    got = sorted(((r["uid"], r["objid"]) for r in sky.jobs.result(p, job.id).to_table().to_pylist()), key=repr)
    assert got == want and len(matched) >= 150
    assert "ran on the Dask cluster" in log and "an outer cross-match" in log
    # the same into MyDB, with a count per uploaded row: u's rows without a match count 0
    counted = text.replace("SELECT u.uid, s.objid", "SELECT u.uid, COUNT(s.objid) AS n") + " GROUP BY u.uid"
    job, log = run_job(sky, counted, target="/mydb/lefty_n")
    assert "an outer cross-match" in log and job.rows == table.num_rows
    rows = {r["uid"]: r["n"] for r in sky.queries.query(p, "SELECT * FROM mydb.lefty_n", "sql", row_limit=None).to_table().to_pylist()}
    assert rows == {u: sum(1 for x, _ in surely if x == u) for u in range(table.num_rows)}


def test_a_small_upload_stays_in_process_and_says_why(sky, stars):
    objid, ra, dec = stars
    rng = np.random.default_rng(3)
    table = upload(sky, "few", rng.uniform(0, 360, 60), rng.uniform(-80, 80, 60))  # all over the sky, fewer rows than the fixture's cluster_min_rows
    text = xmatch("few", 2 / 3600)
    p = alice(sky)
    plan = sky.queries.plan(p, sky.queries.compile(p, text, "adql", explain=False).statements, job=True)
    assert plan.where == HATS and len(plan.partitioned.reads[0].partitions) >= CLUSTER_PARTITIONS
    job, log = run_job(sky, text)
    assert f"in-process: mydb.main.few has 60 positions, fewer than the {sky.cluster.min_rows}" in log and "ran on the Dask cluster" not in log
    assert table.num_rows == 60


@pytest.mark.parametrize("text, what", [
    ("SELECT objid FROM sky.stars; SELECT objid FROM sky.stars", "a query of several statements"),
    ("SELECT objid, SUM(g) OVER (ORDER BY objid) AS running FROM sky.stars", "a window function over the whole table"),
])  # fmt: skip
def test_a_job_the_cluster_cannot_split_is_refused_saying_what_to_do(sky, text, what):
    p = alice(sky)
    job = sky.jobs.wait(p, sky.jobs.submit_query(p, text, "sql").id, timeout=300)
    assert job.state == "failed" and what in str(job.error_message) and "SELECT ... INTO mydb" in str(job.error_message), job.error_message


@pytest.mark.parametrize("ending", ["time_limit", "cancel"])
def test_an_outer_cross_match_obeys_its_time_limit_and_cancel_at_the_coordinator_too(sky, stars, ending):
    objid, ra, dec = stars
    upload(sky, "slowleft", ra[:300] + 1e-4, dec[:300])
    # the WHERE stays in the statement finished at the coordinator: an uncorrelated count that runs for minutes
    text = (f"SELECT u.uid, s.objid FROM mydb.slowleft AS u LEFT JOIN sky.stars AS s "
            f"ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ura, u.udec, {2 / 3600!r})) "
            f"WHERE u.uid < (SELECT count(*) FROM range(10000000000000) AS g(x) WHERE x % 7 = 3)")  # fmt: skip
    p = alice(sky)
    plan = sky.queries.plan(p, sky.queries.compile(p, text, "adql", explain=False).statements, job=True)
    assert plan.where == CLUSTER and plan.outer
    job = sky.jobs.submit_query(p, text, "adql", **({"time_limit": 4} if ending == "time_limit" else {}))
    if ending == "cancel":
        # every task done: the job is in its statement at the coordinator
        assert sky.jobs.wait(p, job.id, timeout=60, until=lambda j: j.progress >= 0.99 or j.final).state == "running"
        sky.jobs.cancel(p, job.id)
    job = sky.jobs.wait(p, job.id, timeout=90)
    if ending == "time_limit":
        assert job.state == "failed" and "execution duration of 4 s" in str(job.error_message), (job.state, job.error_message)
    else:
        assert job.state == "canceled", (job.state, job.error_message)
