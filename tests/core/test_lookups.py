"""Point lookups answered from key indexes (core/execution/lookups.py): the engine's answer, exactly, and never stale.

Each test compares ``Queries.lookup`` (the key index) with ``Queries.query`` (the engine) on the same text: the same
schema (with its metadata), the same rows, the same truncation. A lookup may decline (None: the face then runs the
query); the tests also check that it answers the reads it is for, so they fail if it never does.
"""

from __future__ import annotations

import random
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution import lookups
from jupyter_archive.core.execution.lookups import KeyIndex

KEY_TYPES = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "UTINYINT": pa.uint8(), "UBIGINT": pa.uint64()}
HYPOTHESIS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _rows(rng: random.Random, n: int, key_type: pa.DataType) -> pa.Table:
    """A table of many column types, its key ``k`` with duplicates and NULLs."""
    lo, hi = (0, 250) if key_type.id == pa.uint8().id else (-40, 40) if pa.types.is_signed_integer(key_type) else (0, 80)
    keys = [None if rng.random() < 0.1 else rng.randint(lo, hi) for _ in range(n)]
    if key_type == pa.uint64() and n:
        keys[0] = 2**64 - 1  # past int64: numpy's unsigned searchsorted
    texts = ["", "a'b", 'q"uote', "é✓", None, "x" * 50]
    return pa.table({
        "k": pa.array(keys, key_type),
        "Ra": pa.array([rng.choice([rng.uniform(-1e300, 1e300), float("nan"), float("inf"), None, 0.1]) for _ in range(n)], pa.float64()),
        "name": pa.array([rng.choice(texts) for _ in range(n)], pa.string()),
        "day": pa.array([rng.choice([None, 0, 19000, -5]) for _ in range(n)], pa.date32()),
        "at": pa.array([rng.choice([None, 0, 1_700_000_000_000_000]) for _ in range(n)], pa.timestamp("us")),
        "amount": pa.array([rng.choice([None, 1, -12345]) for _ in range(n)], pa.decimal128(10, 3)),
        "tags": pa.array([rng.choice([None, [], [1, None, 3]]) for _ in range(n)], pa.list_(pa.int32())),
        "flag": pa.array([rng.choice([None, True, False]) for _ in range(n)], pa.bool_()),
        "f32": pa.array([rng.choice([None, 1.5, 16777216.0]) for _ in range(n)], pa.float32()),
    })  # fmt: skip


def _upload(a: Archive, p, name: str, table: pa.Table, mode: str = "replace") -> None:
    path = a.tables.upload_path(p, "MyDB")
    pq.write_table(table, path)
    try:
        a.tables.upload(p, "MyDB", name, path, "parquet", mode)
    finally:
        path.unlink()


def _plain(table: pa.Table) -> list:
    """The rows, NaN made comparable (it equals nothing, not even itself)."""
    return [[("NaN" if v != v else v) if isinstance(v, float) else v for v in row.values()] for row in table.to_pylist()]


def _same(a: Archive, p, text: str, language: str = "sql", **options):
    """The lookup's answer as a table (or None when it declined), after checking it against the engine's."""
    got = a.queries.lookup(p, text, language, context="MyDB", **options)
    try:
        want = a.queries.query(p, text, language, context="MyDB", **options)
    except ArchiveError:
        assert got is None, f"a key index answered what the engine refuses: {text}"
        return None
    want_table = want.to_table()
    if got is None:
        return None
    assert got.truncated == want.truncated, text
    table = got.to_table()
    assert table.schema.equals(want_table.schema, check_metadata=True), f"{text}\n{table.schema}\n!=\n{want_table.schema}"
    assert _plain(table) == _plain(want_table), f"{text}\n{table.to_pylist()}\n!=\n{want_table.to_pylist()}"
    return table


