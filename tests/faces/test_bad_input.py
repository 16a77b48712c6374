"""Generated bad input against every route of every face, through the real server.

The routes are the app's own handler table, each with the methods its handler implements;
the parameter names are those the faces read (gathered from their source). Hypothesis makes
the requests (reproducibly: a fixed seed per route) with bad path segments, bad query
parameters, bad headers and bad bodies, and they go out as raw bytes so that what no HTTP
library would send (bytes that are not UTF-8) reaches the server. For every reply:

* the status is below 500 and the connection answered;
* an error (>= 400) is in that face's own error shape;
* when a request that could write answered an error, the archive's data is unchanged
  (every SQLite store, every MyDB table, every file of the data dir).

``ARCHIVE_FUZZ_EXAMPLES=40 pytest tests/faces/test_bad_input.py`` makes a broader run.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
import string
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from tornado import web

import jupyter_archive
from jupyter_archive.core.images.cut import CUTOUT_PARAMETERS

from tests.support import body_json
from tests.support.faces import FACES, shape_problem
from tests.support.raw_http import Req, send

EXAMPLES = int(os.environ.get("ARCHIVE_FUZZ_EXAMPLES", "4"))  # per route and method
FUZZ_USER = "fuzzer"

# -- what the faces read ----------------------------------------------------------------------------

# Calls that read a parameter by name (the faces' layer in base.py, and dict reads of parsed ones).
_READERS = {"arg", "args", "int_arg", "number_arg", "bool_arg", "time_arg", "get", "body_field", "_param", "_arg", "pop", "page"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,39}")


def _names_in(source: str) -> set[str]:
    """Parameter names a face module reads: literal first arguments of reader calls, literal
    subscripts, and string constants listed in tuples (names a face loops over)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        consts = []
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in _READERS and node.args:
                consts.extend(node.args[: 2 if name == "page" else 1])  # page(start, limit, ...) reads two
        elif isinstance(node, ast.Subscript):
            consts.append(node.slice)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            consts.extend(node.elts)
        out |= {c.value for c in consts if isinstance(c, ast.Constant) and isinstance(c.value, str) and _NAME.fullmatch(c.value)}
    return out


