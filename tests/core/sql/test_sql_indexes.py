"""Indexes and primary keys on MyDB tables: what each written form becomes in the engine, where it is refused,
and that a point lookup on an indexed table, as compiled, uses the index."""

from __future__ import annotations

import pytest

from jupyter_archive.core.sql import compile_query
from tests.support.sql import DictResolver, error, q


def indexes(con) -> set[tuple[str, str, bool]]:
    """(index, table, unique) of every index in MyDB."""
    rows = con.sql("SELECT index_name, table_name, is_unique FROM duckdb_indexes() WHERE database_name = 'mydb'")
    return set(rows.fetchall())


@pytest.mark.parametrize(
    ("language", "default", "create", "drop"),
    [
        ("sql", "MyDB", "CREATE INDEX ix ON T (x)", "DROP INDEX ix"),
        ("sql", "DEMO", "CREATE INDEX ix ON mydb.T (x, s)", "DROP INDEX mydb.ix"),
        ("sql", "MyDB", "CREATE INDEX IF NOT EXISTS ix ON T (x)", "DROP INDEX IF EXISTS ix"),
        ("mysql", "MyDB", "CREATE INDEX ix ON T (x)", "DROP INDEX ix ON T"),
        ("tsql", "MyDB", "CREATE CLUSTERED INDEX ix ON T (x)", "DROP INDEX T.ix"),
        ("tsql", "DEMO", "CREATE NONCLUSTERED INDEX [ix] ON mydb.dbo.T (s DESC, x ASC)", "DROP INDEX mydb.T.ix"),
        ("tsql", "DEMO", "CREATE INDEX ix ON MyDB..T (x)", "DROP INDEX ix ON mydb.T"),
    ],
)
def test_each_form_creates_and_drops_the_index_beside_its_table(con, language, default, create, drop):
    resolver = DictResolver(con, default=default)
    q(con, resolver, create, language)
    assert indexes(con) == {("ix", "T", False)}
    q(con, resolver, drop, language)
    assert indexes(con) == set()


def test_unique_index_and_primary_key_hold_their_keys(con, resolver):
    mydb = DictResolver(con, default="MyDB")
    q(con, mydb, "CREATE UNIQUE INDEX ux ON T (x)")
    assert indexes(con) == {("ux", "T", True)}
    with pytest.raises(Exception, match="(?i)constraint"):
        q(con, mydb, "INSERT INTO T VALUES (1, 'again')")
    q(con, mydb, "CREATE TABLE K (id BIGINT PRIMARY KEY, v INT)")
    q(con, mydb, "CREATE TABLE P (id BIGINT, v INT)", "tsql")
    q(con, mydb, "ALTER TABLE P ADD CONSTRAINT pk PRIMARY KEY (id)", "tsql")
    for table in ("K", "P"):
        q(con, mydb, f"INSERT INTO {table} VALUES (1, 1)")
        with pytest.raises(Exception, match="(?i)constraint"):
            q(con, mydb, f"INSERT INTO {table} VALUES (1, 2)")


@pytest.mark.parametrize(
    ("text", "status", "says"),
    [
        ("CREATE INDEX ix ON PhotoObj (ra)", 403, "read-only"),
        ("CREATE INDEX ix ON DEMO.PhotoObj (ra)", 403, "read-only"),
        ("DROP INDEX ix", 403, "read-only"),
        ("DROP INDEX demo.ix", 403, "read-only"),
        ("CREATE INDEX ix ON mydb.Missing (x)", 400, "unknown table"),
        ("CREATE INDEX ix ON 'T.csv' (x)", 403, "files"),
        ("CREATE INDEX ix ON mydb.T ((x + 1))", 400, "not expressions"),
        ("CREATE INDEX ix ON mydb.T (x) WHERE x > 1", 400, "options"),
        ("CREATE INDEX ix ON mydb.T USING hnsw (x)", 400, "options"),
        ("CREATE INDEX mydb.ix ON mydb.T (x)", 400, "without a context"),
        ("CREATE NONCLUSTERED INDEX ix ON mydb.T (x)", 400, "T-SQL"),
        ("CREATE UNIQUE INDEX ON mydb.T (x)", 400, "CREATE [UNIQUE] INDEX name ON table"),
        ("ALTER TABLE mydb.T ADD CONSTRAINT c CHECK (x > 0)", 400, "PRIMARY KEY"),
        ("DROP INDEX ix ON mydb.Missing", 400, "unknown table"),
    ],
)
def test_refused_with_a_clear_error(resolver, text, status, says):
    err = error(text, "sql", resolver)
    assert err.status == status and says in err.message, (err.status, err.message)


def test_a_point_lookup_on_an_indexed_table_scans_the_index(con):
    mydb = DictResolver(con, default="MyDB")
    q(con, mydb, "CREATE TABLE Big (objid BIGINT, mag DOUBLE)")
    q(con, mydb, "INSERT INTO Big SELECT range, range / 2 FROM range(100000)")
    lookup = "SELECT mag FROM Big WHERE objid = @id"

    def plan() -> str:
        # DuckDB 2 chooses an index scan when the query runs, so the plan that shows it is EXPLAIN ANALYZE's
        (st,) = compile_query(lookup, "tsql", mydb, variables={"id": "4242"}, row_limit=1000).statements
        return con.sql("EXPLAIN ANALYZE " + st.sql, params=st.params or None).fetchall()[0][1]

    assert "Index Scan" not in plan()
    q(con, mydb, "CREATE INDEX ix_objid ON Big (objid)", "tsql")
    assert "Type: Index Scan" in plan()
    assert q(con, mydb, lookup, "tsql", variables={"id": "4242"}) == [(2121.0,)]
