"""Bad input and missing auth answer clear errors in each face's shape, never 500."""

from __future__ import annotations

import json

import pytest

from tests.support import body_json


async def casjobs(fetch, context, query, **kw):
    return await fetch("archive", "casjobs", "contexts", context, "query", method="POST",
                       body=json.dumps({"Query": query}), **kw)


async def native(fetch, query, context="DEMO", **kw):
    return await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": query, "context": context}), **kw)


async def quasar(fetch, q, path="demo", **params):
    return await fetch("archive", "quasar", "query", "fs", path, params={"q": q, **params})


def assert_casjobs_error(resp, status):
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert set(err) >= {"Error Type", "Error Message", "LogMessageID"}
    assert "Traceback" not in err["Error Message"]
    return err["Error Message"]


def assert_native_error(resp, status, code=None):
    assert resp.code == status, resp.body
    err = body_json(resp)["error"]
    assert set(err) >= {"code", "message"}
    if code:
        assert err["code"] == code
    return err


def assert_quasar_error(resp, status):
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert isinstance(err["error"], str) and err["error"]
    return err


async def test_syntax_error_names_the_position(fetch):
    err = assert_native_error(await native(fetch, "SELECT objid FROM PhotoObj WHERE"), 400)
    assert err["code"] == "syntax_error" and "line" in err["message"]
    assert err["position"]["line"] == 1
    msg = assert_casjobs_error(await casjobs(fetch, "DEMO", "SELEC TOP 1 * FROM PhotoObj"), 400)
    assert "syntax" in msg.lower()
    assert_quasar_error(await quasar(fetch, "SELECT * FROM `PhotoObj` WHERE ((("), 400)


async def test_unknown_table_and_column(fetch):
    err = assert_native_error(await native(fetch, "SELECT * FROM NoSuchTable"), 400, "unknown_table")
    assert "NoSuchTable" in err["message"] and "PhotoObj" in err["message"]
    err = assert_native_error(await native(fetch, "SELECT nosuchcolumn FROM PhotoObj"), 400)
    assert "nosuchcolumn" in err["message"]


async def test_unknown_context(fetch):
    assert "context" in assert_casjobs_error(await casjobs(fetch, "NOPE", "SELECT 1"), 404).lower()
    assert_native_error(await fetch("archive", "api", "contexts", "NOPE", "tables"), 404, "not_found")
    assert_quasar_error(await fetch("archive", "quasar", "data", "fs", "nope", "x"), 404)


async def test_injection_through_a_variable_is_refused_or_inert(fetch, demo_db):
    n = demo_db.sql("SELECT count(*) FROM PhotoObj").fetchall()[0][0]
    for evil in ["18; DROP TABLE PhotoObj", "18 OR 1=1", "0) OR (1=1"]:
        resp = await quasar(fetch, "SELECT count(*) AS n FROM `PhotoObj` WHERE r < :cut", **{"var.cut": evil})
        assert_quasar_error(resp, 400)
    # a string value is one literal, whatever it holds
    resp = await quasar(fetch, "SELECT count(*) AS n FROM `SpecObj` WHERE class = :c", **{"var.c": "'x'' OR ''1''=''1'"})
    assert resp.code == 200, resp.body
    assert json.loads(resp.body.decode().splitlines()[0])["n"] == 0
    assert demo_db.sql("SELECT count(*) FROM PhotoObj").fetchall()[0][0] == n


async def test_missing_variable(fetch):
    err = assert_quasar_error(await quasar(fetch, "SELECT * FROM `PhotoObj` WHERE r < :cut"), 400)
    assert "cut" in err["error"]


async def test_file_access_in_user_sql_is_refused(fetch):
    for q in ["SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM '/etc/passwd'", "COPY (SELECT 1) TO '/tmp/x.csv'",
              "ATTACH '/tmp/evil.duckdb' AS evil", "SET enable_external_access = true", "INSTALL httpfs"]:
        resp = await native(fetch, q)
        assert resp.code in (400, 403), (q, resp.body)
        assert "root:" not in resp.body.decode()


async def test_write_to_demo_is_refused(fetch, demo_db):
    for q in ["DROP TABLE PhotoObj", "INSERT INTO PhotoObj (objid) VALUES (1)", "CREATE TABLE Evil AS SELECT 1 AS a",
              "DELETE FROM SpecObj"]:
        err = assert_native_error(await native(fetch, q), 403, "permission")
        assert "MyDB" in err["message"] or "read-only" in err["message"]
    assert_casjobs_error(await casjobs(fetch, "DEMO", "SELECT TOP 1 objid INTO demo.Evil FROM PhotoObj"), 403)
    assert demo_db.sql("SELECT count(*) FROM SpecObj").fetchall()[0][0] > 0


