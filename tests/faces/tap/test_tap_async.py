"""Async TAP (UWS 1.1) and TAP uploads through the real server: pyvo, raw UWS, the native view of the jobs."""

from __future__ import annotations

import asyncio
import io
import time
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import requests
from astropy.io.votable import from_table, parse_single_table
from astropy.table import Table

from tests.support.faces import QUERY, in_thread, infos, rows, stilts_multipart, votlint

pyvo = pytest.importorskip("pyvo")

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


def votable_bytes(table: Table, fmt: str = "tabledata") -> bytes:
    buf = io.BytesIO()
    from_table(table).to_xml(buf, tabledata_format=fmt)
    return buf.getvalue()


def job_doc(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == UWS + "job" and root.get("version") == "1.1"
    return root


async def finished(fetch, job_id: str) -> ET.Element:
    """The job document once the job has left QUEUED/EXECUTING (WAIT-polled)."""
    doc = job_doc((await fetch("archive", "tap", "async", job_id, params={"WAIT": "30"})).body)
    while doc.findtext(UWS + "phase") in ("QUEUED", "EXECUTING"):
        doc = job_doc((await fetch("archive", "tap", "async", job_id, params={"WAIT": "30"})).body)
    return doc


# -- pyvo ------------------------------------------------------------------------------------------


async def test_pyvo_run_async_and_job_lifecycle(tap_service, tap_session, demo_db):
    url, session = tap_session
    svc = tap_service

    def work():
        res = svc.run_async(QUERY)
        job = svc.submit_job("SELECT TOP 3 objid FROM demo.PhotoObj ORDER BY objid", maxrec=2)
        pending = job.phase
        job.run()
        job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
        job.raise_if_error()
        table = job.fetch_result().to_table()
        listed = [j.jobid for j in svc.get_job_list(phases=["COMPLETED"])]
        job_id = job.job_id
        job.delete()
        return res, pending, table, listed, job_id

    res, pending, table, listed, job_id = await in_thread(work)
    expected = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 5").fetchall()
    assert [tuple(r) for r in res.to_table()] == expected
    assert pending == "PENDING"
    assert list(table["objid"]) == [r[0] for r in expected[:2]]
    assert str(job_id) in listed
    gone = await in_thread(lambda: session.get(f"{url}/async/{job_id}"))
    assert gone.status_code == 404


async def test_pyvo_async_errors_and_abort(tap_service):
    svc = tap_service

    def work():
        bad = svc.submit_job("SELECT nope FROM demo.PhotoObj")
        bad.run()
        bad.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
        with pytest.raises(pyvo.dal.DALQueryError) as err:
            bad.raise_if_error()
        slow = svc.submit_job("SELECT count(*) AS n FROM demo.PhotoObj a, demo.PhotoObj b, demo.PhotoObj c")
        slow.run()
        slow.abort()
        deadline = time.monotonic() + 30
        while slow.phase != "ABORTED" and time.monotonic() < deadline:  # pyvo cannot wait() for ABORTED
            time.sleep(0.1)
        return bad.phase, str(err.value), slow.phase

    bad_phase, message, slow_phase = await in_thread(work)
    assert bad_phase == "ERROR" and "nope" in message
    assert slow_phase == "ABORTED"


async def test_pyvo_uploads_sync_async_and_by_url(tap_service, demo_db):
    svc = tap_service
    first = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 3").fetchall()
    mine = Table({"id": [1, 2, 3], "ra": [r[1] for r in first], "dec": [r[2] for r in first]})
    mine["ra"].unit = "deg"
    join = ("SELECT m.id, p.objid FROM TAP_UPLOAD.mine AS m JOIN demo.PhotoObj AS p "
            "ON CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', m.ra, m.dec, 1.0/3600)) = 1 ORDER BY m.id")

    def work():
        plain = svc.run_sync("SELECT * FROM TAP_UPLOAD.mine ORDER BY id", uploads={"mine": mine})
        matched = svc.run_sync(join, uploads={"mine": mine})
        async_matched = svc.run_async(join, uploads={"mine": mine})
        job = svc.submit_job("SELECT TOP 2 objid, ra, dec FROM demo.PhotoObj ORDER BY objid")
        job.run().wait(phases=["COMPLETED", "ERROR"], timeout=60)
        again = svc.run_sync("SELECT objid FROM TAP_UPLOAD.prev ORDER BY objid", uploads={"prev": job})
        return plain.to_table(), matched.to_table(), async_matched.to_table(), again.to_table()

    plain, matched, async_matched, again = await in_thread(work)
    assert list(plain["id"]) == [1, 2, 3] and np.allclose(plain["ra"], mine["ra"])
    assert str(plain["ra"].unit) == "deg"
    expected = [(i + 1, r[0]) for i, r in enumerate(first)]
    assert [tuple(r) for r in matched] == expected and [tuple(r) for r in async_matched] == expected
    assert list(again["objid"]) == [r[0] for r in first[:2]]


# -- UWS by hand -----------------------------------------------------------------------------------


def form(params: dict) -> dict:
    return {"method": "POST", "body": urllib.parse.urlencode(params), "follow_redirects": False,
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


async def test_uws_resources(fetch, jp_base_url):
    created = await fetch("archive", "tap", "async", **form(
        {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUERY, "RUNID": "R-1", "DUMMY": "x"}))
    assert created.code == 303
    location = created.headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    assert location.endswith(f"{jp_base_url}archive/tap/async/{job_id}")
    doc = job_doc((await fetch("archive", "tap", "async", job_id)).body)
    assert doc.findtext(UWS + "jobId") == job_id and doc.findtext(UWS + "runId") == "R-1"
    assert doc.findtext(UWS + "phase") == "PENDING"
    params = {p.get("id"): p.text for p in doc.iter(UWS + "parameter")}
    assert params["request"] == "doQuery" and params["query"] == QUERY and params["runid"] == "R-1"
    assert [c.tag.removeprefix(UWS) for c in doc][:6] == ["jobId", "runId", "ownerId", "phase", "quote", "creationTime"]

    async def part(name):
        resp = await fetch("archive", "tap", "async", job_id, name)
        assert resp.code == 200, (name, resp.body)
        return resp

    phase = await part("phase")
    assert phase.body == b"PENDING" and phase.headers["Content-Type"].startswith("text/plain")
    assert (await part("executionduration")).body == b"0"
    assert (await part("quote")).body == b""
    # setters answer 303 to the job and show in the document
    for name, value in (("executionduration", {"EXECUTIONDURATION": "120"}), ("destruction", {"DESTRUCTION": "2099-01-02T03:04:05Z"}),
                        ("parameters", {"runId": "R-2", "MAXREC": "3"})):
        resp = await fetch("archive", "tap", "async", job_id, name, **form(value))
        assert resp.code == 303 and resp.headers["Location"] == location, (name, resp.body)
    assert (await part("executionduration")).body == b"120"
    assert (await part("destruction")).body.startswith(b"2099-01-02T03:04:05")
    doc = job_doc((await fetch("archive", "tap", "async", job_id)).body)
    assert doc.findtext(UWS + "runId") == "R-2" and doc.findtext(UWS + "executionDuration") == "120"
    assert (await fetch("archive", "tap", "async", job_id, "results", "result")).code == 404
    assert (await fetch("archive", "tap", "async", job_id, "phase", **form({"PHASE": "SUSPEND"}))).code == 400
    run = await fetch("archive", "tap", "async", job_id, "phase", **form({"PHASE": "RUN"}))
    assert run.code == 303
    doc = job_doc((await fetch("archive", "tap", "async", job_id, params={"WAIT": "-1"})).body)
    if doc.findtext(UWS + "phase") != "COMPLETED":  # WAIT returns at each phase change
        doc = job_doc((await fetch("archive", "tap", "async", job_id, params={"WAIT": "30", "PHASE": "EXECUTING"})).body)
    assert doc.findtext(UWS + "phase") == "COMPLETED"
    href = doc.find(f"{UWS}results/{UWS}result").get("{http://www.w3.org/1999/xlink}href")
    assert href == location + "/results/result"
    result = await fetch("archive", "tap", "async", job_id, "results", "result")
    assert len(rows(result.body)) == 3 and ("QUERY_STATUS", "OVERFLOW", "") in infos(result.body)
    # changing a started job is refused; the error resource exists only for failed jobs
    late = await fetch("archive", "tap", "async", job_id, "parameters", **form({"QUERY": "SELECT 1"}))
    assert late.code == 400 and "pending" in infos(late.body)[0][2]
    assert (await fetch("archive", "tap", "async", job_id, "error")).code == 404
    # the job is a job of the one job system: the native API shows it
    native = await fetch("archive", "api", "jobs", job_id)
    assert native.code == 200 and b'"face": "tap"' in native.body.replace(b'":"', b'": "')
    deleted = await fetch("archive", "tap", "async", job_id, **form({"ACTION": "DELETE"}))
    assert deleted.code == 303 and deleted.headers["Location"].endswith("archive/tap/async")
    assert (await fetch("archive", "tap", "async", job_id)).code == 404


async def test_uws_run_at_creation_error_and_delete(fetch):
    created = await fetch("archive", "tap", "async", **form({"LANG": "ADQL", "QUERY": "SELECT FROM WHERE", "PHASE": "RUN"}))
    job_id = created.headers["Location"].rsplit("/", 1)[1]
    doc = await finished(fetch, job_id)
    assert doc.findtext(UWS + "phase") == "ERROR"
    assert doc.find(f"{UWS}errorSummary/{UWS}message").text
    err = await fetch("archive", "tap", "async", job_id, "error")
    assert err.code == 200 and infos(err.body)[0][1] == "ERROR"
    deleted = await fetch("archive", "tap", "async", job_id, method="DELETE", follow_redirects=False)
    assert deleted.code == 303
    assert (await fetch("archive", "tap", "async", job_id)).code == 404
    # a bad parameter still makes a job (UWS); running it fails with the message
    bad = await fetch("archive", "tap", "async", **form({"LANG": "OOBLECK", "QUERY": QUERY, "PHASE": "RUN"}))
    assert bad.code == 303
    bad_id = bad.headers["Location"].rsplit("/", 1)[1]
    doc = await finished(fetch, bad_id)
    assert doc.findtext(UWS + "phase") == "ERROR" and "OOBLECK" in doc.find(f"{UWS}errorSummary/{UWS}message").text


async def test_wait_blocks_until_the_phase_changes(fetch):
    created = await fetch("archive", "tap", "async", **form({"LANG": "ADQL", "QUERY": QUERY}))
    job_id = created.headers["Location"].rsplit("/", 1)[1]
    waiting = asyncio.ensure_future(fetch("archive", "tap", "async", job_id, params={"WAIT": "30"}))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # PENDING is an active phase: WAIT blocks
    await fetch("archive", "tap", "async", job_id, "phase", **form({"PHASE": "RUN"}))
    doc = job_doc((await asyncio.wait_for(waiting, 30)).body)
    assert doc.findtext(UWS + "phase") != "PENDING"
    # not active: WAIT answers at once
    final = job_doc((await fetch("archive", "tap", "async", job_id, params={"WAIT": "-1", "PHASE": "EXECUTING"})).body)
    assert final.findtext(UWS + "phase") in ("QUEUED", "EXECUTING", "COMPLETED")


# -- uploads by hand -------------------------------------------------------------------------------


@pytest.mark.parametrize("serialization", ["tabledata", "binary"])
async def test_stilts_style_upload_keeps_types_and_nulls(fetch, serialization):
    t = Table({"d_short": np.array([1, 2], np.int16), "d_long": np.array([10, 20], np.int64),
               "d_double": [1.5, np.nan], "d_string": ["a", "bé"], "d_time": ["2024-01-02T03:04:05", "2025-06-07T08:09:10.5"]},
              masked=True)
    t["d_long"].mask = [False, True]
    vot = from_table(t)
    vot.get_first_table().get_field_by_id("d_time").xtype = "timestamp"
    vot.get_first_table().get_field_by_id("d_long").values.null = -999  # what STILTS declares for BINARY
    vot.version = "1.2"
    buf = io.BytesIO()
    vot.to_xml(buf, tabledata_format=serialization)
    ctype, body = stilts_multipart(
        {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.up ORDER BY d_short", "UPLOAD": "up,param:upload_up",
         "FORMAT": "votable/td"},
        {"upload_up": buf.getvalue()},
    )
    resp = await fetch("archive", "tap", "sync", method="POST", body=body, headers={"Content-Type": ctype})
    assert resp.code == 200, resp.body
    table = parse_single_table(io.BytesIO(resp.body))
    fields = {f.name: (f.datatype, f.xtype) for f in table.fields}
    assert fields["d_short"][0] == "short" and fields["d_long"][0] == "long" and fields["d_time"] == ("char", "timestamp")
    got = table.to_table()
    assert list(got["d_string"]) == ["a", "bé"] and got["d_long"].mask.tolist() == [False, True]
    assert list(got["d_time"]) == ["2024-01-02T03:04:05", "2025-06-07T08:09:10.5"]


@pytest.mark.parametrize(("upload", "files", "text"), [
    ("up,param:missing", {}, "no part named 'missing'"),
    ("up,ftp://x/y", {}, "unsupported URI"),
    ("up,http://elsewhere.example/t.vot", {}, "not a result of this service"),
    ("1up,param:p", {"p": b"<x/>"}, "must be a letter"),
    ("up,param:p", {"p": b"not xml"}, "not a valid VOTable"),
])
async def test_bad_uploads_are_clear_errors(fetch, upload, files, text):
    ctype, body = stilts_multipart({"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.up", "UPLOAD": upload}, files)
    resp = await fetch("archive", "tap", "sync", method="POST", body=body, headers={"Content-Type": ctype})
    assert resp.code == 400 and text in infos(resp.body)[0][2], resp.body
    missing = await fetch("archive", "tap", "sync", params={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.nothing"})
    assert missing.code == 400 and "TAP_UPLOAD.nothing" in infos(missing.body)[0][2]


# -- anonymous access ------------------------------------------------------------------------------


@pytest.fixture
def archive_config():
    return {"allow_anonymous": True}


async def test_anonymous_async_jobs_are_their_own(jp_serverapp, http_server_client, jp_http_port, jp_base_url, jp_auth_header):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}archive/tap"

    def work():
        anon = pyvo.dal.TAPService(url)  # no token at all, like TOPCAT
        res = anon.run_async("SELECT TOP 2 objid FROM demo.PhotoObj")
        pending = anon.submit_job("SELECT TOP 1 objid FROM demo.PhotoObj").phase
        user = requests.Session()
        user.headers.update(jp_auth_header)
        theirs = user.post(f"{url}/async", data={"LANG": "ADQL", "QUERY": "SELECT 1 AS x"}, allow_redirects=False)
        seen_by_anonymous = requests.get(theirs.headers["Location"]).status_code
        listed = requests.get(f"{url}/async").text
        return len(res), pending, seen_by_anonymous, theirs.headers["Location"].rsplit("/", 1)[1], listed

    n, pending, seen_by_anonymous, their_id, listed = await in_thread(work)
    assert n == 2 and pending == "PENDING"
    assert seen_by_anonymous == 404 and f'id="{their_id}"' not in listed and "jobref" in listed


async def test_votlint_accepts_async_results_and_errors(fetch, tmp_path):

    for fmt in ("votable/td", "votable"):
        created = await fetch("archive", "tap", "async", **form({"LANG": "ADQL", "QUERY": QUERY, "FORMAT": fmt, "PHASE": "RUN",
                                                                 "MAXREC": "2"}))
        job_id = created.headers["Location"].rsplit("/", 1)[1]
        await finished(fetch, job_id)
        result = await fetch("archive", "tap", "async", job_id, "results", "result")
        assert ("QUERY_STATUS", "OVERFLOW", "") in infos(result.body)
        assert votlint(tmp_path, result.body) == [], fmt
    failed = await fetch("archive", "tap", "async", **form({"LANG": "ADQL", "QUERY": "SELECT nope FROM demo.PhotoObj", "PHASE": "RUN"}))
    job_id = failed.headers["Location"].rsplit("/", 1)[1]
    await finished(fetch, job_id)
    assert votlint(tmp_path, (await fetch("archive", "tap", "async", job_id, "error")).body) == []


async def test_cross_match_with_an_upload_uses_the_catalog_index(archive, tmp_path, demo_db):
    from jupyter_archive.core.catalog import ANONYMOUS

    first = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 4").fetchall()
    path = tmp_path / "mine.vot"
    path.write_bytes(votable_bytes(Table({"id": [1, 2, 3, 4], "ra": [r[1] for r in first], "dec": [r[2] for r in first]})))
    uploads = archive.queries.uploads(ANONYMOUS, [{"name": "mine", "path": str(path)}])
    try:
        text = ("SELECT m.id, p.objid FROM TAP_UPLOAD.mine AS m JOIN demo.PhotoObj AS p "
                "ON CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', m.ra, m.dec, 2.0/3600)) = 1 ORDER BY m.id")
        result = archive.queries.query(ANONYMOUS, text, "adql", uploads=uploads)
        rows = [tuple(r.values()) for r in result.to_table().to_pylist()]
        compiled = result.compiled
    finally:
        uploads.close()
    assert rows == [(i + 1, r[0]) for i, r in enumerate(first)]
    engine_sql = compiled.statements[-1].sql
    assert "__xm_cell" in engine_sql  # the catalog joined on HEALPix cells (tests/core/sql/test_crossmatch.py)
