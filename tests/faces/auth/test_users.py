"""Password login (Keystone-v3-shaped, as SciServer's client uses it) and CasJobs users, end to end."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from tests.support import body_json

NO_JUPYTER = {"Authorization": ""}  # so that Jupyter's own token is not sent (jp_fetch mutates headers: always pass copies)
JSON = {"Content-Type": "application/json"}
USER_FIELDS = {"UserId", "FullName", "Email", "MyDBHost", "MyDBName", "WebServicesId"}


def as_user(token: str) -> dict:
    return {**NO_JUPYTER, **JSON, "X-Auth-Token": token}


async def sciscript_login(fetch, name: str, password: str):
    """``Authentication.login`` as SciScript-Python does it: POST {AuthenticationURL}?TaskName=..."""
    body = {"auth": {"identity": {"password": {"user": {"name": name, "password": password}}}}}
    return await fetch("archive", "auth", "tokens", method="POST", body=json.dumps(body),
                       params={"TaskName": "Compute.SciScript-Python.Authentication.Login"}, headers={**NO_JUPYTER, **JSON})


async def keystone_user(fetch, token: str):
    """``getKeystoneUserWithToken``: GET {AuthenticationURL}/{token}?TaskName=..., with no auth header at all."""
    return await fetch("archive", "auth", "tokens", token, params={"TaskName": "Compute.SciScript-Python.Keystone.getKeystoneUserWithToken"},
                       headers={**NO_JUPYTER})


async def put_user(fetch, user_id: str, body: dict | None = None, headers: dict | None = None):
    """CasJobs ``PUT /users/{id}`` (by default as the Jupyter owner, the admin)."""
    return await fetch("archive", "casjobs", "users", user_id, method="PUT",
                       body=json.dumps(body) if body is not None else "", headers={**JSON, **(headers or {})})


async def casjobs_query(fetch, query: str, headers: dict, context: str = "MyDB"):
    return await fetch("archive", "casjobs", "contexts", context, "query", method="POST",
                       body=json.dumps({"Query": query, "TaskName": "test"}), headers=headers)


def assert_casjobs_error(resp, status: int) -> str:
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert set(err) >= {"Error Type", "Error Message", "LogMessageID"}
    return err["Error Message"]


def assert_keystone_error(resp, status: int) -> str:
    assert resp.code == status, resp.body
    err = body_json(resp)["error"]
    assert err["code"] == status and err["title"] and err["message"]
    return err["message"]


# -- login ----------------------------------------------------------------------------------------
async def test_sciscript_login_round_trip(fetch, http_server_client, jp_base_url):
    made = await put_user(fetch, "alice", {"FullName": "Alice A", "Email": "a@example.org", "Password": "s3cret pw"})
    assert made.code == 200, made.body

    resp = await sciscript_login(fetch, "alice", "s3cret pw")
    assert resp.code == 200, resp.body  # exactly 200: SciScript tests status_code != 200
    token = resp.headers["X-Subject-Token"]
    assert len(token) >= 32 and token not in resp.body.decode()
    assert body_json(resp)["token"]["user"]["name"] == "alice"

    who = await keystone_user(fetch, token)
    assert who.code == 200, who.body
    user = body_json(who)["token"]["user"]
    assert user["name"] == "alice" and user["id"] == "alice"
    assert body_json(who)["token"]["expires_at"].endswith("Z")
    # SciScript always appends "/", so an AuthenticationURL ending in "/" asks for ".../tokens//{token}"
    twice = await http_server_client.fetch(f"{jp_base_url}archive/auth/tokens//{token}?TaskName=x", raise_error=False)
    assert twice.code == 200 and body_json(twice)["token"]["user"]["id"] == "alice"

    # the token is an X-Auth-Token for CasJobs: a quick query runs in alice's MyDB
    q = await casjobs_query(fetch, "CREATE TABLE t AS SELECT 1 AS a", as_user(token))
    assert q.code == 200, q.body
    q = await casjobs_query(fetch, "SELECT a FROM t", {**as_user(token), "Accept": "application/json+array"})
    assert body_json(q)["Result"][0]["Data"] == [[1]]

    # CasJobs.getSchemaName: keystone id -> GET /users/{id} with the token -> "wsid_" + str(WebServicesId)
    resp = await fetch("archive", "casjobs", "users", user["id"], params={"TaskName": "x"}, headers=as_user(token))
    assert resp.code == 200, resp.body
    schema = "wsid_" + str(body_json(resp)["WebServicesId"])
    assert schema.startswith("wsid_") and schema[5:].isdigit()
    # ... and it is the WebServicesID alice's jobs carry
    job = await fetch("archive", "casjobs", "contexts", "MyDB", "jobs", method="PUT",
                      body=json.dumps({"Query": "SELECT a FROM t"}), headers=as_user(token))
    assert job.code == 200, job.body
    status = await fetch("archive", "casjobs", "jobs", job.body.decode(), headers=as_user(token))
    assert "wsid_" + str(body_json(status)["WebServicesID"]) == schema


async def test_wrong_password_and_unknown_user_are_refused_alike(fetch, archive):
    assert (await put_user(fetch, "alice", {"Password": "right"})).code == 200
    assert (await put_user(fetch, "nopass")).code == 200  # a user without a password cannot log in
    messages = set()
    for name, password in (("alice", "wrong"), ("nobody", "right"), ("nopass", ""), ("alice", "")):
        resp = await sciscript_login(fetch, name, password)
        messages.add(assert_keystone_error(resp, 401))
        assert "X-Subject-Token" not in resp.headers
    assert len(messages) == 1  # one message: no telling which users exist
    # a malformed body is a bad request, not a refused login
    bad = await fetch("archive", "auth", "tokens", method="POST", body=json.dumps({"auth": {}}), headers={**NO_JUPYTER, **JSON})
    assert_keystone_error(bad, 400)
    # an unknown token reveals nothing and needs no credentials to ask about
    assert_keystone_error(await keystone_user(fetch, "not-a-token"), 404)


async def test_a_client_guessing_passwords_is_held_off_without_a_hash(fetch, archive):
    """After 5 wrong passwords for a user from one client, the next try is a 429 in Keystone's shape with
    Retry-After, even with the right password; other users stay reachable until the client's own limit."""
    assert (await put_user(fetch, "alice", {"Password": "right"})).code == 200
    assert (await put_user(fetch, "bob", {"Password": "bobs"})).code == 200
    for i in range(5):
        assert_keystone_error(await sciscript_login(fetch, "alice", f"guess{i}"), 401)
    held = await sciscript_login(fetch, "ALICE", "right")  # names are held however they are written
    assert "wrong passwords" in assert_keystone_error(held, 429)
    assert 1 <= int(held.headers["Retry-After"]) <= 60
    assert (await sciscript_login(fetch, "bob", "bobs")).code == 200  # another user's name: not held
    # the password endpoint's check of the current password counts and is held alike
    token = (await sciscript_login(fetch, "bob", "bobs")).headers["X-Subject-Token"]
    for i in range(5):
        resp = await fetch("archive", "auth", "users", "bob", "password", method="PUT", headers=as_user(token),
                           body=json.dumps({"currentPassword": f"guess{i}", "password": "new-one"}))
        assert_keystone_error(resp, 403)
    resp = await fetch("archive", "auth", "users", "bob", "password", method="PUT", headers=as_user(token),
                       body=json.dumps({"currentPassword": "bobs", "password": "new-one"}))
    assert_keystone_error(resp, 429)


