"""A HATS catalog damaged on disk after it was mounted (a partition file removed, truncated, overwritten,
replaced, unreadable; the whole location gone) fails every read with a clear 409 naming the catalog and
the file and saying to mount it again: quick queries, jobs, and a read that fails in the engine itself
(the file changed after the check). Answers from the metadata (listings, COUNT(*)) still come."""

from __future__ import annotations

import os
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution.engines import engine_error


def _first(root):
    return sorted((root / "dataset").rglob("Npix=*.parquet"))[0]


def _scramble(f):
    b = bytearray(f.read_bytes())
    n = len(b)
    b[n // 4 : n // 2] = bytes(reversed(b[n // 4 : n // 2]))  # same size, magic bytes intact
    f.write_bytes(bytes(b))


def _replace_by_folder(f):
    f.unlink()
    f.mkdir()


DAMAGES = {
    "removed": lambda root: _first(root).unlink(),
    "truncated": lambda root: os.truncate(_first(root), 100),
    "overwritten": lambda root: _first(root).write_bytes(b"x" * _first(root).stat().st_size),
    "scrambled": lambda root: _scramble(_first(root)),
    "another table": lambda root: pq.write_table(pa.table({"x": [1, 2]}), _first(root)),
    "a folder now": lambda root: _replace_by_folder(_first(root)),
    "unreadable": lambda root: _first(root).chmod(0),
    "location gone": lambda root: shutil.rmtree(root),
}
WHAT = {"removed": "missing", "a folder now": "missing", "location gone": "missing", "unreadable": "permission denied"}


@pytest.fixture
def damaged(hats_root, tmp_path):
    """An archive mounting a private copy of ``stars`` (``SKY.stars``), and the copy's root to damage."""
    root = tmp_path / "stars"
    shutil.copytree(hats_root / "stars", root)
    a = Archive(ArchiveConfig(data_dir=tmp_path / "data", demo=False, mounts=[
        {"path": "/sky", "type": "hats", "location": str(root), "context": "SKY"}]))  # fmt: skip
    a.start()
    yield a, root
    a.close()


def assert_clear(err: ArchiveError | str, damage: str) -> None:
    message = err if isinstance(err, str) else err.message
    if not isinstance(err, str):
        assert (err.status, err.code) == (409, "catalog_changed"), (err.status, err.code, err.message)
    assert "HATS catalog 'stars' changed on disk" in message and "dataset/Norder=" in message and "mounted again" in message
    assert WHAT.get(damage, "not the file it was") in message
    assert "/tmp" not in message.split("dataset/Norder=")[0]  # where the server keeps it is not told


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_catalog_fails_reads_clearly_and_still_lists(damaged, damage):
    a, root = damaged
    if damage == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    DAMAGES[damage](root)
    p = a.users.principal("alice")
    for text in ("SELECT TOP 3 objid FROM sky.stars ORDER BY objid", "SELECT COUNT(*) AS n FROM sky.stars WHERE g < 30"):
        with pytest.raises(ArchiveError) as err:
            a.queries.query(p, text, "adql").to_table()
        assert_clear(err.value, damage)
    job = a.jobs.wait(p, a.jobs.submit_query(p, "SELECT objid, g FROM sky.stars WHERE g > 0", "adql").id, timeout=120)
    assert job.state == "failed"
    assert_clear(str(job.error_message), damage)
    # the metadata still answers
    assert a.queries.query(p, "SELECT COUNT(*) AS n FROM sky.stars", "adql").to_table().to_pylist() == [{"n": 200_000}]
    assert {t.name for t in a.catalog.tables(p, "SKY")} == {"stars"}


@pytest.mark.parametrize("damage", ["removed", "truncated", "a folder now"])
def test_a_file_damaged_under_the_engine_is_named_too(hats_root, tmp_path, damage):
    """Changed after the check, the engine's own failure becomes the same clear error."""
    root = tmp_path / "stars"
    shutil.copytree(hats_root / "stars", root)
    name = _first(root)
    DAMAGES[damage](root)
    with pytest.raises(duckdb.Error) as exc:
        duckdb.sql(f"SELECT count(*) FROM read_parquet(['{name}'])").fetchall()
    assert_clear(engine_error(exc.value), damage)


def test_user_text_naming_a_partition_path_probes_no_file(tmp_path):
    """The error is read from the message only: a query raising one about any path learns nothing of the disk."""
    there = tmp_path / "cat" / "dataset" / "Norder=1" / "Dir=0"
    there.mkdir(parents=True)
    (there / "Npix=1.parquet").write_bytes(b"PAR1")
    for path in (there / "Npix=1.parquet", tmp_path / "nothing" / "dataset" / "Norder=1" / "Dir=0" / "Npix=1.parquet"):
        with pytest.raises(duckdb.Error) as exc:
            duckdb.sql(f"SELECT error('No files found that match the pattern \"{path}\"')").fetchall()
        err = engine_error(exc.value)
        assert "is missing" in err.message and str(tmp_path) not in err.message
