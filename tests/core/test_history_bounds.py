"""Each user's query history is bounded: their newest entries, up to a number and a total of query text, whatever
the other users do; the newest entry stays however long its text."""

from __future__ import annotations

import types

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.history import History

USERS = ("ann", "bob", "cy")


def _principal(name: str):
    return types.SimpleNamespace(name=name, ident=f"{name}-id", anonymous=False)


def _entry(user: str, text: str, when: float):
    ok = types.SimpleNamespace(rows_affected=None, rows_sent=1)
    return (_principal(user), text, "sql", {"context": "DEMO"}, when, when + 0.001, ok)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(USERS), st.integers(1, 400)), min_size=1, max_size=120),
       st.integers(0, 25), st.integers(200, 3000), st.integers(1, 4))
def test_a_users_history_keeps_their_newest_entries_within_its_bounds(tmp_path_factory, sent, most, text, batches):
    history = History(tmp_path_factory.mktemp("history") / "history.sqlite", interval=3600, per_user=most,
                      text_per_user=text, trim_every=0)  # fmt: skip
    try:
        chunk = max(1, len(sent) // batches)
        for i, (user, length) in enumerate(sent):
            history.pending.append(_entry(user, f"SELECT {i} -- " + "x" * length, 1000.0 + i))
            if i % chunk == chunk - 1:
                history.flush()
        history.flush()
        for user in USERS:
            mine = [(i, length) for i, (u, length) in enumerate(sent) if u == user]
            kept, total = [], 0  # the oracle: newest first, while within both bounds, the newest always
            for i, length in reversed(mine):
                size = len(f"SELECT {i} -- ") + length
                if kept and ((most and len(kept) >= most) or total + size > text):
                    break
                kept.append(i)
                total += size
            listed, count = history.list(_principal(user))
            assert count == len(kept) and [e["query"].split(" ")[1] for e in listed] == [str(i) for i in kept], (user, count)
    finally:
        history.close()
