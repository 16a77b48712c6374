"""Result and image formats: a registry of writers and the negotiation that picks one.

A result arrives as an Arrow schema plus an iterator of record batches; :meth:`Format.encode`
turns it into byte chunks for the socket. Writers hold one batch (cut into slices of a few MiB
of output) at a time, never the whole result; only FITS, which needs the row count up front,
spools to a temporary file. :func:`negotiate` picks a format from an Accept header or a
``?format=`` value, :func:`by_name` builds one directly; :func:`image_format` picks an image
format (FITS, PNG, JPEG), whose :meth:`Format.render` makes the bytes of cutouts.

Modules: ``base`` (the registry, negotiation, column metadata on Arrow fields, plain types and
slices: what every writer uses), ``text`` (text of arrays and escaping, for the text writers),
``datatypes`` (VOTable datatypes of Arrow and engine types), and one module per kind of writer:
``delimited`` (CSV, TSV), ``json`` (the JSON kinds), ``votable``, ``fits``, ``arrow`` (Arrow
IPC, Parquet), ``markup`` (XML, HTML), ``dataset`` (.NET DataSet), ``dbserv`` (LSST DAX's
JSON), ``images`` (and :func:`image_format`). To add a format: write its module with a
:class:`~.base.Writer` and register it below.
"""

from . import arrow, dataset, dbserv, delimited, fits, images, json, markup, votable
from .base import register

# The order 406 answers list media types in; after a face's default, the order a wildcard
# Accept tries formats in.
register(
    delimited.CSV, delimited.TSV, json.JSON, json.CASJOBS, json.LDJSON, votable.VOTABLE, fits.FITS,
    arrow.PARQUET, arrow.ARROW, markup.XML, json.JSON_TABLE, dataset.DATASET_XML, markup.HTML, dbserv.DBSERV,
    images.FITS_IMAGE, images.PNG, images.JPEG,
)

# (after registering: DEFAULT_FORMATS is set by it)
from .base import DEFAULT_FORMATS, MEDIA_TYPES, Format, ResultInfo, by_name, give_memory_back, negotiate  # noqa: E402
from .datatypes import engine_votable_type, votable_type  # noqa: E402
from .dbserv import DBSERV_JSON  # noqa: E402
from .images import image_format  # noqa: E402

__all__ = [
    "DBSERV_JSON", "DEFAULT_FORMATS", "MEDIA_TYPES", "Format", "ResultInfo", "by_name", "engine_votable_type", "give_memory_back",
    "image_format", "negotiate", "votable_type",
]
