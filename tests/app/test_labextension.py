"""The JupyterLab sidebar is built and enabled by `pip install` alone (issue 8), under the
distribution's own name (issue 14).

The build (hatch-jupyter-builder running npm in labextension/) writes jupyter_archive/labextension,
and the wheel's shared-data puts it where JupyterLab looks; no `jupyter labextension` step. The
sidebar is named as the distribution, `jupyter-archive-service`, and its install.json says so:
JupyterLab's Extension Manager looks for updates on PyPI under the sidebar's name, where
`jupyter-archive` is an unrelated project (3.5.1) that would replace this one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

from jupyter_core.paths import jupyter_path
from jupyterlab.commands import AppOptions
from jupyterlab.extensions.pypi import PyPIExtensionManager

import jupyter_archive

BUILT = Path(jupyter_archive.__file__).parent / "labextension"
NAME = distribution("jupyter-archive-service").metadata["Name"]


def installed() -> Path:
    """The sidebar's folder where JupyterLab finds it (the first labextensions dir holding it)."""
    found = [Path(p) / NAME for p in jupyter_path("labextensions") if (Path(p) / NAME / "package.json").is_file()]
    assert found, f"no {NAME} in {jupyter_path('labextensions')}"
    return found[0]


def test_built_assets_are_a_jupyterlab_4_prebuilt_extension():
    meta = json.loads((BUILT / "package.json").read_text())
    assert meta["name"] == NAME
    load = meta["jupyterlab"]["_build"]["load"]
    assert (BUILT / load).is_file()
    assert (BUILT / "static" / "style.js").is_file()


def test_jupyter_lists_the_extension_enabled_under_the_distribution():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120, check=True
    )
    text = out.stdout + out.stderr
    line = next((ln for ln in text.splitlines() if ln.split()[:1] == [NAME]), "")
    assert "enabled" in line and "OK" in line, text
    assert f"(python, {NAME})" in line, text
    assert not any(ln.split()[:1] == ["jupyter-archive"] for ln in text.splitlines()), text


def test_the_installed_extension_names_its_python_distribution():
    install = json.loads((installed() / "install.json").read_text())
    assert install["packageManager"] == "python" and install["packageName"] == NAME
    assert NAME in install["uninstallInstructions"]
    # It is the distribution's own file, not one left by another install.
    dist = distribution(NAME)
    shipped = [f for f in dist.files or [] if f.name == "install.json" and "labextensions" in f.parts]
    assert [Path(dist.locate_file(f)).resolve() for f in shipped] == [(installed() / "install.json").resolve()]


def test_the_extension_manager_looks_for_updates_of_this_distribution_only():
    asked: list[str] = []

    class OfflineManager(PyPIExtensionManager):
        """JupyterLab's PyPI manager, with the update lookup recorded instead of sent to PyPI."""

        async def get_latest_version(self, pkg: str) -> str | None:
            asked.append(pkg)
            return None

    manager = OfflineManager(app_options=AppOptions(labextensions_path=jupyter_path("labextensions")))
    extensions, _ = asyncio.run(manager.list_extensions())
    ours = [e for e in extensions if (e.install or {}).get("packageName") == NAME]
    assert [e.name for e in ours] == [NAME]
    assert NAME in asked and "jupyter-archive" not in asked
