"""ArchiveClient: the archive's Python API (pandas, astropy, pyarrow) over its native HTTP API.

Everything goes through ``{base}archive/api/...`` of a running server; nothing reaches into
the server process. The server is found in this order: explicit ``url``/``token``
arguments, the ``JUPYTER_ARCHIVE_URL`` / ``JUPYTER_ARCHIVE_TOKEN`` environment (the Jupyter
token; ``JUPYTER_ARCHIVE_AUTH_TOKEN`` for an archive token sent as ``X-Auth-Token``), then
the running Jupyter servers (the one whose sessions hold this kernel, else the one whose
root holds the working directory, else the newest).
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import requests

from .core.completion import Completions, complete, table_names
from .core.languages import DEFAULT_LANGUAGE

FORMATS = ("pandas", "astropy", "arrow")
PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"
FINAL_STATES = frozenset({"completed", "failed", "canceled"})
ROWS_PAGE = 100  # rows of a table a page of ``rows`` holds unless asked
# A query of the history, as ``GET archive/api/history`` gives it (the columns of an empty page).
HISTORY_COLUMNS = ("id", "owner", "kind", "job", "face", "query", "language", "context", "time", "duration", "rows", "outcome", "error")


class ArchiveError(Exception):
    """A failure the archive reported (its code and message), or a server that cannot be reached."""

    def __init__(self, message: str, code: str = "error", status: int | None = None, details: dict | None = None):
        super().__init__(message)
        self.message, self.code, self.status, self.details = message, code, status, details or {}

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code != "error" else self.message


# -- finding the server ----------------------------------------------------------------------------------
def _kernel_id() -> str | None:
    """This kernel's id when running inside an IPython kernel, from its connection file name."""
    try:
        from ipykernel.connect import get_connection_file

        m = re.search(r"kernel-(.+)\.json$", os.path.basename(get_connection_file()))
        return m.group(1) if m else None
    except (ImportError, RuntimeError):  # not in a kernel: no connection file
        return None


def find_server(kernel_id: str | None = None, runtime_dir: str | None = None) -> dict | None:
    """The running Jupyter server (its ``list_running_servers()`` record) this code runs beside."""
    from jupyter_server.serverapp import list_running_servers

    servers = list(list_running_servers(runtime_dir) if runtime_dir else list_running_servers())
    if not servers:
        return None
    kernel_id = kernel_id or _kernel_id()
    if kernel_id:
        for s in servers:
            try:
                r = requests.get(s["url"] + "api/sessions", headers={"Authorization": f"token {s.get('token', '')}"}, timeout=5)
                if r.ok and any((x.get("kernel") or {}).get("id") == kernel_id for x in r.json()):
                    return s
            except (requests.RequestException, ValueError):
                continue  # a stale record of a server that has gone
    cwd = Path.cwd().resolve()
    for s in servers:
        root = Path(s.get("root_dir") or s.get("notebook_dir") or "/").resolve()
        if root == cwd or root in cwd.parents:
            return s
    return servers[-1]


# -- results -------------------------------------------------------------------------------------------
def _column_meta(field: pa.Field) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}


def to_astropy(table: pa.Table):
    """An astropy Table with the archive's units, UCDs and descriptions on its columns."""
    import astropy.units as u
    import numpy as np
    from astropy.table import Column, MaskedColumn, Table

    out = Table()
    for field, col in zip(table.schema, table.columns, strict=True):
        meta = _column_meta(field)
        values = col.to_numpy(zero_copy_only=False)
        kw: dict[str, Any] = {"name": field.name, "description": meta.get("description")}
        if meta.get("unit"):
            unit = u.Unit(meta["unit"], parse_strict="silent")
            kw["unit"] = unit
        if col.null_count:
            mask = col.is_null().to_numpy(zero_copy_only=False)
            if values.dtype == object and not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                values = np.asarray([0 if m else v for v, m in zip(values, mask)])
            c = MaskedColumn(values, mask=mask, **kw)
        else:
            c = Column(values, **kw)
        if meta.get("ucd"):
            c.meta["ucd"] = meta["ucd"]
        out.add_column(c)
    out.meta.update({k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"archive.")})
    if (sample := sample_of(table)) is not None:
        out.meta["sample"] = sample
    return out


