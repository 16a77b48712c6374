"""The SAS Data Loader face and the native directives API, end to end through the real server."""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import re
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from tests.support import body_json

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BRIGHT = "SELECT objid, ra, dec, r FROM PhotoObj WHERE r < 19 ORDER BY objid"
SLOW = "SELECT count(*) FROM range(10000000000000) a"
SAS = ("archive", "sas")
JSON = {"Content-Type": "application/json"}


def media(resp) -> str:
    return resp.headers.get("Content-Type", "").split(";")[0].strip()


def assert_sas_error(resp, status: int) -> dict:
    assert resp.code == status, resp.body
    assert media(resp) == "application/vnd.sas.error+json"
    err = body_json(resp)
    assert err["version"] == 2 and err["httpStatusCode"] == status
    assert isinstance(err["errorCode"], int) and isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], list) and all(isinstance(d, str) for d in err["details"])
    assert isinstance(err["remediation"], str)
    return err


def rel(resource: dict, name: str) -> dict:
    found = [link for link in resource["links"] if link["rel"] == name]
    assert found, f"no {name!r} link in {[link['rel'] for link in resource['links']]}"
    link = found[0]
    assert set(link) >= {"rel", "method", "href", "uri", "type"} or name == "delete", link
    assert link["href"].endswith("/archive/sas" + link["uri"])
    return link


@pytest.fixture
def follow(http_server_client, jp_auth_header):
    """Fetch a link's absolute href as the link says (method), with the test user's auth."""

    async def _follow(link: dict, **kwargs):
        headers = {**jp_auth_header, **kwargs.pop("headers", {})}
        if link["method"] in ("PUT", "POST"):
            kwargs.setdefault("body", "")
        return await http_server_client.fetch(link["href"], method=link["method"], headers=headers, raise_error=False, **kwargs)

    return _follow


async def create(fetch, name="bright", query=BRIGHT, **fields) -> dict:
    resp = await fetch(*SAS, "directives", method="POST", headers={**JSON},
                       body=json.dumps({"name": name, "query": query, "context": "DEMO", **fields}))
    assert resp.code == 200, resp.body
    return body_json(resp)


async def poll(fetch, job_id, until, timeout=30.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = body_json(await fetch(*SAS, "jobs", str(job_id)))
        if until(job) or loop.time() > deadline:
            return job
        await asyncio.sleep(0.05)


async def run(fetch, **params) -> tuple[object, dict]:
    resp = await fetch(*SAS, "jobs", method="POST", body="", params=params)
    assert resp.code == 200, resp.body
    return resp, body_json(resp)


async def test_root_links_and_head(fetch, follow):
    resp = await fetch(*SAS, "")
    assert resp.code == 200 and media(resp) == "application/vnd.sas.api+json"
    root = body_json(resp)
    link = rel(root, "directives")
    assert link["method"] == "GET" and link["type"] == "application/vnd.sas.collection" and link["uri"] == "/directives"
    listed = await follow(link)
    assert listed.code == 200 and body_json(listed)["name"] == "items"
    assert (await follow(rel(root, "jobs"))).code == 200
    head = await fetch(*SAS, "", method="HEAD")
    assert head.code == 200 and head.body == b"" and media(head) == media(resp)
    assert int(head.headers["Content-Length"]) == len(resp.body)
    plain = await fetch(*SAS, "", headers={"Accept": "application/json"})
    assert media(plain) == "application/json" and body_json(plain) == root


async def test_directive_resource_last_modified_and_head(fetch, follow):
    d = await create(fetch, folderPath="Users//me/My Folder/", targetTable="mydb.Bright", description="stars")
    assert set(d) >= {"id", "name", "folderPath", "query", "language", "context", "targetTable", "links",
                      "creationTimeStamp", "modifiedTimeStamp", "description", "version"}
    assert (d["name"], d["folderPath"], d["language"], d["context"], d["targetTable"]) == (
        "bright", "/Users/me/My Folder", "sql", "DEMO", "mydb.Bright")
    assert isinstance(d["id"], str) and ISO.match(d["creationTimeStamp"]) and ISO.match(d["modifiedTimeStamp"])
    resp = await fetch(*SAS, "directives", d["id"])
    assert resp.code == 200 and media(resp) == "application/vnd.sas.dataloader.directive+json"
    assert body_json(resp) == d
    modified = email.utils.parsedate_to_datetime(resp.headers["Last-Modified"])
    assert abs(modified.timestamp() - pd.Timestamp(d["modifiedTimeStamp"]).timestamp()) < 1
    assert (await fetch(*SAS, "directives", d["id"], headers={"If-Modified-Since": resp.headers["Last-Modified"]})).code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await fetch(*SAS, "directives", d["id"], headers={"If-Modified-Since": old})).code == 200
    head = await fetch(*SAS, "directives", d["id"], method="HEAD")
    assert head.code == 200 and head.body == b"" and head.headers["Last-Modified"] == resp.headers["Last-Modified"]
    # links: up and self are followable; execute runs it
    assert (await follow(rel(d, "self"))).code == 200
    up = await follow(rel(d, "up"))
    assert up.code == 200 and d["id"] in [i["id"] for i in body_json(up)["items"]]
    execute = rel(d, "execute")
    assert execute["method"] == "POST" and execute["type"] == "application/vnd.sas.dataloader.job"
    ran = await follow(execute)
    assert ran.code == 200 and body_json(ran)["directiveId"] == d["id"]


