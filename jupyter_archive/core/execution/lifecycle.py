"""Which engine of each key lives: opened for its spec when first leased, replaced when the spec changes, closed when
replaced and idle, when nobody has used it for a while, or when too many are open (``EngineLifecycle``).
``engines`` says what an engine is (its spec, the locked instance); the pool (``pool``) lends its connections."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArchiveError, held_elsewhere, not_found
from ..memory import release_memory
from .engines import Attachment, EngineSpec, Specs, describe

if TYPE_CHECKING:
    from .pool import Engine, Lease

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Generation:
    """One engine of a key, as the lifecycle tracks it."""

    key: Hashable
    engine: Engine
    spec: EngineSpec
    version: int  # the lifecycle's version the spec was checked against
    missing: frozenset[str] = frozenset()  # aliases left out: their files were held elsewhere
    retired: bool = False
    files: dict[Path, bool] = field(default_factory=dict)  # resolved path -> attached read-only

    def serves(self, need: Iterable[str], want: dict[str, Attachment]) -> bool:
        have = self.engine.attachments
        return all(have.get(a) == want[a] for a in need)


class EngineLifecycle:
    """Every engine of the archive, by key: opened for its spec when first leased, replaced when the spec changes (or
    ``renew`` asks), closed once replaced (or its key ended) and idle, and closed when nobody has leased it for
    ``idle_seconds`` or when more than ``most_open`` are open and it is the least recently used (the next lease opens
    it again). The engine pool holds one and lends from it.

    A locked instance cannot attach more files, and DuckDB lets only one instance of a process hold a file
    read-write, so a changed spec means a new engine, made safely:

    - an engine is closed only once it has been replaced (or its user deleted) *and* its last lease has come back:
      nothing closes an engine under a running job, a streamed result or an upload;
    - a new engine attaches only files that no live engine holds in a conflicting mode. A file still held by a
      replaced engine (a user's MyDB under a long job) is left out, and the new engine, *incomplete*, is itself
      replaced by a complete one as soon as the file is free;
    - a replaced engine goes on serving what it has unchanged (the user's MyDB while their job runs); only a lease
      needing a file still held elsewhere waits, bounded.

    ``cond`` guards it all (the pool leases and waits under it); ``current`` (each key's newest generation) and
    ``version`` (up by one at each ``refresh``) are what the pool's fast path reads. ``make(attachments, temp_dir=,
    spill_dir=)`` opens an engine (the pool's ``Engine``).
    """

    def __init__(self, specs: Specs, make: Callable[..., Engine], *, idle_seconds: float | None = None, most_open: int = 0,
                 resting: float = 10.0):  # fmt: skip
        self.specs = specs
        self._make = make
        self.idle_seconds = idle_seconds or None  # None: an engine in no one's use stays open
        # Past this many current engines, the least recently used with no lease out closes (0: any number). Each holds
        # a DuckDB instance (~5 MB) and its threads; a burst of a few hundred users must not keep them all until idle.
        self.most_open = most_open
        self.resting = resting  # seconds unused before an engine may close for being past most_open (within twice it)
        self._idle_watch: threading.Thread | None = None
        self.cond = threading.Condition()
        self.current: dict[Hashable, Generation] = {}
        self.version = 0
        self.closed = False
        self._retired: list[Generation] = []
        self._cleanups: dict[Hashable, list[Callable[[], None]]] = {}
        self._serial = 0

    def choose(self, key, need, pinned) -> tuple[Generation | None, frozenset[str]]:
        """The generation whose engine serves ``need`` (see ``EnginePool.lease``), or None and the
        aliases it waits for; opens or replaces the key's engine when its spec asks for it."""
        spec = self.specs.spec(key)
        if spec is None:
            self._end(key)
            raise not_found(f"{describe(key)} no longer exists")
        want = spec.by_alias()
        need = frozenset(want) if need is None else need
        unknown = need - want.keys()
        if unknown:
            raise ArchiveError(
                "conflict",
                f"the mounts changed while the query was prepared ({', '.join(sorted(unknown))} is gone); run it again",
                409,
            )
        if pinned is not None:
            gens = [g for g in self._live(key) if g.engine is pinned]
            if gens and gens[0].serves(need, want):
                return gens[0], frozenset()
            if gens and not gens[0].retired and need & gens[0].missing:
                raise held_elsewhere(need & gens[0].missing)
            raise ArchiveError("conflict", "the mounts changed while the request was prepared; send it again", 409)
        current = self._current_for(key, spec)
        for gen in [current, *reversed([g for g in self._retired if g.key == key])]:
            if gen.serves(need, want):
                return gen, frozenset()
        blocked = need & current.missing
        if not blocked:
            raise ArchiveError("conflict", "the mounts changed while the query was prepared; run it again", 409)
        return None, blocked

    def _current_for(self, key: Hashable, spec: EngineSpec) -> Generation:
        """The key's newest engine, replaced first if its spec changed or if it is incomplete and
        the files it lacks are free now."""
        gen = self.current.get(key)
        if gen is not None and gen.spec != spec:
            self._retire(gen)
            gen = None
        if gen is not None and gen.missing and not self._conflicts(spec, [a for a in spec.attachments if a.alias in gen.missing]):
            self._retire(gen)
            gen = None
        if gen is None:
            gen = self._open(key, spec)
        gen.version = self.version
        return gen

    def _open(self, key: Hashable, spec: EngineSpec) -> Generation:
        held = self._conflicts(spec, spec.attachments)
        attach = [a for a in spec.attachments if a.alias not in held]
        self._serial += 1
        engine = self._make(attach, temp_dir=spec.temp_dir, spill_dir=spec.temp_dir / f".spill-{self._serial}", read_dirs=spec.read_dirs)
        gen = Generation(key, engine, spec, self.version, frozenset(held),
                         files={_real(a.path): a.read_only for a in attach})  # fmt: skip
        self.current[key] = gen
        if self.most_open and len(self.current) > self.most_open:
            self._close_least_used(gen)
        if self.idle_seconds:
            if self._idle_watch is None:
                self._idle_watch = threading.Thread(target=self._close_idle, name="archive-engines-idle", daemon=True)
                self._idle_watch.start()
            self.cond.notify_all()  # the idle watch sleeps without a deadline while no engine is open
        if held:
            log.info("engine %s opened without %s: still held by an engine being replaced", key, ", ".join(sorted(held)))
        return gen

    def _close_least_used(self, opened: Generation) -> None:
        """Close engines nobody holds, least recently used first, until ``most_open`` are open (``opened``, about to
        be leased, stays): those unused for ``resting`` seconds, and past twice ``most_open`` any. Engines in steady
        use stay within twice the bound (closing them made 50 users mixing queries on 40 engines reopen one for nearly
        every request, ~17 ms of CPU each: 130 requests a second instead of 700); a burst of users that come once is
        held to twice the bound. Engines with a lease out stay open, and close when idle or at a later opening."""
        free = sorted((g for g in self.current.values() if g is not opened and g.engine.leases == 0), key=lambda g: g.engine.idle_since)
        rested = time.monotonic() - self.resting
        closing = [g for g in free if g.engine.idle_since <= rested][: len(self.current) - self.most_open]
        if (excess := len(self.current) - len(closing) - 2 * self.most_open) > 0:
            closing += [g for g in free if g not in closing][:excess]
        for gen in closing:
            log.debug("engine of %s closed: %d engines are open", describe(gen.key), len(self.current))
            self._retire(gen)  # no lease is out: closed at once

    def _conflicts(self, spec: EngineSpec, attachments: Iterable[Attachment]) -> set[str]:
        """Aliases whose files a live engine holds so that attaching them here would fail:
        a file held read-write anywhere, or wanted read-write here and held at all."""
        holders: dict[Path, bool] = {}  # path -> held read-only only
        for gen in self._live():
            for path, read_only in gen.files.items():
                holders[path] = holders.get(path, True) and read_only
        return {
            a.alias
            for a in attachments
            if (ro := holders.get(_real(a.path))) is not None and not (ro and a.read_only)
        }

    def _live(self, key: Hashable | None = None) -> list[Generation]:
        gens = [*self.current.values(), *self._retired]
        return gens if key is None else [g for g in gens if g.key == key]

    # -- changes ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The specs may have changed (a mount came or went): replace the engines that differ.
        Those still in use go on serving their holders and close when the last one is done."""
        with self.cond:
            self.version += 1
            for key, gen in list(self.current.items()):
                spec = self.specs.spec(key)
                if spec is None:
                    self._end(key)
                elif spec != gen.spec:
                    self._retire(gen)
                else:
                    gen.version = self.version
            self.cond.notify_all()

    def discard(self, key: Hashable, cleanup: Callable[[], None] | None = None) -> None:
        """End a key (a deleted user): its engines get no new leases, what runs on them is
        interrupted, and ``cleanup`` runs once the last of them has closed (at once if none is open)."""
        with self.cond:
            gens = self._end(key)
            if cleanup is not None:
                if any(not g.engine.closed for g in gens):
                    self._cleanups.setdefault(key, []).append(cleanup)
                else:
                    cleanup()
        for gen in gens:
            gen.engine.interrupt()

    def renew(self, engine: Engine, cleanup: Callable[[], None]) -> None:
        """Replace ``engine`` as a changed spec would, and run ``cleanup`` (under ``cond``: no engine opens meanwhile)
        once every engine of its key has closed, so it may open the key's files alone."""
        with self.cond:
            for gen in self._live():
                if gen.engine is engine:
                    self._cleanups.setdefault(gen.key, []).append(cleanup)
                    self._retire(gen)
                    return

    def _end(self, key: Hashable) -> list[Generation]:
        gen = self.current.get(key)
        if gen is not None:
            self._retire(gen)
        return [g for g in self._retired if g.key == key]

    def _retire(self, gen: Generation) -> None:
        if self.current.get(gen.key) is gen:
            del self.current[gen.key]
        if not gen.retired:
            gen.retired = True
            self._retired.append(gen)
            # Only a replaced engine has anything to do when idle: the others skip the lock.
            gen.engine.on_idle = lambda _engine: self._idle(gen)
        if gen.engine.leases == 0:
            self._close(gen)

    def _idle(self, gen: Generation) -> None:
        with self.cond:
            # Re-checked here: a lease may have been given out again since the count hit zero.
            if gen.retired and gen.engine.leases == 0:
                self._close(gen)

    def _close(self, gen: Generation) -> None:
        gen.engine.close()
        if gen in self._retired:
            self._retired.remove(gen)
        shutil.rmtree(gen.engine.spill_dir, ignore_errors=True)
        if not self._live(gen.key):
            for cleanup in self._cleanups.pop(gen.key, []):
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - a failed clean-up must not stop the others
                    log.exception("clean-up after engine %s failed", gen.key)
        self.cond.notify_all()

    def _close_idle(self) -> None:
        """The idle watch (a thread): close each current engine that no lease has used for
        ``idle_seconds``; its buffers and caches go with it. An engine with a lease out (a streamed
        result, a running job, a TAP upload) is never closed: the pool leases under ``cond``, held here."""
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                wake = None
                closed = False
                for gen in list(self.current.values()):
                    # An engine with a lease out comes back idle no sooner than an idle time from now.
                    due = now + self.idle_seconds if gen.engine.leases else gen.engine.idle_since + self.idle_seconds
                    if due <= now:
                        log.debug("engine of %s closed: idle for %.0f s", describe(gen.key), now - gen.engine.idle_since)
                        self._retire(gen)  # no lease is out: closed at once
                        closed = True
                    else:
                        wake = due if wake is None else min(wake, due)
                if closed and not self.current:
                    release_memory()
                self.cond.wait(None if wake is None else wake - now)

    def holding(self, path: Path) -> tuple[Lease, str] | None:
        """A lease of a live engine that has the file ``path`` attached, and its alias there;
        None if no engine holds it (then another instance may open it read-only)."""
        real = _real(path)
        with self.cond:
            for gen in self._live():
                for alias, a in gen.engine.attachments.items():
                    if _real(a.path) == real and not gen.engine.closed:
                        return gen.engine.cursor(), alias
        return None

    # -- inspection and shutdown ---------------------------------------------------------------------
    def engines(self, key: Hashable | None = None) -> list[Engine]:
        """The live engines (of one key), newest first."""
        with self.cond:
            return [g.engine for g in reversed(self._live(key))]

    def clear(self) -> None:
        """Close every engine now, in use or not (the archive is stopping)."""
        with self.cond:
            self.closed = True
            gens = self._live()
            self.current, self._retired = {}, []
            self.cond.notify_all()
        for gen in gens:
            gen.engine.interrupt()
            gen.engine.close()


def _real(path: Path) -> Path:
    return Path(path).resolve()