def to_pandas(table: pa.Table):
    """A DataFrame; column metadata (unit, ucd, description) is kept in ``df.attrs["columns"]``."""
    df = table.to_pandas()
    df.attrs["columns"] = {f.name: _column_meta(f) for f in table.schema}
    df.attrs["truncated"] = (table.schema.metadata or {}).get(b"archive.truncated") == b"true"
    if (sample := sample_of(table)) is not None:
        df.attrs["sample"] = sample
    return df


def sample_of(table: pa.Table) -> dict | None:
    """What a random sample's rows say they are (``archive.sample``: ``10000 of 1234567; seed=0``) as
    ``{"rows", "total", "seed"}``; None for rows that are not a sample."""
    said = (table.schema.metadata or {}).get(b"archive.sample")
    found = re.fullmatch(rb"(\d+) of (\d+); seed=(\d+)", said or b"")
    return dict(zip(("rows", "total", "seed"), map(int, found.groups()))) if found else None


def convert(table: pa.Table, fmt: str):
    """An Arrow table as ``pandas`` (DataFrame), ``astropy`` (Table) or ``arrow`` (itself)."""
    if fmt == "arrow":
        return table
    if fmt == "astropy":
        return to_astropy(table)
    if fmt == "pandas":
        return to_pandas(table)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _to_arrow(data) -> pa.Table:
    """A DataFrame, astropy Table or Arrow table as an Arrow table (units kept as column metadata)."""
    if isinstance(data, pa.Table):
        return data
    try:
        from astropy.table import Table

        if isinstance(data, Table):
            arrays, fields = [], []
            for col in data.itercols():
                mask = getattr(col, "mask", None)
                arr = pa.array(list(col) if col.dtype.kind in "OU" else col.data, mask=None if mask is None else mask.data if hasattr(mask, "data") else mask)
                meta = {k: str(v) for k, v in (("unit", col.unit and col.unit.to_string()), ("description", col.description)) if v}
                fields.append(pa.field(col.name, arr.type, metadata=meta or None))
                arrays.append(arr)
            return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    except ImportError:
        pass
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"cannot upload a {type(data).__name__}: give a pandas DataFrame, an astropy Table, an Arrow table or a file path")


# -- jobs ----------------------------------------------------------------------------------------------
class Job:
    """A job of the archive (from any face) as the native API shows it: state, progress, rows, error."""

    def __init__(self, client: ArchiveClient, data: dict):
        self.client = client
        self._set(data)

    def _set(self, data: dict) -> None:
        self.data = data
        self.id = data["id"]
        self.state: str = data["state"]
        self.progress: float = data.get("progress") or 0.0
        self.rows: int | None = data.get("rows")
        self.error: dict | None = data.get("error")
        self.elapsed: float | None = data.get("elapsed")
        self.kind: str = data.get("kind", "query")

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.state} {self.progress:.0%}{'' if self.rows is None else f' {self.rows} rows'}>"

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def refresh(self, wait: float | None = None) -> Job:
        """Read the job again; with ``wait``, the server holds the answer until the job ends (or ``wait`` s)."""
        params = {"wait": f"{wait:g}"} if wait else None
        self._set(self.client._json("GET", f"jobs/{self.id}", params=params))
        return self

    def wait(self, timeout: float | None = None, progress: bool | Callable[[Job], Callable[[Job], None]] = False,
             raise_error: bool = True) -> Job:
        """Wait until the job ends; ``progress`` shows a live bar (a widget in a notebook, text elsewhere; or
        what a function of the job returns: a function shown the job as it moves on).

        Raises ``ArchiveError`` with the server's message when the job failed (unless ``raise_error`` is false),
        or when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        view = (progress if callable(progress) else _progress_view)(self) if progress else None
        while not self.done:
            left = 10.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise ArchiveError(f"job {self.id} is still {self.state} after {timeout} s", "timeout")
            # A short server-side wait while showing progress, so the bar moves; a long one otherwise.
            self.refresh(wait=min(left, 0.5 if view else 10.0))
            if view:
                view(self)
        if raise_error and self.state == "failed":
            err = self.error or {}
            raise ArchiveError(err.get("message") or f"job {self.id} failed", err.get("code") or "job_failed")
        return self

    def cancel(self) -> Job:
        """Ask the server to cancel the job (harmless when it has ended)."""
        self._set(self.client._json("POST", f"jobs/{self.id}/cancel"))
        return self

    def result(self, format: str = "pandas", offset: int = 0, limit: int | None = None, *, sample: int | None = None,
               seed: int | None = None):
        """The rows the job produced (waits for it first); ``sample=N``: a uniform random sample of N of them
        instead, as ``ArchiveClient.rows`` draws one of a table."""
        self.wait()
        params: dict[str, Any] = {"offset": offset}
        if sample is not None:
            if offset or limit is not None:
                raise ValueError("a sample has no pages: ask for sample= without offset or limit")
            params = {"sample": int(sample), **({"seed": int(seed)} if seed is not None else {})}
        elif limit is not None:
            params["limit"] = limit
        return convert(self.client._arrow("GET", f"jobs/{self.id}/results", params=params), format)

    def log(self) -> list[str]:
        """The job's log lines."""
        return [x["line"] for x in self.client._json("GET", f"jobs/{self.id}/log")["log"]]


