"""The archive's temp area, ``<data_dir>/tmp``: one folder per engine (a user's, an anonymous
caller's, a writable mount's) holding upload files on their way into a table and DuckDB's spill
files. Nothing in it outlives the process that wrote it, so a start empties it: an upload or
a query killed mid-way with its server leaves no file behind for good.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def temp_root(data_dir: Path) -> Path:
    """The temp area of the archive whose data dir is ``data_dir``."""
    return Path(data_dir) / "tmp"


def clear(data_dir: Path) -> int:
    """Remove everything under the temp area; returns how many entries of it were removed.

    Call it before any engine of this process uses the area. Links are removed, never
    followed, so nothing outside the area is touched; a temp area that is itself a link
    is left alone (whoever made it may have pointed it anywhere).
    """
    root = temp_root(data_dir)
    if root.is_symlink() or not root.is_dir():
        if root.is_symlink():
            log.warning("the archive's temp area %s is a link: not cleared", root)
        return 0
    removed = 0
    for entry in os.scandir(root):
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)  # unlinks the links inside, never descends through them
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError as err:
            log.warning("cannot remove %s from the archive's temp area: %s", entry.path, err)
    if removed:
        log.info("removed %d leftover(s) of an earlier process from %s", removed, root)
    return removed
