"""Clients that hold connections without progress, or too many of them, do not take the server from others.

A real `jupyter archive` process (the guard wraps the HTTP server Jupyter starts, which the in-process
test server does not have), with a timeout of 1 s and at most 20 connections per client.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
import uuid

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.servers import TOKEN, LiveServer

TIMEOUT = 1.0
PER_CLIENT = 20
CLOSED_WITHIN = 20.0  # seconds: generous, the point is that it is closed at all (tornado's default holds it an hour)


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_dir):
    s = LiveServer(tmp_path_factory.mktemp("guarded"), demo_dir,
                   extra=(f"--ArchiveApp.client_timeout={TIMEOUT}", f"--ArchiveApp.connections_per_client={PER_CLIENT}"))
    yield s
    s.stop()


def _form(query: str) -> bytes:
    return urllib.parse.urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "QUERY": query}).encode()


def _request(port: int, body: bytes, chunked: bool) -> bytes:
    head = (f"POST /archive/tap/sync HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: token {TOKEN}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n")
    if not chunked:
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    half = len(body) // 2
    return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:])) + b"0\r\n\r\n"


def _connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connecting: it sets the window
    s.connect(("127.0.0.1", port))
    return s


def _closed_after(s: socket.socket, limit: float) -> float | None:
    """Seconds until the server closed ``s`` (reading and dropping what it sent), None if it did not within ``limit``."""
    start = time.monotonic()
    s.settimeout(0.25)
    while time.monotonic() - start < limit:
        try:
            if not s.recv(1 << 20):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def _answers(server) -> int:
    return requests.get(server.url + "archive/api/contexts", headers={"Authorization": f"token {TOKEN}"}, timeout=30).status_code


# Any request cut anywhere before its end: in the request line, the headers, a fixed-length body,
# a chunk's size line or its data.
stalls = st.tuples(st.booleans(), st.floats(0.0, 0.999))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(stalls, min_size=6, max_size=6))
@example(cuts=[(True, 0.999), (False, 0.999), (True, 0.0), (True, 0.5), (True, 0.9), (False, 0.3)])  # the ends found once
def test_a_request_that_stops_coming_is_closed_and_others_are_served(server, cuts):
    body = _form("SELECT objid FROM demo.PhotoObj WHERE objid = 1")
    held = []
    for chunked, where in cuts:
        whole = _request(server.port, body, chunked)
        s = _connect(server.port)
        s.sendall(whole[: int(where * len(whole))])
        held.append(s)
    assert _answers(server) == 200  # while they are held
    for s, cut in zip(held, cuts):
        assert _closed_after(s, CLOSED_WITHIN) is not None, f"a request cut at {cut} was not closed"
        s.close()
    assert _answers(server) == 200


def test_a_client_that_does_not_read_its_response_is_closed(server):
    # 20 MB of CSV, read through a 4 KB window: it cannot all sit in the sockets' buffers
    whole = _request(server.port, _form("SELECT repeat('x', 1000) AS s FROM range(20000)"), chunked=False)
    s = _connect(server.port, rcvbuf=4096)
    s.sendall(whole)
    time.sleep(3 * TIMEOUT)
    got, start = 0, time.monotonic()
    s.settimeout(5)
    while time.monotonic() - start < CLOSED_WITHIN:
        piece = s.recv(1 << 20)
        if not piece:
            break
        got += len(piece)
    else:
        pytest.fail("the connection was still open")
    s.close()
    assert 0 < got < 20_000_000  # the head and what the buffers held; then the server closed it
    assert _answers(server) == 200


def test_a_slow_reader_that_keeps_reading_gets_the_whole_response(server):
    rows = 8000
    whole = _request(server.port, _form(f"SELECT repeat('x', 1000) AS s FROM range({rows})"), chunked=False)
    s = _connect(server.port, rcvbuf=4096)
    s.sendall(whole)
    data = b""
    start = time.monotonic()
    while time.monotonic() - start < 4 * TIMEOUT:  # a few KB every 0.2 s for four timeouts: slow, but moving
        data += s.recv(4096)
        time.sleep(0.2)
    s.settimeout(30)
    while not data.endswith(b"0\r\n\r\n"):  # then at full speed to the last chunk
        piece = s.recv(1 << 20)
        assert piece, f"closed after {len(data)} bytes"
        data += piece
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and data.count(b"x" * 1000) == rows


def test_a_query_longer_than_the_timeout_is_answered_on_its_connection(server):
    session = requests.Session()
    auth = {"Authorization": f"token {TOKEN}"}
    for n in (400_000_000, 1_600_000_000):  # a query that outlasts the timeout several times on this machine
        start = time.monotonic()
        r = session.post(server.url + "archive/api/query", json={"query": f"SELECT sum(hash(range) % 7) FROM range({n})", "context": "DEMO"},
                         headers=auth, timeout=120)
        took = time.monotonic() - start
        assert r.status_code == 200, r.text
        if took > 3 * TIMEOUT:
            break
    assert took > 3 * TIMEOUT, f"the longest query took {took:.1f} s: not long enough to show anything"
    time.sleep(3 * TIMEOUT)  # an idle keep-alive connection is closed; the client's next request opens another
    assert session.get(server.url + "archive/api/contexts", headers=auth, timeout=30).status_code == 200


def test_one_client_holds_at_most_its_share_of_connections(server):
    held = [_connect(server.port) for _ in range(PER_CLIENT)]
    time.sleep(0.2)
    extra = _connect(server.port)
    extra.settimeout(10)
    head, _, body = extra.recv(4096).partition(b"\r\n\r\n")
    extra.close()
    assert head.startswith(b"HTTP/1.1 429") and b"Retry-After: " in head
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    for s in held[:3]:
        s.close()
    time.sleep(0.3)
    again = [_connect(server.port) for _ in range(3)]  # the closed ones' places are free again
    for s in again:
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(100)  # accepted and waiting for a request, not answered 429
    for s in held[3:] + again:
        s.close()
    # and the held ones, sending nothing, are closed by the timeout: the client gets its places back
    held = [_connect(server.port) for _ in range(PER_CLIENT)]
    assert all(_closed_after(s, CLOSED_WITHIN) is not None for s in held)
    assert _answers(server) == 200


def test_a_kernels_websocket_is_not_closed_when_idle(server):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    auth = {"Authorization": f"token {TOKEN}"}
    kernel = requests.post(server.url + "api/kernels", json={"name": "python3"}, headers=auth, timeout=60).json()["id"]

    async def talk():
        ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{server.port}/api/kernels/{kernel}/channels", headers=auth))

        async def info():
            mid = uuid.uuid4().hex
            ws.write_message(json.dumps({"header": {"msg_id": mid, "username": "t", "session": uuid.uuid4().hex,
                                                    "msg_type": "kernel_info_request", "version": "5.3"},
                                         "parent_header": {}, "metadata": {}, "content": {}, "channel": "shell"}))
            while True:
                msg = await asyncio.wait_for(ws.read_message(), 60)
                assert msg is not None, "the websocket was closed"
                m = json.loads(msg)
                if m.get("parent_header", {}).get("msg_id") == mid and m["msg_type"] == "kernel_info_reply":
                    return m["content"]["status"]

        first = await info()
        await asyncio.sleep(5 * TIMEOUT)
        return first, await info()

    try:
        assert asyncio.run(talk()) == ("ok", "ok")
    finally:
        requests.delete(server.url + f"api/kernels/{kernel}", headers=auth, timeout=60)


def _whole_reply(s: socket.socket, limit: float = 20.0) -> bytes:
    got, start = b"", time.monotonic()
    s.settimeout(1.0)
    while time.monotonic() - start < limit:
        try:
            piece = s.recv(1 << 16)
        except TimeoutError:
            continue
        if not piece:
            return got
        got += piece
    return got


# Where a request outgrows what the server reads of its head (64 KB): its URL, one header, many headers.
oversized = st.tuples(st.sampled_from(["url", "header", "headers"]), st.sampled_from(["GET", "POST"]), st.integers(70_000, 400_000))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(oversized)
@example(("url", "GET", 120_000))  # a long Quasar query in its URL was dropped unanswered
def test_a_request_head_too_long_to_read_is_answered_431(server, case):
    where, method, size = case
    path, headers = "/archive/quasar/query/fs/demo?q=SELECT%201", [f"Host: 127.0.0.1:{server.port}", f"Authorization: token {TOKEN}"]
    if where == "url":
        path += "%20" * (size // 3)
    elif where == "header":
        headers.append("X-Long: " + "x" * size)
    else:
        headers += [f"X-Many-{i}: " + "y" * 1000 for i in range(size // 1000)]
    head = f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\nContent-Length: 0\r\n\r\n"
    s = _connect(server.port)
    s.sendall(head.encode())
    reply = _whole_reply(s)
    s.close()
    status, _, rest = reply.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 431 "), reply[:300]
    error = json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "too_large" and "65,536 bytes" in error["message"], error
    assert _answers(server) == 200


def test_a_chunk_size_line_too_long_to_read_is_answered_400(server):
    head = (f"POST /archive/tap/sync HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: token {TOKEN}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
    s = _connect(server.port)
    s.sendall(head.encode() + b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n")
    reply = _whole_reply(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 400 ") and b'"bad_request"' in reply, reply[:300]
    assert _answers(server) == 200
