"""Survey images beside the catalogs: collections, planes, footprints and cutouts (astropy).

An *image* is a FITS file with a celestial WCS. Its *planes* are its 2-d image HDUs: those
named ``IMAGE``/``DATA``/``SCI`` (data), ``MASK`` and ``VARIANCE`` (``VAR``), or else the
first, second and third image HDU in order (the layout of LSST's afw exposures). Images are
grouped as ``level / collection / kind / id``: the level is ``L2`` (the archive's own
releases), the collection is the context of the mount holding the file, the kind is the
folder the file sits in (``calexp/1000.fits``; a ``KIND`` header keyword wins) and the id is
the file's stem (or its ``IMAGEID`` keyword).

A source may also declare its images in an index table ``images`` (columns ``id``, ``kind``,
``path``; optionally ``footprint`` as ``ra1 dec1 ra2 dec2 ...`` degrees, ``owner``,
``created``): those files are described by their rows and not by a scan.

Every image's footprint (its four corner positions) is known from the headers alone, so
"which images cover (ra, dec)" is answered without reading pixels. Cutting an opened image
(:class:`LoadedImage`) is :mod:`.cut`'s work.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import times
from ..errors import ArchiveError, bad_request, not_found

log = logging.getLogger(__name__)

PLANES = ("data", "mask", "variance")
_EXTNAMES = {
    "data": ("IMAGE", "DATA", "SCI"),
    "mask": ("MASK", "DQ"),
    "variance": ("VARIANCE", "VAR"),
}
_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fz")
DEFAULT_LEVEL = "L2"
PUBLIC_OWNER = "archive"
_LOADED_CACHE = 16  # open images kept for cutouts (files stay memory-mapped)


@dataclass(frozen=True)
class ImageSource:
    """A folder of images (and maybe an index table) that belongs to one context."""

    level: str
    collection: str  # the mount's context name, e.g. "DEMO"
    folder: Path
    index_db: Path | None = None  # a DuckDB file that may hold an ``images`` table


@dataclass
class Image:
    """One image as the archive lists it: where it is, its planes, size, WCS centre and footprint."""

    level: str
    collection: str
    kind: str
    id: str
    path: Path
    planes: dict[str, int]  # plane name -> HDU index
    shape: tuple[int, int]  # (ny, nx)
    centre: tuple[float, float]  # (ra, dec) of the middle pixel, degrees
    footprint: list[tuple[float, float]]  # corners (ra, dec), degrees, in pixel order
    owner: str = PUBLIC_OWNER
    created: float = 0.0  # unix seconds
    size: int = 0  # bytes of the file
    band: str | None = None
    header: dict = field(default_factory=dict)  # a few keywords worth showing

    @property
    def ref(self) -> str:
        """``L2/DEMO/calexp/1000``: the image's path in the archive, also its SODA ``ID``."""
        return f"{self.level}/{self.collection}/{self.kind}/{self.id}"

    def to_json(self, url: str | None = None) -> dict:
        ny, nx = self.shape
        out = {
            "id": self.id,
            "level": self.level,
            "collection": self.collection,
            "kind": self.kind,
            "url": url,
            "owner": self.owner,
            "created": times.iso(self.created, "auto"),
            "size": self.size,
            "width": nx,
            "height": ny,
            "planes": [p for p in PLANES if p in self.planes],
            "ra": self.centre[0],
            "dec": self.centre[1],
            "footprint": [[ra, dec] for ra, dec in self.footprint],
            "did": self.ref,
        }
        if self.band:
            out["band"] = self.band
        return out


# -- discovery ------------------------------------------------------------------------------------


def _is_image_file(name: str) -> bool:
    low = name.lower()
    return not name.startswith(".") and any(low.endswith(s) for s in _SUFFIXES)


def _stem(name: str) -> str:
    low = name.lower()
    for s in sorted(_SUFFIXES, key=len, reverse=True):
        if low.endswith(s):
            return name[: -len(s)]
    return name


def plane_hdus(hdul) -> dict[str, int]:
    """Which HDU holds which plane: by EXTNAME, else the 2-d image HDUs in order."""
    images = [i for i, h in enumerate(hdul) if h.is_image and int(h.header.get("NAXIS", 0)) == 2]
    planes: dict[str, int] = {}
    for i in images:
        name = str(hdul[i].header.get("EXTNAME", "")).strip().upper()
        for plane, names in _EXTNAMES.items():
            if name in names and plane not in planes:
                planes[plane] = i
    if "data" not in planes:
        rest = [i for i in images if i not in planes.values()]
        for plane, i in zip([p for p in PLANES if p not in planes], rest):
            planes[plane] = i
    return planes


