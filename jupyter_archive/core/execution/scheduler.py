"""The Dask cluster of ``ArchiveApp.dask_scheduler``: the setting checked, and ``Cluster``, the holder of its
``distributed.Client``. Nothing of dask is imported until a query first needs the cluster; ``local`` then
starts a LocalCluster sized to the machine (worker processes on loopback, one thread each, no dashboard),
an address (``tcp://host:8786``) connects to a running scheduler; ``close`` ends both with the archive.
Connecting happens on a background thread, so a request never waits on an unreachable cluster."""

from __future__ import annotations

import os
import re
import threading
import time

from ..errors import ArchiveError

LOCAL = re.compile(r"local(?::(\d+))?")
ADDRESS = re.compile(r"(tcp|tls)://[^\s/:]+:\d+")
CONNECT_TIMEOUT = 10.0  # seconds dask may take to connect to a scheduler that answers the probe
PROBE_TIMEOUT = 2.0  # seconds a TCP connect to the scheduler's address may take
RETRY = 30.0  # seconds a failed connect is remembered before the next try
CONNECT_WAIT = 2.0  # seconds a compile waits for the cluster's first connect (a job waits until it ends)


def check_scheduler(value: str) -> str:
    """The ``dask_scheduler`` setting, checked: empty, ``local``, ``local:N`` or ``tcp://host:port``."""
    value = (value or "").strip()
    if value and not (LOCAL.fullmatch(value) or ADDRESS.fullmatch(value)):
        raise ValueError(f"dask_scheduler must be empty, 'local', 'local:N' or a scheduler address like 'tcp://host:8786', not {value!r}")
    if (m := LOCAL.fullmatch(value)) and m.group(1) is not None and int(m.group(1)) < 1:
        raise ValueError("dask_scheduler 'local:N' needs N >= 1 workers")
    return value


class Cluster:
    """The client of the configured Dask cluster, started on first use and closed with the archive.

    Connecting (or starting a LocalCluster) happens on a background thread, so no request waits on it
    longer than it asks: a compile waits ``CONNECT_WAIT`` at most, a job as long as connecting takes. An
    address is first probed with a plain TCP connect (nobody listening fails at once, not after dask's 10 s),
    and a failed connect is remembered for ``RETRY`` seconds: callers meanwhile fail at once with its reason,
    and the first call after that tries again."""

    def __init__(self, scheduler: str = "", *, memory_limit: str | None = None, min_rows: int = 10_000):
        self.scheduler = check_scheduler(scheduler)
        self.memory_limit = memory_limit  # DuckDB's limit in each task
        self.min_rows = min_rows  # a cross-match job of fewer positions runs in-process (ArchiveConfig.cluster_min_rows)
        self._lock = threading.Lock()
        self._client = None
        self._local = None
        self._connecting: threading.Event | None = None  # set when the connect in progress ends
        self._started = 0.0  # when it began
        self._failure: tuple[float, ArchiveError] | None = None  # when the last connect failed, and why
        self._closed = False

    @property
    def enabled(self) -> bool:
        return bool(self.scheduler)

    def client(self, wait: float | None = None):
        """The ``distributed.Client``, connected (or its LocalCluster started) on the first call; ``wait``:
        the seconds to wait for a connect in progress (None: until it ends). Fails with ``unavailable``
        (503) when the cluster cannot be reached, was not reached within ``RETRY`` s, or not yet."""
        if not self.enabled:
            raise ArchiveError("unavailable", "no Dask cluster is configured (ArchiveApp.dask_scheduler is empty)", 503)
        with self._lock:
            if self._client is not None:
                return self._client
            if self._closed and self._connecting is None:
                raise ArchiveError("unavailable", "the archive is closing", 503)
            failure = self._failure
            if self._connecting is None and (failure is None or time.monotonic() - failure[0] >= RETRY):
                self._connecting, self._started = threading.Event(), time.monotonic()
                threading.Thread(target=self._connect_in_background, args=(self._connecting,), name="archive-dask-connect", daemon=True).start()
            connecting = self._connecting
        if failure is not None and wait is not None:
            raise failure[1]  # a request does not wait for the retry: the last reason stands until it succeeds
        if connecting is not None:
            # a request waits ``wait`` from the connect's start, not each time: later ones do not wait again
            connecting.wait(None if wait is None else max(0.0, self._started + wait - time.monotonic()))
        with self._lock:
            if self._client is not None:
                return self._client
            if self._failure is not None:
                raise self._failure[1]
        raise ArchiveError("unavailable", f"the Dask cluster {self.scheduler} is still being connected; try again in a few seconds", 503)

    def _connect_in_background(self, done: threading.Event) -> None:
        try:
            client, failure = self._connect(), None
        except ArchiveError as exc:
            client, failure = None, (time.monotonic(), exc)
        with self._lock:
            self._connecting = None
            if self._closed and client is not None:
                failure = (time.monotonic(), ArchiveError("unavailable", "the archive is closing", 503))
            elif client is not None:
                self._client, client = client, None
            self._failure = failure
        done.set()
        if client is not None:  # connected after close: give it back
            client.close()
            self._close_local()

    def _connect(self):
        from distributed import Client, LocalCluster

        try:
            if m := LOCAL.fullmatch(self.scheduler):
                # Worker processes are spawned: a script that starts the archive needs an
                # ``if __name__ == "__main__":`` guard (jupyter's own entry points have one).
                self._local = LocalCluster(
                    n_workers=int(m.group(1) or os.cpu_count() or 1), threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None,
                )  # fmt: skip
                return Client(self._local)
            _probe(self.scheduler)
            return Client(self.scheduler, timeout=f"{CONNECT_TIMEOUT:g}s")
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ...: the cluster cannot be had
            self._close_local()
            raise ArchiveError(
                "unavailable", f"the Dask cluster {self.scheduler} cannot be reached: {exc} (tried again after {RETRY:g} s)", 503
            ) from None

    def _close_local(self) -> None:
        local, self._local = self._local, None
        if local is not None:
            local.close()

    def threads(self, wait: float | None = None) -> int:
        """Worker threads in the cluster now (how many tasks run at once); ``wait`` as for ``client``."""
        return sum(self.client(wait).nthreads().values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._close_local()


def _probe(address: str) -> None:
    """A plain TCP connect to the scheduler's address: refused or unroutable fails within ``PROBE_TIMEOUT``."""
    import socket

    host, port = address.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT):
        pass
