"""Looking at a real Dask cluster from a test: which workers run a fanned-out query's batches, how many
tasks execute, and waiting for a condition (polling, bounded). A worker that is gone (killed, being
replaced) is left out of a look, not an error of the test."""

from __future__ import annotations

import time


def busy_workers(client) -> list[str]:
    """Workers running a batch of a fanned-out query now (not the task holding the shipped tables)."""
    keys = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing], on_error="ignore")
    return [w for w, running in keys.items() if any(not k.endswith("-shipped") for k in running)]


def executing(client) -> int:
    return sum(client.run(lambda dask_worker: dask_worker.state.executing_count, on_error="ignore").values())


def wait_for(condition, seconds=60.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False
