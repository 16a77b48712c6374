"""The ``%%archive`` cell magic and ``%archive`` line magic (``%load_ext jupyter_archive``).

::

    %%archive --context DEMO
    SELECT TOP 10 objid, ra, dec, r FROM PhotoObj WHERE r < {cut}

shows the rows and keeps them (``_``, ``--out name``); ``--job --into mydb.Bright`` runs it as a
job with a live progress bar (as a query does that goes on as a job past the server's quick time
limit, followed to its rows); ``--format astropy`` gives an astropy Table with units.
``{name}`` and ``:name`` take values from the notebook's variables and are bound as query
parameters, never pasted into the SQL. Settings: ``%config Archive.context = "MyDB"`` etc.
Line form: ``%archive tables [CONTEXT]``, ``contexts``, ``jobs``, ``job ID``, ``cancel ID``,
``history [TEXT]`` (your queries from every face, newest first; ``--limit N``), ``editor``,
``browse [CONTEXT [TABLE]]``, or one line of SQL.
"""

from __future__ import annotations

import re

from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Enum, Int, Unicode, observe
from traitlets.config import Configurable

from .client import FORMATS, ArchiveClient, ArchiveError
from .core.languages import DEFAULT_LANGUAGE, LANGUAGES

COMMANDS = ("tables", "contexts", "jobs", "job", "cancel", "history", "editor", "browse")
# SQL pieces where a ':' or '{' is text, not a parameter: strings, quoted names, comments.
_SKIP = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\[[^\]]*\]|`[^`]*`|--[^\n]*|/\*.*?\*/", re.DOTALL)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)|\{([A-Za-z_]\w*)\}")


def bind_parameters(sql: str, namespace: dict, skip: set[str] = frozenset()) -> tuple[str, dict]:
    """``{name}`` -> ``:name``; the values of the ``:name`` found in ``namespace``, to be bound.

    Names in ``skip`` (``--var``) and names the namespace lacks are left for the server, which
    reports an unbound one by name.
    """
    params: dict = {}
    out, pos = [], 0

    def code(text: str) -> str:
        def one(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name not in skip and name in namespace:
                params[name] = namespace[name]
            return ":" + name
        return _PARAM.sub(one, text)

    for m in _SKIP.finditer(sql):
        out.append(code(sql[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(code(sql[pos:]))
    return "".join(out), params


@magics_class
class Archive(Magics, Configurable):
    """``%%archive``: query the archive from a notebook (settings via ``%config Archive.*``)."""

    context = Unicode("DEMO", config=True, help="The context queries run in when --context is not given.")
    language = Enum(LANGUAGES, DEFAULT_LANGUAGE, config=True, help="The query language when --lang is not given.")
    format = Enum(FORMATS, "pandas", config=True, help="What a query gives: pandas, astropy or arrow.")
    limit = Int(None, allow_none=True, config=True, help="At most this many rows from a quick query (None: the server's limit).")
    url = Unicode(None, allow_none=True, config=True, help="The server's URL (default: found as ArchiveClient finds it).")
    token = Unicode(None, allow_none=True, config=True, help="The Jupyter token for url.")
    archive_token = Unicode(None, allow_none=True, config=True, help="An archive token, sent as X-Auth-Token.")
    progress = Bool(True, config=True, help="Show a JobProgress widget for --job, and for a query gone on as a job.")

    def __init__(self, shell=None, **kwargs):
        Configurable.__init__(self, config=shell.config if shell else None)
        Magics.__init__(self, shell=shell, **kwargs)
        self._client: ArchiveClient | None = None
        self.last_job = None

    @observe("url", "token", "archive_token")
    def _server_changed(self, _change):
        self._client = None

    @property
    def client(self) -> ArchiveClient:
        if self._client is None:
            self._client = ArchiveClient(self.url, self.token, archive_token=self.archive_token, context=self.context)
        return self._client

    @needs_local_scope
    @magic_arguments()
    @argument("command", nargs="*", help="line form: tables, contexts, jobs, job ID, cancel ID, history [TEXT], editor, browse; or SQL")
    @argument("--context", "-c", help="the context to query (DEMO, MyDB, ...)")
    @argument("--lang", "-l", choices=LANGUAGES, help="query language")
    @argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a variable, as SQL literal text")
    @argument("--job", action="store_true", help="run as a job, with a progress bar and a cancel button")
    @argument("--into", help="keep the rows in a table, e.g. mydb.Bright (implies --job)")
    @argument("--out", "-o", help="also store the result (or the job) in this variable")
    @argument("--format", "-f", choices=FORMATS, help="pandas, astropy or arrow")
    @argument("--limit", type=int, help="at most this many rows (of the history too)")
    @line_cell_magic
    def archive(self, line: str, cell: str | None = None, local_ns: dict | None = None):
        """Run the cell's query in the archive (or a line command); see the module's help."""
        args = parse_argstring(self.archive, line)
        ns = {**self.shell.user_ns, **(local_ns or {})}
        if cell is None:
            if args.command and args.command[0].lower() in COMMANDS:
                return self._command(args.command[0].lower(), args.command[1:], args.limit)
            cell = " ".join(args.command)
        if not cell.strip():
            raise ArchiveError("%%archive needs a query in the cell (or a command: " + ", ".join(COMMANDS) + ")", "usage")
        variables = dict(v.split("=", 1) for v in args.var if "=" in v)
        sql, params = bind_parameters(cell.strip(), ns, set(variables))  # the text as typed: as the history lists it
        common = {"context": args.context or self.context, "language": args.lang or self.language,
                  "params": params or None, "variables": variables or None}
        if args.job or args.into:
            return self._submit(sql, common, args)
        result = self.client.query(sql, limit=args.limit if args.limit is not None else self.limit,
                                   format=args.format or self.format, progress=self.progress, **common)
        if args.out:
            self.shell.user_ns[args.out] = result
        return result

    def _submit(self, sql: str, common: dict, args) -> None:
        from IPython.display import display

        job = self.client.submit(sql, into=args.into, **common)
        self.last_job = job
        if args.out:
            self.shell.user_ns[args.out] = job
        if self.progress:
            from .widgets import JobProgress

            display(JobProgress(job, client=self.client))
        else:
            print(f"submitted job {job.id} ({job.state})")

    def _command(self, name: str, rest: list[str], limit: int | None = None):
        import pandas as pd

        c = self.client
        if name == "contexts":
            return pd.DataFrame(c.contexts())
        if name == "tables":
            tables = c.tables(rest[0] if rest else self.context)
            return pd.DataFrame([{k: t.get(k) for k in ("name", "rows", "size", "description")} for t in tables])
        if name == "jobs":
            cols = ("id", "kind", "face", "state", "progress", "rows", "elapsed")
            return pd.DataFrame([{k: j.data.get(k) for k in cols} for j in c.jobs()], columns=list(cols))
        if name == "history":  # the words after it: a text the queries hold (``--limit``: how many, 20 unless said)
            df = c.history(" ".join(rest) or None, limit=20 if limit is None else limit)
            df["error"] = df["error"].map(lambda e: e and e.get("message"))  # what went wrong, in the server's words
            return df[["time", "query", "language", "context", "kind", "face", "job", "rows", "duration", "outcome", "error"]]
        if name in ("job", "cancel"):
            if len(rest) != 1:
                raise ArchiveError(f"usage: %archive {name} JOB_ID", "usage")
            from .widgets import JobProgress

            job = c.cancel(rest[0]) if name == "cancel" else c.job(rest[0])
            return JobProgress(job, client=c)
        if name == "editor":
            from .widgets import QueryEditor

            return QueryEditor(c, context=self.context, language=self.language)
        from .widgets import TableBrowser  # browse

        return TableBrowser(c, context=rest[0] if rest else self.context, table=rest[1] if len(rest) > 1 else None)


def _matcher(magic: Archive):
    """An IPython matcher (API v2) completing the SQL of ``%%archive`` cells from the server's metadata."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def archive_sql_matcher(context) -> dict:
        lines = context.full_text.split("\n")
        if context.cursor_line == 0 or not lines[0].lstrip().startswith("%%archive"):
            return {"completions": [], "suppress": False}
        body = "\n".join(lines[1:])
        cursor = sum(len(line) + 1 for line in lines[1:context.cursor_line]) + context.cursor_position
        try:
            args = parse_argstring(magic.archive, lines[0].lstrip()[len("%%archive"):])
        except Exception:  # options still being typed: complete with the defaults
            args = None
        try:
            found = magic.client.complete(body, cursor, (args and args.context) or magic.context,
                                          language=(args and args.lang) or magic.language)
        except (ArchiveError, OSError):  # no server, unknown context: nothing to offer, and no Python names
            return {"completions": [], "suppress": True}
        return {"completions": [SimpleCompletion(m.text, type=m.kind) for m in found.matches],
                "matched_fragment": body[found.start:cursor], "suppress": True, "ordered": True}

    return archive_sql_matcher


def _short_error(shell, etype, value, tb, tb_offset=None):
    """Show an ArchiveError as its message, not a traceback (the message names the problem)."""
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset, exception_only=True)


def load_ipython_extension(ip) -> None:
    """``%load_ext jupyter_archive``: register ``%%archive``, its completion and short archive errors."""
    magic = Archive(shell=ip)
    ip.register_magics(magic)
    ip.configurables.append(magic)  # what %config Archive.* finds
    ip.set_custom_exc((ArchiveError,), _short_error)
    matchers = ip.Completer.custom_matchers  # a reload replaces the matcher of the magic it replaces
    matchers[:] = [m for m in matchers if getattr(m, "__qualname__", "") != "_matcher.<locals>.archive_sql_matcher"]
    matchers.append(_matcher(magic))


__all__ = ["Archive", "bind_parameters", "load_ipython_extension"]
