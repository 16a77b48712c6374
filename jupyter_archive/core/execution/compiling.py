"""The compile side of the Queries service: a text compiled for a principal, the plan compile shows, a table's read.

``compile_text`` runs the SQL pipeline (``sql.compile_query``) with the principal's resolver:
quick queries on a compile-cache miss, compile, and jobs (``Queries.compile_request``) all go
through it. ``with_plan`` adds the last phase ``/compile`` shows: where the statements run, as
the engine's plan or the SQL pushed to a server. A compile-cache hit calls neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict


from .. import sql as sqlmod
from ..catalog.model import ContextRef, Principal
from ..errors import ArchiveError
from ..sql import quote_ident
from . import pushdown
from .engines import engine_error
from .planner import CLUSTER, CLUSTER_PARTITIONS, ENGINE, HATS, SERVER, plan
from .scheduler import CONNECT_WAIT

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
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


def with_plan(
    namespace: Namespace, engines: EnginePool, principal: Principal, compiled: sqlmod.Compiled, *, explain: bool, cluster=None
) -> sqlmod.Compiled:
    """``compiled`` with its plan as the last phase: the SQL pushed to a server, or (with
    ``explain``) the engine's plan of each statement; before it, for HATS catalogs, the phase
    ``partitions``: how many partitions of each the query reads, and where (in-process, or as a
    job the Dask cluster, with its task count)."""
    import duckdb
    where = plan(namespace, engines, principal, compiled.statements, engine=explain, cluster=cluster)
    if where.partitioned is not None:
        engine = "in-process"
        if where.where == CLUSTER:
            try:
                tasks = f"{where.partitioned.tasks(cluster.threads(CONNECT_WAIT))} tasks"  # a cross-match of two catalogs counts its pieces
            except ArchiveError as exc:  # compiling still answers; the job would fail with this
                tasks = str(exc)
            near = where.partitioned.reads[0].near
            when = (f" if {near.name} has {cluster.min_rows} positions or more and they touch {CLUSTER_PARTITIONS} partitions or more"
                    if near is not None else "")  # fmt: skip
            engine = f"in-process as a quick query; as a job, the Dask cluster ({cluster.scheduler}){when}: {tasks}"
        compiled.phases.append(sqlmod.Phase("partitions", detail=where.partitioned.phase_detail(engine)))
    if where.where == SERVER:
        compiled.phases.append(sqlmod.Phase("Pushed SQL", detail=pushdown.pushed_sql(where.backend, compiled)))
    elif explain and where.where in (ENGINE, HATS, CLUSTER):  # a cluster's plan is a job's; a quick query runs here
        plans = []
        cur = where.engine.cursor()
        try:
            for st in where.ready(compiled.statements):
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


#: Row limits of a table read from which its rows are streamed rather than planned as DuckDB's late
#: materialization (which pays off for pages, deep ones above all, not for exports).
STREAMED_LIMIT = 100_000


def table_read(
    namespace: Namespace, principal: Principal, context: str | ContextRef, table: str, *,
    offset: int | None, limit: int | None, order_by: str | None, descending: bool,
) -> tuple[sqlmod.Compiled, dict]:  # fmt: skip
    """The compiled read of a whole table or a page of it (``Queries.read_table``), and its column metadata."""
    ref = context if isinstance(context, ContextRef) else namespace.context(principal, context)
    info = namespace.table(principal, ref, table)
    if offset is not None and offset < 0:
        raise ArchiveError("bad_request", f"invalid offset: {offset} (must be >= 0)")
    if limit is not None and limit < 1:
        raise ArchiveError("bad_request", f"invalid limit: {limit} (must be >= 1)")
    text = f"SELECT * FROM {quote_ident(ref.alias)}.main.{quote_ident(info.name)}"
    if limit is not None and limit >= STREAMED_LIMIT and not order_by:
        # DuckDB plans a large LIMIT as a semi join on rowid that gathers every row before the first
        # comes out (1,000,000 rows of PhotoObj: ~90 MB in the engine, out of memory under 64 MB); over
        # a subquery it is a streaming limit, the rows sent as they are scanned, in the same order.
        text = f"SELECT * FROM ({text} OFFSET 0)"
    if order_by:
        names = {c.name.lower(): c.name for c in info.columns}
        if order_by.lower() not in names:
            raise ArchiveError("bad_request", f"unknown column {order_by!r} in table {info.name}")
        text += f" ORDER BY {quote_ident(names[order_by.lower()])} {'DESC' if descending else 'ASC'}"
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    if offset:
        text += f" OFFSET {int(offset)}"
    target = sqlmod.TableTarget(ref.alias, "main", info.name, ref.name, ref.writable)
    st = sqlmod.Statement(kind="read", sql=text, params={}, source=text, into=None, tables=[target])
    return sqlmod.Compiled("sql", [st], [], text, {}), info.column_meta()
