"""A quick query over a HATS catalog, run in-process over its partitions, goes on as a job past the quick time limit
as one on the caller's engine does (issue 18, point 1): the same run, its rows the job's result."""

from __future__ import annotations

import json

import pytest

LIMIT = 0.5  # seconds: the quick time limit of this test
# Many pairs of the catalog's rows: several times the limit, in-process (no cluster is configured).
SLOW = ("SELECT a.objid % 2 AS k, count(*) AS n FROM sky.stars AS a, (SELECT ra FROM sky.stars ORDER BY objid LIMIT 3000) AS b "
        "WHERE a.ra + b.ra < 360 GROUP BY a.objid % 2 ORDER BY k")  # fmt: skip


@pytest.fixture
def archive_config(hats_root):
    return {"mounts": [{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"}],
            "quick_time_limit": LIMIT, "job_workers": 2}  # fmt: skip


async def test_a_slow_query_over_a_hats_catalog_goes_on_as_a_job_with_its_rows(fetch, archive, hats_oracle):
    token = archive.users.create_token("hatty")
    headers = {"Authorization": "", "X-Auth-Token": token, "Content-Type": "application/json"}
    plan = await fetch("archive", "api", "compile", method="POST", headers=headers, body=json.dumps({"query": SLOW}))
    detail = next(p["detail"] for p in json.loads(plan.body)["phases"] if p["name"] == "partitions")
    assert "in-process" in detail, detail
    r = await fetch("archive", "api", "query", method="POST", headers=headers, body=json.dumps({"query": SLOW}), request_timeout=120)
    assert r.code == 202, r.body[:300]
    job = json.loads(r.body)
    assert r.headers["Location"] == job["links"]["self"] and job["owner"] == "hatty" and job["request"]["continued"] is True
    for _ in range(60):
        done = json.loads((await fetch("archive", "api", "jobs", str(job["id"]), params={"wait": "5"}, headers=headers)).body)
        if done["state"] in ("completed", "failed", "canceled"):
            break
    assert done["state"] == "completed", done
    rows = json.loads((await fetch("archive", "api", "jobs", str(job["id"]), "results", headers=headers)).body)["data"]
    want = hats_oracle.sql(SLOW.replace("sky.stars", "stars")).fetchall()
    assert [tuple(row) for row in rows] == [tuple(row) for row in want]
