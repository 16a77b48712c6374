"""The Kasabi Jobs face end to end through the real server: dataset resets of MyDB."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import time
from urllib.parse import urlencode

import duckdb
import pytest

from jupyter_archive.core.catalog import Principal

from tests.support import body_json

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- helpers ------------------------------------------------------------------------------------
async def post_job(fetch, dataset="mydb", *, form=None, json_body=None, headers=None):
    """POST a Kasabi job request as form fields (``form``) or a JSON object (``json_body``)."""
    if json_body is not None:
        body, hdrs = json.dumps(json_body), {"Content-Type": "application/json"}
    else:
        body, hdrs = urlencode(form or {}), dict(FORM)
    hdrs.update(headers or {})
    return await fetch("archive", "kasabi", "dataset", dataset, "jobs", method="POST", body=body, headers=hdrs)


def job_path(resp, base_url) -> list[str]:
    """The path parts of the job URL a 202 answered in Location (checked to sit under the base URL)."""
    location = resp.headers["Location"]
    assert location.startswith(base_url), location
    return location[len(base_url) :].split("/")


async def job_status(fetch, parts, **kw):
    resp = await fetch(*parts, **kw)
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"].startswith("application/json")
    return body_json(resp)


async def poll(fetch, parts, until, timeout=30.0, **kw):
    """Job status JSON until ``until(status)`` holds (or the timeout passes); returns every status seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        data = await job_status(fetch, parts, **kw)
        seen.append(data)
        if until(data) or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.02)


