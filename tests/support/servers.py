"""Real server processes started from the command line: `Server` (any command), and `LiveServer`,
the one `jupyter archive` process shared by the client, widget, magic and notebook tests.

The client speaks HTTP with blocking ``requests``; a server in the test's own event loop
(``jp_serverapp``) would never answer it, so these tests use a server process of their own.
It is started once per test session (on a copy of the session's demo archive) and each test
module's fixture (tests/clients/conftest.py) takes a reference; the last one to finish stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support import DEMO_ROWS, copy_demo

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def root_flags() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


class Server:
    """A server process started from the command line, stopped at the end."""

    def __init__(self, argv: list[str], port: int, token: str, log: Path):
        self.port, self.token, self.log_path = port, token, log
        self.url = f"http://127.0.0.1:{port}/"
        self._log = open(log, "wb")
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def get(self, path: str, **kw):
        return requests.get(self.url + path, headers={"Authorization": f"token {self.token}", **kw.pop("headers", {})}, timeout=30, **kw)

    def wait(self, path="archive/api/contexts", timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_text()}")
            try:
                r = self.get(path)
                if r.status_code == 200:
                    return r
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server did not answer {path}: {self.log_text()}")

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


TOKEN = "client-test-token"


class LiveServer(Server):
    """A `jupyter archive` process: its URL, Jupyter token, data dir and runtime dir (``wait``, ``stop`` as in `Server`).

    It serves a copy of ``demo_dir`` with ``demo_rows`` rows; with ``None`` for both, the demo
    a newcomer gets: the server makes it at start, of its default size.
    """

    def __init__(self, root: Path, demo_dir: Path | None, demo_rows: int | None = DEMO_ROWS, extra: tuple[str, ...] = ()):
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
        argv += extra
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.wait(timeout=180)

    def user_token(self, name: str) -> str:
        """An archive token of user ``name`` (made if new), as the CLI makes one beside the running server."""
        jupyter = str(Path(self.proc.args[0]))
        out = subprocess.run([jupyter, "archive", "token", "create", name, f"--ArchiveApp.data_dir={self.data_dir}"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    def client(self, **kw):
        from jupyter_archive.client import ArchiveClient

        return ArchiveClient(self.url, self.token, **kw)
