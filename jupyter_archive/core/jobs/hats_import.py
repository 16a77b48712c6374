"""The ``hats_import`` job kind: a user's MyDB table with positions becomes a HATS catalog of their own.

The job exports the table (streamed from the user's engine into one Parquet file), runs hats-import's
pipeline on it (``hats_import``: on the archive's Dask cluster when ``dask_scheduler`` is set, else on a
small in-process one), writes a margin cache beside it (so catalog x catalog cross-matches find pairs at
partition edges) and mounts the folder of the user's catalogs as a private ``hats`` mount that only they
see: context ``<NAME>_HATS`` (TAP schema ``<name>_hats``), stored so it comes back after a restart.
Everything is built in a hidden folder (``.building-<job>``) beside the user's catalogs and moved into
place only at the end, so a failed or canceled import leaves nothing behind. Workers of a remote cluster
must see the data dir at the same path (a shared filesystem), as for every HATS mount.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.hats import open_location
from ..catalog import MYDB
from ..errors import ArchiveError, not_found
from ..execution.storage import file_size, size_text
from ..sql import quote_ident
from .model import Job

if TYPE_CHECKING:
    from ..catalog import Principal
    from .runner import JobContext

KIND = "hats_import"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
NUMERIC = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT")
HIGHEST_ORDER = 8  # the finest partitions (0.23 degrees); hats-import's default (10) maps 12.6M cells, 16x the time
PARTITION_ROWS = 250_000  # rows per partition at most (hats-import's pixel_threshold)
POLL = 0.2  # seconds between looks at the job's cancel while the pipeline runs


class HatsImports:
    """``archive.hats_imports``: submitting an import and the work of its job."""

    def __init__(self, *, jobs, queries, catalog, mounts, cluster, data_dir: Path, room=None, quota: int | None = None):
        self._jobs = jobs
        self._disk_room = room or (lambda path: None)  # raises the 507 of a disk below the archive's reserve (``Storage.room``)
        self.quota = quota  # bytes one user's catalogs may take, an import's files being built included (None: any)
        self._queries = queries
        self._catalog = catalog
        self._mounts = mounts
        self._cluster = cluster
        self.folder = Path(data_dir) / "hats-users"  # one folder of catalogs per user (``Principal.home``)
        # Held while a user's folder of catalogs and their mount change (an import's end, a delete), so the mount
        # always shows what the folder holds.
        self._lock = threading.Lock()
        self._counted: dict[str, tuple[tuple[str, ...], int]] = {}  # user home -> (their folder's entries, bytes kept)

    # -- submitting ---------------------------------------------------------------------------------
    def submit(self, principal: Principal, table: str, *, name: str | None = None, ra: str = "ra", dec: str = "dec",
               margin_arcsec: float = 10.0, face: str = "native") -> Job:  # fmt: skip
        """Check the request (a MyDB table with numeric ``ra``/``dec`` columns, a free catalog name) and queue the job."""
        if principal.anonymous:
            raise ArchiveError("permission", "importing a catalog needs a signed-in user: log in to Jupyter or send an X-Auth-Token", 403)
        request = self._request(principal, table, name, ra, dec, margin_arcsec)
        return self._jobs.submit(principal, KIND, request, face=face)

    def _request(self, principal: Principal, table: Any, name: Any, ra: Any, dec: Any, margin: Any) -> dict:
        if not isinstance(table, str) or not table.strip():
            raise ArchiveError("bad_request", "a HATS import needs 'table': the name of one of your MyDB tables")
        info = self._catalog.table(principal, self._catalog.context(principal, MYDB), table.strip())  # 404 for an unknown table
        name = info.name if name in (None, "") else name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ArchiveError("bad_request", f"the catalog's name must be a letter then letters, digits or _ (at most 63), not {name!r}")
        types = {c.name.lower(): (c.name, c.datatype.upper()) for c in info.columns}
        cols = []
        for what, col in (("ra", ra), ("dec", dec)):
            found = types.get(str(col).lower()) if isinstance(col, str) else None
            if found is None:
                raise ArchiveError("bad_request", f"table {info.name} has no column {col!r} for {what}; its columns: {', '.join(c.name for c in info.columns)}")
            if not found[1].startswith(NUMERIC):
                raise ArchiveError("bad_request", f"column {found[0]} of {info.name} is {found[1]}, not a number of degrees: it cannot be the {what}")
            cols.append(found[0])
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin <= 3600:
            raise ArchiveError("bad_request", f"margin_arcsec must be a number of arc seconds in (0, 3600], not {margin!r}")
        request = {"table": info.name, "name": name, "ra": cols[0], "dec": cols[1], "margin_arcsec": float(margin)}
        self._check_free(self.user_folder(principal), request)
        self._room(self.user_folder(principal))  # a user at their quota is told now, not by a failed job
        return request

    def _room(self, folder: Path, coming: int = 0) -> None:
        """A 507 when the disk is below the archive's reserve, or when the user's catalogs (``folder``) with the files
        of imports being built there and ``coming`` bytes more would pass their quota."""
        self._disk_room(folder)
        if self.quota is None:
            return
        kept, building = _sizes(folder)
        if kept + building + coming > self.quota:
            raise ArchiveError(
                "quota_exceeded",
                f"this import would take your HATS catalogs past their quota of {size_text(self.quota)}: they hold "
                f"{size_text(kept)} and it needs about {size_text(building + coming)} more; delete catalogs you no longer "
                "need (DELETE archive/api/contexts/<context>/tables/<name>), or ask the archive's administrator for more",
                507,
                details={"quota_bytes": self.quota, "catalogs_bytes": kept},
            )

    def usage(self, principal: Principal) -> dict:
        """What the user's catalogs take of the disk and of their quota (None: no quota), in bytes. Counted again only
        when their folder's entries change (a catalog in or out: the contexts listing asks on every call)."""
        folder = self.user_folder(principal)
        try:
            entries = tuple(sorted(os.listdir(folder)))  # taken before counting: a change meanwhile shows next time
        except OSError:
            entries = ()
        seen = self._counted.get(principal.home)
        if seen is None or seen[0] != entries:
            seen = self._counted[principal.home] = (entries, _sizes(folder)[0])
        return {"bytes": seen[1], "quota": self.quota}

    @staticmethod
    def _margin_name(req: dict) -> str:
        return f"{req['name']}_{req['margin_arcsec']:g}arcs".replace(".", "_")

    def _check_free(self, folder: Path, req: dict) -> None:
        """409 when the catalog's folder or its margin cache's is taken (by a catalog or another's margin)."""
        for part in (req["name"], self._margin_name(req)):
            if (folder / part).exists():
                raise ArchiveError("conflict", f"you already have a HATS catalog or margin cache named {part}; choose another name", 409)

    def user_folder(self, principal: Principal) -> Path:
        return self.folder / principal.home

    def count(self, principal: Principal) -> int:
        """The user's imported catalogs and their mount (what deleting the user removes)."""
        folder = self.user_folder(principal)
        return (sum(1 for _ in folder.iterdir()) if folder.exists() else 0) + (self._mounts.spec(self._path(principal)) is not None)

    def remove_owned(self, principal: Principal) -> None:
        with self._lock:
            self._unmount(principal)
            shutil.rmtree(self.user_folder(principal), ignore_errors=True)

    def drop(self, principal: Principal, name: str) -> None:
        """Delete the user's imported catalog ``name`` and its margin caches (404 if they have none of that name);
        their mount then shows the catalogs left, and goes with the last."""
        folder = self.user_folder(principal)
        with self._lock:
            catalogs = open_location(folder) if any(p.name[:1] != "." for p in folder.glob("*")) else {}
            table = catalogs.get(str(name).lower())
            if table is None:
                raise not_found(f"you have no HATS catalog named {name!r}", table=name, context=self.context_name(principal))
            # Out of the folder at once (a rename), removed after the mount no longer names it.
            trash = folder / f".deleting-{uuid.uuid4().hex}"
            trash.mkdir()
            moved: list[Path] = []
            try:
                for path in (table.path, *table.margins.values()):
                    path.rename(trash / path.name)
                    moved.append(path)
            except OSError:
                for path in moved:  # the catalog whole again, as the mount shows it
                    (trash / path.name).rename(path)
                trash.rmdir()
                raise
            try:
                if len(catalogs) > 1:
                    self._mount(principal, folder)
                else:
                    self._unmount(principal)
            finally:
                shutil.rmtree(trash, ignore_errors=True)

    def _unmount(self, principal: Principal) -> None:
        if self._mounts.spec(self._path(principal)) is not None:
            self._mounts.drop(self._path(principal))
            self._mounts.store.remove(self._path(principal))

    @staticmethod
    def _path(principal: Principal) -> str:
        return f"/hats-{principal.home}"

    @staticmethod
    def context_name(principal: Principal) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", principal.name).upper() + "_HATS"

    # -- the job's work -----------------------------------------------------------------------------
    def run(self, job: Job, ctx: JobContext) -> dict:
        """Export, import, margin, move into place, mount; a failure or cancel removes what was built."""
        principal = self._jobs.principal_of(job)
        req = job.request
        folder = self.user_folder(principal)
        building = folder / f".building-{job.id}"
        name, margin_name = req["name"], self._margin_name(req)
        self._check_free(folder, req)
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        moved: list[Path] = []
        try:
            self._check_positions(principal, req)
            self._room(folder)  # and between the steps: an import that took the disk below it stops, its files gone
            rows = self._export(principal, req["table"], building / "input.parquet", ctx)
            if rows == 0:
                raise ArchiveError("bad_request", f"table {req['table']} has no rows: there is nothing to import")
            ctx.log(f"exported {rows} rows of MyDB.{req['table']}")
            ctx.set_progress(0.1, rows)
            self._room(folder, coming=(building / "input.parquet").stat().st_size)  # the catalog takes about the input's size
            self._pipeline(ctx, "catalog", self._catalog_args(req, building))
            (building / "input.parquet").unlink()  # the margin cache is made from the catalog
            ctx.set_progress(0.7, rows)
            self._room(folder)
            self._pipeline(ctx, "margin cache", self._margin_args(req, building, margin_name))
            ctx.set_progress(0.9, rows)
            self._room(folder)
            with self._lock:
                self._check_free(folder, req)  # another import may have taken a name since this one was submitted
                for part in (name, margin_name):
                    if (building / part).exists():
                        (building / part).rename(folder / part)
                        moved.append(folder / part)
                context = self._mount(principal, folder)
        except BaseException:
            for path in moved:
                shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        ctx.log(f"mounted as {context}.{name} (yours alone)")
        return {"rows": rows, "context": context, "table": name}

    def _check_positions(self, principal: Principal, req: dict) -> None:
        """Refuse a table with rows hats-import cannot place (no position, or a declination off the sphere)."""
        ra, dec = quote_ident(req["ra"]), quote_ident(req["dec"])
        sql = f"SELECT COUNT(*) AS n FROM mydb.{quote_ident(req['table'])} WHERE {ra} IS NULL OR {dec} IS NULL OR NOT ({dec} BETWEEN -90 AND 90)"
        # The import's own check, not a query of the user's: in no history (``history=None``).
        bad = self._queries.query(principal, sql, "sql", row_limit=None, history=None).to_table().column(0)[0].as_py()
        if bad:
            raise ArchiveError("bad_request", f"{bad} rows of {req['table']} have no position or a {req['dec']} outside [-90, 90]: "
                                              "fix or leave them out (SELECT ... INTO a new table), then import that")  # fmt: skip

    def _export(self, principal: Principal, table: str, path: Path, ctx: JobContext) -> int:
        """The MyDB table streamed into one Parquet file; its row count."""
        import pyarrow.parquet as pq

        result = self._queries.read_table(principal, MYDB, table)
        rows = 0
        try:
            writer = None
            for batch in result.batches():
                ctx.check()
                if writer is None:
                    writer = pq.ParquetWriter(str(path), batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is not None:
                writer.close()
        finally:
            result.close()
        return rows

    @staticmethod
    def _catalog_args(req: dict, building: Path):
        from hats_import.catalog.arguments import ImportArguments

        return ImportArguments(
            input_file_list=[str(building / "input.parquet")], file_reader="parquet", ra_column=req["ra"], dec_column=req["dec"],
            output_path=str(building), output_artifact_name=req["name"], tmp_dir=str(building / "tmp"), progress_bar=False,
            resume=False, create_thumbnail=False, should_write_skymap=False, highest_healpix_order=HIGHEST_ORDER,
            pixel_threshold=req.get("partition_rows") or PARTITION_ROWS,
        )  # fmt: skip

    @staticmethod
    def _margin_args(req: dict, building: Path, margin_name: str):
        from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments

        return MarginCacheArguments(
            input_catalog_path=str(building / req["name"]), output_path=str(building), output_artifact_name=margin_name,
            margin_threshold=req["margin_arcsec"], tmp_dir=str(building / "tmp"), progress_bar=False, resume=False,
            fine_filtering=False,  # a margin may hold more rows than the threshold's: a cross-match keeps its exact test
        )  # fmt: skip

    def _pipeline(self, ctx: JobContext, what: str, args) -> None:
        """Run one hats-import pipeline on a client of its own (closing it on cancel drops its tasks)."""
        from distributed import Client, LocalCluster
        from hats_import.pipeline import pipeline_with_client

        local = None
        if self._cluster.enabled:
            client = Client(self._cluster.client().scheduler.address, set_as_default=False)
        else:  # no cluster configured: a small one in this process, for this job only
            local = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
            client = Client(local, set_as_default=False)
        failure: list[BaseException] = []

        def work():
            try:
                with client.as_current():  # hats-import asks dask for "the" client in places: this one, in this thread only
                    pipeline_with_client(args, client)
            except BaseException as exc:  # noqa: BLE001 - reported by the job's thread below
                failure.append(exc)

        thread = threading.Thread(target=work, name=f"archive-hats-import-{ctx.job.id}", daemon=True)
        try:
            ctx.log(f"hats-import: the {what}")
            thread.start()
            while thread.is_alive():
                if ctx.canceled.is_set():
                    break
                thread.join(POLL)
        finally:
            client.close()  # on cancel: its tasks are dropped, and the pipeline fails soon after
            if local is not None:
                local.close()
        thread.join(30)  # before the job removes its folder, so nothing writes there after
        ctx.check()
        if failure:
            exc = failure[0]
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArchiveError("bad_request", f"hats-import could not make the {what}: {message}") from None

    def _mount(self, principal: Principal, folder: Path) -> str:
        """(Re)mount the user's folder of catalogs as their private ``hats`` mount; its context."""
        context = self.context_name(principal)
        spec = {"path": self._path(principal), "type": "hats", "location": str(folder), "context": context, "public": False,
                "owner": principal.ident, "description": f"HATS catalogs imported by {principal.name}"}  # fmt: skip
        self._mounts.replace_owned(spec)
        return context


def _sizes(folder: Path) -> tuple[int, int]:
    """Bytes of a user's folder of catalogs: (their catalogs, imports being built there). Files that go while it
    counts (an import's temporary ones, a catalog being deleted) count for nothing."""
    kept = building = 0
    for top, _dirs, files in os.walk(folder):  # os.walk passes over a folder removed meanwhile
        size = sum(file_size(Path(top) / f) for f in files)
        part = Path(top).relative_to(folder).parts[:1]
        kept, building = (kept, building + size) if part and part[0].startswith(".") else (kept + size, building)
    return kept, building
