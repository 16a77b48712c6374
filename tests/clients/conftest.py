"""Fixtures of the client tests: the shared live server process, a client of it, an IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.history import HistoryAccessor
from IPython.core.interactiveshell import InteractiveShell

from tests.support.servers import LiveServer

_shared: dict = {}


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


class RaisingShell(InteractiveShell):
    """An IPython shell whose run_cell raises what the cell raised (as jupysql's tests do)."""

    def run_cell(self, *args, **kwargs):
        result = super().run_cell(*args, **kwargs)
        result.raise_error()
        return result


@pytest.fixture(scope="module")
def ip(live_server):
    history = HistoryAccessor.enabled
    HistoryAccessor.enabled = False  # no sqlite history file per shell
    InteractiveShell.clear_instance()  # another test's formatting (ipywidgets' Output) may have made one
    shell = RaisingShell.instance()
    shell.run_cell("%load_ext jupyter_archive")
    shell.run_cell(f"%config Archive.url = {live_server.url!r}")
    shell.run_cell(f"%config Archive.token = {live_server.token!r}")
    yield shell
    RaisingShell.clear_instance()
    HistoryAccessor.enabled = history
