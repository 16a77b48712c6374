"""Admission: each user's fair share of the quick workers (core/execution/run.py ``Admission``).

The rules: at most ``workers`` admitted at once and ``per_user`` of one user's; a lone user gets every worker but
one; over a limit a request waits on a ticket; a freed worker goes to the waiting user running the fewest, ties in
turn; no ticket is lost; past ``max_waiting`` waiting requests of one user, a 429 at once. ``run``: the work of a
request whose turn comes starts on the thread of the work that frees it, and each turn goes back exactly once.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution.run import Admission


def test_a_lone_user_gets_every_worker_but_one_and_another_user_the_last():
    adm = Admission(4)
    assert [adm.enter("alice") for _ in range(3)] == [None, None, None]
    waiting = adm.enter("alice")
    assert waiting is not None and not waiting.done()
    assert adm.enter("bob") is None  # the worker kept free
    assert adm.enter("carol") is not None  # every worker busy now
    adm.leave("alice")
    assert not waiting.done(), "alice runs 2 of her 3: carol (running none) comes first"


def test_freed_workers_go_round_robin_to_the_users_running_fewest_not_first_come():
    adm = Admission(3, per_user=3)
    assert [adm.enter("alice") for _ in range(3)] == [None, None, None]
    tickets = [("alice", adm.enter("alice")) for _ in range(3)] + [("bob", adm.enter("bob")), ("carol", adm.enter("carol"))]
    order = []
    for leaver in ["alice", "alice", "alice", "bob", "carol"]:
        before = {id(t) for _, t in tickets if t.done()}
        adm.leave(leaver)
        granted = [u for u, t in tickets if t.done() and id(t) not in before]
        assert len(granted) == 1, granted
        order += granted
    # first come would be alice's three first; the users running fewest come first, ties in turn
    assert order == ["bob", "carol", "alice", "alice", "alice"]


def test_a_withdrawn_ticket_never_takes_a_turn_and_a_granted_one_says_so():
    adm = Admission(1, per_user=1)
    assert adm.enter("alice") is None
    t1, t2 = adm.enter("bob"), adm.enter("carol")
    assert adm.withdraw("bob", t1) is False
    adm.leave("alice")
    assert t2.done() and not t1.done()
    assert adm.withdraw("carol", t2) is True  # its turn had come: carol holds it and must leave
    adm.leave("carol")
    assert adm.enter("dave") is None


def test_too_many_waiting_requests_of_one_user_are_refused_with_retry_after():
    adm = Admission(2, per_user=1, wait=30.0, max_waiting=2)
    assert adm.enter("alice") is None
    adm.enter("alice"), adm.enter("alice")
    with pytest.raises(ArchiveError) as err:
        adm.enter("alice")
    assert err.value.status == 429 and err.value.details["retry_after"] >= 1
    assert adm.enter("bob") is None  # others are not refused


def test_per_user_is_bounded_by_the_workers():
    assert Admission(1).per_user == 1
    assert Admission(3, per_user=10).per_user == 3
    assert Admission(8, per_user=2).per_user == 2


ops = st.lists(
    st.tuples(st.sampled_from(["enter", "leave", "withdraw"]), st.sampled_from(["a", "b", "c", "d"])), max_size=80
)


@settings(max_examples=300, deadline=None)
@given(workers=st.integers(1, 5), per_user=st.integers(0, 5), ops=ops)
def test_any_sequence_keeps_the_limits_conserves_work_and_loses_no_ticket(workers, per_user, ops):
    adm = Admission(workers, per_user, max_waiting=1000)
    running = {u: 0 for u in "abcd"}  # admitted now, as the callers know it
    tickets = {u: [] for u in "abcd"}  # waiting, as the callers know it

    def collect():
        for u, ts in tickets.items():
            for t in [t for t in ts if t.done()]:
                ts.remove(t)
                running[u] += 1

    for op, user in ops:
        if op == "enter":
            t = adm.enter(user)
            if t is None:
                running[user] += 1
            else:
                tickets[user].append(t)
        elif op == "leave" and running[user]:
            running[user] -= 1
            adm.leave(user)
        elif op == "withdraw" and tickets[user]:
            t = tickets[user].pop(0)
            if adm.withdraw(user, t):
                running[user] += 1
        collect()
        assert sum(running.values()) <= adm.workers
        assert all(n <= adm.per_user for n in running.values())
        if sum(running.values()) < adm.workers:  # a free worker: nobody who may take it waits
            assert all(not tickets[u] or running[u] >= adm.per_user for u in tickets)
    # everyone leaves: every ticket still waiting gets its turn
    while any(running.values()) or any(tickets.values()):
        user = next(u for u in running if running[u])
        running[user] -= 1
        adm.leave(user)
        collect()
    assert adm.enter("z") is None


@settings(max_examples=60, deadline=None)
@given(workers=st.integers(1, 4), per_user=st.integers(0, 4), order=st.randoms(use_true_random=False),
       requests=st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.booleans()), min_size=1, max_size=12))
def test_runs_keep_the_limits_start_without_their_caller_and_give_each_turn_back_once(workers, per_user, order, requests):
    """Requests (user, keeps its turn, gives up waiting) run through ``run``: nobody but the works themselves starts
    the waiting ones; the limits hold at every moment; a request that gave up never runs; every turn goes back once."""
    adm = Admission(workers, per_user)
    pool = ThreadPoolExecutor(workers)
    lock, now, ran, broken = threading.Lock(), dict.fromkeys("abc", 0), [], []
    gates = [threading.Event() for _ in requests]

    def work(i: int, user: str) -> int:
        with lock:
            now[user] += 1
            ran.append(i)
            if sum(now.values()) > adm.workers or now[user] > adm.per_user:
                broken.append(dict(now))
        gates[i].wait(20)
        with lock:
            now[user] -= 1
        return i

    runs, gave_up = [], set()
    for i, (user, keep, give_up) in enumerate(requests):
        turn, ticket, done = adm.run(user, pool, functools.partial(work, i, user), (lambda r: True) if keep else None)
        if give_up and ticket is not None and not adm.withdraw(user, ticket):
            gave_up.add(i)
            turn.leave()  # as a request's end does
        runs.append((turn, done, keep))
    for i in order.sample(range(len(gates)), len(gates)):
        gates[i].set()
        time.sleep(0.001)
    left, deadline = set(), time.monotonic() + 20
    while len(left) < len(runs) - len(gave_up):  # a kept turn goes back once its work is done (the request ends)
        assert time.monotonic() < deadline, f"stuck: {adm.running} running, waiting {len(runs) - len(gave_up) - len(left)}"
        for i, (turn, done, keep) in enumerate(runs):
            if i not in gave_up and i not in left and done.done():
                assert done.result() == i
                turn.leave()
                turn.leave()  # a second leave (the worker's, the request's) gives nothing back twice
                left.add(i)
        time.sleep(0.001)
    pool.shutdown()
    assert not broken, broken
    assert sorted(ran) == sorted(set(range(len(requests))) - gave_up)
    assert adm.running == 0 and adm.enter("z") is None


def test_a_turn_that_comes_after_its_request_ended_goes_back_at_once_and_runs_nothing():
    adm = Admission(1, per_user=1)
    pool = ThreadPoolExecutor(1)
    gate = threading.Event()
    *_, first = adm.run("a", pool, lambda: gate.wait(20))
    turn, ticket, done = adm.run("b", pool, lambda: 1 / 0)
    assert ticket is not None and not ticket.done()
    turn.leave()  # b's request ends while it waits, without withdrawing (torn down)
    gate.set()
    assert first.result(20) is True
    deadline = time.monotonic() + 20
    while adm.running and time.monotonic() < deadline:
        time.sleep(0.001)
    assert adm.running == 0 and done.cancelled()
    pool.shutdown()
