"""IVOA SODA 1.0 sync (``{base}archive/soda/sync``): cutouts of the archive's images.

``ID`` (repeatable) names images by their archive path, ``L2/DEMO/calexp/1000`` (an
``ivo://...?L2/DEMO/calexp/1000`` form is accepted too); the stencils are ``POS``
(``CIRCLE ra dec r``, ``RANGE ra1 ra2 dec1 dec2``, ``POLYGON ra1 dec1 ...``), ``CIRCLE`` and
``POLYGON`` (all repeatable, degrees, ICRS); each ID x each stencil is one cutout, clipped at
the image's edge. ``CUTOUTDETAIL=MaskedImage`` adds the mask and variance planes. One cutout
answers as FITS with the pixels in the primary HDU; several as extensions. When no cutout
overlaps its image the answer is 204 No Content. Parameter names are case-insensitive.

Errors are DALI's plain text, starting with the error word: ``UsageError: ...`` (400),
``NotFoundFault: ...`` (404), ``AuthorizationFault: ...`` (401/403).
"""

from __future__ import annotations

from ..core import formats
from ..core.errors import ArchiveError, bad_request
from .base import PLAIN_TEXT, ArchiveHandler, endpoint

SODA_SYNC = "ivo://ivoa.net/std/SODA#sync-1.0"
_STENCILS = ("POS", "CIRCLE", "POLYGON")
_UNSUPPORTED = ("BAND", "TIME", "POL")


class SodaHandler(ArchiveHandler):
    """SODA errors as text/plain with DALI's leading error word."""

    face = "soda"
    error_media = PLAIN_TEXT

    def error_body(self, err: ArchiveError):
        if err.status in (401, 403):
            word = "AuthorizationFault"
        elif err.status == 404:
            word = "NotFoundFault"
        elif err.status >= 500:
            word = "Error"
        else:
            word = "UsageError"
        return err.status, f"{word}: {err.message}\n"

    def soda_params(self) -> dict[str, list[str]]:
        """Every parameter (query string and form body), names upper-cased, values in order."""
        out: dict[str, list[str]] = {}
        for name, values in self.arguments().items():
            out.setdefault(name.upper(), []).extend(values)
        return out


class SyncHandler(SodaHandler):
    """``GET|POST archive/soda/sync``: the cutouts, as FITS."""

    @endpoint(anonymous=True)
    async def get(self):
        await self._sync()

    post = get

    async def _sync(self):
        params = self.soda_params()
        for name in _UNSUPPORTED:
            if any(v.strip() for v in params.get(name, [])):
                raise bad_request(f"{name} is not supported: the archive's images have no {name.lower()} axis")
        fmt = (params.get("RESPONSEFORMAT") or [""])[-1].strip().lower()
        if fmt and not _fits(fmt):
            raise bad_request(f"RESPONSEFORMAT {fmt!r} is not supported; cutouts come as FITS (image/fits)")
        detail = (params.get("CUTOUTDETAIL") or ["Image"])[-1]
        ids = [v for v in params.get("ID", []) if v.strip()]
        stencils = [(name, v) for name in _STENCILS for v in params.get(name, []) if v.strip()]
        data = await self.call(self.archive.images.soda_cutouts, self.principal, ids, stencils, detail)
        if data is None:
            self.set_status(204)
            self.finish()
            return
        self.set_header("Content-Disposition", 'attachment; filename="cutout.fits"')
        self.finish(data, set_content_type="application/fits")


class CapabilitiesHandler(SodaHandler):
    """``GET archive/soda/capabilities``: VOSI capabilities of this SODA service."""

    @endpoint(anonymous=True)
    async def get(self):
        base = self.archive_url("soda", absolute=True)
        self.finish(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            '  <capability standardID="ivo://ivoa.net/std/VOSI#capabilities">\n'
            f'    <interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="full">{base}/capabilities</accessURL></interface>\n'
            "  </capability>\n"
            f'  <capability standardID="{SODA_SYNC}">\n'
            f'    <interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="base">{base}/sync</accessURL></interface>\n'
            "  </capability>\n"
            "</vosi:capabilities>\n",
            set_content_type="text/xml; charset=UTF-8",
        )


def _fits(value: str) -> bool:
    """Whether a RESPONSEFORMAT names FITS (a name or media type of the archive's FITS images)."""
    try:
        return formats.image_format(value).name == "fits"
    except ArchiveError:
        return False


def soda_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/soda/sync/?", SyncHandler),
        (r"archive/soda/capabilities/?", CapabilitiesHandler),
    ]
