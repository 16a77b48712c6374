"""A user's life through the real server: nothing makes a user but an explicit act, and deleting
one removes every kind of thing they owned, so a user made later under the same name starts
with nothing, even while the first one still had work running."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

from jupyter_archive.core.users.owned import KINDS

from tests.support import body_json
from tests.support.held_stream import HeldStream
from tests.support.faces import stilts_multipart

JSON = {"Content-Type": "application/json"}
IMG = ("archive", "dax", "image", "v0", "L2", "DEMO", "calexp", "1000")
VOTABLE = (
    b'<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
    b'<FIELD name="id" datatype="int"/><DATA><TABLEDATA><TR><TD>1</TD></TR><TR><TD>2</TD></TR></TABLEDATA></DATA>'
    b"</TABLE></RESOURCE></VOTABLE>"
)


def as_user(token: str, **extra) -> dict:
    return {"Authorization": "", "X-Auth-Token": token, **JSON, **extra}


async def make_user(fetch, archive, name: str) -> str:
    """An admin's CasJobs PUT, then the user's own password login: their token."""
    resp = await fetch("archive", "casjobs", "users", name, method="PUT", body=json.dumps({"Password": "pw"}))
    assert resp.code == 200, resp.body
    login = {"auth": {"identity": {"password": {"user": {"name": name, "password": "pw"}}}}}
    resp = await fetch("archive", "auth", "tokens", method="POST", body=json.dumps(login), headers={"Authorization": "", **JSON})
    assert resp.code == 200, resp.body
    return resp.headers["X-Subject-Token"]


async def quick(fetch, token: str, query: str, context: str = "MyDB"):
    return await fetch("archive", "casjobs", "contexts", context, "query", method="POST", body=json.dumps({"Query": query}),
                       headers=as_user(token, Accept="application/json+array"))  # fmt: skip


async def native_job(fetch, token: str, body: dict, until=lambda job: job["state"] in ("completed", "failed", "canceled")) -> dict:
    resp = await fetch("archive", "api", "jobs", method="POST", body=json.dumps(body), headers=as_user(token))
    assert resp.code == 201, resp.body
    job_id = str(body_json(resp)["id"])
    for _ in range(600):
        job = body_json(await fetch("archive", "api", "jobs", job_id, headers=as_user(token)))
        if until(job):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")


async def wait_jobs_done(fetch, token: str) -> None:
    """Until none of the user's jobs is queued or running (scheduled and pending ones stay)."""
    for _ in range(600):
        jobs = body_json(await fetch("archive", "api", "jobs", headers=as_user(token)))["jobs"]
        if not [j for j in jobs if j["state"] in ("queued", "running", "canceling")]:
            assert all(j["state"] in ("completed", "pending", "scheduled") for j in jobs), jobs
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs still running: {jobs}")


# -- one maker per kind of owned thing (owned.KINDS): a new kind needs a maker here ---------------------
async def make_account(fetch, token: str) -> None:
    pass  # the account, its password and its token exist since make_user


async def make_jobs(fetch, token: str) -> None:
    """A job of every face, with what each leaves behind: a MyDB table, a stored result, a staged
    TAP upload, a cutout file, a scheduled reset, a directive's run."""
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT",
                       body=json.dumps({"Query": "SELECT TOP 5 objid INTO mydb.Bright FROM PhotoObj"}), headers=as_user(token))
    assert resp.code == 200, resp.body
    await native_job(fetch, token, {"query": "SELECT 42 AS answer", "context": "DEMO"})
    ctype, body = stilts_multipart({"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.up", "UPLOAD": "up,param:up"}, {"up": VOTABLE})
    resp = await fetch("archive", "tap", "async", method="POST", body=body, headers={**as_user(token), "Content-Type": ctype},
                       follow_redirects=False)  # fmt: skip
    assert resp.code == 303, resp.body  # pending: its upload stays staged until it runs
    resp = await fetch(*IMG, "cutout", method="POST", body=json.dumps({"x": "250", "y": "260", "width": "8", "height": "8"}),
                       headers=as_user(token))  # fmt: skip
    assert resp.code == 202, resp.body
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST",
                       body=json.dumps({"jobType": "reset", "startTime": later}), headers=as_user(token))  # fmt: skip
    assert resp.code == 202, resp.body
    await wait_jobs_done(fetch, token)


async def make_directives(fetch, token: str) -> None:
    resp = await fetch("archive", "sas", "directives", method="POST", headers=as_user(token),
                       body=json.dumps({"name": "bright", "query": "SELECT objid FROM PhotoObj WHERE r < 15", "context": "DEMO",
                                        "targetTable": "Mine"}))  # fmt: skip
    assert resp.code == 200, resp.body
    resp = await fetch("archive", "sas", "jobs", method="POST", body="", params={"directive": body_json(resp)["id"]},
                       headers=as_user(token))  # fmt: skip
    assert resp.code == 200, resp.body
    await wait_jobs_done(fetch, token)


