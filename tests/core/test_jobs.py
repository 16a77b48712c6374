"""The one job system: state machine, persistence, scheduling, caps, cancel, restart, results."""

from __future__ import annotations

import functools
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.jobs.model import RESTART_MESSAGE
from jupyter_archive.core.jobs.store import JobStore
from jupyter_archive.core.users.store import UserStore
from jupyter_archive.faces.base.handler import Continuation

SLOW = "SELECT count(*) FROM range(10000000000000) a"


@pytest.fixture
def make_archive(archive_data_dir):
    made = []

    def _make(**kw) -> Archive:
        a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000, **kw))
        a.start()
        made.append(a)
        return a

    yield _make
    for a in made:
        a.close()


def test_illegal_transitions_are_refused(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create("u", "query", {}, face="native", state="queued", scheduled=None)
    with pytest.raises(ArchiveError) as err:
        store.transition(job.id, "completed")
    assert err.value.status == 409 and "queued" in err.value.message
    store.transition(job.id, "running", started=time.time())
    store.transition(job.id, "completed", ended=time.time())
    with pytest.raises(ArchiveError):
        store.transition(job.id, "running")
    store.close()


def test_a_dispatch_reads_what_it_may_start_whatever_the_queue(tmp_path):
    """``startable``: queued jobs in submission order, at most ``per_owner`` of each owner's, none of a full owner's;
    running, scheduled and ended jobs are not queued."""
    store = JobStore(tmp_path / "jobs.sqlite")
    made = [store.create(owner, "query", {"query": "SELECT 1"}, face="native", state="queued", scheduled=None).id
            for owner in ["a"] * 50 + ["b", "c", "b", "a", "c", "b"]]
    later = store.create("d", "query", {}, face="native", state="scheduled", scheduled=time.time() + 3600).id
    store.transition(made[1], "running", started=time.time())
    store.transition(made[2], "canceled", ended=time.time())
    heads = store.startable(2)
    assert heads == [(made[0], "a"), (made[3], "a"), (made[50], "b"), (made[51], "c"), (made[52], "b"), (made[54], "c")]
    assert store.startable(1, full=["a", "c"]) == [(made[50], "b")]
    assert store.waiting() == [(later, pytest.approx(store.get(later).scheduled))]
    store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.sampled_from(["queued", "queued", "running", "canceled"])),
                     max_size=40),
       per_owner=st.integers(1, 3), full=st.sets(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=3))
def test_startable_is_each_owners_first_queued_jobs(tmp_path_factory, jobs, per_owner, full):
    """Generated queues: ``startable`` is, in submission order, the first ``per_owner`` queued jobs of each owner not full."""
    store = JobStore(tmp_path_factory.mktemp("startable") / "jobs.sqlite")
    made = []
    for owner, state in jobs:
        job = store.create(owner, "query", {"query": "SELECT 1"}, face="native", state="queued", scheduled=None)
        if state != "queued":
            store.transition(job.id, state, **({"started": time.time()} if state == "running" else {"ended": time.time()}))
        made.append((job.id, owner, state))
    taken: dict[str, int] = {}
    want = []
    for job_id, owner, state in made:
        if state == "queued" and owner not in full and taken.get(owner, 0) < per_owner:
            taken[owner] = taken.get(owner, 0) + 1
            want.append((job_id, owner))
    assert store.startable(per_owner, full=sorted(full)) == want
    store.close()


def test_a_long_queue_of_one_user_does_not_hold_back_another(make_archive):
    a = make_archive(job_workers=2, jobs_per_user=1)
    one, other = a.users.principal("one"), a.users.principal("other")
    first = a.jobs.submit_query(one, SLOW, "sql", context="DEMO").id
    for i in range(300):  # queued behind it: one job of a user's at a time
        a.jobs.submit_query(one, f"SELECT {i}", "sql", context="DEMO")
    theirs = a.jobs.submit_query(other, "SELECT 42 AS n", "sql", context="DEMO").id
    deadline = time.time() + 60
    while not a.jobs.get(other, theirs).final and time.time() < deadline:
        time.sleep(0.02)
    assert a.jobs.get(other, theirs).state == "completed"
    assert a.jobs.get(one, first).state == "running"
    assert a.jobs.store.list(one.ident, states=["queued"], limit=0)[1] == 300
    a.jobs.cancel(one, first)