def celestial_wcs(header):
    """The 2-d celestial WCS of a header, or None when it has none."""
    from astropy.wcs import FITSFixedWarning, WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception:  # noqa: BLE001 - any unreadable WCS means "not an image" here
            return None
    if not wcs.has_celestial or wcs.naxis != 2:
        return None
    return wcs


def _created(header, fallback: float) -> float:
    """When an image was made: its DATE (or DATE-OBS) keyword if that is a time the archive
    can show, else ``fallback`` (the file's time)."""
    for key in ("DATE", "DATE-OBS"):
        value = header.get(key)
        if value:
            try:
                return times.parse(key, str(value))
            except ArchiveError:
                continue
    return fallback


def describe_file(path: Path, rel: str, source: ImageSource) -> Image | None:
    """An :class:`Image` from a FITS file's headers, or None when it is not an image."""
    from astropy.io import fits

    st = path.stat()
    with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
        planes = plane_hdus(hdul)
        if "data" not in planes:
            return None
        header = hdul[planes["data"]].header
        primary = hdul[0].header
        wcs = celestial_wcs(header)
        if wcs is None:
            return None
        ny, nx = int(header["NAXIS2"]), int(header["NAXIS1"])

        def keyword(name):
            return header.get(name, primary.get(name))

        parts = rel.split("/")
        kind = str(keyword("KIND") or (parts[-2] if len(parts) > 1 else "image"))
        return Image(
            level=source.level,
            collection=source.collection,
            kind=kind,
            id=str(keyword("IMAGEID") or _stem(parts[-1])),
            path=path,
            planes=planes,
            shape=(ny, nx),
            centre=_pixel_to_sky(wcs, (nx - 1) / 2, (ny - 1) / 2),
            footprint=[(float(r), float(d)) for r, d in wcs.calc_footprint(axes=(nx, ny))],
            owner=str(keyword("OWNER") or PUBLIC_OWNER),
            created=_created(primary if primary.get("DATE") else header, st.st_mtime),
            size=st.st_size,
            band=str(keyword("FILTER") or keyword("BAND") or "") or None,
        )


def _pixel_to_sky(wcs, x: float, y: float) -> tuple[float, float]:
    ra, dec = wcs.all_pix2world([[x, y]], 0)[0]
    return float(ra) % 360.0, float(dec)


class LoadedImage:
    """An image opened for cutting: plane arrays (memory-mapped) and the data plane's WCS."""

    def __init__(self, image: Image, planes: Mapping[str, np.ndarray], wcs, hdul=None):
        self.image = image
        self.planes = dict(planes)
        self.wcs = wcs
        self._hdul = hdul

    def close(self) -> None:
        if self._hdul is not None:
            self._hdul.close()