def _module_names(module: str) -> set[str]:
    path = Path(jupyter_archive.__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return _names_in(path.read_text())


ALL_NAMES = sorted(set().union(*(_names_in(p.read_text()) for p in FACES.rglob("*.py"))) | set(CUTOUT_PARAMETERS))


def handler_names(cls) -> list[str]:
    """The names the handler's own modules read (its class and the archive classes it builds on)."""
    modules = {c.__module__ for c in cls.__mro__ if c.__module__.startswith("jupyter_archive.")}
    return sorted(set().union(*(_module_names(m) for m in modules)))


# -- bad values -------------------------------------------------------------------------------------
# Query-string values are raw bytes as they go on the wire (percent-escapes included).
NUMBERS = [b"99999999999999999999999999999", b"9223372036854775808", b"-9223372036854775809", b"-1", b"0", b"1e400",
           b"-1e400", b"NaN", b"inf", b"1.5", b"0x1F", b"1_000", b"%D9%A3", b"+", b"1" * 5000]  # fmt: skip
TEXTS = [b"%FF", b"\xff", b"%C3%28", b"%ED%A0%80", b"%00", b"%01%02", b"%0D%0A", b"..", b"..%2F..%2Fetc%2Fpasswd", b"%27",
         b"%22%3E%3C", b"a" * 5000, b"", b"%20", b"null", b"true", b"%7B%7D", b"%5B%5D", b"%E2%80%AE"]  # fmt: skip
TIMES = [b"9999-12-31T23:59:59-23:59", b"0001-01-01T00:00:00%2B23:59", b"10000-01-01", b"2030-02-30", b"2030-01-01T25:00:00",
         b"9999-12-31", b"0001-01-01", b"2030-01-01T00:00:00%2B25:00", b"T", b"1e308"]  # fmt: skip
GOOD = [b"1", b"10", b"2030-01-01T00:00:00Z", b"DEMO", b"MyDB", b"SELECT%20TOP%201%20objid%20FROM%20PhotoObj", b"ADQL",
        b"doQuery", b"RUN", b"ABORT", b"canceled", b"fits", b"png", b"csv", b"data", b"L2", b"151", b"1", b"reset"]  # fmt: skip
QUERY_VALUES = NUMBERS + TEXTS + TIMES + GOOD

# Good values of the parameters that gate the rest: with them a request gets past its first
# check, so that the bad values beside them are what it meets (a query, an image, a stencil).
GOOD_VALUES = {
    "query": "SELECT 1 AS x", "Query": "SELECT TOP 1 objid FROM PhotoObj", "QUERY": "SELECT TOP 1 objid FROM demo.PhotoObj",
    "q": "SELECT * FROM `PhotoObj`", "sql": "SELECT 1 AS x", "LANG": "ADQL", "REQUEST": "doQuery", "language": "sql",
    "context": "DEMO", "db": "DEMO", "ID": "L2/DEMO/calexp/1000", "POS": "CIRCLE 151 1 0.01", "CIRCLE": "151 1 0.01",
    "x": "10", "y": "10", "width": "8", "height": "8", "ra": "151", "dec": "1", "widthPix": "8", "heightPix": "8",
    "name": "fuzzed", "folderPath": "/fuzz", "value": "canceled", "PHASE": "RUN", "mode": "create", "format": "csv",
    "TableName": "Fuzz3", "CreateTable": "true", "plane": "data",
}  # fmt: skip

# Path segments (URL text): bad ones, and names that exist so that a request reaches its parameters.
BAD_SEGMENTS = [v.decode("latin-1") for v in NUMBERS + TEXTS[:12] if v and b"\xff" not in v] + ["%2E%2E", "~", "%25"]
GOOD_SEGMENTS = ["1", "2", "3", "DEMO", "MyDB", "mydb", "PhotoObj", "Fuzz", "L2", "calexp", "1000", "demo", "v0"]

JSON_VALUES = [10**30, -(10**30), 2**63, -1, 0, 1e308, 1.5, True, False, None, "", "x", "\ud800", "9999-12-31T23:59:59-23:59",
               [], {}, [1, [2]], {"a": {"b": 1}}, "a" * 5000, "SELECT 1", "MyDB", float("nan"), float("inf")]  # fmt: skip

DEEP = 100_000
BOUNDARY = "fuzzBoundary7"


@dataclass
class Route:
    pattern: str
    handler: type
    methods: list[str]
    names: list[str] = field(default_factory=list)


def routes_of(app) -> list[Route]:
    """Every route of the archive app and the methods its handler implements (not tornado's defaults)."""
    out = []
    for pattern, cls, *_ in app.handlers:
        methods = []
        for m in cls.SUPPORTED_METHODS:
            fn = getattr(cls, m.lower(), None)
            if fn is not None and fn is not getattr(web.RequestHandler, m.lower(), None) and fn.__module__.startswith("jupyter_archive"):
                methods.append(m)
        out.append(Route(pattern, cls, methods, handler_names(cls)))
    return out


def first_route(routes: list[Route], path: str) -> Route | None:
    """The route tornado gives a path to: the first of the table that matches it."""
    for r in routes:
        if re.match(r.pattern + "$", path):
            return r
    return None


# -- generation ---------------------------------------------------------------------------------------

_URL_CHARS = st.sampled_from(string.ascii_letters + string.digits + "-_.~/")


def _json_body(draw, names: list[str], good: dict[str, str]) -> bytes:
    keys = draw(st.lists(st.sampled_from(names), max_size=5))
    obj = {**good, **{k: draw(st.sampled_from(JSON_VALUES)) for k in keys}}
    return json.dumps(obj).encode()


def _pairs(draw, names: list[str], good: dict[str, str]) -> bytes:
    """``name=value&...``: the good values, then bad ones (mostly of the names this handler reads)."""
    pick = st.one_of(*[st.sampled_from(names)] * 4, st.sampled_from(ALL_NAMES))
    pairs = [(k, quote(v).encode()) for k, v in good.items()]
    pairs += draw(st.lists(st.tuples(pick, st.sampled_from(QUERY_VALUES)), max_size=6))
    return b"&".join(quote(k).encode() + b"=" + v for k, v in pairs)


def _multipart(draw, names: list[str], *, truncated: bool) -> bytes:
    parts = []
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3)):
        value = draw(st.sampled_from([b"\xff\xfe", b"x" * 100, b"<VOTABLE><RESOURCE><TABLE><DATA/></TABLE></RESOURCE></VOTABLE>", b""]))
        filename = '; filename="t.vot"' if draw(st.booleans()) else ""
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode() + value + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body[: len(body) // 2] if truncated else body


def draw_request(data, route: Route, method: str, paths: st.SearchStrategy[str], extra_good: dict[str, str]) -> Req:
    draw = data.draw
    path = draw(paths)
    m = re.fullmatch(route.pattern, path)
    spans = sorted(((m.start(g), m.end(g)) for g in m.groupdict() if m.start(g) >= 0), reverse=True)
    candidate = path
    for start, end in spans:
        kind = draw(st.sampled_from(["keep", "bad", "bad", "good"] if method not in ("DELETE", "MOVE") else ["keep", "bad"]))
        if kind != "keep":
            value = draw(st.sampled_from(BAD_SEGMENTS if kind == "bad" else GOOD_SEGMENTS + sorted(set(extra_good.values()))))
            candidate = candidate[:start] + value + candidate[end:]
    if re.fullmatch(route.pattern, candidate):
        path = candidate
    names = route.names or ALL_NAMES
    good = {k: v for k, v in {**GOOD_VALUES, **extra_good}.items() if k in names} if draw(st.booleans()) else {}
    query = _pairs(draw, names, good)
    headers = {}
    auth = draw(st.sampled_from(["admin", "admin", "user", "none", "bad-token"]))
    accept = draw(st.sampled_from([None, "*/*", "application/json", "text/html", "application/x-dataset", "image/png",
                                   "application/x-votable+xml", "garbage/;;", "application/vnd.sas.collection+json",
                                   "text/plain;q=abc", "application/vnd.sas.dataloader.job+json"]))  # fmt: skip
    if accept:
        headers["Accept"] = accept
    if draw(st.booleans()):
        headers["Destination"] = draw(st.sampled_from(["", "/", "..", "/mydb/../x", "/demo/x", "a" * 300, "/mydb/Fuzz2"]))
    if draw(st.booleans()):
        headers["If-Modified-Since"] = draw(st.sampled_from(["garbage", "Mon, 01 Jan 0001 00:00:00 +0100",
                                                             "Fri, 31 Dec 9999 23:59:59 -2359", "Thu, 01 Jan 1970 00:00:00 GMT"]))  # fmt: skip
    body, declared = None, None
    if method not in ("GET", "HEAD"):
        kind = draw(st.sampled_from(["none", "json", "json", "deep-array", "deep-object", "bad-utf8", "nan", "huge-int",
                                     "form", "multipart", "truncated-multipart", "garbage", "csv", "huge-length"]))  # fmt: skip
        ctype = {"json": "application/json", "deep-array": "application/json", "deep-object": "application/json",
                 "bad-utf8": "application/json", "nan": "application/json", "huge-int": "application/json",
                 "form": "application/x-www-form-urlencoded", "multipart": f"multipart/form-data; boundary={BOUNDARY}",
                 "truncated-multipart": f"multipart/form-data; boundary={BOUNDARY}", "garbage": "application/octet-stream",
                 "csv": "text/csv"}.get(kind)  # fmt: skip
        if kind == "json":
            body = _json_body(draw, names, good)
        elif kind == "deep-array":
            body = b"[" * DEEP + b"]" * DEEP
        elif kind == "deep-object":
            body = b'{"a":' * DEEP + b"1" + b"}" * DEEP
        elif kind == "bad-utf8":
            body = b'{"query": "SELECT \xff", "Query": "\xfe"}'
        elif kind == "nan":
            body = b'{"limit": NaN, "offset": Infinity, "startTime": -Infinity}'
        elif kind == "huge-int":
            body = b'{"limit": ' + b"9" * 5000 + b', "Estimate": ' + b"9" * 40 + b"}"
        elif kind == "form":
            body = _pairs(draw, names, good)
        elif kind in ("multipart", "truncated-multipart"):
            body = _multipart(draw, names, truncated=kind == "truncated-multipart")
        elif kind == "garbage":
            body = bytes(range(256))
        elif kind == "csv":
            body = b"a,b\n1,2\n\xff,\x00\n"
        elif kind == "huge-length":
            if method in ("POST", "PUT") and web._has_stream_request_body(route.handler):
                declared = 10**12  # a streamed body is refused from its headers; nothing follows
            else:
                body = b""
        if ctype and draw(st.integers(0, 5)) > 0:  # now and then the wrong label, or none
            headers["Content-Type"] = ctype
        elif draw(st.booleans()):
            headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/csv", "multipart/form-data", "x/y"]))
    return Req(method, path, query, headers, body, declared, auth)


def generate(route: Route, method: str, n: int, extra_good: dict[str, str]) -> list[Req]:
    """``n`` requests for one route and method, the same on every run (``extra_good``: more
    good values, such as the ids of what the test made)."""
    out: list[Req] = []
    paths = st.from_regex(route.pattern, fullmatch=True, alphabet=_URL_CHARS)

    @seed(zlib.crc32(f"{route.pattern} {method}".encode()))
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data):
        out.append(draw_request(data, route, method, paths, extra_good))

    collect()
    return out


