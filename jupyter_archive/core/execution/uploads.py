"""The tables a TAP query brings with it (``TAP_UPLOAD.<name>``): parsed, staged, loaded.

A query with uploads is an ordinary query (``Queries.query(..., uploads=entries)``, or a
query job with the same request field) whose resolver knows the TAP_UPLOAD schema and whose
plan is pinned to the engine holding the loaded tables.

``UPLOAD=name,param:part[;name2,<URL>]`` names inline VOTables (multipart parts) or, by URL,
results of this archive's own jobs (nothing is fetched from other hosts). ``stage`` keeps the
inline ones on disk (an async job may run much later, or after a restart) and ``UploadSet``
loads them into the caller's engine for one query or one job, then drops them.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .. import sql as sqlmod
from ..catalog.model import ENGINE_CATALOG, TAP_UPLOAD
from ..errors import bad_request
from ..formats.votable_in import as_parquet
from ..sql import quote_ident
from .engines import engine_error

# duckdb and pyarrow.parquet: imported where used, so a server at rest does not hold them (~16 MB)
if TYPE_CHECKING:
    import duckdb
    import pyarrow.parquet as pq

    from ..catalog.model import Principal
    from .pool import EnginePool

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class UploadSpec:
    """One item of UPLOAD: a table name and where its rows come from."""

    name: str
    kind: str  # "param" (an inline multipart part) | "url"
    ref: str  # the part name, or the URL


def parse(value: str) -> list[UploadSpec]:
    """The items of an UPLOAD parameter (``name,param:part;name,http://...``)."""
    specs: list[UploadSpec] = []
    for item in (value or "").split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, uri = item.partition(",")
        name, uri = name.strip(), uri.strip()
        if not sep or not uri:
            raise bad_request(f"UPLOAD item {item!r} must be name,URI (e.g. mine,param:mine)")
        if not _NAME.match(name):
            raise bad_request(f"UPLOAD table name {name!r} must be a letter then letters, digits or _ (at most 64)")
        if any(s.name.lower() == name.lower() for s in specs):
            raise bad_request(f"UPLOAD names the table {name!r} twice")
        if uri.startswith("param:"):
            specs.append(UploadSpec(name, "param", uri[len("param:") :]))
        elif uri.lower().startswith(("http://", "https://")):
            specs.append(UploadSpec(name, "url", uri))
        else:
            raise bad_request(f"UPLOAD {name}: unsupported URI {uri!r}; use param:<part> for an inline table or the URL of a result of this service")
    return specs


def stage(
    data_dir: Path, specs: list[UploadSpec], parts: dict[str, bytes], job_of_url: Any
) -> list[dict]:
    """Keep the uploads of a request: inline parts are written under ``data_dir``, URLs are
    turned into job ids by ``job_of_url(url) -> int | None``. Returns JSON-able entries."""
    entries: list[dict] = []
    folder: Path | None = None
    try:
        for spec in specs:
            if spec.kind == "url":
                job_id = job_of_url(spec.ref)
                if job_id is None:
                    raise bad_request(
                        f"UPLOAD {spec.name}: {spec.ref} is not a result of this service; only this archive's own job results can be uploaded by URL"
                    )
                entries.append({"name": spec.name, "job": int(job_id)})
                continue
            data = parts.get(spec.ref)
            if data is None:
                lowered = {k.lower(): v for k, v in parts.items()}
                data = lowered.get(spec.ref.lower())
            if data is None:
                have = ", ".join(sorted(parts)) or "none"
                raise bad_request(f"UPLOAD {spec.name}: the request has no part named {spec.ref!r} (parts: {have})")
            if folder is None:
                folder = Path(data_dir) / "tap_uploads" / uuid.uuid4().hex
                folder.mkdir(parents=True)
            path = folder / f"{spec.name}.vot"
            path.write_bytes(data)
            entries.append({"name": spec.name, "path": str(path)})
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return entries


def discard(entries: list[dict] | None) -> None:
    """Remove what ``stage`` wrote for these entries."""
    for folder in {Path(e["path"]).parent for e in entries or () if e.get("path")}:
        shutil.rmtree(folder, ignore_errors=True)


def upload_target(name: str, schema: str = "tap_upload") -> sqlmod.TableTarget:
    """What ``TAP_UPLOAD.<name>`` resolves to: a table of a per-query schema of the engine."""
    return sqlmod.TableTarget(ENGINE_CATALOG, schema, name, TAP_UPLOAD, False)


class UploadSet:
    """Staged uploads loaded into the principal's engine as ``TAP_UPLOAD.<name>`` tables.

    ``targets`` is what the resolver maps ``TAP_UPLOAD.<name>`` to; ``close`` drops them.
    ``jobs`` reads uploads named by the URL of a job's result (``job(principal, id)``, ``results``).
    """

    def __init__(self, engines: EnginePool, principal: Principal, entries: list[dict], *, jobs=None, cancel=None):
        # The tables live in one engine's memory: this lease, held until ``close``, keeps that
        # engine open, and the query runs on it (``pin``). A job's wait for it can be canceled.
        options = {"timeout": None, "cancel": cancel} if cancel is not None else {}
        self.pin = engines.engine(principal).cursor(**options)
        self.schema = f"tap_upload_{uuid.uuid4().hex[:16]}"
        self.targets: dict[str, sqlmod.TableTarget] = {}
        self.column_meta: dict[str, dict[str, str]] = {}
        self._closed = False
        try:
            self.pin.execute(f"CREATE SCHEMA {ENGINE_CATALOG}.{quote_ident(self.schema)}")
            for entry in entries:
                table = _read_entry(jobs, principal, entry)
                self._load(self.pin, entry["name"], table)
        except BaseException:
            self.close()
            raise

    def _load(self, cur, name: str, table: pa.Table) -> None:
        import duckdb
        view = f"_upload_{uuid.uuid4().hex}"
        cols = []
        for f in table.schema:
            md = {k.decode(): v.decode("utf-8", "replace") for k, v in (f.metadata or {}).items()}
            meta = {k: md[k] for k in ("unit", "ucd", "description", "utype") if md.get(k)}
            if md.get("datatype") == "char":
                meta["datatype"] = "char"  # comes back as it went: char, not unicodeChar
            if meta:
                self.column_meta[f.name] = meta
            col = quote_ident(f.name)
            if md.get("xtype", "").lower() == "timestamp" and pa.types.is_string(f.type):
                # DALI timestamps travel as text; as TIMESTAMP they compare and sort as times
                col = f"TRY_CAST({col} AS TIMESTAMP) AS {col}"
            cols.append(col)
        cur.register(view, table)
        try:
            cur.execute(
                f"CREATE TABLE {ENGINE_CATALOG}.{quote_ident(self.schema)}.{quote_ident(name)} AS "
                f"SELECT {', '.join(cols) or '*'} FROM {quote_ident(view)}"
            )
        except duckdb.Error as exc:
            # the rows are the caller's: whatever the engine cannot load is a bad upload
            raise bad_request(f"UPLOAD {name}: the table cannot be loaded: {engine_error(exc).message}") from None
        finally:
            cur.unregister(view)
        self.targets[name.lower()] = upload_target(name, self.schema)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.pin.execute(f"DROP SCHEMA IF EXISTS {ENGINE_CATALOG}.{quote_ident(self.schema)} CASCADE")
        except Exception:  # noqa: BLE001 - best effort: the schema dies with the engine anyway
            pass
        finally:
            self.pin.close()


def _read_entry(jobs, principal: Principal, entry: dict) -> pa.Table:
    """The rows of one staged upload as Arrow, with each column's VOTable metadata."""
    import pyarrow.parquet as pq
    if "job" in entry:
        job = jobs.get(principal, entry["job"])
        if job.state != "completed" or "store" not in job.results:
            raise bad_request(f"UPLOAD {entry['name']}: job {job.id} has no result to upload (it is {job.state})")
        return pq.read_table(jobs.results.path(job.id))
    return read_votable(Path(entry["path"]), entry["name"])


def read_votable(path: Path, name: str) -> pa.Table:
    """A VOTable upload as an Arrow table; FIELD unit/ucd/xtype/datatype kept as field metadata (read apart:
    ``formats.votable_in``)."""
    import pyarrow.parquet as pq

    parquet, problem = as_parquet(path)
    if parquet is None:
        raise bad_request(f"UPLOAD {name}: {problem}")
    try:
        return pq.read_table(parquet)
    finally:
        parquet.unlink(missing_ok=True)


def query_with(queries, namespace, principal, text: str, language: str, options: dict, row_limit, time_limit, uploads) -> Any:
    """``Queries.query`` of a text reading TAP uploads: ``uploads`` an ``UploadSet`` the caller closes, or staged
    entries (``stage``), loaded now and dropped with the result."""
    from .compiling import compile_text

    if own := not isinstance(uploads, UploadSet):
        uploads = queries.uploads(principal, uploads)
    try:
        compiled, _ = compile_text(namespace, principal, text, language, options, row_limit, uploads.targets)
        result = queries.run(principal, compiled, row_limit=row_limit, time_limit=time_limit, column_meta=uploads.column_meta, pinned=uploads.pin)
    except BaseException:
        if own:
            uploads.close()
        raise
    if own:
        result.also_on_close(uploads.close)
    return result
