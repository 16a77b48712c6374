"""The base class of every archive handler: what runs on every request, in one module.

Who is asking: a Jupyter user (Jupyter's own auth: token or cookie), or an archive user
sending ``X-Auth-Token``; anonymous requests reach public, read-only contexts only when
``ArchiveApp.allow_anonymous`` is on. Requests authenticated by header skip the XSRF check
(the header cannot be forged cross-site). A request may also come through another server on
this archive's data dir (faces/proxy.py): it carries the secret this process keeps in the data
dir (core/ownership.py), the caller's host, scheme and base URL (for the links in answers) and,
for a caller that server's Jupyter login vouches for, the archive user's name. Without the
right secret none of it is believed.

What a request carries is read in one layer (query-string parameters, form and JSON bodies, listing windows, result
formats), each checked by ``core.params`` and ``core.times``; answers go out as JSON, text, or a query's rows in a format
(``quick_query``: past the quick time limit, a job). What runs only sometimes lives beside this: error replies (errors.py),
bounded request bodies (bodies.py), typed values, URLs, jobs (values.py), JSON, text and large results (answers.py).
A call that is not a cheap read waits for the caller's turn on the quick workers (``admit``), held until the request ends.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import unquote

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import httputil

from ...core import formats, params
from ...core.archive import Archive
from ...core.catalog import ANONYMOUS, Principal
from ...core.errors import ArchiveError, native_fault
from ...core.execution.pool import QueryResult
from ...core.lanes import READS
from .answers import Answers
from .errors import ErrorReplies
from .values import RequestValues

AUTH_HEADER = "X-Auth-Token"
# What a forwarding server on the same data dir says (faces/proxy.py), believed only with the secret.
FORWARD_PREFIX = "x-archive-forward-"
FORWARD_SECRET = "X-Archive-Forward-Secret"
FORWARDED_USER = "X-Archive-Forward-User"
FORWARDED_ADMIN = "X-Archive-Forward-Admin"
FORWARDED_HOST = "X-Archive-Forward-Host"
FORWARDED_PROTO = "X-Archive-Forward-Proto"
FORWARDED_BASE = "X-Archive-Forward-Base"
PLAIN_TEXT = "text/plain; charset=UTF-8"


def endpoint(*, anonymous: bool = False):
    """Mark a handler method as an archive endpoint.

    Jupyter's own check is replaced (``allow_unauthenticated``) by ours, which also accepts
    archive tokens; ``anonymous`` lets unauthenticated callers in when the archive allows it.
    """

    def wrap(method: Callable):
        @functools.wraps(method)
        async def inner(self: ArchiveHandler, *args, **kwargs):
            if self._finished:
                return None  # answered while the body arrived (LimitedBody's 413)
            self.principal = self.authenticate(anonymous)
            try:
                return await method(self, *args, **kwargs)
            except BaseException as exc:  # a native library's panic is no Exception: a 500, not a request never answered
                raise native_fault(exc)  # noqa: B904 - the same exception, or a new one caused by it
            finally:
                self.leave()

        return allow_unauthenticated(inner)

    return wrap


def jupyter_user(app, user) -> tuple[str, bool]:
    """The archive user (name, admin) a Jupyter-authenticated request acts as, by ``app``'s
    (the ArchiveApp's) ``jupyter_user_mapping``."""
    if app.jupyter_user_mapping == "username" and getattr(user, "username", None) and user.username != app.owner:
        return user.username, False
    return app.owner, True


class ArchiveHandler(ErrorReplies, RequestValues, Answers, ExtensionHandlerMixin, APIHandler):
    """Base of every archive handler; a face subclasses it and says how errors look."""

    face = "native"
    principal: Principal = ANONYMOUS
    #: The Content-Type of the face's plain-text answers.
    text_media = PLAIN_TEXT
    #: What separates query-string parameters besides ``&`` (the DAX document writes ``start=0;count=10``).
    query_separators = ""

    @property
    def archive(self) -> Archive:
        return self.settings["archive"]

    @property
    def archive_app(self):
        return self.settings["archive_app"]

    async def call(self, fn: Callable, *args, **kwargs):
        """Run a blocking archive call off the loop: a cheap read (``core.lanes``) on the reads pool, else on the query pool in turn (``admit``)."""
        loop = asyncio.get_running_loop()
        if getattr(fn, "lane", None) == READS:
            pool = self.archive.reads
        else:
            await self.admit()
            pool = self.archive.executor
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    _admitted: str | None = None  # whose turn on the quick workers this request holds

    async def admit(self) -> None:
        """Hold a turn on the quick workers until the request ends (``Admission``): waiting holds no thread; too long, a 429."""
        if self._admitted is not None:
            return
        admission = self.archive.admission
        who = f"anonymous {self.request.remote_ip}" if self.principal.anonymous else self.principal.name
        if (ticket := admission.enter(who)) is not None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(ticket)), admission.wait)
            except BaseException as exc:  # waited too long, or the request is being torn down
                if not admission.withdraw(who, ticket):
                    raise admission.busy(who) if isinstance(exc, TimeoutError) else exc from None
        self._admitted = who

    def leave(self) -> None:
        """Give the request's turn on the quick workers back (its answer is sent, or it waits for a job)."""
        if self._admitted is not None:
            who, self._admitted = self._admitted, None
            self.archive.admission.leave(who)

    def on_finish(self) -> None:
        self.leave()
        super().on_finish()

    # -- who is asking ----------------------------------------------------------------------------
    async def prepare(self, *args, **kwargs):
        # Jupyter makes a new anonymous user, and signs a login cookie for it, on every request with
        # its token in the Authorization header and no cookie: every API client's, ~0.3 ms each. That
        # user only stands for the owner here, so one made once serves; the token is checked as Jupyter does.
        idp = self.identity_provider
        if type(idp) in (IdentityProvider, PasswordIdentityProvider) and idp.token and "Cookie" not in self.request.headers:
            m = idp.auth_header_pat.match(self.request.headers.get("Authorization", ""))
            if m and self.archive_app.jupyter_user_mapping != "username" and not self.get_argument("token", ""):
                if hmac.compare_digest(m.group(2).encode(), idp.token.encode()):
                    user = self.settings.get("archive_token_user") or idp.generate_anonymous_user(self)
                    self._jupyter_current_user = self.settings.setdefault("archive_token_user", user)
                    self._token_authenticated = True
        return await super().prepare(*args, **kwargs)

    def authenticate(self, anonymous_ok: bool) -> Principal:
        """Who is asking (``anonymous_ok``: anonymous callers let in when the archive allows them)."""
        forwarded = self._forwarded_user()
        token = self.request.headers.get(AUTH_HEADER)
        if token:
            p = self.archive.users.principal_for_token(token)
            if p is None:
                raise ArchiveError("unauthorized", "invalid or expired X-Auth-Token", 401)
            return p
        # Users on first sight (the owner again if an admin deleted them meanwhile); only this
        # server's owner is an admin here, whatever a forwarding server's settings say.
        if forwarded is not None:
            name, admin = forwarded
            return self.archive.users.principal(name, admin=admin and name == self.archive_app.owner)
        user = self.current_user
        if user is not None:
            name, admin = jupyter_user(self.archive_app, user)
            return self.archive.users.principal(name, admin=admin)
        if anonymous_ok and self.archive.config.allow_anonymous:
            return ANONYMOUS
        raise ArchiveError(
            "permission", "authentication required: log in to Jupyter, pass its token, or send an X-Auth-Token header", 403
        )

    def _forwarded_user(self) -> tuple[str, bool] | None:
        """For a request forwarded by another server on this data dir: take its word for the
        caller's address and return the archive user (name, admin) it vouches for, if any."""
        headers = self.request.headers
        secret = headers.get(FORWARD_SECRET)
        if secret is None and not any(name.lower().startswith(FORWARD_PREFIX) for name in headers):
            return None
        own = self.archive.lock.secret
        if not (secret and own and hmac.compare_digest(secret.encode(), own.encode())):
            raise ArchiveError("unauthorized", "wrong forwarding secret: only a server on this archive's data dir forwards requests", 401)
        self.request.host = headers.get(FORWARDED_HOST) or self.request.host
        if headers.get(FORWARDED_PROTO) in ("http", "https"):
            self.request.protocol = headers[FORWARDED_PROTO]
        base = headers.get(FORWARDED_BASE) or ""
        if base.startswith("/") and base.endswith("/"):
            self._forwarded_base = base
        user = headers.get(FORWARDED_USER)
        return None if user is None else (unquote(user), headers.get(FORWARDED_ADMIN) == "1")

    @property
    def base_url(self) -> str:
        """The base URL the caller used (the forwarding server's, for a forwarded request)."""
        return getattr(self, "_forwarded_base", None) or super().base_url

    @property
    def content_security_policy(self) -> str:
        # Jupyter forms it anew for every request (~6% of a point lookup's Python time); it follows the settings and base URL only.
        known, key = self.settings.setdefault("archive_csp", {}), (type(self), self.base_url)
        return known[key] if key in known else known.setdefault(key, super().content_security_policy)

    def _log(self) -> None:
        # Jupyter's log function forms (scrubs, names the user) and drops every success's line, ~4.5% of a
        # point lookup's Python time with its Prometheus timing: formed here only at debug level, timed alike.
        status = self.get_status()
        keywords = getattr(self.settings.get("log_function"), "keywords", None)
        if status >= 300 or keywords is None or self.log.isEnabledFor(logging.DEBUG):
            return super()._log()
        if keywords.get("record_prometheus_metrics", True):
            _duration(self.request.method, type(self), status).observe(self.request.request_time())

    def check_xsrf_cookie(self) -> None:
        # Header-authenticated and anonymous requests carry no cookie to forge; a forwarding
        # server checked its own caller's (and the secret is checked at authentication).
        if self.request.headers.get(AUTH_HEADER) or self.request.headers.get(FORWARD_SECRET):
            return None
        if hasattr(self, "_jupyter_current_user") and self._jupyter_current_user is None:
            return None
        return super().check_xsrf_cookie()

    # -- what the request carries -----------------------------------------------------------------
    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Path segments (and tornado's own argument reads) as UTF-8 text, 400 in the face's shape."""
        return params.text(name or "path", value)

    @functools.cached_property
    def query_arguments(self) -> dict[str, list[bytes]]:
        """The query string's parameters as bytes by name (split on ``query_separators`` too)."""
        if not self.query_separators:
            return self.request.query_arguments
        query = self.request.query
        for sep in self.query_separators:
            query = query.replace(sep, "&")
        return httputil.parse_qs_bytes(query, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query-string parameter, as UTF-8 text (400 if it is not)."""
        values = self.query_arguments.get(name)
        return params.text(name, values[-1]) if values else default

    _json_body: dict | None = None

    def json_body(self) -> dict:
        """The request body as a JSON object (depth-limited, see ``core.params``), or the fields
        of a form body (last value of each); keys as sent."""
        if self._json_body is None:
            self._json_body = self._read_json_body()
        return self._json_body

    def body_field(self, name: str, default: Any = None, *, query: bool = False) -> Any:
        """A field of ``json_body``, its name matched case-insensitively (as ASP.NET's binder
        and Kasabi's forms do); when the body has none, the query string's value (``query``)
        or ``default``."""
        low = name.lower()
        for key, value in self.json_body().items():
            if key.lower() == low:
                return value
        return self.arg(name, default) if query else default

    def _read_json_body(self) -> dict:
        body = self.request.body or b""
        ctype = (self.request.headers.get("Content-Type") or "").lower()
        # Clients label JSON bodies loosely (or as form data by default), so a body that
        # looks like a JSON object is JSON whatever the Content-Type says.
        looks_json = body.lstrip()[:1] in (b"{", b"[")
        if not looks_json and ("application/x-www-form-urlencoded" in ctype or "multipart/form-data" in ctype):
            return {k: params.text(k, v[-1]) for k, v in self.form_fields().items()}
        if not body.strip():
            return {}
        data = params.parse_json(body)
        if not isinstance(data, dict):
            raise ArchiveError("bad_request", "the request body must be a JSON object")
        return data

    def negotiate(self, default: str, allowed: set[str] | None = None, media_map: dict[str, str] | None = None):
        """The result format from ``?format=`` or ``Accept`` (``media_map`` lets a face rename media types)."""
        accept = self.request.headers.get("Accept")
        if media_map and accept:
            for media, name in media_map.items():
                if accept.split(";")[0].strip().lower() == media:
                    return formats.by_name(name)
        return formats.negotiate(accept, self.arg("format"), default=default, allowed=allowed)

    # -- answers ----------------------------------------------------------------------------------
    async def quick_query(self, fmt, info: formats.ResultInfo, principal: Principal, text: str, language: str, *,
                          job: dict | None = None, **options) -> None:
        """Run a quick query (``queries.query``'s ``options``) and send its rows: a key index's at once (``lookup``), a small result
        run and encoded in one trip to the pool (``run_encoded``), a large one streamed. Given ``job`` (fields of its request), a
        query still running at the quick time limit goes on as the principal's job (``Continuation``): ``went_on``."""
        if (result := self.archive.queries.lookup(principal, text, language, **options)) is not None:  # no worker, no turn: µs
            return await self.stream(result, fmt, info, body=run_encoded(fmt, info, lambda: result)[1])
        query, went = self.archive.queries.query, None
        if job is not None:
            take = functools.partial(self.archive.jobs.continued, principal, text, language, face=self.face, started=time.time())
            went = Continuation(functools.partial(take, options=options, request=job), options.pop("history", self.archive.queries.history.append))
            query = functools.partial(went.run, query)
        await self.admit()
        work = asyncio.wrap_future(self.archive.executor.submit(run_encoded, fmt, info, query, principal, text, language, **options))
        if went is not None:
            await asyncio.wait((work, asyncio.wrap_future(went.taken)), return_when=asyncio.FIRST_COMPLETED)
            if went.went_on:  # the run goes on as the job, on its thread: this request's turn is over
                self.leave()
                return await self.went_on(went.taken.result().job)
        result, body = await work
        await self.stream(result, fmt, info, body=body)

    async def stream(self, result: QueryResult, fmt, info: formats.ResultInfo | None = None, *, body: bytes | None = None) -> None:
        """Send a result in a format (gzipped when asked): a small one in one piece (``body``:
        already encoded), any other chunk by chunk, each encoded (and compressed) on the pool
        and out of the socket before the next is made: bounded memory, however slow the client."""
        info = info or formats.ResultInfo()
        info.truncated = info.truncated or result.truncated
        self.set_header("Content-Type", fmt.media_type)
        if result.truncated:
            self.set_header("X-Archive-Truncated", "true")
        if disposition := (fmt.options or {}).get("disposition"):
            self.set_header("Content-Disposition", disposition)
        gzip = None
        if "gzip" in (self.request.headers.get("Accept-Encoding") or "").lower():
            gzip = zlib.compressobj(1, zlib.DEFLATED, 31)  # level 1: exports stay fast
            self.set_header("Content-Encoding", "gzip")
            self.set_header("Vary", "Accept-Encoding")
        if body is None and result.small:
            body = await asyncio.get_running_loop().run_in_executor(self.archive.executor, b"".join, fmt.encode(result.schema, result.batches(), info))
        if body is not None:
            if gzip is not None:
                body = gzip.compress(body) + gzip.flush()
            self.finish(body, set_content_type=fmt.media_type)
            return
        await self.send_chunks(result, fmt, info, gzip)


def run_encoded(fmt, info: formats.ResultInfo, fn: Callable, *args, **kwargs) -> tuple[QueryResult | None, bytes | None]:
    """Run a query on this (pool) thread: its result, and its encoded body when it is small (else None; and
    no result when ``fn`` gives none: a quick query gone on as a job)."""
    result = fn(*args, **kwargs)
    if result is None or not result.small:
        return result, None
    info.truncated = info.truncated or result.truncated
    return result, b"".join(fmt.encode(result.schema, result.batches(), info))


class Continuation:
    """A quick query that goes on as a job once the quick time limit passes, the same run (issue 18): ``run`` runs it on
    a quick worker; at the limit (``execute``'s ``on_limit``, the watchdog's thread) ``take(cursor)`` (``Jobs.continued``)
    makes the job or gives None (the limit interrupts the query); ``taken`` resolves with it, its ``deliver`` gets what the
    run gives. The jobs package is entered only then. The run's history entry goes to ``record`` unless it went on."""

    def __init__(self, take: Callable, record: Callable | None):
        self._take, self._record, self.taken = take, record, Future()  # ``taken`` is canceled once answered in time

    went_on = property(lambda self: self.taken.done() and not self.taken.cancelled() and self.taken.result() is not None)

    def _stays_quick(self) -> bool:  # settled by the run's end or its history entry, whichever comes first
        return self.taken.cancel() or self.taken.result() is None

    def _at_limit(self, cursor) -> bool:
        if not self.taken.set_running_or_notify_cancel():
            return False  # answered in time: the limit cuts the rows still being sent, as before
        taker = None
        try:
            taker = self._take(cursor)
        finally:  # the query's thread waits for this answer
            self.taken.set_result(taker)
        return taker is not None

    def _entry(self, entry: tuple) -> None:
        if self._stays_quick():  # a run that failed as the limit passed is a job's, or a quick query's: never both
            self._record(entry)

    def run(self, query: Callable, *args, **kwargs) -> QueryResult | None:
        """``query``'s result when answered in time (or when no job could be made); None once the job has what it gave."""
        try:
            result = query(*args, on_limit=self._at_limit, history=self._entry if self._record is not None else None, **kwargs)
        except BaseException as exc:
            if self._stays_quick():
                raise
            return self.taken.result().deliver(exc)
        return result if self._stays_quick() else self.taken.result().deliver(result)


@functools.lru_cache(maxsize=512)
def _duration(method: str, handler: type, status: int):
    from jupyter_server.prometheus.metrics import HTTP_REQUEST_DURATION_SECONDS  # the histogram Jupyter's log records in

    return HTTP_REQUEST_DURATION_SECONDS.labels(method=method, handler=f"{handler.__module__}.{handler.__name__}", status_code=status)
