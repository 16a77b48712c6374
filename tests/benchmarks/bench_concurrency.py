"""Many users at once: the archive against Datasette on the same rows, in one interleaved run (issue 16).

Run on demand: ``python -m tests.benchmarks.bench_concurrency [--rows 100000] [--seconds 5] [--rounds 2]``
(needs the ``bench`` extra: ``pip install -e .[bench]`` brings Datasette).

What it measures, each beside its target:

- point lookups by random ``objid`` from 8 kept-alive connections: the native API (bound
  parameters), TAP sync (ADQL) and CasJobs, on the demo table and on the same rows uploaded
  into the caller's MyDB, and Datasette serving the same rows from SQLite (``objid`` the
  primary key) through its SQL JSON API; every target runs ``--seconds`` per round, the
  targets take turns round after round, and each ratio is against Datasette's run of the
  same round; one connection too, for the latency of a lone request;
- 50 connections mixing lookups, cones, job submits and job polls (``--mixed-seconds``), of one user or spread
  over ``--mixed-users``: back to back (the most the server does; latency is then connections / throughput,
  Little's law), and paced as 50 users each sending each of ``--paced-rates`` requests a second in turn
  (``--paced-seconds`` each; latency from when each request was due), to show the load the targets hold to;
- ``GET archive/api/contexts`` while another archive user (an ``X-Auth-Token``) runs four slow queries;
- the server's resident memory at rest and its peak (VmRSS, VmHWM).

Beside the archive and Datasette, the lookups run against a floor (``floor.py``): bare tornado
answering the native API's lookups from the same DuckDB file on a thread pool, none of the archive.
No tornado server, Jupyter's included, does such a request for less, so the floor's ratio to
Datasette bounds what the archive's can be on this machine.

Beside each lookup run, the CPU time (user + system) the serving process spent per request: on a
shared machine rates and latencies follow the load of others, while CPU per request (ours against
Datasette's) moves less.

The load comes from Python threads on this same machine, which have a ceiling of their own:
the run measures it against a trivial server in another process and prints it first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from tests.support import copy_demo

from .common import BIN, DATA_ROOT, Server, demo_data, free_port
from .load import Conn, Stats, closed_loop, generator_ceiling, ok_200

POINT = "SELECT * FROM {table} WHERE objid = {id}"
SLOW = "SELECT count(*) FROM PhotoObj a, (SELECT ra FROM PhotoObj LIMIT {n}) b WHERE a.dec < b.ra - 140.5"


def sqlite_copy(demo_db: Path, rows: int) -> Path:
    """The demo's PhotoObj in SQLite with ``objid`` as its primary key (made once)."""
    path = DATA_ROOT / f"datasette-{rows}" / "bench.db"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    src = duckdb.connect(str(demo_db), read_only=True)
    columns = src.sql("DESCRIBE PhotoObj").fetchall()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    out = sqlite3.connect(tmp)
    kinds = {"BIGINT": "INTEGER", "SMALLINT": "INTEGER", "INTEGER": "INTEGER", "DOUBLE": "REAL", "FLOAT": "REAL"}
    decl = ", ".join(f"{name} {kinds.get(t, 'TEXT')}{' PRIMARY KEY' if name == 'objid' else ''}" for name, t, *_ in columns)
    out.execute(f"CREATE TABLE PhotoObj ({decl})")
    cur = src.execute("SELECT * FROM PhotoObj")
    marks = ", ".join("?" * len(columns))
    while batch := cur.fetchmany(10_000):
        out.executemany(f"INSERT INTO PhotoObj VALUES ({marks})", batch)
    out.commit()
    out.close()
    src.close()
    tmp.rename(path)
    return path


