"""Directories of data files ingested into a read-only cache database."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from jupyter_archive.core.backends import files
from jupyter_archive.core.backends import metadata as md
from jupyter_archive.core.errors import ArchiveError


def write_parquet(path: Path) -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("ra", pa.float64(), metadata={"unit": "deg", "ucd": "pos.eq.ra;meta.main", "description": "Right ascension"}),
            pa.field("flux", pa.float32(), metadata={"unit": "mJy"}),
            pa.field("name", pa.string()),
        ],
        metadata={"description": "A Parquet catalogue"},
    )  # fmt: skip
    table = pa.table({"id": [1, 2, 3], "ra": [10.5, 11.0, 12.25], "flux": [1.5, None, 3.0], "name": ["a", "b", "c"]}, schema=schema)
    pq.write_table(table, path)


def write_fits(path: Path) -> None:
    t = Table()
    t["ra"] = np.array([1.0, 2.0, 3.0])
    t["ra"].unit = "deg"
    t["mag"] = np.array([15.5, 16.25, 17.0], dtype=np.float32)
    t["mag"].unit = "mag"
    t["n"] = MaskedColumn(np.array([7, 8, 9], dtype=np.int32), mask=[False, True, False])
    t["vec"] = np.arange(6, dtype=np.int16).reshape(3, 2)
    t["label"] = ["x", "yy", "zzz"]
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(t)])
    hdr = hdus[1].header
    hdr["TUCD1"] = "pos.eq.ra;meta.main"
    hdr["TCOMM2"] = "Apparent magnitude"
    hdus.writeto(path)


@pytest.fixture()
def tree(tmp_path) -> dict:
    root = tmp_path / "data"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".ipynb_checkpoints").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()

    (root / "stars.csv").write_text("id,ra,dec,name\n1,10.5,-3.25,Vega\n2,11.0,4.5,Deneb\n")
    write_parquet(root / "cat.parquet")
    (root / "events.jsonl").write_text('{"t": 1, "kind": "a"}\n{"t": 2, "kind": "b"}\n')
    (root / "nd.json").write_text('{"k": 1}\n{"k": 2}\n{"k": 3}\n')
    (root / "array.json").write_text('[{"k": 1}, {"k": 2}]')
    write_fits(root / "sub" / "spectra.fits")
    (root / "sub" / "deeper" / "tab.tsv").write_text("a\tb\n1\thello, world\n2\tbye\n")
    (root / "bad.csv").write_text('a,b,c\n1,2,3\n4,5\n6,7,8,9,10\n"unterminated,1,2\n')
    (root / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (root / "image.fits").write_bytes(b"")
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(root / "image.fits", overwrite=True)
    (root / "dup.csv").write_text("v\n1\n")
    pq.write_table(pa.table({"v": [2]}), root / "dup.parquet")
    (root / "x1.csv").write_text("v\n11\n")
    (root / "x[1].csv").write_text("v\n99\n")  # DuckDB would glob this to x1.csv
    (root / ".ipynb_checkpoints" / "stars-checkpoint.csv").write_text("id\n1\n")
    (root / "notes.txt").write_text("not a table")

    (outside / "secret.csv").write_text("secret\n42\n")
    (root / "leak.csv").symlink_to(outside / "secret.csv")
    (root / "leakdir").symlink_to(outside, target_is_directory=True)
    (root / "alias.csv").symlink_to(root / "stars.csv")  # inside: fine
    return {"root": root, "cache": tmp_path / "cache" / "files.duckdb", "outside": outside}


EXPECTED = [
    "alias", "cat", "dup", "events", "nd", "stars", "sub/deeper/tab", "sub/spectra", "x1", "x[1]",
]  # fmt: skip


def query(cache: Path, sql: str):
    c = duckdb.connect(str(cache), read_only=True)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def test_tables_values_and_metadata(tree, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_archive")
    assert files.sync_cache(tree["root"], tree["cache"]) is True
    cache = tree["cache"]
    assert files.list_tables(cache) == EXPECTED

    assert query(cache, 'SELECT * FROM stars ORDER BY id') == [(1, 10.5, -3.25, "Vega"), (2, 11.0, 4.5, "Deneb")]
    assert query(cache, 'SELECT * FROM alias ORDER BY id') == query(cache, 'SELECT * FROM stars ORDER BY id')
    assert query(cache, 'SELECT id, ra, flux, name FROM cat ORDER BY id') == [
        (1, 10.5, 1.5, "a"), (2, 11.0, None, "b"), (3, 12.25, 3.0, "c")]  # fmt: skip
    assert query(cache, 'SELECT t, kind FROM events ORDER BY t') == [(1, "a"), (2, "b")]
    assert query(cache, 'SELECT count(*) FROM nd') == [(3,)]
    assert query(cache, 'SELECT * FROM "sub/deeper/tab" ORDER BY a') == [(1, "hello, world"), (2, "bye")]
    assert query(cache, 'SELECT ra, mag, n, vec, label FROM "sub/spectra" ORDER BY ra') == [
        (1.0, 15.5, 7, (0, 1), "x"), (2.0, 16.25, None, (2, 3), "yy"), (3.0, 17.0, 9, (4, 5), "zzz")]  # fmt: skip
    # Parquet wins over CSV for the same name; glob characters are taken literally.
    assert query(cache, "SELECT v FROM dup") == [(2,)]
    assert query(cache, 'SELECT v FROM "x[1]"') == [(99,)]
    assert query(cache, "SELECT v FROM x1") == [(11,)]

    with md.open_read_only(cache) as (c, alias):
        meta = md.read_metadata(c, alias)
    assert meta["cat"]["description"] == "A Parquet catalogue"
    assert meta["cat"]["columns"]["ra"] == {"unit": "deg", "ucd": "pos.eq.ra;meta.main", "description": "Right ascension"}
    assert meta["cat"]["columns"]["flux"] == {"unit": "mJy"}
    spectra = meta["sub/spectra"]["columns"]
    assert spectra["ra"] == {"unit": "deg", "ucd": "pos.eq.ra;meta.main"}
    assert spectra["mag"] == {"unit": "mag", "description": "Apparent magnitude"}
    assert "stars" not in meta  # CSV carries no metadata

    status = {row["path"]: row for row in files.read_file_status(cache)}
    assert status["bad.csv"]["status"] in ("error", "skipped")
    assert status["broken.parquet"]["status"] == "error"
    assert status["array.json"]["status"] == "skipped"
    assert status["image.fits"]["status"] == "skipped"
    assert status["dup.csv"]["status"] == "shadowed"
    assert status["leak.csv"]["status"] == "outside"
    assert status["leakdir/"]["status"] == "outside"
    assert not any(p.startswith(".ipynb_checkpoints") for p in status)

    logged = caplog.text
    for name in ("bad.csv", "broken.parquet", "leak.csv", "leakdir", "dup.csv"):
        assert name in logged
    assert "secret" not in str(query(cache, "SELECT table_name FROM duckdb_tables()"))


def test_archive_meta_is_not_a_user_table(tree):
    files.sync_cache(tree["root"], tree["cache"])
    assert all(not t.startswith("archive_meta") for t in files.list_tables(tree["cache"]))
    assert md.is_hidden_schema("archive_meta")


def test_unchanged_directory_not_rebuilt(tree):
    assert files.sync_cache(tree["root"], tree["cache"]) is True
    before = os.stat(tree["cache"])
    assert files.sync_cache(tree["root"], tree["cache"]) is False
    after = os.stat(tree["cache"])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_changed_added_removed_files_rebuild(tree):
    root, cache = tree["root"], tree["cache"]
    files.sync_cache(root, cache)

    stars = root / "stars.csv"
    stars.write_text("id,ra,dec,name\n1,10.5,-3.25,Vega\n2,11.0,4.5,Deneb\n3,0.0,0.0,Sol\n")
    st = os.stat(stars)
    os.utime(stars, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # coarse-mtime filesystems
    assert files.sync_cache(root, cache) is True
    assert query(cache, "SELECT count(*) FROM stars") == [(3,)]

    (root / "sub" / "new.csv").write_text("q\n5\n")
    assert files.sync_cache(root, cache) is True
    assert "sub/new" in files.list_tables(cache)

    (root / "events.jsonl").unlink()
    assert files.sync_cache(root, cache) is True
    assert "events" not in files.list_tables(cache)

    # Fixing a bad file brings its table in.
    (root / "bad.csv").write_text("a,b\n1,2\n")
    assert files.sync_cache(root, cache) is True
    assert query(cache, "SELECT * FROM bad") == [(1, 2)]
    assert files.sync_cache(root, cache) is False


def test_retargeted_symlink_rebuilds(tree):
    root, cache = tree["root"], tree["cache"]
    files.sync_cache(root, cache)
    link = root / "leak.csv"
    link.unlink()
    time.sleep(0.01)
    link.symlink_to(root / "stars.csv")
    assert files.sync_cache(root, cache) is True
    assert "leak" in files.list_tables(cache)


def test_no_temporary_files_left(tree):
    files.sync_cache(tree["root"], tree["cache"])
    names = sorted(p.name for p in tree["cache"].parent.iterdir() if not p.name.endswith(".lock"))
    assert names == ["files.duckdb"]


def test_empty_and_missing_directories(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "c.duckdb"
    assert files.sync_cache(empty, cache) is True
    assert files.list_tables(cache) == []
    assert files.sync_cache(empty, cache) is False
    assert files.list_tables(tmp_path / "nothing.duckdb") == []
    with pytest.raises(ArchiveError) as exc:
        files.sync_cache(tmp_path / "missing", cache)
    assert exc.value.code == "not_found"


def test_csv_types_beyond_the_sniff_sample(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    lines = ["x"] + [str(i) for i in range(30_000)] + ["n/a"]
    (root / "late.csv").write_text("\n".join(lines) + "\n")
    cache = tmp_path / "c.duckdb"
    files.sync_cache(root, cache)
    assert query(cache, "SELECT count(*) FROM late") == [(30_001,)]


def test_metadata_roundtrip_and_absent_schema():
    con = duckdb.connect()
    assert md.read_metadata(con) == {}
    assert md.get_info(con, "x") is None
    con.execute("CREATE TABLE t(a INT)")
    md.write_metadata(con, "t", "tee", {"a": {"unit": "s", "ucd": "time", "description": None}})
    md.set_info(con, "k", 5)
    assert md.read_metadata(con) == {"t": {"description": "tee", "columns": {"a": {"unit": "s", "ucd": "time"}}}}
    assert md.get_info(con, "k") == "5"
    md.write_metadata(con, "t", None, {})  # replaces
    assert md.read_metadata(con) == {"t": {"description": None, "columns": {}}}
    with pytest.raises(ValueError):
        md.write_metadata(con, "t", None, {"a": {"colour": "red"}})
    con.close()
