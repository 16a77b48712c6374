"""One validation layer for every face: values checked once (64-bit integers, UTF-8 text,
depth-limited JSON, times every face can show), errors in each face's own shape, bodies
refused from their headers, and every kind of job shown by every face that shows jobs.

``test_bad_input`` drives every route with generated bad input; these tests pin the classes
down one by one, the core's checks with generated values and the faces through the real server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import math
import re
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_archive.core import params, times
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.jobs.store import JobStore
from jupyter_archive.faces.dax_images import status_json

from tests.support import body_json
from tests.support.raw_http import Reply, Req, send
from tests.support.faces import FACES, shape_problem, stilts_multipart

GENERATED = settings(max_examples=300, deadline=None, derandomize=True, database=None)
HUGE = "999999999999999999999999999999"


# -- the core's checks, with generated values --------------------------------------------------------


@GENERATED
@given(st.integers() | st.text() | st.floats() | st.binary() | st.booleans() | st.none())
def test_integers_are_the_64_bits_stores_hold(value):
    try:
        n = params.integer("n", value if not isinstance(value, int) or isinstance(value, bool) else str(value))
    except ArchiveError as exc:
        assert exc.status == 400 and "n" in exc.message
        if isinstance(value, int) and not isinstance(value, bool):
            assert not params.INT64_MIN <= value <= params.INT64_MAX
        return
    assert n is None or params.INT64_MIN <= n <= params.INT64_MAX
    if isinstance(value, int) and not isinstance(value, bool):
        assert n == value
    assert params.integer("n", n) == n  # a JSON integer, the same


@GENERATED
@given(st.binary() | st.text())
def test_text_is_utf8_and_unicode_or_refused(value):
    try:
        out = params.text("q", value)
    except ArchiveError as exc:
        assert exc.status == 400
        return
    out.encode("utf-8")  # whatever it returns, a file, a database and a socket can take


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@GENERATED
@given(st.integers(1, 200), st.sampled_from(["[", '{"a":']))
def test_json_is_depth_limited(depth, opener):
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "1" + closer * depth
    if depth <= params.MAX_JSON_DEPTH:
        assert params.parse_json(text.encode()) is not None
    else:
        with pytest.raises(ArchiveError, match="levels deep"):
            params.parse_json(text.encode())


@GENERATED
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_json_never_fails_but_as_a_400(data):
    try:
        params.parse_json(data)
    except ArchiveError as exc:
        assert exc.status == 400


def test_json_the_interpreter_cannot_take():
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b'{"x": NaN}',
                 b'{"x": ' + b"9" * 5000 + b"}", b'{"x": "\\ud800"}', b'{"x": "\xff"}'):  # fmt: skip
        with pytest.raises(ArchiveError):
            params.parse_json(body)
    assert params.parse_json(b'{"a": "[{\\"]", "b": "\\ud83d\\ude00"}') == {"a": '[{"]', "b": "\U0001f600"}


# Every way a face shows a stored time.
SHOWN = [times.iso, times.local, times.dotnet_local, functools.partial(times.iso, timespec="seconds"),
         functools.partial(times.iso, timespec="microseconds"), times.http_date,
         lambda ts: status_json(type("J", (), {"id": 1, "state": "completed", "started": ts, "ended": ts, "progress": 1,
                                               "error_message": None})())]  # fmt: skip
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@GENERATED
@given(st.datetimes(timezones=st.none() | OFFSETS), st.sampled_from(["auto", "seconds", "milliseconds"]))
def test_a_time_that_parses_is_one_every_face_shows(when, timespec):
    text = when.isoformat(timespec=timespec)
    try:
        ts = times.parse("startTime", text)
    except ArchiveError as exc:
        assert exc.status == 400 and "startTime" in exc.message
        utc = when.replace(tzinfo=when.tzinfo or dt.timezone.utc)
        try:
            outside = not times.EARLIEST <= utc.timestamp() <= times.LATEST
        except OverflowError:
            outside = True
        assert outside, text
        return
    for show in SHOWN:
        show(ts)
    assert times.parse("t", times.iso(ts, "microseconds")) == pytest.approx(ts, abs=1e-6)


@GENERATED
@given(st.text(max_size=40) | st.floats() | st.integers())
def test_times_never_fail_but_as_a_400(value):
    try:
        ts = times.parse("t", value, seconds=True)
    except ArchiveError:
        return
    assert ts is None or math.isfinite(ts)


def test_the_job_store_keeps_only_times_every_face_can_show(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    try:
        for bad in (math.inf, math.nan, 1e20, -1e20, times.LATEST + 1, times.EARLIEST - 1):
            with pytest.raises(ArchiveError, match="outside the times|must be a time"):
                store.create("u", "query", {}, face="native", state="scheduled", scheduled=bad)
            job = store.create("u", "query", {}, face="native", state="pending", scheduled=None)
            with pytest.raises(ArchiveError):
                store.update(job.id, destruction=bad)
            assert store.get(job.id).destruction is None  # unchanged
        assert store.get(2**63) is None and store.get(str(2**64)) is None and store.get(-1) is None
        with pytest.raises(ArchiveError):
            store.list(offset=2**63)
        ok = store.create("u", "query", {}, face="native", state="scheduled", scheduled=times.LATEST)
        store.update(ok.id, destruction=times.EARLIEST)
        assert store.get(ok.id).scheduled == times.LATEST
    finally:
        store.close()


def test_faces_read_requests_through_the_one_layer():
    """No face reads a parameter, a body or a time by itself: faces/base does, through core.params
    and core.times, so a new parameter gets the same checks as every other."""
    raw = re.compile(r"get_(query_|body_)?arguments?\(|request\.(query_|body_)?arguments|json\.loads|fromisoformat|fromtimestamp")
    for path in FACES.rglob("*.py"):
        if path.relative_to(FACES).parts[0] != "base":
            hits = [line.strip() for line in path.read_text().splitlines() if raw.search(line)]
            assert not hits, (path.name, hits)


# -- through the server ------------------------------------------------------------------------------

USER = {"Authorization": ""}


@pytest.fixture
def bob(archive):
    return {**USER, "X-Auth-Token": archive.users.create_token("bob")}


def face_error(resp, face: str, status: int | None = None):
    assert resp.code < 500, resp.body
    if status is not None:
        assert resp.code == status, resp.body
    assert resp.code >= 400, resp.body
    reply = Reply(resp.code, {k.lower(): v for k, v in resp.headers.items()}, resp.body)
    assert shape_problem(face, reply) is None, resp.body
    return resp.body.decode()


# Every URL that names a job by id, with its face.
JOB_URLS = [
    ("native", ("archive", "api", "jobs", "{}")), ("native", ("archive", "api", "jobs", "{}", "log")),
    ("native", ("archive", "api", "jobs", "{}", "results")), ("casjobs", ("archive", "casjobs", "jobs", "{}")),
    ("sas", ("archive", "sas", "jobs", "{}")), ("sas", ("archive", "sas", "jobs", "{}", "state")),
    ("tap", ("archive", "tap", "async", "{}")), ("tap", ("archive", "tap", "async", "{}", "phase")),
    ("kasabi", ("archive", "kasabi", "dataset", "mydb", "jobs", "{}")),
    ("dax", ("archive", "dax", "image", "v0", "{}", "status")),
]  # fmt: skip


@pytest.mark.parametrize("job_id", [HUGE, str(2**63), "-" + HUGE, "0", "1_0", "%D9%A3"])
async def test_job_ids_no_job_can_have_are_unknown(fetch, job_id):
    for face, parts in JOB_URLS:
        if face == "dax" and not job_id.isdigit():
            continue  # the route takes digits only; anything else is another resource
        resp = await fetch(*[p.format(job_id) for p in parts])
        face_error(resp, face, 404)


@pytest.mark.parametrize("value", [HUGE, "-1", "1e400", "ten"])
async def test_paging_beyond_what_stores_hold_is_400(fetch, value):
    for face, parts, names in [
        ("native", ("archive", "api", "jobs"), ("offset", "limit")),
        ("native", ("archive", "api", "directives"), ("offset", "limit")),
        ("native", ("archive", "api", "contexts", "DEMO", "tables", "PhotoObj", "rows"), ("offset", "limit")),
        ("sas", ("archive", "sas", "jobs"), ("start", "limit")),
        ("sas", ("archive", "sas", "directives"), ("start", "limit")),
        ("dax", ("archive", "dax", "meta", "v0", "db", "L2"), ("start", "count")),
        ("quasar", ("archive", "quasar", "data", "fs", "demo", "PhotoObj"), ("offset", "limit")),
        ("tap", ("archive", "tap", "async"), ("LAST",)),
    ]:
        for name in names:
            msg = face_error(await fetch(*parts, params={name: value}), face, 400)
            assert name in msg
    if value != HUGE:  # a MAXREC over the hard limit is the hard limit (DALI)
        bad = await fetch("archive", "tap", "sync", params={"LANG": "ADQL", "QUERY": "SELECT 1 AS x", "MAXREC": value})
        assert "MAXREC" in face_error(bad, "tap", 400)


async def test_text_that_is_not_utf8_is_400_in_the_face_shape(fetch, jp_http_port, jp_base_url, jp_auth_header):
    for face, target in [
        ("quasar", "archive/quasar/query/fs/demo?q=SELECT%20%27%FF%27"),
        ("quasar", "archive/quasar/query/fs/demo?q=SELECT%201&var.x=%FF"),
        ("tap", "archive/tap/async?PHASE=%FF"),
        ("tap", "archive/tap/sync?LANG=ADQL&QUERY=SELECT%20%27%FF%27"),
        ("native", "archive/api/contexts/DEMO/tables/PhotoObj/rows?order=%FF"),
        ("native", "archive/api/jobs/%FF"),
        ("casjobs", "archive/casjobs/jobs?submittedFrom=%C3%28"),
        ("sas", "archive/sas/directives?sasFolderPath=%ED%A0%80"),
        ("dax", "archive/dax/meta/v0/db/L2?containing=%FF"),
        ("soda", "archive/soda/sync?ID=%FF"),
        ("kasabi", "archive/kasabi/dataset/%FF/jobs/1"),
    ]:
        path, _, query = target.partition("?")
        reply = await send(jp_http_port, jp_base_url, Req("GET", path, query.encode()), jp_auth_header)
        assert reply.status == 400 and shape_problem(face, reply) is None, (target, reply)
        assert b"UTF-8" in reply.body, (target, reply.body)


async def test_json_of_wrong_types_or_too_deep_is_400(fetch):
    deep = "[" * 100_000 + "]" * 100_000
    deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000
    cases = [
        ("native", ("archive", "api", "query"), {"query": "SELECT 1", "language": 5}, "language"),
        ("native", ("archive", "api", "query"), {"query": "SELECT 1", "limit": 2**64}, "limit"),
        ("native", ("archive", "api", "jobs"), {"query": "SELECT 1", "startTime": [1]}, "startTime"),
        ("native", ("archive", "api", "jobs"), {"query": "SELECT 1", "run": "perhaps"}, "run"),
        ("casjobs", ("archive", "casjobs", "contexts", "DEMO", "query"), {"Query": ["SELECT 1"]}, "Query"),
        ("casjobs", ("archive", "casjobs", "contexts", "DEMO", "jobs"), {"Query": "SELECT 1", "Estimate": 2**70}, "Estimate"),
        ("kasabi", ("archive", "kasabi", "dataset", "mydb", "jobs"), {"jobType": "reset", "startTime": {"t": 1}}, "startTime"),
        ("dax", ("archive", "dax", "db", "v0", "tap", "sync"), {"query": 5}, "query"),
    ]
    for face, parts, body, word in cases:
        method = "PUT" if parts[-1] == "jobs" and face == "casjobs" else "POST"
        msg = face_error(await fetch(*parts, method=method, body=json.dumps(body)), face, 400)
        assert word in msg, msg
        msg = face_error(await fetch(*parts, method=method, body=deep_object), face, 400)
        assert "levels deep" in msg
    # unauthenticated, and before anything else is looked at
    resp = await fetch("archive", "auth", "tokens", method="POST", body=deep, headers=USER)
    assert "levels deep" in face_error(resp, "auth", 400)
    resp = await fetch("archive", "quasar", "mount", "fs", "m", "", method="PUT", body=deep)
    assert "levels deep" in face_error(resp, "quasar", 400)
    resp = await fetch("archive", "sas", "directives", method="POST", body=deep)
    assert "levels deep" in face_error(resp, "sas", 400)


async def jobs_of(archive):
    return {j.id: j for j in archive.jobs.store.list()[0]}


async def test_times_are_checked_when_stored_and_shown_everywhere(fetch, archive):
    # a job with a DESTRUCTION no face could show later: refused, the job as it was
    resp = await fetch("archive", "tap", "async", method="POST", body=urlencode({"LANG": "ADQL", "QUERY": "SELECT 1 AS x"}),
                       follow_redirects=False)  # fmt: skip
    job_id = resp.headers["Location"].rsplit("/", 1)[1]
    before = await fetch("archive", "tap", "async", job_id)
    for value in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "10000-01-01", "2030-02-30"):
        bad = await fetch("archive", "tap", "async", job_id, "destruction", method="POST", body=urlencode({"DESTRUCTION": value}))
        message = face_error(bad, "tap", 400)
        assert "DESTRUCTION" in message and value in message  # what the caller wrote, not a number of seconds
    assert (await fetch("archive", "tap", "async", job_id)).body == before.body
    # a Kasabi startTime no face could show: refused, and no job made
    jobs = await jobs_of(archive)
    bad = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST",
                      body=urlencode({"jobType": "reset", "startTime": "9999-12-31T23:59:59-23:59"}))  # fmt: skip
    assert "startTime" in face_error(bad, "kasabi", 400)
    bad = await fetch("archive", "api", "jobs", method="POST", body=json.dumps({"query": "SELECT 1", "startTime": 1e300}))
    assert "startTime" in face_error(bad, "native", 400)
    assert await jobs_of(archive) == jobs

    # the last and first times the archive keeps: stored, and shown by every face that shows the job
    far = await fetch("archive", "tap", "async", job_id, "destruction", method="POST",
                      body=urlencode({"DESTRUCTION": "9999-12-30T23:59:59Z"}), follow_redirects=False)  # fmt: skip
    assert far.code == 303
    assert b"<uws:destruction>9999-12-30T23:59:59.000Z</uws:destruction>" in (await fetch("archive", "tap", "async", job_id)).body
    late = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST",
                       body=urlencode({"jobType": "reset", "startTime": "9999-12-30T23:59:59+00:00"}))  # fmt: skip
    assert late.code == 202, late.body
    reset_id = late.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    early = await fetch("archive", "api", "jobs", method="POST",
                        body=json.dumps({"query": "SELECT 1 AS x", "startTime": "0001-01-02T00:00:00Z", "run": False}))  # fmt: skip
    assert early.code == 201, early.body
    early_id = str(body_json(early)["id"])
    status = body_json(await fetch("archive", "kasabi", "dataset", "mydb", "jobs", reset_id))
    assert status["startTime"] == "9999-12-30T23:59:59Z" and status["status"] == "scheduled"
    for jid in (job_id, reset_id, early_id):
        assert (await fetch("archive", "casjobs", "jobs", jid)).code == 200
        assert (await fetch("archive", "api", "jobs", jid)).code == 200
    assert (await fetch("archive", "casjobs", "jobs")).code == 200
    assert (await fetch("archive", "tap", "async")).code == 200


async def test_every_face_shows_every_kind_of_job(fetch, archive, jp_base_url):
    """One job of each kind, of each face that makes jobs; every face that shows jobs lists and reads them all."""
    made = {}
    resp = await fetch("archive", "api", "jobs", method="POST", body=json.dumps({"query": "SELECT 1 AS x"}))
    made["query"] = body_json(resp)["id"]
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT", body=json.dumps({"Query": "SELECT 1 AS x"}))
    made["casjobs"] = int(resp.body)
    resp = await fetch("archive", "quasar", "query", "fs", "mydb", "", method="POST", body="SELECT 1 AS x",
                       headers={"Destination": "/mydb/q"})  # fmt: skip
    assert resp.code == 200, resp.body
    made["quasar"] = max(await jobs_of(archive))
    resp = await fetch("archive", "tap", "async", method="POST", follow_redirects=False,
                       body=urlencode({"LANG": "ADQL", "QUERY": "SELECT 1 AS x", "PHASE": "RUN"}))  # fmt: skip
    made["tap"] = int(resp.headers["Location"].rsplit("/", 1)[1])
    resp = await fetch("archive", "sas", "directives", method="POST", body=json.dumps({"name": "d", "query": "SELECT 1 AS x"}))
    directive = body_json(resp)["id"]
    resp = await fetch("archive", "sas", "jobs", method="POST", params={"directive": directive}, body="")
    made["directive"] = int(body_json(resp)["id"])
    resp = await fetch("archive", "kasabi", "dataset", "mydb", "jobs", method="POST",
                       body=urlencode({"jobType": "reset", "startTime": "2999-01-01T00:00:00Z"}))  # fmt: skip
    made["reset"] = int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    resp = await fetch("archive", "dax", "image", "v0", "L2", "DEMO", "calexp", "1000", "cutout", method="POST",
                       body=urlencode({"x": 10, "y": 10, "width": 8, "height": 8}))  # fmt: skip
    made["cutout"] = int(body_json(resp)["id"])
    for _ in range(200):  # everything that runs has ended (the reset waits for 2999)
        if all(j.final or j.state == "scheduled" for j in (await jobs_of(archive)).values()):
            break
        await asyncio.sleep(0.05)
    jobs = await jobs_of(archive)
    assert {jobs[i].kind for i in made.values()} == {"query", "directive", "reset", "cutout"}

    native = body_json(await fetch("archive", "api", "jobs"))["jobs"]
    assert {j["id"] for j in native} == set(made.values())
    cas = body_json(await fetch("archive", "casjobs", "jobs"))
    assert {j["JobID"] for j in cas} == set(made.values())
    assert {j["OutputType"] for j in cas} == {"QUERY", "RESET", "CUTOUT"}
    sas = body_json(await fetch("archive", "sas", "jobs"))
    assert [int(j["id"]) for j in sas["items"]] == [made["directive"]]
    uws = (await fetch("archive", "tap", "async")).body.decode()
    assert f'id="{made["tap"]}"' in uws and uws.count("<uws:jobref") == 1
    for what, jid in made.items():
        job = jobs[jid]
        assert body_json(await fetch("archive", "api", "jobs", str(jid)))["kind"] == job.kind
        cas_job = body_json(await fetch("archive", "casjobs", "jobs", str(jid)))
        assert cas_job["JobID"] == jid and cas_job["Query"], cas_job
        own = {"sas": job.kind == "directive" and job.face == "sas", "tap": job.face == "tap", "kasabi": job.kind == "reset",
               "dax": job.kind == "cutout"}  # fmt: skip
        for face, parts in [("sas", ("archive", "sas", "jobs", str(jid))), ("tap", ("archive", "tap", "async", str(jid))),
                            ("kasabi", ("archive", "kasabi", "dataset", "mydb", "jobs", str(jid))),
                            ("dax", ("archive", "dax", "image", "v0", str(jid), "status"))]:  # fmt: skip
            resp = await fetch(*parts)
            if own[face]:
                assert resp.code == 200, (what, face, resp.body)
            else:
                face_error(resp, face, 404)


async def test_an_answer_the_caller_cannot_take_changes_nothing(fetch, archive):
    resp = await fetch("archive", "sas", "directives", method="POST", body=json.dumps({"name": "d", "query": "SELECT 1 AS x"}))
    directive = body_json(resp)["id"]
    jobs = await jobs_of(archive)
    png = {"Accept": "image/png"}
    resp = await fetch("archive", "sas", "jobs", method="POST", params={"directive": directive}, body="", headers=png)
    face_error(resp, "sas", 406)
    resp = await fetch("archive", "sas", "directives", method="POST", body=json.dumps({"name": "e", "query": "SELECT 1"}), headers=png)
    face_error(resp, "sas", 406)
    assert await jobs_of(archive) == jobs
    assert [d["name"] for d in body_json(await fetch("archive", "api", "directives"))["directives"]] == ["d"]


# -- TAP bodies --------------------------------------------------------------------------------------

VOT_NO_FIELD = b"""<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE><TABLE><DATA><TABLEDATA></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"""
VOT_NAMELESS = b"""<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE><TABLE><FIELD name="" datatype="int"/>
<DATA><TABLEDATA><TR><TD>1</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"""
VOT_NO_TABLE = b"""<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE/></VOTABLE>"""


@pytest.mark.parametrize("vot", [VOT_NO_FIELD, VOT_NAMELESS, VOT_NO_TABLE], ids=["no-field", "nameless-field", "no-table"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_uploads_the_engine_cannot_load_are_400(fetch, vot, mode):
    ctype, body = stilts_multipart({"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.up", "UPLOAD": "up,param:p",
                                    "PHASE": "RUN"}, {"p": vot})  # fmt: skip
    resp = await fetch("archive", "tap", mode, method="POST", body=body, headers={"Content-Type": ctype}, follow_redirects=False)
    if mode == "sync":
        assert "UPLOAD up" in face_error(resp, "tap", 400)
        return
    # async: UWS makes the job; it fails with the same message
    assert resp.code == 303, resp.body
    job_id = resp.headers["Location"].rsplit("/", 1)[1]
    for _ in range(20):  # WAIT returns at each change of phase
        resp = await fetch("archive", "tap", "async", job_id, params={"WAIT": "30"})
        if b"<uws:phase>QUEUED" not in resp.body and b"<uws:phase>EXECUTING" not in resp.body:
            break
    assert b"<uws:phase>ERROR</uws:phase>" in resp.body and b"UPLOAD up" in resp.body, resp.body


@pytest.mark.parametrize("archive_config", [{"upload_limit": 10_000}])
async def test_tap_bodies_over_the_limit_are_413(fetch, archive_config, jp_http_port, jp_base_url, jp_auth_header):
    big = urlencode({"LANG": "ADQL", "QUERY": "SELECT 1 AS x -- " + "x" * 20_000})
    for parts in (("sync",), ("async",), ("async", "1", "parameters")):
        resp = await fetch("archive", "tap", *parts, method="POST", body=big)
        assert "upload limit" in face_error(resp, "tap", 413)

        async def chunks(write):
            for _ in range(30):
                await write(b"QUERY=" + b"x" * 1000 + b"&")

        resp = await fetch("archive", "tap", *parts, method="POST", body_producer=chunks)
        face_error(resp, "tap", 413)
    # a declared size over the limit is answered from the headers, before any byte of the body
    reply = await send(jp_http_port, jp_base_url, Req("POST", "archive/tap/sync", declared=10**12), jp_auth_header, timeout=10)
    assert reply.status == 413 and shape_problem("tap", reply) is None, reply


async def test_unauthenticated_tap_posts_are_refused_from_the_headers(fetch, jp_http_port, jp_base_url):
    # anonymous use is off: nothing of the body is read before the refusal
    for path in ("archive/tap/sync", "archive/tap/async", "archive/tap/async/1/parameters"):
        for auth in ({}, {"X-Auth-Token": "not-a-token"}):
            reply = await send(jp_http_port, jp_base_url, Req("POST", path, declared=500 << 20), auth, timeout=10)
            assert reply.status in (401, 403) and shape_problem("tap", reply) is None, (path, reply)


async def test_a_refused_body_leaves_nothing_behind(fetch, archive):
    ctype, body = stilts_multipart({"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.up", "UPLOAD": "up,param:p"},
                                   {"p": VOT_NO_FIELD})  # fmt: skip
    await fetch("archive", "tap", "sync", method="POST", body=body, headers={"Content-Type": ctype})
    staged = archive.data_dir / "tap_uploads"
    assert not staged.exists() or not any(staged.iterdir())
