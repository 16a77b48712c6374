"""Where compiled statements run: decided once, here, for every path (quick query, paged read,
compile, export, job).

The choices: the principal's DuckDB engine (the default; pinned to the engine holding a TAP
upload's tables), a writable mount's own engine, a pushed-down SQL server (with the DuckDB
engine a copy from it writes into), a fresh in-memory engine holding TAP_SCHEMA, or, for a query
reading HATS catalogs, the principal's DuckDB engine over only the partitions the query touches
(``partitions.py``; for a cross-match, those the other table's positions touch: ``crossmatches.py``), or a job
over many of them fanned out on the Dask cluster (the plan carries the partitions and the SQL shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalog.model import MYDB_ALIAS, TAP_SCHEMA_ALIAS, Principal
from ..errors import ArchiveError

if TYPE_CHECKING:
    from ..catalog.namespace import Namespace
    from .pool import EnginePool, EngineRef, Lease

ENGINE = "engine"  # a DuckDB engine of the pool
SERVER = "server"  # pushed down to a SQL server
TAP_SCHEMA = "tap_schema"  # an in-memory engine holding the principal's TAP_SCHEMA
HATS = "hats"  # the principal's DuckDB engine, in-process, over the pruned partitions of HATS catalogs
CLUSTER = "cluster"  # a job's read of one HATS catalog fanned out over the Dask cluster (``cluster.run_partitioned``)
CLUSTER_PARTITIONS = 16  # fewer partitions than this run in-process: a cluster's tasks cost more than they save


@dataclass
class Plan:
    """Where a compiled query runs: ``where`` (one of the above), the pool's engine (for a
    server: the engine of the DuckDB table a copy writes, if any) and the SQL server."""

    where: str
    engine: EngineRef | None = None
    backend: Any = None  # backends.sqlalchemy.SqlBackend
    partitioned: Any = None  # partitions.Partitioned: the HATS catalogs read, their pruned files, the SQL shapes
    cells: Any = None  # crossmatches.Cells: a cross-match job's cells of u, made once as it was planned and shipped as they are
    outer: bool = False  # a cross-match the cluster splits by its matched rows only (crossmatches.outer)
    why: str = ""  # why a job runs where it does (its log says it)

    def ready(self, statements: list, cursor=None) -> list:
        """The statements as this plan runs them: HATS tables read from their pruned partitions; with the
        ``cursor`` they run on, a cross-match's also by the positions of its other table (read now)."""
        if self.partitioned is None:
            return statements
        if cursor is not None and any(r.near is not None for r in self.partitioned.reads):
            from .crossmatches import pruned

            try:
                return pruned(self.partitioned, statements, cursor, self.cells)
            except BaseException:
                cursor.close()  # the query will not run on it: give it back
                raise
        return self.partitioned.statements(statements)


def plan(
    namespace: Namespace, engines: EnginePool, principal: Principal, statements, pinned: Lease | None = None, *, engine: bool = True,
    cluster=None, job: bool = False,
) -> Plan:
    """The plan of compiled statements; ``pinned``: the lease holding tables made for this
    query (TAP uploads), whose engine it must use. Without ``engine`` a DuckDB plan names no
    engine (compiling without explaining checks no more than that). With ``cluster``, a statement
    that can fan out plans to; for a ``job`` (about to run), a cross-match does only when the
    positions it matches (read now) touch enough partitions."""
    catalogs = _catalogs(statements)
    if TAP_SCHEMA_ALIAS in catalogs:
        if len(catalogs) > 1:
            raise ArchiveError(
                "unknown_table",
                "a query on TAP_SCHEMA can read only TAP_SCHEMA tables; joining them with data tables is not supported",
                400,
            )
        return Plan(TAP_SCHEMA)
    backend = _server_of(namespace, statements)
    if backend is not None:
        target = None
        if len(statements) == 1 and (into := statements[0].into) is not None and into.catalog not in namespace.backends:
            target = engines.context_engine(principal, namespace.context(principal, into.context))
        return Plan(SERVER, target, backend)
    ref = duckdb_engine(namespace, engines, principal, statements, pinned) if engine else None
    if namespace.hats and (catalogs & namespace.hats.keys()):
        from .pairs import cross_match
        from .partitions import partition

        partitioned = partition(namespace.hats, statements)
        partitioned = cross_match(partitioned, statements) or partitioned  # two catalogs: by partitions, with margins
        if cluster is None or not cluster.enabled:
            return Plan(HATS, ref, partitioned=partitioned)
        fans, how = _fans_out(namespace, partitioned, statements, ref if job else None, cluster.min_rows)
        if fans:
            return Plan(CLUSTER, ref, partitioned=partitioned, **how)
        return Plan(HATS, ref, partitioned=partitioned, **how)
    return Plan(ENGINE, ref)


