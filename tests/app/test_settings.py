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


# Sizes as a person writes them: numbers (some negative, some fractional) and units DuckDB knows or does not.
sizes = st.builds(
    lambda n, space, unit: f"{n}{space}{unit}",
    st.one_of(st.integers(-5, 5000), st.floats(0, 5000, allow_nan=False).map(lambda f: round(f, 2))),
    st.sampled_from(["", " "]),
    st.sampled_from(["", "B", "bytes", "KB", "kb", "KiB", "MB", "mb", "MiB", "GB", "GiB", "g", "m", "T", "%", "gigabytes", "MBs", "xb"]),
)


@settings(max_examples=300, deadline=None)
@given(sizes)
def test_a_size_is_accepted_only_as_duckdb_reads_it(value):
    """What ``size_setting`` lets through, DuckDB reads as the same number of bytes (and as a limit: -5MB is none);
    what DuckDB refuses, or reads as below the least, it refuses (else the first query would answer 500)."""
    import duckdb

    from jupyter_archive.settings import SettingError, size_setting

    least = 16 << 20
    try:
        con = duckdb.connect(config={"memory_limit": value})
        shown = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        con.close()
    except duckdb.Error:
        shown = None
    try:
        size_setting("ArchiveApp.engine_memory_limit", value, least=least)
    except SettingError:
        return
    assert shown is not None, f"{value!r} accepted, DuckDB refuses it"
    number, unit = shown.split()
    got = float(number) * 1024 ** ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"].index(unit)
    want = float(value.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ% "))
    assert got >= least * 0.95 and want > 0, f"{value!r} accepted: DuckDB reads {shown}"


def test_sizes_read_binary_and_decimal_units_as_duckdb_does():
    from jupyter_archive.settings import SettingError, size_setting

    least = 16 << 20  # 16 MiB = 16.78 MB
    for ok in ("16MiB", "16.8MB", "17 megabytes", "0.02GB", "16384KiB"):
        assert size_setting("x", ok, least=least) == ok
    for low in ("16MB", "16 megabytes", "16383KiB", "16383.9KiB"):
        with pytest.raises(SettingError, match="less than"):
            size_setting("x", low, least=least)


@pytest.mark.parametrize(("arg", "words"), [
    ("--ArchiveApp.engine_memory_limit=lots", "not a size"),
    ("--ArchiveApp.engine_memory_limit=-5MB", "not a size"),  # DuckDB: no limit at all
    ("--ArchiveApp.engine_memory_limit=1 byte", "less than"),
    ("--ArchiveApp.engine_spill_limit=1000", "not a size"),  # DuckDB refuses it only at the first query: a 500
    ("--ArchiveApp.lookup_memory=256", "not a size"),
    ("--ArchiveApp.lookup_memory=10KB", "less than"),
])
def test_a_size_that_cannot_be_used_stops_the_start(tmp_path, arg, words):
    from jupyter_archive.settings import SettingError

    app = command_line(arg, f"--ArchiveApp.data_dir={tmp_path}")
    with pytest.raises(SettingError) as err:
        app.check_settings()
    assert err.value.name == "ArchiveApp." + arg.split("=")[0].removeprefix("--ArchiveApp.") and words in err.value.problem


def _wanted(value: str, total: int, *, floor: int = 0, bytes_too: bool = False) -> int | None | str:
    """The bytes a size-or-share setting ``value`` asks for, read apart from the archive's code: a size, a share of
    ``total`` (not under ``floor``), a bare number of bytes (``bytes_too``); None for none, "bad" for neither."""
    from jupyter_archive.settings import size_bytes

    text = value.strip()
    if text in ("", "0"):
        return None
    if text.endswith("%"):
        try:
            share = float(text[:-1].strip())
        except ValueError:
            return "bad"
        return max(int(total * share / 100), floor) if 0 < share <= 100 and text[0].isdigit() else "bad"
    if bytes_too and text.isdigit():
        return int(text)
    size = size_bytes(value)
    return "bad" if size is None else size


def _cap_wanted(value: str, memory: int) -> int | None | str:
    """The cap ``value`` asks for: bytes, None for no cap, "bad" for neither."""
    return _wanted(value, memory, floor=4 << 30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(sizes, st.builds(lambda n: f"{n}%", st.integers(-5, 150) | st.floats(0, 120).map(lambda f: round(f, 1))),
                 st.sampled_from(["", "0", " 0 ", "none", "%", "5 %"])),
       st.integers(1 << 30, 1 << 40), st.integers(0, 8 << 30))
def test_a_memory_cap_is_a_size_or_a_share_that_leaves_room(value, memory, using):
    """``process_memory_limit``: a size, or a share of memory (never under 4 GiB), past what the process holds
    by at least 512 MiB; no cap for nothing or 0; anything else a SettingError naming the setting."""
    from jupyter_archive.settings import SettingError, memory_cap

    wanted = _cap_wanted(value, memory)
    try:
        cap = memory_cap("ArchiveApp.process_memory_limit", value, memory=memory, using=using)
    except SettingError as err:
        assert err.name == "ArchiveApp.process_memory_limit"
        assert wanted == "bad" or wanted < using + (512 << 20), (value, wanted)
        return
    assert cap == wanted and (cap is None or cap >= using + (512 << 20)), (value, cap, wanted)


@pytest.mark.parametrize(("value", "words"), [
    ("lots", "neither a size nor a share"), ("0%", "from 1% to 100%"), ("101%", "from 1% to 100%"),
    ("1MB", "less than 512 MiB past"), ("-5GB", "neither a size nor a share"),
])
def test_a_memory_cap_that_cannot_be_used_stops_the_start(tmp_path, value, words):
    from jupyter_archive.settings import SettingError

    app = command_line(f"--ArchiveApp.process_memory_limit={value}", f"--ArchiveApp.data_dir={tmp_path}")
    with pytest.raises(SettingError) as err:
        app.check_settings()
    assert err.value.name == "ArchiveApp.process_memory_limit" and words in err.value.problem


def _disk_wanted(value: str, disk: int, least: int) -> int | None | str:
    """The bytes a disk bound ``value`` asks for: None for none, "bad" for neither or less than ``least``."""
    size = _wanted(value, disk, bytes_too=True)
    return size if size in (None, "bad") or size >= least else "bad"


@settings(max_examples=300, deadline=None)
@given(st.one_of(sizes, st.integers(0, 1 << 42).map(str),
                 st.builds(lambda n: f"{n}%", st.integers(-5, 150) | st.floats(0, 120).map(lambda f: round(f, 1))),
                 st.sampled_from(["", "0", " 0 ", "none", "%", "5 %", "-1", "1e9"])),
       st.integers(1 << 30, 1 << 44), st.sampled_from(["mydb_quota", "results_quota", "hats_quota", "disk_reserve"]))
def test_a_disk_bound_is_a_size_bytes_or_a_share_of_the_disk(value, disk, name):
    """``mydb_quota``, ``results_quota``, ``hats_quota`` and ``disk_reserve``: a size, a number of bytes, or a share of the data dir's
    disk; none for nothing or 0; a quota of at least 1 MiB; anything else a SettingError naming the setting."""
    from jupyter_archive.settings import SettingError, disk_bound

    least = 0 if name == "disk_reserve" else 1 << 20
    wanted = _disk_wanted(value, disk, least)
    try:
        got = disk_bound(f"ArchiveApp.{name}", value, disk=disk, least=least)
    except SettingError as err:
        assert err.name == f"ArchiveApp.{name}" and wanted == "bad", (value, wanted)
        return
    assert got == wanted, (value, got, wanted)


@pytest.mark.parametrize(("arg", "words"), [
    ("--ArchiveApp.mydb_quota=lots", "neither a size nor a share"), ("--ArchiveApp.mydb_quota=200kB", "less than the least"),
    ("--ArchiveApp.disk_reserve=0%", "from 1% to 100%"), ("--ArchiveApp.disk_reserve=-5GB", "neither a size nor a share"),
    ("--ArchiveApp.hats_quota=12", "less than the least"), ("--ArchiveApp.results_quota=x%", "neither a size nor a share"),
])
def test_a_disk_bound_that_cannot_be_used_stops_the_start(tmp_path, arg, words):
    from jupyter_archive.settings import SettingError

    app = command_line(arg, f"--ArchiveApp.data_dir={tmp_path}")
    with pytest.raises(SettingError) as err:
        app.check_settings()
    assert err.value.name == arg.split("=")[0][2:] and words in err.value.problem


@pytest.mark.parametrize(("arg", "wanted"), [(None, None), ("auto", None), ("AUTO", None), ("0", 0), ("5%", "share"), ("300MB", 300_000_000)])
def test_the_disk_reserve_is_auto_unless_set(tmp_path, arg, wanted):
    """Unset (or ``auto``) the reserve is 1 GiB, or 5% of a smaller disk: a test machine's small temp disk keeps its
    writes; set, it is what it says."""
    import shutil

    from jupyter_archive.core.archive import Archive
    from jupyter_archive.core.config import ArchiveConfig

    app = command_line(f"--ArchiveApp.data_dir={tmp_path}", *([f"--ArchiveApp.disk_reserve={arg}"] if arg else []))
    app.check_settings()
    got = app.archive_config().disk_reserve
    total = shutil.disk_usage(tmp_path).total
    assert got == (int(total * 5 / 100) if wanted == "share" else wanted), (arg, got)
    archive = Archive(ArchiveConfig(data_dir=tmp_path / "data", demo=False, disk_reserve=got))
    try:
        assert archive.storage.reserve == (min(1 << 30, total // 20) if got is None else got)
    finally:
        archive.close()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.one_of(st.none(), st.integers(1 << 30, 1 << 40)), st.one_of(st.none(), st.integers(16 << 20, 1 << 34)))
def test_engines_kept_open_fit_half_the_memory_cap(most, cap, limit):
    """``engines_open`` as the server applies it: never more than asked (0: any number), and, under a memory cap, no
    more than half of it holds at each engine's memory limit, though at least 4."""
    from jupyter_archive.settings import engines_bound

    got = engines_bound(most, cap, limit)
    if cap is None or limit is None:
        assert got == most
        return
    assert most == 0 or got <= most  # never more than asked
    assert got >= min(most or 4, 4)  # never fewer than 4 (unless asked for fewer)
    assert got <= 4 or got * 2 * limit <= cap, (got, most, cap, limit)  # their limits fill at most half the cap
    assert got == most or got == 4 or (got + 1) * 2 * limit > cap  # and as many as fit


def test_a_small_memory_cap_keeps_fewer_engines_open(tmp_path):
    app = command_line("--ArchiveApp.process_memory_limit=6GB", "--ArchiveApp.engine_memory_limit=500MB", f"--ArchiveApp.data_dir={tmp_path}")
    app.check_settings()
    assert app.archive_config().engines_open == 6  # 6 GB / (2 x 500 MB)
    app = command_line("--ArchiveApp.process_memory_limit=0", f"--ArchiveApp.data_dir={tmp_path}")
    app.check_settings()
    assert app.archive_config().engines_open == 64
