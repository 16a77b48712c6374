"""The walk of a CasJobs quick query: the modules of the package it runs through, from the handler to the socket.

docs/architecture.md writes this walk down; the issue's bar is at most 8 modules. A longer walk means the hot path
grew: a layer that every quick query now crosses, or one idea spread over more modules.

The walk, in order: the handler (faces/base/handler.py), params, the users service, the CasJobs face, formats/base,
the CSV writer (formats/delimited), and execution's run (Queries.query, the compile cache, execute) and pool (the
lease of an engine's connection, QueryResult, the watchdog).
"""

from __future__ import annotations

import gc
import json
import sys
from concurrent.futures import ThreadPoolExecutor

PACKAGE = "/jupyter_archive/"
MAX_MODULES = 8


def _walk_of(calls: list[str]) -> list[str]:
    """The distinct modules, in the order the request first entered them."""
    return list(dict.fromkeys(calls))


async def test_a_quick_query_visits_few_modules(fetch, archive):
    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and PACKAGE in frame.f_code.co_filename:
            calls.append(frame.f_code.co_filename.split(PACKAGE, 1)[1])

    body = json.dumps({"Query": "SELECT TOP 10 objid, ra, dec FROM PhotoObj"})

    async def query():
        r = await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST", body=body)
        assert r.code == 200
        return r

    # The archive's worker threads run the query: profile them too, through a pool whose threads start profiled.
    normal = archive.executor
    archive.executor = ThreadPoolExecutor(2, initializer=sys.setprofile, initargs=(profile,))
    try:
        await query()  # warm: compile cache, engine, the pool's threads
        await query()
        calls.clear()
        # No collection pass in the walk: one would call the server's gc callback (core/memory.py settle_long_lived)
        # on whichever thread it falls, as allocation counts happen to line up; it is not the query's walk.
        gc.disable()
        sys.setprofile(profile)
        try:
            r = await query()
        finally:
            sys.setprofile(None)
            gc.enable()
    finally:
        archive.executor.shutdown(wait=True)
        archive.executor = normal
    walk = _walk_of(calls)
    assert "faces/casjobs.py" in walk and len(walk) >= 3, walk  # the probe saw the request, not nothing
    assert len(walk) <= MAX_MODULES, "\n".join(walk)


LOOKUP_MODULES = 9


async def test_a_point_lookup_a_key_index_answers_visits_few_modules(fetch, archive, demo_db):
    """The same walk, but a lookup by key (core/execution/lookups.py) in place of a worker, the engine and its lease:
    it runs on the event loop, so the probe follows the loop's thread."""
    import asyncio

    objid = demo_db.sql("SELECT objid FROM PhotoObj LIMIT 1").fetchall()[0][0]
    body = json.dumps({"Query": f"SELECT * FROM PhotoObj WHERE objID = {objid}"})

    async def query():
        r = await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST", body=body)
        assert r.code == 200

    for _ in range(200):  # wanted often enough, the index is built in the background
        await query()
        if archive.queries.lookups._indexes:
            break
        await asyncio.sleep(0.02)
    await query()
    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and PACKAGE in frame.f_code.co_filename:
            calls.append(frame.f_code.co_filename.split(PACKAGE, 1)[1])

    served = archive.queries.lookups.served
    gc.disable()
    sys.setprofile(profile)
    try:
        await query()
    finally:
        sys.setprofile(None)
        gc.enable()
    assert archive.queries.lookups.served == served + 1, "the key index did not answer"
    walk = _walk_of(calls)
    assert "core/execution/lookups.py" in walk and "faces/casjobs.py" in walk, walk
    assert len(walk) <= LOOKUP_MODULES, "\n".join(walk)
