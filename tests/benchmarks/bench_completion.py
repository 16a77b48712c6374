"""Completion of %%archive cells through a real kernel (issue 18, point 2: under 50 ms from cached metadata).

Run on demand: ``python -m tests.benchmarks.bench_completion [--rows 20000] [--requests 200]``.
Times kernel ``complete_request`` round trips (what JupyterLab waits for): the first one of a
context (its tables fetched from the server), then warm ones (the kernel's cached copy), and
one after the copy went stale (revalidated with the server's ETag, 304). Prints p50/p95 in ms.
"""

from __future__ import annotations

import argparse
import os
import time

from jupyter_client.manager import start_new_kernel

from .common import Server, demo_data, percentiles, time_calls

CELLS = [
    "%%archive --lang adql\nSELECT p.ra, p.dec, s.z FROM demo.PhotoObj AS p JOIN demo.SpecObj AS s ON s.objid = p.objid\n"
    "WHERE 1 = CONTAINS(POINT(p.ra, p.dec), CIRCLE(180, 0, 1)) AND p.",
    "%%archive\nSELECT TOP 10 objid, r FROM PhotoObj WHERE r < 18 AND d",
    "%%archive --lang adql\nSELECT * FROM demo.",
]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args(argv)
    server = Server(demo_data(args.rows), f"--ArchiveApp.demo_rows={args.rows}")
    env = {**os.environ, "JUPYTER_ARCHIVE_URL": server.url, "JUPYTER_ARCHIVE_TOKEN": server.token}
    manager, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        kc.execute_interactive("%load_ext jupyter_archive", timeout=60)

        def one(i: int) -> None:
            cell = CELLS[i % len(CELLS)]
            assert kc.complete(cell, len(cell), reply=True, timeout=60)["content"]["matches"]

        t = time.perf_counter()
        one(0)
        print(f"\n## completion through the kernel ({args.requests} requests)")
        print(f"first (metadata fetched): {(time.perf_counter() - t) * 1000:.1f} ms")
        p50, p95 = percentiles(time_calls(one, args.requests))
        print(f"warm (cached metadata):   p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        # Age the kept copies past max_age: the next completion revalidates (If-None-Match -> 304).
        kc.execute_interactive("c = get_ipython().find_magic('archive').__self__.client\n"
                               "c._described = {k: (-1e9, *v[1:]) for k, v in c._described.items()}", timeout=60)
        t = time.perf_counter()
        one(0)
        print(f"stale (revalidated, 304): {(time.perf_counter() - t) * 1000:.1f} ms")
    finally:
        kc.stop_channels()
        manager.shutdown_kernel(now=True)
        server.stop()


if __name__ == "__main__":
    main()
