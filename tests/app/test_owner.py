"""One owner per data dir, with real server processes.

A second server on a data dir that a live process owns (``jupyter server`` while
``jupyter archive`` runs) serves the archive through the owner; when the owner cannot be
reached every archive route answers 503 in its face's shape, and nothing in the data dir is
touched; when the owner dies the second server takes the data dir over. A setting that
cannot be used stops the start, and nothing is written outside the data dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from pathlib import Path
from re import _parser as sre_parse

import pytest
import requests

from jupyter_archive.core.ownership import NOTE_NAME

from tests.support import DEMO_ROWS
from tests.support.servers import BIN, Server, free_port, root_flags

TOKEN = "owner-test-token"
SLOW = "SELECT count(*) FROM range(10000000000000) a"


def launch(app: str, data: Path, work: Path, name: str, *extra: str, base: str = "/") -> Server:
    """A `jupyter <app>` process on ``data``, its URL including its base URL."""
    port = free_port()
    argv = [str(BIN / "jupyter"), app, "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}", f"--ArchiveApp.data_dir={data}", f"--ServerApp.root_dir={work}",
            f"--ServerApp.base_url={base}", f"--ArchiveApp.demo_rows={DEMO_ROWS}", "--ArchiveApp.engine_threads=1",
            *root_flags(), *extra]
    server = Server(argv, port, TOKEN, work / f"{name}.log")
    server.url = f"http://127.0.0.1:{port}{base}"
    return server


def call(server: Server, method: str, path: str, **kw) -> requests.Response:
    headers = {"Authorization": f"token {server.token}", **kw.pop("headers", {})}
    return requests.request(method, server.url + path, headers=headers, timeout=kw.pop("timeout", 60), **kw)


def job_state(server: Server, job_id) -> str:
    return call(server, "GET", f"archive/api/jobs/{job_id}").json()["state"]


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def data_dir_with_demo(root: Path, demo_dir: Path) -> Path:
    data = root / "data"
    shutil.copytree(demo_dir, data / "demo")
    return data


def snapshot(data: Path) -> dict:
    """Every file under the data dir with its size and modification time."""
    return {str(p.relative_to(data)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(data.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory, demo_dir):
    """An owner (`jupyter archive`, base /) and a second server (`jupyter server`, base /second/) on one data dir.

    The owner's mounts and mount roots are given as JSON on its command line.
    """
    root = tmp_path_factory.mktemp("owner-pair")
    data = data_dir_with_demo(root, demo_dir)
    files = root / "files"
    files.mkdir()
    (files / "stars.csv").write_text("id,mag\n1,10.5\n2,11.25\n")
    mounts = [{"path": "/demo", "type": "duckdb", "location": str(data / "demo" / "demo.duckdb"), "context": "DEMO",
               "readOnly": True, "public": True},
              {"path": "/files", "type": "files", "location": str(files), "context": "FILES", "readOnly": True}]
    owner = launch("archive", data, root, "owner", f"--ArchiveApp.mounts={json.dumps(mounts)}",
                   f"--ArchiveApp.mount_roots={json.dumps([str(root)])}", "--ArchiveApp.upload_limit=200000")
    second = None
    try:
        owner.wait(timeout=120)
        second = launch("server", data, root, "second", base="/second/")
        second.wait(timeout=120)
        yield owner, second, data
    finally:
        for s in (second, owner):
            if s is not None:
                if s.proc.poll() is None:
                    s.proc.send_signal(signal.SIGCONT)
                s.stop()


def test_json_settings_on_the_command_line_are_used(pair):
    owner, second, _ = pair
    contexts = {c["name"] for c in call(owner, "GET", "archive/api/contexts").json()["contexts"]}
    assert {"DEMO", "FILES", "MyDB"} <= contexts
    assert call(second, "GET", "archive/api/contexts/FILES/tables").json()["tables"][0]["name"] == "stars"


def test_quick_queries_and_links_through_the_second(pair):
    owner, second, _ = pair
    body = {"Query": "SELECT TOP 5 objid, ra, dec FROM PhotoObj ORDER BY objid"}
    direct = call(owner, "POST", "archive/casjobs/contexts/DEMO/query", json=body)
    through = call(second, "POST", "archive/casjobs/contexts/DEMO/query", json=body)
    assert through.status_code == direct.status_code == 200
    assert through.text == direct.text and through.headers["Content-Type"] == direct.headers["Content-Type"]
    # Links in answers are the second server's: its host, port and base URL.
    job = call(second, "POST", "archive/api/jobs", json={"query": "SELECT 1 AS x", "context": "DEMO"}).json()
    assert job["links"]["self"] == f"/second/archive/api/jobs/{job['id']}"
    tap = call(second, "POST", "archive/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT 1 AS x"}, allow_redirects=False)
    assert tap.status_code == 303 and tap.headers["Location"].startswith(second.url + "archive/tap/async/")
    capabilities = call(second, "GET", "archive/tap/capabilities").text
    assert second.url + "archive/tap" in capabilities and owner.url + "archive/tap" not in capabilities


def test_a_job_submitted_through_the_second_is_the_owners(pair):
    owner, second, _ = pair
    job = call(second, "POST", "archive/api/jobs", json={"query": SLOW, "context": "DEMO"}).json()
    wait_for(lambda: job_state(owner, job["id"]) == "running", what="the job to run")
    assert call(owner, "POST", f"archive/api/jobs/{job['id']}/cancel").status_code in (200, 202)
    done = call(second, "GET", f"archive/api/jobs/{job['id']}", params={"wait": "30"}).json()
    assert done["state"] == "canceled"
    # CasJobs, through the second, sees the same job
    assert any(j["JobID"] == job["id"] for j in call(second, "GET", "archive/casjobs/jobs").json())


def test_uploads_and_exports_stream_through_the_second(pair):
    owner, second, _ = pair
    rows = 4000
    csv = "id,mag\n" + "".join(f"{i},{i / 7:.6f}\n" for i in range(rows))

    def chunks():  # no Content-Length: the body goes on chunked, as it comes
        data = csv.encode()
        for i in range(0, len(data), 7000):
            yield data[i : i + 7000]

    put = call(second, "PUT", "archive/api/contexts/MyDB/tables/streamed", data=chunks(), headers={"Content-Type": "text/csv"})
    assert put.status_code in (200, 201), put.text
    count = call(owner, "POST", "archive/api/query", json={"query": "SELECT count(*), sum(id) FROM streamed", "context": "MyDB"}).json()
    assert count["data"] == [[rows, rows * (rows - 1) // 2]]
    # An export, byte for byte what the owner sends
    query = {"query": "SELECT objid, ra, dec, r FROM PhotoObj ORDER BY objid", "context": "DEMO", "format": "csv"}
    direct, through = call(owner, "POST", "archive/api/query", json=query), call(second, "POST", "archive/api/query", json=query)
    assert through.status_code == 200 and through.content == direct.content and len(through.content) > 500_000
    # Over the owner's upload_limit: refused from the headers, in the face's shape; MyDB unchanged
    # (repeated: the owner closes with the body unsent, and a reset must never turn its answer into a 503)
    big = b"id,mag\n" + b"1,2.5\n" * 60_000
    for _ in range(20):
        refused = call(second, "PUT", "archive/api/contexts/MyDB/tables/streamed", data=big, headers={"Content-Type": "text/csv"})
        assert refused.status_code == 413 and refused.json()["error"]["code"]
    again = call(second, "POST", "archive/api/query", json={"query": "SELECT count(*) FROM streamed", "context": "MyDB"}).json()
    assert again["data"] == [[rows]]


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("POST", "archive/casjobs/contexts/DEMO/query", {"json": {"Query": "SELEC 1"}}),
        ("GET", "archive/tap/sync", {"params": {"LANG": "ADQL", "QUERY": "SELECT nope FROM demo.PhotoObj"}}),
        ("GET", "archive/kasabi/dataset/mydb/jobs/123456", {}),
        ("GET", "archive/quasar/query/fs/demo", {"params": {"q": "SELECT * FROM `NoSuchTable`"}}),
        ("GET", "archive/sas/jobs/123456", {}),
        ("GET", "archive/dax/meta/v0/db/L2/NOPE", {}),
        ("PUT", "archive/api/contexts/DEMO/tables/x", {"data": b"a\n1\n"}),
    ],
)
def test_errors_come_through_in_the_faces_shape(pair, method, path, kw):
    owner, second, _ = pair
    direct, through = call(owner, method, path, **kw), call(second, method, path, **kw)
    assert 400 <= through.status_code < 500 and through.status_code == direct.status_code
    assert through.headers["Content-Type"] == direct.headers["Content-Type"]
    ids = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # per-reply log ids
    assert ids.sub("", through.text) == ids.sub("", direct.text)


def test_identities_through_the_second(pair):
    owner, second, data = pair
    made = subprocess.run([str(BIN / "jupyter"), "archive", "token", "create", "carol", f"--ArchiveApp.data_dir={data}"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr  # works while a server owns the data dir
    carol = {"X-Auth-Token": made.stdout.strip().splitlines()[-1]}
    r = call(second, "POST", "archive/api/query", json={"query": "CREATE TABLE mine AS SELECT 7 AS v", "context": "MyDB"}, headers=carol)
    assert r.status_code == 200, r.text
    assert requests.post(owner.url + "archive/api/query", json={"query": "SELECT v FROM mine", "context": "MyDB"},
                         headers=carol, timeout=30).json()["data"] == [[7]]
    # A caller of the second cannot name someone else: its forwarding headers are dropped, and
    # it acts as the second's Jupyter user (the owner, an admin).
    forged = {"X-Archive-Forward-User": "carol", "X-Archive-Forward-Admin": "1", "X-Archive-Forward-Secret": "guess"}
    r = call(second, "POST", "archive/api/query", json={"query": "CREATE TABLE forged AS SELECT 1 AS v", "context": "MyDB"}, headers=forged)
    assert r.status_code == 200, r.text
    mine = requests.post(owner.url + "archive/api/query", json={"query": "SELECT * FROM forged", "context": "MyDB"}, headers=carol, timeout=30)
    assert mine.status_code >= 400  # not in carol's MyDB
    assert call(owner, "POST", "archive/api/query", json={"query": "SELECT v FROM forged", "context": "MyDB"}).json()["data"] == [[1]]
    # At the owner, forwarding headers without its secret are refused in the face's shape
    for headers in ({"X-Archive-Forward-User": "carol"}, {**forged}):
        r = requests.get(owner.url + "archive/api/jobs", headers=headers, timeout=30)
        assert r.status_code == 401 and "forwarding secret" in r.json()["error"]["message"]
        r = requests.get(owner.url + "archive/kasabi/dataset/mydb/jobs/1", headers=headers, timeout=30)
        assert r.status_code == 401 and r.headers["Content-Type"].startswith("text/plain")
    # ... and with it, they name the user (the file holding it is this OS user's only)
    note = data / NOTE_NAME
    assert note.stat().st_mode & 0o077 == 0
    secret = json.loads(note.read_text())["secret"]
    r = requests.post(owner.url + "archive/api/query", json={"query": "SELECT v FROM mine", "context": "MyDB"},
                      headers={"X-Archive-Forward-Secret": secret, "X-Archive-Forward-User": "carol"}, timeout=30)
    assert r.json()["data"] == [[7]]


def test_a_browser_session_on_the_second_works_as_the_sidebar_does(pair):
    owner, second, _ = pair
    browser = requests.Session()
    browser.get(second.url + "login", timeout=30)  # sets the _xsrf cookie
    xsrf = browser.cookies["_xsrf"]
    login = browser.post(second.url + "login", data={"password": TOKEN, "_xsrf": xsrf}, allow_redirects=False, timeout=30)
    assert login.status_code == 302
    query = {"query": "SELECT 41 + 1 AS answer", "context": "DEMO"}
    r = browser.post(second.url + "archive/api/query", json=query, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert r.status_code == 200 and r.json()["data"] == [[42]]
    # The second server checks its own cookie's XSRF token: a cross-site POST is refused there.
    forged = browser.post(second.url + "archive/api/query", json=query, timeout=30)
    assert forged.status_code == 403 and "error" in forged.json()


def test_a_paused_owner_means_503_naming_it(pair):
    owner, second, data = pair
    owner.proc.send_signal(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(2) as pool:
            native, tap = pool.map(lambda p: call(second, "GET", p, timeout=120), ["archive/api/contexts", "archive/tap/tables"])
    finally:
        owner.proc.send_signal(signal.SIGCONT)
    assert native.status_code == 503 and tap.status_code == 503
    message = native.json()["error"]["message"]
    assert f"pid {owner.proc.pid}" in message and owner.url in message and "--ArchiveApp.data_dir" in message
    assert "QUERY_STATUS" in tap.text and f"pid {owner.proc.pid}" in tap.text
    wait_for(lambda: call(second, "GET", "archive/api/contexts").status_code == 200, what="the owner to answer again")


# -- every route, with nobody to forward to -------------------------------------------------------
def sample_path(pattern: str) -> str:
    """A short path a route's pattern matches: the smallest repeat, the first branch, "1" where a class allows it."""

    def walk(items) -> str:
        out = ""
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out += chr(arg)
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, _high, sub = arg
                out += walk(sub) * max(low, 0)
            elif name == "SUBPATTERN":
                out += walk(arg[-1])
            elif name == "BRANCH":
                out += walk(arg[1][0])
            elif name in ("IN", "ANY", "NOT_LITERAL"):
                out += next(c for c in "1x" if re.fullmatch(sre_pattern(op, arg), c))
            elif name != "AT":
                raise AssertionError(f"cannot sample {name} in {pattern}")
        return out

    # "+" and "*" of a group get one pass, so that "(?P<id>[^/]+)" gives "1", not "".
    sample = walk(sre_parse.parse(pattern.replace("+", "{1}").replace("*", "{1}")))
    assert re.fullmatch(pattern, sample, re.IGNORECASE), (pattern, sample)
    return sample


