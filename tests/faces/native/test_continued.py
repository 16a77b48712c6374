"""A quick query that outgrows the quick time limit goes on as a job (issue 18, point 1), through the real server.

The native API answers 202 with the job's JSON and Location; the same run (not a new one) ends as the job, whose
rows are the query's; the job is the caller's, cancellable, counted against the jobs' limits; the Python client
follows it to the rows. The opt-out keeps the time-limit error. The limit is small and the query a cross join of
the demo table, slow enough to pass it.
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import pyarrow as pa
import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_archive.client import ArchiveClient
from jupyter_archive.widgets import QueryEditor

from tests.support.continued import CONFIG, LIMIT, PAIRS, SAME

ROWS = SAME
# now() is when the statement's transaction began: a run started over after the limit could not begin before it.
BEGAN = f"SELECT a.objid % 2 AS k, count(*) AS n, min(epoch(now())) AS began {PAIRS}"
ENDLESS = "SELECT count(*) AS n FROM range(10000000000000) a"


def headers_for(token: str) -> dict:
    return {"Authorization": "", "X-Auth-Token": token, "Content-Type": "application/json"}


def query(fetch, token: str, sql: str, **extra):
    body = json.dumps({"query": sql, "context": "DEMO", **extra})
    return fetch("archive", "api", "query", method="POST", headers=headers_for(token), body=body, request_timeout=120)


async def job_of(fetch, token: str, job_id, wait: float = 0) -> dict:
    params = {"wait": str(wait)} if wait else None
    r = await fetch("archive", "api", "jobs", str(job_id), headers=headers_for(token), params=params, request_timeout=120)
    assert r.code == 200, r.body[:300]
    return json.loads(r.body)


async def ended(fetch, token: str, job_id) -> dict:
    for _ in range(60):
        job = await job_of(fetch, token, job_id, wait=5)
        if job["state"] in ("completed", "failed", "canceled"):
            return job
    raise AssertionError(f"job {job_id} did not end: {job}")


async def rows_of(fetch, token: str, job_id) -> pa.Table:
    arrow = {**headers_for(token), "Accept": "application/vnd.apache.arrow.stream"}
    r = await fetch("archive", "api", "jobs", str(job_id), "results", headers=arrow)
    assert r.code == 200, r.body[:300]
    return pa.ipc.open_stream(io.BytesIO(r.body)).read_all()


@pytest.mark.parametrize("archive_config", [CONFIG])
async def test_past_the_limit_the_same_run_goes_on_as_the_callers_job(fetch, archive, archive_config, demo_db, jp_http_port,
                                                                      jp_base_url, capsys):
    alice = archive.users.create_token("alice")
    sent = time.time()
    r = await query(fetch, alice, BEGAN)
    assert r.code == 202, r.body[:300]
    job = json.loads(r.body)
    assert r.headers["Location"] == job["links"]["self"] and job["links"]["self"].endswith(f"/archive/api/jobs/{job['id']}")
    assert job["kind"] == "query" and job["state"] == "running" and job["owner"] == "alice"
    assert job["request"]["query"] == BEGAN and job["request"]["continued"] is True
    # the request's turn on the quick workers was given back; the run counts as one of the jobs' workers
    assert archive.admission.running == 0
    assert job["id"] in archive.jobs.running_ids(archive.users.user("alice").ident)
    listed = json.loads((await fetch("archive", "api", "jobs", headers=headers_for(alice))).body)["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    done = await ended(fetch, alice, job["id"])
    assert done["state"] == "completed", done
    assert done["progress"] == 1.0 and done["rows"] == 2
    # the query history lists the run once, as the job it became (not also as a quick query)
    history = json.loads((await fetch("archive", "api", "history", params={"q": BEGAN}, headers=headers_for(alice))).body)["history"]
    assert [(e["kind"], e["job"], e["outcome"], e["rows"]) for e in history] == [("job", job["id"], "ok", 2)], history
    got = await rows_of(fetch, alice, job["id"])
    assert [(r["k"], r["n"]) for r in got.to_pylist()] == demo_db.sql(ROWS).fetchall()
    # Not run again: the statement began before the limit passed (a run started when the job was made begins after
    # it), and the job's start is the request's.
    began = got.column("began")[0].as_py()
    assert sent <= began + 0.05 and began < sent + LIMIT, (sent, began)
    assert done["started"] <= began + 0.05
    # a continued job is also an ordinary job: someone else's 404s
    bob = archive.users.create_token("bob")
    r = await fetch("archive", "api", "jobs", str(job["id"]), headers=headers_for(bob))
    assert r.code == 404
    # The Python client follows the job to the rows (synchronous: on a thread, while this loop serves the server).
    client = ArchiveClient(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", archive_token=alice)
    got = await asyncio.to_thread(client.query, ROWS, format="arrow")
    assert [(r["k"], r["n"]) for r in got.to_pylist()] == demo_db.sql(ROWS).fetchall()
    assert f"job {job['id'] + 1} [" in capsys.readouterr().err  # its text progress bar, outside a notebook
    # and so does the QueryEditor widget, with its progress bar
    editor = await asyncio.to_thread(QueryEditor, client, query=ROWS, context="DEMO")  # it asks for the contexts
    await asyncio.to_thread(editor.run)
    assert editor.error.value == "" and editor.job is not None and editor.job.id == job["id"] + 2
    assert editor.progress.bar.value == 1.0 and editor.output.outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    assert list(editor.result.itertuples(index=False, name=None)) == demo_db.sql(ROWS).fetchall()
    # and so does %%archive
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("%load_ext jupyter_archive")
        shell.run_cell(f"%config Archive.url = {client.url!r}")
        shell.run_cell(f"%config Archive.archive_token = {alice!r}")
        ran = await asyncio.to_thread(shell.run_cell, f"%%archive --out rows --format arrow\n{ROWS}")
        ran.raise_error()
        assert [(r["k"], r["n"]) for r in shell.user_ns["rows"].to_pylist()] == demo_db.sql(ROWS).fetchall()
        assert f"job {job['id'] + 3} [" in capsys.readouterr().err
    finally:
        InteractiveShell.clear_instance()


@pytest.mark.parametrize("archive_config", [CONFIG])
async def test_cancel_stops_the_continued_run_a_full_job_slot_or_the_opt_out_keep_the_error(fetch, archive, archive_config):
    alice = archive.users.create_token("alice")
    user = archive.users.user("alice")
    r = await query(fetch, alice, ENDLESS)
    assert r.code == 202, r.body[:300]
    job = json.loads(r.body)
    # jobs_per_user is 1: another query of alice's cannot go on as a job, and ends at the limit as before
    count = archive.jobs.count(user)
    r = await query(fetch, alice, ENDLESS)
    assert r.code == 400 and json.loads(r.body)["error"]["code"] == "time_limit", r.body[:300]
    assert archive.jobs.count(user) == count
    r = await fetch("archive", "api", "jobs", str(job["id"]), "cancel", method="POST", headers=headers_for(alice), body="")
    assert r.code == 200, r.body[:300]
    assert (await ended(fetch, alice, job["id"]))["state"] == "canceled"
    assert not archive.jobs.running_ids(user.ident)
    # the opt-out, with a job slot free: interrupted at the limit, the time-limit error, no job
    r = await query(fetch, alice, ENDLESS, continueAsJob=False)
    assert r.code == 400 and json.loads(r.body)["error"]["code"] == "time_limit", r.body[:300]
    assert archive.jobs.count(user) == count
    r = await query(fetch, alice, "SELECT 1 AS one")  # the engine is free again
    assert r.code == 200, r.body[:300]
