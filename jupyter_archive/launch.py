"""``jupyter archive``'s entry point: what its process settles before Jupyter's server is imported."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Start the archive's server (``ArchiveApp``), leaner than Jupyter's imports would make it alone."""
    # jupyter_events validates with jsonschema's format checkers, and jsonschema checks the "iri" formats with
    # rfc3987_syntax when it is installed (jupyter_events' own requirements bring it): it builds a lark grammar as
    # it is imported, ~3 s of every start and ~24 MB held for the server's life, for formats no schema a Jupyter
    # server validates uses. Refused here, jsonschema leaves only those two formats unchecked.
    sys.modules.setdefault("rfc3987_syntax", None)
    # Arrow's allocator (mimalloc, read as pyarrow loads) commits arenas eagerly and keeps freed pages 10 ms: an export
    # of a 5,000,000-row job result held ~55 MB more at its peak (bench_exports: whole run 581 -> 526 MB); point
    # lookups cost the same either way.
    os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
    from .app import main as run

    run()


if __name__ == "__main__":
    main()