def sre_pattern(op, arg) -> str:
    """One parsed character item back as a pattern (enough for the classes routes use)."""
    name = str(op)
    if name == "ANY":
        return "."
    if name == "NOT_LITERAL":
        return f"[^{re.escape(chr(arg))}]"
    parts, negate = [], ""
    for sub_op, sub_arg in arg:
        kind = str(sub_op)
        if kind == "NEGATE":
            negate = "^"
        elif kind == "LITERAL":
            parts.append(re.escape(chr(sub_arg)))
        elif kind == "RANGE":
            parts.append(f"{re.escape(chr(sub_arg[0]))}-{re.escape(chr(sub_arg[1]))}")
        elif kind == "CATEGORY":
            parts.append({"CATEGORY_DIGIT": r"\d", "CATEGORY_WORD": r"\w", "CATEGORY_SPACE": r"\s"}[str(sub_arg)])
    return f"[{negate}{''.join(parts)}]"


def archive_routes():
    """(pattern, handler class) of every archive route, in the order the server matches them."""
    from jupyter_archive.app import ArchiveApp

    return ArchiveApp.archive_handlers()


def implemented(cls) -> list[str]:
    """The HTTP methods a handler class answers itself (not tornado's 405 default)."""
    from tornado.web import RequestHandler

    return [m for m in cls.SUPPORTED_METHODS if m != "OPTIONS" and hasattr(cls, m.lower())
            and getattr(cls, m.lower()) is not getattr(RequestHandler, m.lower(), None)]


