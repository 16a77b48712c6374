"""The compile side of the Queries service: a text compiled for a principal, and the plan compile shows.

``compile_text`` runs the SQL pipeline (``sql.compile_query``) with the principal's resolver:
quick queries on a compile-cache miss, compile, and jobs (``Queries.compile_request``) all go
through it. ``with_plan`` adds the last phase ``/compile`` shows: where the statements run, as
the engine's plan or the SQL pushed to a server. A compile-cache hit calls neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

import duckdb

from .. import sql as sqlmod
from ..catalog.model import Principal
from . import pushdown
from .engines import engine_error
from .planner import ENGINE, SERVER, plan

if TYPE_CHECKING:
    from ..catalog.namespace import Namespace
    from ..catalog.resolver import Resolver
    from .pool import EnginePool


class TextOptions(TypedDict, total=False):
    """What a query's text means beyond its words: the keywords ``compile`` and ``query`` share."""

    context: str | None  # where unqualified table names resolve
    base_path: str | None  # Quasar: the directory relative paths start from
    variables: dict[str, str] | None  # Quasar's ``var.name=value``: each one SQL literal, bound
    params: dict[str, Any] | None  # the native API's parameters: python values, bound
    offset: int | None  # rows to skip (a face's paging)
    limit: int | None  # at most this many rows (a face's paging; the row limit is separate)


def compile_text(
    namespace: Namespace, principal: Principal, text: str, language: str, options: TextOptions, row_limit: int | None, uploads=None
) -> tuple[sqlmod.Compiled, Resolver]:
    """The compiled query and the resolver that named its tables (``uploads``: the TAP_UPLOAD tables it may read)."""
    if unknown := options.keys() - TextOptions.__annotations__.keys():
        raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
    get = options.get
    resolver = namespace.resolver(principal, get("context"), get("base_path"), language=language, uploads=uploads)
    compiled = sqlmod.compile_query(
        text,
        language,
        resolver,
        variables=get("variables"),
        params=get("params"),
        base_path=get("base_path"),
        offset=get("offset"),
        limit=get("limit"),
        row_limit=row_limit,
        positional_index=namespace.positional_lookup(principal),
    )
    return compiled, resolver


def with_plan(namespace: Namespace, engines: EnginePool, principal: Principal, compiled: sqlmod.Compiled, *, explain: bool) -> sqlmod.Compiled:
    """``compiled`` with its plan as the last phase: the SQL pushed to a server, or (with
    ``explain``) the engine's plan of each statement."""
    where = plan(namespace, engines, principal, compiled.statements, engine=explain)
    if where.where == SERVER:
        compiled.phases.append(sqlmod.Phase("Pushed SQL", detail=pushdown.pushed_sql(where.backend, compiled)))
    elif explain and where.where == ENGINE:
        plans = []
        cur = where.engine.cursor()
        try:
            for st in compiled.statements:
                rows = cur.sql("EXPLAIN " + st.sql, params=st.params or None).fetchall()
                plans.append("\n".join(str(r[-1]) for r in rows))
        except duckdb.Error as exc:
            err = engine_error(exc)
            phases = [p.to_json() for p in compiled.phases] + [{"name": "Engine Plan", "error": err.message}]
            err.details["phases"] = phases
            raise err from None
        finally:
            cur.close()
        compiled.phases.append(sqlmod.Phase("Engine Plan", detail="\n\n".join(plans)))
    return compiled
