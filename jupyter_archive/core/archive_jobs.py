"""The job part of the Archive facade: submit, find, list, cancel, delete jobs and read their results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import ANONYMOUS
from .errors import ArchiveError, not_found, permission
from .jobs import ANONYMOUS_OWNER, Job
from .languages import DEFAULT_LANGUAGE
from .query import QueryResult
from .query_jobs import compile_job, query_request
from .tap_uploads import discard as discard_uploads
from .tap_uploads import upload_target

if TYPE_CHECKING:
    from .catalog import Principal


class JobsMixin:
    """Jobs as a user sees them: their own (an admin: everyone's), through the one job system."""

    # -- jobs -------------------------------------------------------------------------------------
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
        """Submit a query as a job (see ``query_jobs.query_request`` for the request fields).

        With ``validate`` the query is compiled first, so bad SQL is refused at once; the
        rewritten query is kept with the job (CasJobs shows it as ``ModifiedQuery``).
        """
        if principal.anonymous and not self.config.allow_anonymous:
            raise permission("jobs need a signed-in user: log in to Jupyter or send an X-Auth-Token")
        req = query_request(text, language, **request)
        if principal.anonymous and req.get("target"):
            raise permission("writing tables needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
        if validate and not req.get("tap_schema"):
            # uploads are loaded when the job runs; their names are what compiling needs now
            uploads = {u["name"].lower(): upload_target(u["name"]) for u in req.get("uploads") or ()}
            compiled, into = compile_job(self, principal, req, uploads)
            if principal.anonymous and any(st.kind != "read" for st in compiled.statements):
                raise permission("writing needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
            req["modified_query"] = compiled.modified_query
            if into is not None:
                req["into"] = {"context": into.context, "name": into.name}
        return self.submit_job(principal, "query", req, face=face, start_time=start_time, run=run)

    def submit_job(self, principal: Principal, kind: str, request: dict, **options: Any) -> Job:
        """Make a job of the principal's identity (every kind of job is made here)."""
        if not principal.anonymous and not self.users.is_current(principal):
            raise not_found(f"user {principal.name!r} no longer exists", user=principal.name)
        owner = self.job_owner(principal)
        return self.jobs.submit(owner, kind, request, owner_uid=self.job_owner_uid(principal), **options)

    @staticmethod
    def job_owner(principal: Principal) -> str:
        """The owner recorded with a job: the user's name, or a name no user can have."""
        return ANONYMOUS_OWNER if principal.anonymous else principal.name

    @staticmethod
    def job_owner_uid(principal: Principal) -> str:
        """The identity a job belongs to: the user's (a user made again under the name is another)."""
        return ANONYMOUS_OWNER if principal.anonymous else principal.ident

    def job_principal(self, job: Job) -> Principal:
        """Whom a job runs as; 404 once its owner was deleted (a job never makes a user)."""
        return ANONYMOUS if job.anonymous else self.users.owner(job.owner, job.owner_uid)

    def job(self, principal: Principal, job_id: int | str) -> Job:
        """A job the principal may see (their own, or any for an admin)."""
        job = self.jobs.store.get(job_id)  # None too for an id no job can have
        if job is None or (job.owner_uid != self.job_owner_uid(principal) and not principal.admin):
            raise not_found(f"unknown job {job_id}", job=job_id)
        return job

    def list_jobs(self, principal: Principal, *, all_users: bool = False, **filters: Any) -> tuple[list[Job], int]:
        """The principal's jobs (every user's for an admin asking ``all_users``), newest first."""
        if principal.anonymous and not self.config.allow_anonymous:
            return [], 0
        owner = None if (all_users and principal.admin) else self.job_owner_uid(principal)
        return self.jobs.store.list(owner, **filters)

    def update_job(self, principal: Principal, job_id: int | str, *, request: dict | None = None, destruction: float | None = None) -> Job:
        """Change a job's request (only while it is pending: UWS parameters, execution duration)
        or its destruction time (any time)."""
        job = self.job(principal, job_id)
        fields: dict[str, Any] = {}
        if request is not None:
            if job.state != "pending":
                raise ArchiveError("conflict", f"job {job.id} is {job.state}; its parameters can change only while it is pending", 409)
            fields["request"] = request
        if destruction is not None:
            fields["destruction"] = destruction
        self.jobs.store.update(job.id, **fields)
        return self.job(principal, job.id)

    def cancel_job(self, principal: Principal, job_id: int | str) -> Job:
        return self.jobs.cancel(self.job(principal, job_id).id)

    def run_job(self, principal: Principal, job_id: int | str) -> Job:
        return self.jobs.run_job(self.job(principal, job_id).id)

    def delete_job(self, principal: Principal, job_id: int | str) -> None:
        self.jobs.delete(self.job(principal, job_id).id)

    def job_log(self, principal: Principal, job_id: int | str) -> list[tuple[float, str]]:
        return self.jobs.store.log_lines(self.job(principal, job_id).id)

    def wait_job(self, principal: Principal, job_id: int | str, timeout: float | None = None, until=None) -> Job:
        return self.jobs.wait(self.job(principal, job_id).id, timeout, until=until)

    def job_result(self, principal: Principal, job_id: int | str, *, offset: int | None = None, limit: int | None = None) -> QueryResult:
        """The rows a completed job produced, paged: its MyDB table or its stored result."""
        job = self.job(principal, job_id)
        if job.state != "completed":
            raise ArchiveError("conflict", f"job {job.id} is {job.state}; results exist once it has completed", 409)
        if "store" in job.results:
            return self.results.read(job.id, offset=offset or 0, limit=limit)
        table = job.results.get("table")
        if table:
            return self.read_table(self.job_principal(job), table["context"], table["name"], offset=offset, limit=limit)
        raise not_found(f"job {job.id} produced no rows to read", job=job.id)

    def _forget_job_results(self, job: Job) -> None:
        self.results.remove(job.id)
        discard_uploads(job.request.get("uploads"))
