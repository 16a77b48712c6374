"""What writes may take of the disk: a user's MyDB stops at its quota, every write stops short of the room the archive
keeps free on the disk, and a write stopped (or failed any other way) gives back the file space it took.

Real `jupyter archive` processes: one with a small MyDB quota, one whose disk reserve is set just under what this
machine's disk has free now, so a write of a few hundred MB meets it. A stopped write is a 507 in its face's shape,
or a failed job, naming the bound; what MyDB held before is whole, its file is back near its size before (DuckDB
keeps a rolled-back write's blocks in the file unless told to give them back), and the next write works.
"""

from __future__ import annotations

import io
import os
import itertools
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv  # noqa: F401 - pa.csv
import pyarrow.parquet as pq
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.faces import shape_problem
from tests.support.raw_http import Reply
from tests.support.servers import LiveServer

QUOTA = 24 << 20
RESULTS = 16 << 20  # of stored job results
#: Of imported HATS catalogs: one import of ``_POINTS`` (a 0.63 MB Parquet export, a 0.78 MB catalog) fits, two do not.
HATS_QUOTA = 1_600_000
_POINTS = ("CREATE TABLE pts AS SELECT i AS objid, (i * 7919 % 36000) / 100.0 AS ra, ((i * 104729) % 17000) / 100.0 - 85 AS dec "
           "FROM range(40000) t(i)")  # fmt: skip
#: What a stopped write may leave in the file past its size before: a few of DuckDB's 256 kB blocks of metadata.
SLACK = 4 << 20


def _session(server: LiveServer) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {server.token}"
    return s


def _setup(server: LiveServer) -> None:
    r = _session(server).post(server.url + "archive/api/query", json={"query": "CREATE TABLE kept AS SELECT * FROM range(1000) t(i)", "context": "MyDB"})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def quota(tmp_path_factory, demo_dir):
    quotas = (f"--ArchiveApp.mydb_quota={QUOTA}B", f"--ArchiveApp.results_quota={RESULTS}", f"--ArchiveApp.hats_quota={HATS_QUOTA}B")
    s = LiveServer(tmp_path_factory.mktemp("quota"), demo_dir, extra=quotas)
    _setup(s)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def reserve(tmp_path_factory, demo_dir):
    root = tmp_path_factory.mktemp("reserve")
    # Room for ~150 MB of writes on this machine's disk as it is now; the writes below take twice that.
    kept = shutil.disk_usage(root).free - (150 << 20)
    s = LiveServer(root, demo_dir, extra=(f"--ArchiveApp.disk_reserve={kept}",))
    _setup(s)
    yield s
    s.stop()


def _mydb_file(server: LiveServer) -> Path:
    """The server owner's MyDB file (the one user whose name is not bob)."""
    (found,) = [p for p in (server.data_dir / "mydb").glob("*.duckdb") if not p.name.startswith("bob.")]
    return found


def _big(rows: int, salt: int) -> str:
    """Rows of random numbers and hashes: ~34 bytes a row however the engine or Parquet compresses them."""
    return f"SELECT i, random() AS x, md5((i + {salt})::VARCHAR) AS s FROM range({rows}) t(i)"


def _write(server: LiveServer, how: str, face: str, name: str, rows: int, salt: int) -> requests.Response:
    s = _session(server)
    if how == "upload":  # random doubles: no compression gets them under the bound
        values = np.random.default_rng(salt).random((2, rows))
        if face == "native":
            body = io.BytesIO()
            pq.write_table(pa.table({"x": values[0], "y": values[1]}), body, compression="none")
            return s.put(server.url + f"archive/api/contexts/MyDB/tables/{name}", params={"format": "parquet"}, data=body.getvalue(), timeout=300)
        body = io.BytesIO()  # CasJobs uploads CSV
        pa.csv.write_csv(pa.table({"x": values[0], "y": values[1]}), body)
        return s.post(server.url + f"archive/casjobs/contexts/MyDB/Tables/{name}", data=body.getvalue(), timeout=300)
    query = {
        "create": f"CREATE TABLE {name} AS {_big(rows, salt)}",
        "into": _big(rows, salt).replace(" FROM ", f" INTO {name} FROM "),
        "insert": f"INSERT INTO kept SELECT (random() * 1e18)::BIGINT FROM range({2 * rows})",  # 8 bytes a row, random
    }[how]
    if face == "native":
        return s.post(server.url + "archive/api/query", json={"query": query, "context": "MyDB"}, timeout=300)
    return s.post(server.url + "archive/casjobs/contexts/MyDB/query", json={"Query": query}, timeout=300)


