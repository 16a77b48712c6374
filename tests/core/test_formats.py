"""Round trips through the text and table formats: encode with jupyter_archive.core.formats, read back
with the library that reads that format, compare with the source values (VOTable and FITS:
test_formats_votable_fits; negotiation: test_format_negotiation)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import re
import threading
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jupyter_archive.core.formats import ResultInfo, by_name, negotiate
from jupyter_archive.core.formats.base import field_meta, slices
from jupyter_archive.core.formats.arrow import ROW_GROUP

from tests.support.html_table import html_cells
from tests.support.formats import ALL, TRICKY, SCHEMA, KIND, ROWS, SOURCE, EMPTY, COLS, encode, from_text, assert_rows


# --- text formats ---------------------------------------------------------------------------


def test_csv_round_trip():
    data = encode("csv")
    assert data.splitlines()[0] == ",".join(COLS).encode()
    df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    assert list(df.columns) == COLS
    rows = [{k: (v if v != "" else None) for k, v in r.items()} for r in df.to_dict("records")]
    assert_rows(rows, parse=lambda n, v: from_text(KIND[n], v), empty_is_null={"name", "blob"})
    # pandas' own typing keeps the big ids exact as well
    typed = pd.read_csv(io.BytesIO(data), dtype={"id": "Int64", "u64": "UInt64"})
    assert typed["id"].tolist()[:2] == [2**53 + 1, -(2**62) - 7] and typed["u64"][0] == 2**64 - 1


def test_csv_of_many_slices_keeps_row_order():
    # Slices are rendered on two threads at once; the output must still be in row order.
    n = 300_000
    rng = np.random.default_rng(3)
    table = pa.table({"i": np.arange(n), "x": rng.normal(size=n), "s": [f"r{k}" for k in range(n)]})
    batches = table.to_batches(max_chunksize=70_000)
    data = b"".join(by_name("csv").encode(table.schema, iter(batches), ResultInfo()))
    back = pd.read_csv(io.BytesIO(data))
    assert back["i"].tolist() == list(range(n))
    assert np.array_equal(back["x"].to_numpy(), table["x"].to_numpy()) and back["s"].iloc[-1] == f"r{n - 1}"


def test_parallel_slices_render_a_single_slice_in_the_callers_thread():
    # A quick result is one slice: handing it to the render pool would only add a thread hop.
    where = lambda b: (threading.current_thread().name, b.num_rows)
    small = pa.record_batch({"i": pa.array(range(10))})
    assert list(slices([small], 16, where, parallel=True)) == [(threading.current_thread().name, 10)]
    big = pa.record_batch({"i": pa.array(range(5000))})
    out = list(slices([big], 1 << 20, where, rows=1024, parallel=True))
    assert [n for _, n in out] == [1024] * 4 + [904]
    assert all(name.startswith("archive-render") for name, _ in out)


def test_csv_dialect_details():
    t = pa.table({"x": [1.0, float("nan"), float("inf"), None], "s": ["", None, "q", 'say "hi"']})
    assert encode("csv", t).decode() == 'x,s\n1,""\n,\n,"q"\n,"say ""hi"""\n'
    ts = pa.table({"t": pa.array([dt.datetime(2015, 1, 31, 10, 30)], pa.timestamp("s"))})
    assert encode("csv", ts).decode() == 't\n"2015-01-31T10:30:00"\n'


def _tsv_unescape(s):
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m.group(1)], s)


def test_tsv_round_trip():
    data = encode("tsv")
    assert b'"' not in data.replace(b'"c"', b"")  # no quoting
    df = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    rows = [{k: (_tsv_unescape(v) if v != "" else None) for k, v in r.items()} for r in df.to_dict("records")]
    assert_rows(rows, parse=lambda n, v: from_text(KIND[n], v), empty_is_null={"name", "blob"})


def _json_parse(name, v):
    return from_text(KIND[name], v) if isinstance(v, str) and KIND[name] in ("ts", "date", "bytes") else v


def test_json_round_trip():
    data = encode("json")
    rows = json.loads(data)
    assert [list(r) for r in rows] == [COLS] * len(ROWS)
    assert_rows(rows, parse=_json_parse)
    assert json.loads(encode("json", pa.table({"x": [1.0]}))) == [{"x": 1.0}]
    assert isinstance(json.loads(encode("json", pa.table({"x": [1.0]})))[0]["x"], float)
    assert pd.read_json(io.BytesIO(encode("json", SOURCE.select(["id", "ra", "name"])))).shape == (5, 3)