class Datasette:
    """``datasette serve`` on loopback, on a SQLite file."""

    def __init__(self, db: Path):
        self.port = free_port()
        self.log = open(db.parent / "datasette.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(BIN / "datasette"), "serve", str(db), "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        conn = Conn(self.port)
        for _ in range(300):
            try:
                if conn.get("/-/versions.json")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        conn.close()

    def rss_mb(self) -> float:
        return _status_mb(self.proc.pid, "VmRSS")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


class Floor:
    """``floor.py`` (bare tornado and DuckDB, none of the archive) on loopback, on the demo's DuckDB file."""

    def __init__(self, db: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.floor", str(self.port), str(db)],
                                     stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
        self.proc.stdout.readline()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far: per request, a figure a busy shared machine blurs less than rates."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lookups(ids: list[int]) -> dict:
    """name -> (port key, request) of the point-lookup targets."""

    def one(rng):
        return ids[rng.randrange(len(ids))]

    def native(context):
        sql = POINT.format(table="PhotoObj" if context == "DEMO" else "photo", id="$id")

        def go(conn, rng):
            status, body = conn.post_json("/archive/api/query", json.dumps({"query": sql, "context": context, "params": {"id": one(rng)}}))
            return True if status == 200 and json.loads(body)["rows"] == 1 else f"{status} {body[:200]!r}"

        return go

    def tap(table):
        def go(conn, rng):
            status, body = conn.post_form("/archive/tap/sync", {
                "REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "QUERY": POINT.format(table=table, id=one(rng))})
            return True if status == 200 and body.count(b"\n") == 2 else f"{status} {body[:200]!r}"

        return go

    def casjobs(context, table):
        def go(conn, rng):
            return ok_200(conn.post_json(f"/archive/casjobs/contexts/{context}/query", json.dumps({"Query": POINT.format(table=table, id=one(rng))})))

        return go

    def datasette(conn, rng):
        status, body = conn.get("/bench.json", sql=POINT.format(table="PhotoObj", id=":id"), id=one(rng), _shape="array")
        return True if status == 200 and body.startswith(b"[{") else f"{status} {body[:200]!r}"

    return {
        "datasette": ("datasette", datasette),
        "floor": ("floor", native("DEMO")),
        "native demo": ("archive", native("DEMO")),
        "native mydb": ("archive", native("MyDB")),
        "tap demo": ("archive", tap("demo.PhotoObj")),
        "tap mydb": ("archive", tap("mydb.photo")),
        "casjobs demo": ("archive", casjobs("DEMO", "PhotoObj")),
        "casjobs mydb": ("archive", casjobs("MyDB", "photo")),
    }


def mixed(ids: list[int], cones: list[tuple[float, float]]) -> dict:
    """kind -> (weight, request) of the mixed load: lookups, cones, job submits and polls."""
    jobs: dict[int, list[str]] = {}  # connection -> its jobs

    def lookup(conn, rng):
        body = {"query": POINT.format(table="PhotoObj", id="$id"), "context": "DEMO", "params": {"id": ids[rng.randrange(len(ids))]}}
        return ok_200(conn.post_json("/archive/api/query", json.dumps(body)))

    def cone(conn, rng):
        ra, dec = cones[rng.randrange(len(cones))]
        q = f"SELECT objid, ra, dec, r FROM demo.PhotoObj WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.05)) = 1"
        return ok_200(conn.post_form("/archive/tap/sync", {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "QUERY": q}))

    def submit(conn, rng):
        body = {"query": f"SELECT TOP 10 objid, ra, dec FROM PhotoObj WHERE objid >= {ids[rng.randrange(len(ids))]}", "context": "DEMO"}
        status, text = conn.post_json("/archive/api/jobs", json.dumps(body))
        if status != 201:
            return f"{status} {text[:200]!r}"
        jobs.setdefault(id(conn), []).append(json.loads(text)["id"])
        return True

    def poll(conn, rng):
        mine = jobs.get(id(conn))
        if not mine:
            return submit(conn, rng)
        return ok_200(conn.get(f"/archive/api/jobs/{mine[rng.randrange(len(mine))]}"))

    return {"lookup": (5, lookup), "cone": (2, cone), "submit": (1, submit), "poll": (2, poll)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=5, help="seconds of each lookup target per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--mixed-connections", type=int, default=50)
    ap.add_argument("--mixed-seconds", type=float, default=60)
    ap.add_argument("--mixed-users", type=int, default=1, help="archive users the mixed connections belong to, in turn")
    ap.add_argument("--paced-rates", default="2,6,12", help="comma-separated requests a second of each paced mixed connection, one run each")
    ap.add_argument("--paced-seconds", type=float, default=20)
    ap.add_argument("--meta-seconds", type=float, default=20)
    ap.add_argument("--slow-rows", type=int, default=3000, help="size of the slow queries' cross product (rows x this)")
    ap.add_argument("--only", default="", help="comma-separated lookup targets to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: lone, ceiling, meta, mixed")
    ap.add_argument("--server-arg", action="append", default=[], help="an extra argument of `jupyter archive` (repeatable)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    demo = demo_data(args.rows)
    demo_db = demo / "demo" / "demo.duckdb"
    con = duckdb.connect(str(demo_db), read_only=True)
    ids = [r[0] for r in con.sql("SELECT objid FROM PhotoObj").fetchall()]
    cones = con.sql("SELECT ra, dec FROM PhotoObj USING SAMPLE 1000 ROWS (reservoir, 7)").fetchall()
    root = Path(tempfile.mkdtemp(prefix="run-", dir=DATA_ROOT))
    parquet = root / "photo.parquet"
    con.sql(f"COPY PhotoObj TO '{parquet}' (FORMAT parquet)")
    con.close()
    db = sqlite_copy(demo_db, args.rows)
    data = root / "data"
    copy_demo(demo / "demo", data / "demo")
    def token(user: str) -> str:
        return subprocess.run([str(BIN / "jupyter"), "archive", "token", "create", user, f"--data-dir={data}"],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]

    other = token("other")  # the "other user" of the slow queries: an archive user with a token of their own
    mixers = [{"X-Auth-Token": token(f"mixer{i}")} for i in range(args.mixed_users)] if args.mixed_users > 1 else None

    server = Server(data, f"--ArchiveApp.demo_rows={args.rows}", *args.server_arg)
    ds = Datasette(db)
    floor = Floor(demo_db)
    owner = {"Authorization": f"token {server.token}"}
    ports = {"archive": server.port, "datasette": ds.port, "floor": floor.port}
    pids = {"archive": server.proc.pid, "datasette": ds.proc.pid, "floor": floor.proc.pid}
    try:
        time.sleep(2)
        rest = server.rss_mb()
        print(f"# server RSS at rest {rest:.1f} MB (target <= 150); Datasette {ds.rss_mb():.1f} MB")
        with parquet.open("rb") as fh:
            r = server.session.put(server.url + "archive/api/contexts/MyDB/tables/photo", params={"format": "parquet"}, data=fh)
        assert r.status_code in (200, 201), r.text
        print(f"# {r.json()['rowsWritten']:,} rows uploaded into MyDB.photo")

        if "ceiling" not in skip:
            print("\n## the load generator's ceiling (threads against a trivial server in another process)")
            for n in (1, args.connections, args.mixed_connections):
                print(f"{n:3d} connections  {generator_ceiling(n, min(args.seconds, 5)).line()}")

        targets = lookups(ids)
        names = [n for n in targets if not args.only or n in args.only.split(",") or n in ("datasette", "floor")]
        runs: dict[tuple[str, int], list[Stats]] = {}
        for n in names:  # warm every path (compile caches, engines, connections)
            port, fn = targets[n]
            closed_loop(ports[port], owner, {n: (1, fn)}, 2, 0.5)
        plan = [(c, min(args.seconds, 3)) for c in ([1] if "lone" not in skip else [])] + [(args.connections, args.seconds)]
        for rnd in range(args.rounds):
            for conns, seconds in plan:
                print(f"\n## round {rnd + 1}: point lookups by random objid, {conns} connection(s), {seconds:g} s each")
                order = names[rnd % len(names):] + names[: rnd % len(names)]  # a different target starts each round
                for n in order:
                    port, fn = targets[n]
                    cpu = _cpu_seconds(pids[port])
                    s = closed_loop(ports[port], owner, {n: (1, fn)}, conns, seconds, seed=rnd)
                    s.cpu_ms = (_cpu_seconds(pids[port]) - cpu) * 1000 / max(1, s.count)
                    runs.setdefault((n, conns), []).append(s)
                    print(f"{n:14s} {s.line()}  server CPU/req {s.cpu_ms:5.2f} ms" + (f"   first error: {s.first_error}" if s.first_error else ""))
                ref = runs[("datasette", conns)][-1]
                for n in names:
                    if n != "datasette":
                        s = runs[(n, conns)][-1]
                        print(f"   {n:14s} req/s {s.rate / ref.rate:5.2f}x Datasette's   p50 {s.pct(0.5) / ref.pct(0.5):5.2f}x   "
                              f"p99 {s.pct(0.99) / ref.pct(0.99):5.2f}x")

        if "meta" not in skip:
            print(f"\n## GET archive/api/contexts (one connection) while user 'other' runs 4 slow queries ({args.meta_seconds:g} s)")
            meta = {"contexts": (1, lambda c, r: ok_200(c.get("/archive/api/contexts")))}
            print(f"alone          {closed_loop(server.port, owner, meta, 1, 3).line()}")
            slow = json.dumps({"query": SLOW.format(n=args.slow_rows), "context": "DEMO"})
            results: list[Stats] = []
            t = threading.Thread(target=lambda: results.append(closed_loop(
                server.port, {"X-Auth-Token": other}, {"slow": (1, lambda c, r: ok_200(c.post_json("/archive/api/query", slow)))},
                4, args.meta_seconds)))
            t.start()
            time.sleep(1)
            m = closed_loop(server.port, owner, meta, 1, args.meta_seconds - 2)
            t.join()
            print(f"during         {m.line()}   (target p99 <= 50 ms)")
            print(f"slow queries   {results[0].line()}" + (f"   first error: {results[0].first_error}" if results[0].first_error else ""))

        if "mixed" not in skip:
            who = mixers or owner
            users = f"{args.mixed_users} users" if mixers else "one user"
            print(f"\n## {args.mixed_connections} connections of {users} mixing lookups, cones, job submits and polls for {args.mixed_seconds:g} s")
            cpu = _cpu_seconds(server.proc.pid)
            m = closed_loop(server.port, who, mixed(ids, cones), args.mixed_connections, args.mixed_seconds)
            cpu_ms = (_cpu_seconds(server.proc.pid) - cpu) * 1000 / max(1, m.count)
            _show_mixed(m, "(target: 0 errors, p99 <= 50 ms)")
            print(f"   back to back, latency = connections / throughput: p99 <= 50 ms would take >= "
                  f"{args.mixed_connections / 0.05:.0f} req/s of this mix at a p50 near p99; server CPU/req {cpu_ms:.2f} ms, "
                  f"so {args.mixed_connections / 0.05 * cpu_ms / 1000:.2f} cores at that rate ({os.cpu_count()} here)")
            for rate in (float(r) for r in args.paced_rates.split(",") if r):
                offered = args.mixed_connections * rate
                print(f"\n## the same mix paced: {args.mixed_connections} connections at {rate:g} req/s each ({offered:g} req/s offered), "
                      f"{args.paced_seconds:g} s")
                m = closed_loop(server.port, who, mixed(ids, cones), args.mixed_connections, args.paced_seconds, seed=7, rate=rate)
                _show_mixed(m, "(0 errors, p99 <= 50 ms?)")

        print(f"\n## memory: server RSS at rest {rest:.1f} MB (target <= 150), now {server.rss_mb():.1f} MB, "
              f"peak (VmHWM) {server.peak_rss_mb():.1f} MB; Datasette now {ds.rss_mb():.1f} MB")
        print("\n## targets (median over rounds)")
        _summary(runs, names, args.connections)
    finally:
        ds.stop()
        floor.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _show_mixed(m: Stats, target: str) -> None:
    """A mixed run's lines: each kind's, then all of them beside ``target``."""
    for kind in ("lookup", "cone", "submit", "poll"):
        print(f"{kind:14s} {m.line(kind)}")
    print(f"{'all':14s} {m.line()}   {target}" + (f"   first error: {m.first_error}" if m.first_error else ""))


def _summary(runs, names, conns):
    def med(n, f):
        return statistics.median(f(s) for s in runs[(n, conns)])

    ds_rate, floor_rate = med("datasette", lambda s: s.rate), med("floor", lambda s: s.rate)
    for n in names:
        if n == "datasette":
            continue
        rate, p99 = med(n, lambda s: s.rate), med(n, lambda s: s.pct(0.99))
        ok = rate >= 1.2 * ds_rate and p99 <= 15
        cpu = med(n, lambda s: s.cpu_ms) / med("datasette", lambda s: s.cpu_ms)
        print(f"{n:14s} {rate / ds_rate:5.2f}x Datasette's req/s, p99 {p99:6.2f} ms   (target >= 1.20x, p99 <= 15 ms) "
              f"{'holds' if ok else 'MISSED'}   CPU/req {cpu:5.2f}x Datasette's"
              + ("   (no archive: the least a tornado server spends)" if n == "floor" else f"   req/s {rate / floor_rate:4.2f}x the floor's"))
    for face in ("native", "tap", "casjobs"):
        if f"{face} mydb" in names and f"{face} demo" in names:
            ratio = med(f"{face} mydb", lambda s: s.pct(0.5)) / med(f"{face} demo", lambda s: s.pct(0.5))
            print(f"{face:7s} MyDB p50 / demo p50 {ratio:5.2f}   (target <= 1.20) {'holds' if ratio <= 1.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
