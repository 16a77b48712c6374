"""Exports that keep pandas out of the server: making an Arrow array of Python objects (or NumPy
values) makes pyarrow import pandas the first time, 0.27 s and ~53 MB the process never gives back.
A Parquet (VOParquet) and a CSV export import none of it, whatever their FIELDs' descriptions."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from jupyter_archive.core.formats.text import xml_escape, xml_string


@given(st.text())
def test_a_description_is_escaped_as_cells_are(value):
    assert xml_string(value) == str(xml_escape(pa.array([value], pa.string()))[0])


SCRIPT = """
import sys
import duckdb
from jupyter_archive.core import formats
from jupyter_archive.core.formats.base import ResultInfo, annotate
# Rows as the engine gives them (DuckDB's Arrow export does not ask pyarrow about pandas).
reader = duckdb.sql("SELECT i / 7 AS ra, 'a' || i AS name, (i % 9)::SMALLINT AS n FROM range(100000) t(i)").to_arrow_reader(8192)
schema = annotate(reader.schema, {"ra": {"unit": "deg", "description": "Right ascension <J2000> & more\\r"}, "name": {"description": "x"}})
assert "pandas" not in sys.modules
batches = list(reader)
for name in sys.argv[1:]:
    body = b"".join(formats.by_name(name).encode(schema, batches, ResultInfo()))
    assert body and "pandas" not in sys.modules, name
"""


def test_parquet_and_csv_exports_do_not_import_pandas():
    done = subprocess.run([sys.executable, "-c", SCRIPT, "parquet", "csv"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
