"""Fixtures of the mount tests."""

from __future__ import annotations

import duckdb
import pytest


@pytest.fixture
def sky_db(jp_root_dir):
    path = jp_root_dir / "sky.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE quasars AS SELECT range AS qid, range * 0.1 AS z FROM range(50)")
    con.close()
    return path
