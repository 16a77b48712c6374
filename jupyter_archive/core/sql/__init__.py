"""The SQL pipeline: query text in any accepted language becomes the engine's SQL with bound parameters.

``compile_query`` runs the phases (parse, check, bind, resolve, rewrite, emit) and ``rebind`` gives a
cached compilation new values. ADQL and its geometry, and the HEALPix positional index that speeds
up cone searches, live here too. The map of the modules is in ``pipeline.py``'s docstring.
"""

from . import adql, healpix_index
from .compiled import Compiled, Resolver, Statement, TableTarget
from .healpix_index import HEALPIX_INFO_PREFIX, HealpixIndex, healpix_index_from_info, parse_healpix_spec
from .phases import Phase
from .pipeline import compile_query, rebind
from .variables import parse_variable

__all__ = [
    "HEALPIX_INFO_PREFIX",
    "Compiled",
    "HealpixIndex",
    "Phase",
    "Resolver",
    "Statement",
    "TableTarget",
    "adql",
    "compile_query",
    "healpix_index",
    "healpix_index_from_info",
    "parse_healpix_spec",
    "parse_variable",
    "rebind",
]
