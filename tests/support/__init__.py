"""What the tests share besides fixtures: the demo's size and copies of it, where artifacts go, reading a JSON reply.

Fixtures live in the conftest.py files (the root's for every test, a folder's for its own);
helpers by topic live in this package's modules: ``servers`` (real server processes), ``pg``
(a real PostgreSQL), ``sql`` (an in-test resolver), ``faces`` (what HTTP tests of the faces
share), ``raw_http``, ``held_stream``, ``html_table``. No test module imports another.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

DEMO_ROWS = 20_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # what tests leave for a person to look at


def copy_demo(demo_dir: Path, dest: Path) -> None:
    """Give a test its own demo archive at ``dest``, cheaply: the images are hard links (the
    archive only reads them, and rebuilds them beside the old ones, never in place), the
    database a real copy (tests may add tables to it)."""
    images = demo_dir / "images"

    def link_or_copy(src, dst):
        if Path(src).is_relative_to(images):
            try:
                os.link(src, dst)
                return dst
            except OSError:  # another file system, or no hard links there
                pass
        return shutil.copy2(src, dst)

    shutil.copytree(demo_dir, dest, copy_function=link_or_copy)


def body_json(resp):
    return json.loads(resp.body)