def test_ldjson_round_trip():
    lines = encode("ldjson").decode().split("\n")
    assert lines[-1] == "" and len(lines) == len(ROWS) + 1
    assert_rows([json.loads(x) for x in lines[:-1]], parse=_json_parse)
    df = pd.read_json(io.BytesIO(encode("ldjson", SOURCE.select(["id", "name"]).slice(0, 2))), lines=True)
    assert df["id"].tolist()[0] == 2**53 + 1


def test_json_table_round_trip():
    doc = json.loads(encode("json-table", info=ResultInfo(truncated=True)))
    assert list(doc) == ["columns", "data", "rows", "truncated"]
    assert doc["rows"] == len(ROWS) and doc["truncated"] is True
    cols = {c["name"]: c for c in doc["columns"]}
    assert cols["ra"] == {"name": "ra", "datatype": "double", "arrow_type": "double", "unit": "deg",
                          "ucd": "pos.eq.ra;meta.main", "description": 'Right <ascension> & "J2000"'}
    assert [cols[n]["datatype"] for n in ("id", "i8", "u16", "mag", "name", "flag", "ts", "blob")] == [
        "long", "short", "int", "float", "char", "boolean", "char", "unsignedByte"]
    assert_rows([dict(zip(COLS, r)) for r in doc["data"]], parse=_json_parse)


def test_json_casjobs_round_trip():
    doc = json.loads(encode("json-array-casjobs", info=ResultInfo(table_name="MyTable")))
    (res,) = doc["Result"]
    assert res["TableName"] == "MyTable" and res["Columns"] == COLS and res["Truncated"] is False
    assert_rows([dict(zip(COLS, r)) for r in res["Data"]], parse=_json_parse)
    assert json.loads(encode("json-array-casjobs", EMPTY))["Result"][0]["Data"] == []