async def sql(fetch, query, context="MyDB", headers=None):
    return await fetch(
        "archive", "api", "query", method="POST", body=json.dumps({"query": query, "context": context}),
        headers={"Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip


async def mydb_tables(fetch, headers=None) -> list[str]:
    resp = await fetch("archive", "api", "contexts", "MyDB", "tables", headers=headers)
    assert resp.code == 200, resp.body
    return sorted(t["name"] for t in body_json(resp)["tables"])


def assert_plain_error(resp, status, *words) -> str:
    """A Kasabi error: the status, a plain-text message naming the problem, no traceback."""
    assert resp.code == status, resp.body
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers["Content-Type"]
    text = resp.body.decode()
    assert text.strip() and "Traceback" not in text and not text.lstrip().startswith("{")
    for w in words:
        assert w.lower() in text.lower(), text
    return text


def owner_principal(jp_serverapp) -> Principal:
    app = jp_serverapp.web_app.settings["archive_app"]
    return app.archive.users.user(app.owner)


def bob(archive) -> dict:
    """Headers of a second, non-admin user authenticated by an archive token only."""
    return {"Authorization": "", "X-Auth-Token": archive.users.create_token("bob")}


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reset ----------------------------------------------------------------------------------------
async def test_reset_empties_mydb_form_and_json(fetch, archive, jp_serverapp, jp_base_url):
    for q in ["CREATE TABLE t AS SELECT * FROM range(10)", "CREATE TABLE u AS SELECT 1 AS a", "CREATE VIEW v AS SELECT * FROM t"]:
        assert (await sql(fetch, q)).code == 200
    # a foreign key makes the drop order matter (the SQL pipeline does not take REFERENCES, the engine does)
    cur = archive.engines.engine(owner_principal(jp_serverapp)).cursor()
    try:
        cur.execute("USE mydb")
        cur.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        cur.execute("CREATE TABLE c (pid INTEGER REFERENCES p(id))")
        cur.execute("INSERT INTO p VALUES (1)")
        cur.execute("INSERT INTO c VALUES (1)")
    finally:
        cur.execute("USE memory")
        cur.close()
    assert await mydb_tables(fetch) == ["c", "p", "t", "u", "v"]

    before = time.time()
    resp = await post_job(fetch, form={"jobType": "reset"})
    assert resp.code == 202, resp.body
    assert resp.headers["Content-Type"].startswith("text/plain")
    parts = job_path(resp, jp_base_url)
    assert parts[:5] == ["archive", "kasabi", "dataset", "mydb", "jobs"] and parts[5].isdigit()
    assert resp.headers["Location"] in resp.body.decode() and "reset" in resp.body.decode()
    seen = await poll(fetch, parts, lambda s: s["status"] in ("completed", "failed"))
    final = seen[-1]
    assert final["status"] == "completed", final
    assert set(final) == {"created", "startTime", "endTime", "status"}
    for key in ("created", "startTime", "endTime"):
        assert ISO_Z.match(final[key]), final
    assert iso(before - 1) <= final["created"] <= final["startTime"] <= final["endTime"] <= iso(time.time() + 1)
    assert {s["status"] for s in seen} <= {"scheduled", "running", "completed"}
    # empty, and writable again
    assert await mydb_tables(fetch) == []
    assert (await sql(fetch, "CREATE TABLE again AS SELECT * FROM range(3)")).code == 200
    assert await mydb_tables(fetch) == ["again"]

    # the same as a JSON object, the dataset named in any case
    resp = await post_job(fetch, "MyDB", json_body={"jobType": "reset"})
    assert resp.code == 202, resp.body
    parts = job_path(resp, jp_base_url)
    assert parts[3] == "MyDB"
    seen = await poll(fetch, parts, lambda s: s["status"] in ("completed", "failed"))
    assert seen[-1]["status"] == "completed", seen[-1]
    assert await mydb_tables(fetch) == []
    # the job is the same one under the lower-case URL too
    assert (await job_status(fetch, ["archive", "kasabi", "dataset", "mydb", "jobs", parts[5]]))["status"] == "completed"


async def test_writes_during_a_reset_answer_a_clear_error(fetch, archive, jp_serverapp):
    assert (await sql(fetch, "CREATE TABLE keep AS SELECT * FROM range(5)")).code == 200
    owner = owner_principal(jp_serverapp)
    key = archive.catalog.dataset_key(owner, archive.catalog.context(owner, "MyDB"))
    archive.catalog.resetting.add(key)  # what a running reset does, held for as long as the test needs
    try:
        for q in ["CREATE TABLE new AS SELECT 1 AS a", "INSERT INTO keep SELECT 99", "DROP TABLE keep"]:
            resp = await sql(fetch, q)
            assert resp.code == 409, resp.body
            err = body_json(resp)["error"]
            assert err["code"] == "conflict" and "being reset" in err["message"] and "read-only" in err["message"]
        # reads go on
        ok = await sql(fetch, "SELECT count(*) AS n FROM keep")
        assert ok.code == 200 and body_json(ok)["data"] == [[5]]
    finally:
        archive.catalog.resetting.discard(key)
    assert (await sql(fetch, "INSERT INTO keep SELECT 99")).code == 200


async def test_a_reset_is_seen_running_and_refuses_writes_and_deletes_meanwhile(fetch, archive, jp_serverapp, jp_base_url):
    # Many tables make the reset last long enough to be watched (a drop is cheap, so many are needed).
    n = 4000
    cur = archive.engines.engine(owner_principal(jp_serverapp)).cursor()
    try:
        cur.execute("BEGIN; " + " ".join(f"CREATE TABLE mydb.main.t{i} (a INTEGER);" for i in range(n)) + " COMMIT;")
    finally:
        cur.close()
    resp = await post_job(fetch, form={"jobType": "reset"})
    assert resp.code == 202, resp.body
    parts = job_path(resp, jp_base_url)
    job_id = int(parts[5])
    seen = await poll(fetch, parts, lambda s: s["status"] != "scheduled", timeout=10)
    statuses = [s["status"] for s in seen]
    assert statuses[-1] == "running", statuses
    # While the drops run the dataset is read-only and the job cannot be deleted. Both
    # checks only count when the job was mid-way before and after them (progress in (0, 1)).
    midway = lambda: (j := archive.jobs.store.get(job_id)).state == "running" and 0 < j.progress < 1  # noqa: E731
    while not midway() and archive.jobs.store.get(job_id).state == "running":
        await asyncio.sleep(0.005)
    before = midway()
    write = await sql(fetch, "CREATE TABLE sneaky AS SELECT 1 AS a")
    delete = await fetch(*parts, method="DELETE")
    if before and midway():
        assert write.code == 409 and "being reset" in body_json(write)["error"]["message"], write.body
        assert_plain_error(delete, 409, "running")
    seen += await poll(fetch, parts, lambda s: s["status"] in ("completed", "failed"))
    statuses = [s["status"] for s in seen]
    assert statuses[-1] == "completed", seen[-1]
    # the statuses only move forward: scheduled* running+ completed
    order = {"scheduled": 0, "running": 1, "completed": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    assert "running" in statuses
    assert archive.jobs.store.get(job_id).rows == n
    assert await mydb_tables(fetch) in ([], ["sneaky"])  # the write either came after the reset, or was refused
    # a finished job can be deleted: it is gone afterwards
    done = await fetch(*parts, method="DELETE")
    assert done.code == 200 and done.headers["Content-Type"].startswith("text/plain")
    assert_plain_error(await fetch(*parts), 404)


async def test_scheduled_reset_waits_for_its_start_time(fetch, jp_base_url):
    assert (await sql(fetch, "CREATE TABLE t AS SELECT * FROM range(10)")).code == 200
    start = math.ceil(time.time()) + 2
    resp = await post_job(fetch, form={"jobType": "reset", "startTime": iso(start)})
    assert resp.code == 202, resp.body
    parts = job_path(resp, jp_base_url)
    status = await job_status(fetch, parts)
    assert status["status"] == "scheduled" and status["startTime"] == iso(start) and status["endTime"] is None
    assert await mydb_tables(fetch) == ["t"]
    seen = await poll(fetch, parts, lambda s: s["status"] in ("completed", "failed"))
    assert seen[-1]["status"] == "completed", seen[-1]
    assert seen[-1]["startTime"] == iso(start) and seen[-1]["endTime"] >= iso(start)
    # it did not start early: the native API tells the actual start
    native = body_json(await fetch("archive", "api", "jobs", parts[5]))
    assert native["started"] >= start and native["kind"] == "reset" and native["face"] == "kasabi"
    assert await mydb_tables(fetch) == []


async def test_a_deleted_scheduled_reset_never_runs(fetch, jp_base_url):
    assert (await sql(fetch, "CREATE TABLE t AS SELECT * FROM range(10)")).code == 200
    start = time.time() + 1.5
    # an offset time (not Z) means the same instant
    stamp = dt.datetime.fromtimestamp(start, dt.timezone(dt.timedelta(hours=2))).isoformat()
    resp = await post_job(fetch, json_body={"jobType": "reset", "startTime": stamp})
    assert resp.code == 202, resp.body
    parts = job_path(resp, jp_base_url)
    assert (await job_status(fetch, parts))["status"] == "scheduled"
    gone = await fetch(*parts, method="DELETE")
    assert gone.code == 200 and gone.headers["Content-Type"].startswith("text/plain"), gone.body
    assert "never ran" in gone.body.decode()
    assert_plain_error(await fetch(*parts), 404)
    await asyncio.sleep(max(0.0, start - time.time()) + 1.0)
    assert await mydb_tables(fetch) == ["t"]
    assert all(j["id"] != int(parts[5]) for j in body_json(await fetch("archive", "api", "jobs"))["jobs"])


async def test_naive_and_past_start_times(fetch, jp_base_url):
    # naive means UTC; a start time already past runs at once
    past = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=5)
    resp = await post_job(fetch, form={"jobType": "reset", "startTime": past.isoformat(timespec="seconds")})
    assert resp.code == 202, resp.body
    parts = job_path(resp, jp_base_url)
    seen = await poll(fetch, parts, lambda s: s["status"] in ("completed", "failed"))
    assert seen[-1]["status"] == "completed"
    assert seen[-1]["startTime"] == past.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- bad requests and access ------------------------------------------------------------------------
async def test_bad_requests_are_400_with_plain_text(fetch):
    assert_plain_error(await post_job(fetch, form={}), 400, "missing parameter jobType")
    assert_plain_error(await post_job(fetch, json_body={"startTime": "2030-01-01T00:00:00Z"}), 400, "missing parameter jobType")
    assert_plain_error(await post_job(fetch, form={"jobType": "snapshot"}), 400, "snapshot", "reset")
    assert_plain_error(await post_job(fetch, json_body={"jobType": 3}), 400, "jobType", "reset")
    bad = await post_job(fetch, form={"jobType": "reset", "startTime": "next tuesday"})
    assert_plain_error(bad, 400, "startTime", "next tuesday")
    bad = await post_job(fetch, json_body={"jobType": "reset", "startTime": "2011-13-45T99:00:00Z"})
    assert_plain_error(bad, 400, "2011-13-45T99:00:00Z")
    assert_plain_error(await post_job(fetch, json_body={"jobType": "reset", "startTime": 12345}), 400, "startTime", "12345")
    bad_json = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST", body="{not json",
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert_plain_error(bad_json, 400, "JSON")
    assert_plain_error(await fetch("archive", "kasabi", "dataset", "mydb", "jobs", "nope"), 404)
    assert_plain_error(await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="PUT", body="x"), 405, "not allowed")


def assert_not_authorized(resp, *words) -> str:
    """Kasabi's 401 "API key is not authorized to access the data": plain text and a challenge."""
    text = assert_plain_error(resp, 401, *words)
    assert resp.headers.get("WWW-Authenticate"), resp.headers
    return text


async def test_401_without_credentials_and_for_non_owners_404_for_others(fetch, archive, jp_base_url):
    no_auth = {"Authorization": ""}
    assert_not_authorized(await post_job(fetch, form={"jobType": "reset"}, headers=no_auth), "not authorized")
    assert_not_authorized(await post_job(fetch, form={"jobType": "reset"}, headers={**no_auth, "X-Auth-Token": "nope"}))
    # DEMO is read-only and public: it has no owner who may reset it, so nobody is authorized
    assert_not_authorized(await post_job(fetch, "DEMO", form={"jobType": "reset"}), "owner")
    bob_headers = bob(archive)
    assert_not_authorized(await post_job(fetch, "demo", form={"jobType": "reset"}, headers=bob_headers), "owner")
    unknown = await post_job(fetch, "nosuchdataset", form={"jobType": "reset"}, headers=bob_headers)
    assert_plain_error(unknown, 404, "nosuchdataset")

    # the owner's job is invisible to bob; bob's "mydb" is his own
    assert (await sql(fetch, "CREATE TABLE mine AS SELECT 1 AS a")).code == 200
    mine = await post_job(fetch, form={"jobType": "reset", "startTime": iso(time.time() + 3600)})
    assert mine.code == 202
    parts = job_path(mine, jp_base_url)
    assert_plain_error(await fetch(*parts, headers=bob_headers), 404)
    assert_plain_error(await fetch(*parts, headers=no_auth), 401)
    assert_plain_error(await fetch(*parts, method="DELETE", headers=bob_headers), 404)
    # a job named under a dataset the caller does not own: not authorized, whichever job it is
    assert_not_authorized(await fetch(*parts[:3], "DEMO", *parts[4:]))
    assert_not_authorized(await fetch(*parts[:3], "DEMO", *parts[4:], method="DELETE"))
    assert (await fetch(*parts, method="DELETE")).code == 200

    assert (await sql(fetch, "CREATE TABLE his AS SELECT 1 AS a", headers=bob_headers)).code == 200
    his = await post_job(fetch, form={"jobType": "reset"}, headers=bob_headers)
    assert his.code == 202, his.body
    his_parts = job_path(his, jp_base_url)
    seen = await poll(fetch, his_parts, lambda s: s["status"] in ("completed", "failed"), headers=bob_headers)
    assert seen[-1]["status"] == "completed"
    assert await mydb_tables(fetch, headers=bob_headers) == []
    assert await mydb_tables(fetch) == ["mine"]


@pytest.mark.parametrize("send", ["header", "dashed-header", "param"])
async def test_the_api_key_as_kasabi_clients_send_it(fetch, archive, jp_base_url, send):
    """Kasabi's clients send their API key as ``X_KASABI_APIKEY`` (or ``apikey=``): an archive token is one."""

    def keyed(value) -> dict:
        if send == "param":
            return {"headers": {"Authorization": ""}, "params": {"apikey": value}}
        return {"headers": {"Authorization": "", "X_KASABI_APIKEY" if send == "header" else "X-Kasabi-Apikey": value}}

    async def post_reset(value):
        kw = keyed(value)
        return await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST", body=urlencode({"jobType": "reset"}),
                           headers={**FORM, **kw["headers"]}, params=kw.get("params"))  # fmt: skip

    token = archive.users.create_token("carol")
    carol = {"Authorization": "", "X-Auth-Token": token}
    assert (await sql(fetch, "CREATE TABLE hers AS SELECT 1 AS a", headers=carol)).code == 200
    assert (await sql(fetch, "CREATE TABLE mine AS SELECT 1 AS a")).code == 200
    resp = await post_reset(token)
    assert resp.code == 202, resp.body
    parts = job_path(resp, jp_base_url)
    seen = await poll(fetch, parts, lambda s: s["status"] in ("completed", "failed"), **keyed(token))
    assert seen[-1]["status"] == "completed"
    # the key's owner's dataset was reset, nobody else's
    assert await mydb_tables(fetch, headers=carol) == [] and await mydb_tables(fetch) == ["mine"]
    # a key that is not valid is not authorized, whatever else the request says
    assert_not_authorized(await post_reset("nope"), "API key")
    assert_not_authorized(await fetch(*parts, **keyed(token + "x")), "API key")


async def test_other_jobs_are_not_kasabi_jobs(fetch, jp_base_url):
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT",
                       body=json.dumps({"Query": "SELECT TOP 1 objid FROM PhotoObj"}))  # fmt: skip
    assert resp.code == 200, resp.body
    assert_plain_error(await fetch("archive", "kasabi", "dataset", "mydb", "jobs", resp.body.decode().strip()), 404)