async def test_directive_collection_paging_and_filters(fetch, follow):
    for i in range(7):
        await create(fetch, name=f"a{i}", folderPath="/A")
    for i in range(5):
        await create(fetch, name=f"b{i}", folderPath="/B")
    resp = await fetch(*SAS, "directives", params={"limit": "5"})
    assert resp.code == 200 and media(resp) == "application/vnd.sas.collection+json"
    page = body_json(resp)
    assert (page["version"], page["name"], page["start"], page["limit"], page["count"]) == (2, "items", 0, 5, 12)
    assert page["accept"] == "application/vnd.sas.dataloader.directive" and len(page["items"]) == 5
    rels = {link["rel"] for link in page["links"]}
    assert {"self", "first", "next", "last", "up"} <= rels and "prev" not in rels
    seen = [i["name"] for i in page["items"]]
    while "next" in {link["rel"] for link in page["links"]}:
        page = body_json(await follow(rel(page, "next")))
        seen += [i["name"] for i in page["items"]]
    assert seen == [f"a{i}" for i in range(7)] + [f"b{i}" for i in range(5)]
    assert page["start"] == 10 and len(page["items"]) == 2 and "prev" in {link["rel"] for link in page["links"]}
    assert parse_qs(urlparse(rel(page, "last")["href"]).query)["start"] == ["10"]
    prev = body_json(await follow(rel(page, "prev")))
    assert prev["start"] == 5 and [i["name"] for i in prev["items"]] == ["a5", "a6", "b0", "b1", "b2"]
    # the default page is 10; a folder filter is kept in the paging links
    assert body_json(await fetch(*SAS, "directives"))["limit"] == 10
    folder = body_json(await fetch(*SAS, "directives", params={"sasFolderPath": "/B", "limit": "2"}))
    assert folder["count"] == 5 and [i["name"] for i in folder["items"]] == ["b0", "b1"]
    nxt = body_json(await follow(rel(folder, "next")))
    assert [i["name"] for i in nxt["items"]] == ["b2", "b3"] and all(i["folderPath"] == "/B" for i in nxt["items"])
    one = body_json(await fetch(*SAS, "directives", params={"directiveFolderPath": "/A/a3"}))
    assert one["count"] == 1 and one["items"][0]["name"] == "a3"
    assert body_json(await fetch(*SAS, "directives", params={"directiveFolderPath": "/A/zz"}))["count"] == 0
    head = await fetch(*SAS, "directives", method="HEAD")
    assert head.code == 200 and head.body == b""
    assert_sas_error(await fetch(*SAS, "directives", params={"start": "-1"}), 400)


