"""ArchiveApp: the Jupyter server extension that hosts the archive (``jupyter archive``)."""

from __future__ import annotations

import getpass
import logging
import os
import sys
from pathlib import Path

from jupyter_core.application import JupyterApp
from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default

from .core.archive import Archive, ArchiveConfig
from .core.catalog import Principal
from .faces.auth import auth_handlers
from .faces.casjobs import casjobs_handlers
from .faces.casjobs_users import casjobs_user_handlers
from .faces.dax import dax_handlers
from .faces.dax_images import dax_image_handlers
from .faces.kasabi import kasabi_handlers
from .faces.native import native_handlers
from .faces.quasar import quasar_handlers
from .faces.sas import sas_handlers
from .faces.soda import soda_handlers
from .faces.tables import table_handlers
from .faces.tap import tap_handlers


class ArchiveApp(ExtensionApp):
    """A data archive inside Jupyter: CasJobs, Quasar and native faces over one core."""

    name = "archive"
    description = "jupyter_archive: a data archive that lives inside Jupyter"
    extension_url = "/archive/api/contexts"
    load_other_extensions = True

    data_dir = Unicode(config=True, help="Where the archive keeps its state, MyDBs, caches and the demo data.")
    mounts = List(
        Dict(),
        config=True,
        help=(
            "Mounts: a list of {path, type ('duckdb' | 'files'), location, context, readOnly, public, description}. "
            "When empty (and demo is on) the embedded demo archive is mounted at /demo as context DEMO."
        ),
    )
    mount_roots = List(
        Unicode(),
        config=True,
        help="Directories whose files and databases admins may mount at run time (Quasar's /mount); default: the server's root_dir.",
    )
    demo = Bool(True, config=True, help="Make and mount the demo archive when no mounts are configured.")
    demo_rows = Int(100_000, config=True, help="Rows of the demo PhotoObj table.")
    quick_row_limit = Int(100_000, config=True, help="Most rows a quick query returns; more sets the truncation flag.")
    quick_time_limit = Float(60.0, config=True, help="Seconds a quick query may run before the engine is interrupted.")
    quick_workers = Int(4, config=True, help="Threads running quick queries and streaming results.")
    job_workers = Int(2, config=True, help="Jobs (long queries, resets, ...) running at once.")
    jobs_per_user = Int(2, config=True, help="Jobs one user may have running at once; more wait in the queue.")
    job_retention = Float(7 * 24 * 3600.0, config=True, help="Seconds finished jobs and their stored results are kept (0: forever).")
    upload_limit = Int(
        1 << 30, config=True, help="Bytes one table upload may have (CasJobs and native uploads); more is refused with 413."
    )
    engine_threads = Int(0, config=True, help="DuckDB threads per engine (0: DuckDB's default, the core count).")
    engine_memory_limit = Unicode("", config=True, help="DuckDB memory limit per engine, e.g. '2GB' (empty: DuckDB's default).")
    allow_anonymous = Bool(
        False, config=True, help="Let unauthenticated callers run quick queries on public, read-only contexts."
    )
    token_lifetime = Float(
        24 * 3600.0, config=True, help="Seconds a token made by password login (archive/auth/tokens) stays valid (0: forever)."
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
            quick_row_limit=self.quick_row_limit,
            quick_time_limit=self.quick_time_limit,
            quick_workers=self.quick_workers,
            engine_threads=self.engine_threads or None,
            engine_memory_limit=self.engine_memory_limit or None,
            allow_anonymous=self.allow_anonymous,
            job_workers=self.job_workers,
            jobs_per_user=self.jobs_per_user,
            job_retention=self.job_retention or None,
            upload_limit=self.upload_limit,
            mount_roots=list(self.mount_roots) or [self.serverapp.root_dir],
        )

    def initialize_settings(self):
        self.archive = Archive(self.archive_config())
        self.archive.principal(self.owner, admin=True)
        self.archive.start()
        self.settings.update({"archive": self.archive, "archive_app": self})
        self.log.info("jupyter_archive: data in %s; contexts: %s", self.data_dir, ", ".join(c.name for c in self.archive.contexts(Principal(self.owner, admin=True))))
        _skip_unseen_debug(self.serverapp.log)

    def initialize_handlers(self):
        self.handlers.extend(
            # table_handlers first: its routes add upload/drop to URLs native's GET-only handlers also match
            table_handlers() + native_handlers() + casjobs_handlers() + quasar_handlers() + sas_handlers() + kasabi_handlers()
        )
        # dax_image_handlers before dax_handlers, whose last route answers everything else under dax
        self.handlers.extend(dax_image_handlers() + soda_handlers())
        self.handlers.extend(auth_handlers() + casjobs_user_handlers() + dax_handlers() + tap_handlers())

    def principal_for_jupyter_user(self, user) -> Principal:
        """The archive user a Jupyter-authenticated request acts as."""
        # Both are users on first sight (the owner again if an admin deleted them meanwhile).
        if self.jupyter_user_mapping == "username" and getattr(user, "username", None) and user.username != self.owner:
            return self.archive.principal(user.username)
        return self.archive.principal(self.owner, admin=True)

    async def stop_extension(self):
        archive = getattr(self, "archive", None)
        if archive is not None:
            archive.close()

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
        from .core.users import UserStore

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
