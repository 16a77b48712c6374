"""Shared fixtures: a real Jupyter server with the archive extension on a per-test data dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import DEMO_ROWS, copy_demo, pg

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo archive, made once per test session (the generator is deterministic), with its description
    kept beside it as a server's first start keeps it: every copy starts without describing it again."""
    from jupyter_archive.core.catalog.mounts import describe_apart
    from jupyter_archive.core.demo import ensure_demo

    root = tmp_path_factory.mktemp("demo-data")
    describe_apart(ensure_demo(root, rows=DEMO_ROWS), root)
    return root / "demo"


@pytest.fixture
def archive_data_dir(tmp_path, demo_dir) -> Path:
    """A fresh archive data dir holding a copy of the session's demo archive."""
    data = tmp_path / "archive-data"
    data.mkdir()
    copy_demo(demo_dir, data / "demo")
    return data


@pytest.fixture
def archive_config() -> dict:
    """ArchiveApp settings a test may override."""
    return {}


@pytest.fixture
def jp_server_config(archive_data_dir, archive_config):
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_archive": True},
            "allow_unauthenticated_access": False,
        },
        "ArchiveApp": {"data_dir": str(archive_data_dir), "demo_rows": DEMO_ROWS, **archive_config},
    }


@pytest.fixture
def archive(jp_serverapp):
    """The server's Archive (for test set-up such as making tokens)."""
    return jp_serverapp.web_app.settings["archive"]


@pytest.fixture
def demo_db(archive_data_dir):
    """A direct DuckDB connection to the demo file: the reference the HTTP answers are compared to."""
    import duckdb

    con = duckdb.connect(str(archive_data_dir / "demo" / "demo.duckdb"), read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def pg_server():
    """The URI (``postgresql://user:pw@127.0.0.1:port/db``) of a running PostgreSQL holding the
    sample (tests/support/pg.py); each module that asks gets a server of its own."""
    with pg.running() as uri:
        yield uri


@pytest.fixture
def fetch(jp_fetch):
    """jp_fetch that never raises on HTTP errors, so tests can assert on error replies."""

    async def _fetch(*parts, **kwargs):
        kwargs.setdefault("raise_error", False)
        return await jp_fetch(*parts, **kwargs)

    return _fetch


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib not importable, as on an install of the archive alone (it is only a test extra).

    The server runs in the test process, so the modules that may have imported it already
    (matplotlib's own and astropy.visualization's) are dropped and come back after the test.
    """
    import astropy

    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith(("matplotlib.", "astropy.visualization")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(astropy, "visualization", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" raises ImportError


@pytest.fixture
def raw(http_server_client, jp_base_url, jp_auth_header):
    """Fetch a path below the base URL with its query string sent as written (``fetch`` would
    escape a ``;``); never raises on HTTP errors."""

    async def _raw(path: str, query: str = "", **kw):
        headers = {**jp_auth_header, **kw.pop("headers", {})}
        url = jp_base_url.rstrip("/") + "/" + path + ("?" + query if query else "")
        return await http_server_client.fetch(url, headers=headers, raise_error=False, **kw)

    return _raw


_EXIT_STATUS = [0]


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS[0] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # DuckDB's nanobind bindings print pages of "leaked object" warnings when the interpreter
    # finalizes with connections still referenced by servers' threads; they bury pytest's
    # summary line. Everything is reported by now, so end the process here.
    import os
    import sys

    if os.environ.get("ARCHIVE_TESTS_NORMAL_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[0])


@pytest.fixture(scope="session")
def hats_root(tmp_path_factory) -> Path:
    """A folder of HATS catalogs written by lsdb once per session (tests/support/hats_data.py): ``stars``
    (files ``Npix=n.parquet``) with its margin ``stars_10arcs``, and ``stars_dirs``, the same rows with
    ``Npix=n/`` folders."""
    from tests.support.hats_data import write_catalogs

    root = tmp_path_factory.mktemp("hats")
    write_catalogs(root)
    return root


@pytest.fixture(scope="session")
def hats_oracle(hats_root):
    """DuckDB over all the files of the session's HATS catalogs, in one process (views ``stars`` and
    ``stars_dirs``): the reference answers partition pruning and fanned-out jobs must give."""
    import duckdb

    con = duckdb.connect()
    for name in ("stars", "stars_dirs"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{hats_root / name}/dataset/**/*.parquet', hive_partitioning = false)")
    yield con
    con.close()


@pytest.fixture(scope="session")
def hats_near_root(tmp_path_factory) -> Path:
    """A folder holding ``near`` (with its margin ``near_10arcs``): stars moved by a few arcsec, for
    catalog x catalog cross-matches with ``stars`` (tests/support/hats_data.py)."""
    from tests.support.hats_data import write_near_catalog

    root = tmp_path_factory.mktemp("hats-near")
    write_near_catalog(root)
    return root
