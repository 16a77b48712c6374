"""Fanned-out queries on a real LocalCluster equal single-process DuckDB over all the files; what cannot be split
is refused; cancel leaves no task running; a worker killed mid-query fails it clearly (or dask retries it)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution import fanout
from jupyter_archive.core.execution.cluster import FanOut, batches, check_scheduler, fan_out
from tests.support.cluster import busy_workers, executing, wait_for
from tests.support.partitioned import oracle

FIXTURES = [HealthCheck.function_scoped_fixture]
UPLOAD = pa.table({"uid": list(range(40)), "ura": [i * 9.0 for i in range(40)], "udec": [(-1) ** i * i * 2.0 for i in range(40)]})


def run(cluster, catalog, sql, *, params=None, shipped=None, **kw):
    root, files = catalog
    plan = FanOut(sql, "cat", batches(files, 2), root, params=params or {}, shipped=shipped or {}, **kw)
    return fan_out(cluster, plan).read_all()


def expected(catalog, sql, *, params=None, shipped=None):
    con = oracle(catalog[1], shipped=shipped)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    finally:
        con.close()


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


def assert_same(got: pa.Table, want: pa.Table, *, ordered: bool) -> None:
    assert got.schema == want.schema
    rows, want_rows = [list(r.values()) for r in got.to_pylist()], [list(r.values()) for r in want.to_pylist()]
    if not ordered:
        rows, want_rows = sorted(rows, key=repr), sorted(want_rows, key=repr)
    assert len(rows) == len(want_rows)
    for r, w in zip(rows, want_rows):
        assert all(same(x, y) for x, y in zip(r, w)), (r, w)


def check(cluster, catalog, sql, *, ordered=False, **kw):
    assert_same(run(cluster, catalog, sql, **kw), expected(catalog, sql, **kw), ordered=ordered)


FILTERS = st.sampled_from(["", "WHERE dec > 30", "WHERE flags IN (1, 2, 3)", "WHERE g IS NULL", "WHERE ra BETWEEN 100 AND 100.5", "WHERE dec > 95"])
AGGS = st.lists(st.sampled_from(["count(*)", "count(g)", "sum(flags)", "min(ra)", "max(dec)", "avg(g)", "sum(g) FILTER (WHERE flags > 7)"]), min_size=1, max_size=4, unique=True)


@settings(max_examples=8, deadline=None, suppress_health_check=FIXTURES)
@given(where=FILTERS, aggs=AGGS, grouped=st.booleans(), having=st.booleans())
def test_aggregates_equal_one_process(cluster, catalog, where, aggs, grouped, having):
    if grouped:
        sql = f"SELECT flags, {', '.join(aggs)} FROM cat {where} GROUP BY flags" + (" HAVING count(*) > 100" if having else "") + " ORDER BY flags"
    else:
        sql = f"SELECT {', '.join(aggs)} FROM cat {where}"
    check(cluster, catalog, sql, ordered=grouped)


@settings(max_examples=5, deadline=None, suppress_health_check=FIXTURES)
@given(where=FILTERS, n=st.integers(0, 30), offset=st.integers(0, 5), desc=st.booleans())
def test_top_n_equals_one_process(cluster, catalog, where, n, offset, desc):
    sql = f"SELECT objid, ra, g FROM cat {where} ORDER BY ra {'DESC' if desc else ''}, objid LIMIT {n} OFFSET {offset}"
    check(cluster, catalog, sql, ordered=True)


@pytest.mark.parametrize(
    "sql, ordered",
    [
        ("SELECT * FROM cat WHERE objid % 5000 = 3", False),
        ("SELECT objid, ra + dec AS s FROM cat WHERE dec < -80 ORDER BY s DESC LIMIT 5", True),
        ("SELECT objid FROM cat WHERE dec > 60 LIMIT 7", None),  # any 7 rows: only the count is known
        ("SELECT DISTINCT flags FROM cat ORDER BY 1 DESC LIMIT 4", True),
        ("SELECT flags % 4 AS f4, count(*) AS n, avg(ra) FROM cat GROUP BY f4 HAVING n > 10 ORDER BY n DESC, f4", True),
        ("SELECT flags, count(*) + 1 FROM cat GROUP BY ALL ORDER BY 2, 1 LIMIT 3", True),
        ("SELECT flags, objid, g FROM cat WHERE g IS NOT NULL QUALIFY row_number() OVER (PARTITION BY flags ORDER BY g DESC, objid) <= 2 ORDER BY flags, g DESC", True),
        ("SELECT count(*), sum(objid) FROM cat WHERE dec > $lo", False),
    ],
)
def test_statements_equal_one_process(cluster, catalog, sql, ordered):
    params = {"lo": 12.5} if "$lo" in sql else None
    got = run(cluster, catalog, sql, params=params)
    want = expected(catalog, sql, params=params)
    if ordered is None:
        assert got.schema == want.schema and got.num_rows == want.num_rows
        return
    assert_same(got, want, ordered=ordered)


def test_cross_match_keeps_the_nearest_per_uploaded_row(cluster, catalog):
    sql = (
        "SELECT u.uid, c.objid, (c.ra - u.ura) * (c.ra - u.ura) + (c.dec - u.udec) * (c.dec - u.udec) AS d2 "
        "FROM cat AS c JOIN upload AS u ON c.ra BETWEEN u.ura - 3 AND u.ura + 3 AND c.dec BETWEEN u.udec - 3 AND u.udec + 3 "
        "QUALIFY row_number() OVER (PARTITION BY u.uid ORDER BY d2, c.objid) = 1 ORDER BY u.uid"
    )
    got = run(cluster, catalog, sql, shipped={"upload": UPLOAD})
    assert got.num_rows > 30
    assert_same(got, expected(catalog, sql, shipped={"upload": UPLOAD}), ordered=True)
    # Each batch may be given only the uploaded rows that can match in it (its rows' box, widened by the radius).
    root, files = catalog
    parts = batches(files, 2)
    mine = []
    for part in parts:
        box = oracle(part).sql("SELECT min(ra), max(ra), min(dec), max(dec) FROM cat").fetchall()[0]
        near = [i for i, (r, d) in enumerate(zip(UPLOAD["ura"].to_pylist(), UPLOAD["udec"].to_pylist()))
                if box[0] - 3 <= r <= box[1] + 3 and box[2] - 3 <= d <= box[3] + 3]
        mine.append({"upload": UPLOAD.take(near)})
    assert sum(t["upload"].num_rows for t in mine) < len(parts) * UPLOAD.num_rows
    plan = FanOut(sql, "cat", parts, root, shipped={"upload": UPLOAD}, shipped_per_batch=mine)
    assert_same(fan_out(cluster, plan).read_all(), got, ordered=True)


@pytest.mark.parametrize(
    "sql, words",
    [
        ("SELECT count(DISTINCT flags) FROM cat", "COUNT(DISTINCT"),
        ("SELECT objid, sum(g) OVER () FROM cat", "window function"),
        ("SELECT median(g) FROM cat", "MEDIAN"),
        ("SELECT arg_min(objid, g) FROM cat", "ARG_MIN"),
        ("SELECT * FROM cat a JOIN cat b USING (objid)", "itself"),
        ("SELECT * FROM cat WHERE g > (SELECT avg(g) FROM cat)", "subquery"),
        ("SELECT objid FROM cat UNION ALL SELECT objid FROM cat", "set operation"),
        ("SELECT u.uid, c.objid FROM upload u LEFT JOIN cat c ON c.objid = u.uid", "JOIN"),
        ("SELECT flags, count(*) FROM cat GROUP BY ROLLUP (flags)", "ROLLUP"),
        ("SELECT * FROM cat, other", "other"),
    ],
)
def test_what_cannot_be_split_is_refused(cluster, catalog, sql, words):
    with pytest.raises(ArchiveError) as err:
        run(cluster, catalog, sql, shipped={"upload": UPLOAD})
    assert err.value.status == 400 and words.lower() in str(err.value).lower()
    if "other" not in sql:
        assert "INTO mydb" in str(err.value)


SLOW = "SELECT count(*) FROM cat, slow WHERE hash(cat.objid + slow.x) % 1000003 = 0"


def slow_table(rows=600):
    return {"slow": pa.table({"x": list(range(rows))})}


def test_cancel_stops_every_task(cluster, catalog):
    client = cluster.client()
    cancel = threading.Event()
    root, files = catalog
    done = []
    progress = []
    reader = fan_out(cluster, FanOut(SLOW, "cat", batches(files, 2), root, shipped=slow_table(), threads=1), cancel=cancel, progress=lambda d, t: progress.append((d, t)))

    def consume():
        try:
            reader.read_all()
            done.append("finished")
        except ArchiveError as exc:
            done.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    assert wait_for(lambda: busy_workers(client))
    cancel.set()
    thread.join(60)
    assert not thread.is_alive()
    assert isinstance(done[0], ArchiveError) and done[0].code == "canceled"
    assert wait_for(lambda: executing(client) == 0 and not client.processing() or not any(client.processing().values()), 30)
    assert all(d < t for d, t in progress)


def test_a_worker_killed_mid_query_fails_it_clearly(cluster, catalog, local_cluster):
    client = cluster.client()
    root, files = catalog
    plan = FanOut(SLOW, "cat", batches(files, 2), root, shipped=slow_table(), threads=1)
    before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    try:
        reader = fan_out(cluster, plan)
        result = []
        thread = threading.Thread(target=lambda: result.append(_outcome(reader)))
        thread.start()
        assert wait_for(lambda: busy_workers(client))
        busy = busy_workers(client)
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
        assert isinstance(result[0], ArchiveError) and result[0].code == "cluster_error"
        assert "worker of the Dask cluster died" in str(result[0])
    finally:
        client.run_on_scheduler(lambda dask_scheduler, n=before: setattr(dask_scheduler, "allowed_failures", n))
        client.wait_for_workers(2, timeout=120)
        assert wait_for(lambda: executing(client) == 0, 60)


def _outcome(reader):
    try:
        return reader.read_all()
    except ArchiveError as exc:
        return exc


def test_a_worker_killed_mid_query_is_retried_by_dask(cluster, catalog):
    client = cluster.client()
    client.wait_for_workers(2, timeout=120)
    sql = "SELECT count(*) AS n, sum(x) AS s FROM cat, slow WHERE hash(cat.objid + slow.x) % 1000003 = 0"
    root, files = catalog
    reader = fan_out(cluster, FanOut(sql, "cat", batches(files, 2), root, shipped=slow_table(), threads=1))
    result = []
    thread = threading.Thread(target=lambda: result.append(_outcome(reader)))
    thread.start()
    assert wait_for(lambda: busy_workers(client))
    busy = busy_workers(client)
    os.kill(client.run(os.getpid, workers=busy[:1])[busy[0]], signal.SIGKILL)
    thread.join(180)
    assert not thread.is_alive()
    assert_same(result[0], expected(catalog, sql, shipped=slow_table()), ordered=False)
    client.wait_for_workers(2, timeout=120)


def test_decomposition_shapes():
    split = fanout.decompose('SELECT "flags", COUNT(*) AS "n", AVG("g") FROM "sky"."main"."cat" GROUP BY "flags" HAVING COUNT(*) > 1', "sky.main.cat")
    assert "GROUP BY" in split.task_sql and "HAVING" not in split.task_sql and "HAVING" in split.merge_sql
    plain = fanout.decompose("SELECT ra FROM cat WHERE dec > 3 LIMIT 10 OFFSET 5", "cat")
    assert plain.merge_sql is None and (plain.limit, plain.offset) == (10, 5) and "LIMIT 15" in plain.task_sql


def test_the_scheduler_setting_is_checked():
    assert check_scheduler("") == "" and check_scheduler("local") == "local" and check_scheduler("local:3") == "local:3"
    assert check_scheduler(" tcp://10.1.2.3:8786 ") == "tcp://10.1.2.3:8786"
    for bad in ("cluster", "local:0", "tcp://host", "http://host:8786"):
        with pytest.raises(ValueError, match="dask_scheduler"):
            check_scheduler(bad)


def test_no_dask_is_imported_without_a_scheduler(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jupyter_archive.core.archive import Archive\n"
        "from jupyter_archive.core.config import ArchiveConfig\n"
        f"a = Archive(ArchiveConfig(data_dir=Path({str(tmp_path)!r}), demo=False))\n"
        "assert not a.cluster.enabled\n"
        "a.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_partitions_to_read_is_the_statement_over_no_rows(cluster, catalog):
    import pyarrow.parquet as pq

    root, files = catalog
    sql = "SELECT count(*) AS n, max(ra) AS top FROM cat WHERE dec > 100"
    got = fan_out(cluster, FanOut(sql, "cat", [], root, schema=pq.read_schema(files[0]))).read_all()
    assert_same(got, expected(catalog, sql), ordered=False)


def test_a_task_reads_only_under_the_catalog_root(cluster, catalog, tmp_path):
    import pyarrow.parquet as pq

    root, files = catalog
    outside = tmp_path / "outside.parquet"
    pq.write_table(pq.read_table(files[0]), outside)
    plan = FanOut("SELECT count(*) FROM cat", "cat", [[str(outside)]], root, schema=pq.read_schema(files[0]))
    with pytest.raises(ArchiveError) as err:
        fan_out(cluster, plan).read_all()
    assert err.value.status == 403
