"""The SQL pipeline: query text in any accepted language becomes the engine's SQL with bound parameters.

``compile_query`` runs the phases (parse, check, bind, resolve, rewrite, emit); ``rebind`` gives a
cached compilation new values. Nothing here runs a query, except the ingest step that builds a
HEALPix index. The modules, in the order a query meets them:

- ``pipeline``: ``compile_query`` and ``rebind``, the order of the phases.
- ``dialects``: one sqlglot dialect and one ``LanguageSpec`` per language (``core/languages.py`` names them).
- ``scan``: text into statement chunks (quotes, comments, ``;``, ``GO``), positions.
- ``parse``: a chunk into sqlglot trees; ``checks``: statements and functions a query may not use.
- ``variables``: variables and parameters bound as ``$pN``, never pasted.
- ``bounds``: the size of a value a query builds (``range``, ``repeat``, ``lpad``, ``printf``...) guarded in the engine SQL.
- ``tables``: table references, read and written, and their resolution through the ``Resolver``.
- ``rewrite``: tables qualified for the engine, ``SELECT ... INTO`` as ``CREATE TABLE``, row caps.
- ``adql`` with ``geometry`` and ``spherical``: ADQL functions and geometry as DuckDB expressions.
- ``healpix_index``: the HEALPix positional index (made at ingest, declared, used for cone searches).
- ``literals``: a text's shape (its numbers marked), so the compile cache serves texts that differ only in them.
- ``compiled`` and ``phases``: what a compilation makes (``Compiled``, ``Statement``, ``TableTarget``)
  and shows (``Phase``).
"""

from . import healpix_index
from .compiled import Compiled, Resolver, Statement, TableTarget, quote_ident, quote_literal
from .healpix_index import HEALPIX_INFO_PREFIX, HealpixIndex, healpix_index_from_info, parse_healpix_spec
from .phases import Phase
from .pipeline import compile_query, patiently, rebind
from .variables import parse_variable

__all__ = [
    "HEALPIX_INFO_PREFIX",
    "Compiled",
    "HealpixIndex",
    "Phase",
    "Resolver",
    "Statement",
    "TableTarget",
    "compile_query",
    "healpix_index",
    "healpix_index_from_info",
    "parse_healpix_spec",
    "parse_variable",
    "patiently",
    "quote_ident",
    "quote_literal",
    "rebind",
]