# -- the archive's data ---------------------------------------------------------------------------------
# Columns that change while nothing is asked (a job runs on): compared once every job has ended.
_VOLATILE = {"jobs": {"progress"}}


def snapshot(archive, users: list[str], memo: dict) -> dict:
    """Everything a request could change: every table of every SQLite store, every MyDB table
    (columns and rows; ``memo`` keeps them while the MyDB's files stay as they were), and
    every other file of the data dir (path and size)."""
    out: dict = {}
    data = Path(archive.data_dir)
    for db in sorted(data.rglob("*.sqlite")):
        if db.name == "history.sqlite":
            continue  # the query history records what was asked, a failed query too (and writes it a moment later)
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
                cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")') if r[1] not in _VOLATILE.get(table, ())]
                rows = con.execute(f'SELECT {", ".join(cols)} FROM "{table}"').fetchall()
                out[f"{db.name}:{table}"] = sorted(map(repr, rows))
        finally:
            con.close()
    for name in users:
        # A MyDB's rows are read again only when its files changed (DuckDB writes them on commit).
        path = archive.catalog.mydb_path(archive.users.user(name))
        stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None
                      for p in (path, path.with_name(path.name + ".wal")))  # fmt: skip
        if memo.get(name, (None,))[0] != stamp:
            memo[name] = (stamp, mydb_rows(archive, name))
        out[f"mydb:{name}"] = memo[name][1]
    skip = re.compile(r".*\.(sqlite|sqlite-wal|sqlite-shm|duckdb|duckdb\.wal|wal)$")
    files = []
    for top in data.iterdir():
        if top.name in ("demo", "cache"):
            continue
        for p in [top] if top.is_file() else top.rglob("*"):
            if p.is_file() and not skip.match(p.name):
                files.append((str(p.relative_to(data)), p.stat().st_size))
    out["files"] = sorted(files)
    return out


