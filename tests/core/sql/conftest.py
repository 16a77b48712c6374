"""Fixtures of the SQL pipeline tests: an in-memory DuckDB holding the demo and MyDB tables, and its resolver."""

from __future__ import annotations

import pytest

from tests.support.sql import DictResolver, pipeline_con


@pytest.fixture
def con():
    c = pipeline_con()
    yield c
    c.close()


@pytest.fixture
def resolver(con):
    return DictResolver(con)
