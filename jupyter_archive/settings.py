"""The archive's settings as the command line and config files give them, checked before use.

List and dict settings take JSON on the command line
(``--ArchiveApp.mounts='[{"path": "/sdss", "type": "duckdb", "location": "/data/sdss.duckdb"}]'``),
as well as traitlets' own forms (a list setting repeated, ``key=value`` items). A setting
that cannot be used is a ``SettingError`` naming it: the server does not start.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from traitlets import Dict, List, TraitError


class SettingError(Exception):
    """A setting that cannot be used: ``name`` (``ArchiveApp.mounts``) and why."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


def _json(trait, text: str, want: type):
    """``text`` as JSON of type ``want``, or a TraitError naming the setting and the JSON error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TraitError(f"The {trait.name!r} trait: {text!r} is not valid JSON ({exc})") from None
    if not isinstance(value, want):
        raise TraitError(f"The {trait.name!r} trait: {text!r} is JSON but not a {want.__name__}")
    return value


def _looks_json(value, opener: str) -> bool:
    return isinstance(value, str) and value.strip().startswith(opener)


class JsonList(List):
    """A list setting that also takes one JSON array on the command line."""

    def from_string(self, s: str):
        return self.validate(None, _json(self, s, list)) if _looks_json(s, "[") else super().from_string(s)

    def from_string_list(self, s_list: list[str]):
        if len(s_list) == 1 and _looks_json(s_list[0], "["):
            return self.from_string(s_list[0])
        return self.validate(None, [self._trait.from_string(s) for s in s_list])

    def validate(self, obj, value):
        # traitlets keeps a command-line string it could not convert and validates it as is,
        # whose message would hide the JSON error: name that error instead.
        if isinstance(value, list) and len(value) == 1 and _looks_json(value[0], "["):
            value = _json(self, value[0], list)
        elif _looks_json(value, "["):
            value = _json(self, value, list)
        return super().validate(obj, value)


class JsonDict(Dict):
    """A dict setting (or list item) that also takes a JSON object on the command line."""

    def from_string(self, s: str):
        return _json(self, s, dict) if _looks_json(s, "{") else super().from_string(s)

    def from_string_list(self, s_list: list[str]):
        if len(s_list) == 1 and _looks_json(s_list[0], "{"):
            return self.from_string(s_list[0])
        return super().from_string_list(s_list)

    def validate(self, obj, value):
        if _looks_json(value, "{"):
            value = _json(self, value, dict)
        return super().validate(obj, value)


_TRAIT_NAME = re.compile(r"(?:The (?:value of the )?)?'(\w+)' trait(?: of an? \w+ instance)?")


def setting_error(section: str, exc: Exception) -> SettingError:
    """An error while loading config (traitlets' messages name the trait), as the setting it is about."""
    text = str(exc).rstrip(".")
    found = _TRAIT_NAME.search(text) or re.match(r"(\w+) only accepts", text)
    if found is None:
        return SettingError(section, text)
    return SettingError(f"{section}.{found.group(1)}", text.removeprefix(f"{found.group(0)}: "))


def usable_dir(name: str, path: str, *, create: bool) -> Path:
    """``path`` made absolute; a SettingError when it is not a directory this process can write
    (``create``: make it, parents included, when missing)."""
    if not path or not str(path).strip():
        raise SettingError(name, "is empty; give a directory")
    p = Path(os.path.abspath(Path(path).expanduser()))
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingError(name, f"{p} cannot be created: {exc.strerror or exc}") from None
    if not p.is_dir():
        raise SettingError(name, f"{p} is not a directory" if p.exists() else f"{p} does not exist")
    if create and not os.access(p, os.W_OK | os.X_OK):
        raise SettingError(name, f"{p} is not writable by this process")
    return p


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b|bytes?|(?:kilo|mega|giga|tera)bytes?)\s*", re.IGNORECASE)
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}


def size_bytes(value: str) -> int | None:
    """The bytes a size such as ``160MB``, ``10 GiB`` or ``2g`` names (as DuckDB reads it), or None for no size."""
    found = _SIZE.fullmatch(value or "")
    if found is None:
        return None
    unit = found.group(2).lower()
    base = 1024 if len(unit) <= 3 and unit[1:2] == "i" else 1000  # KiB, GiB: binary; KB, kilobytes: decimal
    return int(float(found.group(1)) * base ** _POWERS.get(unit[0], 0))


def size_setting(name: str, value: str, *, least: int) -> str:
    """``value`` (a DuckDB size such as ``160MB``, ``10 GiB``, ``2g``) when it names at least ``least`` bytes;
    a SettingError otherwise. DuckDB reads ``-5MB`` as no limit and refuses a bare number only at the first query."""
    size = size_bytes(value)
    if size is None:
        raise SettingError(name, f"{value!r} is not a size; give a number and a unit, e.g. 160MB or 10GB")
    if size < least:
        raise SettingError(name, f"{value!r} is less than the least that works, {least // 2**20} MiB")
    return value


_SHARE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def memory_cap(name: str, value: str, *, memory: int, using: int, floor: int = 4 << 30) -> int | None:
    """The bytes ``value`` caps a process at: a size (``8GB``), or a share of its ``memory`` (``50%``, but not under
    ``floor``: on a small machine the cap would otherwise stop ordinary work); None for no cap (empty or ``0``).
    A SettingError unless it leaves room past the ``using`` bytes the process holds already."""
    if value.strip() in ("", "0"):
        return None
    if share := _SHARE.fullmatch(value):
        if not 0 < float(share.group(1)) <= 100:
            raise SettingError(name, f"{value!r} is not a share of memory; give one from 1% to 100%")
        cap = max(int(memory * float(share.group(1)) / 100), floor)
    elif (cap := size_bytes(value)) is None:
        raise SettingError(name, f"{value!r} is neither a size nor a share of memory; e.g. 8GB or 50% (0: no cap)")
    if cap < using + (512 << 20):
        raise SettingError(name, f"{value!r} leaves less than 512 MiB past the {using >> 20} MiB this process holds already")
    return cap


def disk_bound(name: str, value: str, *, disk: int, least: int = 0) -> int | None:
    """The bytes ``value`` names of a disk of ``disk`` bytes: a size (``10GB``, or bytes) or a share of it (``5%``); None
    for none (empty or ``0``). A SettingError if it is neither, or less than ``least`` bytes."""
    if value.strip() in ("", "0"):
        return None
    if share := _SHARE.fullmatch(value):
        if not 0 < float(share.group(1)) <= 100:
            raise SettingError(name, f"{value!r} is not a share of the disk; give one from 1% to 100%")
        size = int(disk * float(share.group(1)) / 100)
    elif value.strip().isdigit():
        size = int(value)  # bytes
    elif (size := size_bytes(value)) is None:
        raise SettingError(name, f"{value!r} is neither a size nor a share of the disk; e.g. 10GB or 5% (0: none)")
    if size < least:
        raise SettingError(name, f"{value!r} is less than the least that works, {least // 2**20} MiB")
    return size


def engines_bound(most: int, cap: int | None, engine_limit: int | None) -> int:
    """The engines kept open at most: ``most`` (0: any number), and no more than half the process's memory ``cap``
    holds of ``engine_limit`` each (at least 4), so what idle engines keep cached cannot starve the queries running."""
    if not cap or not engine_limit:
        return most
    fit = max(4, cap // (2 * engine_limit))
    return min(most, fit) if most else fit