async def test_run_by_id_and_path_results_log_and_links(fetch, follow, demo_db):
    d = await create(fetch, folderPath="/Users/me", targetTable="Bright")
    resp, job = await run(fetch, directive=d["id"])
    assert media(resp) == "application/vnd.sas.dataloader.job+json"
    assert resp.headers["Location"].endswith(f"/archive/sas/jobs/{job['id']}") and resp.headers["Last-Modified"]
    assert set(job) >= {"id", "directiveId", "directiveName", "state", "creationTimeStamp", "startedTimeStamp",
                        "endedTimeStamp", "progress", "rows", "links"}
    assert isinstance(job["id"], str) and job["id"].isdigit()
    assert (job["directiveId"], job["directiveName"]) == (d["id"], "bright") and job["state"] in ("pending", "running")
    if job["state"] != "completed":
        assert resp.headers["Cache-Control"] == "no-cache" and "stopTimeStamp" not in job
    done = await poll(fetch, job["id"], lambda j: j["state"] in ("completed", "failed", "canceled"))
    assert done["state"] == "completed" and done["progress"] == 100 and done["targetTable"] == "MyDB.Bright"
    for key in ("creationTimeStamp", "startedTimeStamp", "endedTimeStamp", "stopTimeStamp"):
        assert ISO.match(done[key]), done[key]
    # the document's sign of a complete job: stopTimeStamp, and then the response may be cached
    assert done["stopTimeStamp"] == done["endedTimeStamp"] >= done["startedTimeStamp"]
    assert "Cache-Control" not in (await fetch(*SAS, "jobs", job["id"])).headers
    want = demo_db.sql(BRIGHT).df()
    assert done["rows"] == len(want) > 0
    state = await fetch(*SAS, "jobs", job["id"], "state")
    assert state.code == 200 and media(state) == "text/plain" and state.body.decode() == "completed"
    # every GET link answers (error: 204 as the job has none); the cancel link is gone once final
    for link in done["links"]:
        if link["method"] == "GET":
            got = await follow(link)
            assert got.code == (204 if link["rel"] == "error" else 200), (link, got.body)
    assert "cancel" not in {link["rel"] for link in done["links"]}
    # results: the (unpaged) collection of the job's results, as the document's example, with
    # no special Accept; its item's view link gives the rows
    link = rel(done, "results")
    assert link["type"] == "application/vnd.sas.collection" and link["itemType"] == "application/vnd.sas.dataloader.job.result"
    results = await follow(link)
    assert results.code == 200 and media(results) == "application/vnd.sas.collection+json"
    coll = body_json(results)
    assert (coll["version"], coll["name"], coll["count"], coll["accept"]) == (2, "items", 1, "application/vnd.sas.dataloader.job.result")
    assert {x["rel"] for x in coll["links"]} == {"self", "up"}  # not paged
    item = coll["items"][0]
    assert item["type"] == "table" and item["name"] == "MyDB.Bright" and item["rows"] == len(want)
    view = await follow(rel(item, "view"))
    assert view.code == 200 and media(view) == "application/json"
    got = pd.DataFrame(body_json(view))
    assert got["objid"].tolist() == want["objid"].tolist() and got["r"].tolist() == pytest.approx(want["r"].tolist(), rel=1e-6)
    for accept in ("*/*", "application/vnd.sas.collection+json", "application/json", "text/html, */*;q=0.5"):
        again = await fetch(*SAS, "jobs", job["id"], "results", headers={"Accept": accept})
        assert again.code == 200 and body_json(again) == coll, accept
    # rows straight from the collection's URL: an Accept naming a data format, or ?format=
    csv = await fetch(*SAS, "jobs", job["id"], "results", headers={"Accept": "text/csv"})
    assert csv.code == 200 and media(csv) == "text/csv"
    assert pd.read_csv(io.BytesIO(csv.body))["objid"].tolist() == want["objid"].tolist()
    page = await fetch(*SAS, "jobs", job["id"], "results", params={"format": "json", "start": "2", "limit": "3"})
    assert [r["objid"] for r in body_json(page)] == want["objid"].tolist()[2:5]
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], "results", headers={"Accept": "image/png"}), 406)
    # log: a collection of notes, or plain text
    log = await fetch(*SAS, "jobs", job["id"], "log")
    assert media(log) == "application/vnd.sas.collection+json"
    lines = body_json(log)["items"]
    assert lines and all(set(x) >= {"type", "line"} and x["type"] == "note" for x in lines)
    assert any("completed" in x["line"] for x in lines)
    text = await fetch(*SAS, "jobs", job["id"], "log", headers={"Accept": "text/plain"})
    assert media(text) == "text/plain" and text.body.decode().count("\n") == len(lines)
    # by path; the table in MyDB is replaced by the rerun
    _, job2 = await run(fetch, directivePath="/Users/me/bright")
    assert (await poll(fetch, job2["id"], lambda j: j["state"] == "completed"))["rows"] == len(want)
    head = await fetch(*SAS, "jobs", job2["id"], method="HEAD")
    assert head.code == 200 and head.body == b"" and head.headers["Last-Modified"]
    listed = body_json(await fetch(*SAS, "jobs"))
    assert listed["count"] == 2 and [j["id"] for j in listed["items"]] == [job2["id"], job["id"]]
    # a directive without a target keeps its rows in the result store
    plain = await create(fetch, name="plain", query="SELECT specobjid, z FROM SpecObj ORDER BY specobjid LIMIT 50")
    _, job3 = await run(fetch, directive=plain["id"])
    await poll(fetch, job3["id"], lambda j: j["state"] == "completed")
    item = body_json(await fetch(*SAS, "jobs", job3["id"], "results"))["items"][0]
    assert item["type"] == "resultSet" and item["rows"] == 50
    rows = body_json(await follow(rel(item, "view")))
    assert [r["specobjid"] for r in rows] == demo_db.sql("SELECT specobjid FROM SpecObj ORDER BY specobjid LIMIT 50").df()["specobjid"].tolist()