def expected_shape(cls, response: requests.Response) -> str:
    """The 503's message, after checking it has the shape of the face ``cls`` belongs to."""
    from jupyter_archive.faces.dax import DbservHandler

    ctype = response.headers.get("Content-Type", "")
    face = cls.face
    if face == "tap":
        assert "QUERY_STATUS" in response.text and 'value="ERROR"' in response.text
        return unescape(re.search(r'value="ERROR">(.*)</INFO>', response.text, re.DOTALL).group(1))
    if face in ("kasabi", "soda"):
        assert ctype.startswith("text/plain")
        return response.text.removeprefix("Error: ") if face == "soda" else response.text
    body = response.json()
    if face == "casjobs":
        assert body["Error Code"] == 503 and body["Error Type"] == "ServiceUnavailable"
        return body["Error Message"]
    if face == "quasar":
        return body["error"]
    if face == "dax":
        key = "error" if issubclass(cls, DbservHandler) else "exception"
        assert body[key] == "Unavailable"
        return body["message"]
    if face == "sas":
        assert body["httpStatusCode"] == 503 and "vnd.sas.error" in ctype
        return body["message"]
    if face == "auth":
        assert body["error"]["code"] == 503
        return body["error"]["message"]
    assert body["error"]["code"] == "unavailable"
    return body["error"]["message"]


