"""The image part of the Archive facade: image collections, whole images, cutouts and cutout jobs.

Images live in the mounts a principal can see: every ``files`` mount's folder is scanned
for images (and its ``images`` index table read), a mount may name an image folder with
the ``images`` key of its configuration, and the demo mount has the demo's images. The
collection of an image is its mount's context; all mounts are level ``L2``.

An asynchronous cutout is a ``cutout`` job of the one job system: its request holds the
image and the cutout, its result is a file under ``<data dir>/cutouts``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import formats
from .errors import ArchiveError, bad_request, not_found, permission
from .images import (
    DEFAULT_LEVEL,
    PLANES,
    Image,
    ImageCatalog,
    ImageSource,
    check_planes,
    check_position,
    covering,
    cut,
)
from .image_stencils import parse_stencil, stencil_request

if TYPE_CHECKING:
    from .catalog import Principal
    from .jobs.model import Job
    from .jobs.runner import JobContext

LEVELS = (DEFAULT_LEVEL,)
CUTOUT_JOB = "cutout"
_BYTES_PER_SECOND = 200e6  # a rough rate of cutting and encoding, for the job's cost estimate


class ImagesMixin:
    """Image collections as one principal sees them, and the cutouts made from them."""

    _image_catalog: ImageCatalog | None = None
    _image_lock = threading.Lock()

    @property
    def image_catalog(self) -> ImageCatalog:
        with self._image_lock:
            if self._image_catalog is None:
                self._image_catalog = ImageCatalog()
            return self._image_catalog

    def image_sources(self, principal: Principal) -> list[ImageSource]:
        """The image folders (and index tables) of the mounts the principal can see."""
        from .demo import demo_path
        from .demo_images import images_dir

        out = []
        for m in self.catalog.visible_mounts(principal):
            spec = self.mounts.spec(m.path) or {}
            if spec.get("images"):
                out.append(ImageSource(DEFAULT_LEVEL, m.context, Path(spec["images"]).expanduser()))
            if m.kind == "files":
                out.append(ImageSource(DEFAULT_LEVEL, m.context, Path(m.location), m.engine_file))
            elif m.kind == "duckdb" and Path(m.location) == demo_path(self.data_dir):
                out.append(ImageSource(DEFAULT_LEVEL, m.context, images_dir(m.location)))
        return out

    def all_images(self, principal: Principal) -> list[Image]:
        return self.image_catalog.images(self.image_sources(principal))

    # -- metaserv listings -------------------------------------------------------------------------
    def image_levels(self, principal: Principal) -> list[str]:
        return list(LEVELS)

    def image_collections(self, principal: Principal, level: str) -> list[str]:
        level = check_image_level(level)
        return sorted({img.collection for img in self.all_images(principal) if img.level == level}, key=str.lower)

    def image_kinds(self, principal: Principal, level: str, collection: str) -> list[str]:
        images = self._collection(principal, level, collection)
        return sorted({img.kind for img in images}, key=str.lower)

    def list_images(
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

    def images_covering(self, principal: Principal, ra: float, dec: float) -> list[Image]:
        """Every image (of any collection and kind) whose footprint holds (ra, dec), nearest centre first."""
        return covering(self.all_images(principal), *check_position(ra, dec))

    def image(self, principal: Principal, level: str, collection: str, kind: str, image_id: str) -> Image:
        for img in self._collection(principal, level, collection):
            if img.kind.lower() == kind.lower() and img.id == image_id:
                return img
        raise not_found(f"image not found: {level}/{collection}/{kind}/{image_id}", image=f"{kind}/{image_id}")

    def image_by_ref(self, principal: Principal, ref: str) -> Image:
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
        images = [i for i in self.all_images(principal) if i.level == level and i.collection.lower() == collection.lower()]
        if not images:
            raise not_found(f"unknown image collection {collection!r} in level {level}", level=level, collection=collection)
        return images

    # -- pixels ---------------------------------------------------------------------------------
    def image_bytes(self, image: Image, planes=PLANES, cutout: dict | None = None, fmt: str = "fits") -> bytes:
        """A whole image or a cutout of it (``cutout`` from ``images.cutout_request``) in a format."""
        planes = check_planes(image, planes)
        if fmt != "fits":
            planes = planes[:1]  # a picture shows one plane
        return formats.image_format(fmt).render([cut(self.image_catalog.load(image), cutout or {}, planes)])

    def soda_cutouts(self, principal: Principal, ids: list[str], stencils: list[tuple[str, str]], detail: str = "Image") -> bytes | None:
        """SODA: each ID x each stencil is one cutout; all of them in one FITS, None when none overlaps."""
        if not ids:
            raise bad_request("ID is required: the image to cut, e.g. L2/DEMO/calexp/1000")
        detail_planes = {"image": ["data"], "maskedimage": list(PLANES)}.get((detail or "Image").lower())
        if detail_planes is None:
            raise bad_request(f"unknown CUTOUTDETAIL {detail!r}; use Image or MaskedImage")
        parsed = [parse_stencil(kind, text) for kind, text in stencils]
        images = [self.image_by_ref(principal, i) for i in ids]
        cuts, names = [], []
        for image in images:
            loaded = self.image_catalog.load(image)
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

    # -- cutout jobs ----------------------------------------------------------------------------------
    def submit_cutout(
        self, principal: Principal, image: Image, planes=PLANES, cutout: dict | None = None, fmt: str = "fits", *, face: str = "dax"
    ) -> Job:
        """Queue a cutout (or whole image) as a job; the request is checked (and costed) first."""
        return self._submit_image_job(principal, [image], planes, cutout, fmt, face)

    def submit_images(self, principal: Principal, images: list[Image], planes=PLANES, fmt: str = "fits", *, face: str = "dax") -> Job:
        """Queue the retrieval of whole images (their asked planes, in a format) as one job: one
        result file per image, in order (LSST's asynchronous "retrieve all coadd images")."""
        if not images:
            raise not_found("no image matches the request: there is nothing to retrieve")
        return self._submit_image_job(principal, images, planes, None, fmt, face)

    def _submit_image_job(self, principal: Principal, images: list[Image], planes, cutout: dict | None, fmt: str, face: str) -> Job:
        if principal.anonymous:
            raise permission("asynchronous image requests need a signed-in user: log in to Jupyter or send an X-Auth-Token")
        # the same for every image: check_planes refuses an image that lacks one
        planes = [check_planes(image, planes) for image in images][0]
        if fmt != "fits":
            planes = planes[:1]  # a picture shows one plane
        # Cutting now (pixels are memory-mapped, nothing is encoded) refuses a cutout outside
        # an image at once, and measures the job for its estimate.
        shapes = [cut(self.image_catalog.load(image), cutout or {}, planes).shape for image in images]
        request = {
            "images": [image.ref for image in images], "planes": planes, "cutout": cutout or None, "format": fmt,
            "estimate": _estimate(images, shapes, planes, cutout is not None),
        }  # fmt: skip
        return self.jobs.submit(principal, CUTOUT_JOB, request, face=face)

    def cutout_job(self, principal: Principal, job_id) -> Job:
        """A cutout job of the principal's (404 for any other job)."""
        try:
            job = self.jobs.get(principal, job_id)
        except ArchiveError:
            raise not_found(f"unknown cutout request {job_id}", job=job_id) from None
        if job.kind != CUTOUT_JOB:
            raise not_found(f"unknown cutout request {job_id}", job=job_id)
        return job

    def cutout_results(self, principal: Principal, job_id) -> list[str]:
        """The names of the files a completed cutout job made, in order (409 before it completes)."""
        return [f["name"] for f in _files(self._completed_cutout(principal, job_id))]

    def cutout_result(self, principal: Principal, job_id, n: int = 0) -> tuple[Path, str, str]:
        """The ``n``th file a completed cutout job made: (path, media type, file name)."""
        job = self._completed_cutout(principal, job_id)
        names = [f["name"] for f in _files(job)]
        if not 0 <= n < len(names):
            raise not_found(f"cutout request {job.id} has {len(names)} result(s) (0..{len(names) - 1})", job=job.id)
        fmt = job.request.get("format", "fits")
        path = self._cutout_path(job.id, fmt, n)
        if not path.exists():
            raise not_found(f"the result of cutout request {job.id} is gone (expired or deleted)", job=job.id)
        return path, formats.image_format(fmt).media_type, names[n]

    def _completed_cutout(self, principal: Principal, job_id) -> Job:
        job = self.cutout_job(principal, job_id)
        if job.state != "completed":
            raise ArchiveError("conflict", f"cutout request {job.id} is {job.state}; its result exists once it has completed", 409)
        return job

    def run_cutout_job(self, job: Job, ctx: JobContext) -> dict:
        """The work of a ``cutout`` job: per image cut, encode, write the file atomically."""
        principal = self.jobs.principal_of(job)
        req = job.request
        fmt = req.get("format", "fits")
        refs = req["images"] if "images" in req else [req["image"]]  # "image": queued before requests held lists
        files = []
        for n, ref in enumerate(refs):
            image = self.image_by_ref(principal, ref)  # rights may have changed since it was queued
            ctx.log(f"{'cutting' if req.get('cutout') else 'copying'} {image.ref}")
            data = self.image_bytes(image, req.get("planes") or PLANES, req.get("cutout"), fmt)
            ctx.check()
            path = self._cutout_path(job.id, fmt, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            what = "cutout" if req.get("cutout") else "image"
            files.append({"name": f"{image.kind}-{image.id}-{what}.{formats.image_format(fmt).extension}", "size": len(data)})
            ctx.set_progress((n + 1) / len(refs))
        ctx.log(f"wrote {len(files)} file(s), {sum(f['size'] for f in files)} bytes")
        return {"files": files, "size": sum(f["size"] for f in files)}

    def _cutout_path(self, job_id: int, fmt: str, n: int = 0) -> Path:
        ext = formats.image_format(fmt).extension
        return self.data_dir / "cutouts" / (f"{int(job_id)}.{ext}" if n == 0 else f"{int(job_id)}-{n}.{ext}")

    def forget_cutout_files(self, job: Job) -> None:
        """Remove the files a cutout job made (it was deleted or expired)."""
        fmt = job.request.get("format", "fits")
        for n in range(max(1, len(job.request.get("images") or []))):
            self._cutout_path(job.id, fmt, n).unlink(missing_ok=True)


def _files(job: Job) -> list[dict]:
    """The files of a completed cutout job (one, named in ``results``, for jobs made before lists)."""
    if "files" in job.results:
        return job.results["files"]
    fmt = formats.image_format(job.request.get("format", "fits"))
    return [{"name": job.results.get("name") or f"{job.id}.{fmt.extension}"}]


def check_image_level(level: str) -> str:
    up = (level or "").upper()
    if up not in LEVELS:
        raise not_found(f"unknown image level {level!r}; levels: {', '.join(LEVELS)}", level=level)
    return up


def _estimate(images: list[Image], shapes: list[tuple[int, int]], planes: list[str], cutout: bool) -> dict:
    """What an image job will cost: pixels and bytes read and written, and a rough time."""
    pixels = sum(int(shape[0]) * int(shape[1]) for shape in shapes)
    out_bytes = pixels * 4 * len(planes) + 2880 * (1 + len(planes)) * len(images)
    seconds = out_bytes / _BYTES_PER_SECOND
    n = f"{len(planes)} plane{'s' * (len(planes) > 1)}"
    if len(images) == 1:
        (ny, nx), (sy, sx) = images[0].shape, shapes[0]
        what = f"{'cutout' if cutout else 'image'} of {sx}x{sy} pixels ({n}) from image {images[0].ref} of {nx}x{ny}"
    else:
        what = f"{len(images)} images of {pixels} pixels in all ({n})"
    text = f"{what}: about {out_bytes / 1e3:.0f} kB, {seconds * 1e3:.1f} ms"
    return {"text": text, "images": len(images), "pixels": pixels, "bytes": out_bytes, "seconds": seconds}

