"""jupyter_archive: a data archive that lives inside Jupyter.

Extension points: the server extension (``ArchiveApp``) and, later, the JupyterLab
sidebar assets and the ``%%archive`` IPython magic.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .app import ArchiveApp

    return [{"module": "jupyter_archive.app", "app": ArchiveApp}]


def load_ipython_extension(ip):
    """``%load_ext jupyter_archive``: the ``%%archive`` magic."""
    from .magic import load_ipython_extension as load

    load(ip)
