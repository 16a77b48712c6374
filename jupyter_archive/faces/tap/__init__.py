"""The IVOA TAP 1.1 face (dali.py, uws.py)."""

from .dali import tap_handlers
