"""A real PostgreSQL server for tests: started on a free port, with a small sample.

Tests take it as the ``pg_server`` fixture (tests/conftest.py). The server runs Debian's ``postgresql``
package (binaries under ``/usr/lib/postgresql/<version>/bin``), which ``scripts/test.sh``
installs when absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "archive_user"
PG_PASSWORD = "s3cret-pw"
PG_DB = "archive_test"
BIG_ROWS = 200_000

# The sample: every column type the backend maps, NULLs, comments, a second schema, a view,
# a big table for streaming, and a table the test user may not read.
SAMPLE_SQL = f"""
CREATE TABLE stars (
    id bigint PRIMARY KEY,
    n integer,
    mag double precision,
    ra real,
    name text,
    bright boolean,
    seen timestamp,
    seen_tz timestamptz,
    obs date,
    flux numeric(10, 3),
    amount numeric,
    blob bytea,
    tags text[],
    extra jsonb
);
COMMENT ON TABLE stars IS 'Stars of the sample';
COMMENT ON COLUMN stars.mag IS 'apparent magnitude';
COMMENT ON COLUMN stars.name IS 'common name';
INSERT INTO stars VALUES
 (1, 10, 1.5, 10.25, 'Sirius', true, '2020-01-02 03:04:05.123456', '2020-01-02 03:04:05+02', '2020-01-02',
  1.250, 3.5, '\\x00ff10', ARRAY['a', 'b'], '{{"k": 1}}'),
 (2, 20, 2.25, 20.5, 'Vega', false, '2021-06-07 08:09:10', NULL, '2021-06-07', 2.500, NULL, '\\x', NULL, NULL),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 40, 4.75, 40.125, 'Deneb %x', true, '1999-12-31 23:59:59', '1999-12-31 23:59:59+00', '1999-12-31',
  -7.125, 12345678901234567890.5, '\\xdeadbeef', ARRAY[]::text[], '[1, 2]'),
 (5, 50, 5.5, 50.0, 'Altair''s', false, '2010-05-05 05:05:05', '2010-05-05 05:05:05-05', '2010-05-05',
  0.001, -1, '\\x01', ARRAY['x', NULL], 'null');

CREATE TABLE galaxies (id integer, name text, z double precision);
COMMENT ON TABLE galaxies IS 'Galaxies of the sample';
INSERT INTO galaxies VALUES (1, 'M31', -0.001), (2, 'M87', 0.0042), (3, 'NGC 1300', 0.0053);

CREATE VIEW bright_stars AS SELECT id, name, mag FROM stars WHERE bright;

CREATE SCHEMA survey;
CREATE TABLE survey.fields (field_id integer, ra double precision, "Dec" double precision);
COMMENT ON TABLE survey.fields IS 'Survey fields';
COMMENT ON COLUMN survey.fields."Dec" IS 'declination';
INSERT INTO survey.fields VALUES (1, 10.0, -5.0), (2, 20.0, 5.0);

CREATE TABLE big AS SELECT g::bigint AS id, g * 0.5 AS x FROM generate_series(1, {BIG_ROWS}) AS g;
CREATE SEQUENCE counter;
"""


@dataclass
class _Cluster:
    bindir: Path
    root: Path
    data: Path
    port: int
    as_postgres: list[str]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [*self.as_postgres, str(self.bindir / args[0]), *args[1:]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def pg_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory; fails the test when there is none."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
        key=lambda p: float(p.parent.name) if p.parent.name.replace(".", "").isdigit() else 0.0,
    )
    if not found or not (found[-1] / "initdb").exists():
        pytest.fail(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/<version>/bin/pg_ctl): "
            "`bash scripts/test.sh` installs the Debian `postgresql` package, or run "
            "`apt-get install -y postgresql`",
            pytrace=False,
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check(proc: subprocess.CompletedProcess, what: str, log: Path | None = None) -> None:
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        pytest.fail(f"{what} failed ({proc.returncode}): {proc.stderr or proc.stdout}\n{tail}", pytrace=False)


def _start(bindir: Path) -> _Cluster:
    # PostgreSQL refuses to run as root: run it as the `postgres` system user, in a private
    # directory under /tmp (pytest's own tmp dirs are root-only, 0700, so not reachable).
    root = Path(tempfile.mkdtemp(prefix="archive-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no `postgres` system user (the Debian package makes it)")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    cluster = _Cluster(bindir, root, root / "data", _free_port(), as_postgres)
    try:
        _check(
            cluster.run(
                "initdb", "-D", str(cluster.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
            ),
            "initdb",
        )  # fmt: skip
        log = root / "server.log"
        opts = (
            f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40"
        )
        _check(cluster.run("pg_ctl", "-D", str(cluster.data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"), "pg_ctl start", log)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # a server that never started leaves no folder under /tmp
        raise
    return cluster


def _load(cluster: _Cluster) -> None:
    import psycopg

    # The superuser connects over the Unix socket (trust); the test user over TCP with a password.
    with psycopg.connect(host=str(cluster.root), port=cluster.port, user="postgres", dbname="postgres", autocommit=True) as con:
        con.execute(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
        con.execute(f"CREATE DATABASE {PG_DB} OWNER {PG_USER}")
    with psycopg.connect(host=str(cluster.root), port=cluster.port, user=PG_USER, dbname=PG_DB) as con:
        con.execute(SAMPLE_SQL)
    with psycopg.connect(host=str(cluster.root), port=cluster.port, user="postgres", dbname=PG_DB) as con:
        con.execute("CREATE TABLE public.secret (x integer); INSERT INTO public.secret VALUES (42)")


@contextmanager
def running():
    """The URI (``postgresql://user:pw@127.0.0.1:port/db``) of a running server holding the sample."""
    cluster = _start(pg_bindir())
    try:
        _load(cluster)
        yield f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{cluster.port}/{PG_DB}"
    finally:
        cluster.run("pg_ctl", "-D", str(cluster.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(cluster.root, ignore_errors=True)
