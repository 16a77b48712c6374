"""The temp area (``<data_dir>/tmp``) is emptied when an archive starts: an upload or a spilling
query killed with its server leaves nothing behind for good, and nothing outside the area is touched."""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_archive.core import temp_area

NAMES = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=10).filter(lambda s: s not in (".", ".."))
# A leftover tree: folders of files and of links that lead out of the area (to a file, to a folder).
TREES = st.recursive(
    st.sampled_from(["file", "link to a file outside", "link to a folder outside"]),
    lambda kids: st.dictionaries(NAMES, kids, max_size=4),
    max_leaves=12,
)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (links not followed) with a file's bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            out[str(path.relative_to(root))] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return out


def outside_world(base: Path) -> Path:
    """Files that must survive any clean-up: beside the data dir, and in it but outside tmp/."""
    outside = base / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "file.txt").write_text("keep me")
    (outside / "folder" / "inner.txt").write_text("keep me too")
    return outside


def build(folder: Path, tree, outside: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, node in tree.items():
        path = folder / name
        if isinstance(node, dict):
            build(path, node, outside)
        elif node == "file":
            path.write_bytes(b"half an upload")
        elif node == "link to a file outside":
            path.symlink_to(outside / "file.txt")
        else:
            path.symlink_to(outside / "folder", target_is_directory=True)


@settings(max_examples=60, deadline=None)
@given(tree=st.dictionaries(NAMES, TREES, max_size=5))
def test_clear_empties_the_area_and_touches_nothing_else(tree):
    with tempfile.TemporaryDirectory() as base:
        base = Path(base)
        outside = outside_world(base)
        data = base / "data"
        (data / "mydb").mkdir(parents=True)
        (data / "mydb" / "alice.duckdb").write_bytes(b"a user's database")
        if isinstance(tree, dict):
            build(temp_area.temp_root(data), tree, outside)
        kept_outside, kept_data = snapshot(outside), snapshot(data / "mydb")
        temp_area.clear(data)
        assert not temp_area.temp_root(data).exists() or list(temp_area.temp_root(data).iterdir()) == []
        assert snapshot(outside) == kept_outside and snapshot(data / "mydb") == kept_data


def test_a_temp_area_that_is_a_link_is_left_alone(tmp_path):
    outside = outside_world(tmp_path)
    (tmp_path / "data").mkdir()
    temp_area.temp_root(tmp_path / "data").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    assert temp_area.clear(tmp_path / "data") == 0
    assert snapshot(outside) == before


@pytest.fixture
def archive_data_dir(archive_data_dir, tmp_path):
    """The data dir as a server killed mid-upload left it (and a link out of its temp area)."""
    outside = outside_world(tmp_path)
    build(temp_area.temp_root(archive_data_dir), {
        "root": {"upload-0123456789abcdef.dat": "file", "duckdb_temp_storage-0.tmp": "file", "escape": "link to a folder outside"},
        "alice": {"upload-fedcba9876543210.dat": "file"},
        "stray.dat": "link to a file outside",
    }, outside)
    return archive_data_dir


async def test_a_starting_server_removes_what_a_killed_one_left(archive, archive_data_dir, tmp_path, fetch):
    assert list(temp_area.temp_root(archive_data_dir).rglob("*")) == []
    assert (tmp_path / "outside" / "file.txt").read_text() == "keep me"
    assert (tmp_path / "outside" / "folder" / "inner.txt").read_text() == "keep me too"
    # The area works as before: an upload goes through it into MyDB.
    resp = await fetch("archive", "api", "contexts", "MyDB", "tables", "Up", method="PUT",
                       body=pd.DataFrame({"a": [1, 2]}).to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert resp.code == 201, resp.body
    assert not any(p.name.startswith("upload-") for p in temp_area.temp_root(archive_data_dir).rglob("*"))
