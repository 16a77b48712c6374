"""Cross-matches of TAP uploads with the demo's PhotoObj through the real server (pyvo): generated
positions against a brute-force oracle, and an upload of a million rows run as a job."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from tests.support.faces import in_thread
from tests.support.positions import near_rows, separation

pyvo = pytest.importorskip("pyvo")


async def test_sync_upload_cross_match_equals_brute_force(tap_service, demo_db):
    objid, ra, dec = (np.array(c) for c in zip(*demo_db.sql("SELECT objid, ra, dec FROM PhotoObj").fetchall()))
    n, radius = 400, 2 / 3600
    up_ra, up_dec = near_rows(ra, dec, n, radius, seed=17)
    mine = Table({"id": np.arange(n), "ra": up_ra, "dec": up_dec})
    text = ("SELECT m.id, p.objid FROM TAP_UPLOAD.mine AS m LEFT JOIN demo.PhotoObj AS p "
            f"ON DISTANCE(POINT(m.ra, m.dec), POINT(p.ra, p.dec)) < {radius!r}")

    got = (await in_thread(lambda: tap_service.run_sync(text, uploads={"mine": mine}, maxrec=100_000))).to_table()
    near = separation(up_ra, up_dec, ra, dec) < radius
    want = [(int(i), int(objid[j])) for i, j in zip(*np.nonzero(near))]
    want += [(i, None) for i in range(n) if not near[i].any()]
    pairs = [(int(i), None if np.ma.is_masked(o) else int(o)) for i, o in zip(got["id"], got["objid"])]
    assert sorted(pairs, key=repr) == sorted(want, key=repr)
    assert sum(o is not None for _, o in want) >= n // 2  # the near half all match


async def test_a_million_row_upload_cross_match_runs_as_a_job(tap_service, archive, demo_db):
    """A million positions (each demo row's position, many times over) uploaded from a job's result and
    matched with PhotoObj at 1 arcsec in an async job; the count is the DuckDB band join's."""
    svc = tap_service
    make = "SELECT TOP 1000000 a.ra, a.dec FROM demo.PhotoObj AS a, demo.PhotoObj AS b WHERE b.objid IS NOT NULL"
    count = ("SELECT COUNT(*) AS n FROM TAP_UPLOAD.up AS u JOIN demo.PhotoObj AS p "
             "ON CONTAINS(POINT(p.ra, p.dec), CIRCLE(u.ra, u.dec, 1.0/3600)) = 1")

    def work():
        job = svc.submit_job(make, maxrec=1_000_000)
        job.run().wait(phases=["COMPLETED", "ERROR"], timeout=300)
        job.raise_if_error()
        return job.job_id, svc.run_async(count, uploads={"up": job}, timeout=600).to_table()

    job_id, result = await in_thread(work)
    positions = archive.jobs.results.path(int(job_id))  # the uploaded rows, as the server stored them
    r = 1.0 / 3600
    want = demo_db.sql(
        f"SELECT COUNT(*), (SELECT COUNT(*) FROM read_parquet('{positions}')) FROM read_parquet('{positions}') AS u "
        f"JOIN PhotoObj AS p ON p.dec BETWEEN u.dec - {r} AND u.dec + {r} "
        f"AND DEGREES(2 * ASIN(LEAST(1.0, SQRT(POWER(SIN(RADIANS(p.dec - u.dec) / 2), 2) + "
        f"COS(RADIANS(u.dec)) * COS(RADIANS(p.dec)) * POWER(SIN(RADIANS(p.ra - u.ra) / 2), 2))))) <= {r}"
    ).fetchall()[0]
    assert want[1] == 1_000_000 and want[0] >= 1_000_000 and int(result["n"][0]) == want[0]