def _fans_out(namespace: Namespace, partitioned, statements, engine: EngineRef | None, min_rows: int) -> tuple[bool, dict]:
    """Whether a job runs on the cluster, and the plan's fields saying how and why: one statement (a read, or
    a read INTO MyDB) of one HATS catalog over many of its partitions, reading no other table but, in a
    cross-match, the table ``u`` whose positions it matches (its rows are shipped to the tasks). A
    cross-match's partitions are those ``u``'s positions touch, read through ``engine`` (a job's plan), and
    it fans out only with ``min_rows`` positions or more (fewer run faster in-process); without ``engine``
    (compile), all. A job that would need the cluster but that it cannot split is refused (``ArchiveError``)."""
    if partitioned is not None and hasattr(partitioned, "pieces"):  # catalog x catalog (pairs.CrossMatch): its pieces are the tasks
        st = statements[0]
        if len(partitioned.pieces) < CLUSTER_PARTITIONS:
            return False, {"why": f"it has fewer than {CLUSTER_PARTITIONS} pieces"}
        if st.kind == "read" and st.into is None and len(statements) == 1:
            return True, {}
        return _refused(engine, "a cross-match of two catalogs written INTO mydb, or in several statements"), {}
    big = [r for r in partitioned.reads if not r.count and len(r.partitions) >= CLUSTER_PARTITIONS] if partitioned is not None else []
    if not big:
        return False, {"why": f"it reads fewer than {CLUSTER_PARTITIONS} partitions of each catalog"}
    if len(statements) != 1 or len(partitioned.reads) != 1:
        return _refused(engine, "a query of several statements, or reading a catalog more than once"), {}
    st, read = statements[0], partitioned.reads[0]
    if st.kind not in ("read", "write") or (st.kind == "write" and (st.into is None or st.into.catalog != MYDB_ALIAS)) or (st.kind == "read" and st.into is not None):
        return _refused(engine, "a statement other than SELECT or SELECT ... INTO mydb"), {}
    others = {(t.catalog.lower(), t.schema.lower(), t.name.lower()) for t in st.tables if t.catalog not in namespace.hats}
    if others and (read.near is None or others != {tuple(p.name.lower() for p in read.near.upload.parts)}):
        return _refused(engine, "a join of the catalog with another table that is not a cross-match by position"), {}
    if read.near is None:
        return True, {}  # fanout.decompose refuses, at once, what it cannot split
    how: dict = {}
    if engine is not None:
        from .crossmatches import cells_of

        cursor = engine.cursor()
        try:
            cells = cells_of(read, cursor, st.params)
        finally:
            cursor.close()
        touched = len(cells.touched)
        if touched < CLUSTER_PARTITIONS:
            return False, {"cells": cells, "why": f"the positions of {read.near.name} touch {touched} partitions, fewer than {CLUSTER_PARTITIONS}"}
        if cells.positions < min_rows:
            why = f"{read.near.name} has {cells.positions} positions, fewer than the {min_rows} a cross-match needs to gain from the cluster"
            return False, {"cells": cells, "why": why}
        how = {"cells": cells, "why": f"the positions of {read.near.name} ({cells.positions}) touch {touched} partitions"}
    from .crossmatches import outer_split, task_shape

    # the shape reading u's cells as shipped, when they are known: far cheaper to parse than the SQL making them
    shape = (task_shape(read.near, partitioned.shapes[0], how["cells"]) if how else None) or partitioned.shapes[0]
    try:
        select = shape if st.kind == "read" else _select_of(shape)
        if _splits(select, read.near):
            return True, how
        outer_split(select, read.near)
    except ArchiveError as exc:
        if engine is not None:
            raise exc from None
        return False, {}
    return True, {**how, "outer": True}


