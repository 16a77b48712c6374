"""A quick result's few rows are written in Python (json.py, delimited.py: cheaper than vector calls for a handful);
whatever the values, the bytes must be those the vector path writes for the same rows (a result of 64 rows must not
read differently from one of 65)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.formats import ResultInfo, negotiate
from jupyter_archive.core.formats import delimited, json as json_format
from jupyter_archive.core.formats.base import float_text

SMALL = 64  # rows: both modules' limit of the Python path

COLUMNS = {
    "i64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "u8": (pa.uint8(), st.integers(0, 255)),
    "f64": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "f32": (pa.float32(), st.floats(width=32, allow_nan=True, allow_infinity=True)),
    "s": (pa.string(), st.text(alphabet=st.characters(codec="utf-8"), max_size=12)),
    "b": (pa.bool_(), st.booleans()),
}


@st.composite
def batches(draw):
    names = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=6))
    n = draw(st.integers(1, SMALL))
    arrays = [pa.array(draw(st.lists(st.none() | COLUMNS[c][1], min_size=n, max_size=n)), COLUMNS[c][0]) for c in names]
    return pa.record_batch(arrays, names=[f"{c}_{i}" for i, c in enumerate(names)])


FORMATS = ["json", "json-table", "json-array-casjobs", "ldjson", "csv", 'text/csv;columnDelimiter="|";rowDelimiter="\\r\\n"']


def _written(fmt: str, batch: pa.RecordBatch) -> bytes:
    f = negotiate(fmt) if "/" in fmt else negotiate(None, fmt)
    return b"".join(f.encode(batch.schema, [batch], ResultInfo(table_name="t")))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_a_few_rows_are_written_as_the_vector_path_writes_them(fmt, batch):
    small = _written(fmt, batch)
    saved = json_format._SMALL_ROWS, delimited._SMALL_ROWS
    json_format._SMALL_ROWS = delimited._SMALL_ROWS = 0  # every batch through the vector path
    try:
        vector = _written(fmt, batch)
    finally:
        json_format._SMALL_ROWS, delimited._SMALL_ROWS = saved
    assert small == vector


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=2000)
def test_float_text_is_arrows_text(v):
    assert float_text(v) == pa.array([v]).cast(pa.string())[0].as_py()


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
@settings(max_examples=2000)
def test_float32_text_is_arrows_text(v):
    assert float_text(v, single=True) == pa.array([v], pa.float32()).cast(pa.string())[0].as_py()


def test_the_python_path_is_taken():
    """The cases above compare two paths only if the small one runs: a float Python's repr writes otherwise
    (1e15 as 1000000000000000.0) reaches float_text, and a tiny CSV never reaches pyarrow's writer."""
    batch = pa.record_batch([pa.array([1e15, 16777216.0]), pa.array([1e-6, None], pa.float32())], names=["a", "b"])
    assert _written("csv", batch) == b"a,b\n1e+15,0.000001\n16777216,\n"
    assert json_format._py_json_column(batch.column(0)) == ["1e+15", "16777216.0"]
    assert delimited._csv_rows_small(batch, ",", "\n") == b"1e+15,0.000001\n16777216,\n"