def _progress_view(job: Job):
    """A function showing the job's progress: a JobProgress widget under IPython, else a text bar."""
    try:
        from IPython import get_ipython

        if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
            from IPython.display import display

            from .widgets import JobProgress

            w = JobProgress(job, client=job.client, watch=False)
            display(w)
            return w.show
    except ImportError:
        pass

    def text(j: Job) -> None:
        bar = "#" * int(j.progress * 30)
        end = "\n" if j.done else ""
        print(f"\rjob {j.id} [{bar:<30}] {j.progress:4.0%} {j.state:<10}{end}", end="", file=sys.stderr, flush=True)

    text(job)
    return text


# -- the client ----------------------------------------------------------------------------------------
class ArchiveClient:
    """The archive's Python API: queries, jobs, the query history, tables, uploads, mounts, directives and cutouts."""

    def __init__(self, url: str | None = None, token: str | None = None, *, archive_token: str | None = None,
                 context: str = "DEMO", timeout: float = 120.0):
        url = url or os.environ.get("JUPYTER_ARCHIVE_URL")
        if url is None:
            server = find_server()
            if server is None:
                raise ArchiveError("no archive server found: pass url=..., set JUPYTER_ARCHIVE_URL, or start "
                                   "`jupyter archive` / `jupyter lab` with the extension", "not_found")
            url, token = server["url"], token or server.get("token")
        self.url = url if url.endswith("/") else url + "/"
        token = token or os.environ.get("JUPYTER_ARCHIVE_TOKEN")
        archive_token = archive_token or os.environ.get("JUPYTER_ARCHIVE_AUTH_TOKEN")
        self.context, self.timeout = context, timeout
        self._described: dict[str, tuple[float, str | None, dict, list[dict]]] = {}  # completion's metadata
        self.session = requests.Session()
        if archive_token:
            self.session.headers["X-Auth-Token"] = archive_token
        elif token:
            self.session.headers["Authorization"] = f"token {token}"

    def __repr__(self) -> str:
        return f"<ArchiveClient {self.url} context={self.context}>"

    @property
    def api(self) -> str:
        return self.url + "archive/api/"

    # -- HTTP ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw) -> requests.Response:
        url = path if path.startswith("http") else self.api + path
        try:
            r = self.session.request(method, url, timeout=kw.pop("timeout", self.timeout), **kw)
        except requests.ConnectionError as e:
            raise ArchiveError(f"cannot reach the archive at {self.url}: {e}", "unreachable") from None
        if r.status_code >= 400:
            raise _error(r)
        return r

    def _json(self, method: str, path: str, **kw) -> Any:
        r = self._request(method, path, **kw)
        return r.json() if r.content else None

    def _arrow(self, method: str, path: str, **kw) -> pa.Table:
        kw.setdefault("headers", {})["Accept"] = ARROW
        return _table(self._request(method, path, **kw))

    # -- catalog ---------------------------------------------------------------------------------
    def contexts(self) -> list[dict]:
        """The contexts the caller can query (name, path, kind, readOnly, description)."""
        return self._json("GET", "contexts")["contexts"]

    def mounts(self) -> list[dict]:
        """The mounted data sources (every context but the caller's own MyDB)."""
        return [c for c in self.contexts() if c.get("kind") != "mydb"]

    def tables(self, context: str | None = None) -> list[dict]:
        """The tables of a context: name, rows, size and columns."""
        return self._json("GET", f"contexts/{quote(context or self.context)}/tables")["tables"]

    def described(self, context: str | None = None, max_age: float = 30.0) -> tuple[dict, list[dict]]:
        """A context's entry (its ``schema``...) and its tables with their columns, kept for completion.

        A copy younger than ``max_age`` seconds is served as is (what keeps completion under a few ms);
        an older one is asked again with its ETag, and kept when the server answers 304 (unchanged).
        """
        name = context or self.context
        now = time.monotonic()
        held = self._described.get(name)
        if held and now - held[0] < max_age:
            return held[2], held[3]
        headers = {"If-None-Match": held[1]} if held and held[1] else {}
        r = self._request("GET", f"contexts/{quote(name)}/tables", headers=headers, timeout=5)
        if r.status_code == 304 and held:
            entry, tables, etag = held[2], held[3], held[1]
        else:
            tables, etag = r.json()["tables"], r.headers.get("ETag")
            entry = next((c for c in self.contexts() if c["name"].casefold() == name.casefold()), {"name": name})
        self._described[name] = (now, etag, entry, tables)
        return entry, tables

    def complete(self, sql: str, cursor: int | None = None, context: str | None = None, *,
                 language: str = DEFAULT_LANGUAGE) -> Completions:
        """What may be typed at ``cursor`` (default: the end) of ``sql``: tables, columns, functions.

        From the context's cached metadata (:meth:`described`); the magic and the QueryEditor use it.
        """
        entry, tables = self.described(context)
        names = table_names(tables, language, entry.get("schema"))
        return complete(sql, len(sql) if cursor is None else cursor, names, language)

    def schema(self, table: str, context: str | None = None):
        """A table's columns as a DataFrame: name, datatype, unit, ucd, description (``attrs`` holds rows)."""
        import pandas as pd

        info = self._json("GET", f"contexts/{quote(context or self.context)}/tables/{quote(table)}")
        df = pd.DataFrame(info["columns"]).reindex(columns=["name", "datatype", "unit", "ucd", "description"])
        df.attrs.update({k: v for k, v in info.items() if k != "columns"})
        return df

    def rows(self, table: str, context: str | None = None, offset: int = 0, limit: int = ROWS_PAGE,
             order: str | None = None, descending: bool = False, format: str = "pandas", *,
             sample: int | None = None, seed: int | None = None):
        """A page of a table's rows, sorted and cut by the server; or, with ``sample=N``, a uniform random
        sample of N rows (1 to 100,000) of the whole table, drawn by the server (all rows when the table
        has no more; ``seed`` picks another sample, the same seed gives the same rows). A sample has no
        pages and no order: it is asked without ``offset``, ``limit`` and ``order``. Its rows say what
        they are: ``df.attrs["sample"]`` (an astropy Table's ``meta["sample"]``) is
        ``{"rows", "total", "seed"}``."""
        path = f"contexts/{quote(context or self.context)}/tables/{quote(table)}/rows"
        if sample is not None:
            if offset or order or limit != ROWS_PAGE:
                raise ValueError("a sample has no pages and no order: ask for sample= without offset, limit or order")
            params: dict[str, Any] = {"sample": int(sample), **({"seed": int(seed)} if seed is not None else {})}
            return convert(self._arrow("GET", path, params=params), format)
        params = {"offset": offset, "limit": limit}
        if order:
            params.update(order=order, desc=str(bool(descending)).lower())
        return convert(self._arrow("GET", path, params=params), format)

    # -- queries ---------------------------------------------------------------------------------
    def _body(self, sql: str, context, language, params, variables) -> dict:
        body: dict[str, Any] = {"query": sql, "context": context or self.context, "language": language}
        if params:
            body["params"] = {k: _plain(v) for k, v in params.items()}
        if variables:
            body["variables"] = {k: str(v) for k, v in variables.items()}
        return body

    def query(self, sql: str, context: str | None = None, *, language: str = DEFAULT_LANGUAGE, params: dict | None = None,
              variables: dict | None = None, limit: int | None = None, offset: int | None = None, format: str = "pandas",
              progress: bool | Callable[[Job], Callable[[Job], None]] = True):
        """Run a quick query; ``params`` are bound by name (``:name`` in the SQL), never pasted.

        A query still running at the server's quick time limit goes on as a job: it is followed to its rows
        (``progress``: a bar meanwhile, as ``Job.wait`` shows it), so the limit is never seen."""
        body = self._body(sql, context, language, params, variables)
        if limit is not None:
            body["limit"] = int(limit)
        if offset is not None:
            body["offset"] = int(offset)
        body["format"] = "arrow"
        r = self._request("POST", "query", json=body, headers={"Accept": ARROW})
        if r.status_code == 202:  # the same run went on as a job (``continued`` in the server's core)
            return Job(self, r.json()).wait(progress=progress).result(format)
        return convert(_table(r), format)

    def compile(self, sql: str, context: str | None = None, *, language: str = DEFAULT_LANGUAGE, params: dict | None = None) -> dict:
        """The phases of the SQL pipeline and the engine SQL, without running the query."""
        return self._json("POST", "compile", json=self._body(sql, context, language, params, None))

    def submit(self, sql: str, context: str | None = None, *, language: str = DEFAULT_LANGUAGE, params: dict | None = None,
               variables: dict | None = None, into: str | None = None, replace: bool = False,
               start_time: str | float | None = None, run: bool = True) -> Job:
        """Submit a query as a job (``into="mydb.T"`` keeps the rows in a table); returns the Job at once."""
        body = self._body(sql, context, language, params, variables)
        body.update({"into": into, "replace": replace, "run": run})
        if start_time is not None:
            body["startTime"] = start_time
        return Job(self, self._json("POST", "jobs", json=body))

    def job(self, job_id: int | str) -> Job:
        """A job by id, whichever face submitted it."""
        return Job(self, self._json("GET", f"jobs/{job_id}"))

    def jobs(self, state: str | list[str] | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        """The caller's jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state if isinstance(state, str) else ",".join(state)
        if kind:
            params["kind"] = kind
        return [Job(self, j) for j in self._json("GET", "jobs", params=params)["jobs"]]

    def cancel(self, job_id: int | str) -> Job:
        """Cancel a job by id."""
        return Job(self, self._json("POST", f"jobs/{job_id}/cancel"))

    # -- query history ---------------------------------------------------------------------------
    def history(self, text: str | None = None, *, limit: int = 100, offset: int = 0, all_users: bool = False):
        """The caller's queries from every face (quick ones and jobs), newest first, as a DataFrame.

        ``text``: only queries whose text holds it (case-insensitive). Columns as the server gives them
        (``id, owner, kind, job, face, query, language, context, time, duration, rows, outcome, error``);
        ``time`` is a UTC timestamp, ``duration`` seconds. ``attrs["total"]``: how many match in all
        (page on with ``offset``); ``all_users``: everyone's, for an admin.
        """
        import pandas as pd

        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if text:
            params["q"] = text
        if all_users:
            params["all"] = "true"
        page = self._json("GET", "history", params=params)
        df = pd.DataFrame(page["history"], columns=list(page["history"][0]) if page["history"] else list(HISTORY_COLUMNS))
        df["time"] = pd.to_datetime(df["time"], unit="s", utc=True)
        df[["job", "rows"]] = df[["job", "rows"]].astype("Int64")  # a quick query has no job, a failed one no rows
        df.attrs["total"] = page["total"]
        return df

    def clear_history(self) -> int:
        """Forget the caller's query history; how many queries went."""
        return self._json("DELETE", "history")["deleted"]

    # -- tables ----------------------------------------------------------------------------------
    def upload(self, data, table: str, context: str = "MyDB", mode: str = "auto") -> dict:
        """Upload a DataFrame, astropy Table, Arrow table or file (path) as a table; returns its info.

        ``mode``: auto (create or append), create, append, replace.
        """
        url = f"contexts/{quote(context)}/tables/{quote(table)}"
        if isinstance(data, (str, os.PathLike)):
            with open(data, "rb") as fh:
                return self._json("POST", url, params={"mode": mode}, data=fh)
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(_to_arrow(data), buf)
        return self._json("POST", url, params={"mode": mode}, data=buf.getvalue(), headers={"Content-Type": PARQUET})

    def drop(self, table: str, context: str = "MyDB") -> None:
        """Drop a table of MyDB (or of a writable mount)."""
        self._request("DELETE", f"contexts/{quote(context)}/tables/{quote(table)}")

    def rename(self, table: str, new_name: str, context: str = "MyDB") -> dict:
        return self._json("POST", f"contexts/{quote(context)}/tables/{quote(table)}/rename", json={"name": new_name})

    # -- directives ------------------------------------------------------------------------------
    def directives(self, folder: str | None = None) -> list[dict]:
        """The caller's saved directives (optionally those in one folder)."""
        return self._json("GET", "directives", params={"folder": folder} if folder else None)["directives"]

    def save_directive(self, name: str, query: str, *, context: str | None = None, language: str = DEFAULT_LANGUAGE,
                       folder: str = "/", description: str = "", into: str | None = None) -> dict:
        """Save a query as a directive; its query is compiled (checked) by the server."""
        body = {"name": name, "query": query, "context": context or self.context, "language": language,
                "folderPath": folder, "description": description, "targetTable": into}
        return self._json("POST", "directives", json={k: v for k, v in body.items() if v is not None})

    def run_directive(self, directive_id: str) -> Job:
        """Run a saved directive as a job."""
        return Job(self, self._json("POST", f"directives/{quote(directive_id)}/run"))

    def delete_directive(self, directive_id: str) -> None:
        self._request("DELETE", f"directives/{quote(directive_id)}")

    # -- images (the image service, LSST imgserv's URLs) ------------------------------------------------
    def images(self, ra: float | None = None, dec: float | None = None, *, level: str = "L2",
               collection: str = "DEMO", kind: str = "calexp") -> list[dict]:
        """The images of a kind (those covering ``ra``, ``dec`` when given): id, size, centre, footprint, planes."""
        meta = f"{self.url}archive/dax/meta/v0/image/{quote(level)}/{quote(collection)}/{quote(kind)}"
        params = {"ra": ra, "dec": dec} if ra is not None and dec is not None else {}
        ids = self._json("GET", meta, params={**params, "count": 1000})["ids"]
        return [self._json("GET", f"{meta}/{quote(str(i))}")["result"] for i in ids]

    def cutout(self, ra: float, dec: float, size: float = 30.0, *, image: str | None = None, plane: str = "data",
               level: str = "L2", collection: str = "DEMO", kind: str = "calexp", format: str = "fits"):
        """A square cutout ``size`` arcsec wide centred on ``ra``, ``dec`` (degrees).

        ``image`` is an image id (default: the first image covering the position). FITS gives an
        astropy ``HDUList`` (pixels and WCS); ``png`` and ``jpeg`` give the encoded bytes.
        """
        if image is None:
            covering = self.images(ra, dec, level=level, collection=collection, kind=kind)
            if not covering:
                raise ArchiveError(f"no {kind} image of {level}/{collection} covers ra={ra}, dec={dec}", "not_found", 404)
            image = covering[0]["id"]
        url = f"{self.url}archive/dax/image/v0/{quote(level)}/{quote(collection)}/{quote(kind)}/{quote(str(image))}/cutout"
        params = {"ra": ra, "dec": dec, "widthAng": size, "heightAng": size, "plane": plane, "format": format}
        r = self._request("GET", url, params=params)
        if format != "fits":
            return r.content
        from astropy.io import fits

        return fits.open(io.BytesIO(r.content))


def _table(r: requests.Response) -> pa.Table:
    """An Arrow stream answer's rows."""
    return pa.ipc.open_stream(io.BytesIO(r.content)).read_all()


def _plain(value):
    """Numpy scalars and the like as JSON values."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str, bytes)):
        return value.item()
    return value


def _error(r: requests.Response) -> ArchiveError:
    try:
        err = r.json().get("error")
    except ValueError:
        err = None
    if isinstance(err, dict):
        msg = err.get("message") or r.reason
        if err.get("position"):
            msg += f" (line {err['position'].get('line')}, column {err['position'].get('column')})"
        return ArchiveError(msg, err.get("code") or "error", r.status_code, err.get("details"))
    if isinstance(err, str):
        return ArchiveError(err, "error", r.status_code)
    try:
        body = r.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):  # metaserv/imgserv: {"exception", "message"}
        return ArchiveError(body["message"], body.get("exception") or "error", r.status_code)
    return ArchiveError(f"HTTP {r.status_code} {r.reason}: {r.text[:300]}", "http", r.status_code)
