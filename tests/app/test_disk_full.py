"""A write that finds no room on the disk fails with a clear error in the face's shape (a 507), or fails its job;
what was stored before stays, and the server goes on.

A real `jupyter archive` process whose files may not grow past ``ROOM`` (its file size limit: what a full disk does
to a write, without filling this machine's disk), so the failures are the engine's, Arrow's and SQLite's own.
"""

from __future__ import annotations

import resource
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.faces import shape_problem
from tests.support.raw_http import Reply
from tests.support.servers import LiveServer

ROOM = 48 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_dir):
    s = LiveServer(tmp_path_factory.mktemp("no-room"), demo_dir)
    session = _session(s)
    kept = session.post(s.url + "archive/api/query", json={"query": "CREATE TABLE kept AS SELECT * FROM range(1000) t(i)", "context": "MyDB"})
    assert kept.status_code == 200, kept.text
    resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (ROOM, ROOM))
    yield s
    s.stop()


def _session(server: LiveServer) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {server.token}"
    return s


def _big(rows: int, salt: int) -> str:
    """Rows of random numbers and hashes: past ``ROOM`` however the engine or Parquet compresses them."""
    return f"SELECT i, random() AS x, random() AS y, md5((i + {salt})::VARCHAR) AS s FROM range({rows}) t(i)"


def _still_whole(server: LiveServer) -> None:
    s = _session(server)
    r = s.post(server.url + "archive/api/query", json={"query": "SELECT count(*) AS n, sum(i) AS t FROM kept", "context": "MyDB"})
    assert r.status_code == 200 and r.json()["data"] == [[1000, 499500]], r.text
    # The failed write gave back the file space it took (DuckDB would keep it in the file, free, for good).
    (mydb,) = (server.data_dir / "mydb").glob("*.duckdb")
    assert mydb.stat().st_size < 4 << 20, f"MyDB kept {mydb.stat().st_size} bytes after a failed write"
    assert s.get(server.url + "archive/api/contexts").status_code == 200
    assert server.proc.poll() is None, server.log_text()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(3_000_000, 4_000_000), st.integers(0, 1000), st.sampled_from(["native", "casjobs"]), st.sampled_from(["CREATE TABLE", "INTO"]))
def test_a_table_that_finds_no_room_is_a_507_and_nothing_stored_is_lost(server, rows, salt, face, how):
    s, name = _session(server), f"t{rows}"
    query = f"CREATE TABLE {name} AS {_big(rows, salt)}" if how == "CREATE TABLE" else _big(rows, salt).replace(" FROM ", f" INTO {name} FROM ")
    if face == "native":
        r = s.post(server.url + "archive/api/query", json={"query": query, "context": "MyDB"}, timeout=120)
    else:
        r = s.post(server.url + "archive/casjobs/contexts/MyDB/query", json={"Query": query}, timeout=120)
    reply = Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)
    assert r.status_code == 507 and shape_problem(face, reply) is None, (query, r.status_code, r.text[:300])
    assert "no room" in r.text
    _still_whole(server)


def test_a_job_whose_result_finds_no_room_fails_saying_so(server):
    s, url = _session(server), server.url + "archive/api/"
    job = s.post(url + "jobs", json={"query": _big(4_000_000, 7), "context": "DEMO"}).json()
    deadline = time.monotonic() + 120
    while (got := s.get(url + f"jobs/{job['id']}").json())["state"] not in ("completed", "failed", "canceled"):
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    assert got["state"] == "failed" and got["error"]["code"] == "disk_full", got
    small = s.post(url + "jobs", json={"query": "SELECT 1 AS one", "context": "DEMO"}).json()  # and the next one runs
    while (got := s.get(url + f"jobs/{small['id']}").json())["state"] not in ("completed", "failed", "canceled"):
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    assert got["state"] == "completed", got
    _still_whole(server)
