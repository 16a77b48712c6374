"""VOParquet: the Parquet writer's VOTable metadata (IVOA note 1.0) against the Parquet schema, read back
by pyarrow and by astropy's ``parquet.votable`` reader.

astropy's reader stacks an empty table made from the FIELDs onto its own reading of the Parquet file, which
it can do only for numbers and booleans without NULLs: text declared ``arraysize="*"`` becomes an object
column it cannot stack onto its fixed-width strings, NULL text and booleans fail in its Parquet reader, and
timestamps, dates, bytes and decimals do not stack onto a VOTable's char/double columns. Those columns are
checked through the content document (parsed by astropy) and pyarrow's values instead.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import shutil
import warnings
from xml.etree import ElementTree

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.io.votable import parse as parse_votable
from astropy.table import Table
from hypothesis import HealthCheck, given, settings, strategies as st

from jupyter_archive.core.formats import ResultInfo
from jupyter_archive.core.formats.base import field_meta, with_meta

from tests.support.faces import votlint
from tests.support.formats import SOURCE, encode

VERSION, CONTENT = b"IVOA.VOTable-Parquet.version", b"IVOA.VOTable-Parquet.content"

# Arrow type, the values hypothesis draws for it, the FIELD that describes its Parquet column
# ((datatype, arraysize, xtype), the VOTable's types of the same values) and whether astropy's
# parquet.votable reader reads it (booleans: when they have no NULLs).
_I = lambda bits: st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
_U = lambda bits: st.integers(0, 2**bits - 1)
_F32 = st.floats(width=32, allow_nan=False)
TYPES = [
    (pa.int8(), _I(8), ("short", None, None), True), (pa.int16(), _I(16), ("short", None, None), True),
    (pa.int32(), _I(32), ("int", None, None), True), (pa.int64(), _I(64), ("long", None, None), True),
    (pa.uint8(), _U(8), ("short", None, None), True), (pa.uint16(), _U(16), ("int", None, None), True),
    (pa.uint32(), _U(32), ("long", None, None), True),
    # uint64 is declared long; astropy stacks it onto int64 as float64, exact up to 2**53 only
    (pa.uint64(), _U(53), ("long", None, None), True),
    (pa.float32(), _F32, ("float", None, None), True), (pa.float64(), st.floats(allow_nan=False), ("double", None, None), True),
    (pa.bool_(), st.booleans(), ("boolean", None, None), True),
    (pa.string(), st.text(max_size=8), ("char", "*", None), False),
    (pa.timestamp("us"), st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1)), ("char", "*", "timestamp"), False),
    (pa.date32(), st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)), ("char", "*", "timestamp"), False),
    (pa.list_(pa.float64()), st.lists(st.floats(allow_nan=False), max_size=3), ("double", "*", None), False),
    (pa.list_(pa.int32()), st.lists(_I(32), max_size=3), ("int", "*", None), False),
    (pa.list_(pa.float32(), 2), st.lists(_F32, min_size=2, max_size=2), ("float", "2", None), False),
]
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@st.composite
def tables(draw):
    """A table of 1-6 columns of drawn types, 0-5 rows (NULLs among them), drawn units, UCDs, descriptions."""
    kinds = draw(st.lists(st.sampled_from(range(len(TYPES))), min_size=1, max_size=6))
    n = draw(st.integers(0, 5))
    fields, arrays = [], []
    for i, k in enumerate(kinds):
        typ, values, _, _ = TYPES[k]
        meta = {key: draw(st.none() | _TEXT.filter(str.strip)) for key in ("unit", "ucd", "description")}
        fields.append(with_meta(pa.field(f"c{i}", typ), **meta))
        arrays.append(pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), typ))
    return pa.table(arrays, schema=pa.schema(fields))


def _xml_strip(text: str | None) -> str | None:
    """A description as astropy reads it: XML's white space (not Unicode's) stripped around it."""
    return text.strip(" \t\n\r") if text else text


def _kind(t: pa.DataType) -> tuple:
    return next(k for k in TYPES if k[0] == t)


def _content(data: bytes):
    md = pq.read_schema(io.BytesIO(data)).metadata
    assert md[VERSION] == b"1.0"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy must not complain about the document
        warnings.simplefilter("ignore", u.UnitsWarning)  # but the units are the data's (drawn text): not the document's to fix
        return parse_votable(io.BytesIO(md[CONTENT])).get_first_table()


def _astropy(data: bytes) -> Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its Parquet reader warns that no string lengths are given
        return Table.read(io.BytesIO(data), format="parquet.votable")


def _same(got, want, exact: bool) -> bool:
    if want is None:
        return got is np.ma.masked or (isinstance(got, float) and math.isnan(got))
    return got == want if exact else float(got) == float(want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_fields_describe_the_parquet_columns(table):
    data = encode("parquet", table, ResultInfo(query="SELECT *"), chunk=2)
    parquet = pq.read_table(io.BytesIO(data))
    assert parquet.to_pylist() == table.to_pylist()  # plain pyarrow reads every file
    fields = _content(data).fields
    doc = ElementTree.fromstring(pq.read_schema(io.BytesIO(data)).metadata[CONTENT])
    units = {e.get("name"): e.get("unit") for e in doc.iter() if e.tag.endswith("FIELD")}
    written = {e.get("name"): next((d.text for d in e if d.tag.endswith("DESCRIPTION")), None)
               for e in doc.iter() if e.tag.endswith("FIELD")}
    assert [f.name for f in fields] == parquet.column_names
    for f, col in zip(fields, parquet.schema):
        want = field_meta(table.schema.field(col.name))
        assert (f.datatype, f.arraysize, f.xtype) == _kind(table.schema.field(col.name).type)[2]
        # the unit as written (astropy reads it as a unit: "1" becomes "", a deprecated "G" warns)
        assert units[col.name] == want.get("unit")
        # the description as written; astropy strips the element's surrounding white space
        assert written[col.name] == want.get("description")
        desc = want.get("description")
        assert (f.ucd, f.description) == (want.get("ucd"), _xml_strip(desc))
    readable = [name for name, col in zip(table.column_names, table.columns)
                if _kind(col.type)[3] and not (col.type == pa.bool_() and col.null_count)]
    if not readable:
        return
    subset = table.select(readable)
    got = _astropy(encode("parquet", subset))
    assert got.colnames == readable and len(got) == subset.num_rows
    for name, col in zip(readable, subset.columns):
        exact = not col.null_count  # astropy reads integers with NULLs as floats, NULL as NaN
        assert all(_same(g, w, exact) for g, w in zip(got[name].tolist(), col.to_pylist())), name
        desc = field_meta(subset.schema.field(name)).get("description")
        assert got[name].description == _xml_strip(desc)


def test_the_content_document_is_a_valid_votable_with_the_query_status(tmp_path):
    data = encode("parquet", info=ResultInfo(truncated=True, query="SELECT <all> & more"))
    doc = pq.read_schema(io.BytesIO(data)).metadata[CONTENT]
    assert b"<DATA" not in doc
    assert doc.index(b'<INFO name="QUERY_STATUS" value="OVERFLOW"/>') > doc.index(b"</TABLE>")
    table = _content(data)
    assert [f.name for f in table.fields] == SOURCE.column_names
    ra = table.get_field_by_id_or_name("ra")
    assert (str(ra.unit), ra.ucd, ra.description) == ("deg", "pos.eq.ra;meta.main", 'Right <ascension> & "J2000"')
    if shutil.which("stilts"):
        assert votlint(tmp_path, doc) == []
    not_cut = pq.read_schema(io.BytesIO(encode("parquet", SOURCE.slice(0, 0)))).metadata[CONTENT]
    assert b"OVERFLOW" not in not_cut and b'<FIELD name="ra"' in not_cut


@pytest.mark.parametrize("name", ["parquet", "vo-parquet", "voparquet"])
def test_the_names_that_ask_for_it(name):
    assert CONTENT in pq.read_schema(io.BytesIO(encode(name))).metadata
