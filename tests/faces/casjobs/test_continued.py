"""A CasJobs quick query that outgrows the quick time limit goes on as a CasJobs job (issue 18, point 1), through the
real server, called as SciScript-Python's CasJobs module calls it (requests, an X-Auth-Token, ``TaskName``).

``executeQuery`` gets CasJobs' error (its JSON shape, 400: as today's time-limit error) naming the JobID; the job is
followed with ``getJobStatus``/``waitForJob`` (``GET jobs/{id}``) to Status 5, its rows read at its ``OutputLoc``, and
it is listed by ``GET jobs`` and, once, by the query history. The caller's jobs at their limit: today's error, no job.
"""

from __future__ import annotations

import io
import json
import re
import time

import pandas as pd
import pytest
import requests

from tests.support.continued import CONFIG, NAMED, SAME
from tests.support.faces import in_thread

# The same query in T-SQL: SAME's rows.
ROWS = ("SELECT a.objid % 2 AS k, count(*) AS n FROM PhotoObj a, (SELECT TOP 20000 ra FROM PhotoObj ORDER BY objid) b "
        "WHERE a.ra + b.ra < 360 GROUP BY a.objid % 2 ORDER BY k")  # fmt: skip
ENDLESS = "SELECT count(*) AS n FROM range(10000000000000) a"


class CasJobs:
    """The calls of SciScript-Python's ``CasJobs`` module (``executeQuery``, ``getJobStatus``, ``waitForJob``,
    ``cancelJob``), as it sends them."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def execute_query(self, sql: str, context: str = "DEMO") -> requests.Response:
        headers = {"Content-Type": "application/json", "Accept": "application/json+array", "X-Auth-Token": self.token}
        body = json.dumps({"Query": sql, "TaskName": "SciScript-Python.CasJobs.executeQuery"}).encode()
        return requests.post(f"{self.url}contexts/{context}/query", data=body, headers=headers, stream=True,
                             params={"TaskName": "SciScript-Python.CasJobs.executeQuery"}, timeout=120)  # fmt: skip

    def job_status(self, job_id: int) -> dict:
        r = requests.get(f"{self.url}jobs/{job_id}", params={"TaskName": "SciScript-Python.CasJobs.getJobStatus"},
                         headers={"X-Auth-Token": self.token, "Content-Type": "application/json"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        return json.loads(r.content)

    def wait_for_job(self, job_id: int) -> dict:
        deadline = time.monotonic() + 60
        while int((job := self.job_status(job_id))["Status"]) not in (3, 4, 5) and time.monotonic() < deadline:
            time.sleep(0.1)  # SciScript polls every 5 s at least; a test needs no such patience
        return job

    def cancel_job(self, job_id: int) -> None:
        r = requests.delete(f"{self.url}jobs/{job_id}", params={"TaskName": "SciScript-Python.CasJobs.cancelJob"},
                            headers={"X-Auth-Token": self.token, "Content-Type": "application/json"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text

    def jobs(self) -> list[dict]:
        r = requests.get(f"{self.url}jobs", headers={"X-Auth-Token": self.token}, timeout=60)
        assert r.status_code == 200, r.text
        return json.loads(r.content)


@pytest.fixture
def casjobs(archive, jp_http_port, jp_base_url, http_server_client) -> CasJobs:
    return CasJobs(f"http://127.0.0.1:{jp_http_port}{jp_base_url}archive/casjobs/", archive.users.create_token("alice"))


def error_of(resp: requests.Response) -> str:
    """The ``Error Message`` of a CasJobs error (400, as today's time-limit error; SciScript raises on it)."""
    assert resp.status_code == 400, resp.text[:300]
    err = json.loads(resp.content)
    assert set(err) >= {"Error Code", "Error Type", "Error Message", "LogMessageID"} and err["Error Code"] == 400
    return err["Error Message"]


@pytest.mark.parametrize("archive_config", [CONFIG])
async def test_execute_query_past_the_limit_names_the_job_which_ends_with_the_rows(archive, archive_config, casjobs, demo_db, fetch):
    message = error_of(await in_thread(lambda: casjobs.execute_query(ROWS)))
    job_id, url = NAMED.search(message).groups()
    assert "time limit" in message and url == f"{casjobs.url}jobs/{job_id}", message
    running = await in_thread(lambda: casjobs.job_status(int(job_id)))
    assert running["JobID"] == int(job_id) and running["Status"] in (1, 5) and running["Query"] == ROWS
    assert running["Target"] == "DEMO" and running["TaskName"] == "SciScript-Python.CasJobs.executeQuery"
    done = await in_thread(lambda: casjobs.wait_for_job(int(job_id)))
    assert done["Status"] == 5 and done["Message"] == "Query Complete" and done["Rows"] == 2, done
    assert done["TimeStart"] and done["TimeEnd"] and done["OutputType"] == "QUERY"
    assert int(job_id) in [j["JobID"] for j in await in_thread(casjobs.jobs)]
    # its rows, where OutputLoc says (with the same token)
    out = await in_thread(lambda: requests.get(done["OutputLoc"], params={"format": "csv"}, headers={"X-Auth-Token": casjobs.token},
                                               timeout=60))  # fmt: skip
    assert out.status_code == 200, out.text[:300]
    assert list(pd.read_csv(io.StringIO(out.text)).itertuples(index=False, name=None)) == demo_db.sql(SAME).fetchall()
    job = archive.jobs.get(archive.users.user("alice"), job_id)
    assert job.face == "casjobs" and job.request["continued"] and job.request["context"] == "DEMO"
    # the query history lists it once, as its job
    r = await fetch("archive", "api", "history", params={"q": "TOP 20000"}, headers={"Authorization": "", "X-Auth-Token": casjobs.token})
    entries = json.loads(r.body)["history"]
    assert [(e["kind"], e["job"], e["face"], e["outcome"]) for e in entries] == [("job", int(job_id), "casjobs", "ok")], entries


@pytest.mark.parametrize("archive_config", [CONFIG])
async def test_a_full_job_slot_keeps_todays_error_and_cancel_job_stops_the_continued_run(archive, archive_config, casjobs):
    user = archive.users.user("alice")
    first = error_of(await in_thread(lambda: casjobs.execute_query(ENDLESS)))
    job_id = int(NAMED.search(first).group(1))
    count = archive.jobs.count(user)
    # jobs_per_user is 1: another quick query of alice's cannot go on as a job, and ends at the limit as before
    full = error_of(await in_thread(lambda: casjobs.execute_query(ENDLESS)))
    assert "time limit" in full and not NAMED.search(full) and archive.jobs.count(user) == count
    await in_thread(lambda: casjobs.cancel_job(job_id))
    assert (await in_thread(lambda: casjobs.wait_for_job(job_id)))["Status"] == 3
    ok = await in_thread(lambda: casjobs.execute_query("SELECT 1 AS one"))  # the engine is free again
    assert ok.status_code == 200 and json.loads(ok.content)["Result"][0]["Data"] == [[1]]