def test_every_route_answers_503_in_its_shape_when_the_owner_is_no_server_then_it_is_taken_over(tmp_path, demo_dir):
    data = data_dir_with_demo(tmp_path, demo_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from jupyter_archive.core.ownership import DataDirLock; "
         "assert DataDirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)", str(data)],
        stdout=subprocess.PIPE, text=True,
    )
    second = None
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(data)
        second = launch("server", data, tmp_path, "second")
        second.wait("api/status", timeout=120)
        routes = archive_routes()
        for pattern, cls in routes:
            path = sample_path(pattern)
            # the handler the server picks for this path: the first route matching it
            chosen = next(c for p, c in routes if re.fullmatch(p, path, re.IGNORECASE))
            for method in implemented(cls):
                r = call(second, method, path, data=b"{}" if method in ("POST", "PUT", "PATCH") else None)
                assert r.status_code == 503, (method, path, r.status_code, r.text[:300])
                if method == "HEAD":
                    continue  # no body to show a shape
                message = expected_shape(chosen, r)
                assert f"pid {holder.pid}" in message and "--ArchiveApp.data_dir" in message and str(data) in message, message
        assert snapshot(data) == before  # the store was never touched
    finally:
        holder.kill()
        holder.wait()
    try:
        # The holder is gone: the second server takes the data dir over and serves the archive itself.
        wait_for(lambda: call(second, "GET", "archive/api/contexts").status_code == 200, what="the take-over")
        r = call(second, "POST", "archive/api/query", json={"query": "SELECT count(*) FROM PhotoObj", "context": "DEMO"})
        assert r.json()["data"] == [[DEMO_ROWS]]
        assert json.loads((data / NOTE_NAME).read_text())["pid"] == second.proc.pid
    finally:
        second.stop()


