"""What goes wrong around the Dask cluster, through the archive: a scheduler nobody answers never holds a
compile and fails jobs clearly; a catalog damaged on disk fails a cluster job clearly (checked before the
tasks, and named when a task's own read fails); a worker killed mid-job fails the job clearly; a server
killed during a cluster job leaves the job failed as every interrupted job is, and no task running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution.cluster import FanOut, fan_out
from jupyter_archive.core.execution.scheduler import Cluster
from jupyter_archive.core.jobs.model import RESTART_MESSAGE
from tests.support.cluster import busy_workers, executing, wait_for

# seconds of work in every task, in little memory: a sum of thousands of numbers for every row
SLOW = "SELECT SUM(list_sum(range(5000 + objid % 7))) AS n FROM sky.stars"


def archive(data_dir, location, scheduler) -> Archive:
    a = Archive(ArchiveConfig(data_dir=data_dir, demo=False, dask_scheduler=scheduler,
                              mounts=[{"path": "/sky", "type": "hats", "location": str(location), "context": "SKY"}]))  # fmt: skip
    a.start()
    return a


def partitions_phase(a, text) -> str:
    phases = a.queries.compile(a.users.principal("alice"), text, "adql").phases
    return next(p.detail for p in phases if p.name == "partitions")


def finished(a, job_id):
    p = a.users.principal("alice")
    return a.jobs.wait(p, job_id, timeout=300)


@pytest.fixture
def silent_scheduler():
    """An address that accepts TCP connections and never answers (dask waits its whole connect timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"  # nobody listens there once closed


def test_a_scheduler_nobody_listens_on_answers_compiles_and_fails_jobs_clearly(hats_root, tmp_path):
    a = archive(tmp_path, hats_root, free_address())
    try:
        whole = "SELECT COUNT(*) AS n FROM sky.stars WHERE r > 0"
        for _ in range(3):  # the failure is remembered: no compile tries again meanwhile
            assert "cannot be reached" in partitions_phase(a, whole)
        job = finished(a, a.jobs.submit_query(a.users.principal("alice"), whole, "adql").id)
        assert job.state == "failed" and "cannot be reached" in str(job.error_message), job.error_message
    finally:
        a.close()


def test_a_scheduler_that_never_answers_holds_no_compile(hats_root, tmp_path, silent_scheduler):
    a = archive(tmp_path, hats_root, silent_scheduler)
    try:
        # the connect goes on in the background (dask's own timeout); the compile answers without it
        assert "still being connected" in partitions_phase(a, "SELECT COUNT(*) AS n FROM sky.stars WHERE r > 0")
        with pytest.raises(ArchiveError) as err:
            a.cluster.client(wait=0)
        assert err.value.code == "unavailable" and "still being connected" in err.value.message
    finally:
        a.close()


def test_a_closed_holder_gives_back_what_its_background_connect_made(local_cluster):
    holder = Cluster(local_cluster.scheduler_address)
    with pytest.raises(ArchiveError):
        holder.client(wait=0)  # the connect has only begun
    holder.close()  # the connect ends on its own thread, and gives back the client it made
    with pytest.raises(ArchiveError) as err:
        holder.client(wait=None)
    assert "closing" in err.value.message


def test_a_catalog_damaged_on_disk_fails_a_cluster_job_clearly(hats_root, tmp_path, local_cluster):
    root = tmp_path / "stars"
    shutil.copytree(hats_root / "stars", root)
    a = archive(tmp_path / "data", root, local_cluster.scheduler_address)
    try:
        sorted((root / "dataset").rglob("Npix=*.parquet"))[-1].unlink()
        job = finished(a, a.jobs.submit_query(a.users.principal("alice"), "SELECT flags, COUNT(*) AS n FROM sky.stars GROUP BY flags", "adql").id)
        assert job.state == "failed", job.state
        assert "HATS catalog 'stars' changed on disk" in str(job.error_message) and "mounted again" in str(job.error_message)
    finally:
        a.close()


def test_a_file_gone_under_a_task_is_named_in_the_failure(hats_root, tmp_path, cluster):
    """Past the coordinator's check (a worker not seeing the file, or it went meanwhile), the task's own failure names it."""
    root = tmp_path / "stars"
    shutil.copytree(hats_root / "stars", root)
    files = [str(f) for f in sorted((root / "dataset").rglob("Npix=*.parquet"))]
    schema = pq.read_schema(files[0])
    os.unlink(files[-1])
    plan = FanOut("SELECT count(*) FROM cat", "cat", [files[:-1], files[-1:]], str(root), schema=schema)
    with pytest.raises(ArchiveError) as err:
        fan_out(cluster, plan).read_all()
    assert err.value.code == "catalog_changed" and "dataset/Norder=" in err.value.message and str(tmp_path) not in err.value.message


def test_a_worker_killed_mid_job_fails_the_job_clearly(hats_root, tmp_path, local_cluster):
    a = archive(tmp_path, hats_root, local_cluster.scheduler_address)
    client = a.cluster.client()
    before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    try:
        p = a.users.principal("alice")
        job = a.jobs.submit_query(p, SLOW, "adql")
        assert wait_for(lambda: busy_workers(client), 120)
        busy = busy_workers(client)
        os.kill(client.run(os.getpid, workers=busy[:1])[busy[0]], signal.SIGKILL)
        job = finished(a, job.id)
        assert job.state == "failed" and "worker of the Dask cluster died" in str(job.error_message), (job.state, job.error_message)
    finally:
        client.run_on_scheduler(lambda dask_scheduler, n=before: setattr(dask_scheduler, "allowed_failures", n))
        client.wait_for_workers(2, timeout=120)
        assert wait_for(lambda: executing(client) == 0, 120)  # nothing of the failed job runs on
        a.close()


def test_a_server_killed_during_a_cluster_job_leaves_it_failed_and_no_task_running(hats_root, tmp_path, local_cluster):
    # A separate process runs the archive, submits the job and waits; the test kills it once its tasks run.
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from jupyter_archive.core.archive import Archive
        from jupyter_archive.core.config import ArchiveConfig
        a = Archive(ArchiveConfig(data_dir=Path({str(tmp_path)!r}), demo=False, dask_scheduler={local_cluster.scheduler_address!r},
                                  mounts=[{{"path": "/sky", "type": "hats", "location": {str(hats_root)!r}, "context": "SKY"}}]))
        a.start()
        job = a.jobs.submit_query(a.users.principal("alice"), {SLOW!r}, "adql")
        print(job.id, flush=True)
        time.sleep(600)
    """)  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ})
    from distributed import Client

    with Client(local_cluster.scheduler_address) as client:
        try:
            job_id = proc.stdout.readline().strip()
            assert job_id and wait_for(lambda: busy_workers(client), 120)
        finally:
            proc.kill()
            proc.wait(30)
        # the dead server's futures go with its connection; what ran ends and nothing is left
        assert wait_for(lambda: executing(client) == 0 and not any(client.processing().values()), 120)
    a = Archive(ArchiveConfig(data_dir=tmp_path, demo=False, mounts=[{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"}]))
    a.start()
    try:
        job = a.jobs.get(a.users.principal("alice"), job_id)
        assert job.state == "failed" and job.error_message == RESTART_MESSAGE
    finally:
        a.close()
