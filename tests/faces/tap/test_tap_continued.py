"""A TAP sync query that outgrows the quick time limit goes on as a TAP async job (issue 18, point 1), through the
real server with pyvo.

The sync answer stays DALI's error (QUERY_STATUS ERROR, 400), naming the job and its URL; pyvo follows the job at
``tap/async/{id}`` to the query's rows. The limit is small and the query a cross join of the demo table, slow enough
to pass it (as in tests/faces/native/test_continued.py). Where no job can be made (the caller's jobs at their limit,
a query with uploads, which runs on an engine of its own), the error is today's, naming no job.
"""

from __future__ import annotations

import io
import json
import re

import pytest
import requests
from astropy.io.votable import from_table
from astropy.table import Table

from tests.support.continued import CONFIG, NAMED, SAME
from tests.support.faces import in_thread, infos

pyvo = pytest.importorskip("pyvo")

# The same query in ADQL: SAME's rows.
ROWS = ("SELECT MOD(a.objid, 2) AS k, COUNT(*) AS n FROM demo.PhotoObj AS a, "
        "(SELECT TOP 20000 ra FROM demo.PhotoObj ORDER BY objid) AS b WHERE a.ra + b.ra < 360 GROUP BY MOD(a.objid, 2) ORDER BY k")  # fmt: skip
ENDLESS = "SELECT COUNT(*) AS n FROM demo.PhotoObj AS a, demo.PhotoObj AS b, demo.PhotoObj AS c"


@pytest.fixture
def alice(archive, jp_http_port, jp_base_url):
    """(TAP URL, a requests session signed in as alice with an archive token, as a pyvo user would)."""
    s = requests.Session()
    s.headers.update({"X-Auth-Token": archive.users.create_token("alice")})
    yield f"http://127.0.0.1:{jp_http_port}{jp_base_url}archive/tap", s
    s.close()


def sync(url: str, session: requests.Session, query: str, **files) -> requests.Response:
    data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}
    if files:
        data["UPLOAD"] = ";".join(f"{name},param:{name}" for name in files)
    return session.post(f"{url}/sync", data=data, files=files or None, timeout=120)


def error_of(resp: requests.Response) -> str:
    """The message of a DALI error document (QUERY_STATUS ERROR, 400: as today's time-limit error)."""
    assert resp.status_code == 400, resp.text[:300]
    status = [i for i in infos(resp.content) if i[0] == "QUERY_STATUS"]
    assert status and status[0][1] == "ERROR", resp.text[:300]
    return status[0][2]


@pytest.mark.parametrize("archive_config", [CONFIG])
async def test_pyvo_run_sync_past_the_limit_names_the_async_job_and_follows_it_to_the_rows(archive, archive_config, alice, demo_db,
                                                                                           http_server_client, fetch):
    url, session = alice
    user = archive.users.user("alice")

    def work():
        svc = pyvo.dal.TAPService(url, session=session)
        with pytest.raises(pyvo.dal.DALQueryError) as err:
            svc.run_sync(ROWS)
        message = str(err.value)
        job_id, job_url = NAMED.search(message).groups()
        job = pyvo.dal.AsyncTAPJob(job_url, session=session)
        job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
        job.raise_if_error()
        listed = [j.jobid for j in svc.get_job_list()]
        return message, job_id, job_url, job.query, job.fetch_result().to_table(), listed

    message, job_id, job_url, query, table, listed = await in_thread(work)
    assert "time limit" in message and job_url == f"{url}/async/{job_id}", message
    assert query == ROWS and job_id in listed  # a TAP async job as a submitted one is
    assert [(r["k"], r["n"]) for r in table] == demo_db.sql(SAME).fetchall()
    job = archive.jobs.get(user, job_id)
    assert job.face == "tap" and job.request["continued"] and job.request["row_limit"] == 100_000
    assert job.request["tap"]["lang"] == "ADQL" and job.state == "completed"
    # the query history lists it once, as its job
    r = await fetch("archive", "api", "history", params={"q": "MOD(a.objid, 2)"}, headers={"Authorization": "", **session.headers})
    entries = json.loads(r.body)["history"]
    assert [(e["kind"], e["job"], e["face"], e["outcome"]) for e in entries] == [("job", int(job_id), "tap", "ok")], entries


@pytest.mark.parametrize("archive_config", [CONFIG])
async def test_no_job_when_the_callers_jobs_are_full_or_the_query_has_uploads(archive, archive_config, alice, http_server_client):
    url, session = alice
    user = archive.users.user("alice")
    first = error_of(await in_thread(lambda: sync(url, session, ENDLESS)))
    job_id, job_url = NAMED.search(first).groups()
    assert archive.jobs.get(user, job_id).state == "running"
    count = archive.jobs.count(user)
    # jobs_per_user is 1: another sync query of alice's cannot go on as a job, and ends at the limit as before
    full = error_of(await in_thread(lambda: sync(url, session, ENDLESS)))
    assert "time limit" in full and not NAMED.search(full) and archive.jobs.count(user) == count
    aborted = await in_thread(lambda: session.post(f"{job_url}/phase", data={"PHASE": "ABORT"}, timeout=60))
    assert aborted.status_code == 200  # after the 303 to the job
    job = await in_thread(lambda: session.get(job_url, params={"WAIT": "30", "PHASE": "EXECUTING"}, timeout=60))
    assert "<uws:phase>ABORTED</uws:phase>" in job.text
    # a query with an upload runs on an engine holding the uploaded table: the limit interrupts it, no job
    buf = io.BytesIO()
    from_table(Table({"id": [1, 2]})).to_xml(buf)
    slow = ENDLESS.replace("FROM", "FROM TAP_UPLOAD.mine AS m,")
    upload = error_of(await in_thread(lambda: sync(url, session, slow, mine=buf.getvalue())))
    assert "time limit" in upload and not NAMED.search(upload) and archive.jobs.count(user) == count