def test_a_killed_owners_running_job_fails_and_the_second_takes_over(tmp_path, demo_dir):
    data = data_dir_with_demo(tmp_path, demo_dir)
    owner = launch("archive", data, tmp_path, "owner", "--ArchiveApp.job_workers=1")
    second = None
    try:
        owner.wait(timeout=120)
        kept = call(owner, "POST", "archive/api/query", json={"query": "CREATE TABLE keep AS SELECT * FROM range(1000)", "context": "MyDB"})
        assert kept.status_code == 200, kept.text
        slow = call(owner, "POST", "archive/api/jobs", json={"query": SLOW, "context": "DEMO"}).json()
        wait_for(lambda: job_state(owner, slow["id"]) == "running", what="the job to run")
        second = launch("server", data, tmp_path, "second")
        second.wait(timeout=120)
        # The second server's start left the owner's running job alone.
        assert job_state(owner, slow["id"]) == "running" and job_state(second, slow["id"]) == "running"
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait(20)
        job = wait_for(lambda: (r := call(second, "GET", f"archive/api/jobs/{slow['id']}")).status_code == 200 and r.json(),
                       what="the take-over")
        assert job["state"] == "failed" and job["error"]["message"] == "interrupted by server restart"
        keep = call(second, "POST", "archive/api/query", json={"query": "SELECT count(*) FROM keep", "context": "MyDB"})
        assert keep.json()["data"] == [[1000]]
        assert json.loads((data / NOTE_NAME).read_text())["url"] == second.url
    finally:
        for s in (second, owner):
            if s is not None:
                s.stop()


# -- settings that cannot be used ------------------------------------------------------------------
UNUSABLE = [  # (command, setting, value, the name the message gives)
    ("archive", "mounts", '[{"path": "/x", "type": "files", "location": "/tmp"', "ArchiveApp.mounts"),
    ("server", "mounts", '[{"path": "/x", "type": "duckdb", "location": "/no/such/file.duckdb"}]', "ArchiveApp.mounts[0]"),
    ("lab", "job_workers", "0", "ArchiveApp.job_workers"),
    ("archive", "data_dir", "/proc/no-such-dir/archive", "ArchiveApp.data_dir"),
]


def test_a_setting_that_cannot_be_used_stops_the_start_and_writes_nothing(tmp_path):
    def start(case):
        i, (app, setting, value, named) = case
        cwd, data = tmp_path / f"cwd{i}", tmp_path / f"data{i}"
        cwd.mkdir()
        settings = {"data_dir": str(data), setting: value}
        argv = [str(BIN / "jupyter"), app, "--no-browser", f"--port={free_port()}", "--ServerApp.ip=127.0.0.1",
                *root_flags(), *(f"--ArchiveApp.{k}={v}" for k, v in settings.items())]
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path / f"runtime{i}")}
        return cwd, data, named, subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=180, env=env)

    with ThreadPoolExecutor(2) as pool:  # each start is mostly imports
        for cwd, data, named, done in pool.map(start, enumerate(UNUSABLE)):
            assert done.returncode != 0
            assert f"the setting {named} cannot be used" in done.stderr, done.stderr[-2000:]
            assert list(cwd.iterdir()) == []  # nothing written outside the data dir
            assert not data.exists() or list(data.iterdir()) == []  # nor in it: the archive never started