@pytest.mark.parametrize("archive_config", [{"token_lifetime": 1.0}])
async def test_login_tokens_expire(fetch, archive, archive_config):
    assert (await put_user(fetch, "alice", {"Password": "pw"})).code == 200
    token = (await sciscript_login(fetch, "alice", "pw")).headers["X-Subject-Token"]
    assert (await casjobs_query(fetch, "SELECT 1 AS one", as_user(token))).code == 200
    forever = archive.users.create_token("alice")  # `jupyter archive token create` tokens do not expire
    await asyncio.sleep(1.2)
    assert_casjobs_error(await casjobs_query(fetch, "SELECT 1 AS one", as_user(token)), 401)
    assert_keystone_error(await keystone_user(fetch, token), 404)
    assert (await casjobs_query(fetch, "SELECT 1 AS one", as_user(forever))).code == 200
    info = body_json(await keystone_user(fetch, forever))["token"]
    assert info["user"]["name"] == "alice" and info["expires_at"] is None


async def test_logout_revokes_the_token(fetch):
    assert (await put_user(fetch, "alice", {"Password": "pw"})).code == 200
    token = (await sciscript_login(fetch, "alice", "pw")).headers["X-Subject-Token"]
    gone = await fetch("archive", "auth", "tokens", token, method="DELETE", headers={**NO_JUPYTER})
    assert gone.code == 204
    assert_casjobs_error(await casjobs_query(fetch, "SELECT 1 AS one", as_user(token)), 401)