def _stopped(server: LiveServer, r: requests.Response, face: str, words: str, before: int) -> None:
    reply = Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)
    assert r.status_code == 507 and shape_problem(face, reply) is None, (r.status_code, r.text[:300])
    assert words in r.text, r.text[:300]
    _whole(server, before)


def _whole(server: LiveServer, before: int) -> None:
    """MyDB holds what it held, its file gave back what the write took, and the next write works."""
    s = _session(server)
    r = s.post(server.url + "archive/api/query", json={"query": "SELECT count(*) AS n, sum(i) AS t FROM kept", "context": "MyDB"})
    assert r.status_code == 200 and r.json()["data"] == [[1000, 499500]], r.text
    size = _mydb_file(server).stat().st_size
    assert size <= before + SLACK, f"the MyDB file grew from {before} to {size} bytes"
    r = s.post(server.url + "archive/api/query", json={"query": "CREATE OR REPLACE TABLE small AS SELECT 1 AS one", "context": "MyDB"})
    assert r.status_code == 200, r.text
    assert server.proc.poll() is None, server.log_text()


NAMES = itertools.count()  # a table name each example: one a wrong answer created does not fail the next
HOWS = st.sampled_from(["create", "into", "insert", "upload"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HOWS, st.sampled_from(["native", "casjobs"]), st.integers(3_000_000, 5_000_000), st.integers(0, 10**6))
def test_a_write_past_the_users_quota_is_a_507_and_takes_nothing(quota, how, face, rows, salt):
    before = _mydb_file(quota).stat().st_size
    r = _write(quota, how, face, f"t{next(NAMES)}", rows, salt)
    _stopped(quota, r, face, "past its quota", before)
    if face == "native":
        assert r.json()["error"]["details"]["quota_bytes"] == QUOTA


def _job(server: LiveServer, query: str, context: str) -> dict:
    s, url = _session(server), server.url + "archive/api/"
    job = s.post(url + "jobs", json={"query": query, "context": context}).json()
    deadline = time.monotonic() + 300
    while (got := s.get(url + f"jobs/{job['id']}").json())["state"] not in ("completed", "failed", "canceled"):
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    return got


def test_a_job_writing_past_the_quota_fails_saying_so_and_a_drop_frees_room(quota):
    before = _mydb_file(quota).stat().st_size
    got = _job(quota, _big(4_000_000, 1).replace(" FROM ", " INTO big FROM "), "MyDB")
    assert got["state"] == "failed" and got["error"]["code"] == "quota_exceeded", got
    _whole(quota, before)
    # Up to the quota in two tables; the one that would pass it stops; dropping one makes room for it again.
    s = _session(quota)
    for name in ("a", "b"):
        r = s.post(quota.url + "archive/api/query", json={"query": f"CREATE TABLE {name} AS {_big(300_000, 2)}", "context": "MyDB"})
        assert r.status_code == 200, r.text
    used = _usage(quota)
    assert used["quota"] == QUOTA and 15 << 20 < used["bytes"] <= QUOTA, used  # the two tables, as listed with MyDB
    third = {"query": f"CREATE TABLE c AS {_big(600_000, 3)}", "context": "MyDB"}
    assert s.post(quota.url + "archive/api/query", json=third).status_code == 507
    assert s.post(quota.url + "archive/api/query", json={"query": "DROP TABLE a", "context": "MyDB"}).status_code == 200
    assert s.delete(quota.url + "archive/api/contexts/MyDB/tables/b").status_code in (200, 204)
    r = s.post(quota.url + "archive/api/query", json=third)
    assert r.status_code == 200, r.text


def _only_kept(server: LiveServer) -> None:
    """Drop every MyDB table but ``kept`` (what earlier tests of the module left)."""
    s, url = _session(server), server.url + "archive/api/contexts/MyDB/tables"
    for table in s.get(url).json()["tables"]:
        if table["name"] != "kept":
            assert s.delete(f"{url}/{table['name']}").status_code == 204


def _usage(server: LiveServer) -> dict:
    """What ``GET contexts`` says MyDB takes: its file's bytes and its quota; checked against the file itself."""
    contexts = _session(server).get(server.url + "archive/api/contexts").json()["contexts"]
    (mydb,) = [c for c in contexts if c["name"] == "MyDB"]
    assert mydb["storage"]["bytes"] == _mydb_file(server).stat().st_size, mydb
    assert all("storage" not in c for c in contexts if c["name"] != "MyDB"), contexts
    return mydb["storage"]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["create", "into", "upload"]), st.sampled_from(["native", "casjobs"]), st.integers(0, 10**6))
