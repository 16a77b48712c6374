"""The cutout job kind: an asynchronous image request (a cutout, or whole images) as a job.

An asynchronous cutout is a ``cutout`` job of the one job system: its request holds the
images and the cutout, its results are files under ``<data dir>/cutouts``, one per image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import formats
from ..errors import ArchiveError, not_found, permission
from ..lanes import cheap_read
from .catalog import PLANES
from .cut import check_planes, cut

if TYPE_CHECKING:
    from ..catalog import Principal
    from ..jobs.model import Job
    from ..jobs.runner import JobContext
    from .catalog import Image
    from .service import Images

CUTOUT_JOB = "cutout"
_BYTES_PER_SECOND = 200e6  # a rough rate of cutting and encoding, for the job's cost estimate


class Cutouts:
    """Image requests as jobs: queue them (checked and costed), do their work, serve their files.

    ``images`` finds and renders the images; ``jobs`` makes and finds jobs (``submit_job``,
    ``job``, ``job_principal``); the files go to ``folder``.
    """

    def __init__(self, images: Images, *, jobs: Any, folder: Path):
        self._images = images
        self._jobs = jobs
        self.folder = Path(folder)

    def submit_cutout(
        self, principal: Principal, image: Image, planes=PLANES, cutout: dict | None = None, fmt: str = "fits", *, face: str = "dax"
    ) -> Job:
        """Queue a cutout (or whole image) as a job; the request is checked (and costed) first."""
        return self._submit(principal, [image], planes, cutout, fmt, face)

    def submit_images(self, principal: Principal, images: list[Image], planes=PLANES, fmt: str = "fits", *, face: str = "dax") -> Job:
        """Queue the retrieval of whole images (their asked planes, in a format) as one job: one
        result file per image, in order (LSST's asynchronous "retrieve all coadd images")."""
        if not images:
            raise not_found("no image matches the request: there is nothing to retrieve")
        return self._submit(principal, images, planes, None, fmt, face)

    def _submit(self, principal: Principal, images: list[Image], planes, cutout: dict | None, fmt: str, face: str) -> Job:
        if principal.anonymous:
            raise permission("asynchronous image requests need a signed-in user: log in to Jupyter or send an X-Auth-Token")
        # the same for every image: check_planes refuses an image that lacks one
        planes = [check_planes(image, planes) for image in images][0]
        if fmt != "fits":
            planes = planes[:1]  # a picture shows one plane
        # Cutting now (pixels are memory-mapped, nothing is encoded) refuses a cutout outside
        # an image at once, and measures the job for its estimate.
        shapes = [cut(self._images.catalog.load(image), cutout or {}, planes).shape for image in images]
        request = {
            "images": [image.ref for image in images], "planes": planes, "cutout": cutout or None, "format": fmt,
            "estimate": _estimate(images, shapes, planes, cutout is not None),
        }  # fmt: skip
        return self._jobs.submit(principal, CUTOUT_JOB, request, face=face)

    @cheap_read
    def job(self, principal: Principal, job_id) -> Job:
        """A cutout job of the principal's (404 for any other job)."""
        try:
            job = self._jobs.get(principal, job_id)
        except ArchiveError:
            raise not_found(f"unknown cutout request {job_id}", job=job_id) from None
        if job.kind != CUTOUT_JOB:
            raise not_found(f"unknown cutout request {job_id}", job=job_id)
        return job

    def results(self, principal: Principal, job_id) -> list[str]:
        """The names of the files a completed cutout job made, in order (409 before it completes)."""
        return [f["name"] for f in _files(self._completed(principal, job_id))]

    def result(self, principal: Principal, job_id, n: int = 0) -> tuple[Path, str, str]:
        """The ``n``th file a completed cutout job made: (path, media type, file name)."""
        job = self._completed(principal, job_id)
        names = [f["name"] for f in _files(job)]
        if not 0 <= n < len(names):
            raise not_found(f"cutout request {job.id} has {len(names)} result(s) (0..{len(names) - 1})", job=job.id)
        fmt = job.request.get("format", "fits")
        path = self.path(job.id, fmt, n)
        if not path.exists():
            raise not_found(f"the result of cutout request {job.id} is gone (expired or deleted)", job=job.id)
        return path, formats.image_format(fmt).media_type, names[n]

    def _completed(self, principal: Principal, job_id) -> Job:
        job = self.job(principal, job_id)
        if job.state != "completed":
            raise ArchiveError("conflict", f"cutout request {job.id} is {job.state}; its result exists once it has completed", 409)
        return job

    def run(self, job: Job, ctx: JobContext) -> dict:
        """The work of a ``cutout`` job: per image cut, encode, write the file atomically."""
        principal = self._jobs.principal_of(job)
        req = job.request
        fmt = req.get("format", "fits")
        refs = req["images"] if "images" in req else [req["image"]]  # "image": queued before requests held lists
        files = []
        for n, ref in enumerate(refs):
            image = self._images.by_ref(principal, ref)  # rights may have changed since it was queued
            ctx.log(f"{'cutting' if req.get('cutout') else 'copying'} {image.ref}")
            data = self._images.render(image, req.get("planes") or PLANES, req.get("cutout"), fmt)
            ctx.check()
            path = self.path(job.id, fmt, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            what = "cutout" if req.get("cutout") else "image"
            files.append({"name": f"{image.kind}-{image.id}-{what}.{formats.image_format(fmt).extension}", "size": len(data)})
            ctx.set_progress((n + 1) / len(refs))
        ctx.log(f"wrote {len(files)} file(s), {sum(f['size'] for f in files)} bytes")
        return {"files": files, "size": sum(f["size"] for f in files)}

    def forget(self, job: Job) -> None:
        """Remove the files of a cutout job (expired or deleted); other kinds have none here."""
        if job.kind == CUTOUT_JOB:
            fmt = job.request.get("format", "fits")
            for n in range(max(1, len(job.request.get("images") or []))):
                self.path(job.id, fmt, n).unlink(missing_ok=True)

    def path(self, job_id: int, fmt: str, n: int = 0) -> Path:
        """Where the ``n``th file of a cutout job is kept."""
        ext = formats.image_format(fmt).extension
        return self.folder / (f"{int(job_id)}.{ext}" if n == 0 else f"{int(job_id)}-{n}.{ext}")


def _files(job: Job) -> list[dict]:
    """The files of a completed cutout job (one, named in ``results``, for jobs made before lists)."""
    if "files" in job.results:
        return job.results["files"]
    fmt = formats.image_format(job.request.get("format", "fits"))
    return [{"name": job.results.get("name") or f"{job.id}.{fmt.extension}"}]


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