async def make_files(fetch, token: str) -> None:
    assert (await quick(fetch, token, "CREATE TABLE t AS SELECT range AS i FROM range(10)")).code == 200
    resp = await fetch("archive", "casjobs", "contexts", "MyDB", "Tables", "Uploaded", method="POST", body="a,b\n1,2\n",
                       headers={"Authorization": "", "X-Auth-Token": token})  # fmt: skip
    assert resp.code == 200, resp.body


async def make_hats(fetch, token: str) -> None:
    """A HATS catalog imported from a MyDB table (a private mount of the user's, and its files)."""
    assert (await quick(fetch, token, "SELECT TOP 300 objid, ra, dec INTO mydb.Spots FROM PhotoObj", "DEMO")).code == 200
    resp = await fetch("archive", "api", "jobs", method="POST", headers=as_user(token),
                       body=json.dumps({"kind": "hats_import", "table": "Spots", "name": "spots"}))  # fmt: skip
    assert resp.code == 201, resp.body
    for _ in range(30):  # hats-import's first run in a process compiles its numba code: tens of seconds
        job = body_json(await fetch("archive", "api", "jobs", str(body_json(resp)["id"]), params={"wait": "5"}, headers=as_user(token)))
        if job["state"] in ("completed", "failed", "canceled"):
            break
    assert job["state"] == "completed", job


async def make_history(fetch, token: str) -> None:
    """A quick query that failed (the jobs above are in the history too)."""
    assert (await quick(fetch, token, "SELECT nothing_here")).code >= 400


MAKERS = {"account": make_account, "jobs": make_jobs, "directives": make_directives, "mydb and temp files": make_files,
          "hats catalogs": make_hats, "query history": make_history}  # fmt: skip


def snapshot(data_dir: Path) -> tuple[set[str], dict[str, set[tuple]]]:
    """Every file of the data dir, and every row of every table of its SQLite stores."""
    files = {
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm", "-journal"))
    }
    rows = {}
    for db in data_dir.glob("*.sqlite"):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
                rows[f"{db.name}:{table}"] = set(con.execute(f'SELECT * FROM "{table}"'))
        finally:
            con.close()
    return files, rows


async def test_deleting_a_user_removes_every_kind_they_own(fetch, archive, archive_data_dir):
    assert set(MAKERS) == {kind.name for kind in KINDS}, "every kind of owned thing needs a maker in this test"
    assert (await fetch("archive", "api", "contexts", "MyDB", "tables")).code == 200  # the admin's own files exist now
    before = snapshot(archive_data_dir)

    token = await make_user(fetch, archive, "carol")
    carol = archive.users.user("carol")
    for make in MAKERS.values():
        await make(fetch, token)
    counts = archive.users.owned.counts(carol)
    assert all(counts.values()), counts
    assert snapshot(archive_data_dir) != before

    resp = await fetch("archive", "casjobs", "users", "carol", method="DELETE")
    assert resp.code == 200, resp.body
    assert archive.users.owned.counts(carol) == {kind.name: 0 for kind in KINDS}
    files, rows = snapshot(archive_data_dir)
    assert files == before[0], files ^ before[0]  # no result, cutout, upload, MyDB or temp file left
    assert rows == before[1], {k: rows[k] ^ before[1].get(k, set()) for k in rows if rows[k] != before[1].get(k)}
    assert (await quick(fetch, token, "SELECT 1 AS one")).code == 401

    # made again, carol is a new identity and starts with nothing
    token = await make_user(fetch, archive, "carol")
    assert archive.users.user("carol").ident != carol.ident
    assert body_json(await fetch("archive", "casjobs", "jobs", headers=as_user(token))) == []
    assert body_json(await fetch("archive", "api", "jobs", headers=as_user(token)))["jobs"] == []
    assert body_json(await fetch("archive", "sas", "directives", headers=as_user(token)))["count"] == 0
    assert body_json(await fetch("archive", "api", "directives", headers=as_user(token)))["directives"] == []
    assert body_json(await fetch("archive", "api", "contexts", "MyDB", "tables", headers=as_user(token)))["tables"] == []
    assert b"<uws:jobref" not in (await fetch("archive", "tap", "async", headers=as_user(token))).body
    assert (await quick(fetch, token, "SELECT count(*) AS n FROM t")).code == 400  # the old MyDB is gone


