"""Tokens answered from memory (``UserStore.principal_for_token``) say what the state file says.

Every request with an X-Auth-Token asks who it is, on the event loop; the store keeps each valid token's principal
in memory. Whatever this store changes (tokens revoked, users deleted, made again or raised) shows at once; what the
token command of another process changes (new users and tokens, a raised role) shows within ``token_ttl``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.users.store import UserStore

NAMES = ["ann", "bob", "cy"]


def on_file(path, token: str):
    """(name, admin, uid) the state file gives a token now, read apart from the store; None if none or expired."""
    con = sqlite3.connect(path)
    try:
        row = con.execute(
            "SELECT u.name, u.admin, u.uid, t.expires FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),  # tokens are stored as their SHA-256
        ).fetchone()
    finally:
        con.close()
    if row is None or (row[3] is not None and row[3] < time.time()):
        return None
    return row[0], bool(row[1]), row[2]


def said(principal):
    return None if principal is None else (principal.name, principal.admin, principal.ident)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("token"), st.sampled_from(NAMES), st.booleans()),
        st.tuples(st.just("revoke"), st.integers(0, 30)),
        st.tuples(st.just("revoke all"), st.sampled_from(NAMES)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("raise"), st.sampled_from(NAMES)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_tokens_from_memory_agree_with_the_file_after_every_change(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("users") / "state.sqlite"
    store = UserStore(path)
    store.token_ttl = 3600.0  # only this store's own changes: they must show at once, however long entries live
    tokens: list[str] = []
    try:
        for step in steps:
            kind = step[0]
            if kind == "token":
                tokens.append(store.create_token(step[1], admin=step[2]))
            elif kind == "revoke" and tokens:
                store.revoke_token(tokens[step[1] % len(tokens)])
            elif kind == "revoke all":
                store.revoke_tokens(step[1])
            elif kind == "delete":
                store.delete_user(step[1])
            elif kind == "raise":
                store.ensure_user(step[1], admin=True)
            for token in tokens:  # each asked twice: read from the file, then from memory
                for _ in range(2):
                    assert said(store.principal_for_token(token)) == on_file(path, token), (step, token)
        assert store.principal_for_token("not a token") is None
    finally:
        store.close()


def test_a_token_past_its_lifetime_is_refused_though_remembered(tmp_path):
    store = UserStore(tmp_path / "state.sqlite")
    try:
        token = store.token_for(store.ensure_user("ann"), lifetime=0.3)
        assert said(store.principal_for_token(token))[0] == "ann"
        time.sleep(0.4)
        assert store.principal_for_token(token) is None
    finally:
        store.close()


def test_what_another_process_changes_shows_within_the_ttl(tmp_path):
    path = tmp_path / "state.sqlite"
    store, command = UserStore(path), UserStore(path)  # ``command``: `jupyter archive token create` in another process
    store.token_ttl = 0.5
    try:
        token = store.create_token("ann")
        assert store.principal_for_token(token).admin is False
        other = command.create_token("bob")
        assert said(store.principal_for_token(other))[0] == "bob"  # a new token: at once
        command.create_token("ann", admin=True)  # raises ann's role
        assert store.principal_for_token(token).admin is False  # remembered for at most token_ttl
        time.sleep(0.6)
        assert store.principal_for_token(token).admin is True
    finally:
        store.close()
        command.close()
