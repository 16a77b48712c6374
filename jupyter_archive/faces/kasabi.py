"""The Kasabi Jobs face (``{base}archive/kasabi/dataset/{short-code}/jobs``)."""

from __future__ import annotations


def kasabi_handlers() -> list[tuple[str, type]]:
    return []
