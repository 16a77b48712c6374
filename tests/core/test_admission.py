"""Admission: each user's fair share of the quick workers (core/execution/run.py ``Admission``).

The rules: at most ``workers`` admitted at once and ``per_user`` of one user's; a lone user gets every worker but
one; over a limit a request waits on a ticket; a freed worker goes to the waiting user running the fewest, ties in
turn; no ticket is lost; past ``max_waiting`` waiting requests of one user, a 429 at once.
"""

from __future__ import annotations

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