class ImageCatalog:
    """The images of a set of sources, described once per file version (path, size, mtime)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._described: dict[tuple[str, str], tuple[tuple, Image | None]] = {}
        self._loaded: OrderedDict = OrderedDict()

    def images(self, sources: Iterable[ImageSource]) -> list[Image]:
        """Every image of the sources (index-declared first, then discovered), deduplicated by ref."""
        out: dict[tuple[str, str, str, str], Image] = {}
        for source in sources:
            declared = _declared(source)
            for img in declared:
                out.setdefault(_key(img), img)
            skip = {str(img.path) for img in declared}
            for rel, path in _walk(source.folder):
                if str(path) in skip:
                    continue
                img = self._describe(path, rel, source)
                if img is not None:
                    out.setdefault(_key(img), img)
        return list(out.values())

    def _describe(self, path: Path, rel: str, source: ImageSource) -> Image | None:
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_size, st.st_mtime_ns, source)
        key = (str(path), source.collection)
        with self._lock:
            hit = self._described.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            img = describe_file(path, rel, source)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is skipped, not fatal
            log.warning("image %s skipped: %s", path, exc)
            img = None
        with self._lock:
            self._described[key] = (stamp, img)
        return img

    def load(self, image: Image) -> LoadedImage:
        """The image's planes and WCS, kept open (memory-mapped) for the next cutouts."""
        from astropy.io import fits

        try:
            st = image.path.stat()
        except OSError:
            raise not_found(f"image {image.ref} is no longer readable", image=image.ref) from None
        key = (str(image.path), st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._loaded.get(key)
            if hit is not None:
                self._loaded.move_to_end(key)
                return hit
        hdul = fits.open(image.path, memmap=True)
        planes = plane_hdus(hdul)
        wcs = celestial_wcs(hdul[planes["data"]].header)
        if wcs is None:
            hdul.close()
            raise not_found(f"image {image.ref} has no celestial WCS any more", image=image.ref)
        loaded = LoadedImage(image, {p: hdul[i].data for p, i in planes.items()}, wcs, hdul)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > _LOADED_CACHE:
                _, old = self._loaded.popitem(last=False)
                old.close()
        return loaded


def _key(img: Image) -> tuple[str, str, str, str]:
    return (img.level.lower(), img.collection.lower(), img.kind.lower(), img.id)


def _walk(folder: Path) -> Iterable[tuple[str, Path]]:
    """``(relative path, path)`` of candidate image files under a folder, sorted, hidden ones left out."""
    if not folder.is_dir():
        return []
    root = os.path.realpath(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _is_image_file(name):
                path = Path(dirpath) / name
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    return found


def _declared(source: ImageSource) -> list[Image]:
    """Images declared in the source's ``images`` index table (empty when it has none)."""
    if source.index_db is None or not Path(source.index_db).exists():
        return []
    from ..backends import metadata as md

    with md.open_read_only(Path(source.index_db)) as (con, alias):
        cols = {
            r[0].lower(): r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
                "AND lower(table_name) = 'images'",
                [alias],
            ).fetchall()
        }
        if not {"id", "kind", "path"} <= set(cols):
            return []
        names = [n for n in ("id", "kind", "path", "footprint", "owner", "created") if n in cols]
        rows = con.execute(
            f"SELECT {', '.join(md.quote_ident(cols[n]) for n in names)} FROM {md.quote_ident(alias)}.main.images"
        ).fetchall()
    out = []
    root = Path(os.path.realpath(source.folder))
    for row in rows:
        rec = dict(zip(names, row))
        path = Path(os.path.realpath(root / str(rec["path"])))
        if root not in path.parents or not path.is_file():
            log.warning("index row %s of %s names no file inside the mount; skipped", rec["id"], source.collection)
            continue
        try:
            img = describe_file(path, str(rec["path"]), source)
        except Exception as exc:  # noqa: BLE001
            log.warning("indexed image %s skipped: %s", path, exc)
            continue
        if img is None:
            continue
        img.id, img.kind = str(rec["id"]), str(rec["kind"])
        if rec.get("footprint"):
            img.footprint = parse_polygon(str(rec["footprint"]))
        if rec.get("owner"):
            img.owner = str(rec["owner"])
        if rec.get("created"):
            created = rec["created"]
            img.created = _created({"DATE": created.isoformat() if hasattr(created, "isoformat") else str(created)}, img.created)
        out.append(img)
    return out


# -- footprints ------------------------------------------------------------------------------------


def _unit_vectors(ra, dec) -> np.ndarray:
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def in_polygon(vertices: list[tuple[float, float]], ra: float, dec: float) -> bool:
    """Whether (ra, dec) lies inside a spherical polygon smaller than a hemisphere (edges are great circles)."""
    v = _unit_vectors([p[0] for p in vertices], [p[1] for p in vertices])
    p = _unit_vectors(ra, dec)
    centre = v.sum(axis=0)
    if np.dot(p, centre) <= 0:
        return False
    # The point is inside when it lies on the same side of every edge's great circle as the centre.
    for a, b in zip(v, np.roll(v, -1, axis=0)):
        normal = np.cross(a, b)
        if np.dot(normal, p) * np.dot(normal, centre) < 0:
            return False
    return True


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """``[POLYGON [ICRS]] ra1 dec1 ra2 dec2 ...`` (degrees) as a list of vertices."""
    words = text.replace(",", " ").split()
    while words and not _is_number(words[0]):
        words.pop(0)  # "POLYGON", "Polygon ICRS", ...
    values = parse_numbers(words, "POLYGON")
    if len(values) < 6 or len(values) % 2:
        raise bad_request(f"a polygon needs at least 3 (ra, dec) pairs; got {text!r}")
    return [(values[i] % 360.0, _dec(values[i + 1])) for i in range(0, len(values), 2)]


def _is_number(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False


def parse_numbers(words: list[str], what: str) -> list[float]:
    try:
        return [float(w) for w in words]
    except ValueError:
        raise bad_request(f"{what} values must be numbers; got {' '.join(words)!r}") from None


def _dec(value: float) -> float:
    if not -90.0 <= value <= 90.0:
        raise bad_request(f"declination {value} is outside -90..90 degrees")
    return value


def covering(images: Iterable[Image], ra: float, dec: float) -> list[Image]:
    """The images whose footprint holds (ra, dec), nearest centre first."""
    hits = [img for img in images if in_polygon(img.footprint, ra, dec)]
    p = _unit_vectors(ra, dec)
    return sorted(hits, key=lambda img: -float(np.dot(_unit_vectors(*img.centre), p)))


def check_position(ra: float, dec: float) -> tuple[float, float]:
    if not (math.isfinite(ra) and math.isfinite(dec)):
        raise bad_request("ra and dec must be finite numbers of degrees")
    return ra % 360.0, _dec(dec)
