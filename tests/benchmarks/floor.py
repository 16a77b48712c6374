"""The floor of a point lookup served from Python: bare tornado and DuckDB, none of the archive.

``python -m tests.benchmarks.floor PORT DB`` serves ``POST /archive/api/query`` as the native API's
lookups send it (``{"query": "... WHERE objid = $id", "params": {"id": N}}``), reading the rows from
the DuckDB file ``DB`` on a pool of four threads (one cursor each; DuckDB leaves Python's lock while
it runs) and answering ``{"columns", "data", "rows"}`` in JSON. No authentication, parsing, limits,
admission, history or formats: what tornado and DuckDB cost by themselves on this machine, the
least any tornado server (Jupyter's included) can spend on such a request (``bench_concurrency``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import tornado.ioloop
import tornado.web


def main(port: int, db: str) -> None:
    con = duckdb.connect(db, read_only=True)
    pool = ThreadPoolExecutor(4)
    local = threading.local()

    def lookup(sql: str, values: list) -> bytes:
        cursor = getattr(local, "cursor", None)
        if cursor is None:
            cursor = local.cursor = con.cursor()
        cursor.execute(sql, values)
        data = cursor.fetchall()
        return json.dumps({"columns": [d[0] for d in cursor.description], "data": data, "rows": len(data)}).encode()

    class Query(tornado.web.RequestHandler):
        async def post(self):
            body = json.loads(self.request.body)
            sql, values = body["query"], []
            for name, value in body.get("params", {}).items():
                sql, values = sql.replace(f"${name}", "?"), [*values, value]
            self.set_header("Content-Type", "application/json")
            self.finish(await asyncio.get_running_loop().run_in_executor(pool, lookup, sql, values))

    tornado.web.Application([(r"/archive/api/query", Query)]).listen(port, "127.0.0.1")
    print("ready", flush=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
