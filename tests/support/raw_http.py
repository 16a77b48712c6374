"""Requests sent byte for byte: what HTTP libraries will not send (bytes that are not UTF-8 in
a URL, a Content-Length no body follows), and the replies read as they come."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Req:
    """One request. ``path`` (below the base URL) and ``query`` are as they go on the wire,
    percent-escapes included; ``declared`` is a Content-Length that no body follows."""

    method: str
    path: str
    query: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    declared: int | None = None
    auth: str = "admin"  # which of the caller's credentials go with it

    def target(self, base: str) -> bytes:
        return (base + self.path).encode("latin-1") + (b"?" + self.query if self.query else b"")

    def show(self) -> str:
        body = "" if self.body is None else f" body={self.body[:200]!r}{'...' if len(self.body) > 200 else ''}"
        extra = f" Content-Length={self.declared}" if self.declared else ""
        return f"{self.method} {self.path}?{self.query[:300]!r} as {self.auth} headers={self.headers}{extra}{body}"


@dataclass
class Reply:
    status: int | None  # None: no answer
    headers: dict[str, str]  # names lower-case
    body: bytes


def dechunk(payload: bytes) -> bytes:
    """A body sent with ``Transfer-Encoding: chunked``, put together."""
    out, rest = b"", payload
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2 :]
    return out


async def send(port: int, base: str, req: Req, credentials: dict[str, str] | None = None, timeout: float = 60) -> Reply:
    """Send ``req`` (with ``credentials`` as headers) to 127.0.0.1:``port`` and read the reply."""
    head = [f"{req.method} ".encode() + req.target(base) + b" HTTP/1.1", f"Host: 127.0.0.1:{port}".encode(), b"Connection: close"]
    headers = {**req.headers, **(credentials or {})}
    if req.declared is not None:
        headers["Content-Length"] = str(req.declared)
    elif req.body is not None:
        headers["Content-Length"] = str(len(req.body))
    # A large body waits for the server's 100 Continue: a server that refuses the request from
    # its headers answers at once and closes, and a body still arriving would reset the line.
    expect = req.body is not None and len(req.body) > 65536
    if expect:
        headers["Expect"] = "100-continue"
    head += [f"{k}: {v}".encode("latin-1") for k, v in headers.items()]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if expect:
            writer.write(b"\r\n".join(head) + b"\r\n\r\n")
            await writer.drain()
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            if first.split(b" ", 2)[1] == b"100":
                writer.write(req.body)
                await writer.drain()
                first = b""
            data = first + await asyncio.wait_for(reader.read(), timeout)
        else:
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + (req.body or b""))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
    except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
        return Reply(None, {}, f"no answer: {type(exc).__name__}".encode())
    finally:
        writer.close()
    if not data:
        return Reply(None, {}, b"the connection closed without an answer")
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        payload = dechunk(payload)
    return Reply(int(lines[0].split()[1]), hdrs, payload)
