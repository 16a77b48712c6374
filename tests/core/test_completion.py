"""Completion of query text (core/completion.py): generated queries, cut anywhere, against what they name."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.completion import ADQL_GEOMETRY, FUNCTIONS, complete, table_names

KEYWORDS = {"select", "from", "where", "as", "on", "join", "and", "or", "not", "by", "order", "group", "top", "in", "is",
            "null", "like", "limit", "union", "with", "into", "using", "end", "case", "when", "then", "else", "asc", "desc",
            "offset", "having", "inner", "left", "right", "full", "outer", "cross", "natural", "between", "exists", "except",
            "intersect", "distinct", "set", "values", "qualify", "window", "tablesample", "apply", "fetch", "lateral", "ilike"}
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ident = st.builds(str.__add__, st.sampled_from(_LETTERS), st.text(_LETTERS + "0123456789_", max_size=6)).filter(
    lambda s: s.lower() not in KEYWORDS)


@st.composite
def catalogs(draw):
    """A context: {schema.table: columns}, a schema, and the language."""
    language = draw(st.sampled_from(["adql", "sql"]))
    names = draw(st.lists(ident, min_size=1, max_size=4, unique_by=str.casefold))
    tables = [{"name": n, "columns": [{"name": c} for c in draw(st.lists(ident, min_size=1, max_size=6, unique_by=str.casefold))]}
              for n in names]
    return table_names(tables, language, draw(ident)), language


@st.composite
def queries(draw):
    """A query naming tables of a catalog with aliases, the catalog, and (alias, its table) of each FROM item."""
    tables, language = draw(catalogs())
    picked = draw(st.lists(st.sampled_from(sorted(tables)), min_size=1, max_size=3))
    aliases = draw(st.lists(ident, min_size=len(picked), max_size=len(picked), unique_by=str.casefold))
    items = list(zip(aliases, picked, strict=True))
    cols = [f"{a}.{draw(st.sampled_from(tables[t]))}" for a, t in items for _ in range(draw(st.integers(1, 2)))]
    funcs = draw(st.lists(st.sampled_from(FUNCTIONS["adql" if language == "adql" else "sql"]), max_size=2))
    select = ", ".join(cols + [f"{f}({cols[0]})" for f in funcs])
    joins = " JOIN ".join(f"{t} AS {a}" if i % 2 else f"{t} {a}" for i, (a, t) in enumerate(items))
    where = draw(st.sampled_from(["", f" WHERE {cols[-1]} > 1", f" WHERE {cols[0]} IS NOT NULL ORDER BY {cols[0]}"]))
    return f"SELECT {select} FROM {joins}{where}", tables, language, items


def _typed(text: str, start: int, cursor: int) -> str:
    return text[start:cursor]


@settings(max_examples=100, deadline=None)
@given(queries(), st.data())
def test_any_cut_of_a_query_completes_with_its_prefix(q, data):
    text, tables, language, _ = q
    cut = data.draw(st.integers(0, len(text)))
    cursor = data.draw(st.integers(0, cut))
    found = complete(text[:cut], cursor, tables, language)
    typed = _typed(text, found.start, cursor)
    assert found.start <= cursor and re.fullmatch(r"\w*", typed)
    for m in found.matches:
        assert m.text.casefold().startswith(typed.casefold()), (text[:cut], cursor, m)


@settings(max_examples=100, deadline=None)
@given(queries(), st.data())
def test_a_column_after_alias_dot_is_one_of_that_alias_table(q, data):
    text, tables, language, items = q
    # alias.column, not a table named schema.table in FROM (its schema may be spelled as an alias)
    spots = [m for m in re.finditer(r"(\w+)\.(\w+)", text) if m.group(1) in dict(items) and m.group(0) not in tables]
    assume(spots)
    m = data.draw(st.sampled_from(spots))
    cursor = data.draw(st.integers(m.start(2), m.end(2)))
    found = complete(text, cursor, tables, language)
    table = dict(items)[m.group(1)]
    assert found.matches and {x.kind for x in found.matches} == {"column"}
    assert {x.text for x in found.matches} <= set(tables[table])
    assert m.group(2) in {x.text for x in found.matches}  # the column written there is offered


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([*"SELCT FROMWH a.b,()'\"[]`-*/\n;x1_", "demo.", "AS ", "--", "/*", "p."]), max_size=30).map("".join),
       st.integers(-5, 50), catalogs())
def test_never_raises_on_any_text(text, cursor, cat):
    tables, language = cat
    found = complete(text, cursor, tables, language)
    assert 0 <= found.start <= max(0, min(cursor, len(text)))


DEMO = table_names([{"name": "PhotoObj", "columns": [{"name": c} for c in ("objid", "ra", "dec", "r")]},
                    {"name": "SpecObj", "columns": [{"name": c} for c in ("specobjid", "objid", "z", "class")]}], "adql", "demo")


def _texts(sql: str, language: str = "adql", tables=DEMO) -> list[str]:
    cursor = sql.index("|")
    return [m.text for m in complete(sql.replace("|", ""), cursor, tables, language).matches]


def test_what_each_place_offers():
    assert _texts("SELECT * FROM |") == ["demo.PhotoObj", "demo.SpecObj"]
    assert _texts("SELECT * FROM demo.Sp|") == _texts("SELECT demo.z FROM demo.Sp| AS demo") == ["SpecObj"]
    assert _texts("SELECT s.| FROM demo.PhotoObj AS p JOIN demo.SpecObj s ON s.objid = p.objid") == ["specobjid", "objid", "z", "class"]
    assert _texts("SELECT TOP 5 | FROM demo.PhotoObj")[:4] == ["objid", "ra", "dec", "r"]
    assert _texts("SELECT TOP 5 d| FROM demo.PhotoObj") == ["dec", "distance", "degrees", "distinct", "desc"]
    assert set(ADQL_GEOMETRY) <= set(_texts("SELECT | FROM demo.PhotoObj"))
    assert _texts("SELECT * FROM demo.PhotoObj WHERE 1 = CONTAINS(POINT(ra, dec), cir|") == ["circle"]
    assert _texts("SELECT * FROM PhotoObj WHERE |", "sql", table_names([{"name": "PhotoObj", "columns": []}], "sql"))[:2] == ["PhotoObj", "ABS"]
    assert "circle" not in _texts("SELECT ci| FROM PhotoObj", "sql")
    assert _texts("SELECT 'p.|' FROM demo.PhotoObj AS p") == _texts("SELECT x FROM demo.PhotoObj -- p.|") == []
    assert _texts("SELECT q.| FROM (SELECT 1 AS one) AS q") == _texts("SELECT * FROM demo.PhotoObj AS P|") == []
    assert _texts("SELECT * FROM demo.PhotoObj AS p J|") == ["JOIN"]
