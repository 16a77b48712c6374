"""The data dir's lock (core/ownership.py), in-process: one holder at a time, and who it is.

Servers sharing a data dir are in tests/app/test_owner.py.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.ownership import LOCK_NAME, NOTE_NAME, DataDirLock


def test_the_lock_has_one_holder_at_a_time(tmp_path):
    data = tmp_path / "data"
    first, second = DataDirLock(data), DataDirLock(data)
    assert first.acquire() and first.acquire()  # taking it again is a no-op
    assert not second.acquire()
    note = second.holder()
    assert note["pid"] == os.getpid() and note["alive"] and note["url"] is None and note["secret"] == first.secret
    assert stat.S_IMODE((data / NOTE_NAME).stat().st_mode) == 0o600  # the secret: this OS user only
    first.announce("http://127.0.0.1:1/base/")
    assert second.holder()["url"] == "http://127.0.0.1:1/base/"
    first.release()
    assert not (data / NOTE_NAME).exists()
    assert second.acquire() and second.secret != first.secret
    second.release()


def test_a_stale_note_is_not_a_live_owner(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / LOCK_NAME).touch()
    (data / NOTE_NAME).write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:1/", "secret": "x"}))
    lock = DataDirLock(data)
    assert lock.holder()["alive"] is False
    assert lock.acquire()  # the kernel holds no lock for a dead process
    assert lock.holder()["pid"] == os.getpid()
    lock.release()


def test_an_archive_never_opens_a_data_dir_another_holds(archive_data_dir):
    holder = DataDirLock(archive_data_dir)
    assert holder.acquire()
    before = sorted(p.name for p in archive_data_dir.iterdir())
    try:
        with pytest.raises(ArchiveError) as err:
            Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
        assert err.value.status == 409 and f"pid {os.getpid()}" in err.value.message
        assert sorted(p.name for p in archive_data_dir.iterdir()) == before  # nothing written
    finally:
        holder.release()
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    a.close()
