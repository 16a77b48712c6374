"""What keeps clients that hold connections from taking the server away from everyone else.

Tornado, as Jupyter starts it, keeps a connection for an hour while its headers do not come, and
forever while a request body or a response does not move; each holds a file descriptor, and the
process has a few thousand. 4,100 connections that send nothing, from one client and with no
token, left every user without an answer. `ConnectionGuard` wraps the server's `HTTPServer`:

- a connection gets ``timeout`` seconds for its headers (and as keep-alive between requests);
- a request body, and a response the client does not read, get ``timeout`` seconds without a
  byte of progress (a slow client that keeps moving is not cut, as nginx's client_body_timeout
  and send_timeout); then the connection is closed, which ends its request;
- one client address holds at most ``per_client`` connections; past it the next one is answered
  429 with Retry-After and closed;
- a request whose line and headers outgrow what tornado reads (``max_header_size``, 64 KB: a long
  query in a URL) is answered 431, not dropped unanswered; a chunk size line past its bound, 400;
- the soft limit of open files goes up to the hard one (at most 65,536).

A WebSocket (a kernel's channels) is left alone once it has taken the connection over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
import weakref
from collections import Counter

from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import UnsatisfiableReadError

#: The most the soft limit of open files is raised to.
MOST_FILES = 65_536


class _Watch:
    """One connection's progress, as the sweep reads it."""

    __slots__ = ("client", "read_at", "write_at", "unsent", "body", "detached", "counted", "in_body")

    def __init__(self, client: str, now: float):
        self.client, self.read_at, self.write_at = client, now, now
        self.unsent = -1  # bytes the kernel had yet to send at the last sweep (-1: unknown)
        self.body = 0  # body reads pending
        self.detached = self.counted = self.in_body = False  # in_body: a body read is being asked for


