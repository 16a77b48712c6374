"""The SAS Data Loader face (``{base}archive/sas``): directives and the jobs that run them."""

from __future__ import annotations


def sas_handlers() -> list[tuple[str, type]]:
    return []
