"""Indexes and keys on MyDB tables through the real server: a CasJobs user's session (quick queries and a job),
the native API, and generated CREATE/DROP INDEX statements that only ever get 2xx or 4xx answers and never
change a table's rows."""

from __future__ import annotations

import asyncio
import json

import duckdb
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.support import body_json
from tests.support.faces import shape_problem


async def casjobs(fetch, context: str, query: str):
    """A CasJobs quick query (JSON rows, as SciScript asks for them)."""
    return await fetch(
        "archive", "casjobs", "contexts", context, "query", method="POST",
        body=json.dumps({"Query": query}), headers={"Accept": "application/json+array"},
    )  # fmt: skip


def data(resp) -> list[list]:
    return body_json(resp)["Result"][0]["Data"]


async def ok(fetch, context: str, query: str):
    resp = await casjobs(fetch, context, query)
    assert resp.code == 200, (query, resp.body)
    return resp


async def refused(fetch, context: str, query: str, status: int, says: str):
    resp = await casjobs(fetch, context, query)
    assert resp.code == status and shape_problem("casjobs", resp) is None, (query, resp.code, resp.body)
    assert says in body_json(resp)["Error Message"], body_json(resp)
    return resp


async def test_a_casjobs_users_indexes_and_keys(fetch):
    await ok(fetch, "MyDB", "CREATE TABLE Stars (objid BIGINT, mag DOUBLE)")
    await ok(fetch, "MyDB", "INSERT INTO Stars SELECT range, range % 100 FROM range(3000)")
    await ok(fetch, "MyDB", "CREATE INDEX ix_objid ON Stars (objid)")
    assert data(await ok(fetch, "MyDB", "SELECT mag FROM Stars WHERE objid = 42")) == [[42.0]]
    await refused(fetch, "MyDB", "CREATE INDEX ix_objid ON Stars (mag)", 400, "already exists")
    await refused(fetch, "MyDB", "CREATE UNIQUE INDEX ux_mag ON Stars (mag)", 400, "duplicates")
    await refused(fetch, "MyDB", "CREATE INDEX ix_nope ON Stars (nope)", 400, "nope")
    await refused(fetch, "MyDB", "CREATE INDEX ix_gone ON Gone (objid)", 400, "unknown table")
    # DuckDB cannot rename an indexed table: the tables API says which indexes to drop first
    rename = ("archive", "api", "contexts", "mydb", "tables", "Stars", "rename")
    resp = await fetch(*rename, method="POST", body=json.dumps({"name": "Stars2"}))
    assert resp.code == 409 and "ix_objid" in body_json(resp)["error"]["message"], resp.body
    # a unique index holds its key; dropped (T-SQL's table.index form), it no longer does
    await ok(fetch, "DEMO", "CREATE UNIQUE NONCLUSTERED INDEX ux_objid ON mydb.Stars (objid)")
    await refused(fetch, "MyDB", "INSERT INTO Stars VALUES (42, 0)", 400, "42")
    await ok(fetch, "MyDB", "DROP INDEX Stars.ux_objid")
    await ok(fetch, "MyDB", "INSERT INTO Stars VALUES (42, 0)")
    await ok(fetch, "DEMO", "DROP INDEX ix_objid ON mydb.Stars")
    await refused(fetch, "MyDB", "DROP INDEX ix_objid", 400, "ix_objid")
    # the demo is read-only, for indexes as for every write
    await refused(fetch, "DEMO", "CREATE INDEX ix ON PhotoObj (objid)", 403, "read-only")
    await refused(fetch, "DEMO", "DROP INDEX PhotoObj.ix", 403, "read-only")
    # a primary key declared with the table, or added to it
    await ok(fetch, "MyDB", "CREATE TABLE Keyed (objid BIGINT PRIMARY KEY, mag DOUBLE)")
    await ok(fetch, "MyDB", "CREATE TABLE Later (objid BIGINT, mag DOUBLE)")
    await ok(fetch, "MyDB", "ALTER TABLE Later ADD CONSTRAINT pk_later PRIMARY KEY (objid)")
    for table in ("Keyed", "Later"):
        await ok(fetch, "MyDB", f"INSERT INTO {table} VALUES (1, 1)")
        await refused(fetch, "MyDB", f"INSERT INTO {table} VALUES (1, 2)", 400, "1")