async def test_cancel_a_long_job_and_state_values(fetch, follow):
    d = await create(fetch, name="slow", query=SLOW)
    _, job = await run(fetch, directive=d["id"])
    # Cancel once the engine reports progress: a cancel in the instant between "running" and the
    # query's start is lost in core/jobs/query.py (see test_directives' xfail), not in this face.
    job = await poll(fetch, job["id"], lambda j: j["state"] == "running" and j["progress"] > 0)
    assert job["state"] == "running" and job["endedTimeStamp"] is None and 0 < job["progress"] < 100
    assert "stopTimeStamp" not in job  # the document's sign that the job is not complete yet
    running = await fetch(*SAS, "jobs", job["id"])
    assert running.headers["Cache-Control"] == "no-cache"
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], "results"), 409)
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], "state", method="PUT", body="", params={"value": "running"}), 400)
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], "state", method="PUT", body=""), 400)
    cancel = rel(job, "cancel")
    assert cancel["method"] == "PUT" and cancel["uri"].endswith("/state?value=canceled")
    resp = await follow(cancel)
    assert resp.code == 200 and media(resp) == "text/plain" and resp.body.decode() in ("canceling", "canceled")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while (state := (await fetch(*SAS, "jobs", job["id"], "state")).body.decode()) != "canceled" and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert state == "canceled"
    assert ISO.match(body_json(await fetch(*SAS, "jobs", job["id"]))["stopTimeStamp"])
    assert (await fetch(*SAS, "jobs", job["id"], "error")).code == 204
    again = await fetch(*SAS, "jobs", job["id"], "state", method="PUT", body="", params={"value": "canceled"})
    assert again.code == 200 and again.body.decode() == "canceled"