class ConnectionGuard:
    """Timeouts on connections that make no progress, and a cap on each client's connections (see the module)."""

    def __init__(self, server, *, timeout: float | None, per_client: int | None, log: logging.Logger):
        self.timeout, self.per_client, self.log = timeout, per_client, log
        self.open: Counter[str] = Counter()
        self.streams: weakref.WeakSet = weakref.WeakSet()  # open streams, each with its `_archive_watch`
        self._handle, self._on_close = server.handle_stream, server.on_close
        self.max_header_size = getattr(server.conn_params, "max_header_size", None) or 65536
        server.handle_stream, server.on_close = self.handle_stream, self.on_close
        self._sweeper = None
        self._warned: dict[str, float] = {}
        if timeout:
            server.conn_params.header_timeout = timeout
            self._sweeper = PeriodicCallback(self.sweep, 1000 * min(5.0, max(0.25, timeout / 4)))
            self._sweeper.start()
        raise_open_files(log)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()

    # -- accepting: the cap, and the watch on each stream -----------------------------------------
    def handle_stream(self, stream, address) -> None:
        client = address[0] if isinstance(address, tuple) and address else ""
        if client and self.per_client and self.open[client] >= self.per_client:
            self._refuse(stream, client)
            return
        watch = _Watch(client, time.monotonic())
        self.open[client] += 1
        watch.counted = True
        stream._archive_watch = watch
        self.streams.add(stream)
        self._wrap(stream, watch)
        self._handle(stream, address)

    def on_close(self, server_conn) -> None:
        # The HTTP side is over: a closed stream, or a WebSocket that took the stream over.
        watch = getattr(getattr(server_conn, "stream", None), "_archive_watch", None)
        if watch is not None:
            watch.detached = True
        self._on_close(server_conn)

    def _refuse(self, stream, client: str) -> None:
        if time.monotonic() - self._warned.get(client, -3600.0) > 60:  # a line a minute, not one per connection
            self._warned[client] = time.monotonic()
            self.log.warning("jupyter_archive: %s holds %d connections, the most one client may; more are answered 429",
                             client, self.open[client])
        body = json.dumps({"error": {"code": "too_many_connections", "message": (
            f"this client has {self.open[client]} connections open to the server, the most one client may have; "
            "close some, or reuse them, and retry")}}).encode()
        head = (f"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
                f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        try:
            stream.write(head + body).add_done_callback(lambda _f: stream.close())
        except Exception:  # noqa: BLE001 - the client has gone already
            stream.close()

    def _wrap(self, stream, watch: _Watch) -> None:
        """Note each byte read or written, each body read pending, and each stream's close."""
        read_from_fd, write_to_fd, write, close = stream.read_from_fd, stream.write_to_fd, stream.write, stream.close

        def _read_from_fd(buf):
            n = read_from_fd(buf)
            if n:
                watch.read_at = time.monotonic()
            return n

        def _write_to_fd(data):
            n = write_to_fd(data)
            if n:
                watch.write_at = time.monotonic()
            return n

        def _write(data):
            if not stream.writing():  # a write after a quiet spell: its time starts now
                watch.write_at = time.monotonic()
            return write(data)

        def _body(future):
            # Tornado reads a body with read_bytes and a chunked one's size lines with read_until; the headers
            # with read_until_regex, which the header timeout covers. A WebSocket's reads come once detached.
            if not future.done():
                if not watch.body:
                    watch.read_at = time.monotonic()
                watch.body += 1
                future.add_done_callback(lambda _f: setattr(watch, "body", watch.body - 1))
            return future

        def _body_read(read):
            def reading(*args, **kwargs):
                if watch.detached:
                    return read(*args, **kwargs)
                watch.in_body = True  # a read that fails at once closes the stream within the call
                try:
                    return _body(read(*args, **kwargs))
                finally:
                    watch.in_body = False

            return reading

        def _close(exc_info=False):
            if isinstance(exc_info, UnsatisfiableReadError) and not watch.detached and not stream.closed():
                self._answer_unreadable(stream, in_body=watch.in_body or watch.body > 0)
            self.streams.discard(stream)
            if watch.counted:
                watch.counted = False
                self.open[watch.client] -= 1
                if self.open[watch.client] <= 0:
                    del self.open[watch.client]
            return close(exc_info)

        stream.read_from_fd, stream.write_to_fd, stream.write, stream.close = _read_from_fd, _write_to_fd, _write, _close
        stream.read_bytes, stream.read_until = _body_read(stream.read_bytes), _body_read(stream.read_until)

    def _answer_unreadable(self, stream, *, in_body: bool) -> None:
        """Answer a request tornado gives up reading (it closes the connection at once, unanswered): its line and
        headers past ``max_header_size`` (a 431), or a chunk size line past its bound (a 400)."""
        if in_body:
            status, code, message = "400 Bad Request", "bad_request", "a chunk of the request body is malformed"
        else:
            status, code = "431 Request Header Fields Too Large", "too_large"
            message = (f"the request's line and headers are longer than the {self.max_header_size:,} bytes the server reads; "
                       "send a long query in the request body (a POST) instead of the URL")
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            sock = stream.socket.dup()  # tornado closes its own at once; this one lingers until the answer is read
        except (OSError, AttributeError):
            return
        IOLoop.current().add_callback(_linger, sock, head.encode() + body)

    # -- the sweep: connections with no progress for `timeout` seconds are closed -----------------
    def sweep(self) -> None:
        now = time.monotonic()
        for stream in list(self.streams):
            watch = stream._archive_watch
            if watch.detached or stream.closed():
                continue
            if watch.body and now - watch.read_at > self.timeout:
                what = "its request body"
            elif stream.writing():
                # Tornado writes again only once the socket's buffer is half empty, which a slow reader takes
                # long to do: what the kernel sent meanwhile counts as progress too.
                unsent = _unsent(stream)
                if unsent is not None and 0 <= unsent < watch.unsent:
                    watch.write_at = now
                watch.unsent = -1 if unsent is None else unsent
                if now - watch.write_at <= self.timeout:
                    continue
                what = "reading its response"
            else:
                watch.unsent = -1
                continue
            self.log.info("jupyter_archive: closed a connection from %s: no progress in %s for %.0f s", watch.client or "a socket", what, self.timeout)
            stream.close()


async def _linger(sock: socket.socket, answer: bytes, most: float = 5.0) -> None:
    """Send ``answer`` on ``sock`` and close it once the client has stopped sending (at most ``most`` seconds): closed
    while the rest of a long request still arrives, the socket would be reset, and the client lose the answer."""
    loop = asyncio.get_running_loop()
    try:
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_sendall(sock, answer), most)
        sock.shutdown(socket.SHUT_WR)
        deadline = loop.time() + most
        while loop.time() < deadline and await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - loop.time()):
            pass  # the rest of the request, read and dropped
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        sock.close()


def _unsent(stream) -> int | None:
    """Bytes of the stream's socket the kernel has yet to send (None where it cannot tell)."""
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(stream.socket, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (ImportError, OSError, AttributeError, ValueError, TypeError):
        return None


def raise_open_files(log: logging.Logger, most: int = MOST_FILES) -> None:
    """Raise the soft limit of open files toward the hard one: each connection holds one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = most if hard == resource.RLIM_INFINITY else min(hard, most)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError) as exc:
        log.warning("jupyter_archive: could not raise the limit of open files: %s", exc)