def test_a_write_past_the_disks_reserve_is_a_507_and_gives_back_what_it_took(reserve, how, face, salt):
    before = _mydb_file(reserve).stat().st_size
    r = _write(reserve, how, face, f"t{next(NAMES)}", 12_000_000, salt)
    _stopped(reserve, r, face, "no room", before)


def test_a_job_whose_result_would_pass_the_reserve_fails_and_leaves_no_file(reserve):
    got = _job(reserve, _big(12_000_000, 5), "DEMO")
    assert got["state"] == "failed" and got["error"]["code"] == "disk_full", got
    assert not list((reserve.data_dir / "results").glob(f"{got['id']}.*")), "a part of the result was left"
    small = _job(reserve, "SELECT 1 AS one", "DEMO")  # and the next one runs
    assert small["state"] == "completed", small


def test_one_users_quota_is_theirs_alone(quota):
    """Another user at their quota fails their own writes; this user's go on (each MyDB is its own file)."""
    s = _session(quota)
    made = s.put(quota.url + "archive/casjobs/users/bob", json={"Password": "bob-password-1"})
    assert made.status_code == 200, made.text
    login = {"auth": {"identity": {"password": {"user": {"name": "bob", "password": "bob-password-1"}}}}}
    token = requests.post(quota.url + "archive/auth/tokens", json=login).headers["X-Subject-Token"]
    bob = {"X-Auth-Token": token}
    r = requests.post(quota.url + "archive/api/query", headers=bob, json={"query": f"CREATE TABLE big AS {_big(3_000_000, 9)}", "context": "MyDB"})
    assert r.status_code == 507 and "past its quota" in r.text, r.text[:300]
    before = _mydb_file(quota).stat().st_size
    r = s.post(quota.url + "archive/api/query", json={"query": f"CREATE OR REPLACE TABLE mine AS {_big(200_000, 9)}", "context": "MyDB"})
    assert r.status_code == 200, r.text
    assert _mydb_file(quota).stat().st_size > before


def test_job_results_past_the_owners_results_quota_fail_and_deleting_jobs_makes_room(quota):
    s, url = _session(quota), quota.url + "archive/api/"
    query = _big(200_000, 4)  # ~6.2 MB of Parquet: two fit, not three
    kept = [_job(quota, query, "DEMO") for _ in range(2)]
    assert all(j["state"] == "completed" for j in kept), kept
    third = _job(quota, query, "DEMO")
    assert third["state"] == "failed" and third["error"]["code"] == "quota_exceeded", third
    assert "stored job results" in third["error"]["message"]
    assert not list((quota.data_dir / "results").glob(f"{third['id']}.*")), "a part of the result was left"
    assert s.delete(url + f"jobs/{kept[0]['id']}").status_code == 204
    again = _job(quota, query, "DEMO")
    assert again["state"] == "completed", again
    r = s.get(url + f"jobs/{kept[1]['id']}/results", params={"limit": 1})
    assert r.status_code == 200, r.text  # what was stored before is whole
    # The listing says what the results take of the quota: the files of the owner's jobs (bob has none here).
    files = sum((quota.data_dir / "results" / f"{j['id']}.parquet").stat().st_size for j in (kept[1], again))
    storage = s.get(url + "jobs").json()["storage"]
    assert storage["quota"] == RESULTS and files <= storage["bytes"] <= files + (1 << 20), (storage, files)