async def test_failed_job_error_resource_and_log(fetch, follow):
    d = await create(fetch, name="boom", query="SELECT CAST(CAST(objid AS VARCHAR) || 'x' AS INTEGER) AS boom FROM PhotoObj")
    _, job = await run(fetch, directive=d["id"])
    job = await poll(fetch, job["id"], lambda j: j["state"] in ("completed", "failed"))
    assert job["state"] == "failed" and job["stopTimeStamp"] == job["endedTimeStamp"]
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], "results"), 409)  # a failed job has no results
    resp = await follow(rel(job, "error"))
    assert resp.code == 200 and media(resp) == "application/vnd.sas.error+json"
    err = body_json(resp)
    assert err["httpStatusCode"] == 0 and isinstance(err["errorCode"], int) and "x" in err["message"]
    assert isinstance(err["details"], list) and err["remediation"] and err["version"] == 2
    lines = body_json(await fetch(*SAS, "jobs", job["id"], "log"))["items"]
    assert any(x["type"] == "error" and x["line"].startswith("ERROR:") for x in lines)


async def test_error_shapes(fetch):
    err = assert_sas_error(await fetch(*SAS, "directives", "no-such-id"), 404)
    assert any("no-such-id" in x for x in err["details"] + [err["message"]])
    head = await fetch(*SAS, "directives", "no-such-id", method="HEAD")
    assert head.code == 404 and media(head) == "application/vnd.sas.error+json" and head.body == b""
    assert_sas_error(await fetch(*SAS, "jobs", "999999"), 404)
    assert_sas_error(await fetch(*SAS, "jobs", "999999", "state", method="PUT", body="", params={"value": "canceled"}), 404)
    assert_sas_error(await fetch(*SAS, "jobs", method="POST", body=""), 400)
    assert_sas_error(await fetch(*SAS, "jobs", method="POST", body="", params={"directive": "nope"}), 404)
    assert_sas_error(await fetch(*SAS, "jobs", method="POST", body="", params={"directivePath": "/no/where"}), 404)
    assert_sas_error(await fetch(*SAS, "no", "such", "thing"), 404)
    bad = await fetch(*SAS, "directives", method="POST", headers={**JSON}, body=json.dumps({"name": "x", "query": "SELECT FROM WHERE"}))
    err = assert_sas_error(bad, 400)
    assert any(x.startswith("position: line 1") for x in err["details"]) and "code: syntax_error" in err["details"]
    assert_sas_error(await fetch(*SAS, "directives", method="POST", headers={**JSON}, body=json.dumps({"query": "SELECT 1"})), 400)
    d = await create(fetch, name="dup")
    assert_sas_error(await fetch(*SAS, "directives", method="POST", headers={**JSON},
                                 body=json.dumps({"name": "dup", "query": "SELECT 1"})), 409)
    assert_sas_error(await fetch(*SAS, "directives", d["id"], headers={"Accept": "text/csv"}), 406)
    # a job of another face is not a SAS job
    other = body_json(await fetch("archive", "api", "jobs", method="POST", body=json.dumps({"query": "SELECT 1", "context": "DEMO"})))
    assert_sas_error(await fetch(*SAS, "jobs", str(other["id"])), 404)


async def test_delete_job(fetch):
    d = await create(fetch)
    _, job = await run(fetch, directive=d["id"])
    await poll(fetch, job["id"], lambda j: j["state"] == "completed")
    resp = await fetch(*SAS, "jobs", job["id"], method="DELETE")
    assert resp.code == 204 and resp.body == b""
    assert_sas_error(await fetch(*SAS, "jobs", job["id"]), 404)
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], method="DELETE"), 404)