async def test_an_index_made_by_a_job_and_through_the_native_api(fetch):
    await ok(fetch, "MyDB", "CREATE TABLE Ids (objid BIGINT)")
    await ok(fetch, "MyDB", "INSERT INTO Ids SELECT range FROM range(10)")
    resp = await fetch(
        "archive", "casjobs", "contexts", "DEMO", "jobs", method="PUT",
        body=json.dumps({"Query": "CREATE UNIQUE INDEX ux_ids ON mydb.Ids (objid)", "TaskName": "t"}),
        headers={"Content-Type": "application/json", "Accept": "text/plain"},
    )  # fmt: skip
    assert resp.code == 200, resp.body
    job_id = resp.body.decode()
    for _ in range(300):
        job = body_json(await fetch("archive", "casjobs", "jobs", job_id))
        if job["Status"] in (3, 4, 5):
            break
        await asyncio.sleep(0.1)
    assert job["Status"] == 5, job["Message"]
    await refused(fetch, "MyDB", "INSERT INTO Ids VALUES (3)", 400, "3")

    async def native(query: str, context: str):
        body = json.dumps({"query": query, "context": context, "language": "sql"})
        return await fetch("archive", "api", "query", method="POST", body=body)

    resp = await native("DROP INDEX ux_ids", "MyDB")
    assert resp.code == 200, resp.body
    assert (await native("INSERT INTO Ids VALUES (3)", "MyDB")).code == 200
    resp = await native("CREATE INDEX ix ON PhotoObj (objid)", "DEMO")
    assert resp.code == 403 and shape_problem("native", resp) is None, resp.body


# -- generated statements -------------------------------------------------------------------------------

NAMES = ["ix", "IX", "ix2", '"a""b"', "[x y]", "`q`", "'s'", "ix;", "mydb.ix", "PhotoObj"]
TABLES = ["Keys", "mydb.Keys", "MyDB.dbo.Keys", "[Keys]", "Missing", "PhotoObj", "DEMO.PhotoObj", "'k.csv'", "read_csv('k.csv')"]
COLUMNS = ["objid", "v", "objid, v", "v DESC", "missing", "(v + 1)", "objid NULLS FIRST", "", "objid, objid"]
KEYS = [(1, 5), (2, 5), (3, 7)]


@st.composite
def index_statement(draw) -> tuple[str, str]:
    """(context, statement): CREATE/DROP INDEX or ADD PRIMARY KEY, in T-SQL's and DuckDB's forms."""
    name, table, cols = draw(st.sampled_from(NAMES)), draw(st.sampled_from(TABLES)), draw(st.sampled_from(COLUMNS))
    form = draw(st.integers(0, 6))
    if form <= 2:
        kind = draw(st.sampled_from(["", "UNIQUE ", "CLUSTERED ", "NONCLUSTERED ", "UNIQUE CLUSTERED "]))
        text = f"CREATE {kind}INDEX {draw(st.sampled_from(['', 'IF NOT EXISTS ']))}{name} ON {table} ({cols})"
    elif form == 3:
        text = f"DROP INDEX {draw(st.sampled_from(['', 'IF EXISTS ']))}{name}"
    elif form == 4:
        text = f"DROP INDEX {table}.{name}"
    elif form == 5:
        text = f"DROP INDEX {name} ON {table}"
    else:
        text = f"ALTER TABLE {table} ADD {draw(st.sampled_from(['', 'CONSTRAINT pk ']))}PRIMARY KEY ({cols})"
    return draw(st.sampled_from(["MyDB", "DEMO"])), text


def statements(n: int) -> list[tuple[str, str]]:
    """``n`` generated statements, the same on every run."""
    out: list[tuple[str, str]] = []

    @seed(16)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(index_statement())
    def collect(item):
        out.append(item)

    collect()
    return out


async def test_generated_index_statements_get_2xx_or_4xx_and_leave_the_rows(fetch):
    await ok(fetch, "MyDB", "CREATE TABLE Keys (objid BIGINT, v INT)")
    await ok(fetch, "MyDB", "INSERT INTO Keys VALUES " + ", ".join(f"({a}, {b})" for a, b in KEYS))
    codes = set()
    for context, text in statements(60):
        resp = await casjobs(fetch, context, text)
        codes.add(resp.code)
        assert resp.code in (200, 400, 403, 404, 409), (context, text, resp.code, resp.body)
        assert resp.code == 200 or shape_problem("casjobs", resp) is None, (text, resp.body)
    assert data(await ok(fetch, "MyDB", "SELECT objid, v FROM Keys ORDER BY objid")) == [list(k) for k in KEYS]
    assert 200 in codes and len(codes) > 2  # the generator reaches both what works and what is refused


async def test_an_index_on_a_writable_mount(fetch, jp_root_dir):
    scratch = jp_root_dir / "scratch.duckdb"
    duckdb.connect(str(scratch)).close()
    body = json.dumps({"duckdb": {"connectionUri": str(scratch), "readOnly": False}})
    assert (await fetch("archive", "quasar", "mount", "fs", "scratch/", method="PUT", body=body)).code == 200

    async def q(text: str, context: str = "SCRATCH"):
        return await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": text, "context": context}))

    assert (await q("CREATE TABLE ids AS SELECT range AS objid FROM range(10)")).code == 200
    assert (await q("CREATE UNIQUE INDEX ux ON ids (objid)")).code == 200
    assert (await q("INSERT INTO ids VALUES (3)")).code == 400
    assert (await q("DROP INDEX SCRATCH.ux", context="MyDB")).code == 200
    assert (await q("INSERT INTO ids VALUES (3)")).code == 200
