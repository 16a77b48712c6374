"""The example notebooks, executed top to bottom in a real kernel against a real server on the
demo a newcomer gets (its default size, made by the server at start); any error fails."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_archive.app import ArchiveApp

from tests.support.servers import LiveServer

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """A server started as the README starts one: no demo settings, an empty data dir."""
    server = LiveServer(tmp_path_factory.mktemp("notebook-archive"), demo_dir=None, demo_rows=None)
    yield server
    server.stop()


def test_the_notebooks_server_has_the_default_demo(default_server):
    tables = {t["name"]: t for t in default_server.client().tables("DEMO")}
    assert tables["PhotoObj"]["rows"] == ArchiveApp.class_traits()["demo_rows"].default_value


def test_there_are_example_notebooks():
    assert {"quickstart.ipynb", "jobs.ipynb", "tap-and-pyvo.ipynb", "images.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: a cell keeps its outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, default_server, tmp_path):
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "JUPYTER_ARCHIVE_URL": default_server.url, "JUPYTER_ARCHIVE_TOKEN": default_server.token}
    # Any cell error raises CellExecutionError naming the cell and the kernel's traceback.
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
