"""Engines through mount changes, for real: an admin mounts and unmounts while a user's result
streams and their job waits or runs; nothing closes an engine in use, no request meets a
half-swapped engine or DuckDB's "Unique file handle conflict", and after the change every new
query sees the new mounts."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import duckdb
import pytest

from tests.support import body_json
from tests.support.held_stream import HeldStream
from tests.support.faces import mount_body

ROWS = 2_000_000  # a CSV of this many rows is far more than the socket buffers hold


@pytest.fixture
def archive_config():
    return {"quick_time_limit": 3}  # also how long a query waits for a database still held


def as_user(token: str) -> dict:
    return {"Authorization": "", "X-Auth-Token": token, "Content-Type": "application/json"}


async def query(fetch, headers: dict, text: str):
    return await fetch("archive", "api", "query", method="POST", headers={**headers, "Accept": "text/csv"},
                       body=json.dumps({"query": text, "language": "sql"}))  # fmt: skip


async def rows(fetch, headers: dict, text: str) -> list[list[str]]:
    resp = await query(fetch, headers, text)
    assert resp.code == 200, resp.body
    return list(csv.reader(io.StringIO(resp.body.decode())))[1:]


async def mount(fetch, name: str, path, **extra) -> None:
    resp = await fetch("archive", "quasar", "mount", "fs", f"{name}/", method="PUT", body=mount_body("duckdb", path, **extra))
    assert resp.code == 200, resp.body


async def unmount(fetch, name: str) -> None:
    resp = await fetch("archive", "quasar", "mount", "fs", f"{name}/", method="DELETE")
    assert resp.code == 200, resp.body


async def submit(fetch, headers: dict, text: str, into: str) -> str:
    resp = await fetch("archive", "api", "jobs", method="POST", headers=headers,
                       body=json.dumps({"query": text, "language": "sql", "into": into}))  # fmt: skip
    assert resp.code == 201, resp.body
    return str(body_json(resp)["id"])


async def job_state(fetch, headers: dict, job_id: str, wait: float = 0) -> dict:
    return body_json(await fetch("archive", "api", "jobs", job_id, params={"wait": str(wait)} if wait else {}, headers=headers))


async def test_mounts_change_while_a_user_streams_and_runs_jobs(fetch, archive, jp_http_port, jp_base_url, sky_db, jp_root_dir):
    other = jp_root_dir / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t AS SELECT 1 AS one")
    con.close()
    alice = as_user(archive.users.create_token("alice"))
    key = archive.engines.engine(archive.users.user("alice")).key
    assert await rows(fetch, alice, f"CREATE TABLE mydb.big AS SELECT range AS i FROM range({ROWS})") == [[str(ROWS)]]
    stream = await HeldStream.open(jp_http_port, jp_base_url, f"archive/api/contexts/MyDB/tables/big/rows?limit={ROWS}&format=csv",
                                   {"X-Auth-Token": alice["X-Auth-Token"]})  # fmt: skip
    assert stream.status == 200
    [first] = archive.engines.engines(key)

    # the admin mounts SKY while alice's stream holds her engine
    await mount(fetch, "sky", sky_db)
    assert await rows(fetch, alice, "SELECT count(*) FROM mydb.big") == [[str(ROWS)]]  # the engine in use serves MyDB
    assert await rows(fetch, alice, "SELECT count(*) FROM sky.quasars") == [["50"]]  # a new engine has SKY
    join = "SELECT count(*) FROM mydb.big AS b JOIN sky.quasars AS q ON b.i = q.qid"
    # both at once need MyDB in the new engine: the query waits for the stream, bounded, and says why
    resp = await query(fetch, alice, join)
    assert resp.code == 409, resp.body
    message = body_json(resp)["error"]["message"]
    assert "your MyDB" in message and "being read" in message, message
    # a job waits as long as it must
    job = await submit(fetch, alice, join.replace("count(*)", "b.i, q.z"), "mydb.joined")
    # more changes meanwhile: another mount comes and goes
    await mount(fetch, "other", other)
    assert await rows(fetch, alice, "SELECT one FROM other.t") == [["1"]]
    await unmount(fetch, "other")
    assert (await query(fetch, alice, "SELECT one FROM other.t")).code in (400, 404)
    assert await rows(fetch, alice, "SELECT count(*) FROM mydb.big") == [[str(ROWS)]]
    assert (await job_state(fetch, alice, job))["state"] in ("queued", "running")
    assert first in archive.engines.engines(key) and not first.closed  # nothing closed it under the stream

    body = await stream.finish()
    got = body.decode().splitlines()
    assert got[0] == "i" and len(got) == ROWS + 1 and got[-1] == str(ROWS - 1)  # the whole table, through all of it
    done = await job_state(fetch, alice, job, wait=30)
    assert done["state"] == "completed", done
    assert await rows(fetch, alice, "SELECT count(*), sum(i) FROM mydb.joined") == [["50", str(sum(range(50)))]]
    assert await rows(fetch, alice, join) == [["50"]]
    assert first.closed and len(archive.engines.engines(key)) == 1  # one complete engine is left

    await unmount(fetch, "sky")
    assert (await query(fetch, alice, "SELECT count(*) FROM sky.quasars")).code in (400, 404)
    assert await rows(fetch, alice, "SELECT count(*) FROM mydb.joined") == [["50"]]


async def test_a_running_job_keeps_its_engine_through_mount_changes(fetch, archive, sky_db):
    alice = as_user(archive.users.create_token("alice"))
    key = archive.engines.engine(archive.users.user("alice")).key
    assert await rows(fetch, alice, "CREATE TABLE mydb.mine AS SELECT 7 AS n") == [["1"]]
    job = await submit(fetch, alice, "SELECT count(*) FROM range(1000000000) a, range(1000000000) b", "mydb.endless")
    for _ in range(400):
        if (await job_state(fetch, alice, job))["state"] == "running":
            break
        await asyncio.sleep(0.05)
    [first] = archive.engines.engines(key)
    for _ in range(2):
        await mount(fetch, "sky", sky_db)
        assert await rows(fetch, alice, "SELECT count(*) FROM sky.quasars") == [["50"]]
        assert await rows(fetch, alice, "SELECT n FROM mydb.mine") == [["7"]]
        await unmount(fetch, "sky")
        assert await rows(fetch, alice, "SELECT n FROM mydb.mine") == [["7"]]
    assert (await job_state(fetch, alice, job))["state"] == "running"
    assert first in archive.engines.engines(key) and not first.closed
    resp = await fetch("archive", "api", "jobs", job, "cancel", method="POST", body="", headers=alice)
    assert resp.code == 200, resp.body
    assert (await job_state(fetch, alice, job, wait=30))["state"] == "canceled"
    assert first.closed and len(archive.engines.engines(key)) == 1
    assert await rows(fetch, alice, "SELECT n FROM mydb.mine") == [["7"]]


async def test_a_file_held_writable_is_not_attached_elsewhere_until_it_is_free(fetch, jp_http_port, jp_base_url, jp_root_dir,
                                                                               jp_auth_header):
    scratch = jp_root_dir / "scratch.duckdb"
    con = duckdb.connect(str(scratch))
    con.execute(f"CREATE TABLE big AS SELECT range AS i FROM range({ROWS})")
    con.close()
    await mount(fetch, "scratch", scratch, readOnly=False)
    admin = {"Content-Type": "application/json"}
    stream = await HeldStream.open(jp_http_port, jp_base_url, f"archive/api/contexts/SCRATCH/tables/big/rows?limit={ROWS}&format=csv",
                                   dict(jp_auth_header))  # fmt: skip
    assert stream.status == 200
    # unmounted while its engine streams, then mounted again read-only: no engine may attach the
    # file until the writable one has let it go
    await unmount(fetch, "scratch")
    await mount(fetch, "scratch", scratch, readOnly=True)
    resp = await query(fetch, admin, "SELECT count(*) FROM scratch.big")
    assert resp.code == 409, resp.body
    assert "scratch" in body_json(resp)["error"]["message"]
    assert await rows(fetch, admin, "SELECT count(*) FROM demo.PhotoObj") == [["20000"]]  # everything else works meanwhile
    body = await stream.finish()
    assert len(body.decode().splitlines()) == ROWS + 1
    assert await rows(fetch, admin, "SELECT count(*) FROM scratch.big") == [[str(ROWS)]]