def _until(check, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "not within the bound"
        time.sleep(0.02)


def test_a_free_job_worker_goes_to_the_user_running_the_fewest(make_archive):
    a = make_archive(job_workers=2, jobs_per_user=2)  # one user may fill every worker
    one, other = a.users.principal("one"), a.users.principal("other")
    slow = [a.jobs.submit_query(one, SLOW, "sql", context="DEMO").id for _ in range(2)]
    _until(lambda: all(a.jobs.get(one, j).state == "running" for j in slow))
    queued = [a.jobs.submit_query(one, f"SELECT {i} AS i", "sql", context="DEMO").id for i in range(30)]
    theirs = a.jobs.submit_query(other, "SELECT 42 AS n", "sql", context="DEMO").id
    a.jobs.cancel(one, slow[0])  # a worker frees: it goes to `other` (running none), not to one's older jobs
    _until(lambda: a.jobs.get(other, theirs).final)
    started = [a.jobs.get(one, j).started for j in queued]
    first_of_ones = min((t for t in started if t is not None), default=float("inf"))
    assert a.jobs.get(other, theirs).started <= first_of_ones
    a.jobs.cancel(one, slow[1])


def test_by_default_one_user_leaves_a_job_worker_free(make_archive):
    a = make_archive()
    one, other = a.users.principal("one"), a.users.principal("other")
    slow = [a.jobs.submit_query(one, SLOW, "sql", context="DEMO").id for _ in range(4)]
    _until(lambda: sum(a.jobs.get(one, j).state == "running" for j in slow) == a.jobs.runner.per_user >= 2)
    theirs = a.jobs.submit_query(other, "SELECT 42 AS n", "sql", context="DEMO").id
    _until(lambda: a.jobs.get(other, theirs).final)
    assert a.jobs.get(other, theirs).state == "completed"
    assert sum(a.jobs.get(one, j).state == "running" for j in slow) == a.jobs.runner.per_user  # still running meanwhile
    for j in slow:
        a.jobs.cancel(one, j)


def test_query_job_into_mydb_and_result_store(make_archive):
    a = make_archive()
    owner = a.users.principal("alice")
    job = a.jobs.submit_query(owner, "SELECT objid, r FROM PhotoObj WHERE r < 19", "sql", context="DEMO", target=("MyDB", "Bright"))
    job = a.jobs.wait(owner, job.id, timeout=30)
    assert job.state == "completed", job.error_message
    n = a.queries.query(owner, "SELECT count(*) AS n FROM Bright", context="MyDB").to_table().column("n")[0].as_py()
    assert job.rows == n > 0 and job.results["table"] == {"context": "MyDB", "name": "Bright"}
    job2 = a.jobs.submit_query(owner, "SELECT objid FROM PhotoObj ORDER BY objid", "sql", context="DEMO")
    job2 = a.jobs.wait(owner, job2.id, timeout=30)
    assert job2.state == "completed" and job2.rows == 20_000
    page = a.jobs.result(owner, job2.id, offset=10, limit=5).to_table()
    want = a.queries.query(owner, "SELECT objid FROM PhotoObj ORDER BY objid LIMIT 5 OFFSET 10", context="DEMO").to_table()
    assert page.column("objid").to_pylist() == want.column("objid").to_pylist()


def test_other_users_cannot_see_a_job(make_archive):
    a = make_archive()
    alice, bob = a.users.principal("alice"), a.users.principal("bob")
    job = a.jobs.submit_query(alice, "SELECT 1 AS x", "sql", context="DEMO")
    with pytest.raises(ArchiveError) as err:
        a.jobs.get(bob, job.id)
    assert err.value.status == 404
    assert a.jobs.list(bob)[1] == 0
    admin = a.users.principal("root", admin=True)
    assert a.jobs.get(admin, job.id).owner == "alice"


def test_cancel_stops_a_long_query_within_a_second(make_archive):
    a = make_archive()
    u = a.users.principal("carol")
    job = a.jobs.submit_query(u, SLOW, "sql", context="DEMO")
    a.jobs.wait(u, job.id, timeout=10, until=lambda j: j.state == "running")
    time.sleep(0.3)
    t = time.monotonic()
    a.jobs.cancel(u, job.id)
    job = a.jobs.wait(u, job.id, timeout=5)
    assert job.state == "canceled"
    assert time.monotonic() - t < 1.0
    # the engine is free after
    assert a.queries.query(u, "SELECT 42 AS x", context="DEMO").to_table().column("x")[0].as_py() == 42


def test_progress_moves_while_running(make_archive):
    a = make_archive()
    u = a.users.principal("dave")
    job = a.jobs.submit_query(u, "SELECT sum(a.range * b.range) AS s FROM range(40000) a, range(20000) b", "sql", context="DEMO")
    seen = set()
    deadline = time.time() + 60
    while time.time() < deadline:
        j = a.jobs.get(u, job.id)
        seen.add(round(j.progress, 2))
        if j.final:
            break
        time.sleep(0.05)
    assert j.state == "completed", j.error_message
    assert any(0 < p < 1 for p in seen), seen


def test_scheduled_job_does_not_start_early(make_archive):
    a = make_archive()
    u = a.users.principal("erin")
    start = time.time() + 2
    job = a.jobs.submit_query(u, "SELECT 1 AS x", "sql", context="DEMO", start_time=start)
    assert job.state == "scheduled"
    job = a.jobs.wait(u, job.id, timeout=10)
    assert job.state == "completed"
    assert job.started >= start


def test_scheduled_job_can_be_canceled_before_it_runs(make_archive):
    a = make_archive()
    u = a.users.principal("fred")
    job = a.jobs.submit_query(u, "SELECT 1 AS x", "sql", context="DEMO", start_time=time.time() + 30)
    assert a.jobs.cancel(u, job.id).state == "canceled"


def test_per_user_cap_and_many_jobs(make_archive):
    a = make_archive(job_workers=3, jobs_per_user=1)
    users = [a.users.principal(f"user{i}") for i in range(4)]
    jobs = []
    for i in range(200):
        u = users[i % 4]
        jobs.append((u, a.jobs.submit_query(u, f"SELECT {i} AS n, sum(range) AS s FROM range(20000)", "sql", context="DEMO").id))
    max_running_per_user = 0
    deadline = time.time() + 120
    while time.time() < deadline:
        running, _ = a.jobs.store.list(states=["running"])
        per = {}
        for j in running:
            per[j.owner] = per.get(j.owner, 0) + 1
        max_running_per_user = max([max_running_per_user, *per.values()])
        assert len(running) <= 3
        if all(a.jobs.store.get(jid).final for _, jid in jobs[-4:]) and not a.jobs.store.list(states=["queued", "running"])[1]:
            break
        time.sleep(0.02)
    states = [a.jobs.get(u, jid).state for u, jid in jobs]
    assert states.count("completed") == 200
    assert max_running_per_user <= 1


def test_restart_fails_running_jobs_and_runs_queued_ones(archive_data_dir):
    # Simulate a process death: the runner never ran, the store says "running".
    users = UserStore(archive_data_dir / "state.sqlite")
    gina = users.ensure_user("gina").ident
    users.close()
    store = JobStore(archive_data_dir / "jobs.sqlite")
    running = store.create("gina", "query", {"query": "SELECT 1", "language": "sql", "context": "DEMO"}, face="native",
                           state="queued", scheduled=None, owner_uid=gina)
    store.transition(running.id, "running", started=time.time())
    queued = store.create("gina", "query", {"query": "SELECT 2 AS x", "language": "sql", "context": "DEMO"}, face="native",
                          state="queued", scheduled=None, owner_uid=gina)
    store.close()
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    a.start()
    try:
        u = a.users.principal("gina")
        j = a.jobs.get(u, running.id)
        assert j.state == "failed" and j.error_message == RESTART_MESSAGE
        assert a.jobs.wait(u, queued.id, timeout=20).state == "completed"
    finally:
        a.close()


def test_expiry_removes_results(make_archive):
    a = make_archive(job_retention=0.5)
    u = a.users.principal("hank")
    job = a.jobs.wait(u, a.jobs.submit_query(u, "SELECT * FROM range(10)", "sql", context="DEMO").id, timeout=20)
    path = a.results.path(job.id)
    assert path.exists()
    a.jobs.runner._last_sweep = 0
    time.sleep(0.7)
    a.jobs.runner._last_sweep = 0
    a.jobs.runner.wake()
    deadline = time.time() + 5
    while path.exists() and time.time() < deadline:
        a.jobs.runner._last_sweep = 0
        a.jobs.runner.wake()
        time.sleep(0.1)
    assert not path.exists()
    with pytest.raises(ArchiveError):
        a.jobs.get(u, job.id)


def test_one_destruction_rule_for_expiry_and_what_faces_show(tmp_path):
    """A job goes at its own destruction time, else ``retention`` after it ended (before that, the
    earliest it can go: after it was submitted); the store's expiry candidates follow the same rule."""
    from jupyter_archive.core.jobs.model import destruction_time

    store = JobStore(tmp_path / "jobs.sqlite")
    now, day = time.time(), 86400.0
    long_job = store.create("u", "query", {}, face="native", state="queued", scheduled=None)
    store._db.execute("UPDATE jobs SET submitted = ? WHERE id = ?", (now - 10 * day, long_job.id))
    store.transition(long_job.id, "running", started=now - 9 * day)
    running = store.get(long_job.id)
    assert destruction_time(running, 7 * day) == pytest.approx(now - 3 * day)  # shown while it runs
    assert long_job.id not in [j.id for j in store.expired(now, 7 * day)]  # retention never stops work
    done = store.transition(long_job.id, "completed", ended=now - day)
    assert destruction_time(done, 7 * day) == pytest.approx(now + 6 * day)  # a week after it ended, not after it was submitted
    assert long_job.id not in [j.id for j in store.expired(now, 7 * day)]
    assert long_job.id in [j.id for j in store.expired(now + 6.5 * day, 7 * day)]
    own = store.create("u", "query", {}, face="native", state="queued", scheduled=None)
    store.update(own.id, destruction=now + 30 * day)
    store.transition(own.id, "running", started=now)
    own = store.transition(own.id, "completed", ended=now)
    assert destruction_time(own, 7 * day) == pytest.approx(now + 30 * day)  # its own time wins
    assert own.id not in [j.id for j in store.expired(now + 10 * day, 7 * day)]
    assert destruction_time(own, None) == pytest.approx(now + 30 * day) and destruction_time(done, None) is None
    store.close()


def test_a_quick_query_gone_on_as_a_job_ends_at_a_stop_as_running_jobs_do(make_archive):
    a = make_archive(quick_time_limit=0.3)
    u = a.users.principal("hank")

    def quick(text):  # a face's quick query that may go on as a job (faces/base/handler.py quick_query)
        take = functools.partial(a.jobs.continued, u, text, "sql", face="native", started=time.time(), options={"context": "DEMO"}, request={})
        return Continuation(take, a.queries.history.append)

    fast = quick("SELECT 42 AS x")
    assert fast.run(a.queries.query, u, "SELECT 42 AS x", "sql", context="DEMO").to_table().column("x")[0].as_py() == 42
    assert fast.taken.cancelled() and not fast.went_on  # in time: a quick query
    ordinary = a.jobs.submit_query(u, SLOW, "sql", context="DEMO")
    continued = quick(SLOW)
    ran = []
    thread = threading.Thread(target=lambda: ran.append(continued.run(a.queries.query, u, SLOW, "sql", context="DEMO")))
    thread.start()
    job = continued.taken.result(timeout=30).job  # the limit passed: the run went on as a job
    assert job.state == "running" and job.request["continued"] and continued.went_on
    a.jobs.wait(u, ordinary.id, timeout=10, until=lambda j: j.state == "running")
    a.jobs.runner.stop()
    thread.join(10)
    assert ran == [None]  # its thread ended it, as a job
    assert a.jobs.get(u, job.id).state == a.jobs.get(u, ordinary.id).state == "canceled"


def _returns(fn, timeout: float = 30.0):
    """``fn()``'s value, run on another thread: a call that is still blocked after ``timeout`` fails the test."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked"
    return out[0]


def test_reads_go_on_beside_a_write_and_see_an_end_only_with_its_history(tmp_path):
    """A write under way (here a job's end, held inside it) keeps no reader waiting, and readers see the job
    ended only once its history entry was handed over (``on_final``) and the end committed."""
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create("u", "query", {}, face="native", state="queued", scheduled=None, log="submitted (queued)")
    store.transition(job.id, "running", started=time.time())
    inside, release, handed = threading.Event(), threading.Event(), []
    store.on_final = lambda j: (handed.append(j.state), inside.set(), release.wait(30))
    ending = threading.Thread(target=store.transition, args=(job.id, "completed"), kwargs={"ended": time.time(), "log": "completed"})
    ending.start()
    try:
        assert inside.wait(30)
        assert _returns(lambda: store.get(job.id)).state == "running"
        assert _returns(lambda: store.list("u")[1]) == 1
        assert [line for _, line in _returns(lambda: store.log_lines(job.id))] == ["submitted (queued)"]
        assert _returns(lambda: store.waiting_of("u", 10)) == 0
        assert _returns(lambda: store.startable(1)) == []
    finally:
        release.set()
        ending.join(30)
    assert handed == ["completed"] and store.get(job.id).state == "completed"
    assert [line for _, line in store.log_lines(job.id)] == ["submitted (queued)", "completed"]
    store.close()


def test_a_submit_does_not_wait_for_a_dispatch_under_way(make_archive):
    a = make_archive()
    user = a.users.principal("one")
    runner = a.jobs.runner
    inside, release = threading.Event(), threading.Event()
    runner.sweeps.append(lambda now, retention: (inside.set(), release.wait(30)))  # the dispatcher, busy in a sweep
    runner.sweep_interval = 0.0
    runner.wake()
    try:
        assert inside.wait(30)
        job = _returns(lambda: a.jobs.submit_query(user, "SELECT 1 AS one", "sql", context="DEMO"))
        assert job.state == "queued"
    finally:
        runner.sweeps.pop()
        release.set()
    _until(lambda: a.jobs.get(user, job.id).state == "completed")


def test_a_jobs_log_is_whole_at_its_end_and_shows_while_it_runs(make_archive):
    """A job's lines are written with its end (a short job: in one write) or within a moment while it runs, in order."""
    a = make_archive()
    u = a.users.principal("u")
    short = a.jobs.submit_query(u, "SELECT 42 AS n", "sql", context="DEMO")
    _until(lambda: a.jobs.get(u, short.id).final)
    lines = [line for _, line in a.jobs.log(u, short.id)]
    assert lines[:2] == ["submitted (queued)", "running"] and lines[-1] == "completed (1 rows)", lines
    assert lines[2].startswith("compiled ") and lines[-2].startswith("stored 1 rows"), lines
    slow = a.jobs.submit_query(u, SLOW, "sql", context="DEMO")
    _until(lambda: any(line.startswith("compiled ") for _, line in a.jobs.log(u, slow.id)))
    assert a.jobs.get(u, slow.id).state == "running"
    a.jobs.cancel(u, slow.id)
    _until(lambda: a.jobs.get(u, slow.id).final)
    times, lines = zip(*a.jobs.log(u, slow.id))
    assert lines[-1] == "canceled" and "cancel requested" in lines and list(times) == sorted(times), lines


def _panic():
    """A real panic of a native library: cdshealpix asked for cells past HEALPix's deepest order (29)."""
    import numpy as np
    from cdshealpix import cdshealpix

    cdshealpix.cone_search(np.uint8(29), np.uint8(2), np.float64(1.0), np.float64(0.5), np.float64(1e-9), False)


def test_a_native_panic_is_an_error_not_a_hang():
    """pyo3's PanicException is no ``Exception``: ``native_faults`` makes it one, and lets what stops work on purpose by."""
    import asyncio

    from jupyter_archive.core.errors import native_faults

    with pytest.raises(BaseException) as raw:
        _panic()
    assert not isinstance(raw.value, Exception)  # what ``except Exception`` let through
    with pytest.raises(RuntimeError, match="PanicException"):
        with native_faults():
            _panic()
    for control in (KeyboardInterrupt(), asyncio.CancelledError(), ValueError("x")):
        with pytest.raises(type(control)):
            with native_faults():
                raise control


def test_a_job_whose_work_panics_fails_and_the_next_runs(make_archive):
    a = make_archive()
    a.jobs.register_kind("panics", lambda job, ctx: _panic())
    a.jobs.register_kind("fine", lambda job, ctx: {"rows": 1})
    u = a.users.principal("pam")
    bad = a.jobs.runner.submit(u.name, "panics", {})
    good = a.jobs.runner.submit(u.name, "fine", {})
    bad, good = a.jobs.runner.wait(bad.id, timeout=30), a.jobs.runner.wait(good.id, timeout=30)
    assert bad.state == "failed" and "PanicException" in bad.error_message, bad
    assert good.state == "completed"


def test_a_job_canceled_between_the_dispatchers_read_and_its_start_is_skipped(make_archive, caplog):
    """The dispatcher reads the queued jobs, then starts them one by one; a job canceled in between is refused its
    start and skipped, and the jobs after it start. A trigger in the job store cancels the second job as the first
    starts: after the read, before the second's start, whatever the timing."""
    a = make_archive(job_workers=4)
    a.jobs.register_kind("fine", lambda job, ctx: {"rows": 1})
    runner, store = a.jobs.runner, a.jobs.runner.store
    first, second, third = (runner.submit(owner, "fine", {}, run=False) for owner in ("ann", "bob", "cy"))
    with store._lock:
        store._db.execute(f"CREATE TEMP TRIGGER cancel_second AFTER UPDATE OF state ON jobs WHEN NEW.id = {first.id} "
                          f"AND NEW.state = 'running' BEGIN UPDATE jobs SET state = 'canceled' WHERE id = {second.id}; END")
        store._db.execute(f"UPDATE jobs SET state = 'queued' WHERE id IN ({first.id}, {second.id}, {third.id})")  # at once
    runner.wake()
    done = [runner.wait(j.id, timeout=30) for j in (first, second, third)]
    assert [j.state for j in done] == ["completed", "canceled", "completed"]
    assert done[1].started is None  # never ran
    assert not [r for r in caplog.records if "dispatcher failed" in r.getMessage()]  # refused quietly, not a failed dispatch


def test_a_long_text_waits_for_its_compile_turn_a_jobs_as_long_as_it_takes(make_archive, monkeypatch):
    """Long texts compile one at a time; a quick query that waits too long for its turn is told to retry (429), a job
    waits as long as it must: nobody waits on its answer, and it should run late rather than fail."""
    import threading

    from jupyter_archive.core.errors import ArchiveError
    from jupyter_archive.core.sql import pipeline

    monkeypatch.setattr(pipeline, "LONG_QUERY_WAIT", 0.2)
    a = make_archive()
    owner = a.users.principal("alice")

    def long(k: int) -> str:  # 15,000 ORs: a second or more of compiling, each of a shape of its own
        return f"SELECT objid AS c{k} FROM PhotoObj WHERE " + " OR ".join(f"objid = {i}" for i in range(15_000))

    holding = threading.Thread(target=a.queries.compile, args=(owner, long(0), "sql"), kwargs={"context": "DEMO"})
    holding.start()
    time.sleep(0.3)  # its compile has the turn
    with pytest.raises(ArchiveError) as err:
        a.queries.query(owner, long(1), context="DEMO")
    assert err.value.status == 429 and err.value.details["retry_after"]
    job = a.jobs.submit_query(owner, long(2), "sql", context="DEMO", validate=False)
    assert holding.is_alive(), "the first compile ended before the others asked for their turn"
    holding.join()
    job = a.jobs.wait(owner, job.id, timeout=120)
    assert job.state == "completed", job.error_message
