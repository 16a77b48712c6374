"""What requests leave to the cyclic garbage collector: nothing, on the paths many users take at once.

Objects in a reference cycle wait for a collection pass, and a full pass stops every request while it scans
(core/memory.py ``settle_long_lived``); a quick query's objects must go by reference counting as it ends.
"""

from __future__ import annotations

import gc
import json
from urllib.parse import urlencode

import pytest


QUERIES = {
    "native": lambda id_: (("archive", "api", "query"), json.dumps({"query": "SELECT * FROM PhotoObj WHERE objid = $id", "context": "DEMO", "params": {"id": id_}})),
    "casjobs": lambda id_: (("archive", "casjobs", "contexts", "DEMO", "query"), json.dumps({"Query": f"SELECT * FROM PhotoObj WHERE objid = {id_}"})),
    "tap": lambda id_: (("archive", "tap", "sync"), urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "QUERY": f"SELECT * FROM demo.PhotoObj WHERE objid = {id_}"})),
}


@pytest.mark.parametrize("face", sorted(QUERIES))
async def test_a_quick_query_leaves_no_reference_cycle(fetch, archive, face):
    async def some():
        for id_ in range(5):
            path, body = QUERIES[face](1237645876861272000 + id_)
            r = await fetch(*path, method="POST", body=body)
            assert r.code == 200

    await some()  # warm: what the first query loads and caches stays, and is not garbage
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a pass finds unreachable is kept in gc.garbage, to be looked at
    try:
        gc.disable()
        await some()
        archive.history.flush()  # the history's entries (which held each result) written and dropped, as its writer does
        gc.collect()
        left = [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith(("jupyter_archive", "tornado"))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == [], sorted(set(left))


def test_a_server_keeps_what_it_holds_for_its_life_out_of_full_collections(jp_serverapp):
    # Frozen at start (and the survivors of its first full passes): a full pass scans what requests made since
    assert gc.get_freeze_count() > 0
