"""The example notebooks, executed top to bottom in a real kernel against a real server; any error fails."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .archive_server import live_server  # noqa: F401 - fixture

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


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
def test_notebook_runs(path, live_server, tmp_path):
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "JUPYTER_ARCHIVE_URL": live_server.url, "JUPYTER_ARCHIVE_TOKEN": live_server.token}
    # Any cell error raises CellExecutionError naming the cell and the kernel's traceback.
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
