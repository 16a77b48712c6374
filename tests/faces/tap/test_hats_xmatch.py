"""A TAP async cross-match of an UPLOAD with a HATS catalog through the real server (pyvo), fanned out on the
Dask cluster the server starts (``dask_scheduler = local:2``): the pairs equal brute force over all of the
catalog's files, the job's log says it ran on the cluster over the partitions the upload touches, and
``/compile`` says the partitions are pruned by the upload's positions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from tests.support import body_json
from tests.support.faces import in_thread
from tests.support.positions import near_rows, separation

pyvo = pytest.importorskip("pyvo")


@pytest.fixture
def archive_config(hats_root):
    return {
        "mounts": [{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY", "public": True}],
        "dask_scheduler": "local:2",
        "cluster_min_rows": 100,  # the upload below is small: it fans out all the same
    }


async def test_tap_async_upload_cross_match_fans_out_and_equals_brute_force(tap_service, hats_oracle, fetch):
    objid, ra, dec = (np.asarray(c) for c in zip(*hats_oracle.sql("SELECT objid, ra, dec FROM stars").fetchall()))
    n, radius = 400, 3 / 3600
    up_ra, up_dec = near_rows(ra, dec, n, radius, seed=29)
    mine = Table({"id": np.arange(n), "ra": up_ra, "dec": up_dec})
    text = ("SELECT m.id, s.objid FROM TAP_UPLOAD.mine AS m JOIN sky.stars AS s "
            f"ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', m.ra, m.dec, {radius!r}))")  # fmt: skip

    def work():
        job = tap_service.submit_job(text, uploads={"mine": mine}, maxrec=100_000)
        job.run().wait(phases=["COMPLETED", "ERROR"], timeout=300)
        job.raise_if_error()
        return job.job_id, job.fetch_result().to_table()

    job_id, got = await in_thread(work)
    # brute force: every uploaded position against every catalog row within a band of declination
    want = set()
    for i in range(n):
        band = np.nonzero(np.abs(dec - up_dec[i]) <= radius)[0]
        want |= {(i, int(objid[j])) for j in band[separation(up_ra[i : i + 1], up_dec[i : i + 1], ra[band], dec[band])[0] < radius]}
    pairs = [(int(i), int(o)) for i, o in zip(got["id"], got["objid"])]
    assert sorted(pairs) == sorted(want) and len(want) >= n // 2
    log = body_json(await fetch("archive", "api", "jobs", str(job_id), "log"))["log"]
    lines = " ".join(x["line"] for x in log)
    assert "ran on the Dask cluster" in lines and "of its rows shipped" in lines, lines
    # /compile of the same cross-match with a MyDB table: what is known before any row of it is read
    made = await fetch("archive", "api", "query", method="POST",
                       body=json.dumps({"query": "SELECT TOP 50 objid AS id, ra, dec INTO mydb.picked FROM stars", "language": "sql", "context": "SKY"}))  # fmt: skip
    assert made.code == 200, made.body
    plan = body_json(await fetch("archive", "api", "compile", method="POST",
                                 body=json.dumps({"query": text.replace("TAP_UPLOAD.mine", "mydb.picked"), "language": "adql"})))  # fmt: skip
    detail = next(p["detail"] for p in plan["phases"] if p["name"] == "partitions")
    assert "pruned by the positions of mydb.main.picked when it runs" in detail and "the Dask cluster (local:2) if mydb.main.picked has 100 positions or more and they touch 16" in detail, detail
    # a job the cluster cannot split (a join of the catalog with the upload by id, not by position) is refused, saying
    # what to do instead, in UWS's own shape: an ERROR phase and its error summary; a sync query still answers
    by_id = "SELECT s.objid, m.id FROM sky.stars AS s JOIN TAP_UPLOAD.mine AS m ON s.objid = m.id"

    def refused():
        job = tap_service.submit_job(by_id, uploads={"mine": mine})
        job.run().wait(phases=["COMPLETED", "ERROR"], timeout=300)
        try:
            job.raise_if_error()
        except Exception as exc:  # noqa: BLE001 - pyvo's DALQueryError carries the job's error summary
            return job.phase, str(exc)
        return job.phase, ""

    phase, message = await in_thread(refused)
    assert phase == "ERROR" and "a join of the catalog with another table" in message and "SELECT ... INTO mydb" in message, message
    assert len(await in_thread(lambda: tap_service.run_sync(by_id, uploads={"mine": mine}).to_table())) >= 0
