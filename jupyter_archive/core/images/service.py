"""Images as the archive hands them out (``archive.images``): collections, whole images, cutouts.

Images live in the mounts a principal can see: every ``files`` mount's folder is scanned
for images (and its ``images`` index table read), a mount may name an image folder with
the ``images`` key of its configuration, and the demo mount has the demo's images. The
collection of an image is its mount's context; all mounts are level ``L2``. Asynchronous
image requests are jobs of the ``cutout`` kind (``cutouts``, :mod:`.cutout`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import formats
from ..errors import ArchiveError, bad_request, not_found
from ..lanes import cheap_read
from .catalog import DEFAULT_LEVEL, PLANES, Image, ImageCatalog, ImageSource, check_position, covering
from .cut import check_planes, cut
from .cutout import Cutouts
from .stencils import parse_stencil, stencil_request

if TYPE_CHECKING:
    from ..catalog import Principal

LEVELS = (DEFAULT_LEVEL,)


class Images:
    """Image collections as one principal sees them, and the cutouts made from them.

    ``catalog`` lists the mounts a principal sees, ``mounts`` their specs (``spec``),
    ``data_dir`` is where the demo's images and the cutout jobs' files are; ``jobs`` makes
    and finds the cutout jobs (``cutouts``).
    """

    def __init__(self, catalog: Any, *, mounts: Any, jobs: Any, data_dir: Path):
        self._namespace = catalog
        self._mounts = mounts
        self._data_dir = Path(data_dir)
        self.catalog = ImageCatalog()
        self.cutouts = Cutouts(self, jobs=jobs, folder=self._data_dir / "cutouts")

    def sources(self, principal: Principal) -> list[ImageSource]:
        """The image folders (and index tables) of the mounts the principal can see."""
        from ..demo import demo_path
        from ..demo_images import images_dir

        out = []
        for m in self._namespace.visible_mounts(principal):
            spec = self._mounts.spec(m.path) or {}
            if spec.get("images"):
                out.append(ImageSource(DEFAULT_LEVEL, m.context, Path(spec["images"]).expanduser()))
            if m.kind == "files":
                out.append(ImageSource(DEFAULT_LEVEL, m.context, Path(m.location), m.engine_file))
            elif m.kind == "duckdb" and Path(m.location) == demo_path(self._data_dir):
                out.append(ImageSource(DEFAULT_LEVEL, m.context, images_dir(m.location)))
        return out

    def all(self, principal: Principal) -> list[Image]:
        return self.catalog.images(self.sources(principal))

    # -- metaserv listings -------------------------------------------------------------------------
    @cheap_read
    def levels(self, principal: Principal) -> list[str]:
        return list(LEVELS)

    @cheap_read
    def collections(self, principal: Principal, level: str) -> list[str]:
        level = check_image_level(level)
        return sorted({img.collection for img in self.all(principal) if img.level == level}, key=str.lower)

    @cheap_read
    def kinds(self, principal: Principal, level: str, collection: str) -> list[str]:
        images = self._collection(principal, level, collection)
        return sorted({img.kind for img in images}, key=str.lower)

    @cheap_read
    def list(
        self,
        principal: Principal,
        level: str,
        collection: str,
        kind: str,
        *,
        owner: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        ra: float | None = None,
        dec: float | None = None,
    ) -> list[Image]:
        """The images of a kind, by id; with ``ra``/``dec`` only those covering that position, nearest first."""
        images = [img for img in self._collection(principal, level, collection) if img.kind.lower() == kind.lower()]
        if not images:
            raise not_found(f"no images of kind {kind!r} in {collection}", kind=kind, collection=collection)
        if owner:
            images = [img for img in images if img.owner == owner]
        if created_after is not None:
            images = [img for img in images if img.created > created_after]
        if created_before is not None:
            images = [img for img in images if img.created < created_before]
        images.sort(key=lambda img: (len(img.id), img.id))
        if ra is not None or dec is not None:
            if ra is None or dec is None:
                raise bad_request("a position needs both ra and dec")
            images = covering(images, *check_position(ra, dec))
        return images

    def covering(self, principal: Principal, ra: float, dec: float) -> list[Image]:
        """Every image (of any collection and kind) whose footprint holds (ra, dec), nearest centre first."""
        return covering(self.all(principal), *check_position(ra, dec))

    @cheap_read
    def image(self, principal: Principal, level: str, collection: str, kind: str, image_id: str) -> Image:
        for img in self._collection(principal, level, collection):
            if img.kind.lower() == kind.lower() and img.id == image_id:
                return img
        raise not_found(f"image not found: {level}/{collection}/{kind}/{image_id}", image=f"{kind}/{image_id}")

    def by_ref(self, principal: Principal, ref: str) -> Image:
        """An image by its archive path ``L2/DEMO/calexp/1000`` (what SODA calls its ``ID``)."""
        text = ref.strip()
        if "?" in text:  # ivo://authority/path?L2/DEMO/calexp/1000
            text = text.split("?", 1)[1]
        parts = [p for p in text.strip("/").split("/") if p]
        if len(parts) != 4:
            raise not_found(f"unknown image ID {ref!r}: IDs look like L2/<collection>/<kind>/<id>", id=ref)
        return self.image(principal, *parts)

    def _collection(self, principal: Principal, level: str, collection: str) -> list[Image]:
        level = check_image_level(level)
        images = [i for i in self.all(principal) if i.level == level and i.collection.lower() == collection.lower()]
        if not images:
            raise not_found(f"unknown image collection {collection!r} in level {level}", level=level, collection=collection)
        return images

    # -- pixels ---------------------------------------------------------------------------------
    def render(self, image: Image, planes=PLANES, cutout: dict | None = None, fmt: str = "fits") -> bytes:
        """A whole image or a cutout of it (``cutout`` from ``cut.cutout_request``) in a format."""
        planes = check_planes(image, planes)
        if fmt != "fits":
            planes = planes[:1]  # a picture shows one plane
        return formats.image_format(fmt).render([cut(self.catalog.load(image), cutout or {}, planes)])

    def soda_cutouts(self, principal: Principal, ids: list[str], stencils: list[tuple[str, str]], detail: str = "Image") -> bytes | None:
        """SODA: each ID x each stencil is one cutout; all of them in one FITS, None when none overlaps."""
        if not ids:
            raise bad_request("ID is required: the image to cut, e.g. L2/DEMO/calexp/1000")
        detail_planes = {"image": ["data"], "maskedimage": list(PLANES)}.get((detail or "Image").lower())
        if detail_planes is None:
            raise bad_request(f"unknown CUTOUTDETAIL {detail!r}; use Image or MaskedImage")
        parsed = [parse_stencil(kind, text) for kind, text in stencils]
        images = [self.by_ref(principal, i) for i in ids]
        cuts, names = [], []
        for image in images:
            loaded = self.catalog.load(image)
            planes = [p for p in detail_planes if p in image.planes]
            for stencil in parsed or [None]:
                request = stencil_request(loaded, stencil) if stencil else {}
                try:
                    cuts.append(cut(loaded, request, planes))
                except ArchiveError as exc:
                    if exc.code == "no_overlap":
                        continue
                    raise
                names.append(image.ref)
        if not cuts:
            return None
        return formats.image_format("fits").render(cuts, names)


def check_image_level(level: str) -> str:
    up = (level or "").upper()
    if up not in LEVELS:
        raise not_found(f"unknown image level {level!r}; levels: {', '.join(LEVELS)}", level=level)
    return up
