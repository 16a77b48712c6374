"""``jupyter archive``'s entry point: what its process settles before Jupyter's server is imported."""

from __future__ import annotations

import sys


def main() -> None:
    """Start the archive's server (``ArchiveApp``), leaner than Jupyter's imports would make it alone."""
    # jupyter_events validates with jsonschema's format checkers, and jsonschema checks the "iri" formats with
    # rfc3987_syntax when it is installed (jupyter_events' own requirements bring it): it builds a lark grammar as
    # it is imported, ~3 s of every start and ~24 MB held for the server's life, for formats no schema a Jupyter
    # server validates uses. Refused here, jsonschema leaves only those two formats unchecked.
    sys.modules.setdefault("rfc3987_syntax", None)
    from .app import main as run

    run()


if __name__ == "__main__":
    main()
