"""The archive through its owner: a server whose data dir another live process owns.

``jupyter lab`` started while ``jupyter archive`` runs on the same data dir must not open
the store a second time (core/ownership.py). It registers the same archive routes, each
handler wrapped by ``ProxyMixin``, which forwards the request to the owner's server and
streams both bodies (uploads, long waits, exports). The owner checks credentials itself:
an ``X-Auth-Token`` is passed on; a caller this server's Jupyter login vouches for is named
in headers the owner believes only with the secret it keeps in the data dir (base.py).
The caller's own copies of those headers, its cookies and its Jupyter token are not passed on.

When the owner cannot be reached the route answers 503 in its face's shape, naming the
owner and ``--ArchiveApp.data_dir``; when the owner has died this server takes the data
dir over (app.py) and the routes go back to their own handlers (``unproxy``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from tornado import httputil, web
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.iostream import IOStream, StreamClosedError
from tornado.routing import RuleRouter
from tornado.tcpclient import TCPClient

from ..core.errors import ArchiveError
from ..core.ownership import DataDirLock, describe_holder
from .base import (
    AUTH_HEADER,
    FORWARD_PREFIX,
    FORWARD_SECRET,
    FORWARDED_ADMIN,
    FORWARDED_BASE,
    FORWARDED_HOST,
    FORWARDED_PROTO,
    FORWARDED_USER,
    jupyter_user,
)

CONNECT_TIMEOUT = 5.0
PROBE_AFTER = 2.0  # seconds without an answer before asking whether the owner is alive at all
PROBE_TIMEOUT = 5.0
UNLIMITED = 1 << 62  # body sizes: the owner applies its own limits

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
               "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
# This server's own credentials and browser checks (done here) mean nothing to the owner.
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "cookie", "authorization", "x-xsrftoken", "x-csrftoken", "origin", "expect"}
_NOT_RETURNED = _HOP_BY_HOP | {"set-cookie", "server", "date"}


class Forwarding:
    """What a server that does not own its data dir knows about the owner, and when to take over."""

    def __init__(self, lock: DataDirLock, take_over: Callable[[], bool]):
        self.lock = lock
        self.take_over = take_over  # tries to become the owner; True when it has begun

    def target(self) -> dict:
        """The owner's note (``url``, ``secret``), or the 503 to answer instead."""
        note = self.lock.holder()
        if self.lock.held or self.take_over():
            raise self.taking_over()
        if note.get("alive") and note.get("url"):
            return note
        if not note.get("alive"):
            raise self.unavailable({}, "has not said who it is (owner.json is missing or stale)")
        raise self.unavailable(note, "serves no archive over HTTP (it is starting, or it is not a Jupyter server)")

    async def problem(self, note: dict) -> str | None:
        """Why the owner cannot answer now (None: it answers)."""
        if self.take_over():
            return "has stopped"
        try:
            stream = await connect(note["url"], PROBE_TIMEOUT)
        except (OSError, asyncio.TimeoutError, StreamClosedError):
            return "does not accept connections"
        conn = HTTP1Connection(stream, True, HTTP1ConnectionParameters(no_keep_alive=True))
        answer = _Answered()
        try:
            path = urlsplit(note["url"]).path.rstrip("/") + "/api"  # Jupyter's version route: cheap, no login
            conn.write_headers(httputil.RequestStartLine("GET", path, "HTTP/1.1"),
                               httputil.HTTPHeaders({"Host": _netloc(note["url"]), "Connection": "close"}))
            conn.finish()
            reading = asyncio.ensure_future(conn.read_response(answer))
            reading.add_done_callback(_retrieved)
            await asyncio.wait({reading, answer.came}, timeout=PROBE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        except StreamClosedError:
            pass
        finally:
            conn.close()
        return None if answer.came.done() else f"does not answer (nothing in {PROBE_TIMEOUT:g} s)"

    def unavailable(self, note: dict, reason: str) -> ArchiveError:
        """The 503 every face renders in its own shape: who owns the data dir, and what to do."""
        if self.lock.held:
            return self.taking_over()
        who = describe_holder(note) if note else "pid unknown"
        return ArchiveError(
            "unavailable",
            f"the archive's data dir {self.lock.data_dir} is owned by another process ({who}), which {reason}. "
            "This server reaches the archive through that owner: try again when it answers, stop it, "
            "or give this server a data dir of its own with --ArchiveApp.data_dir=DIR",
            503,
        )

    def taking_over(self) -> ArchiveError:
        return ArchiveError(
            "unavailable",
            f"the owner of the archive's data dir {self.lock.data_dir} has stopped and this server is taking "
            "the data dir over: retry in a moment",
            503,
        )


async def connect(url: str, timeout: float) -> IOStream:
    """A stream to the server at ``url`` (http, https or http+unix)."""
    parts = urlsplit(url)
    if parts.scheme == "http+unix":
        stream = IOStream(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        await asyncio.wait_for(stream.connect(unquote(parts.netloc)), timeout)
        return stream
    tls = None
    if parts.scheme == "https":
        # The owner is this OS user's own process, found through the data dir; its certificate
        # is usually made for a public name, not for the loopback address dialled here.
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    port = parts.port or (443 if tls else 80)
    return await TCPClient().connect(parts.hostname, port, ssl_options=tls, timeout=timeout)


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return "localhost" if parts.scheme == "http+unix" else parts.netloc


class _Answered(httputil.HTTPMessageDelegate):
    """Notes that a server answered at all (its status line came)."""

    def __init__(self):
        self.came = asyncio.get_running_loop().create_future()

    def headers_received(self, start_line, headers):
        _resolve(self.came, None)


class _Relay(httputil.HTTPMessageDelegate):
    """The owner's answer, handed to the caller as it comes."""

    def __init__(self, handler: ProxyMixin):
        loop = asyncio.get_running_loop()
        self.handler = handler
        self.started = loop.create_future()  # the owner's status line came (or the exchange failed)
        # The owner's 100 Continue (or its final answer, or a failure): the body waits for it, so an owner
        # refusing from the headers closes with no body unread, whose reset would lose its answer.
        self.proceed = loop.create_future()
        self.ended = loop.create_future()  # True: the whole answer was relayed
        self.failure: str | None = None
        self.content_type: str | None = None

    def headers_received(self, start_line, headers):
        _resolve(self.proceed, None)
        if 100 <= start_line.code < 200:
            return  # an interim answer (100 Continue: send the body); the real one follows
        h = self.handler
        h.set_status(start_line.code, start_line.reason or None)
        seen: set[str] = set()
        for name, value in headers.get_all():
            low = name.lower()
            if low not in _NOT_RETURNED:
                (h.add_header if low in seen else h.set_header)(name, value)
                seen.add(low)
        self.content_type = headers.get("Content-Type")
        _resolve(self.started, None)

    def data_received(self, chunk):
        return self._send(chunk)

    async def _send(self, chunk: bytes) -> None:
        self.handler.write(chunk)
        try:
            await self.handler.flush()
        except StreamClosedError:
            self.handler.close_upstream()  # the caller left: so does the owner's answer

    def finish(self):
        _resolve(self.ended, True)
        _resolve(self.started, None)
        self.handler.relay_finished()

    def fail(self, reason: str) -> None:
        if not self.started.done():
            self.failure = reason
        _resolve(self.proceed, None)
        _resolve(self.started, None)
        _resolve(self.ended, False)

    def on_connection_close(self):
        self.fail("closed the connection without an answer")

    def reading_done(self, task: asyncio.Future) -> None:
        _retrieved(task)
        self.fail("closed the connection without an answer")


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # a stream closed under a read: what it means is reported elsewhere


def _resolve(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


class ProxyMixin:
    """Forwards the request to the data dir's owner and relays its answer (mixed before a
    face's handler class, whose error shape a 503 then takes)."""

    _stream_request_body = True  # bodies are passed on as they arrive, never held whole
    _upstream: HTTP1Connection | None = None
    _relay: _Relay | None = None
    _note: dict = {}

    async def prepare(self):
        # Jupyter's part only (host check, login, XSRF); the face's own prepare is the owner's business.
        await APIHandler.prepare(self)
        if self._finished or self.request.method == "OPTIONS":
            return  # a CORS preflight is this server's to answer
        self.request.connection.set_max_body_size(UNLIMITED)
        forwarding: Forwarding = self.settings["archive_forwarding"]
        self._note = note = forwarding.target()
        try:
            stream = await connect(note["url"], CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError, StreamClosedError):
            raise forwarding.unavailable(note, await forwarding.problem(note) or "refused the connection") from None
        self._upstream = HTTP1Connection(
            stream, True, HTTP1ConnectionParameters(no_keep_alive=True, max_body_size=UNLIMITED, decompress=False)
        )
        self._relay = relay = _Relay(self)
        self._upstream.write_headers(
            httputil.RequestStartLine(self.request.method, self._owner_uri(note["url"]), "HTTP/1.1"),
            self._forwarded_headers(note),
        )
        self._reading = asyncio.ensure_future(self._upstream.read_response(relay))
        self._reading.add_done_callback(relay.reading_done)
        self._watcher = asyncio.ensure_future(self._watch(forwarding, note))
        self._watcher.add_done_callback(_retrieved)

    def _owner_uri(self, owner_url: str) -> str:
        own_base = self.settings.get("base_url", "/")
        return urlsplit(owner_url).path.rstrip("/") + "/" + self.request.uri[len(own_base):]

    def _forwarded_headers(self, note: dict) -> httputil.HTTPHeaders:
        headers = httputil.HTTPHeaders()
        for name, value in self.request.headers.get_all():
            low = name.lower()
            if low not in _NOT_FORWARDED and not low.startswith(FORWARD_PREFIX):
                headers.add(name, value)
        headers["Host"] = _netloc(note["url"])
        headers["Connection"] = "close"
        if self.request.headers.get("Transfer-Encoding") or self.request.headers.get("Content-Length", "0") != "0":
            headers["Expect"] = "100-continue"  # see _Relay.proceed
        headers[FORWARD_SECRET] = note["secret"]
        headers[FORWARDED_HOST] = self.request.host
        headers[FORWARDED_PROTO] = self.request.protocol
        headers[FORWARDED_BASE] = self.settings.get("base_url", "/")
        if not self.request.headers.get(AUTH_HEADER) and self.current_user is not None:
            name, admin = jupyter_user(self.settings["archive_app"], self.current_user)
            headers[FORWARDED_USER] = quote(name, safe="")
            headers[FORWARDED_ADMIN] = "1" if admin else "0"
        return headers

    async def _watch(self, forwarding: Forwarding, note: dict) -> None:
        """While the owner has not answered, make sure it is alive: a paused or hung owner
        would otherwise hold the caller for ever; a slow answer (a long wait) is left alone."""
        relay = self._relay
        while not relay.started.done():
            await asyncio.wait({relay.started}, timeout=PROBE_AFTER)
            if relay.started.done():
                return
            try:
                reason = await forwarding.problem(note)
            except Exception as exc:  # noqa: BLE001 - a caller must not wait for ever on a failed check
                reason = f"could not be checked ({exc})"
            if reason is not None and not relay.started.done():
                relay.fail(reason + "; the request was sent and may still be carried out if it resumes")
                self.close_upstream()

    async def data_received(self, chunk: bytes) -> None:
        if self._relay is None:
            return
        await self._relay.proceed
        if self._relay.started.done():
            return  # the owner has answered already (a refusal from the headers): the rest is dropped
        try:
            await self._upstream.write(chunk)
        except StreamClosedError:
            pass  # reported by the relay

    @allow_unauthenticated
    async def forward(self, *args, **kwargs):
        """Every method: the body has all come; wait for the owner's answer and relay it."""
        relay = self._relay
        if not relay.ended.done():
            try:
                self._upstream.finish()
            except (StreamClosedError, httputil.HTTPOutputError):
                pass
        await relay.started
        forwarding: Forwarding = self.settings["archive_forwarding"]
        if relay.failure is not None:
            forwarding.take_over()  # the owner may have died under the request
            raise forwarding.unavailable(self._note, relay.failure)
        if not await relay.ended and not self._finished:
            self.close_upstream()
            if not self._headers_written:
                forwarding.take_over()
                raise forwarding.unavailable(self._note, "stopped in the middle of its answer")
            self.request.connection.close()  # a cut answer must not look complete
        self.relay_finished()

    get = head = post = put = patch = delete = move = forward

    def relay_finished(self) -> None:
        """Send the end of the owner's whole answer; also before the caller's body has all come
        (the owner refused it from its headers), as the owner itself would."""
        ended = self._relay.ended
        if self._finished or not (ended.done() and ended.result()):
            return
        self.close_upstream()
        self.finish(set_content_type=self._relay.content_type or "application/octet-stream")

    def close_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()

    def on_connection_close(self):
        web.RequestHandler.on_connection_close(self)  # tornado's own: it ends the wait for the body
        self.close_upstream()

    def on_finish(self):
        self.close_upstream()


_PROXIES: dict[type, type] = {}


def proxied(handlers: list[tuple]) -> list[tuple]:
    """The same routes, each handler forwarding to the owner (the face's error shape kept)."""
    out = []
    for pattern, cls, *rest in handlers:
        if cls not in _PROXIES:
            _PROXIES[cls] = type(f"Forwarding{cls.__name__}", (ProxyMixin, cls), {"__module__": __name__, "direct": cls})
        out.append((pattern, _PROXIES[cls], *rest))
    return out


def unproxy(router: RuleRouter) -> int:
    """Point every forwarding route of a tornado application back at its own handler (this
    server now owns the data dir); how many routes changed."""
    changed = 0
    for rule in getattr(router, "rules", []):
        target = rule.target
        if isinstance(target, type) and issubclass(target, ProxyMixin):
            rule.target = target.direct
            if hasattr(rule, "handler_class"):
                rule.handler_class = target.direct
            changed += 1
        elif hasattr(target, "rules"):  # a host's or the application's router
            changed += unproxy(target)
    return changed
