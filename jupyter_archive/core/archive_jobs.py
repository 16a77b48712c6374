"""The job part of the Archive facade: submit, find, list, cancel, delete jobs and read their results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ArchiveError, not_found, permission
from .jobs import Job
from .query import QueryResult
from .query_jobs import compile_job, query_request

if TYPE_CHECKING:
    from .catalog import Principal


class JobsMixin:
    """Jobs as a user sees them: their own (an admin: everyone's), through the one job system."""

    # -- jobs -------------------------------------------------------------------------------------
    def submit_query(
        self,
        principal: Principal,
        text: str,
        language: str = "sql",
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
        if principal.anonymous:
            raise permission("jobs need a signed-in user: log in to Jupyter or send an X-Auth-Token")
        req = query_request(text, language, **request)
        if validate:
            compiled, into = compile_job(self, principal, req)
            req["modified_query"] = compiled.modified_query
            if into is not None:
                req["into"] = {"context": into.context, "name": into.name}
        return self.jobs.submit(principal.name, "query", req, face=face, start_time=start_time, run=run)

    def job(self, principal: Principal, job_id: int | str) -> Job:
        """A job the principal may see (their own, or any for an admin)."""
        try:
            jid = int(job_id)
        except (TypeError, ValueError):
            raise not_found(f"unknown job {job_id!r}", job=job_id) from None
        job = self.jobs.store.get(jid)
        if job is None or (job.owner != principal.name and not principal.admin) or principal.anonymous:
            raise not_found(f"unknown job {job_id}", job=job_id)
        return job

    def list_jobs(self, principal: Principal, *, all_users: bool = False, **filters: Any) -> tuple[list[Job], int]:
        """The principal's jobs (every user's for an admin asking ``all_users``), newest first."""
        if principal.anonymous:
            return [], 0
        owner = None if (all_users and principal.admin) else principal.name
        return self.jobs.store.list(owner, **filters)

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
            owner = self.principal(job.owner)
            return self.read_table(owner, table["context"], table["name"], offset=offset, limit=limit)
        raise not_found(f"job {job.id} produced no rows to read", job=job.id)

    def _forget_job_results(self, job: Job) -> None:
        self.results.remove(job.id)
