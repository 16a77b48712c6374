"""Result and image formats: the writers and the negotiation that picks one."""

from .common import DEFAULT_FORMATS, MEDIA_TYPES, Format, ResultInfo, by_name, joined_bytes, json_values, negotiate, parse_accept, slices, text  # noqa: F401