def _indexed(a: Archive, p, text: str, language: str = "sql", **options) -> None:
    """Look ``text`` up until a key index answers it (built in the background once wanted, the files quiet)."""
    a.queries.query(p, text, language, context="MyDB", **options).close()  # compiled: the lookup compiles nothing
    deadline = time.monotonic() + 20
    while a.queries.lookup(p, text, language, context="MyDB", **options) is None:
        assert time.monotonic() < deadline, f"no key index answered {text}"
        time.sleep(0.02)


@pytest.fixture
def core(archive_data_dir):
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=2_000))
    yield a, a.users.principal("alice")
    a.close()


@given(
    keys=st.lists(st.one_of(st.none(), st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1)), max_size=60),
    dtype=st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"]),
    probe=st.integers(-(2**64), 2**64),
)
def test_an_index_finds_the_rows_a_scan_finds(keys, dtype, probe):
    import numpy as np

    info = np.iinfo(dtype)
    keys = [k if k is None else min(max(k, info.min), info.max) for k in keys]
    index = KeyIndex(pa.table({"K": pa.array(keys, pa.from_numpy_dtype(np.dtype(dtype)))}), "k", ())
    for value in {probe, *[k for k in keys if k is not None][:3]}:
        found = index.find(value, most=1000)
        if not info.min <= value <= info.max:
            assert found is None  # the engine decides what a comparison out of the type's range means
            continue
        assert list(found) == [i for i, k in enumerate(keys) if k == value]  # in table order
        assert index.find(value, most=len(found) - 1) is None or not len(found)


@given(
    keys=st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "A", "a ", "it's", "é", "e\u0301", "✓"]), st.text(max_size=4)), max_size=40),
    probe=st.one_of(st.text(max_size=4), st.sampled_from(["a", "A", "a ", "é"]), st.integers(-3, 3)),
)
def test_a_text_index_finds_the_rows_a_scan_finds(keys, probe):
    index = KeyIndex(pa.table({"name": pa.array(keys, pa.string())}), "NAME", ())
    found = index.find(probe, most=1000)
    if not isinstance(probe, str):
        assert found is None  # a number for a text key: the engine casts it
    else:
        assert list(found) == [i for i, k in enumerate(keys) if k == probe]  # byte for byte, in table order


def test_point_lookups_of_every_face_language_give_the_engines_answer(core):
    a, p = core
    rng = random.Random(7)
    tables = {}
    for i, (engine_type, arrow_type) in enumerate(KEY_TYPES.items()):
        name = f"t{i}"
        tables[name] = (engine_type, _rows(rng, rng.choice([0, 1, 40, 300]) if i else 300, arrow_type))
        _upload(a, p, name, tables[name][1])
    time.sleep(lookups.QUIET)
    for name in tables:
        _indexed(a, p, f"SELECT * FROM {name} WHERE k = $id", params={"id": 1})
    _indexed(a, p, "SELECT * FROM t0 WHERE name = 'a''b'")  # a text key
    names = list(tables)
    columns = ["k", "Ra", "name", "day", "at", "amount", "tags", "flag", "f32"]
    served = []

    @HYPOTHESIS
    @given(
        name=st.sampled_from(names),
        value=st.one_of(st.integers(-45, 255), st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64, 10**30])),
        cols=st.one_of(st.just(None), st.lists(st.sampled_from(columns), min_size=1, max_size=4)),
        alias=st.booleans(),
        spelling=st.sampled_from([str.lower, str.upper, str]),
        form=st.sampled_from(["param", "literal", "adql", "tsql"]),
        top=st.one_of(st.none(), st.integers(1, 3)),
        text=st.one_of(st.none(), st.sampled_from(["", "a'b", 'q"uote', "é✓", "x" * 50, "A'B", "nope"])),
    )
    def check(name, value, cols, alias, spelling, form, top, text):
        select = "*" if cols is None else ", ".join(spelling(c) + (f" AS {c}_{i}" if alias and i % 2 else "") for i, c in enumerate(cols))
        if text is not None:  # by the text key instead
            name, value = "t0", text
        literal = "'" + value.replace("'", "''") + "'" if text is not None else str(value)
        where = f"{spelling('name' if text is not None else 'k')} = " + ("$id" if form == "param" else literal)
        if form in ("adql", "tsql"):
            text, language = f"SELECT {f'TOP {top} ' if top else ''}{select} FROM mydb.{name} WHERE {where}", form
        else:
            text, language = f"SELECT {select} FROM {name} WHERE {where}{f' LIMIT {top}' if top else ''}", "sql"
        options = {"params": {"id": value}} if form == "param" else {}
        a.queries.query(p, text, language, context="MyDB", **options).close()  # compiled (and, twice seen, its shape learnt)
        if _same(a, p, text, language, **options) is not None:
            served.append(text)

    check()
    assert len(served) > 20, "key indexes answered almost none of the point lookups"
    assert any("name =" in t.lower() for t in served), "no text key was answered"


