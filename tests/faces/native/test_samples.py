"""Random samples through the real server's native API (``sample=N``, ``seed``): of a demo table, of a MyDB
table and of a job's result (stored, or kept in MyDB); its size, its bounds, the same rows for the same
seed and others for another, and bad values refused in the native error shape, never a 5xx."""

from __future__ import annotations

import io
import json

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.support import DEMO_ROWS, body_json

ROWS = ("archive", "api", "contexts", "DEMO", "tables", "PhotoObj", "rows")


async def sample(fetch, *parts, **params):
    resp = await fetch(*(parts or ROWS), params=params)
    assert resp.code == 200, resp.body
    return body_json(resp), resp.headers.get("X-Archive-Sample")


def ids(body, column=0) -> list:
    return [row[column] for row in body["data"]]


async def test_a_sample_of_a_demo_table_is_the_engines_reservoir(fetch, archive_data_dir):
    body, said = await sample(fetch, sample="1000")
    assert said == f"1000 of {DEMO_ROWS}; seed=0" and body["sample"] == {"rows": 1000, "total": DEMO_ROWS, "seed": 0}
    assert body["rows"] == 1000 and len(set(ids(body))) == 1000 and not body["truncated"]
    con = duckdb.connect(str(archive_data_dir / "demo" / "demo.duckdb"), read_only=True)
    try:
        want = con.sql("SELECT objid FROM PhotoObj USING SAMPLE reservoir(1000 ROWS) REPEATABLE (0)").fetchall()
        everything = {r[0] for r in con.sql("SELECT objid FROM PhotoObj").fetchall()}
    finally:
        con.close()
    assert ids(body) == [r[0] for r in want] and set(ids(body)) <= everything
    # Spread over the whole table, not its first rows: a tenth of the sample from each tenth, give or take.
    position = {objid: i for i, objid in enumerate(sorted(everything))}
    tenths = [0] * 10
    for objid in ids(body):
        tenths[position[objid] * 10 // DEMO_ROWS] += 1
    assert all(60 <= n <= 140 for n in tenths), tenths


async def test_the_same_seed_gives_the_same_rows_and_another_seed_others(fetch):
    first, _ = await sample(fetch, sample="500")
    again, _ = await sample(fetch, sample="500", seed="0")
    other, said = await sample(fetch, sample="500", seed="7")
    assert first == again and said == f"500 of {DEMO_ROWS}; seed=7"
    assert len(set(ids(first)) & set(ids(other))) < 100  # two samples of 500 of 20,000 share about 12 rows
    last, said = await sample(fetch, sample="3", seed=str(2**63 - 1))  # the largest seed DuckDB takes
    assert said == f"3 of {DEMO_ROWS}; seed={2**63 - 1}" and last["rows"] == 3


async def test_a_sample_bigger_than_the_table_is_the_whole_table(fetch):
    body, said = await sample(fetch, sample="100000")
    assert said == f"{DEMO_ROWS} of {DEMO_ROWS}; seed=0" and body["rows"] == DEMO_ROWS and len(set(ids(body))) == DEMO_ROWS
    arrow = await fetch(*ROWS, params={"sample": "10"}, headers={"Accept": "application/vnd.apache.arrow.stream"})
    table = pa.ipc.open_stream(io.BytesIO(arrow.body)).read_all()
    assert table.num_rows == 10 and table.schema.metadata[b"archive.sample"] == f"10 of {DEMO_ROWS}; seed=0".encode()
    assert table.schema.field("ra").metadata[b"unit"] == b"deg"  # the columns' metadata as a page has it


async def test_a_mydb_table_and_a_jobs_results(fetch, archive):
    made = await fetch("archive", "api", "query", method="POST",
                       body=json.dumps({"query": "CREATE TABLE mydb.Steps AS SELECT range AS i FROM range(30000)"}))
    assert made.code == 200, made.body
    body, said = await sample(fetch, "archive", "api", "contexts", "MyDB", "tables", "Steps", "rows", sample="2000", seed="3")
    assert said == "2000 of 30000; seed=3" and len(set(ids(body))) == 2000 and all(0 <= i < 30000 for i in ids(body))
    assert 12_000 < sum(ids(body)) / 2000 < 18_000  # a mean near the table's 14,999.5, not the first rows'
    for into in (None, "mydb.StepsCopy"):
        job = body_json(await fetch("archive", "api", "jobs", method="POST", body=json.dumps(
            {"query": "SELECT i FROM mydb.Steps", "context": "MyDB", **({"into": into} if into else {})})))
        for _ in range(60):
            job = body_json(await fetch("archive", "api", "jobs", str(job["id"]), params={"wait": "10"}))
            if job["state"] in ("completed", "failed"):
                break
        assert job["state"] == "completed", job
        results = ("archive", "api", "jobs", str(job["id"]), "results")
        drawn, said = await sample(fetch, *results, sample="2000", seed="3")
        assert said == "2000 of 30000; seed=3" and len(set(ids(drawn))) == 2000 and 12_000 < sum(ids(drawn)) / 2000 < 18_000
        assert (await sample(fetch, *results, sample="2000", seed="3"))[0] == drawn
        everything, said = await sample(fetch, *results, sample="40000")
        assert said == "30000 of 30000; seed=0" and sorted(ids(everything)) == list(range(30000))


async def test_a_sample_with_a_page_or_an_order_is_refused(fetch):
    for params in ({"sample": "10", "offset": "5"}, {"sample": "10", "limit": "5"}, {"sample": "10", "order": "ra"},
                   {"sample": "10", "desc": "true"}, {"seed": "3"}, {"sample": ""}, {"sample": "0"}, {"sample": "100001"},
                   {"sample": "10", "seed": "-1"}, {"sample": "10", "seed": str(2**63)}):  # fmt: skip
        resp = await fetch(*ROWS, params=params)
        assert resp.code == 400, (params, resp.code, resp.body)
        err = body_json(resp)["error"]
        assert err["code"] == "bad_request" and ("sample" in err["message"] or "seed" in err["message"]), (params, err)
    job = await fetch("archive", "api", "jobs", "1", "results", params={"sample": "10", "offset": "1"})
    assert job.code == 400 and "offset" in body_json(job)["error"]["message"]
    unknown = await fetch("archive", "api", "contexts", "DEMO", "tables", "NoSuchTable", "rows", params={"sample": "10"})
    assert unknown.code == 404 and body_json(unknown)["error"]["code"] == "not_found"


def drawn_values() -> list[dict]:
    """Query strings for ``sample``/``seed`` as hypothesis draws them (a fixed seed: the same every run)."""
    out: list[dict] = []
    number = st.integers(-(2**64), 2**64).map(str) | st.integers(-3, 100_003).map(str)
    value = st.text(max_size=12) | number | st.sampled_from(["1e3", "0x10", "١٠", "10.0", " 5 ", "+7", "1_0"])

    @seed(18)
    @settings(max_examples=60, database=None, suppress_health_check=list(HealthCheck))
    @given(value, st.none() | value)
    def collect(size, seed_):
        out.append({"sample": size} if seed_ is None else {"sample": size, "seed": seed_})

    collect()
    return out


async def test_any_sample_or_seed_is_answered_or_refused_clearly(fetch):
    for params in drawn_values():
        resp = await fetch(*ROWS, params=params)
        assert resp.code in (200, 400), (params, resp.code, resp.body)
        if resp.code == 400:
            assert body_json(resp)["error"]["code"] == "bad_request", (params, resp.body)
            continue
        size, seed_ = int(params["sample"]), int(params.get("seed") or 0)
        assert 1 <= size <= 100_000 and 0 <= seed_ < 2**63, params
        assert body_json(resp)["rows"] == min(size, DEMO_ROWS), params
