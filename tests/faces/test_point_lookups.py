"""Point lookups through the real server: once a key index answers them, every face sends the very bytes it sent
when the engine did (core/execution/lookups.py), and the history lists them as it lists any quick query."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest

from tests.support import body_json

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _requests(objid: int) -> dict:
    """name -> fetch arguments of the same point lookup through each face and some of its formats."""
    native = {"query": "SELECT * FROM PhotoObj WHERE objid = $id", "context": "DEMO", "params": {"id": objid}}
    tap = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": f"SELECT objid, ra AS alpha, dec, type FROM demo.PhotoObj WHERE objid = {objid}"}
    casjobs = {"Query": f"SELECT TOP 1 * FROM PhotoObj WHERE objID = {objid}"}
    return {
        "native json": (("archive", "api", "query"), {"method": "POST", "body": json.dumps(native)}),
        "native csv": (("archive", "api", "query"), {"method": "POST", "body": json.dumps({**native, "format": "csv"})}),
        "tap votable": (("archive", "tap", "sync"), {"method": "POST", "body": urlencode(tap), "headers": FORM}),
        "tap csv": (("archive", "tap", "sync"), {"method": "POST", "body": urlencode({**tap, "FORMAT": "csv"}), "headers": FORM}),
        "tap binary2": (("archive", "tap", "sync"), {"method": "POST", "body": urlencode({**tap, "FORMAT": "votable/b2"}), "headers": FORM}),
        "casjobs csv": (("archive", "casjobs", "contexts", "DEMO", "query"), {"method": "POST", "body": json.dumps(casjobs),
                                                                             "headers": {"Content-Type": "application/json"}}),
        "casjobs json": (("archive", "casjobs", "contexts", "DEMO", "query"), {"method": "POST", "body": json.dumps(casjobs),
                                                                              "headers": {"Content-Type": "application/json", "Accept": "application/json"}}),
        "dax": (("archive", "dax", "db", "v0", "tap", "sync"), {"method": "POST", "headers": FORM,
                                                              "body": urlencode({"query": f"SELECT objid, r FROM DEMO.PhotoObj WHERE objid = {objid}"})}),
        "quasar": (("archive", "quasar", "query", "fs", "demo"), {"params": {"q": f"SELECT objid, g FROM PhotoObj WHERE objid = {objid}"}}),
    }  # fmt: skip


async def test_every_face_sends_the_same_bytes_from_a_key_index_as_from_the_engine(fetch, archive, demo_db):
    ids = [r[0] for r in demo_db.sql("SELECT objid FROM PhotoObj ORDER BY random() LIMIT 3").fetchall()]
    engine, lookups = {}, archive.queries.lookups
    archive.queries.lookups = None  # the engine's answers first, as with ``lookup_memory`` off
    try:
        for i, objid in enumerate(ids):
            for name, (parts, kw) in _requests(objid).items():
                r = await fetch(*parts, **kw)
                assert r.code == 200, (name, r.body[:300])
                engine[name, i] = r.body
    finally:
        archive.queries.lookups = lookups
    assert not lookups._indexes, "an index before any lookup was asked for"
    listed_by_engine = await _listed(fetch, ids[2], at_least=1)
    deadline = time.monotonic() + 30
    while not archive.queries.lookups._indexes:  # wanted now: built in the background
        assert time.monotonic() < deadline, "no key index was built for the demo's lookups"
        for name, (parts, kw) in _requests(ids[0]).items():
            await fetch(*parts, **kw)
        await asyncio.sleep(0.05)
    served = archive.queries.lookups.served
    for i, objid in enumerate(ids):
        for name, (parts, kw) in _requests(objid).items():
            r = await fetch(*parts, **kw)
            assert r.code == 200, (name, r.body[:300])
            assert r.body == engine[name, i], f"{name}: the key index's answer differs from the engine's"
    assert archive.queries.lookups.served - served == len(engine), "not every face's lookup was answered by the index"
    # The history lists the index's answers as it listed the engine's.
    assert await _listed(fetch, ids[2], at_least=2 * listed_by_engine) == 2 * listed_by_engine


async def _listed(fetch, objid: int, at_least: int) -> int:
    """How many entries of the caller's history name ``objid``, once at least ``at_least`` do (it is written
    behind the answers) or 5 s have passed."""
    deadline = time.monotonic() + 5
    while True:
        history = body_json(await fetch("archive", "api", "history", params={"limit": "500"}))["history"]
        count = sum(f"objid = {objid}" in h["query"].replace("objID", "objid") for h in history)
        if count >= at_least or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("archive_config", [{"lookup_memory": ""}])
async def test_no_key_index_when_switched_off(fetch, archive, archive_config, demo_db):
    objid = demo_db.sql("SELECT objid FROM PhotoObj LIMIT 1").fetchall()[0][0]
    for _ in range(30):
        parts, kw = _requests(objid)["native json"]
        assert (await fetch(*parts, **kw)).code == 200
    assert archive.queries.lookups is None