def test_with_the_disk_below_the_reserve_writes_stop_before_they_start_and_a_drop_still_works(reserve):
    """Something else filled the disk (a file beside the archive): every write that adds (a table, an upload, a job's
    result, a HATS import) is a 507 or a failed job leaving nothing, and a DROP still makes room."""
    s, url = _session(reserve), reserve.url + "archive/api/"
    made = s.post(url + "query", json={"query": "CREATE OR REPLACE TABLE pts AS SELECT i AS id, i % 360 AS ra, (i % 170) - 85 AS dec "
                                       "FROM range(2000) t(i)", "context": "MyDB"})  # fmt: skip
    assert made.status_code == 200, made.text
    filler = reserve.root / "filler"
    free, kept = shutil.disk_usage(reserve.root).free, reserve_bytes(reserve)
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(1, free - kept + (32 << 20)))
    try:
        r = s.post(url + "query", json={"query": "CREATE TABLE more AS SELECT 1 AS one", "context": "MyDB"})
        assert r.status_code == 507 and "no room" in r.text, r.text
        r = s.put(url + "contexts/MyDB/tables/up", params={"format": "csv"}, data=b"a\n1\n")
        assert r.status_code == 507 and "no room" in r.text, r.text
        job = _job(reserve, "SELECT 1 AS one", "DEMO")
        assert job["state"] == "failed" and job["error"]["code"] == "disk_full", job
        imported = s.post(url + "jobs", json={"kind": "hats_import", "table": "pts", "name": "pts"}).json()
        while (got := s.get(url + f"jobs/{imported['id']}").json())["state"] not in ("completed", "failed", "canceled"):
            time.sleep(0.3)
        assert got["state"] == "failed" and got["error"]["code"] == "disk_full", got
        assert not [p for p in (reserve.data_dir / "hats-users").rglob("*") if p.is_file()], "a part of the import was left"
        assert s.post(url + "query", json={"query": "DROP TABLE pts", "context": "MyDB"}).status_code == 200
    finally:
        filler.unlink()
    assert _job(reserve, "SELECT 1 AS one", "DEMO")["state"] == "completed"


def reserve_bytes(server: LiveServer) -> int:
    """The disk reserve the server was started with (its command line)."""
    (arg,) = [a for a in server.proc.args if a.startswith("--ArchiveApp.disk_reserve=")]
    return int(arg.split("=", 1)[1])


def test_room_a_drop_frees_while_another_read_is_open_is_free_once_it_ends(quota):
    """A DROP's checkpoint waits for the user's other transactions (a result still being read): once it ends, the
    room is free, so a table that fits the quota again is written."""
    s, url = _session(quota), quota.url + "archive/api/"
    _only_kept(quota)
    for name in ("a", "b"):
        r = s.post(url + "query", json={"query": f"CREATE OR REPLACE TABLE {name} AS {_big(400_000, 6)}", "context": "MyDB"})
        assert r.status_code == 200, r.text
    reading = s.get(url + "contexts/MyDB/tables/a/rows", params={"limit": 400_000, "format": "csv"}, stream=True)
    assert reading.status_code == 200
    next(reading.iter_content(65536))  # the rest waits on the socket: the read's transaction stays open
    try:
        assert s.post(url + "query", json={"query": "DROP TABLE b", "context": "MyDB"}).status_code == 200
    finally:
        reading.close()
    time.sleep(1.5)  # the held-off checkpoint is tried again every 0.5 s
    r = s.post(url + "query", json={"query": f"CREATE TABLE c AS {_big(400_000, 7)}", "context": "MyDB"})  # a, b, c: past it
    assert r.status_code == 200, r.text
    assert s.post(url + "query", json={"query": "DROP TABLE a; DROP TABLE c", "context": "MyDB"}).status_code == 200


def test_imported_hats_catalogs_stop_at_the_users_quota_and_deleting_one_makes_room(quota):
    s, url = _session(quota), quota.url + "archive/api/"
    assert s.post(url + "query", json={"query": _POINTS, "context": "MyDB"}).status_code == 200

    def imported(name: str) -> dict:
        job = s.post(url + "jobs", json={"kind": "hats_import", "table": "pts", "name": name}).json()
        assert "id" in job, job
        while (got := s.get(url + f"jobs/{job['id']}").json())["state"] not in ("completed", "failed", "canceled"):
            time.sleep(0.2)
        return got

    assert imported("first")["state"] == "completed"
    (folder,) = (quota.data_dir / "hats-users").iterdir()  # the owner's: the one user who imported
    kept = sorted(p.name for p in folder.iterdir())
    (mine,) = [c for c in s.get(url + "contexts").json()["contexts"] if c["name"].endswith("_HATS")]
    on_disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert mine["storage"] == {"bytes": on_disk, "quota": HATS_QUOTA}, (mine, on_disk)
    second = imported("second")
    assert second["state"] == "failed" and second["error"]["code"] == "quota_exceeded", second
    assert "quota of 1.6 MB" in second["error"]["message"] and "DELETE" in second["error"]["message"], second
    assert sorted(p.name for p in folder.iterdir()) == kept, "the failed import left files"
    assert s.delete(url + f"contexts/{mine['name']}/tables/first").status_code == 204
    assert imported("second")["state"] == "completed"
    assert s.delete(url + f"contexts/{mine['name']}/tables/second").status_code == 204
    assert s.post(url + "query", json={"query": "DROP TABLE pts", "context": "MyDB"}).status_code == 200
