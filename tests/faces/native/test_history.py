"""The query history (``GET/DELETE archive/api/history``): every face's quick queries and jobs, through the real server.

alice and bob sign in with archive tokens; the Jupyter owner is the admin.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from tests.support import body_json


def auth(token: str, **extra) -> dict:
    return {"Authorization": "", "X-Auth-Token": token, **extra}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SLOW = "SELECT count(*) AS n FROM range(10000000000000) a"
DIRECTIVE = "SELECT objid, r FROM PhotoObj ORDER BY objid LIMIT 3"  # a SAS directive's, run as a job
# Each face's quick query: (face, language, context, its text, how to send it). Each text is its own, so the history tells them apart.
QUICK = [
    ("native", "sql", "DEMO", "SELECT objid FROM PhotoObj ORDER BY objid LIMIT 3",
     lambda t: (("archive", "api", "query"), {"method": "POST", "body": json.dumps({"query": t, "context": "DEMO"})})),
    ("casjobs", "tsql", "DEMO", "SELECT TOP 4 objid FROM PhotoObj",
     lambda t: (("archive", "casjobs", "contexts", "DEMO", "query"), {"method": "POST", "body": json.dumps({"Query": t})})),
    ("quasar", "sql2", "/demo", "SELECT objid FROM `PhotoObj` LIMIT 5",
     lambda t: (("archive", "quasar", "query", "fs", "demo"), {"params": {"q": t}})),
    ("dax", "mysql", None, "SELECT objid FROM DEMO.PhotoObj ORDER BY objid LIMIT 6",
     lambda t: (("archive", "dax", "db", "v0", "tap", "sync"), {"params": {"query": t}})),
    ("tap", "adql", None, "SELECT TOP 7 objid FROM demo.PhotoObj",
     lambda t: (("archive", "tap", "sync"), {"method": "POST", "headers": FORM,
                                              "body": urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": t})})),
]  # fmt: skip


async def history(fetch, headers: dict, **params) -> dict:
    resp = await fetch("archive", "api", "history", params={k: str(v) for k, v in params.items()}, headers=headers)
    assert resp.code == 200, resp.body
    return body_json(resp)


async def wait_state(fetch, job_id, headers: dict, states: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + 30
    while True:
        job = body_json(await fetch("archive", "api", "jobs", str(job_id), headers=headers))
        if job["state"] in states or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.05)


@pytest.fixture
def archive_config():
    return {"quick_time_limit": 1.5}  # a quick query that times out does so soon


async def test_every_face_and_job_in_the_history(fetch, archive):
    token = archive.users.create_token("alice")
    h = auth(token)
    for _face, _language, _context, text, request in QUICK:
        parts, kw = request(text)
        resp = await fetch(*parts, headers={**h, **kw.pop("headers", {})}, **kw)
        assert resp.code == 200, (text, resp.body)
    # jobs: native, TAP async, CasJobs submit, a SAS directive run
    resp = await fetch("archive", "api", "jobs", method="POST", headers=h,
                       body=json.dumps({"query": "SELECT 1 AS one UNION ALL SELECT 2", "context": "DEMO"}))
    native_job = body_json(resp)["id"]
    resp = await fetch("archive", "tap", "async", method="POST", headers={**h, **FORM},
                       body=urlencode({"LANG": "ADQL", "QUERY": "SELECT TOP 2 objid FROM demo.PhotoObj", "PHASE": "RUN"}),
                       follow_redirects=False)
    assert resp.code == 303, resp.body
    tap_job = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT", headers=h,
                       body=json.dumps({"Query": "SELECT TOP 1 objid FROM PhotoObj"}))
    casjobs_job = int(resp.body.decode())
    resp = await fetch("archive", "sas", "directives", method="POST", headers={**h, "Content-Type": "application/json"},
                       body=json.dumps({"name": "three", "query": DIRECTIVE, "context": "DEMO"}))
    resp = await fetch("archive", "sas", "jobs", method="POST", body="", params={"directive": body_json(resp)["id"]}, headers=h)
    sas_job = int(body_json(resp)["id"])
    for job in (native_job, tap_job, casjobs_job, sas_job):
        assert (await wait_state(fetch, job, h, ("completed",)))["state"] == "completed"
    # an error, a timeout and a canceled job
    resp = await fetch("archive", "api", "query", method="POST", headers=h, body=json.dumps({"query": "SELECT nope FROM PhotoObj", "context": "DEMO"}))
    assert resp.code == 400
    resp = await fetch("archive", "api", "query", method="POST", headers=h, body=json.dumps({"query": SLOW, "context": "DEMO", "continueAsJob": False}))
    assert body_json(resp)["error"]["code"] == "time_limit"  # (without the opt-out it would go on as a job)
    slow = body_json(await fetch("archive", "api", "jobs", method="POST", headers=h, body=json.dumps({"query": SLOW + " -- job", "context": "DEMO"})))
    await wait_state(fetch, slow["id"], h, ("running",))
    await fetch("archive", "api", "jobs", str(slow["id"]), "cancel", method="POST", body=b"", headers=h)
    assert (await wait_state(fetch, slow["id"], h, ("canceled",)))["state"] == "canceled"

    listing = await history(fetch, h)
    entries = listing["history"]
    by_text = {e["query"]: e for e in entries}
    for face, language, context, text, _ in QUICK:
        e = by_text[text]
        rows = int(text.split("LIMIT ")[-1]) if "LIMIT" in text else int(text.split("TOP ")[1].split()[0])
        assert (e["kind"], e["language"], e["outcome"], e["rows"], e["error"]) == ("quick", language, "ok", rows, None), (face, e)
        assert context is None or e["context"] == context, (face, e)
        assert e["duration"] >= 0 and abs(e["time"] - time.time()) < 120
    native = by_text["SELECT 1 AS one UNION ALL SELECT 2"]
    assert (native["kind"], native["job"], native["face"], native["rows"], native["outcome"]) == ("job", native_job, "native", 2, "ok")
    cj = by_text["SELECT TOP 1 objid FROM PhotoObj"]
    assert (cj["job"], cj["face"], cj["language"], cj["outcome"]) == (casjobs_job, "casjobs", "tsql", "ok")
    tap = by_text["SELECT TOP 2 objid FROM demo.PhotoObj"]
    assert (tap["job"], tap["face"], tap["language"], tap["rows"], tap["outcome"]) == (tap_job, "tap", "adql", 2, "ok")
    sas = by_text[DIRECTIVE]
    assert (sas["job"], sas["face"], sas["rows"], sas["outcome"]) == (sas_job, "sas", 3, "ok")
    bad = by_text["SELECT nope FROM PhotoObj"]
    assert bad["outcome"] == "error" and bad["error"]["code"] and "nope" in bad["error"]["message"].lower()
    assert by_text[SLOW]["outcome"] == "timed_out" and by_text[SLOW]["error"]["code"] == "time_limit"
    assert by_text[SLOW + " -- job"]["outcome"] == "canceled"
    # newest first: the last thing that ended is the canceled job, ordered by when each began
    times = [e["time"] for e in entries]
    assert times == sorted(times, reverse=True) and listing["total"] == len(entries)

    # paging: the pages, joined, are the whole listing
    pages = []
    for offset in range(0, listing["total"], 4):
        pages += (await history(fetch, h, offset=offset, limit=4))["history"]
    assert [e["id"] for e in pages] == [e["id"] for e in entries]
    # the filter: a case-insensitive substring of the text
    found = await history(fetch, h, q="photoobj")
    assert found["total"] == sum("photoobj" in e["query"].lower() for e in entries) and found["total"] >= 6
    assert (await history(fetch, h, q="no such text"))["history"] == []
    # bad input: the native API's 400
    for params in ({"offset": "-1"}, {"limit": "x"}, {"limit": "0"}, {"q": "x" * 5000}):
        resp = await fetch("archive", "api", "history", params=params, headers=h)
        assert resp.code == 400 and body_json(resp)["error"]["code"] == "bad_request", (params, resp.body)

    # DELETE clears the caller's own history
    resp = await fetch("archive", "api", "history", method="DELETE", headers=h)
    assert resp.code == 200 and body_json(resp)["deleted"] == listing["total"]
    assert (await history(fetch, h))["total"] == 0


async def test_history_is_private(fetch, archive, jp_auth_header):
    alice, bob = auth(archive.users.create_token("alice")), auth(archive.users.create_token("bob"))
    for who, text in ((alice, "SELECT 'alice' AS who"), (bob, "SELECT 'bob' AS who"), (jp_auth_header, "SELECT 'admin' AS who")):
        resp = await fetch("archive", "api", "query", method="POST", headers=dict(who), body=json.dumps({"query": text}))
        assert resp.code == 200, resp.body
    assert [e["query"] for e in (await history(fetch, alice))["history"]] == ["SELECT 'alice' AS who"]
    assert [e["query"] for e in (await history(fetch, bob, all="true"))["history"]] == ["SELECT 'bob' AS who"]  # all: admins only
    assert [e["query"] for e in (await history(fetch, dict(jp_auth_header)))["history"]] == ["SELECT 'admin' AS who"]
    everyone = (await history(fetch, dict(jp_auth_header), all="true"))["history"]
    assert {e["owner"] for e in everyone} >= {"alice", "bob"} and len(everyone) == 3
    # bob clearing his history leaves alice's
    await fetch("archive", "api", "history", method="DELETE", headers=bob)
    assert (await history(fetch, bob))["total"] == 0 and (await history(fetch, alice))["total"] == 1
    # no sign-in, no history
    resp = await fetch("archive", "api", "history", headers={"Authorization": ""})
    assert resp.code in (401, 403)


@pytest.fixture
def short_retention(archive_config):
    archive_config["job_retention"] = 1.0
    return archive_config


async def test_history_goes_with_the_jobs(short_retention, fetch, archive):
    """The jobs' retention and their one sweep keep the history too."""
    h = auth(archive.users.create_token("carol"))
    job = body_json(await fetch("archive", "api", "jobs", method="POST", headers=h, body=json.dumps({"query": "SELECT 3 AS x"})))
    await wait_state(fetch, job["id"], h, ("completed",))
    await fetch("archive", "api", "query", method="POST", headers=h, body=json.dumps({"query": "SELECT 4 AS x"}))
    assert (await history(fetch, h))["total"] == 2
    await asyncio.sleep(1.2)
    deadline = time.monotonic() + 10
    while (await history(fetch, h))["total"] and time.monotonic() < deadline:
        archive.jobs.runner._last_sweep = 0
        archive.jobs.runner.wake()
        await asyncio.sleep(0.1)
    assert (await history(fetch, h))["total"] == 0
    assert (await fetch("archive", "api", "jobs", str(job["id"]), headers=h)).code == 404  # the same sweep took the job


