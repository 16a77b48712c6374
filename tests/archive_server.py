"""One real `jupyter archive` server process shared by the client, widget, magic and notebook tests.

The client speaks HTTP with blocking ``requests``; a server in the test's own event loop
(``jp_serverapp``) would never answer it, so these tests use a server process of their own.
It is started once per test session (on a copy of the session's demo archive) and each test
module's fixture takes a reference; the last one to finish stops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEMO_ROWS, copy_demo
from .test_cli import Server, free_port, root_flags

TOKEN = "client-test-token"
_shared: dict = {}


class LiveServer(Server):
    """A `jupyter archive` process: its URL, Jupyter token, data dir and runtime dir (``wait``, ``stop`` as in test_cli).

    It serves a copy of ``demo_dir`` with ``demo_rows`` rows; with ``None`` for both, the demo
    a newcomer gets: the server makes it at start, of its default size.
    """

    def __init__(self, root: Path, demo_dir: Path | None, demo_rows: int | None = DEMO_ROWS):
        self.root = root
        self.data_dir = root / "data"
        self.runtime_dir = root / "runtime"
        self.work_dir = root / "work"
        if demo_dir is not None:
            copy_demo(demo_dir, self.data_dir / "demo")
        self.work_dir.mkdir()
        self.port, self.token = free_port(), TOKEN
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = root / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open for the process's life; closed in stop()
        # Its own runtime dir, so that list_running_servers() in a test finds exactly this server.
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_RUNTIME_DIR": str(self.runtime_dir)}
        argv = [str(Path(sys.executable).parent / "jupyter"), "archive", "--no-browser", f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                f"--ArchiveApp.data_dir={self.data_dir}", f"--ServerApp.root_dir={self.work_dir}", *root_flags()]
        if demo_rows is not None:
            argv.append(f"--ArchiveApp.demo_rows={demo_rows}")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.wait(timeout=180)

    def client(self, **kw):
        from jupyter_archive.client import ArchiveClient

        return ArchiveClient(self.url, self.token, **kw)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, demo_dir):
    """The shared server (started by the first module that asks, stopped after the last)."""
    if "server" not in _shared:
        _shared["server"] = LiveServer(tmp_path_factory.mktemp("live-archive"), demo_dir)
        _shared["refs"] = 0
    _shared["refs"] += 1
    yield _shared["server"]
    _shared["refs"] -= 1
    if _shared["refs"] == 0:
        _shared.pop("server").stop()


@pytest.fixture
def client(live_server):
    return live_server.client()