def test_a_lookup_is_never_stale_whatever_writes_the_table(core, monkeypatch):
    a, p = core
    # Closer to the file clock's tick than the default: a stale answer would be likelier to show.
    monkeypatch.setattr(lookups, "QUIET", 0.05)
    rng = random.Random(11)
    _upload(a, p, "t", _rows(rng, 200, pa.int64()))
    lookup = "SELECT * FROM t WHERE k = $id"

    def write_sql(sql):
        a.queries.query(p, sql, "sql", context="MyDB").close()

    writes = {
        "insert": lambda v: write_sql(f"INSERT INTO t (k, name) VALUES ({v}, 'new')"),
        "update": lambda v: write_sql(f"UPDATE t SET name = 'changed', Ra = 1.25 WHERE k = {v}"),
        "delete": lambda v: write_sql(f"DELETE FROM t WHERE k = {v}"),
        "replace": lambda v: _upload(a, p, "t", _rows(random.Random(v), 50, pa.int64())),
        "append": lambda v: _upload(a, p, "t", _rows(random.Random(v + 1), 5, pa.int64()), "append"),
        "recreate": lambda v: write_sql(f"CREATE OR REPLACE TABLE t AS SELECT r.k + {v} AS k, name, Ra FROM range(3) r(k), (SELECT * FROM t LIMIT 2)"),
        "add column": lambda v: write_sql(f"ALTER TABLE t ADD COLUMN extra_{abs(v)} INTEGER DEFAULT {v}"),
        "checkpoint": lambda v: write_sql(f"UPDATE t SET flag = NOT flag WHERE k = {v}; CHECKPOINT"),
    }  # fmt: skip

    @settings(HYPOTHESIS, max_examples=8)
    @given(st.lists(st.tuples(st.sampled_from(sorted(writes)), st.integers(-40, 40), st.booleans()), min_size=1, max_size=6))
    def check(steps):
        _upload(a, p, "t", _rows(random.Random(len(steps)), 200, pa.int64()))
        time.sleep(lookups.QUIET)
        _indexed(a, p, lookup, params={"id": 0})
        fresh = True
        for kind, value, rebuild in steps:
            assert _same(a, p, lookup, params={"id": value}) is not None or not fresh, "an index of the table as it is did not answer"
            try:
                writes[kind](value)
            except ArchiveError:
                pass  # refused for the table as it is now (a column already added, an append of other columns)
            for probe in (value, value + 1, 0):
                _same(a, p, lookup, params={"id": probe})  # right at once: the engine answers until an index of now is built
            fresh = rebuild
            if rebuild:
                time.sleep(lookups.QUIET)
                _indexed(a, p, lookup, params={"id": value})
                _same(a, p, lookup, params={"id": value})

    check()


