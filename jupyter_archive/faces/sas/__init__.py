"""The SAS Data Loader face (resources.py)."""

from .resources import sas_handlers