class TestWritableMount:
    """A writable DuckDB mount is an admin's dataset: only admins reset it, and then it is empty."""

    @pytest.fixture
    def archive_config(self, tmp_path):
        path = tmp_path / "scratch.duckdb"
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE results AS SELECT * FROM range(4)")
        con.close()
        mount = {"path": "/scratch", "type": "duckdb", "location": str(path), "context": "SCRATCH", "readOnly": False}
        return {"mounts": [mount]}

    async def test_only_admins_reset_it_and_it_empties(self, fetch, archive):
        bob_headers = bob(archive)
        assert_not_authorized(await post_job(fetch, "scratch", form={"jobType": "reset"}, headers=bob_headers), "admins")
        assert [t.name for t in archive.catalog.tables(Principal("someone"), "SCRATCH")] == ["results"]
        resp = await post_job(fetch, "SCRATCH", form={"jobType": "reset"})
        assert resp.code == 202, resp.body
        job_id = resp.headers["Location"].rstrip("/").split("/")[-1]
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            status = json.loads((await fetch("archive", "kasabi", "dataset", "SCRATCH", "jobs", job_id)).body)["status"]
            if status in ("completed", "failed") or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == "completed"
        assert archive.catalog.tables(Principal("someone"), "SCRATCH") == []
        # the admins' job on their dataset: bob is not authorized to look at it or delete it
        for method in ("GET", "DELETE"):
            resp = await fetch("archive", "kasabi", "dataset", "SCRATCH", "jobs", job_id, method=method, headers=bob_headers)
            assert_not_authorized(resp, "admins")
