"""A real `jupyter lab` on the demo archive and Debian's Chromium driven by Playwright.

The lab runs in a subprocess with its own root, data, settings, workspace and runtime dirs
(so nothing of the developer's JupyterLab leaks in, and the kernel finds only this server).
Chromium is the system one (`/usr/bin/chromium`, installed by scripts/test.sh): Playwright's own
browser downloads are never used. Every console error of the page is recorded; the last test
of the module asserts there were none.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support import ARTIFACTS, DEMO_ROWS, copy_demo

CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium off the network (only loopback is reachable here) and work as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip
START_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """The running lab: its URL, token, root dir and an authenticated HTTP session."""

    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kw):
        resp = self.http.request(method, f"{self.url}archive/api/{path}", timeout=30, **kw)
        resp.raise_for_status()
        return resp.json() if resp.content else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory, demo_dir):
    base = tmp_path_factory.mktemp("lab")
    root, data = base / "root", base / "archive-data"
    root.mkdir()
    data.mkdir()
    copy_demo(demo_dir, data / "demo")
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # Lets a test run JupyterLab commands (e.g. "run all cells") the way a menu would.
        "--LabApp.expose_app_in_browser=True",
        f"--ArchiveApp.data_dir={data}", f"--ArchiveApp.demo_rows={DEMO_ROWS}",
    ]  # fmt: skip
    log_path = base / "lab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if requests.get(f"{url}api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer in {START_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield Lab(url, token, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """The page's console errors and uncaught exceptions."""

    def __init__(self):
        self.errors: list[str] = []

    def on_console(self, msg):
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def on_pageerror(self, exc):
        self.errors.append(f"pageerror: {exc}")


@pytest.fixture(scope="module")
def console():
    return Console()


@pytest.fixture(scope="module")
def page(browser, lab, console):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    pg.on("console", console.on_console)
    pg.on("pageerror", console.on_pageerror)
    pg.goto(f"{lab.url}lab?token={lab.token}")
    pg.wait_for_function("() => !!window.jupyterapp", timeout=60_000)
    # A fresh workspace ends its start-up by opening the launcher, which takes the focus: wait
    # for that, so it cannot steal the focus from the first keyboard test later.
    pg.evaluate("() => window.jupyterapp.restored.then(() => true)")
    pg.wait_for_function("() => !!document.activeElement && !!document.activeElement.closest('.jp-Launcher')")
    yield pg
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Puts each phase's report on the test item (for the screenshot-on-failure fixture)."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


# pytest-jupyter (loaded by tests/conftest.py) gives every test a fresh asyncio loop and closes
# it afterwards; Playwright's sync API runs its own loop for the whole module, which that
# clean-up would try to close. These tests start no in-process server, so both are no-ops here.
@pytest.fixture
def jp_asyncio_loop():
    yield None


@pytest.fixture
def jp_server_cleanup():
    yield
