"""Job faces end to end through the real server: CasJobs, Quasar large queries, the native jobs API."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re

import pandas as pd
import pytest
import io

from tests.support import body_json

NET_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$")


async def poll(fetch, *parts, until, timeout=30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        resp = await fetch(*parts)
        data = body_json(resp)
        if until(data) or loop.time() > deadline:
            return data
        await asyncio.sleep(0.1)


async def test_casjobs_submit_status_and_created_table(fetch, demo_db):
    resp = await fetch(
        "archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT",
        body=json.dumps({"Query": "SELECT TOP 10 objid, ra, dec INTO mydb.MyTable1 FROM PhotoObj ORDER BY objid", "TaskName": "t"}),
        headers={"Content-Type": "application/json", "Accept": "text/plain"}, params={"TaskName": "SciScript-Python.CasJobs.submitJob"},
    )
    assert resp.code == 200, resp.body
    job_id = int(resp.body.decode())  # SciScript: int(body)
    assert resp.headers["Content-Type"].startswith("text/plain")
    job = await poll(fetch, "archive", "casjobs", "jobs", str(job_id), until=lambda j: j["Status"] in (3, 4, 5))
    assert job["JobID"] == job_id and isinstance(job["Status"], int)
    assert job["Status"] == 5, job["Message"]
    assert job["Message"] == "Query Complete"
    assert job["Rows"] == 10 and job["Created_Table"] == "MyTable1"
    assert isinstance(job["WebServicesID"], int)
    for key in ("TimeSubmit", "TimeStart", "TimeEnd"):
        assert NET_TIME.match(job[key]), job[key]
    assert job["Target"] == "DEMO" and job["OutputType"] == "QUERY"
    assert "CASJOBS_INTO_TABLE" in job["ModifiedQuery"] and "INTO" not in job["ModifiedQuery"].upper().split("/*")[0]
    assert set(job) >= {"SendEmail", "AutoComplete", "Estimate", "TaskName", "OutputLoc", "HostIP", "Query", "Params"}
    # the table is in MyDB
    q = await fetch("archive", "casjobs", "contexts", "MyDB", "query", method="POST", body=json.dumps({"Query": "SELECT count(*) AS n FROM MyTable1"}))
    assert q.body.decode().split() == ["n", "10"]
    # listing, with the RACM-style null bounds
    lst = body_json(await fetch("archive", "casjobs", "jobs", params={"submittedFrom": "null", "submittedTo": "null"}))
    assert [j["JobID"] for j in lst] == [job_id]
    assert body_json(await fetch("archive", "casjobs", "Jobs", ""))[0]["JobID"] == job_id


async def test_casjobs_create_table_and_cancel(fetch):
    resp = await fetch("archive", "casjobs", "contexts", "demo", "jobs", method="PUT",
                       body=json.dumps({"Query": "SELECT objid FROM PhotoObj WHERE r < 18", "CreateTable": True, "TableName": "Bright18"}))
    job_id = int(resp.body)
    job = await poll(fetch, "archive", "casjobs", "jobs", str(job_id), until=lambda j: j["Status"] >= 3)
    assert job["Status"] == 5 and job["Created_Table"] == "Bright18"
    slow = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT",
                       body=json.dumps({"Query": "SELECT count(*) FROM range(10000000000000) a"}))
    slow_id = int(slow.body)
    await poll(fetch, "archive", "casjobs", "jobs", str(slow_id), until=lambda j: j["Status"] == 1)
    resp = await fetch("archive", "casjobs", "jobs", str(slow_id), method="DELETE")
    assert resp.code == 200
    job = await poll(fetch, "archive", "casjobs", "jobs", str(slow_id), until=lambda j: j["Status"] in (3, 4, 5), timeout=5)
    assert job["Status"] == 3
    # canceling a finished job is harmless
    assert (await fetch("archive", "casjobs", "jobs", str(job_id), method="DELETE")).code == 200


async def test_casjobs_job_errors(fetch):
    bad = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT", body=json.dumps({"Query": "SELECT FROM WHERE"}))
    assert bad.code == 400 and "Error Message" in body_json(bad)
    missing = await fetch("archive", "casjobs", "jobs", "999999")
    assert missing.code == 404 and "Error Message" in body_json(missing)
    # runtime failure: the job fails with the message
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT",
                       body=json.dumps({"Query": "SELECT CAST('x' AS INTEGER) AS boom FROM PhotoObj"}))
    job = await poll(fetch, "archive", "casjobs", "jobs", resp.body.decode(), until=lambda j: j["Status"] >= 3)
    assert job["Status"] == 4 and "x" in job["Message"]


async def test_quasar_large_query_writes_destination(fetch, demo_db):
    q = "SELECT objid, r FROM `PhotoObj` WHERE r < :cut"
    resp = await fetch("archive", "quasar", "query", "fs", "demo", method="POST", body=q, params={"var.cut": "18"},
                       headers={"Destination": "/mydb/bright"})
    assert resp.code == 200, resp.body
    out = body_json(resp)
    assert out["out"] == "/mydb/bright" and [p["name"] for p in out["phases"]][0] == "SQL AST"
    data = await fetch("archive", "quasar", "data", "fs", "mydb", "bright", headers={"Accept": "text/csv"})
    got = pd.read_csv(io.BytesIO(data.body))
    assert len(got) == demo_db.sql("SELECT count(*) FROM PhotoObj WHERE r < 18").fetchall()[0][0]
    # again: the destination is replaced, not appended to
    resp = await fetch("archive", "quasar", "query", "fs", "demo", method="POST", body=q, params={"var.cut": "17"},
                       headers={"Destination": "/mydb/bright"})
    data = await fetch("archive", "quasar", "data", "fs", "mydb", "bright", headers={"Accept": "text/csv"})
    assert len(pd.read_csv(io.BytesIO(data.body))) == demo_db.sql("SELECT count(*) FROM PhotoObj WHERE r < 17").fetchall()[0][0]
    # errors
    err = await fetch("archive", "quasar", "query", "fs", "demo", method="POST", body=q, params={"var.cut": "18"})
    assert err.code == 400 and "Destination" in body_json(err)["error"]
    err = await fetch("archive", "quasar", "query", "fs", "demo", method="POST", body=q, params={"var.cut": "18"},
                      headers={"Destination": "/demo/evil"})
    assert err.code == 403
    err = await fetch("archive", "quasar", "query", "fs", "demo", method="POST", body="SELECT nope FROM `PhotoObj`",
                      headers={"Destination": "/mydb/x"})
    e = body_json(err)
    assert err.code == 400 and e["phases"][-1].get("error")


async def test_native_jobs_api(fetch):
    resp = await fetch("archive", "api", "jobs", method="POST",
                       body=json.dumps({"query": "SELECT objid, ra FROM PhotoObj ORDER BY objid LIMIT 25", "context": "DEMO"}))
    assert resp.code == 201, resp.body
    job = body_json(resp)
    assert resp.headers["Location"].endswith(f"/archive/api/jobs/{job['id']}")
    done = body_json(await fetch("archive", "api", "jobs", str(job["id"]), params={"wait": "20"}))
    assert done["state"] == "completed" and done["rows"] == 25 and done["progress"] == 1.0
    page = body_json(await fetch("archive", "api", "jobs", str(job["id"]), "results", params={"offset": "20", "limit": "10"}))
    assert page["rows"] == 5 and [c["name"] for c in page["columns"]] == ["objid", "ra"]
    csv = await fetch("archive", "api", "jobs", str(job["id"]), "results", params={"format": "csv"})
    assert len(csv.body.decode().strip().splitlines()) == 26
    log = body_json(await fetch("archive", "api", "jobs", str(job["id"]), "log"))["log"]
    assert any("completed" in x["line"] for x in log)
    listing = body_json(await fetch("archive", "api", "jobs", params={"state": "completed"}))
    assert job["id"] in [j["id"] for j in listing["jobs"]] and listing["total"] >= 1
    # pending until run, then cancel/delete
    pend = body_json(await fetch("archive", "api", "jobs", method="POST",
                                 body=json.dumps({"query": "SELECT 1 AS x", "context": "DEMO", "run": False})))
    assert pend["state"] == "pending"
    ran = body_json(await fetch("archive", "api", "jobs", str(pend["id"]), "run", method="POST", body=""))
    assert ran["state"] in ("queued", "running", "completed")
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    sched = body_json(await fetch("archive", "api", "jobs", method="POST",
                                  body=json.dumps({"query": "SELECT 1 AS x", "context": "DEMO", "startTime": later})))
    assert sched["state"] == "scheduled"
    assert body_json(await fetch("archive", "api", "jobs", str(sched["id"]), "cancel", method="POST", body=""))["state"] == "canceled"
    assert (await fetch("archive", "api", "jobs", str(sched["id"]), method="DELETE")).code == 204
    assert (await fetch("archive", "api", "jobs", str(sched["id"]))).code == 404
    bad = await fetch("archive", "api", "jobs", str(job["id"]) + "x")
    assert bad.code == 404 and body_json(bad)["error"]["code"] == "not_found"


async def test_200_jobs_from_4_users_at_once(fetch, archive):
    """Load: every job completes, none is lost, and no user ever has more than the cap running."""
    tokens = [archive.users.create_token(f"load{i}") for i in range(4)]
    cap = archive.jobs.runner.per_user  # the effective cap (config 0: every job worker but one)

    async def submit(i):
        resp = await fetch("archive", "api", "jobs", method="POST",
                           body=json.dumps({"query": f"SELECT {i} AS n, sum(range) AS s FROM range(50000)", "context": "DEMO"}),
                           headers={"Authorization": "", "X-Auth-Token": tokens[i % 4]})
        assert resp.code == 201, resp.body
        return i % 4, body_json(resp)["id"]

    submitted = await asyncio.gather(*(submit(i) for i in range(200)))
    assert len({jid for _, jid in submitted}) == 200
    done = []
    for user, jid in submitted:
        resp = await fetch("archive", "api", "jobs", str(jid), params={"wait": "60"},
                           headers={"Authorization": "", "X-Auth-Token": tokens[user]})
        job = body_json(resp)
        assert job["state"] == "completed", job
        assert job["rows"] == 1
        done.append((job["owner"], job["started"], job["ended"]))
    assert len(done) == 200
    for owner in {o for o, _, _ in done}:
        spans = sorted((s, e) for o, s, e in done if o == owner)
        for s, _ in spans:  # how many of this user's jobs were running at each start
            assert sum(1 for s2, e2 in spans if s2 <= s < e2) <= cap


@pytest.mark.parametrize("archive_config", [{"jobs_waiting_per_user": 3}])
async def test_a_user_may_have_only_so_many_jobs_waiting(fetch, archive, archive_config):
    """Past the cap, creating a job is a 429 with Retry-After in each face's own error shape; other users are not
    held; a job that leaves the queue gives its place back."""
    tap_form = {"method": "POST", "follow_redirects": False, "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                "body": "REQUEST=doQuery&LANG=ADQL&QUERY=SELECT%20TOP%201%20objid%20FROM%20demo.PhotoObj"}
    made = []
    for _ in range(3):  # PENDING: UWS jobs wait until PHASE=RUN
        resp = await fetch("archive", "tap", "async", **tap_form)
        assert resp.code == 303, resp.body
        made.append(resp.headers["Location"].rsplit("/", 1)[1])
    refused = await fetch("archive", "tap", "async", raise_error=False, **tap_form)
    assert refused.code == 429 and int(refused.headers["Retry-After"]) > 0
    assert b'name="QUERY_STATUS" value="ERROR"' in refused.body and b"3 jobs waiting" in refused.body
    native = await fetch("archive", "api", "jobs", method="POST", raise_error=False,
                         body=json.dumps({"query": "SELECT 1", "context": "DEMO"}))
    assert native.code == 429 and body_json(native)["error"]["code"] == "too_many_requests"
    other = {"Authorization": "", "X-Auth-Token": archive.users.create_token("other")}
    mine = await fetch("archive", "api", "jobs", method="POST", headers=other, body=json.dumps({"query": "SELECT 1", "context": "DEMO"}))
    assert mine.code == 201
    gone = await fetch("archive", "tap", "async", made[0], method="DELETE", follow_redirects=False, raise_error=False)
    assert gone.code in (200, 204, 303)
    assert (await fetch("archive", "tap", "async", **tap_form)).code == 303