async def test_passwords_are_stored_as_salted_hashes(fetch, archive, archive_data_dir):
    password = "correct horse battery staple"
    for name in ("alice", "bob"):
        assert (await put_user(fetch, name, {"Password": password})).code == 200
    with sqlite3.connect(archive_data_dir / "state.sqlite") as con:
        hashes = dict(con.execute("SELECT name, password_hash FROM users WHERE name IN ('alice', 'bob')").fetchall())
    assert hashes["alice"].startswith("scrypt$") and hashes["bob"].startswith("scrypt$")
    assert hashes["alice"] != hashes["bob"]  # same password, different salt
    for f in archive_data_dir.glob("state.sqlite*"):  # the database and its WAL
        assert password.encode() not in f.read_bytes(), f
    assert (await sciscript_login(fetch, "bob", password)).code == 200


async def test_password_endpoint(fetch, archive):
    bob = archive.users.create_token("bob")
    api = ("archive", "auth", "users", "bob", "password")
    # the admin sets anyone's password
    resp = await fetch(*api, method="PUT", body=json.dumps({"password": "first"}), headers={**JSON})
    assert resp.code == 204, resp.body
    assert (await sciscript_login(fetch, "bob", "first")).code == 200
    # bob changes his own, given the current one; a token alone is not enough
    resp = await fetch(*api, method="PUT", body=json.dumps({"password": "second"}), headers=as_user(bob))
    assert_keystone_error(resp, 403)
    resp = await fetch(*api, method="PUT", body=json.dumps({"password": "second", "currentPassword": "first"}), headers=as_user(bob))
    assert resp.code == 204, resp.body
    assert (await sciscript_login(fetch, "bob", "second")).code == 200
    # nobody else's, and an empty password is refused
    resp = await fetch("archive", "auth", "users", "alice", "password", method="PUT", body=json.dumps({"password": "x"}),
                       headers=as_user(bob))
    assert_keystone_error(resp, 403)
    assert_keystone_error(await fetch(*api, method="PUT", body=json.dumps({"password": ""}), headers={**JSON}), 400)


