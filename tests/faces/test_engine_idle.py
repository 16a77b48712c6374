"""Idle engines through the real server: closed after ``engine_idle_seconds``, reopened by the next
query without the caller noticing, and never closed under a result still being streamed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

import pytest

from tests.support.held_stream import HeldStream

ROWS = 2_000_000  # a CSV of this many rows is far more than the socket buffers hold


@pytest.fixture
def archive_config():
    return {"engine_idle_seconds": 0.3}


async def query(fetch, text: str, headers: dict | None = None, context: str = "DEMO") -> list[list[str]]:
    resp = await fetch("archive", "api", "query", method="POST", headers={**(headers or {}), "Accept": "text/csv"},
                       body=json.dumps({"query": text, "language": "sql", "context": context}))  # fmt: skip
    assert resp.code == 200, resp.body
    return list(csv.reader(io.StringIO(resp.body.decode())))[1:]


async def closed(archive, key=None, timeout: float = 30.0) -> None:
    """Until the key (None: any) has no open engine (a generous bound: the idle watch is a thread)."""
    deadline = time.monotonic() + timeout
    while archive.engines.engines(key):
        assert time.monotonic() < deadline, f"the engine of {key} is still open"
        await asyncio.sleep(0.05)


async def test_an_idle_engine_closes_and_reopens_for_the_next_query(fetch, archive):
    assert await query(fetch, "SELECT count(*) FROM PhotoObj") == [["20000"]]
    [first] = archive.engines.engines()
    await closed(archive)
    assert first.closed
    assert await query(fetch, "SELECT count(*) FROM PhotoObj") == [["20000"]]
    [second] = archive.engines.engines()
    assert second is not first and not second.closed


async def test_a_streamed_result_keeps_its_engine(fetch, archive, jp_http_port, jp_base_url, jp_auth_header):
    assert await query(fetch, f"CREATE TABLE big AS SELECT range AS i FROM range({ROWS})", context="MyDB") == [[str(ROWS)]]
    stream = await HeldStream.open(jp_http_port, jp_base_url, f"archive/api/contexts/MyDB/tables/big/rows?limit={ROWS}&format=csv",
                                   jp_auth_header)  # fmt: skip
    assert stream.status == 200, stream.head
    [engine] = archive.engines.engines()  # the owner's, lent to the stream
    bob = {"Authorization": "", "X-Auth-Token": archive.users.create_token("bob")}
    assert await query(fetch, "SELECT 1", bob) == [["1"]]
    await closed(archive, archive.engines.engine(archive.users.user("bob")).key)  # the watch ran past the stream's idle time
    assert archive.engines.engines() == [engine] and not engine.closed
    got = (await stream.finish()).decode().splitlines()
    assert got[0] == "i" and len(got) == ROWS + 1 and got[-1] == str(ROWS - 1)
    await closed(archive)  # given back: now it closes
