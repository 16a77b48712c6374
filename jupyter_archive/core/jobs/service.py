"""Jobs, the service (``archive.jobs``): submit, find, list, cancel, delete jobs and read their
results, as a user sees them (their own; an admin: everyone's), through the one job system."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..catalog import ANONYMOUS
from ..errors import ArchiveError, not_found, permission
from ..execution.pool import QueryResult
from ..execution.uploads import upload_target
from ..lanes import cheap_read
from ..languages import DEFAULT_LANGUAGE
from .continued import ContinuedQuery, adopt
from .model import ANONYMOUS_OWNER, Job, destruction_time
from .query import QueryJobs, query_request
from .runner import JobContext, JobRunner
from .store import JobStore

if TYPE_CHECKING:
    from ..catalog import Principal
    from .results import ResultStore


class Jobs:
    """The job service: the runner and its store, the job kinds, and the rules of who sees which job."""

    def __init__(
        self,
        store: JobStore,
        results: ResultStore,
        *,
        users,
        queries,
        allow_anonymous: bool = False,
        workers: int = 2,
        per_user: int = 0,
        waiting_per_user: int | None = 1000,
        retention: float | None = 7 * 24 * 3600,
    ):
        self.store = store
        self.results = results
        self._users = users
        self._queries = queries
        self.allow_anonymous = allow_anonymous
        self.runner = JobRunner(store, workers=workers, per_user=per_user, waiting_per_user=waiting_per_user, retention=retention,
                                on_expire=self._forget)
        self._forgets: dict[str, Callable[[Job], None]] = {}
        self.query_jobs = QueryJobs(self, results, queries=queries)
        self.register_kind("query", self.query_jobs.run, self.query_jobs.forget)
        # A directive is a saved query: its jobs do the same work.
        self.register_kind("directive", self.query_jobs.run, self.query_jobs.forget)

    def register_kind(
        self, name: str, run: Callable[[Job, JobContext], dict | None], forget: Callable[[Job], None] | None = None
    ) -> None:
        """Add a kind of job: ``run`` does its work; ``forget`` removes what it made when the job goes."""
        self.runner.register(name, run)
        if forget is not None:
            self._forgets[name] = forget

    def start(self) -> None:
        """Recover what a stopped process left and start running jobs."""
        self.runner.start()

    def close(self) -> None:
        self.runner.stop()
        self.store.close()

    # -- owners -------------------------------------------------------------------------------------
    @staticmethod
    def owner_of(principal: Principal) -> tuple[str, str]:
        """The owner recorded with a job: the user's name and identity (a user made again under
        the name is another), or a name no user can have."""
        return (ANONYMOUS_OWNER, ANONYMOUS_OWNER) if principal.anonymous else (principal.name, principal.ident)

    def principal_of(self, job: Job) -> Principal:
        """Whom a job runs as; 404 once its owner was deleted (a job never makes a user)."""
        return ANONYMOUS if job.anonymous else self._users.owner(job.owner, job.owner_uid)

    def destruction(self, job: Job) -> float | None:
        """When a job is removed, whatever its state (``model.destruction_time``: its own time, else
        the retention after it ended; None: kept). The runner's expiry uses the same rule."""
        return destruction_time(job, self.runner.retention)

    # -- submitting ---------------------------------------------------------------------------------
    def submit_query(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        face: str = "native",
        start_time: float | None = None,
        run: bool = True,
        validate: bool = True,
        **request: Any,
    ) -> Job:
        """Submit a query as a job (see ``query.query_request`` for the request fields).

        With ``validate`` the query is compiled first, so bad SQL is refused at once; the
        rewritten query is kept with the job (CasJobs shows it as ``ModifiedQuery``).
        """
        if principal.anonymous and not self.allow_anonymous:
            raise permission("jobs need a signed-in user: log in to Jupyter or send an X-Auth-Token")
        req = query_request(text, language, **request)
        if principal.anonymous and req.get("target"):
            raise permission("writing tables needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
        if validate:
            # uploads are loaded when the job runs; their names are what compiling needs now
            uploads = {u["name"].lower(): upload_target(u["name"]) for u in req.get("uploads") or ()}
            compiled, into = self.query_jobs.compile(principal, req, uploads)
            if principal.anonymous and any(st.kind != "read" for st in compiled.statements):
                raise permission("writing needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
            req["modified_query"] = compiled.modified_query
            if into is not None:
                req["into"] = {"context": into.context, "name": into.name}
        return self.submit(principal, "query", req, face=face, start_time=start_time, run=run)

    def continued(self, principal: Principal, text: str, language: str, cursor, **options: Any) -> ContinuedQuery | None:
        """A quick query's run past the quick time limit going on as the principal's job (a face's ``Continuation``
        asks, on the watchdog's thread); None when no job can be made (``continued.adopt`` has the options)."""
        return adopt(self, principal, text, language, cursor, row_limit=self._queries.row_limit, **options)

    def submit(self, principal: Principal, kind: str, request: dict, **options: Any) -> Job:
        """Make a job of the principal's identity (every kind of job is made here)."""
        if not principal.anonymous:
            self._users.owner(principal.name, principal.ident)  # 404 once the user was deleted
        owner, uid = self.owner_of(principal)
        return self.runner.submit(owner, kind, request, owner_uid=uid, **options)

    # -- one job --------------------------------------------------------------------------------------
    @cheap_read
    def get(self, principal: Principal, job_id: int | str) -> Job:
        """A job the principal may see (their own, or any for an admin)."""
        job = self.store.get(job_id)  # None too for an id no job can have
        if job is None or (job.owner_uid != self.owner_of(principal)[1] and not principal.admin):
            raise not_found(f"unknown job {job_id}", job=job_id)
        return job

    @cheap_read
    def list(self, principal: Principal, *, all_users: bool = False, **filters: Any) -> tuple[list[Job], int]:
        """The principal's jobs (every user's for an admin asking ``all_users``), newest first."""
        if principal.anonymous and not self.allow_anonymous:
            return [], 0
        owner = None if (all_users and principal.admin) else self.owner_of(principal)[1]
        return self.store.list(owner, **filters)

    def update(self, principal: Principal, job_id: int | str, *, request: dict | None = None, destruction: float | None = None) -> Job:
        """Change a job's request (only while it is pending: UWS parameters, execution duration)
        or its destruction time (any time)."""
        job = self.get(principal, job_id)
        fields: dict[str, Any] = {}
        if request is not None:
            if job.state != "pending":
                raise ArchiveError("conflict", f"job {job.id} is {job.state}; its parameters can change only while it is pending", 409)
            fields["request"] = request
        if destruction is not None:
            fields["destruction"] = destruction
        self.store.update(job.id, **fields)
        return self.get(principal, job.id)

    def cancel(self, principal: Principal, job_id: int | str) -> Job:
        return self.runner.cancel(self.get(principal, job_id).id)

    def run(self, principal: Principal, job_id: int | str) -> Job:
        """Start a pending job (UWS ``PHASE=RUN``)."""
        return self.runner.run_job(self.get(principal, job_id).id)

    def delete(self, principal: Principal, job_id: int | str) -> None:
        self.runner.delete(self.get(principal, job_id).id)

    @cheap_read
    def log(self, principal: Principal, job_id: int | str) -> list[tuple[float, str]]:
        return self.store.log_lines(self.get(principal, job_id).id)

    def wait(self, principal: Principal, job_id: int | str, timeout: float | None = None, until=None) -> Job:
        return self.runner.wait(self.get(principal, job_id).id, timeout, until=until)

    def result(self, principal: Principal, job_id: int | str, *, offset: int | None = None, limit: int | None = None) -> QueryResult:
        """The rows a completed job produced, paged: its MyDB table or its stored result."""
        job = self.get(principal, job_id)
        if job.state != "completed":
            raise ArchiveError("conflict", f"job {job.id} is {job.state}; results exist once it has completed", 409)
        if "store" in job.results:
            return self.results.read(job.id, offset=offset or 0, limit=limit)
        table = job.results.get("table")
        if table:
            return self._queries.read_table(self.principal_of(job), table["context"], table["name"], offset=offset, limit=limit)
        raise not_found(f"job {job.id} produced no rows to read", job=job.id)

    # -- what a user owns ---------------------------------------------------------------------------
    def running_ids(self, owner_uid: str) -> list[int]:
        """The ids of an owner's jobs that hold an engine now (running or being canceled)."""
        jobs, _ = self.store.list(owner_uid, states=["running", "canceling"])
        return [j.id for j in jobs]

    def count(self, principal: Principal) -> int:
        """How many jobs an identity has."""
        return self.store.list(principal.ident, limit=0)[1]

    def remove_owned(self, principal: Principal) -> None:
        """Forget every job of an identity (its user is being deleted)."""
        jobs, _ = self.store.list(principal.ident)
        # Cancel all first, so their engine work stops together, then forget each with its logs
        # and what its kind made (stored result, cutout files, staged TAP uploads).
        for job in jobs:
            if not job.final:
                self.runner.cancel(job.id)
        for job in jobs:
            self.runner.delete(job.id)

    def _forget(self, job: Job) -> None:
        """Remove what a job made, as it is forgotten (deleted or expired)."""
        forget = self._forgets.get(job.kind)
        if forget is not None:
            forget(job)
        self.results.remove(job.id, job.owner_uid)
