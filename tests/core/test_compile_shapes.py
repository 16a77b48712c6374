"""The compile cache's second level (core/sql/literals.py): texts that differ only in their numbers share one
compilation. Whatever the numbers, a query answered through a learnt shape gives exactly what a fresh compilation
gives (rows and types); a number the compilation depends on is never pasted.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution.compiling import compile_text
from jupyter_archive.core.sql import literals


@given(st.text())
def test_a_shape_filled_with_its_numbers_is_the_text_again(text):
    form, numbers = literals.shape(text)
    if literals.MARK not in text:
        assert literals.fill(form, numbers) == text
        assert all(n.replace(".", "", 1).isdigit() for n in numbers)


def test_what_is_a_number_and_what_is_not():
    assert literals.shape("SELECT a1, 'x 5', \"c 9\", [d 3], $1, @v2, :x3, 1e5, 0x1F, 3. FROM t2 -- 7")[1] == []
    form, numbers = literals.shape("SELECT TOP 10 * FROM t WHERE ra > -1.5 AND id IN (3, 4)")
    assert numbers == ["10", "1.5", "3", "4"] and form.count(literals.MARK) == 4


@pytest.fixture(scope="module")
def core(tmp_path_factory, demo_dir):
    from tests.support import copy_demo

    data = tmp_path_factory.mktemp("shapes")
    copy_demo(demo_dir, data / "demo")
    a = Archive(ArchiveConfig(data_dir=data, demo_rows=20_000))
    yield a, a.users.principal("alice")
    a.close()


def _learn(a, p, text, language="adql", context="DEMO"):
    options = {"context": context}

    def again(t):
        return compile_text(a.catalog, p, t, language, options, 100_000)[0]

    return literals.learn(text, again(text), again)


def test_a_point_lookup_is_learnt_and_a_cone_or_a_capped_top_is_not_pasted(core):
    a, p = core
    point = _learn(a, p, "SELECT * FROM PhotoObj WHERE objid = 1237648720693755918")
    assert point is not None and not point.fixed
    # TOP n becomes the row cap's LIMIT: fixed, the rest still learnt
    top = _learn(a, p, "SELECT TOP 10 objid FROM PhotoObj WHERE ra > 150.5")
    assert top is None or (0 in top.fixed and top.matches(["10", "151.25"]) and not top.matches(["11", "151.25"]))
    # a cone's numbers are slots: its HEALPix ranges are made from them when rendered; the 1 of "1 = CONTAINS" is fixed
    text = "SELECT objid FROM PhotoObj WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {}, {}, {}))"
    cone = _learn(a, p, text.format(150.1, 2.2, 0.05))
    assert cone is not None and set(cone.fixed) == {0}
    (rendered,) = cone.render(["1", "185.5", "15.25", "0.125"]).statements
    (fresh,) = compile_text(a.catalog, p, text.format(185.5, 15.25, 0.125), "adql", {"context": "DEMO"}, 100_000)[0].statements
    assert rendered.sql == fresh.sql and "BETWEEN" in rendered.sql


NUMBER = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.decimals(-1000, 1000, places=3, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["0", "1", "10", "100000", "100001", "0.0", "90.0", "360.5"]),
)
FORMS = [
    ("adql", "SELECT TOP {0} objid, ra FROM PhotoObj WHERE ra > {1} ORDER BY objid"),
    ("adql", "SELECT objid, {0} AS k, ra * {1} AS r FROM PhotoObj WHERE objid = {2} OR dec BETWEEN {1} AND {0}"),
    ("adql", "SELECT count(*) AS n FROM PhotoObj WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {0}, {1}, 0.5))"),
    ("tsql", "SELECT TOP {0} objid FROM PhotoObj WHERE ra < {1} AND objid <> {2} ORDER BY objid"),
    ("sql", "SELECT objid, {0} + {1} AS s FROM PhotoObj WHERE dec > {2} ORDER BY objid LIMIT 5"),
]


def _rows(a, p, language, text, cached: bool):
    if cached:
        result = a.queries.query(p, text, language, context="DEMO")
    else:
        result = a.queries.run(p, a.queries.compile(p, text, language, explain=False, context="DEMO"), row_limit=a.queries.row_limit)
    with result:
        table = result.to_table()
    return table.schema.types, table.to_pylist(), result.truncated


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.sampled_from(FORMS), numbers=st.lists(st.tuples(NUMBER, NUMBER, NUMBER), min_size=3, max_size=3))
def test_through_a_learnt_shape_any_numbers_answer_as_a_fresh_compilation(core, form, numbers):
    a, p = core
    language, template = form
    for values in numbers:  # the first two teach the shape, the third (at least) goes through it
        text = template.format(*values)
        try:
            fresh = _rows(a, p, language, text, cached=False)
        except ArchiveError as exc:  # an invalid number fails the same way through the cache
            with pytest.raises(ArchiveError) as through:
                _rows(a, p, language, text, cached=True)
            assert through.value.status == exc.status, (text, exc.message, through.value.message)
            continue
        assert _rows(a, p, language, text, cached=True) == fresh, text
