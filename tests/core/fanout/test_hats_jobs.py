"""Jobs over HATS catalogs on the Dask cluster, through the archive: a job reading many partitions of one
catalog fans out (``planner.CLUSTER``) and answers what single-process DuckDB over all the files answers;
quick queries and jobs over few partitions stay in-process; what cannot be split fails the job clearly;
a canceled job leaves no task running."""

from __future__ import annotations

import math
import time

import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.execution.planner import CLUSTER, HATS


def job_rows(a, text, language="adql"):
    p = a.users.principal("alice")
    job = a.jobs.submit_query(p, text, language)
    job = a.jobs.wait(p, job.id, timeout=300)
    assert job.state == "completed", (job.state, job.error_message)
    return job, a.jobs.result(p, job.id).to_table().to_pylist()


def where(a, text, *, job: bool):
    p = a.users.principal("alice")
    compiled = a.queries.compile(p, text, "adql", explain=False)
    return a.queries.plan(p, compiled.statements, job=job).where


def close(x, y) -> bool:
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) if isinstance(x, float) else x == y


@pytest.mark.parametrize(
    ("adql", "sql"),
    [
        ("SELECT COUNT(*) AS n, SUM(objid) AS s, MIN(ra) AS lo, MAX(dec) AS hi, AVG(g) AS m FROM sky.stars WHERE g < 21",
         "SELECT COUNT(*), SUM(objid), MIN(ra), MAX(dec), AVG(g) FROM stars WHERE g < 21"),
        ("SELECT flags, COUNT(*) AS n, AVG(g) AS m FROM sky.stars GROUP BY flags ORDER BY flags",
         "SELECT flags, COUNT(*), AVG(g) FROM stars GROUP BY flags ORDER BY flags"),
        ("SELECT TOP 25 objid, g FROM sky.stars ORDER BY g DESC, objid",
         "SELECT objid, g FROM stars ORDER BY g DESC, objid LIMIT 25"),
    ],
)  # fmt: skip
def test_a_job_over_many_partitions_fans_out_and_answers_as_duckdb(sky, hats_oracle, adql, sql):
    assert where(sky, adql, job=True) == CLUSTER
    assert where(sky, adql, job=False) == HATS  # a quick query stays in-process
    _, got = job_rows(sky, adql)
    want = hats_oracle.sql(sql).fetchall()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert all(close(x, y) for x, y in zip(g.values(), w)), (g, w)


def test_compile_shows_the_partitions_and_the_cluster(sky):
    p = sky.users.principal("alice")
    phases = {ph.name: ph.detail for ph in sky.queries.compile(p, "SELECT flags, COUNT(*) AS n FROM sky.stars GROUP BY flags", "adql").phases}
    total = len(sky.catalog.hats["sky"]["stars"].files)
    assert f"read {total}, total {total}" in phases["partitions"]
    assert "as a job, the Dask cluster" in phases["partitions"] and "tasks" in phases["partitions"]


def test_compile_answers_when_the_cluster_cannot_be_reached(hats_root, tmp_path):
    a = Archive(ArchiveConfig(data_dir=tmp_path, demo=False, dask_scheduler="tcp://127.0.0.1:9",
                              mounts=[{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"}]))  # fmt: skip
    a.start()
    try:
        phases = {ph.name: ph.detail for ph in a.queries.compile(a.users.principal("alice"), "SELECT COUNT(*) AS n FROM sky.stars WHERE r > 0", "adql").phases}
        assert "cannot be reached" in phases["partitions"]
    finally:
        a.close()


def test_a_job_reading_few_partitions_stays_in_process(sky):
    cone = "SELECT objid FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 40, 10, 0.5))"
    assert where(sky, cone, job=True) == HATS


def test_a_job_joining_another_table_is_refused_and_a_quick_query_is_right(sky, hats_oracle):
    p = sky.users.principal("alice")
    sky.queries.query(p, "SELECT objid AS id INTO mydb.picked FROM sky.stars WHERE objid % 1000 = 7", "sql", context="SKY").close()
    join = "SELECT COUNT(*) AS n, SUM(s.g) AS g FROM sky.stars AS s JOIN mydb.picked AS k ON s.objid = k.id"
    # the cluster cannot split it (not a cross-match by position): never run on one node as a job, but said what to do
    job = sky.jobs.wait(p, sky.jobs.submit_query(p, join, "adql").id, timeout=300)
    message = str(job.error_message)
    assert job.state == "failed" and "a join of the catalog with another table" in message and "SELECT ... INTO mydb.part" in message, message
    got = sky.queries.query(p, join, "adql").to_table().to_pylist()  # a quick query runs in-process, as without a cluster
    n, g = hats_oracle.sql("SELECT COUNT(*), SUM(g) FROM stars WHERE objid % 1000 = 7").fetchall()[0]
    assert got[0]["n"] == n and math.isclose(got[0]["g"], g, rel_tol=1e-9)


def test_what_cannot_be_split_fails_the_job_with_what_to_do(sky):
    p = sky.users.principal("alice")
    job = sky.jobs.submit_query(p, "SELECT COUNT(DISTINCT flags) AS n FROM sky.stars", "adql")
    job = sky.jobs.wait(p, job.id, timeout=300)
    assert job.state == "failed" and "cannot be split" in str(job.error_message) and "INTO mydb" in str(job.error_message), job.error_message


def test_a_canceled_cluster_job_leaves_no_task_running(sky, local_cluster):
    from distributed import Client

    p = sky.users.principal("alice")
    # seconds of work in every task: each row's id repeated 9,000 times, 40 times over (one value stays under
    # the 65,536 characters a query may build: core/sql/bounds.py)
    slow = ("SELECT SUM(LIST_SUM(LIST_TRANSFORM(RANGE(40), i -> LENGTH(REPEAT(CAST(objid + i AS VARCHAR), 9000))))) AS n "
            "FROM sky.stars")
    job = sky.jobs.submit_query(p, slow, "sql", context="SKY")
    with Client(local_cluster.scheduler_address) as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(client.processing().values()):
            if sky.jobs.get(p, job.id).state in ("completed", "failed"):
                break
            time.sleep(0.1)
        sky.jobs.cancel(p, job.id)
        job = sky.jobs.wait(p, job.id, timeout=120)
        assert job.state == "canceled", (job.state, job.error_message)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(client.processing().values()):
            time.sleep(0.2)
        assert not any(client.processing().values())