async def test_other_user_cannot_see_directive_or_job(fetch, archive):
    d = await create(fetch, name="mine", folderPath="/Shared")
    _, job = await run(fetch, directive=d["id"])
    await poll(fetch, job["id"], lambda j: j["state"] == "completed")
    bob = {"X-Auth-Token": archive.users.create_token("bob"), "Authorization": ""}
    assert_sas_error(await fetch(*SAS, "directives", d["id"], headers=bob), 404)
    assert_sas_error(await fetch(*SAS, "jobs", method="POST", body="", params={"directive": d["id"]}, headers=bob), 404)
    assert_sas_error(await fetch(*SAS, "jobs", method="POST", body="", params={"directivePath": "/Shared/mine"}, headers=bob), 404)
    for part in ((), ("state",), ("log",), ("error",), ("results",)):
        assert_sas_error(await fetch(*SAS, "jobs", job["id"], *part, headers=bob), 404)
    assert_sas_error(await fetch(*SAS, "jobs", job["id"], method="DELETE", headers=bob), 404)
    assert body_json(await fetch(*SAS, "directives", headers=bob))["count"] == 0
    assert body_json(await fetch(*SAS, "jobs", headers=bob))["count"] == 0
    native = await fetch("archive", "api", "directives", d["id"], headers=bob)
    assert native.code == 404 and body_json(native)["error"]["code"] == "not_found"
    # bob's own directive and job work with his token; no token at all is refused
    mine = await fetch(*SAS, "directives", method="POST", body=json.dumps({"name": "bobs", "query": "SELECT 1 AS one"}),
                       headers={**bob, **JSON})
    assert mine.code == 200, mine.body
    ran = await fetch(*SAS, "jobs", method="POST", body="", params={"directive": body_json(mine)["id"]}, headers=bob)
    assert ran.code == 200 and body_json(ran)["createdBy"] == "bob"
    assert_sas_error(await fetch(*SAS, "directives", headers={"Authorization": ""}), 403)


async def test_native_directives_api(fetch, demo_db):
    api = ("archive", "api", "directives")
    resp = await fetch(*api, method="POST", headers={**JSON}, body=json.dumps(
        {"name": "n1", "folderPath": "/x", "query": "SELECT objid FROM PhotoObj ORDER BY objid LIMIT 7", "context": "DEMO"}))
    assert resp.code == 201, resp.body
    d = body_json(resp)
    assert resp.headers["Location"].endswith(f"/archive/api/directives/{d['id']}") and d["path"] == "/x/n1"
    for i in range(3):
        await fetch(*api, method="POST", headers={**JSON}, body=json.dumps({"name": f"m{i}", "folderPath": "/y", "query": "SELECT 1"}))
    page = body_json(await fetch(*api, params={"folder": "/y", "offset": "1", "limit": "1"}))
    assert page["total"] == 3 and [x["name"] for x in page["directives"]] == ["m1"]
    assert body_json(await fetch(*api))["total"] == 4
    assert body_json(await fetch(*api, d["id"])) == d
    patched = await fetch(*api, d["id"], method="PATCH", headers={**JSON}, body=json.dumps({"description": "seven", "targetTable": "Seven"}))
    assert patched.code == 200 and body_json(patched)["targetTable"] == "Seven" and body_json(patched)["description"] == "seven"
    bad = await fetch(*api, d["id"], method="PATCH", headers={**JSON}, body=json.dumps({"query": "SELECT FROM"}))
    assert bad.code == 400 and body_json(bad)["error"]["code"] == "syntax_error"
    ran = await fetch(*api, d["id"], "run", method="POST", body="")
    assert ran.code == 201, ran.body
    job = body_json(ran)
    assert job["kind"] == "directive" and ran.headers["Location"].endswith(f"/archive/api/jobs/{job['id']}")
    done = body_json(await fetch("archive", "api", "jobs", str(job["id"]), params={"wait": "20"}))
    assert done["state"] == "completed" and done["results"]["table"] == {"context": "MyDB", "name": "Seven"}
    sas_view = body_json(await fetch(*SAS, "jobs", str(job["id"])))  # the SAS face shows it too
    assert sas_view["directiveId"] == d["id"] and sas_view["state"] == "completed"
    assert (await fetch(*api, d["id"], method="DELETE")).code == 204
    missing = await fetch(*api, d["id"])
    assert missing.code == 404 and body_json(missing)["error"]["code"] == "not_found"
    assert (await fetch(*api, method="POST", headers={**JSON}, body=json.dumps({"name": "x"}))).code == 400
