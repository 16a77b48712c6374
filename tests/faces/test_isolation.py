"""Through every face, a user reads and writes only their own MyDB, jobs and results; an admin reads all.

alice owns a MyDB table and jobs; bob, a second non-admin user, tries to reach them in
each face. Both authenticate with archive tokens only (no Jupyter token); the Jupyter
owner is the admin.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import time
from dataclasses import dataclass

import pandas as pd
import pytest

from tests.support import body_json

SECRET = 4242


def headers_for(token: str, **extra) -> dict:
    # a fresh dict each time: jp_fetch adds its defaults into the dict it is given
    return {"Authorization": "", "X-Auth-Token": token, "Content-Type": "application/json", **extra}


@dataclass
class World:
    alice: str  # tokens
    bob: str
    casjobs_job: str  # alice's jobs, by id
    native_job: str
    reset_job: str

    def a(self, **extra) -> dict:
        return headers_for(self.alice, **extra)

    def b(self, **extra) -> dict:
        return headers_for(self.bob, **extra)


async def casjobs_query(fetch, query: str, headers: dict, context: str = "MyDB"):
    return await fetch("archive", "casjobs", "contexts", context, "query", method="POST",
                       body=json.dumps({"Query": query}), headers=headers)


async def wait_casjobs(fetch, job_id: str, headers: dict, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = body_json(await fetch("archive", "casjobs", "jobs", job_id, headers=headers))
        if status["Status"] in (3, 4, 5) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.02)


async def make_world(fetch, archive) -> World:
    """alice: a MyDB table, a finished CasJobs job, a finished native job, a scheduled reset of her MyDB."""
    alice = archive.users.create_token("alice")
    bob = archive.users.create_token("bob")
    resp = await casjobs_query(fetch, f"CREATE TABLE secret AS SELECT {SECRET} AS answer", headers_for(alice))
    assert resp.code == 200, resp.body
    resp = await fetch("archive", "casjobs", "contexts", "MyDB", "jobs", method="PUT",
                       body=json.dumps({"Query": "SELECT answer FROM secret"}), headers=headers_for(alice))
    assert resp.code == 200, resp.body
    cj = resp.body.decode()
    assert (await wait_casjobs(fetch, cj, headers_for(alice)))["Status"] == 5
    resp = await fetch("archive", "api", "jobs", method="POST",
                       body=json.dumps({"query": "SELECT answer FROM secret", "context": "MyDB"}), headers=headers_for(alice))
    assert resp.code == 201, resp.body
    nj = str(body_json(resp)["id"])
    done = body_json(await fetch("archive", "api", "jobs", nj, params={"wait": "20"}, headers=headers_for(alice)))
    assert done["state"] == "completed", done
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST",
                       body=json.dumps({"jobType": "reset", "startTime": later}), headers=headers_for(alice))
    assert resp.code == 202, resp.body
    reset = resp.headers["Location"].rstrip("/").split("/")[-1]
    return World(alice, bob, cj, nj, reset)


def casjobs_error(resp, status: int) -> str:
    assert resp.code == status, resp.body
    return body_json(resp)["Error Message"]


async def test_casjobs(fetch, archive):
    w = await make_world(fetch, archive)
    # bob's MyDB is his own: alice's table is not in it
    assert "secret" in casjobs_error(await casjobs_query(fetch, "SELECT answer FROM secret", w.b()), 400).lower()
    # alice's job is unknown to bob: read, cancel, list
    casjobs_error(await fetch("archive", "casjobs", "jobs", w.casjobs_job, headers=w.b()), 404)
    casjobs_error(await fetch("archive", "casjobs", "jobs", w.casjobs_job, method="DELETE", headers=w.b()), 404)
    casjobs_error(await fetch("archive", "casjobs", "jobs", w.reset_job, method="DELETE", headers=w.b()), 404)
    assert archive.jobs.store.get(int(w.reset_job)).state == "scheduled"  # bob's cancel did nothing
    for parts in (("jobs",), ("jobs", "")):
        listing = await fetch("archive", "casjobs", *parts, headers=w.b())
        assert listing.code == 200 and body_json(listing) == [], listing.body
    # bob's writes land in his own MyDB, never alice's
    assert (await casjobs_query(fetch, "CREATE TABLE secret AS SELECT 1 AS answer", w.b())).code == 200
    mine = await casjobs_query(fetch, "SELECT answer FROM secret", w.a(Accept="application/json+array"))
    assert body_json(mine)["Result"][0]["Data"] == [[SECRET]]
    # the admin (the Jupyter owner) reads every job, and alice's MyDB through X-Owner
    admin_view = await fetch("archive", "casjobs", "jobs", w.casjobs_job)
    assert admin_view.code == 200 and body_json(admin_view)["JobID"] == int(w.casjobs_job)
    resp = await casjobs_query(fetch, "SELECT answer FROM secret", {"X-Owner": "alice", "Accept": "application/json+array"})
    assert body_json(resp)["Result"][0]["Data"] == [[SECRET]]
    casjobs_error(await casjobs_query(fetch, "SELECT answer FROM secret", w.b(**{"X-Owner": "alice"})), 403)


async def test_quasar(fetch, archive):
    w = await make_world(fetch, archive)
    q = await fetch("archive", "quasar", "query", "fs", "mydb", params={"q": "SELECT answer FROM `secret`"}, headers=w.b())
    assert q.code in (400, 404), q.body
    assert str(SECRET) not in q.body.decode()
    data = await fetch("archive", "quasar", "data", "fs", "mydb", "secret", headers=w.b())
    assert data.code == 404, data.body
    listing = body_json(await fetch("archive", "quasar", "data", "fs", "mydb", headers=w.b()))
    assert "secret" not in [c["name"] for c in listing["children"]]
    # a large query with Destination /mydb/x writes bob's MyDB, not alice's
    resp = await fetch("archive", "quasar", "query", "fs", "demo", method="POST",
                       body="SELECT objid FROM `PhotoObj` ORDER BY objid LIMIT 3", headers=w.b(Destination="/mydb/x"))
    assert resp.code == 200, resp.body
    rows = await fetch("archive", "quasar", "data", "fs", "mydb", "x", headers=w.b(Accept="text/csv"))
    assert rows.code == 200 and len(pd.read_csv(io.BytesIO(rows.body))) == 3
    assert (await fetch("archive", "quasar", "data", "fs", "mydb", "x", headers=w.a())).code == 404
    # alice still sees her own table
    mine = await fetch("archive", "quasar", "data", "fs", "mydb", "secret", headers=w.a(Accept="text/csv"))
    assert mine.code == 200 and pd.read_csv(io.BytesIO(mine.body))["answer"].tolist() == [SECRET]


async def test_native(fetch, archive):
    w = await make_world(fetch, archive)
    tables = body_json(await fetch("archive", "api", "contexts", "MyDB", "tables", headers=w.b()))["tables"]
    assert "secret" not in [t["name"] for t in tables]
    assert (await fetch("archive", "api", "contexts", "MyDB", "tables", "secret", headers=w.b())).code == 404
    assert (await fetch("archive", "api", "contexts", "MyDB", "tables", "secret", "rows", headers=w.b())).code == 404
    for job in (w.native_job, w.casjobs_job, w.reset_job):
        for part in ((), ("results",), ("log",)):
            resp = await fetch("archive", "api", "jobs", job, *part, headers=w.b())
            assert resp.code == 404 and body_json(resp)["error"]["code"] == "not_found", (job, part, resp.body)
            assert str(SECRET) not in resp.body.decode()
        for action in ("cancel", "run"):
            resp = await fetch("archive", "api", "jobs", job, action, method="POST", body="", headers=w.b())
            assert resp.code == 404, resp.body
        assert (await fetch("archive", "api", "jobs", job, method="DELETE", headers=w.b())).code == 404
    assert archive.jobs.store.get(int(w.reset_job)).state == "scheduled"
    # bob's list is his own, even when he asks for everyone's
    for params in ({}, {"all": "true"}):
        listing = body_json(await fetch("archive", "api", "jobs", params=params, headers=w.b()))
        assert listing["jobs"] == [] and listing["total"] == 0
    # the admin reads alice's job and its results, and lists every user's jobs
    res = await fetch("archive", "api", "jobs", w.native_job, "results")
    assert res.code == 200 and body_json(res)["data"] == [[SECRET]], res.body
    everyone = body_json(await fetch("archive", "api", "jobs", params={"all": "true"}))
    assert {str(j["id"]) for j in everyone["jobs"]} >= {w.native_job, w.casjobs_job, w.reset_job}


async def test_kasabi(fetch, archive):
    w = await make_world(fetch, archive)
    for method in ("GET", "DELETE"):
        resp = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", w.reset_job, method=method, headers=w.b())
        assert resp.code == 404, (method, resp.body)
    assert archive.jobs.store.get(int(w.reset_job)).state == "scheduled"
    mine = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", w.reset_job, headers=w.a())
    assert mine.code == 200 and body_json(mine)["status"] == "scheduled"


async def test_sas(fetch, archive, jp_serverapp):
    w = await make_world(fetch, archive)
    if not any("archive/sas/jobs" in rule.matcher.regex.pattern for rule in _rules(jp_serverapp)):
        pytest.skip("the SAS face has no job routes in this build")
    alice = archive.users.principal("alice")
    d = await asyncio.to_thread(archive.directives.create, alice, {"name": "mine", "query": "SELECT answer FROM secret", "context": "MyDB"})
    job = await asyncio.to_thread(archive.directives.run, alice, d.id)
    await asyncio.to_thread(archive.jobs.wait, alice, job.id, 20)
    for part in ((), ("state",), ("log",), ("results",)):
        resp = await fetch("archive", "sas", "jobs", str(job.id), *part, headers=w.b())
        assert resp.code == 404, (part, resp.body)
        assert str(SECRET) not in resp.body.decode()
    assert (await fetch("archive", "sas", "jobs", str(job.id), method="DELETE", headers=w.b())).code == 404
    assert (await fetch("archive", "sas", "jobs", str(job.id), headers=w.a())).code == 200


def _rules(jp_serverapp):
    """Every URL rule of the server's application (tornado nests them per host)."""
    out, todo = [], list(jp_serverapp.web_app.default_router.rules)
    while todo:
        rule = todo.pop()
        target = rule.target
        if hasattr(target, "rules"):
            todo.extend(target.rules)
        else:
            out.append(rule)
    return out