# -- CasJobs users --------------------------------------------------------------------------------
async def test_casjobs_users_put_get_delete(fetch, archive):
    resp = await put_user(fetch, "carol", {"UserId": "carol", "FullName": "Carol C", "Email": "c@example.org",
                                           "TableName": "ignored", "Password": "pw"})
    assert resp.code == 200, resp.body
    user = body_json(resp)
    assert set(user) == USER_FIELDS
    wsid = user["WebServicesId"]
    assert type(wsid) is int and wsid > 0
    assert user == {"UserId": "carol", "FullName": "Carol C", "Email": "c@example.org", "MyDBHost": user["MyDBHost"],
                    "MyDBName": f"MYDB_{wsid}", "WebServicesId": wsid}
    mydb = archive.catalog.mydb_path(archive.users.user("carol"))
    assert mydb.exists()  # made on PUT, before any query

    # the login portal sends no body at all; routes are case-insensitive
    resp = await fetch("archive", "CasJobs", "Users", "dave", method="PUT", body="")
    assert resp.code == 200, resp.body
    assert body_json(resp)["UserId"] == "dave" and body_json(resp)["FullName"] == ""
    assert archive.catalog.mydb_path(archive.users.user("dave")).exists()

    # the admin reads anyone
    got = await fetch("archive", "casjobs", "USERS", "carol")
    assert got.code == 200 and body_json(got) == user

    # carol reads herself only; others are unknown to her, as others' jobs are
    carol = (await sciscript_login(fetch, "carol", "pw")).headers["X-Subject-Token"]
    assert body_json(await fetch("archive", "casjobs", "users", "carol", headers=as_user(carol))) == user
    assert_casjobs_error(await fetch("archive", "casjobs", "users", "dave", headers=as_user(carol)), 404)
    assert_casjobs_error(await fetch("archive", "casjobs", "users", "nobody", headers=as_user(carol)), 404)
    # ... and may neither create nor delete users
    assert_casjobs_error(await put_user(fetch, "eve", headers=as_user(carol)), 403)
    assert_casjobs_error(await put_user(fetch, "carol", {"Password": "mine"}, headers=as_user(carol)), 403)
    assert_casjobs_error(await fetch("archive", "casjobs", "users", "dave", method="DELETE", headers=as_user(carol)), 403)
    assert archive.users.record("eve") is None
    assert archive.catalog.mydb_path(archive.users.user("dave")).exists()

    # bad bodies
    assert_casjobs_error(await put_user(fetch, "carol", {"UserId": "someone-else"}), 400)
    assert_casjobs_error(await put_user(fetch, "carol", {"Email": 3}), 400)

    # DELETE: MyDB (open in an engine) and tokens go with the user
    q = await casjobs_query(fetch, "CREATE TABLE t AS SELECT 1 AS a", as_user(carol))
    assert q.code == 200, q.body
    resp = await fetch("archive", "casjobs", "users", "carol", method="DELETE")
    assert resp.code == 200, resp.body
    assert not mydb.exists()
    assert archive.users.record("carol") is None
    assert_casjobs_error(await casjobs_query(fetch, "SELECT 1 AS one", as_user(carol)), 401)
    assert_casjobs_error(await fetch("archive", "casjobs", "users", "carol"), 404)
    assert_casjobs_error(await fetch("archive", "casjobs", "users", "carol", method="DELETE"), 404)
    assert_keystone_error(await sciscript_login(fetch, "carol", "pw"), 401)
    # made again, carol starts with an empty MyDB
    assert (await put_user(fetch, "carol")).code == 200
    fresh = archive.users.create_token("carol")
    assert_casjobs_error(await casjobs_query(fetch, "SELECT a FROM t", as_user(fresh)), 400)


async def test_admin_cannot_delete_themself(fetch, jp_serverapp):
    owner = jp_serverapp.web_app.settings["archive_app"].owner
    assert_casjobs_error(await fetch("archive", "casjobs", "users", owner, method="DELETE"), 409)


async def test_x_owner_runs_a_quick_query_as_that_user_for_admins_only(fetch, archive):
    alice = archive.users.create_token("alice")
    bob = archive.users.create_token("bob")
    assert (await casjobs_query(fetch, "CREATE TABLE mine AS SELECT 7 AS n", as_user(alice))).code == 200
    # the Jupyter owner is the admin: with X-Owner the query runs in alice's MyDB
    resp = await casjobs_query(fetch, "SELECT n FROM mine", {**JSON, "X-Owner": "alice", "Accept": "application/json+array"})
    assert resp.code == 200, resp.body
    assert body_json(resp)["Result"][0]["Data"] == [[7]]
    # without it, the admin's own MyDB has no such table
    assert_casjobs_error(await casjobs_query(fetch, "SELECT n FROM mine", {**JSON}), 400)
    # a non-admin may not act as someone else
    assert_casjobs_error(await casjobs_query(fetch, "SELECT n FROM mine", {**as_user(bob), "X-Owner": "alice"}), 403)
