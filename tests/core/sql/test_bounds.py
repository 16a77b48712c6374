"""The guards of built values: what they wrap, and that SQL pushed to a server goes without them."""

from __future__ import annotations

import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_archive.core.backends.sqlalchemy.dialect import parse
from jupyter_archive.core.sql.bounds import MARK, guard_values

CALLS = ["range({n})", "range(1, {n}, 2)", "generate_series(1, {n})", "repeat('ab', {n})", "lpad('x', {n}, 'y')",
         "rpad('x', {n}, 'y')", "list_resize([1], {n})", "printf('%0{n}d', 1)", "format('{{:>{n}}}', 1)"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(CALLS), st.integers(0, 10**12), st.booleans())
def test_guards_wrap_each_sized_call_and_come_out_for_a_server(call, n, aliased):
    sql = f"SELECT {call.format(n=n)}{' AS v' if aliased else ''} FROM t"
    original = sqlglot.parse_one(sql, read="duckdb")
    guarded = guard_values(original.copy()).sql(dialect="duckdb")
    assert f"ERROR('{MARK}" in guarded
    back = parse(guarded, "a server")
    if aliased:
        assert back.sql(dialect="duckdb") == original.sql(dialect="duckdb")
    else:  # the column keeps the name it had: the call as written
        assert back.expressions[0].alias == original.expressions[0].sql(dialect="duckdb")
        assert back.expressions[0].this.sql(dialect="duckdb") == original.expressions[0].sql(dialect="duckdb")


def test_a_series_read_as_a_table_streams_and_is_not_guarded():
    sql = "SELECT * FROM range(1000000000000)"
    assert "ERROR" not in guard_values(sqlglot.parse_one(sql, read="duckdb")).sql(dialect="duckdb")
