"""Where compiled statements run: decided once, here, for every path (quick query, paged read,
compile, export, job).

The choices: the principal's DuckDB engine (the default; pinned to the engine holding a TAP
upload's tables), a writable mount's own engine, a pushed-down SQL server (with the DuckDB
engine a copy from it writes into), a fresh in-memory engine holding TAP_SCHEMA, or, for a query
reading HATS catalogs, the principal's DuckDB engine over only the partitions the query touches
(``partitions.py``; the plan carries them, so a cluster can run the same shapes as another ``where``).
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

    def ready(self, statements: list) -> list:
        """The statements as this plan runs them: HATS tables read from their pruned partitions."""
        return statements if self.partitioned is None else self.partitioned.statements(statements)


def plan(
    namespace: Namespace, engines: EnginePool, principal: Principal, statements, pinned: Lease | None = None, *, engine: bool = True,
    cluster=None,
) -> Plan:
    """The plan of compiled statements; ``pinned``: the lease holding tables made for this
    query (TAP uploads), whose engine it must use. Without ``engine`` a DuckDB plan names no
    engine (compiling without explaining checks no more than that)."""
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
        if cluster is not None and cluster.enabled and _fans_out(namespace, partitioned, statements):
            return Plan(CLUSTER, ref, partitioned=partitioned)
        return Plan(HATS, ref, partitioned=partitioned)
    return Plan(ENGINE, ref)


def _fans_out(namespace: Namespace, partitioned, statements) -> bool:
    """Whether a job runs on the cluster: one read statement of one HATS catalog (or a cross-match of two) and
    no other table (an upload's rows are in this process's engine, out of the tasks' reach), over many partitions."""
    if partitioned is None or len(statements) != 1 or statements[0].kind != "read" or statements[0].into is not None:
        return False
    if any(t.catalog not in namespace.hats for t in statements[0].tables):
        return False
    if hasattr(partitioned, "pieces"):  # a catalog x catalog cross-match (pairs.CrossMatch): its pieces are the tasks
        return len(partitioned.pieces) >= CLUSTER_PARTITIONS
    reads = partitioned.reads
    return len(reads) == 1 and not reads[0].count and len(reads[0].partitions) >= CLUSTER_PARTITIONS


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