def _refused(engine: EngineRef | None, what: str) -> bool:
    """A job (``engine`` given) the cluster would run but cannot split is refused, saying what to do instead;
    compiling shows it in-process (a quick query runs there)."""
    if engine is not None:
        from .fanout import INSTEAD

        raise ArchiveError(
            "bad_request",
            f"this job reads many partitions of a HATS catalog, so it runs on the Dask cluster, which cannot split {what}: "
            f"{INSTEAD}; for example SELECT ... INTO mydb.part FROM the catalog WHERE a region, and join mydb.part",
            400,
        )
    return False


def _select_of(shape: str) -> str:
    from .cluster_writes import select_of

    return select_of(shape)[0]


def _splits(select: str, near) -> bool:
    """Whether the cluster can split a cross-match (``fanout.decompose``) with its other table (and its cells) shipped."""
    from .crossmatches import CELLS
    from .fanout import decompose
    from .partitions import placeholder

    try:
        decompose(select, placeholder(0), [near.table_sql, CELLS])
    except ArchiveError:
        return False
    return True


def _catalogs(statements) -> set[str]:
    catalogs = set()
    for st in statements:
        catalogs.update(t.catalog for t in (st.tables or []))
        if st.into is not None:
            catalogs.add(st.into.catalog)
    return catalogs


def _server_of(namespace: Namespace, statements):
    """The SQL server the statements read, or None when they read DuckDB only."""
    reads = {t.catalog for st in statements for t in (st.tables or [])}
    writes = {st.into.catalog for st in statements if st.into is not None}
    servers = {alias for alias in reads | writes if alias in namespace.backends}
    if not servers:
        return None
    names = {m.alias: m.context for m in namespace.mounts()}
    if len(servers) > 1 or (reads - servers):
        involved = ", ".join(sorted(names.get(a, a) for a in reads | servers))
        raise ArchiveError(
            "bad_request",
            f"one query cannot join tables of different backends ({involved}); query the SQL server's tables on their own, "
            "e.g. copy what you need into MyDB with SELECT ... INTO mydb.T first",
        )
    alias = servers.pop()
    if writes - {alias} and len(statements) > 1:
        raise ArchiveError("bad_request", "copying from a SQL server into DuckDB works one statement at a time")
    return namespace.backends[alias]


def duckdb_engine(namespace: Namespace, engines: EnginePool, principal: Principal, statements, pinned: Lease | None = None) -> EngineRef:
    """The DuckDB engine compiled statements run on: the principal's, or a writable mount's own."""
    catalogs = _catalogs(statements) - namespace.hats.keys()  # HATS files are read, not attached
    backends = namespace.backends
    writable = {m.alias: m for m in namespace.mounts() if not m.read_only and m.alias in catalogs and m.alias not in backends}
    if not writable:
        ref = engines.engine(principal, catalogs - set(backends))
        if pinned is not None:
            ref._pinned = pinned.engine
        return ref
    if len(writable) > 1:
        names = ", ".join(sorted(m.context for m in writable.values()))
        raise ArchiveError("bad_request", f"one query cannot combine the writable mounts {names}; copy the data into one of them first")
    mount = next(iter(writable.values()))
    if MYDB_ALIAS in catalogs:
        raise ArchiveError(
            "bad_request",
            f"one query cannot combine your MyDB with the writable mount {mount.context}; copy the data into one of them first",
        )
    if pinned is not None:
        raise ArchiveError("bad_request", f"uploaded tables cannot be combined with the writable mount {mount.context}")
    ref = engines.mount_engine(mount)
    ref.needs = frozenset(catalogs)
    return ref