def test_xml_round_trip():
    t = SOURCE.append_column("odd name:1", pa.array([1, 2, 3, 4, 5]))
    root = ET.fromstring(encode("xml", t, ResultInfo(truncated=True, table_name="Table1")))
    assert root.tag == "NewDataSet" and root.get("truncated") == "true"
    rows = root.findall("Table1")
    assert [r.find("odd_x0020_name_x003A_1").text for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[2].find("id") is None  # NULL: element omitted
    parsed = [{c.tag: (c.text or "") for c in r} for r in rows]
    assert_rows(parsed, parse=lambda n, v: from_text(KIND[n], v), empty_is_null={"name", "blob"})


XS = "{http://www.w3.org/2001/XMLSchema}"
MSDATA = "{urn:schemas-microsoft-com:xml-msdata}"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


def _dataset(table, info=None):
    """(root, {column: (xs type, DateTimeMode)}, rows as {column: element}) of a DataSet XML."""
    data = encode("dataset", table, info or ResultInfo(table_name="Table1"))
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n<NewDataSet>')
    root = ET.fromstring(data)
    schema = root.find(f"{XS}schema")
    ds = schema.find(f"{XS}element")
    assert (ds.get("name"), ds.get(f"{MSDATA}IsDataSet"), ds.get(f"{MSDATA}UseCurrentLocale")) == ("NewDataSet", "true", "true")
    (tbl,) = ds.find(f"{XS}complexType/{XS}choice").findall(f"{XS}element")
    assert tbl.get("name") == "Table1"
    cols = {}
    for c in tbl.findall(f"{XS}complexType/{XS}sequence/{XS}element"):
        assert c.get("minOccurs") == "0"
        cols[c.get("name")] = (c.get("type"), c.get(f"{MSDATA}DateTimeMode"))
    rows = [{c.tag: c for c in r} for r in root.findall("Table1")]
    return root, cols, rows


def test_dataset_schema_types_and_values():
    """What .NET's DataSet.WriteXml(WriteSchema) writes: the inline schema with the XSD types .NET
    gives its columns, then the rows; every value reads back as the source value."""
    root, cols, rows = _dataset(SOURCE)
    assert cols == {
        "id": ("xs:long", None), "u64": ("xs:unsignedLong", None), "i8": ("xs:byte", None), "i16": ("xs:short", None),
        "i32": ("xs:int", None), "u8": ("xs:unsignedByte", None), "u16": ("xs:unsignedShort", None),
        "u32": ("xs:unsignedInt", None), "ra": ("xs:double", None), "mag": ("xs:float", None), "name": ("xs:string", None),
        "flag": ("xs:boolean", None), "ts": ("xs:dateTime", "Unspecified"), "d": ("xs:dateTime", "Unspecified"),
        "blob": ("xs:base64Binary", None), "dec": ("xs:decimal", None),
    }  # fmt: skip
    assert rows[2] == {}  # a row of NULLs: no elements at all

    def parse(name, el):
        if el is None:
            return None
        text = el.text or ""
        if name == "d":
            assert text.endswith("T00:00:00")  # a date is a DateTime at midnight, as .NET has it
            return dt.datetime.fromisoformat(text).date()
        return from_text(KIND[name], {"NaN": "nan", "INF": "inf", "-INF": "-inf"}.get(text, text))

    assert_rows(rows, parse=parse)
    # white space at either end is kept for readers that drop white-space-only text; CR survives
    assert rows[1]["name"].get(XML_SPACE) is None and rows[1]["name"].text == TRICKY
    padded = _dataset(pa.table({"s": [" ", "a ", " a", "a b", "", None]}))[2]
    assert [r["s"].get(XML_SPACE) if "s" in r else "-" for r in padded] == ["preserve", "preserve", "preserve", None, None, "-"]
    assert [(r["s"].text or "") if "s" in r else None for r in padded] == [" ", "a ", " a", "a b", "", None]


def test_dataset_names_times_and_odd_values():
    t = pa.table({
        "Rows Affected": pa.array([1, None], pa.int32()), "a": [1.5, float("-inf")], "A": ["x\x01y\ufffe", "<&>"],
        "": [True, None], "ts": pa.array([dt.datetime(2020, 1, 2, 3, 4, 5, 500000), None], pa.timestamp("us", tz="UTC")),
        "tm": pa.array([dt.time(10, 30, 0, 250000), dt.time(0, 0)]), "dur": pa.array([90061_000_000, -5], pa.duration("us")),
        "wide": pa.array([decimal.Decimal("1" * 30), None], pa.decimal128(38, 0)), "nested": [[1, 2], None],
        "half": pa.array([1.5, 2.25], pa.float16()),
    })  # fmt: skip
    _, cols, rows = _dataset(t, ResultInfo(table_name="Table1", truncated=True, row_limit=2))
    # names as .NET encodes them, unique ignoring case as a DataTable needs; unnamed ones ColumnN
    assert list(cols) == ["Rows_x0020_Affected", "a", "A1", "Column4", "ts", "tm", "dur", "wide", "nested", "half"]
    assert cols["ts"] == ("xs:dateTime", "Utc") and cols["tm"] == cols["dur"] == ("xs:duration", None)
    assert cols["wide"] == ("xs:string", None) and cols["nested"] == ("xs:string", None) and cols["half"] == ("xs:float", None)
    first, second = [{k: v.text for k, v in r.items()} for r in rows]
    assert first == {"Rows_x0020_Affected": "1", "a": "1.5", "A1": "x\ufffdy\ufffd", "Column4": "true",
                     "ts": "2020-01-02T03:04:05.5Z", "tm": "PT10H30M0.25S", "dur": "P1DT1H1M1S", "wide": "1" * 30,
                     "nested": "[1, 2]", "half": "1.5"}  # fmt: skip
    assert second == {"a": "-INF", "A1": "<&>", "tm": "PT0S", "dur": "-PT0.000005S", "half": "2.25"}
    assert b"<!-- truncated: the row limit of 2 rows cut this result -->" in encode("dataset", t, ResultInfo(truncated=True, row_limit=2))


def test_html_table_round_trip():
    data = encode("html", info=ResultInfo(table_name="Table<1>", truncated=True)).decode()
    assert data.startswith("<!DOCTYPE html>") and "<caption>Table&lt;1&gt;</caption>" in data
    assert 'title="deg; Right &lt;ascension&gt; &amp; &quot;J2000&quot;"' in data  # unit and description
    assert "The row limit cut this result" in data
    head, *rows = html_cells(data)
    assert head == COLS
    parse = lambda n, v: from_text(KIND[n], {"NaN": "nan"}.get(v, v)) if v != "" else None
    assert_rows([dict(zip(COLS, r)) for r in rows], parse=parse, empty_is_null={"name", "blob"})


# --- Parquet / Arrow --------------------------------------------------------------------------


def _nan_safe(rows):
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def _check_arrow_table(t, truncated):
    assert t.schema.metadata[b"archive.truncated"] == (b"true" if truncated else b"false")
    assert field_meta(t.schema.field("ra")) == field_meta(SCHEMA.field("ra"))
    assert t.schema.remove_metadata() == SCHEMA.remove_metadata()
    assert _nan_safe(t.to_pylist()) == _nan_safe(SOURCE.to_pylist())
    assert t.column("id").to_pylist()[0] == 2**53 + 1


def test_parquet_round_trip():
    _check_arrow_table(pq.read_table(io.BytesIO(encode("parquet", info=ResultInfo(truncated=True)))), True)
    assert pq.read_table(io.BytesIO(encode("parquet", EMPTY))).num_rows == 0


def test_arrow_round_trip():
    _check_arrow_table(pa.ipc.open_stream(encode("arrow")).read_all(), False)
    assert pa.ipc.open_stream(encode("arrow", EMPTY)).read_all().schema.names == COLS


# --- every format: empty results and laziness ------------------------------------------------


@pytest.mark.parametrize("name", [n for n in ALL if n != "ldjson"])
def test_header_for_zero_batches(name):
    data = b"".join(by_name(name).encode(SCHEMA, iter([]), ResultInfo()))
    assert data
    if name in ("csv", "tsv"):
        assert data.decode().split("\n")[0].split("," if name == "csv" else "\t") == COLS
    elif name == "json":
        assert json.loads(data) == []
    assert data == encode(name, EMPTY)


def test_ldjson_zero_rows_is_empty():
    assert b"".join(by_name("ldjson").encode(SCHEMA, iter([]), ResultInfo())) == b""


@pytest.mark.parametrize("name", [n for n in ALL if n != "fits"] + ["votable/tabledata", "votable/binary"])
def test_encoders_consume_lazily(name):
    consumed = [0]
    schema = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("name", pa.string())])

    def batches():
        for k in range(200):
            consumed[0] += 1
            ids = np.arange(k * 10_000, (k + 1) * 10_000)
            yield pa.record_batch([pa.array(ids), pa.array(ids * 0.5), pa.array([f"n{i}" for i in ids])], schema=schema)

    fmt = by_name(name)
    it = fmt.encode(schema, batches(), ResultInfo())
    assert consumed[0] == 0  # nothing runs before the first chunk is asked for
    first = next(it)
    # Parquet gathers a row group (ROW_GROUP rows) and fetches the next while it is encoded.
    window = 10 if name != "parquet" else 2 * (ROW_GROUP // 10_000 + 1) + 1
    assert first and consumed[0] < window
    assert consumed[0] < 200
    total = len(first) + sum(len(c) for c in it)
    assert consumed[0] == 200 and total > 1_000_000


def test_fits_spools_everything_first():
    consumed = [0]

    def batches():
        for k in range(5):
            consumed[0] += 1
            yield pa.record_batch([pa.array(np.arange(10), pa.int64())], names=["a"])

    it = by_name("fits").encode(pa.schema([("a", pa.int64())]), batches(), ResultInfo())
    next(it)
    assert consumed[0] == 5


def test_csv_pipe_delimiter_fast_path():
    fmt = negotiate('text/csv;columnDelimiter="|";rowDelimiter="\\r\\n"')
    data = encode(fmt, SOURCE.select(["id", "name"])).decode()
    assert data.startswith("id|name\r\n9007199254740993|")
    df = pd.read_csv(io.StringIO(data), sep="|", dtype=str, keep_default_na=False)
    assert df["name"].tolist()[1] == TRICKY


def test_small_json_batches_take_a_python_path_with_the_same_values():
    """Small batches are encoded in plain Python (cheaper than per-column vector calls); the
    values must be exactly those of the vectorised path."""
    import json as _json

    from jupyter_archive.core.formats import json as F

    rng = np.random.default_rng(7)
    n = 40
    batch = pa.record_batch({
        "i": pa.array(rng.integers(-2**62, 2**62, n)),
        "f64": pa.array(np.concatenate([rng.normal(0, 1e3, n - 6) * 10.0 ** rng.integers(-30, 30, n - 6),
                                        [1.0, 0.0, 1e20, 1e-7, float("nan"), 5e-324]])),
        "f32": pa.array(np.concatenate([rng.normal(0, 30, n - 3), [1.0, 3.0e10, float("inf")]]).astype(np.float32)),
        "s": pa.array([f'x"{i}\\\n\tü\x01' if i % 3 else None for i in range(n)]),
        "b": pa.array([bool(i % 2) if i % 5 else None for i in range(n)]),
    })
    assert n <= F._SMALL_ROWS
    small = F._json_rows(batch, batch.schema.names, objects=True, prefix="\n", suffix="")
    saved, F._SMALL_ROWS = F._SMALL_ROWS, 0
    try:
        vector = F._json_rows(batch, batch.schema.names, objects=True, prefix="\n", suffix="")
    finally:
        F._SMALL_ROWS = saved
    rows_small = [_json.loads(line) for line in small.decode().strip().splitlines()]
    rows_vector = [_json.loads(line) for line in vector.decode().strip().splitlines()]
    assert rows_small == rows_vector
    assert all(isinstance(r["f64"], float) or r["f64"] is None for r in rows_small)