async def test_no_request_makes_a_user(fetch, archive):
    known = archive.users.list()
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST", body=json.dumps({"Query": "SELECT 1 AS a"}),
                       headers={**JSON, "X-Owner": "ghost"})  # fmt: skip
    assert resp.code == 404, resp.body
    assert set(body_json(resp)) == {"Error Code", "Error Type", "Error Message", "LogMessageID"}
    assert body_json(resp)["Error Type"] == "NotFound" and "ghost" in body_json(resp)["Error Message"]
    assert (await fetch("archive", "casjobs", "users", "ghost")).code == 404
    assert (await fetch("archive", "casjobs", "users", "ghost", method="DELETE")).code == 404
    resp = await fetch("archive", "auth", "users", "ghost", "password", method="PUT", body=json.dumps({"password": "x"}), headers=JSON)
    assert resp.code == 404, resp.body
    login = {"auth": {"identity": {"password": {"user": {"name": "ghost", "password": "x"}}}}}
    resp = await fetch("archive", "auth", "tokens", method="POST", body=json.dumps(login), headers={"Authorization": "", **JSON})
    assert resp.code == 401
    assert archive.users.list() == known


async def test_a_job_left_by_a_deleted_user_neither_runs_nor_makes_them_again(fetch, archive):
    # A job whose owner is gone (left by an older version's deletion, or queued in the instant
    # the owner was deleted) fails when it runs; it never makes the user again, nor passes to
    # a later user of that name.
    job = archive.jobs.runner.submit("dora", "query", {"query": "SELECT 1 AS x", "language": "sql", "context": "DEMO"},
                                     owner_uid="an-identity-long-gone")  # fmt: skip
    done = archive.jobs.runner.wait(job.id, timeout=30)
    assert done.state == "failed" and "dora" in done.error_message, done
    assert archive.users.find("dora") is None
    token = await make_user(fetch, archive, "dora")
    assert body_json(await fetch("archive", "api", "jobs", headers=as_user(token)))["jobs"] == []
    assert (await fetch("archive", "api", "jobs", str(job.id), headers=as_user(token))).code == 404


async def test_deleting_a_user_while_they_stream_and_run_a_job(fetch, archive, jp_http_port, jp_base_url):
    token = await make_user(fetch, archive, "erin")
    erin = archive.users.user("erin")
    assert (await quick(fetch, token, "CREATE TABLE big AS SELECT range AS i FROM range(2000000)")).code == 200
    stream = await HeldStream.open(jp_http_port, jp_base_url, "archive/api/contexts/MyDB/tables/big/rows?limit=2000000&format=csv",
                                   {"X-Auth-Token": token})  # fmt: skip
    assert stream.status == 200
    running = await native_job(fetch, token, {"query": "SELECT count(*) FROM range(1000000000) a, range(1000000000) b"},
                               until=lambda job: job["state"] == "running")  # fmt: skip

    resp = await fetch("archive", "casjobs", "users", "erin", method="DELETE")
    assert resp.code == 200, resp.body
    assert archive.jobs.store.get(running["id"]) is None  # canceled, then forgotten
    body = await stream.finish()  # cut short, or whole: the user's own rows either way
    assert body.startswith(b"i\n0\n1\n")
    mydb = archive.catalog.mydb_path(erin)
    for _ in range(200):  # the engine closes once the stream's lease is back
        if not mydb.exists():
            break
        await asyncio.sleep(0.05)
    assert archive.users.owned.counts(erin) == {kind.name: 0 for kind in KINDS}
    assert archive.engines.engines(archive.engines.engine(erin).key) == []

    token = await make_user(fetch, archive, "erin")
    assert (await quick(fetch, token, "SELECT count(*) AS n FROM big")).code == 400
    resp = await quick(fetch, token, "CREATE TABLE big AS SELECT 1 AS i")
    assert resp.code == 200, resp.body
    assert body_json(await quick(fetch, token, "SELECT i FROM big"))["Result"][0]["Data"] == [[1]]


def test_users_of_an_older_store_keep_their_names_as_identity(tmp_path):
    from jupyter_archive.core.users.store import UserStore

    db = tmp_path / "state.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE users (name TEXT PRIMARY KEY, admin INTEGER NOT NULL DEFAULT 0, full_name TEXT NOT NULL DEFAULT '', "
        "email TEXT NOT NULL DEFAULT '', created REAL NOT NULL, password_hash TEXT);"
        f"INSERT INTO users(name, created) VALUES ('old', {time.time()});"
    )
    con.close()
    store = UserStore(db)
    try:
        old = store.principal("old")
        assert old.ident == "old"  # so their MyDB file, jobs and directives stay theirs
        new = store.ensure_user("new")
        assert new.ident != "new"
        store.delete_user("old")
        assert store.ensure_user("old").ident != "old"  # made again: a new identity
    finally:
        store.close()
