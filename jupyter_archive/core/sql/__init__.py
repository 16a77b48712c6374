"""The SQL pipeline: query text in any accepted language becomes the engine's SQL with bound parameters.

``compile_query`` runs the phases (parse, check, bind, resolve, rewrite, emit) and ``rebind`` gives a
cached compilation new values. ADQL and its geometry, and the HEALPix positional index that speeds
up cone searches, live here too.
"""

from . import adql, healpix_index
from .adql import HEALPIX_INFO_PREFIX, HealpixIndex, healpix_index_from_info, parse_healpix_spec
from .pipeline import Compiled, Phase, Resolver, Statement, TableTarget, compile_query, parse_variable, rebind

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
