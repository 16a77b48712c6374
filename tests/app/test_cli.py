"""The commands a user types: `jupyter archive`, `jupyter server`/`jupyter lab` with the extension, tokens."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.servers import BIN, Server, free_port, root_flags

@pytest.fixture
def start(tmp_path):
    servers = []

    def _start(cmd: list[str], data_dir: Path, *extra: str) -> Server:
        port, token = free_port(), "test-token-123"
        argv = [*cmd, "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                f"--ArchiveApp.data_dir={data_dir}", f"--ServerApp.root_dir={tmp_path}", *root_flags(), *extra]
        s = Server(argv, port, token, tmp_path / f"server-{len(servers)}.log")
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.stop()


def test_jupyter_archive_starts_on_the_demo_and_prints_url_and_token(start, tmp_path):
    data = tmp_path / "data"
    s = start([str(BIN / "jupyter"), "archive"], data)
    contexts = s.wait().json()["contexts"]
    assert "DEMO" in [c["name"] for c in contexts]
    # What the server would hold at rest for nothing (issue 16): astropy, which only building the demo's
    # images needed, and DuckDB, which reading the new demo's tables needed: both in the child that built it
    assert loaded(s) == set()
    # The archive alone: Jupyter's own services (kernels) but not the lab and its extensions (`jupyter lab` has them)
    auth = {"Authorization": f"token {s.token}"}
    assert requests.get(s.url + "api/kernelspecs", headers=auth, timeout=30).status_code == 200
    assert requests.get(s.url + "lab", headers=auth, timeout=30).status_code == 404
    r = requests.post(s.url + "archive/casjobs/contexts/DEMO/query", data=json.dumps({"Query": "SELECT TOP 10 objid, ra, dec FROM PhotoObj"}),
                      headers={"Authorization": f"token {s.token}", "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200 and len(r.text.strip().splitlines()) == 11
    assert (data / "demo" / "demo.duckdb").exists()
    log = s.log_text()
    assert f"127.0.0.1:{s.port}/" in log and "token=" in log
    # Issue 16 (memory at rest): what a started server has not needed yet, it has not loaded. The next
    # start reads the demo's tables from what this one kept, so no DuckDB opens before a query.
    s.stop()
    s = start([str(BIN / "jupyter"), "archive"], data)
    s.wait()
    assert loaded(s) == set()
    r = requests.post(s.url + "archive/api/query", json={"query": "SELECT count(*) FROM SpecObj", "context": "DEMO"},
                      headers={"Authorization": f"token {s.token}"}, timeout=30)
    assert r.status_code == 200 and {"duckdb", "pandas"} <= loaded(s)  # the check sees real libraries
    # A demo whose kept descriptions no longer match it (a copy made without its times, a file touched):
    # described again at start, by a child process, so this start holds no DuckDB either.
    s.stop()
    demo = data / "demo" / "demo.duckdb"
    st = demo.stat()
    os.utime(demo, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    s = start([str(BIN / "jupyter"), "archive"], data)
    s.wait()
    assert loaded(s) == set()
    r = requests.post(s.url + "archive/api/query", json={"query": "SELECT count(*) AS n FROM PhotoObj", "context": "DEMO"},
                      headers={"Authorization": f"token {s.token}"}, timeout=30)
    assert r.status_code == 200 and r.json()["data"] == [[100_000]]


def loaded(server: Server) -> set[str]:
    """The heavy libraries whose shared libraries the server process has mapped."""
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    return {lib for lib, mark in HEAVY.items() if mark in maps}


# The shared library each heavy library maps when it is loaded.
HEAVY = {"duckdb": "/_duckdb.", "pandas": "/pandas/_libs/", "pyarrow.compute": "/pyarrow/_compute.", "pyarrow.parquet": "/pyarrow/_parquet.",
         "astropy": "/astropy/"}  # fmt: skip


@pytest.mark.parametrize("app", ["server", "lab"])
def test_extension_loads_in_jupyter_server_and_lab(start, tmp_path, app):
    # No explicit jpserver_extensions: the package's jupyter-config file enables it.
    s = start([str(BIN / "jupyter"), app], tmp_path / "data", "--ArchiveApp.demo_rows=2000")
    r = s.wait("archive/api/contexts/DEMO/tables")
    assert {t["name"] for t in r.json()["tables"]} == {"PhotoObj", "SpecObj"}


def test_token_create_then_x_auth_token(start, tmp_path):
    data = tmp_path / "data"
    out = subprocess.run([str(BIN / "jupyter"), "archive", "token", "create", "bob", f"--ArchiveApp.data_dir={data}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert len(token) >= 32
    s = start([str(BIN / "jupyter"), "archive"], data, "--ArchiveApp.demo_rows=2000")
    s.wait()
    r = requests.post(s.url + "archive/api/query", json={"query": "CREATE TABLE t AS SELECT 42 AS answer", "context": "MyDB"},
                      headers={"X-Auth-Token": token}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(s.url + "archive/api/query", json={"query": "SELECT answer FROM t", "context": "mydb"},
                      headers={"X-Auth-Token": token}, timeout=30)
    assert r.json()["data"] == [[42]]
    assert requests.get(s.url + "archive/api/contexts", headers={"X-Auth-Token": "wrong"}, timeout=30).status_code == 401


def test_jobs_survive_a_hard_kill(start, tmp_path):
    """A running job is failed with the restart message; a queued one then runs; MyDB is intact."""
    import signal

    data = tmp_path / "data"
    extra = ("--ArchiveApp.demo_rows=2000", "--ArchiveApp.job_workers=1")
    s = start([str(BIN / "jupyter"), "archive"], data, *extra)
    s.wait()
    h = {"Authorization": f"token {s.token}"}
    ok = requests.post(s.url + "archive/api/query", json={"query": "CREATE TABLE keep AS SELECT * FROM range(1000)", "context": "MyDB"},
                       headers=h, timeout=30)
    assert ok.status_code == 200, ok.text
    slow = requests.post(s.url + "archive/api/jobs", json={"query": "SELECT count(*) FROM range(10000000000000) a", "context": "DEMO"},
                         headers=h, timeout=30).json()
    queued = requests.post(s.url + "archive/api/jobs", json={"query": "SELECT 7 AS x", "context": "DEMO"}, headers=h, timeout=30).json()
    deadline = time.time() + 30
    while requests.get(s.url + f"archive/api/jobs/{slow['id']}", headers=h, timeout=30).json()["state"] != "running":
        assert time.time() < deadline
        time.sleep(0.1)
    assert requests.get(s.url + f"archive/api/jobs/{queued['id']}", headers=h, timeout=30).json()["state"] == "queued"
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(20)

    s2 = start([str(BIN / "jupyter"), "archive"], data, *extra)
    s2.wait()
    h2 = {"Authorization": f"token {s2.token}"}
    job = requests.get(s2.url + f"archive/api/jobs/{slow['id']}", headers=h2, timeout=30).json()
    assert job["state"] == "failed" and job["error"]["message"] == "interrupted by server restart"
    done = requests.get(s2.url + f"archive/api/jobs/{queued['id']}", params={"wait": "30"}, headers=h2, timeout=60).json()
    assert done["state"] == "completed"
    rows = requests.get(s2.url + f"archive/api/jobs/{queued['id']}/results", headers=h2, timeout=30).json()
    assert rows["data"] == [[7]]
    keep = requests.post(s2.url + "archive/api/query", json={"query": "SELECT count(*) AS n FROM keep", "context": "MyDB"},
                         headers=h2, timeout=30).json()
    assert keep["data"] == [[1000]]
