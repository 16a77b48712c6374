"""Settings from the command line: JSON for lists and dicts, and the names of those that cannot be used.

Real servers started with settings that cannot be used are in tests/app/test_owner.py.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import DeferredConfigList, DeferredConfigString

from jupyter_archive.app import ArchiveApp
from jupyter_archive.settings import setting_error

# What a mount's JSON may hold: strings, numbers, booleans, null, nested a little.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
mounts = st.lists(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=5), max_size=4)
paths = st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)
                 .filter(lambda p: not p.lstrip().startswith("[")), max_size=4)


def command_line(*args: str) -> ArchiveApp:
    app = ArchiveApp()
    app.parse_command_line(list(args))
    return app


@settings(max_examples=60, deadline=None)
@given(mounts)
def test_list_of_dicts_takes_json_on_the_command_line(value):
    text = json.dumps(value)
    assert command_line(f"--ArchiveApp.mounts={text}").mounts == value
    # as `jupyter lab` hands over a setting of a class it does not know: unparsed strings
    for deferred in (DeferredConfigString(text), DeferredConfigList([text])):
        c = Config()
        c.ArchiveApp.mounts = deferred
        assert ArchiveApp(config=c).mounts == value


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=4), min_size=1, max_size=3))
def test_list_items_repeated_each_as_json(value):
    args = [f"--ArchiveApp.mounts={json.dumps(item)}" for item in value]
    assert command_line(*args).mounts == value


@settings(max_examples=40, deadline=None)
@given(paths)
def test_list_of_strings_as_json_or_repeated(value):
    assert command_line(f"--ArchiveApp.mount_roots={json.dumps(value)}").mount_roots == value
    if value:
        assert command_line(*(f"--ArchiveApp.mount_roots={p}" for p in value)).mount_roots == value


@pytest.mark.parametrize(
    ("arg", "setting", "words"),
    [
        ('--ArchiveApp.mounts=[{"path": "/x", "type": "files"', "ArchiveApp.mounts", "not valid JSON"),
        ('--ArchiveApp.mounts=[{"path": "/x"}, 5]', "ArchiveApp.mounts", "expected a dict"),
        ('--ArchiveApp.mounts={"path": "/x"', "ArchiveApp.mounts", "not valid JSON"),
        ("--ArchiveApp.mount_roots=[1, 2", "ArchiveApp.mount_roots", "not valid JSON"),
        ("--ArchiveApp.job_workers=0", "ArchiveApp.job_workers", "less than 1"),
        ("--ArchiveApp.quick_time_limit=-1", "ArchiveApp.quick_time_limit", "more than 0"),
        ("--ArchiveApp.demo_rows=many", "ArchiveApp.demo_rows", "expected an int"),
    ],
)
def test_an_unusable_setting_is_named(arg, setting, words):
    # As jupyter_server hands the extension its part of the command line: unparsed strings.
    name, value = arg.removeprefix("--ArchiveApp.").split("=", 1)
    c = Config()
    c.ArchiveApp[name] = DeferredConfigList([value])
    with pytest.raises(TraitError) as err:
        ArchiveApp(config=c)
    found = setting_error("ArchiveApp", err.value)
    assert found.name == setting and words in found.problem
