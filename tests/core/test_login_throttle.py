"""Wrong passwords a client may try (``core/users/throttle.py``), on a clock the test moves."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.users.throttle import LoginThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(throttle: LoginThrottle, name: str, client: str) -> int | None:
    """The Retry-After of a refused check, None when the check may be made."""
    try:
        throttle.check(name, client)
    except ArchiveError as err:
        assert err.status == 429 and err.code == "too_many_requests"
        return err.details["retry_after"]
    return None


def test_a_user_name_is_held_for_one_client_only_and_refills():
    clock = Clock()
    t = LoginThrottle(per_user=5, per_client=30, window=60.0, clock=clock)
    for _ in range(5):
        assert refused(t, "alice", "10.0.0.1") is None
        t.failed("alice", "10.0.0.1")
    assert refused(t, "Alice", "10.0.0.1") == 12  # one more try refills in 60 s / 5
    assert refused(t, "alice", "10.0.0.2") is None  # the user from elsewhere: not locked out
    assert refused(t, "bob", "10.0.0.1") is None
    clock.now += 12
    assert refused(t, "alice", "10.0.0.1") is None


def test_a_client_trying_many_names_is_held_too():
    clock = Clock()
    t = LoginThrottle(per_user=5, per_client=30, window=60.0, clock=clock)
    for i in range(30):
        assert refused(t, f"user{i}", "10.0.0.1") is None
        t.failed(f"user{i}", "10.0.0.1")
    assert refused(t, "someone-else", "10.0.0.1") == 2
    assert refused(t, "someone-else", "10.0.0.2") is None


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"]), st.floats(0, 30)), max_size=60))
def test_no_client_gets_more_tries_than_its_buckets_allow(steps):
    """Whatever the order and the pauses: in any 60 s, a client makes at most 5 + refills tries at a name,
    and a refusal means the buckets are empty (it names a wait of at least a second)."""
    clock = Clock()
    t = LoginThrottle(per_user=5, per_client=8, window=60.0, clock=clock)
    tried: dict[tuple[str, str], list[float]] = {}
    for name, client, pause in steps:
        clock.now += pause
        wait = refused(t, name, client)
        if wait is None:
            t.failed(name, client)
            tried.setdefault((name, client), []).append(clock.now)
        else:
            assert wait >= 1
    for times in tried.values():
        for start in times:  # at most 5 at once, one more for each 12 s since
            inside = [x for x in times if start <= x < start + 60]
            assert len(inside) <= 5 + int((inside[-1] - start) / 12)


def test_the_buckets_kept_are_bounded(monkeypatch):
    import jupyter_archive.core.users.throttle as throttle

    monkeypatch.setattr(throttle, "MOST_KEYS", 50)
    t = LoginThrottle(clock=Clock())
    for i in range(200):
        t.failed(f"user{i}", f"10.0.{i}.1")
    assert len(t._buckets) <= 50


def test_a_refusal_is_an_archive_error():
    t = LoginThrottle(per_user=1, clock=Clock())
    t.failed("a", "x")
    with pytest.raises(ArchiveError):
        t.check("a", "x")
