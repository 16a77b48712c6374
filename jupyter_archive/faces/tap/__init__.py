"""The IVOA TAP 1.1 face (``{base}archive/tap``): sync queries and the VOSI documents.

``sync`` (GET/POST, urlencoded or multipart) runs ADQL through the core and answers a
VOTable (BINARY2 by default) or another ``RESPONSEFORMAT``; errors are DALI error VOTables.
``UPLOAD`` brings VOTables inline or by URL of one of our own results (``core.execution.uploads``).
``capabilities``, ``availability``, ``tables``, ``tables/{name}`` and ``examples`` are the
VOSI/DALI documents pyvo, TOPCAT and taplint read. Queries naming TAP_SCHEMA run over the
caller's TAP_SCHEMA (``core.catalog.tap_schema``), which always equals ``/tables``. ``async`` is UWS.

Modules: ``dali`` (what every resource shares: parameters, bodies, formats, errors), ``sync``,
``vosi`` (the documents) and ``uws`` (async jobs).
"""

from __future__ import annotations

from .dali import NotFoundHandler
from .sync import SyncHandler
from .uws import uws_handlers
from .vosi import AvailabilityHandler, CapabilitiesHandler, ExamplesHandler, TableHandler, TablesHandler


def tap_handlers() -> list[tuple[str, type]]:
    return uws_handlers() + [
        (r"archive/tap/sync/?", SyncHandler),
        (r"archive/tap/capabilities/?", CapabilitiesHandler),
        (r"archive/tap/availability/?", AvailabilityHandler),
        (r"archive/tap/tables/?", TablesHandler),
        (r"archive/tap/tables/(?P<name>[^/]+)/?", TableHandler),
        (r"archive/tap/examples/?", ExamplesHandler),
        (r"archive/tap(?P<path>/?.*)", NotFoundHandler),
    ]
