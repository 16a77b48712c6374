"""Archive: builds the archive's services and hands them out.

Every face and the Python client reach the archive through these services: ``catalog``
(the namespace), ``mounts``, ``engines``, ``queries``, ``jobs``, ``datasets``, ``directives``,
``users``, ``images``, ``tables``. Everything here is synchronous and thread-safe; faces call
it from a thread pool (``executor``).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import temp_area
from .archive_images import CUTOUT_JOB, ImagesMixin
from .catalog.model import MYDB_ALIAS, Principal
from .catalog.mounts import Mounts
from .catalog.namespace import Namespace
from .config import ArchiveConfig
from .errors import ArchiveError, not_found
from .execution.pool import EnginePool
from .execution.run import Queries
from .jobs.directives import DirectiveStore
from .jobs.reset import Datasets
from .jobs.results import ResultStore
from .jobs.service import Jobs
from .jobs.store import JobStore
from .owned import remove_owned
from .ownership import DataDirLock, describe_holder
from .users import UserStore, valid_password

log = logging.getLogger(__name__)


class Archive(ImagesMixin):
    """The archive: catalog + engines + users. One per server process."""

    def __init__(self, config: ArchiveConfig, *, lock: DataDirLock | None = None):
        self.config = config
        self.data_dir = Path(config.data_dir)
        # The data dir's one owner: nothing is written in it before its lock is held.
        self.lock = lock or DataDirLock(self.data_dir)
        if not self.lock.acquire():
            raise ArchiveError("conflict", f"the data dir {self.data_dir} is in use by another process ({describe_holder(self.lock.holder())})", 409)
        temp_area.clear(self.data_dir)  # what a killed process left; the lock says no live one uses it
        self.catalog = Namespace(self.data_dir)
        self.users = UserStore(self.data_dir / "state.sqlite")
        self.executor = ThreadPoolExecutor(max(1, config.quick_workers), thread_name_prefix="archive-quick")
        self.engines = EnginePool(
            self.catalog,
            self.data_dir,
            users=self.users.principal,  # stage-2 wiring: the user store's lookup (None once deleted)
            running_jobs=lambda uid: self.jobs.running_ids(uid),  # built below: the pool asks only when an engine is held
            wait=config.quick_time_limit,
            threads=config.engine_threads,
            memory_limit=config.engine_memory_limit,
            connections=config.quick_workers + config.job_workers + 2,
        )
        self.catalog.engines = self.engines  # the namespace reads MyDB and writable mounts through them
        self.mounts = Mounts(config, self.data_dir, self.catalog, self.engines)
        self.mounts.load()
        self.queries = Queries(self.catalog, self.engines, row_limit=config.quick_row_limit, time_limit=config.quick_time_limit)
        self.results = ResultStore(self.data_dir / "results")
        self.jobs = Jobs(
            JobStore(self.data_dir / "jobs.sqlite"),
            self.results,
            users=self, queries=self.queries,  # stage-2 wiring: users=self.users
            allow_anonymous=config.allow_anonymous,
            workers=config.job_workers,
            per_user=config.jobs_per_user,
            retention=config.job_retention,
        )
        self.queries.jobs = self.jobs  # TAP uploads may name a job's result
        self.jobs.register_kind(CUTOUT_JOB, self.run_cutout_job, self.forget_cutout_files)  # stage-2 wiring
        self.datasets = Datasets(self.jobs, catalog=self.catalog, engines=self.engines)
        self.directives = DirectiveStore(self.data_dir / "directives.sqlite", jobs=self.jobs, users=self, queries=self.queries)  # stage-2 wiring

    def start(self) -> None:
        """Start background work (the job runner); call once the archive is set up."""
        self.jobs.start()

    def close(self) -> None:
        self.jobs.close()
        self.directives.close()
        self.mounts.close()
        self.jobs.store.close()
        self.engines.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.users.close()
        self.lock.release()

    # -- users --------------------------------------------------------------------------------------
    def principal_for_token(self, token: str) -> Principal | None:
        return self.users.principal_for_token(token)

    def principal(self, name: str, *, admin: bool = False) -> Principal:
        """The user named so, made on first sight. Only explicit acts make users (the Jupyter
        owner or a JupyterHub user on first sight, an admin's ``create_user``, the token
        command); anything acting on a user a request names uses ``user`` instead."""
        return self.users.ensure_user(name, admin=admin)

    def user(self, name: str) -> Principal:
        """An existing user's principal; 404 if there is none (looking a user up never makes one)."""
        principal = self.users.principal(name) if isinstance(name, str) else None
        if principal is None:
            raise not_found(f"unknown user {name!r}", user=name)
        return principal

    def owner(self, name: str, uid: str | None = None) -> Principal:
        """The principal of a stored owner (a job's, a directive's); 404 once that user was
        deleted, even if a new user has the name since."""
        principal = self.users.principal(name)
        if principal is None or principal.ident != (uid or name):
            raise not_found(f"user {name!r} no longer exists", user=name)
        return principal

    def create_user(
        self, name: str, *, full_name: str | None = None, email: str | None = None, password: str | None = None
    ) -> Principal:
        """Make a user (or update one) and their MyDB file: what an admin's CasJobs ``PUT /users`` does."""
        if password is not None:
            valid_password(password)  # refuse a bad password before anything is made
        principal = self.users.ensure_user(name)
        self.users.update_user(principal.name, full_name=full_name, email=email)
        if password is not None:
            self.users.set_password(principal.name, password)
        self.engines.engine(principal, {MYDB_ALIAS}).cursor().close()  # attaching MyDB read-write creates its file now
        return principal

    def delete_user(self, name: str) -> None:
        """Remove a user and everything they own (``owned.KINDS``: account and tokens first, so
        no new request gets in; running jobs are canceled, open work interrupted). A user made
        later under the same name is a new identity and starts with nothing."""
        remove_owned(self, self.user(name))
