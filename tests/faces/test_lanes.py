"""Lanes: one user's slow queries do not hold back anyone's cheap reads (metadata, job status, listings).

The quick pool is made small and filled with one user's slow queries; another user's reads must come back
long before those queries end (their time limit). Bounds are generous: this is behaviour, not speed.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

SLOW = "SELECT count(*) FROM range(10000000000000) a"
TIME_LIMIT = 8.0  # the slow queries end here, with a time-limit error
BOUND = 3.0  # a cheap read answered after this long waited for a quick thread


def headers_for(token: str) -> dict:
    return {"Authorization": "", "X-Auth-Token": token, "Content-Type": "application/json"}


@pytest.mark.parametrize("archive_config", [{"quick_workers": 2, "quick_time_limit": TIME_LIMIT}])
async def test_one_users_slow_queries_do_not_hold_another_users_reads(fetch, archive, archive_config):
    alice, bob = archive.users.create_token("alice"), archive.users.create_token("bob")
    job = archive.jobs.submit_query(archive.users.user("bob"), "SELECT 1 AS x", "sql", context="DEMO")
    began = time.monotonic()
    slow = [
        asyncio.ensure_future(
            fetch("archive", "api", "query", method="POST", headers=headers_for(alice),
                  body=json.dumps({"query": SLOW, "context": "DEMO", "continueAsJob": False}), request_timeout=60)
        )
        for _ in range(2)
    ]  # fmt: skip
    # until both slow queries hold a quick thread (the engine has them running)
    while len(archive.engines.engines()) == 0 or archive.executor._work_queue.qsize() > 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    reads = {
        "contexts": ("archive", "api", "contexts"),
        "tables": ("archive", "api", "contexts", "DEMO", "tables"),
        "job status": ("archive", "api", "jobs", str(job.id)),
        "job list": ("archive", "api", "jobs"),
        "TAP tables": ("archive", "tap", "tables"),
        "DAX databases": ("archive", "dax", "meta", "v0", "db", "L2"),
    }
    for what, parts in reads.items():
        start = time.monotonic()
        r = await fetch(*parts, headers=headers_for(bob))
        took = time.monotonic() - start
        assert r.code == 200, (what, r.code, r.body[:200])
        assert took < BOUND, f"{what} took {took:.1f} s behind another user's slow queries"
    assert not any(t.done() for t in slow), "the slow queries ended before the reads were tried"
    assert time.monotonic() - began < TIME_LIMIT
    for t in slow:
        r = await t
        assert r.code == 400 and b"time" in r.body.lower()
