"""ArchiveApp: the Jupyter server extension that hosts the archive (``jupyter archive``)."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

from jupyter_core.application import JupyterApp
from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, default, validate

from .connections import ConnectionGuard
from .memory_errors import answer_busy
from .core.archive import Archive
from .core.catalog import Principal
from .core.config import ArchiveConfig
from .core.errors import ArchiveError
from .core.memory import cap_memory, data_size, memory_size, settle_long_lived, tune_allocator
from .core.execution.cluster import check_scheduler
from .core.catalog.mounts import check_spec
from .core.ownership import DataDirLock, describe_holder
from .core.users.store import valid_user_name
from .faces.auth import auth_handlers
from .kernels import JUPYTER_KERNEL_MANAGER
from .faces.casjobs import casjobs_handlers
from .faces.casjobs_users import casjobs_user_handlers
from .faces.dax import dax_handlers
from .faces.dax_images import dax_image_handlers
from .faces.history import history_handlers
from .faces.kasabi import kasabi_handlers
from .faces.native import native_handlers
from .faces.native_directives import native_directive_handlers
from .faces.quasar import quasar_handlers
from .faces.sas import sas_handlers
from .faces.soda import soda_handlers
from .faces.tables import table_handlers
from .faces.proxy import Forwarding, proxied, unproxy
from .faces.tap import tap_handlers
from .settings import (JsonDict, JsonList, SettingError, disk_bound, engines_bound, memory_cap, setting_error, size_bytes, size_setting,
                       usable_dir)

TAKE_OVER_EVERY = 2.0  # seconds between a forwarding server's tries to take a free data dir over


class ArchiveApp(ExtensionApp):
    """A data archive inside Jupyter: CasJobs, Quasar and native faces over one core."""

    name = "archive"
    description = "jupyter_archive: a data archive that lives inside Jupyter"
    extension_url = "/archive/api/contexts"
    # `jupyter archive` serves the archive alone: the lab, its language servers and terminals come with `jupyter lab`
    # (~30 MB and ~300 modules a server holds at rest otherwise).
    load_other_extensions = False

    data_dir = Unicode(config=True, help="Where the archive keeps its state, MyDBs, caches and the demo data.")
    mounts = JsonList(
        JsonDict(),
        config=True,
        help=(
            "Mounts: a list of {path, type ('duckdb' | 'files'), location, context, readOnly, public, description}. "
            "When empty (and demo is on) the embedded demo archive is mounted at /demo as context DEMO."
        ),
    )
    mount_roots = JsonList(
        Unicode(),
        config=True,
        help="Directories whose files and databases admins may mount at run time (Quasar's /mount); default: the server's root_dir.",
    )
    demo = Bool(True, config=True, help="Make and mount the demo archive when no mounts are configured.")
    demo_rows = Int(100_000, min=1, config=True, help="Rows of the demo PhotoObj table.")
    hats_demo_rows = Int(
        0, min=0, config=True,
        help="Rows of a seeded HATS demo catalog (written with lsdb at first start under the data dir) mounted as "
        "context SKY, TAP sky.stars; 0 (the default) makes none.",
    )
    quick_row_limit = Int(100_000, min=1, config=True, help="Most rows a quick query returns; more sets the truncation flag.")
    quick_time_limit = Float(60.0, config=True, help="Seconds a quick query runs as one (then a native one goes on as a job; others stop).")
    quick_workers = Int(
        5, min=1, config=True,
        help="Threads running quick queries and streaming results (one user takes at most quick_per_user of them).",
    )
    quick_per_user = Int(
        0, min=0, config=True,
        help="Quick requests one user may run at once; more wait their turn, fairly across users (0: every quick worker but one).",
    )
    quick_queue_time = Float(
        30.0, min=0.0, config=True, help="Seconds a quick request may wait for its turn before a 429 with Retry-After."
    )
    read_workers = Int(
        4, min=1, config=True, help="Threads answering cheap reads (metadata, job status, listings), apart from queries."
    )
    job_workers = Int(4, min=1, config=True, help="Jobs (long queries, resets, ...) running at once.")
    jobs_per_user = Int(
        0, min=0, config=True,
        help="Jobs one user may have running at once (0: every job worker but one, so another user always finds one free); more wait in the queue.",
    )
    jobs_waiting_per_user = Int(
        1000, min=0, config=True, help="Jobs one user may have waiting to run (pending, scheduled or queued); more are refused with 429 (0: any number)."
    )
    history_per_user = Int(
        10_000, min=0, config=True,
        help="Queries each user's history keeps, the newest (and at most 64 million characters of query text); 0: any number.",
    )
    job_retention = Float(7 * 24 * 3600.0, min=0.0, config=True, help="Seconds finished jobs and their stored results are kept (0: forever).")
    upload_limit = Int(
        1 << 30, min=1, config=True, help="Bytes one table upload may have (CasJobs and native uploads); more is refused with 413."
    )
    engine_threads = Int(0, min=0, config=True, help="DuckDB threads per engine (0: DuckDB's default, the core count).")
    engine_spill_limit = Unicode(
        "10GB", config=True,
        help="Disk one engine (each user has one) may spill to in the data dir's tmp, e.g. '50GB' (empty: DuckDB's default, 90% of the free disk).",
    )
    engine_idle_seconds = Float(
        60.0, min=0.0, config=True,
        help="Seconds an engine nobody uses stays open; then it is closed (freeing its memory) and the next query opens it again (0: never).",
    )
    engines_open = Int(
        64, min=0, config=True,
        help="Engines (one per active user) kept open at most: past it, the least recently used one nobody is using closes, "
             "and its user's next query opens it again (0: any number). Each holds a DuckDB instance (~5 MB), its threads and "
             "its cache (up to engine_memory_limit): no more stay open than fill half of process_memory_limit.",
    )
    lookup_memory = Unicode(
        "256MB", config=True,
        help=(
            "Memory for the key indexes that answer point lookups (WHERE id = 123) without the engine: a table looked up "
            "often by an integer or text column is held in memory, sorted by it, if it fits (empty: no key indexes)."
        ),
    )
    engine_memory_limit = Unicode(
        "160MB", config=True,
        help=(
            "DuckDB memory limit per engine, e.g. '2GB'; past it queries spill to disk (empty: DuckDB's default, 80% of RAM "
            "per engine). It also bounds what an engine keeps of the tables it read, most of an export's peak."
        ),
    )
    mydb_quota = Unicode(
        "10GB", config=True,
        help=(
            "Disk each user's MyDB may take, e.g. '10GB', or a share of the data dir's disk, '5%'; a write that would "
            "grow it past this fails whole with a 507 (0: no quota)."
        ),
    )
    results_quota = Unicode(
        "10GB", config=True,
        help=(
            "Disk each user's stored job results may take together (those of jobs not yet deleted or expired), e.g. "
            "'10GB' or '5%'; a job whose result would pass it fails with a 507, its result gone (0: no quota)."
        ),
    )
    hats_quota = Unicode(
        "10GB", config=True,
        help=(
            "Disk each user's imported HATS catalogs may take together, e.g. '10GB' or '5%'; an import that would pass "
            "it fails with a 507, leaving nothing (0: no quota). Users delete their catalogs to make room."
        ),
    )
    disk_reserve = Unicode(
        "auto", config=True,
        help=(
            "Free disk the archive's writes leave on each disk they write to (MyDB tables, uploads, job results), e.g. "
            "'1GB' or '2%'; a write that would take the disk below it fails whole with a 507 and gives back what it "
            "took, so one user's write never leaves the disk full for the others ('auto': 1 GiB, or 5% of a smaller "
            "data dir's disk; 0: none)."
        ),
    )
    _mydb_quota: int | None = 10**10  # mydb_quota, results_quota, hats_quota and disk_reserve in bytes, once checked
    _results_quota: int | None = 10**10
    _hats_quota: int | None = 10**10
    _disk_reserve: int | None = None  # None: auto (``storage.default_reserve``)
    _memory_cap: int | None = None  # process_memory_limit in bytes, once checked
    _engines_open = 64  # engines_open, within the memory cap (``settings.engines_bound``)
    process_memory_limit = Unicode(
        "50%", config=True,
        help=(
            "Memory the server process may allocate, e.g. '8GB', or a share of the machine's (or its container's) memory, "
            "'50%' (but at least 4 GB); a query past it fails with an error instead of the process being killed. Dask "
            "workers the server starts inherit it; its kernels get the limit the server had before (0: no cap)."
        ),
    )
    dask_scheduler = Unicode(
        "", config=True,
        help=(
            "Where work spanning many partitions of a HATS catalog runs: empty (default) in-process, no cluster; "
            "'local' a LocalCluster of worker processes sized to the machine ('local:N' for N workers), started on first use; "
            "'tcp://host:8786' a running Dask scheduler, whose workers must reach the catalogs' files."
        ),
    )
    cluster_min_rows = Int(
        10_000, min=0, config=True,
        help=(
            "A cross-match job of an upload or MyDB table with a HATS catalog runs on the Dask cluster only when the table has at least "
            "this many positions (and they touch 16 partitions or more): fewer run faster in-process."
        ),
    )
    client_timeout = Float(
        60.0, min=0.0, config=True,
        help=(
            "Seconds a connection may wait for its headers, or go without a byte of progress in its request body or in reading "
            "its response; then it is closed (0: never). Keeps clients that hold connections from using up the server's files."
        ),
    )
    connections_per_client = Int(
        512, min=0, config=True, help="Connections one client address may hold open at once; more are answered 429 (0: no limit)."
    )
    allow_anonymous = Bool(
        False, config=True, help="Let unauthenticated callers run quick queries on public, read-only contexts."
    )
    token_lifetime = Float(
        24 * 3600.0, min=0.0, config=True, help="Seconds a token made by password login (archive/auth/tokens) stays valid (0: forever)."
    )
    owner = Unicode(config=True, help="The archive user that Jupyter-authenticated requests act as (an admin).")
    jupyter_user_mapping = Enum(
        ["owner", "username"],
        "owner",
        config=True,
        help=(
            "How a Jupyter-authenticated request maps to an archive user: 'owner' (all are the server's owner, "
            "right for a personal server where Jupyter's users are anonymous) or 'username' (JupyterHub-style "
            "named users; the owner stays the only admin)."
        ),
    )

    @default("data_dir")
    def _default_data_dir(self):
        return os.path.join(jupyter_data_dir(), "jupyter_archive")

    @default("owner")
    def _default_owner(self):
        try:
            return getpass.getuser()
        except Exception:  # noqa: BLE001 - no passwd entry in some containers
            return "owner"

    def archive_config(self) -> ArchiveConfig:
        return ArchiveConfig(
            data_dir=Path(self.data_dir),
            mounts=list(self.mounts),
            demo=self.demo,
            demo_rows=self.demo_rows,
            hats_demo_rows=self.hats_demo_rows,
            quick_row_limit=self.quick_row_limit,
            quick_time_limit=self.quick_time_limit,
            quick_workers=self.quick_workers,
            read_workers=self.read_workers,
            quick_per_user=self.quick_per_user,
            quick_queue_time=self.quick_queue_time,
            engine_threads=self.engine_threads or None,
            engine_memory_limit=self.engine_memory_limit or None,
            engine_spill_limit=self.engine_spill_limit or None,
            engine_idle_seconds=self.engine_idle_seconds or None,
            engines_open=self._engines_open,
            lookup_memory=size_bytes(self.lookup_memory) or 0,
            allow_anonymous=self.allow_anonymous,
            job_workers=self.job_workers,
            jobs_per_user=self.jobs_per_user,
            jobs_waiting_per_user=self.jobs_waiting_per_user,
            job_retention=self.job_retention or None,
            history_per_user=self.history_per_user,
            upload_limit=self.upload_limit,
            mydb_quota=self._mydb_quota,
            results_quota=self._results_quota,
            hats_quota=self._hats_quota,
            disk_reserve=self._disk_reserve,
            dask_scheduler=self.dask_scheduler,
            cluster_min_rows=self.cluster_min_rows,
            mount_roots=list(self.mount_roots) or [self.serverapp.root_dir],
        )

    @validate("quick_time_limit")
    def _positive_time_limit(self, proposal):
        if proposal["value"] <= 0:
            raise TraitError(f"The 'quick_time_limit' trait must be more than 0 seconds, not {proposal['value']}")
        return proposal["value"]

    # -- settings: checked before anything is written ---------------------------------------------
    def _link_jupyter_server_extension(self, serverapp):
        # jupyter_server only logs a failure here ("error linking extension") and goes on to
        # load the extension with whatever settings survived; a data dir of "" then meant the
        # current directory. A setting that cannot be used stops the start instead.
        try:
            super()._link_jupyter_server_extension(serverapp)
            self.check_settings()
        except SettingError as exc:
            self._refuse_to_start(serverapp, exc)
        except Exception as exc:  # noqa: BLE001 - traitlets' TraitError, ValueError, ...: all about a setting
            self._refuse_to_start(serverapp, setting_error("ArchiveApp", exc))

    def check_settings(self) -> None:
        """Refuse settings that cannot be used (SettingError naming the setting); make the data dir absolute."""
        self.data_dir = str(usable_dir("ArchiveApp.data_dir", self.data_dir, create=True))
        for root in self.mount_roots:
            usable_dir("ArchiveApp.mount_roots", root, create=False)
        try:
            self.dask_scheduler = check_scheduler(self.dask_scheduler)
        except ValueError as exc:
            raise SettingError("ArchiveApp.dask_scheduler", str(exc)) from None
        for i, spec in enumerate(self.mounts):
            try:
                check_spec(spec)
            except ArchiveError as exc:
                raise SettingError(f"ArchiveApp.mounts[{i}]", exc.message) from None
        for name, least in (("engine_memory_limit", 16 << 20), ("engine_spill_limit", 1 << 20), ("lookup_memory", 1 << 20)):
            if getattr(self, name):
                size_setting(f"ArchiveApp.{name}", getattr(self, name), least=least)
        disk = shutil.disk_usage(self.data_dir).total
        self._mydb_quota = disk_bound("ArchiveApp.mydb_quota", self.mydb_quota, disk=disk, least=1 << 20)
        self._results_quota = disk_bound("ArchiveApp.results_quota", self.results_quota, disk=disk, least=1 << 20)
        self._hats_quota = disk_bound("ArchiveApp.hats_quota", self.hats_quota, disk=disk, least=1 << 20)
        auto = self.disk_reserve.strip().lower() == "auto"
        self._disk_reserve = None if auto else disk_bound("ArchiveApp.disk_reserve", self.disk_reserve, disk=disk) or 0
        self._memory_cap = memory_cap("ArchiveApp.process_memory_limit", self.process_memory_limit, memory=memory_size(), using=data_size())
        self._engines_open = engines_bound(self.engines_open, self._memory_cap, size_bytes(self.engine_memory_limit))
        try:
            valid_user_name(self.owner)
        except ArchiveError as exc:
            raise SettingError("ArchiveApp.owner", exc.message) from None

    @staticmethod
    def _refuse_to_start(serverapp, err: SettingError):
        setting = err.name.split("[")[0]
        serverapp.log.critical(
            "jupyter_archive cannot start: the setting %s cannot be used: %s. Set it on the command line "
            "(--%s=...; lists and dicts as JSON) or in jupyter_server_config.py (c.%s = ...).",
            err.name, err.problem, setting, setting,
        )
        serverapp.exit(1)

    # -- the data dir: owned here, or served through its owner ------------------------------------
    def initialize_settings(self):
        tune_allocator()  # this process serves exports: large buffers go back to the system when freed
        cap_memory(self._memory_cap)  # and any user's query: one that grows without bound fails, not the process
        if self._memory_cap is not None:
            answer_busy()  # a failed allocation in any handler, Jupyter's too, is a 503 to retry, not a 500
        kernels = getattr(self.serverapp, "kernel_manager", None)
        if self._memory_cap is not None and getattr(kernels, "kernel_manager_class", None) == JUPYTER_KERNEL_MANAGER:
            kernels.kernel_manager_class = "jupyter_archive.kernels.UncappedKernelManager"  # kernels: not capped
        settle_long_lived()  # and many requests: full garbage collections scan what they made, not the server
        self.archive: Archive | None = None
        self.lock = DataDirLock(Path(self.data_dir))
        self.forwarding = Forwarding(self.lock, self.take_over_if_free)
        self._taking_over = False
        self.settings.update({"archive_app": self, "archive_forwarding": self.forwarding})
        if self.lock.acquire():
            try:
                self._install(self._open_archive())
            except SettingError as exc:
                self._refuse_to_start(self.serverapp, exc)
            _skip_unseen_debug(self.serverapp.log)
            return
        self.log.warning(
            "jupyter_archive: the data dir %s is owned by another process (%s); this server serves the archive "
            "through it. Give this server its own with --ArchiveApp.data_dir=DIR.",
            self.data_dir, describe_holder(self.lock.holder()),
        )

    def _open_archive(self) -> Archive:
        """The archive on the data dir whose lock this process holds (the lock is given back if it fails)."""
        try:
            return Archive(self.archive_config(), lock=self.lock)
        except ArchiveError as exc:
            self.lock.release()
            name = "ArchiveApp.mounts" if exc.details.get("setting") == "mounts" else "ArchiveApp.data_dir"
            raise SettingError(name, exc.message) from None
        except OSError as exc:
            self.lock.release()
            raise SettingError("ArchiveApp.data_dir", f"{self.data_dir}: {exc}") from None

    def _install(self, archive: Archive) -> None:
        archive.users.principal(self.owner, admin=True)
        archive.start()
        self.archive = archive
        self.settings["archive"] = archive
        self.log.info("jupyter_archive: data in %s; contexts: %s", self.data_dir, ", ".join(c.name for c in archive.catalog.contexts(Principal(self.owner, admin=True))))

    async def _start_jupyter_server_extension(self, serverapp):
        try:
            http_server = serverapp.http_server
        except AttributeError:  # a server started without one (pytest-jupyter's own)
            http_server = None
        if http_server is not None and (self.client_timeout or self.connections_per_client):
            self._guard = ConnectionGuard(http_server, timeout=self.client_timeout or None, per_client=self.connections_per_client or None,
                                          log=serverapp.log)
        if self.archive is not None:
            self.lock.announce(self.server_url())
        else:
            self._take_over_timer = PeriodicCallback(self.take_over_if_free, TAKE_OVER_EVERY * 1000)
            self._take_over_timer.start()

    def server_url(self) -> str:
        """Where this server answers, as another process on this machine reaches it (base URL included)."""
        app = self.serverapp
        if app.sock:
            return f"http+unix://{quote(app.sock, safe='')}{app.base_url}"
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(app.ip, app.ip)
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if app.certfile else "http"
        return f"{scheme}://{host}:{app.port}{app.base_url}"

    def take_over_if_free(self) -> bool:
        """Become the data dir's owner if its owner has gone (its lock is free); True when that has begun.

        The archive is opened off the event loop; meanwhile the routes answer 503 "retry";
        then they go back to their own handlers.
        """
        if self.archive is not None or self._taking_over or not self.lock.acquire():
            return False
        self._taking_over = True
        self.log.warning("jupyter_archive: the owner of %s has stopped; this server takes the data dir over", self.data_dir)
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, self._open_archive).add_done_callback(
            lambda f: loop.call_soon_threadsafe(self._took_over, f)
        )
        return True

    def _took_over(self, future) -> None:
        self._taking_over = False
        exc = future.exception()
        if exc is not None:
            self.log.error("jupyter_archive: could not take the data dir over: %s", exc)
            return
        self._take_over_timer.stop()
        self._install(future.result())
        self.serverapp.web_app.settings["archive"] = self.archive
        unproxy(self.serverapp.web_app.default_router)
        self.lock.announce(self.server_url())
        self.log.info("jupyter_archive: this server now owns %s", self.data_dir)

    @staticmethod
    def archive_handlers() -> list[tuple]:
        """Every archive route (pattern under the base URL, handler class), in the order they are matched."""
        # table_handlers first: its routes add upload/drop to URLs native's GET-only handlers also match;
        # dax_image_handlers before dax_handlers, whose last route answers everything else under dax.
        return (
            table_handlers() + native_handlers() + history_handlers() + casjobs_handlers() + quasar_handlers() + native_directive_handlers() + sas_handlers()
            + kasabi_handlers() + dax_image_handlers() + soda_handlers() + auth_handlers() + casjobs_user_handlers()
            + dax_handlers() + tap_handlers()
        )

    def initialize_handlers(self):
        handlers = self.archive_handlers()
        self.handlers.extend(handlers if self.archive is not None else proxied(handlers))

    async def stop_extension(self):
        for timer in (getattr(self, "_take_over_timer", None), getattr(self, "_guard", None)):
            if timer is not None:
                timer.stop()
        archive = getattr(self, "archive", None)
        if archive is not None:
            archive.close()  # gives the lock back too
        elif getattr(self, "lock", None) is not None:
            self.lock.release()

    @classmethod
    def launch_instance(cls, argv=None, **kwargs):
        args = list(sys.argv[1:] if argv is None else argv)
        if args and args[0] == "token":
            return ArchiveTokenApp.launch_instance(args[1:])
        return super().launch_instance(argv=args, **kwargs)


class ArchiveTokenApp(JupyterApp):
    """``jupyter archive token create USER [--admin]``: make an archive token (printed once)."""

    name = "jupyter-archive-token"
    description = "Create archive tokens for X-Auth-Token authentication."
    data_dir = Unicode(config=True, help="The archive data dir (as ArchiveApp.data_dir).")
    admin = Bool(False, config=True, help="Give the user the admin role.")
    flags = {"admin": ({"ArchiveTokenApp": {"admin": True}}, "give the user the admin role")}
    aliases = {"data-dir": "ArchiveTokenApp.data_dir", "ArchiveApp.data_dir": "ArchiveTokenApp.data_dir"}

    @default("data_dir")
    def _default_data_dir(self):
        return os.path.join(jupyter_data_dir(), "jupyter_archive")

    def start(self):
        from .core.users.store import UserStore

        args = list(self.extra_args)
        if len(args) != 2 or args[0] != "create":
            print("usage: jupyter archive token create USER [--admin] [--data-dir=DIR]", file=sys.stderr)
            self.exit(2)
        store = UserStore(Path(self.data_dir) / "state.sqlite")
        try:
            print(store.create_token(args[1], admin=self.admin))
        finally:
            store.close()


def _skip_unseen_debug(log: logging.Logger) -> None:
    """Raise the server logger's level to the lowest level any of its handlers shows.

    traitlets leaves the logger at DEBUG and filters in the handlers, so every request's
    debug line is built and formatted only to be dropped (~0.05 ms a request).
    """
    levels, node = [], log
    while node is not None:
        levels += [h.level for h in node.handlers]
        node = node.parent if node.propagate else None
    if levels and log.level < min(levels):
        log.setLevel(min(levels))


def main():
    ArchiveApp.launch_instance()


if __name__ == "__main__":
    main()