def test_a_table_over_the_budget_is_not_indexed_and_an_idle_index_is_dropped(archive_data_dir):
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=2_000, lookup_memory=200_000, engine_idle_seconds=1.0))
    try:
        p = a.users.principal("alice")
        rng = random.Random(3)
        _upload(a, p, "small", _rows(rng, 300, pa.int64()))
        _upload(a, p, "big", _rows(rng, 20_000, pa.int64()))
        time.sleep(lookups.QUIET)
        _indexed(a, p, "SELECT * FROM small WHERE k = 1")
        for _ in range(3 * lookups.DEMAND):
            assert _same(a, p, "SELECT * FROM big WHERE k = 1") is None, "a table over the budget got an index"
            time.sleep(0.01)
        held = a.queries.lookups._indexes
        assert len(held) == 1 and sum(i.nbytes for i in held.values()) <= 200_000
        time.sleep(1.6)
        assert not held, "an index unused for the idle time is still held"
    finally:
        a.close()


def test_reads_that_are_not_point_lookups_are_left_to_the_engine(core):
    a, p = core
    _upload(a, p, "t", _rows(random.Random(5), 100, pa.int64()).append_column("d", pa.array([float(i) for i in range(100)])))
    time.sleep(lookups.QUIET)
    _indexed(a, p, "SELECT * FROM t WHERE k = 1")
    for text in (
        "SELECT * FROM t WHERE k = 1 AND flag",
        "SELECT * FROM t WHERE k > 1",
        "SELECT k + 1 FROM t WHERE k = 1",
        "SELECT * FROM t WHERE k = 1 ORDER BY name",
        "SELECT * FROM t WHERE k = 1 OFFSET 1",
        "SELECT DISTINCT name FROM t WHERE k = 1",
        "SELECT * FROM t WHERE k = 1.5",
        "SELECT * FROM t WHERE d = 1",  # a key of another type
        "SELECT count(*) FROM t WHERE k = 1",
    ):
        for _ in range(2 * lookups.DEMAND):
            assert _same(a, p, text) is None, text
    assert a.queries.lookup(p, "SELECT * FROM t WHERE k = 1", "sql", context="MyDB", uploads=[{"name": "u"}]) is None


def test_writes_and_lookups_in_turn_cannot_keep_a_core_building_indexes(core, monkeypatch):
    """Each write makes the index stale and ``DEMAND`` lookups want it again: building rests ``REST`` times as long
    as the last build took, so such a loop spends at most about a ``1 / (REST + 1)`` of a core on builds."""
    a, p = core
    monkeypatch.setattr(lookups, "QUIET", 0.0)  # nothing else holds a build back
    a.queries.query(p, "CREATE TABLE t AS SELECT range AS k, range * 0.5 AS x, 'row ' || range AS s FROM range(1000000)", "sql", context="MyDB").close()
    _indexed(a, p, "SELECT * FROM t WHERE k = 1")
    held = a.queries.lookups
    spent, began, writes = held.build_seconds, time.monotonic(), 0
    while time.monotonic() - began < 4:
        a.queries.query(p, f"UPDATE t SET x = x + 1 WHERE k = {writes}", "sql", context="MyDB").close()
        writes += 1
        for _ in range(lookups.DEMAND + 1):
            _same(a, p, "SELECT * FROM t WHERE k = 1")
        time.sleep(0.005)
    elapsed = time.monotonic() - began
    time.sleep(0.2)
    one = spent  # the first build's time: one build may still have started just before the end
    assert held.build_seconds - spent <= elapsed / (lookups.REST + 1) + one, (held.build_seconds - spent, elapsed, writes)
    assert held.build_seconds - spent > 0, "no index was built again after the writes"


def test_a_text_key_with_a_collation_is_left_to_the_engine(core):
    a, p = core
    a.queries.query(p, "CREATE TABLE c (id VARCHAR COLLATE NOCASE, v INTEGER); INSERT INTO c VALUES ('Ab', 1), ('x', 2)", "sql", context="MyDB").close()
    time.sleep(lookups.QUIET)
    for _ in range(3 * lookups.DEMAND):
        assert _same(a, p, "SELECT * FROM c WHERE id = 'ab'") is None  # NOCASE: the engine finds 'Ab'
        time.sleep(0.01)
    assert a.queries.query(p, "SELECT v FROM c WHERE id = 'ab'", "sql", context="MyDB").to_table().to_pylist() == [{"v": 1}]