async def test_no_token_is_403_in_each_face(fetch):
    no_auth = {"Authorization": ""}
    assert_casjobs_error(await casjobs(fetch, "DEMO", "SELECT 1", headers=no_auth), 403)
    assert_native_error(await fetch("archive", "api", "contexts", headers=no_auth), 403, "permission")
    assert_quasar_error(await fetch("archive", "quasar", "query", "fs", "demo", params={"q": "SELECT 1"}, headers=no_auth), 403)


async def test_the_jupyter_token_is_checked_on_every_request(fetch, jp_auth_header):
    """Jupyter's token in the Authorization header lets the owner in request after request (the
    handler's shortcut past Jupyter's per-request user); a wrong one, or a wrong ``?token=``
    beside the right header (Jupyter reads that first), is refused in the face's shape."""
    for _ in range(3):
        ok = await native(fetch, "SELECT 1 AS a", headers=jp_auth_header)
        assert ok.code == 200 and body_json(ok)["rows"] == 1, ok.body
        assert "Set-Cookie" not in ok.headers  # no login cookie made for a client that sends the token anyway
    secret = jp_auth_header["Authorization"].split(None, 1)[1]
    for headers, params in (({"Authorization": "token " + secret[:-1]}, {}), ({"Authorization": "token " + secret + "x"}, {}),
                            ({"Authorization": "token "}, {}), (jp_auth_header, {"token": "wrong"})):
        assert_native_error(await native(fetch, "SELECT 1 AS a", headers=headers, params=params), 403, "permission")
        assert_casjobs_error(await casjobs(fetch, "DEMO", "SELECT 1", headers=headers, params=params), 403)


async def test_archive_token_authenticates_without_xsrf(fetch, archive):
    token = archive.users.create_token("alice")
    headers = {"Authorization": "", "X-Auth-Token": token, "Content-Type": "application/json"}
    resp = await casjobs(fetch, "MyDB", "CREATE TABLE mine AS SELECT 1 AS a", headers=headers)
    assert resp.code == 200, resp.body
    # alice's MyDB is hers: the Jupyter owner's MyDB does not have the table
    owner = await native(fetch, "SELECT * FROM mine", context="MyDB")
    assert_native_error(owner, 400, "unknown_table")
    bad = await casjobs(fetch, "DEMO", "SELECT 1", headers={**headers, "X-Auth-Token": "nope"})
    assert_casjobs_error(bad, 401)


async def test_bad_request_shapes(fetch):
    assert_casjobs_error(await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST", body="{not json"), 400)
    assert_casjobs_error(await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST", body="{}"), 400)
    assert_quasar_error(await fetch("archive", "quasar", "query", "fs", "demo"), 400)
    assert_quasar_error(await fetch("archive", "quasar", "data", "fs", "demo", "PhotoObj", params={"offset": "-1"}), 400)
    assert_native_error(await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": "SELECT 1", "language": "cobol"})), 400)
    resp = await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": "SELECT 1", "context": "DEMO"}),
                       headers={"Accept": "application/x-nonsense"})
    assert_native_error(resp, 406, "not_acceptable")


@pytest.mark.parametrize("archive_config", [{"quick_time_limit": 0.5}])
async def test_time_limit_interrupts_the_engine(fetch, archive_config):
    slow = "SELECT count(*) FROM range(10000000000000) a"
    # the native API's opt-out of going on as a job (tests/faces/native/test_continued.py): the old error
    body = json.dumps({"query": slow, "context": "DEMO", "continueAsJob": False})
    err = assert_native_error(await fetch("archive", "api", "query", method="POST", body=body), 400, "time_limit")
    assert "job" in err["message"]
    # DAX's quick query has no job to go on as: the time-limit error, in its shape
    resp = await fetch("archive", "dax", "db", "v0", "tap", "sync", params={"query": slow})
    assert resp.code == 400 and "time limit" in body_json(resp)["message"]
    # CasJobs' goes on as a job (tests/faces/casjobs/test_continued.py): the same error, naming the job, canceled here
    msg = assert_casjobs_error(await casjobs(fetch, "DEMO", slow), 400)
    assert "time limit" in msg and "it goes on as job" in msg
    job_id = msg.split("it goes on as job ")[1].split(":")[0]
    assert (await fetch("archive", "casjobs", "jobs", job_id, method="DELETE")).code == 200
    # the engine is free afterwards
    ok = await native(fetch, "SELECT 1 AS one")
    assert ok.code == 200


@pytest.mark.parametrize("archive_config", [{"allow_anonymous": True}])
async def test_anonymous_reads_public_contexts_only_when_allowed(fetch, archive_config):
    no_auth = {"Authorization": ""}
    ok = await casjobs(fetch, "DEMO", "SELECT TOP 1 objid FROM PhotoObj", headers=no_auth)
    assert ok.code == 200, ok.body
    assert_casjobs_error(await casjobs(fetch, "MyDB", "SELECT 1", headers=no_auth), 403)
    ctx = body_json(await fetch("archive", "api", "contexts", headers=no_auth))["contexts"]
    assert [c["name"] for c in ctx] == ["DEMO"]