def test_history_survives_a_restart(archive_data_dir):
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    a.start()
    try:
        u = a.users.principal("dora")
        a.queries.query(u, "SELECT 5 AS five", context="DEMO").to_table()
        job = a.jobs.wait(u, a.jobs.submit_query(u, "SELECT 6 AS six", "sql", context="DEMO").id, timeout=20)
        assert job.state == "completed"
    finally:
        a.close()
    b = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    try:
        entries, total = b.history.list(b.users.principal("dora"))
        assert total == 2 and [(e["query"], e["rows"], e["outcome"]) for e in entries] == [("SELECT 6 AS six", 1, "ok"), ("SELECT 5 AS five", 1, "ok")]
    finally:
        b.close()


async def test_only_the_users_own_queries(fetch, archive):
    """What the archive reads for a user is not their query: a table's rows browsed, a compile, an upload, the
    tables' metadata, a job's results read, and another page of a listed query (``"history": false``)."""
    h = auth(archive.users.create_token("erin"))
    own, job_text = "SELECT objid FROM PhotoObj ORDER BY objid LIMIT 3", "SELECT 2 AS two"
    query = lambda body: fetch("archive", "api", "query", method="POST", headers=h, body=json.dumps(body))  # noqa: E731
    assert (await query({"query": own, "context": "DEMO"})).code == 200
    resp = await fetch("archive", "api", "contexts", "DEMO", "tables", "PhotoObj", "rows", params={"limit": "5", "order": "r"}, headers=h)
    assert resp.code == 200, resp.body
    resp = await fetch("archive", "api", "compile", method="POST", headers=h, body=json.dumps({"query": "SELECT ra FROM PhotoObj", "context": "DEMO"}))
    assert resp.code == 200, resp.body
    resp = await fetch("archive", "api", "contexts", "MyDB", "tables", "Mine", method="POST", headers={**h, "Content-Type": "text/csv"},
                       body="x,y\n1,2\n")  # fmt: skip
    assert resp.code in (200, 201), resp.body
    for path in (("archive", "tap", "tables"), ("archive", "api", "contexts", "MyDB", "tables"), ("archive", "casjobs", "contexts", "MyDB", "tables")):
        assert (await fetch(*path, headers=h)).code == 200, path
    for continued in (True, False):  # another page, whether or not it may go on as a job
        page = await query({"query": own, "context": "DEMO", "offset": 1, "limit": 1, "history": False, "continueAsJob": continued})
        assert page.code == 200 and len(body_json(page)["data"]) == 1, page.body
    job = body_json(await fetch("archive", "api", "jobs", method="POST", headers=h, body=json.dumps({"query": job_text})))
    assert (await wait_state(fetch, job["id"], h, ("completed",)))["state"] == "completed"
    assert (await fetch("archive", "api", "jobs", str(job["id"]), "results", headers=h)).code == 200
    listing = await history(fetch, h)
    assert [(e["kind"], e["query"]) for e in listing["history"]] == [("job", job_text), ("quick", own)], listing
    bad = await query({"query": own, "history": "perhaps"})
    assert bad.code == 400 and body_json(bad)["error"]["code"] == "bad_request", bad.body
