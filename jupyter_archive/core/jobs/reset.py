"""Dataset-wide jobs (Kasabi's word for a writable database): reset empties one.

A *dataset* is a database a user may write as a whole: their own MyDB, or a writable mount
(which belongs to the archive's admins). Only its owner may run jobs on it. A reset drops
every table and view in it; while the reset runs the dataset is read-only (the SQL
pipeline's resolver refuses writes with 409), and afterwards it is empty and writable.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING


from ..sql import quote_ident
from ..catalog import MYDB, Principal
from ..catalog.namespace import relations_in
from ..errors import ArchiveError, not_found, permission
from ..execution.engines import engine_error
from ..lanes import cheap_read
from .model import ACTIVE, JobCanceled

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..catalog import ContextRef
    from .model import Job
    from .runner import JobContext
    from .service import Jobs

# The kinds of dataset job there are (Kasabi's ``jobType`` values).
DATASET_JOB_KINDS = ("reset",)

NOT_OWNER = "only the dataset's owner may run jobs on it"

# Guards check-and-add on the catalog's ``resetting``: two resets of one dataset must not overlap,
# or the first to finish would make the dataset writable while the second still drops.
_marks = threading.Lock()


class Datasets:
    """Dataset jobs (``archive.datasets``): find a dataset a principal owns, submit and find its
    jobs; the ``reset`` job kind registers itself with the job service."""

    def __init__(self, jobs: Jobs, *, catalog, engines):
        self._jobs = jobs
        self._catalog = catalog
        self._engines = engines
        jobs.register_kind("reset", self.run_reset)

    def ref(self, principal: Principal, short_code: str) -> ContextRef:
        """The dataset a short code names, if the principal owns it (401, 403 or 404 otherwise).

        ``mydb`` (any case) is the caller's own MyDB; any other code is a mount's context name.
        A mount is owned by the archive's admins, and only a writable mount is a dataset.
        """
        if principal.anonymous:
            raise ArchiveError("unauthorized", "dataset jobs need a signed-in user: log in to Jupyter or send an X-Auth-Token", 401)
        code = (short_code or "").strip()
        if not code:
            raise not_found("unknown dataset ''", dataset=code)
        if code.lower() == MYDB.lower():
            return self._catalog.context(principal, MYDB)
        try:
            ref = self._catalog.context(principal, code)
        except ArchiveError as exc:
            if exc.code == "not_found":
                raise not_found(f"unknown dataset {code!r}", dataset=code) from None
            raise
        if not ref.writable:
            raise permission(f"{NOT_OWNER}: {ref.name} is a read-only context", dataset=ref.name)
        if not principal.admin:
            raise permission(f"{NOT_OWNER}: {ref.name} belongs to the archive's admins", dataset=ref.name)
        return ref

    @staticmethod
    def check_resettable(ref: ContextRef) -> None:
        """Refuse (409) a dataset the archive cannot empty yet.

        MyDB always can. A mount can only once its engine attaches it read-write and its data
        lives in the engine's file (a ``files`` mount is a cache of a folder: emptying the cache
        would not empty the folder).
        """
        m = ref.mount
        if m is None:
            return
        if m.kind != "duckdb":
            raise ArchiveError(
                "unsupported",
                f"{ref.name} is a {m.kind} mount; only DuckDB datasets and MyDB can be reset",
                409,
                details={"dataset": ref.name},
            )
        if m.read_only:
            raise ArchiveError("permission", f"{ref.name} is read-only", 403, details={"dataset": ref.name})

    def submit_reset(self, principal: Principal, short_code: str, start_time: float | None = None, *, face: str = "native") -> Job:
        """Queue a reset of a dataset the principal owns, at ``start_time`` (unix seconds) or now."""
        ref = self.ref(principal, short_code)
        self.check_resettable(ref)
        request = {"dataset": short_code, "context": ref.name}
        return self._jobs.submit(principal, "reset", request, face=face, start_time=start_time)

    @cheap_read
    def job(self, principal: Principal, short_code: str, job_id: int | str) -> Job:
        """A dataset job of the principal's, found through its dataset's URL (404 for any other job).

        Only the dataset's owner may see its jobs: anyone else is refused as ``ref`` refuses
        them, whichever job they name.
        """
        self.ref(principal, short_code)
        job = self._jobs.get(principal, job_id)
        context = str(job.request.get("context") or "")
        if job.kind not in DATASET_JOB_KINDS or context.lower() != (short_code or "").strip().lower():
            raise not_found(f"unknown job {job_id} for dataset {short_code!r}", job=job_id, dataset=short_code)
        return job

    def delete_job(self, principal: Principal, short_code: str, job_id: int | str) -> Job:
        """Remove a dataset job that is not running: a waiting one never runs, a finished one is forgotten.

        A running job is refused (409): it cannot be taken back half-way. A job that starts
        between the check and the delete is canceled by the delete; its drops are one
        transaction, so the dataset is then left as it was.
        """
        job = self.job(principal, short_code, job_id)
        if job.state in ACTIVE:
            raise ArchiveError(
                "conflict",
                f"job {job.id} is running and cannot be deleted; {job.request.get('context')} is read-only until it ends",
                409,
                details={"job": job.id, "state": job.state},
            )
        self._jobs.delete(principal, job.id)
        return job

    def run_reset(self, job: Job, ctx: JobContext) -> dict:
        """The work of a ``reset`` job: drop every table and view of the dataset in one transaction.

        The dataset is marked resetting (read-only to the SQL pipeline) for the whole run and
        unmarked whatever happens. A cancel or a failure rolls back, leaving the data unchanged.
        Returns ``rows`` (tables and views dropped), ``tables`` and ``views``.
        """
        principal = self._jobs.principal_of(job)
        # Re-check ownership: rights or the mount may have changed since a scheduled job was made.
        ref = self.ref(principal, job.request.get("context") or job.request.get("dataset") or "")
        self.check_resettable(ref)
        key = self._catalog.dataset_key(principal, ref)
        with _marks:
            if key in self._catalog.resetting:
                raise ArchiveError(
                    "conflict", f"{ref.name} is already being reset by another job", 409, details={"dataset": ref.name}
                )
            self._catalog.resetting.add(key)
        try:
            ctx.log(f"{ref.name} is read-only until the reset ends")
            cursor = self._engines.context_engine(principal, ref).cursor(timeout=None, cancel=ctx.canceled)
            result = _drop_all(cursor, ref.alias, ctx)
            ctx.log(f"{ref.name} emptied ({result['tables']} tables, {result['views']} views dropped); writable again")
            return result
        finally:
            with _marks:
                self._catalog.resetting.discard(key)


def _drop_all(cur, alias: str, ctx: JobContext) -> dict:
    """Drop the views, then the tables (referencing before referenced) of one attached database."""
    import duckdb
    began = False
    try:
        relations = relations_in(cur, alias)
        views = [(s, n) for s, n, kind, _ in relations if kind == "view"]
        tables = [(s, n) for s, n, kind, _ in relations if kind == "table"]
        refs = cur.sql(
            "SELECT schema_name, table_name, referenced_table FROM duckdb_constraints() "
            "WHERE database_name = $db AND constraint_type = 'FOREIGN KEY'",
            params={"db": alias},
        ).fetchall()
        # Views have no dependants DuckDB checks, so they go first; a table referenced by a
        # foreign key cannot be dropped while its referencing table exists.
        drops = [("VIEW", s, v) for s, v in views] + [("TABLE", s, t) for s, t in _fk_order(tables, refs)]
        total = len(drops)
        ctx.log(f"dropping {len(tables)} tables and {len(views)} views")
        ctx.on_cancel(cur.interrupt)
        # One transaction: readers see the old data until the end, and a cancel or a
        # failure half-way leaves the dataset as it was.
        cur.execute("BEGIN TRANSACTION")
        began = True
        for i, (kind, schema, name) in enumerate(drops, 1):
            ctx.check()
            cur.execute(f"DROP {kind} IF EXISTS {quote_ident(alias)}.{quote_ident(schema)}.{quote_ident(name)}")
            ctx.set_progress(i / total, rows=i)
        ctx.check()
        cur.execute("COMMIT")
        began = False
    except duckdb.Error as exc:
        if ctx.canceled.is_set():
            raise JobCanceled() from None
        raise _reset_error(exc) from None
    finally:
        ctx.on_cancel(None)
        if began:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass  # an interrupted transaction may already be gone
        cur.close()
    if total == 0:
        ctx.set_progress(1.0, rows=0)
    return {"rows": total, "tables": len(tables), "views": len(views)}


def _reset_error(exc: duckdb.Error) -> ArchiveError:
    err = engine_error(exc)
    return ArchiveError(err.code, f"the reset failed and the dataset is unchanged: {err.message}", err.status)


def _fk_order(tables: list[tuple[str, str]], refs: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Tables in an order that drops each referencing table before the tables it references."""
    remaining = list(tables)
    # referenced (schema, name lower) -> the tables referencing it
    referenced_by: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for schema, table, target in refs:
        if target and target.lower() != table.lower():
            referenced_by.setdefault((schema, target.lower()), set()).add((schema, table.lower()))
    order: list[tuple[str, str]] = []
    while remaining:
        alive = {(s, t.lower()) for s, t in remaining}
        ready = [(s, t) for s, t in remaining if not (referenced_by.get((s, t.lower()), set()) & alive)]
        if not ready:  # a cycle cannot be made in DuckDB; if it could, DROP names the problem
            ready = remaining
        order.extend(ready)
        taken = set(ready)
        remaining = [x for x in remaining if x not in taken]
    return order
