"""The JupyterLab sidebar is built and enabled by `pip install` alone (issue 8).

The build (hatch-jupyter-builder running npm in labextension/) writes jupyter_archive/labextension,
and the wheel's shared-data puts it where JupyterLab looks; no `jupyter labextension` step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jupyter_archive

BUILT = Path(jupyter_archive.__file__).parent / "labextension"


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
    line = next((ln for ln in text.splitlines() if "jupyter-archive" in ln), "")
    assert "enabled" in line and "OK" in line, text
