"""A query that builds a huge value from a few characters is refused in each face's error shape, not run.

DuckDB's memory limit does not bound the values an expression makes: before the guards of
``core/sql/bounds.py``, ``SELECT list_sum(range(1000000000))`` from one user had the whole server killed
for want of memory. Sizes here stay small enough that an unguarded run would only cost a few hundred
megabytes, so the test fails (with a 200) rather than harm the machine without the guards.
"""

from __future__ import annotations

import json
import urllib.parse
import zlib

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from jupyter_archive.core.sql.bounds import LIMIT

from tests.support import body_json

# Each builder with {n}: the size of the value it makes, from the number as written, an expression or a column.
BUILDERS = [
    "SELECT len(range({n})) AS v",
    "SELECT len(generate_series(1, {n} + 1)) AS v",
    "SELECT len(range(TIMESTAMP '2000-01-01', TIMESTAMP '2000-01-01' + {n} * INTERVAL 1 MINUTE, INTERVAL 1 MINUTE)) AS v",
    "SELECT length(repeat('ab', {n})) AS v",
    "SELECT length(repeat(repeat('x', 1000), {n} // 1000 + 1)) AS v",
    "SELECT len(repeat([1, 2], {n})) AS v",
    "SELECT length(lpad('x', {n}, 'y')) AS v",
    "SELECT length(rpad('x', {n}, 'y')) AS v",
    "SELECT len(list_resize([1], {n})) AS v",
    "SELECT len(array_resize([1], {n}, 0)) AS v",
    "SELECT length(printf('%0{n}d', 1)) AS v",
    "SELECT length(printf('%*d', {n}, 1)) AS v",
    "SELECT length(format('{{:>{n}}}', 1)) AS v",
    "SELECT length(format('{{:{{}}}}', 1, {n})) AS v",
    "SELECT count(*) AS v FROM unnest(range({n}))",
    "SELECT sum(len(range(x))) AS v FROM (SELECT {n} + i AS x FROM range(3) t(i))",
]


def examples() -> list[tuple[str, int]]:
    """(query, size) pairs: every builder with sizes past the limit (up to 10^7, as written or computed)."""
    out: list[tuple[str, int]] = []

    @seed(zlib.crc32(b"built values"))
    @settings(max_examples=len(BUILDERS) * 2, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(BUILDERS), st.integers(LIMIT + 1, 10_000_000))
    def collect(template, n):
        out.append((template.format(n=n), n))

    collect()
    return out + [(b.format(n=10_000_000), 10_000_000) for b in BUILDERS]


def token_headers(token: str, **extra) -> dict:
    return {"Authorization": "", "X-Auth-Token": token, **extra}


async def test_built_values_past_the_limit_are_refused_in_every_face(fetch, archive):
    token = archive.users.create_token("mallory")
    for query, n in examples():
        resp = await fetch("archive", "api", "query", method="POST", raise_error=False,
                           body=json.dumps({"query": query, "context": "MyDB"}),
                           headers=token_headers(token, **{"Content-Type": "application/json"}))
        assert resp.code == 400, (query, resp.code, resp.body[:300])
        error = body_json(resp)["error"]
        assert error["code"] == "too_large" and f"{LIMIT:,}" in error["message"], (query, error)
    query = BUILDERS[0].format(n=10_000_000)
    resp = await fetch("archive", "casjobs", "contexts", "MyDB", "query", method="POST", raise_error=False,
                       body=json.dumps({"Query": query}), headers=token_headers(token, **{"Content-Type": "application/json"}))
    assert resp.code == 400 and f"{LIMIT:,}" in body_json(resp)["Error Message"], resp.body[:300]
    adql = "SELECT TOP 1 LPAD('x', 10000000, 'y') AS v FROM demo.photoobj"
    resp = await fetch("archive", "tap", "sync", method="POST", raise_error=False,
                       body=urllib.parse.urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql}),
                       headers=token_headers(token, **{"Content-Type": "application/x-www-form-urlencoded"}))
    assert resp.code == 400 and b'QUERY_STATUS" value="ERROR"' in resp.body and f"{LIMIT:,}".encode() in resp.body


async def test_built_values_within_the_limit_run_and_keep_their_names(fetch, archive):
    token = archive.users.create_token("mallory")
    query = ("SELECT len(range(10)), len(generate_series(1, 65536)) AS n, repeat('ab', 3) AS r, lpad('7', 3, '0') AS p, "
             "printf('%05.1f', 3.14159) AS f, format('{:>4}', 7) AS g, list_resize([1], 3) AS l")
    resp = await fetch("archive", "api", "query", method="POST",
                       body=json.dumps({"query": query, "context": "MyDB"}),
                       headers=token_headers(token, **{"Content-Type": "application/json"}))
    body = body_json(resp)
    assert body["data"] == [[10, 65536, "ababab", "007", "003.1", "   7", [1, None, None]]]
    names = [c["name"] for c in body["columns"]]
    assert names[1:] == ["n", "r", "p", "f", "g", "l"] and "error" not in names[0].lower(), names
    resp = await fetch("archive", "api", "query", method="POST",
                       body=json.dumps({"query": "SELECT count(*) AS c FROM range(1000000)", "context": "MyDB"}),
                       headers=token_headers(token, **{"Content-Type": "application/json"}))
    assert body_json(resp)["data"] == [[1000000]]  # a series as a table streams its rows: not bounded
