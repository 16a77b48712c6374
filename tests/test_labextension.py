"""The JupyterLab sidebar is built and enabled by `pip install` alone (issue 8).

The build (hatch-jupyter-builder running npm in labextension/) writes jupyter_archive/labextension,
and the wheel's shared-data puts it where JupyterLab looks; no `jupyter labextension` step. Its
install.json names the Python distribution it comes with (JupyterLab's extension manager then
offers no update from PyPI's unrelated `jupyter-archive`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

from jupyter_core.paths import jupyter_path

import jupyter_archive

BUILT = Path(jupyter_archive.__file__).parent / "labextension"
DISTRIBUTION = distribution("jupyter-archive-service")


def installed() -> Path:
    """The sidebar's folder where JupyterLab finds it (the first labextensions dir holding it)."""
    found = [Path(p) / "jupyter-archive" for p in jupyter_path("labextensions") if (Path(p) / "jupyter-archive" / "package.json").is_file()]
    assert found, f"no jupyter-archive in {jupyter_path('labextensions')}"
    return found[0]


def test_built_assets_are_a_jupyterlab_4_prebuilt_extension():
    meta = json.loads((BUILT / "package.json").read_text())
    assert meta["name"] == "jupyter-archive"
    load = meta["jupyterlab"]["_build"]["load"]
    assert (BUILT / load).is_file()
    assert (BUILT / "static" / "style.js").is_file()


def test_jupyter_lists_the_extension_enabled():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120, check=True
    )
    text = out.stdout + out.stderr
    line = next((ln for ln in text.splitlines() if ln.split()[:1] == ["jupyter-archive"]), "")
    assert "enabled" in line and "OK" in line, text
    assert f"(python, {DISTRIBUTION.metadata['Name']})" in line, text


def test_the_installed_extension_names_its_python_distribution():
    install = json.loads((installed() / "install.json").read_text())
    assert install["packageManager"] == "python"
    assert install["packageName"] == DISTRIBUTION.metadata["Name"] == "jupyter-archive-service"
    assert "jupyter-archive-service" in install["uninstallInstructions"]
    # It is the distribution's own file, not one left by another install.
    shipped = [f for f in DISTRIBUTION.files or [] if f.name == "install.json" and "labextensions" in f.parts]
    assert [Path(DISTRIBUTION.locate_file(f)).resolve() for f in shipped] == [(installed() / "install.json").resolve()]
