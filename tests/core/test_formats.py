"""Round trips through every result format: encode with jupyter_archive.core.formats, read back
with the library that reads that format, compare with the source values."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
import re
import shutil
import subprocess
import threading
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.table import Table

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.formats import MEDIA_TYPES, ResultInfo, by_name, negotiate
from jupyter_archive.core.formats.base import field_meta, slices, with_meta

from tests.support.html_table import html_cells

ALL = ["csv", "tsv", "json", "json-table", "json-array-casjobs", "ldjson", "votable", "fits", "parquet", "arrow", "xml",
       "dataset", "html"]
SERIALIZATIONS = ["tabledata", "binary", "binary2"]
TRICKY = 'a,b "c"\nd\te\rf'


def _field(name, typ, **meta):
    return with_meta(pa.field(name, typ), **meta)


SCHEMA = pa.schema([
    _field("id", pa.int64(), ucd="meta.id;meta.main", description="object id"),
    _field("u64", pa.uint64()),
    _field("i8", pa.int8()), _field("i16", pa.int16()), _field("i32", pa.int32()),
    _field("u8", pa.uint8()), _field("u16", pa.uint16()), _field("u32", pa.uint32()),
    _field("ra", pa.float64(), unit="deg", ucd="pos.eq.ra;meta.main", description='Right <ascension> & "J2000"'),
    _field("mag", pa.float32(), unit="mag", ucd="phot.mag"),
    _field("name", pa.string(), description="object name"),
    _field("flag", pa.bool_()), _field("ts", pa.timestamp("us")), _field("d", pa.date32()),
    _field("blob", pa.binary()), _field("dec", pa.decimal128(10, 3)),
])
KIND = {"id": "int", "u64": "int", "i8": "int", "i16": "int", "i32": "int", "u8": "int", "u16": "int",
        "u32": "int", "ra": "float", "mag": "float32", "name": "str", "flag": "bool", "ts": "ts",
        "d": "date", "blob": "bytes", "dec": "decimal"}
ROWS = [
    [2**53 + 1, 2**64 - 1, -128, -32768, -(2**31), 255, 65535, 2**32 - 1, 10.5, 1.5, "München 東京", True,
     dt.datetime(2015, 1, 31, 10, 30), dt.date(2015, 1, 31), b"\x00\xff", decimal.Decimal("1.250")],
    [-(2**62) - 7, 0, 127, 32767, 2**31 - 1, 0, 0, 0, 0.1, float("nan"), TRICKY, False,
     dt.datetime(1999, 12, 31, 23, 59, 59, 500000), dt.date(1970, 1, 1), b"", decimal.Decimal("-3.500")],
    [None] * 16,
    [9007199254740995, 5, 0, 1, 2, 3, 4, 5, 1 / 3, 2.5, "plain", True,
     dt.datetime(2000, 1, 1), dt.date(2000, 1, 1), b"abc", decimal.Decimal("0")],
    [12345678901234567, 7, -1, -2, -3, 9, 10, 11, -1e-300, -3.25, "", False,
     dt.datetime(2024, 2, 29, 0, 0, 0, 123456), dt.date(2024, 2, 29), b"\x01", decimal.Decimal("99.999")],
]
SOURCE = pa.table([pa.array(col, type=f.type) for col, f in zip(zip(*ROWS), SCHEMA)], schema=SCHEMA)
EMPTY = SOURCE.slice(0, 0)
COLS = SCHEMA.names


def encode(fmt, table=SOURCE, info=None, chunk=2) -> bytes:
    fmt = by_name(fmt) if isinstance(fmt, str) else fmt
    chunks = list(fmt.encode(table.schema, iter(table.to_batches(max_chunksize=chunk)), info or ResultInfo()))
    assert all(chunks), "no empty chunks"
    return b"".join(chunks)


# --- comparing ------------------------------------------------------------------------------


def _missing(v) -> bool:
    return v is None or v is np.ma.masked or (isinstance(v, float) and math.isnan(v))


def _empty(v) -> bool:
    return isinstance(v, (str, bytes, list, tuple, np.ndarray)) and len(v) == 0


def from_text(kind, s):
    """A value as the text formats render it, parsed back to Python."""
    if s is None:
        return None
    return {
        "int": int, "float": float, "float32": float, "str": str, "decimal": decimal.Decimal,
        "bool": lambda x: {"true": True, "false": False, "T": True, "F": False}[x],
        "ts": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "bytes": base64.b64decode,
    }[kind](s)


def same(kind, got, want, *, empty_is_null=False) -> bool:
    """Whether a read-back value equals the source value (nulls, NaN and masked all 'missing')."""
    if _missing(want) or (kind in ("float", "float32") and want is not None and math.isnan(want)):
        return _missing(got) or (empty_is_null and _empty(got))
    if _missing(got):
        return empty_is_null and _empty(want)
    if kind == "float32":
        return np.float32(got) == np.float32(want)
    if kind in ("float", "decimal"):
        return float(got) == float(want)
    if kind == "int":
        return int(got) == want and not isinstance(got, float)
    if kind == "bytes" and not isinstance(got, (bytes, str)):
        return bytes(np.asarray(got, dtype=np.uint8)) == want
    if isinstance(got, bytes) and kind == "str":
        got = got.decode()
    return got == want


def assert_rows(rows, *, parse=None, empty_is_null=(), source=ROWS):
    """rows: list of {column: value}; parse(column, value) converts before comparing."""
    assert len(rows) == len(source)
    for i, (row, src) in enumerate(zip(rows, source)):
        for name, want in zip(COLS, src):
            got = row.get(name)
            if parse:
                got = parse(name, got)
            ok = same(KIND[name], got, want, empty_is_null=name in empty_is_null)
            assert ok, f"row {i} column {name}: got {got!r}, want {want!r}"


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


# --- VOTable ----------------------------------------------------------------------------------


def _votable(serialization, table=SOURCE, info=None):
    data = encode(by_name("votable", serialization=serialization), table, info)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy must not complain about anything
        vot = parse_votable(io.BytesIO(data))
    return data, vot


def _vo_parse(name, v):
    if KIND[name] in ("ts", "date", "bytes") and isinstance(v, str):
        return from_text(KIND[name], v) if v else None
    if KIND[name] == "int" and isinstance(v, str):  # uint64 travels as text
        return int(v) if v else None
    return v


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_votable_round_trip(serialization):
    data, vot = _votable(serialization, info=ResultInfo(truncated=True, query="SELECT *\nFROM t", table_name="T1"))
    table = vot.get_first_table()
    assert table.name == "T1"
    arr = table.array
    rows = [{n: (np.ma.masked if arr.mask[n][i].any() else arr[n][i]) for n in COLS} for i in range(len(arr))]
    rows = [{n: (r[n].tolist() if isinstance(r[n], np.ndarray) else r[n]) for n in COLS} for r in rows]
    source = ROWS
    if serialization == "binary":
        # BINARY has no null flags: an integer equal to the declared <VALUES null> (the type's
        # minimum) reads back as null, which is the documented price of that serialization
        minima = {"i16": -(2**15), "i32": -(2**31), "id": -(2**63)}
        source = [[None if minima.get(n) == v else v for n, v in zip(COLS, r)] for r in ROWS]
    assert_rows(rows, parse=_vo_parse, empty_is_null={"name", "u64", "ts", "d", "blob"}, source=source)
    fields = {f.name: f for f in table.fields}
    assert str(fields["ra"].unit) == "deg" and fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert fields["ra"].description == 'Right <ascension> & "J2000"'
    assert fields["ts"].xtype == "timestamp" and fields["ts"].arraysize == "*"
    infos = [(i.name, i.value) for i in vot.resources[0].infos]
    assert infos == [("QUERY_STATUS", "OK"), ("QUERY", "SELECT *\nFROM t"), ("QUERY_STATUS", "OVERFLOW")]
    text = data.decode()
    assert 'arraysize="1"' not in text and "<INFO ID" not in text
    assert 'version="1.4"' in text and "http://www.ivoa.net/xml/VOTable/v1.3" in text


def test_votable_serializations_agree():
    tables = [_votable(s)[1].get_first_table().to_table() for s in SERIALIZATIONS]
    for other in tables[1:]:
        for name in ("id", "i8", "u32", "ra", "mag", "flag", "dec"):
            a, b = tables[0][name], other[name]
            assert (np.ma.getmaskarray(a) == np.ma.getmaskarray(b)).all(), name
            assert (a.filled(0) == b.filled(0)).all(), name
        assert [str(x) for x in tables[0]["name"]] == [str(x) for x in other["name"]]


def test_votable_binary2_across_many_slices(monkeypatch):
    import jupyter_archive.core.formats.base as formats

    monkeypatch.setattr(formats, "SLICE_BYTES", 1)  # 1024-row slices: base64 carries between them
    n = 5000
    names = ["x" * (i % 7) + ("é" if i % 11 == 0 else "") for i in range(n)]
    t = pa.table({"i": pa.array(range(n), pa.int64()), "s": names, "f": pa.array(np.arange(n) / 3, pa.float32())})
    for ser in ("binary", "binary2"):
        data = encode(by_name("votable", serialization=ser), t, chunk=777)
        arr = parse_votable(io.BytesIO(data)).get_first_table().array
        assert arr["i"].tolist() == list(range(n)) and list(arr["s"]) == names
        assert (np.asarray(arr["f"]) == np.arange(n, dtype=np.float32) / np.float32(3)).all()


def test_base64_stream_keeps_alignment():
    from jupyter_archive.core.formats.votable import Base64Stream

    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    enc, out, pos = Base64Stream(), [], 0
    for size in rng.integers(0, 50, 400):
        out += list(enc.feed(data[pos:pos + size]))
        pos += size
    out += list(enc.feed(data[pos:])) + [enc.finish()]
    assert base64.b64decode(b"".join(out).replace(b"\n", b"")) == data


def test_votable_not_truncated_and_empty():
    for ser in SERIALIZATIONS:
        data, vot = _votable(ser, EMPTY)
        assert len(vot.get_first_table().array) == 0
        assert [f.name for f in vot.get_first_table().fields] == COLS
        assert b"OVERFLOW" not in data


def _stilts():
    path = shutil.which("stilts")
    if not path:
        pytest.fail("STILTS is not installed: install it (apt-get install stilts) to validate VOTables")
    return path


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_votlint(serialization, tmp_path):
    stilts = _stilts()
    for i, (table, info) in enumerate([(SOURCE, ResultInfo(truncated=True, query="SELECT 1")), (EMPTY, ResultInfo())]):
        path = tmp_path / f"t{i}.vot"
        path.write_bytes(encode(by_name("votable", serialization=serialization), table, info))
        out = subprocess.run([stilts, "votlint", f"votable={path}"], capture_output=True, text=True, timeout=300)
        bad = [x for x in (out.stdout + out.stderr).splitlines() if x.startswith(("ERROR", "WARNING"))]
        assert not bad, "\n".join(bad)


# --- FITS -------------------------------------------------------------------------------------


def _fits_parse(name, v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and KIND[name] in ("ts", "date", "int"):
        return from_text(KIND[name], v) if v else None
    return v


def test_fits_round_trip():
    data = encode("fits", info=ResultInfo(truncated=True))
    assert len(data) % 2880 == 0
    with fits.open(io.BytesIO(data)) as hdul:
        hdr = hdul[1].header
        assert hdr["NAXIS2"] == len(ROWS) and hdr["TRUNCATE"] is True
        assert hdr["TUNIT9"] == "deg" and hdr["TFORM12"] == "L" and hdr["TFORM1"] == "K"
        assert hdr["TFORM11"] == f"{len(ROWS[0][10].encode())}A"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy notes that NULL logicals read as False
        t = Table.read(io.BytesIO(data))
    assert t.colnames == COLS and str(t["ra"].unit) == "deg"
    rows = []
    for i in range(len(t)):
        row = {}
        for n in COLS:
            col = t[n]
            masked = getattr(col, "mask", None) is not None and np.ma.getmaskarray(col)[i].any()
            row[n] = np.ma.masked if masked else (col[i].tolist() if hasattr(col[i], "tolist") else col[i])
        rows.append(row)
    rows[2]["flag"] = None if rows[2]["flag"] is False else rows[2]["flag"]  # FITS logical NULL
    assert_rows(rows, parse=_fits_parse, empty_is_null={"name", "blob"})


def test_fits_empty_and_small_ints():
    data = encode("fits", EMPTY)
    t = Table.read(io.BytesIO(data))
    assert len(t) == 0 and t.colnames == COLS
    small = pa.table({"b": pa.array([1, None, 3], pa.uint8()), "big": pa.array([5, None, 6], pa.uint64())})
    with fits.open(io.BytesIO(encode("fits", small))) as hdul:
        h = hdul[1].header
        assert (h["TFORM1"], h["TNULL1"], h["TFORM2"]) == ("B", 0, "K")
        assert hdul[1].data["b"].tolist() == [1, 0, 3]
    t = Table.read(io.BytesIO(encode("fits", small)))
    assert t["b"].mask.tolist() == [False, True, False] and t["big"].tolist()[2] == 6
    odd = pa.table([pa.array([1]), pa.array([2]), pa.array([3])], names=["Größe", "id", "ID"])
    odd = odd.cast(pa.schema([with_meta(pa.field("Größe", pa.int64()), unit="µm"), ("id", pa.int64()), ("ID", pa.int64())]))
    t = Table.read(io.BytesIO(encode("fits", odd, ResultInfo(table_name="Tabellé"))))
    assert t.colnames == ["Gro_e", "id", "ID_2"] and str(t["Gro_e"].unit) == "um"


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
    assert first and consumed[0] < 10
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


# --- negotiation --------------------------------------------------------------------------------


def test_negotiate_defaults_and_wildcards():
    for accept in (None, "", "*/*", "text/*", "*/*;q=0.1"):
        assert negotiate(accept).name == "csv"
    assert negotiate(None, default="votable").name == "votable"
    assert negotiate("*/*", default="json").name == "json"
    assert negotiate("application/*").name == "json"
    assert negotiate("text/csv;q=0, */*").name != "csv"


def test_negotiate_q_values():
    assert negotiate("text/csv;q=0.2, application/x-votable+xml;q=0.9").name == "votable"
    assert negotiate("text/csv;q=0.9, application/x-votable+xml;q=0.2").name == "csv"
    assert negotiate("image/png, application/fits;q=0.5").name == "fits"
    f = negotiate("application/x-votable+xml;serialization=TABLEDATA")
    assert (f.name, f.options["serialization"]) == ("votable", "tabledata")
    assert negotiate("text/xml;content=x-votable").name == "votable"
    assert negotiate("text/xml").name == "xml"
    assert negotiate("application/json;boundary=NL").name == "ldjson"
    assert negotiate("application/x-ldjson").name == "ldjson"
    assert negotiate("application/json+array").name == "json-array-casjobs"
    assert negotiate("application/vnd.archive.table+json").name == "json-table"
    assert negotiate("text/plain").media_type.startswith("text/plain")
    assert negotiate("application/ldjson;mode=readable").name == "ldjson"
    assert negotiate("text/csv;disposition=attachment").options["disposition"] == "attachment"
    for mt, (name, _) in MEDIA_TYPES.items():
        assert negotiate(mt, allowed=set(ALL)).name == name
    # the names LSST DAX gives formats, in any case; CasJobs' DataSet
    assert negotiate("application/votable").name == "votable" and negotiate("application/VOTable").media_type == "application/VOTable"
    assert negotiate("application/FITSTABLE").name == "fits" and negotiate("text/tsv").name == "tsv"
    assert negotiate("application/x-dataset").name == "dataset"


def test_html_is_offered_only_where_a_face_offers_it():
    # browsers ask for text/html first: a face that did not promise a page answers them with data
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert negotiate(browser).name == "xml" and negotiate("text/html, */*;q=0.1", default="json").name == "json"
    with pytest.raises(ArchiveError) as exc:
        negotiate("text/html")
    assert exc.value.status == 406 and "text/html" not in exc.value.details["supported"]
    assert negotiate(browser, allowed={"html", "json"}).name == "html"


def test_format_param_wins():
    assert negotiate("text/csv", "votable/binary2").options["serialization"] == "binary2"
    assert negotiate("text/csv", "votable").name == "votable"
    assert negotiate("application/json", "fits").name == "fits"
    assert negotiate(None, "application/x-votable+xml;serialization=binary").options["serialization"] == "binary"
    assert negotiate("application/json", "csv").name == "csv"
    assert negotiate("text/csv", "parquet").media_type == "application/vnd.apache.parquet"


def test_not_acceptable():
    for accept, param, allowed in [("image/png", None, None), (None, "foo", None), ("application/fits", None, {"csv"}),
                                   ("text/csv", "fits", {"csv", "json"}), ("text/csv;q=0", None, {"csv"})]:
        with pytest.raises(ArchiveError) as exc:
            negotiate(accept, param, allowed=allowed)
        assert exc.value.code == "not_acceptable" and exc.value.status == 406
        assert "text/csv" in exc.value.message
    for bad in ['text/csv;columnDelimiter="ab"', "text/csv;quoteChar=", "application/x-votable+xml;serialization=x",
                'text/csv;columnDelimiter="|";quoteChar="|"']:
        with pytest.raises(ArchiveError) as exc:
            negotiate(bad)
        assert exc.value.status == 406
    with pytest.raises(ArchiveError):
        by_name("csv", nonsense=1)


QUASAR_AMP = 'text/csv; columnDelimiter="|"&rowDelimiter=";"&quoteChar="\'"&escapeChar="\\"'
QUASAR_SEMI = "text/csv;columnDelimiter='|';rowDelimiter=\"\\n\";quoteChar=\"'\";escapeChar=\"\\\\\""


@pytest.mark.parametrize("accept", [QUASAR_AMP, QUASAR_SEMI])
def test_quasar_csv_parameters(accept):
    fmt = negotiate(accept)
    rd = ";" if accept == QUASAR_AMP else "\n"
    assert fmt.options == {"delimiter": "|", "row_delimiter": rd, "quote_char": "'", "escape_char": "\\"}
    t = pa.table({"id": [2**53 + 1, 2], "s": ["it's a|b\\c", "x"]})
    data = encode(fmt, t).decode()
    assert data == f"id|s{rd}9007199254740993|'it\\'s a|b\\\\c'{rd}2|'x'{rd}"
    df = pd.read_csv(io.StringIO(data), sep="|", lineterminator=rd if rd != "\n" else None, quotechar="'",
                     escapechar="\\", doublequote=False)
    assert df["id"].tolist() == [2**53 + 1, 2] and df["s"].tolist() == ["it's a|b\\c", "x"]


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