def mydb_rows(archive, name: str) -> dict:
    """Every table of a user's MyDB: its columns and rows."""
    principal = archive.users.user(name)
    out = {}
    for t in archive.catalog.tables(principal, "MyDB"):
        result = archive.queries.query(principal, f'SELECT * FROM "{t.name}"', "sql", context="MyDB")
        try:
            rows = [b.to_pylist() for b in result.batches()]
        finally:
            result.close()
        out[t.name] = (result.schema.names, repr(rows))
    return out


def settle(archive, timeout: float = 30) -> None:
    """Stop what requests started: cancel every job that waits, wait for every one to end."""
    jobs, _ = archive.jobs.store.list()
    for job in jobs:
        if job.state in ("pending", "scheduled", "queued"):
            try:
                archive.jobs.runner.cancel(job.id)
            except Exception:  # noqa: BLE001 - it may have started meanwhile
                pass
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs, _ = archive.jobs.store.list()
        if all(j.final for j in jobs):
            return
        time.sleep(0.02)


# -- the test ------------------------------------------------------------------------------------------


@pytest.fixture
def archive_config():
    # anonymous callers reach every public read path; a small upload limit makes refused bodies cheap
    return {"allow_anonymous": True, "upload_limit": 100_000}


@pytest.fixture
def seeded(archive, fetch):
    """A user with a token, and something of every kind for requests to hit: jobs, a directive, a table."""

    async def make():
        token = archive.users.create_token(FUZZ_USER)
        user = {"X-Auth-Token": token, "Authorization": ""}
        resp = await fetch("archive", "api", "contexts", "MyDB", "tables", "Fuzz", method="PUT", body="a,b\n1,x\n2,y\n",
                           headers={**user, "Content-Type": "text/csv"})  # fmt: skip
        assert resp.code == 201, resp.body
        resp = await fetch("archive", "api", "jobs", method="POST", headers=user,
                           body=json.dumps({"query": "SELECT 1 AS one", "language": "sql"}))  # fmt: skip
        assert resp.code == 201, resp.body
        resp = await fetch("archive", "api", "directives", method="POST", headers=user,
                           body=json.dumps({"name": "d", "query": "SELECT 1 AS one", "folderPath": "/f"}))  # fmt: skip
        assert resp.code == 201, resp.body
        directive = body_json(resp)["id"]
        resp = await fetch("archive", "dax", "image", "v0", "L2", "DEMO", "calexp", "1000", "cutout", method="POST",
                           body="x=10&y=10&width=8&height=8", headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert resp.code == 202, resp.body
        return token, directive

    return make


async def test_bad_input_never_answers_5xx_and_changes_nothing(archive, seeded, jp_serverapp, jp_http_port, jp_base_url, jp_auth_header):
    token, directive = await seeded()
    settle(archive)
    app = jp_serverapp.web_app.settings["archive_app"]
    routes = routes_of(app)
    assert len(routes) > 50 and all(r.methods for r in routes), [r.pattern for r in routes if not r.methods]
    auth = {
        "admin": dict(jp_auth_header),
        "user": {"X-Auth-Token": token},
        "none": {},
        "bad-token": {"X-Auth-Token": "not-a-token"},
    }
    users, memo = [app.owner, FUZZ_USER], {}
    failures: list[str] = []
    sent = 0
    for route in routes:
        for method in route.methods:
            for req in generate(route, method, EXAMPLES, {"directive": directive}):
                writes = method not in ("GET", "HEAD")
                before = snapshot(archive, users, memo) if writes else None
                reply = await send(jp_http_port, jp_base_url, req, auth[req.auth])
                sent += 1
                reached = first_route(routes, req.path) or route
                problem = None
                if reply.status is None:
                    problem = reply.body.decode()
                elif reply.status >= 500:
                    problem = f"answered {reply.status}"
                elif b"Traceback" in reply.body:
                    problem = "a traceback in the answer"
                elif reply.status >= 400 and method != "HEAD":
                    problem = shape_problem(reached.handler.face, reply)
                if reply.status is None or reply.status < 400:
                    settle(archive)
                elif writes and problem is None:
                    after = snapshot(archive, users, memo)
                    if after != before:
                        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
                        problem = f"answered {reply.status} but changed {', '.join(changed)}"
                if problem:
                    failures.append(f"{problem}: {req.show()} -> {reply.status} {reply.body[:300]!r}")
    assert sent >= EXAMPLES * 100
    assert not failures, f"{len(failures)} of {sent} requests failed:\n" + "\n".join(failures[:40])
