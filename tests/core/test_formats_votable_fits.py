"""Round trips through VOTable (every serialization, checked by votlint) and FITS, read back with astropy."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import warnings

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.table import Table

from jupyter_archive.core.formats import ResultInfo, by_name
from jupyter_archive.core.formats.base import with_meta

from tests.support.formats import SERIALIZATIONS, KIND, ROWS, SOURCE, EMPTY, COLS, encode, from_text, assert_rows


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
