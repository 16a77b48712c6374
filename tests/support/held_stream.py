"""A streamed response that a test reads only when it wants: while the test holds it, the
server's handler waits on the socket, and so does the engine lease behind the stream."""

from __future__ import annotations

import asyncio


class HeldStream:
    """One GET over a raw connection: ``open`` reads the head and a first piece, ``finish`` the rest."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, first: bytes):
        self._reader = reader
        self._writer = writer
        self.status = int(head.split()[1])
        self.head = head
        self._data = first

    @classmethod
    async def open(cls, port: int, base_url: str, path: str, headers: dict, *, first: int = 65536) -> HeldStream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {base_url.rstrip('/')}/{path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        data = b""
        while b"\r\n\r\n" not in data:
            more = await reader.read(65536)
            if not more:
                break
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        while len(rest) < first:
            more = await reader.read(first - len(rest))
            if not more:
                break
            rest += more
        return cls(reader, writer, head, rest)

    async def finish(self) -> bytes:
        """Read to the end; the body, de-chunked (a stream cut short ends where it was cut)."""
        self._data += await self._reader.read()
        self._writer.close()
        if b"transfer-encoding: chunked" not in self.head.lower():
            return self._data
        out, rest = [], self._data
        while rest:
            size, sep, rest = rest.partition(b"\r\n")
            if not sep or not size.strip():
                break
            n = int(size, 16)
            if n == 0:
                break
            out.append(rest[:n])
            rest = rest[n + 2 :]
        return b"".join(out)
