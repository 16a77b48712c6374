"""Cross-matches of TAP uploads with the demo's PhotoObj through the real server (pyvo): generated
positions against a brute-force oracle, and an upload of a million rows run as a job."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from tests.support.faces import in_thread

pyvo = pytest.importorskip("pyvo")


def _separation(ra1, dec1, ra2, dec2):
    """Great-circle distances in degrees (haversine), every pair: shape (len(ra1), len(ra2))."""
    a1, d1, a2, d2 = (np.radians(np.asarray(x, float)) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((d2[None, :] - d1[:, None]) / 2) ** 2 + np.cos(d1[:, None]) * np.cos(d2[None, :]) * np.sin((a2[None, :] - a1[:, None]) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.minimum(1.0, h))))


async def test_sync_upload_cross_match_equals_brute_force(tap_service, demo_db):
    objid, ra, dec = (np.array(c) for c in zip(*demo_db.sql("SELECT objid, ra, dec FROM PhotoObj").fetchall()))
    rng = np.random.default_rng(17)
    n, radius = 400, 2 / 3600
    pick = rng.integers(0, len(ra), n)
    # half at a quarter of the radius from a row, half at twice it: no pair is near the boundary
    sep = np.where(np.arange(n) % 2 == 0, 0.25, 2.0) * radius
    angle = rng.uniform(0, 2 * np.pi, n)
    up_dec = np.clip(dec[pick] + sep * np.cos(angle), -90, 90)
    up_ra = (ra[pick] + sep * np.sin(angle) / np.maximum(np.cos(np.radians(up_dec)), 1e-6)) % 360
    mine = Table({"id": np.arange(n), "ra": up_ra, "dec": up_dec})
    text = ("SELECT m.id, p.objid FROM TAP_UPLOAD.mine AS m LEFT JOIN demo.PhotoObj AS p "
            f"ON DISTANCE(POINT(m.ra, m.dec), POINT(p.ra, p.dec)) < {radius!r}")

    got = (await in_thread(lambda: tap_service.run_sync(text, uploads={"mine": mine}, maxrec=100_000))).to_table()
    near = _separation(up_ra, up_dec, ra, dec) < radius
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
