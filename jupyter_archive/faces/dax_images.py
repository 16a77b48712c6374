"""LSST DAX v0 images (``{base}archive/dax``): metaserv image listings and imgserv.

metaserv (``meta/v0/image``): levels; collections of a level; kinds of a collection;
images of a kind (``start``, ``count``, ``owner``, ``createdAfter``, ``createdBefore``, and
``ra``/``dec`` for the images covering a position), as URLs of imgserv; one image's
information (url, owner, size, WCS centre, footprint).

imgserv (``image/v0``): ``{level}/{collection}/{kind}`` lists images as URLs (``start``,
``count``, the metaserv filters, and ``plane``, which the URLs then carry); ``.../{id}`` is
the whole image (all planes as multi-extension FITS, or ``plane=data|mask|variance``,
repeatable); ``.../{id}/cutout`` cuts by ``x,y,width,height`` (pixels, centred),
``x1,y1,x2,y2`` (corners, inclusive), ``ra,dec,deltaRa,deltaDec`` (arcmin),
``ra,dec,widthAng,heightAng`` (arcsec) or ``ra,dec,widthPix,heightPix``; pixel coordinates
are 0-based (astropy's). ``Accept`` (or ``format``) picks FITS (default), PNG or JPEG.
``POST`` of the same URLs (the image, its cutouts, and the list of a kind: the document's
asynchronous I5, which retrieves each listed image) makes a job and answers its resource id;
then ``{id}/status``, ``{id}/results`` (URLs of the files, one per image), ``{id}/explain`` (a
cost estimate). Arguments may be joined by ``;`` as the document writes them. metaserv answers
JSON, or a table in another format (``Accept: text/csv``, ``text/html``, ...) as the database
metadata does. Errors are metaserv's ``{"exception", "message"}``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from ..core import formats, params, times
from ..core.errors import not_found
from ..core.images.catalog import PLANES
from ..core.images.cut import check_plane_names, cutout_request
from .base import endpoint
from .dax import PAGE_SIZE, DaxHandler

STATUS_TIME = "%Y/%m/%d %H:%M:%S"  # how the document's status shows a time (UTC)
_IMG = r"(?P<level>[^/]+)/(?P<collection>[^/]+)/(?P<kind>[^/]+)"


class ImageHandler(DaxHandler):
    """Shared helpers: image URLs and request arguments from the query string, a form or JSON."""

    def image_url(self, img) -> str:
        return self.archive_url("dax", "image", "v0", img.level, img.collection, img.kind, img.id, absolute=True)

    def params(self) -> dict:
        """Single-valued arguments (query string, form fields or a JSON body)."""
        out = {k: v[-1] for k, v in self.arguments(form=False).items() if v}
        if self.request.method == "POST":
            out.update({k: str(v) for k, v in self.json_body().items() if not isinstance(v, (list, dict))})
        return out

    def asked_planes(self) -> list[str]:
        """The ``plane`` arguments as given (repeatable, comma-separated, in a body)."""
        values = [p for v in self.args("plane") for p in v.split(",") if p.strip()]
        if not values and self.request.method == "POST":
            body = self.json_body().get("plane")
            values = body if isinstance(body, list) else ([body] if body else [])
        return values

    def planes(self) -> list[str]:
        """The asked planes; all planes when none."""
        return self.asked_planes() or list(PLANES)

    def fmt(self) -> str:
        named = self.arguments().get("format")
        return formats.image_format(named[-1] if named else None, self.request.headers.get("Accept")).name

    def send_image(self, data: bytes, fmt: str, name: str) -> None:
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(data, set_content_type=formats.image_format(fmt).media_type)

    def send_submitted(self, job) -> None:
        """202 for an asynchronous request: its id and the URLs of its status, results and estimate."""
        status, results, explain = (self.archive_url("dax", "image", "v0", job.id, what, absolute=True)
                                    for what in ("status", "results", "explain"))  # fmt: skip
        self.set_header("Location", status)
        self.send_json({"id": str(job.id), "status": status, "results": results, "explain": explain}, status=202)


# -- metaserv ---------------------------------------------------------------------------------------


class MetaLevelsHandler(ImageHandler):
    """``GET meta/v0/image``: the levels of images."""

    @endpoint(anonymous=True)
    async def get(self):
        levels = self.archive.images.levels(self.principal)
        await self.send_meta({"results": levels}, [{"level": v} for v in levels], name="levels")


class MetaCollectionsHandler(ImageHandler):
    """``GET meta/v0/image/{level}``: the image collections of a level."""

    @endpoint(anonymous=True)
    async def get(self, level: str):
        names = await self.call(self.archive.images.collections, self.principal, level)
        await self.send_page(names, stable=True, rows=False, name=level)


class MetaKindsHandler(ImageHandler):
    """``GET meta/v0/image/{level}/{collection}``: the kinds of images in a collection."""

    @endpoint(anonymous=True)
    async def get(self, level: str, collection: str):
        kinds = await self.call(self.archive.images.kinds, self.principal, level, collection)
        await self.send_page(kinds, stable=True, rows=False, name=collection)


class MetaImagesHandler(ImageHandler):
    """``GET meta/v0/image/{level}/{collection}/{kind}``: URLs of the images of a kind (filtered, paged)."""

    @endpoint(anonymous=True)
    async def get(self, level: str, collection: str, kind: str):
        images = await self.call(list_images, self, level, collection, kind)
        start, count = self.page("start", "count", PAGE_SIZE, least=0)
        page = images[start : start + count]
        urls = [self.image_url(img) for img in page]
        doc = {"results": urls, "ids": [img.id for img in page], "more": start + count < len(images), "stable": True}
        await self.send_meta(doc, [{"url": u, "id": img.id} for u, img in zip(urls, page)], ("url", "id"), kind)


def list_images(handler: ImageHandler, level: str, collection: str, kind: str):
    p = handler.params()
    position = {name: params.number(name, p[name]) for name in ("ra", "dec") if p.get(name)}  # degrees
    return handler.archive.images.list(
        handler.principal, level, collection, kind, owner=p.get("owner") or None,
        created_after=times.parse("createdAfter", p.get("createdAfter") or p.get("createAfter")),
        created_before=times.parse("createdBefore", p.get("createdBefore") or p.get("createBefore")),
        **position,
    )  # fmt: skip


class MetaImageHandler(ImageHandler):
    """``GET meta/v0/image/{level}/{collection}/{kind}/{id}``: one image's information."""

    @endpoint(anonymous=True)
    async def get(self, level: str, collection: str, kind: str, image_id: str):
        img = await self.call(self.archive.images.image, self.principal, level, collection, kind, image_id)
        info = img.to_json(self.image_url(img))
        await self.send_meta({"result": info}, [info], name=img.ref)


# -- imgserv --------------------------------------------------------------------------------------------


class ImgservIndexHandler(ImageHandler):
    """``GET image``, ``image/v0``: what lies below."""

    @endpoint(anonymous=True)
    async def get(self, version: str | None = None):
        self.send_json({"results": ["v0"] if not version else self.archive.images.levels(self.principal)})


class ImgservListHandler(ImageHandler):
    """``GET|POST image/v0/{level}/{collection}/{kind}`` (the document's I5): the images of a kind.

    GET lists them as URLs (``start``, ``count``, the metaserv filters; with ``plane`` the URLs
    ask for those planes). POST retrieves the same images asynchronously: a job whose results
    are the images themselves, one file each (the asked planes, FITS unless PNG or JPEG is asked).
    """

    @endpoint(anonymous=True)
    async def get(self, level: str, collection: str, kind: str):
        images = await self.call(self._page, level, collection, kind)
        asked = self.asked_planes()
        query = "?" + urlencode([("plane", p) for p in check_plane_names(asked)]) if asked else ""
        self.send_json([self.image_url(img) + query for img in images])

    @endpoint(anonymous=True)
    async def post(self, level: str, collection: str, kind: str):
        images = await self.call(self._page, level, collection, kind)
        job = await self.call(self.archive.images.cutouts.submit_images, self.principal, images, self.planes(), self.fmt(), face="dax")
        self.send_submitted(job)

    def _page(self, level: str, collection: str, kind: str):
        images = list_images(self, level, collection, kind)
        start, count = self.page("start", "count", PAGE_SIZE, least=0, values=self.params())
        return images[start : start + count]


class ImgservImageHandler(ImageHandler):
    """``GET|POST image/v0/{level}/{collection}/{kind}/{id}[/cutout]``: an image or a cutout, now or as a job."""

    @endpoint(anonymous=True)
    async def get(self, level: str, collection: str, kind: str, image_id: str, cutout: str | None = None):
        img, planes, request, fmt = await self.call(self._parse, level, collection, kind, image_id, cutout)
        data = await self.call(self.archive.images.render, img, planes, request, fmt)
        what = "cutout" if request else "image"
        self.send_image(data, fmt, f"{img.kind}-{img.id}-{what}.{formats.image_format(fmt).extension}")

    @endpoint(anonymous=True)
    async def post(self, level: str, collection: str, kind: str, image_id: str, cutout: str | None = None):
        img, planes, request, fmt = await self.call(self._parse, level, collection, kind, image_id, cutout)
        job = await self.call(self.archive.images.cutouts.submit_cutout, self.principal, img, planes, request, fmt, face="dax")
        self.send_submitted(job)

    def _parse(self, level, collection, kind, image_id, cutout):
        img = self.archive.images.image(self.principal, level, collection, kind, image_id)
        request = cutout_request(self.params()) if cutout else None
        return img, self.planes(), request, self.fmt()


class ImgservJobHandler(ImageHandler):
    """``GET image/v0/{id}/status|results|explain`` of an asynchronous request."""

    @endpoint(anonymous=True)
    async def get(self, job_id: str, what: str = "status"):
        job = await self.call(self.archive.images.cutouts.job, self.principal, job_id)
        if what == "explain":
            estimate = job.request.get("estimate") or {}
            self.send_json({"result": estimate.get("text", ""), **{k: v for k, v in estimate.items() if k != "text"}})
        elif what == "results":
            names = await self.call(self.archive.images.cutouts.results, self.principal, job_id)  # 409 until it has completed
            urls = [self.archive_url("dax", "image", "v0", job.id, "results", n, absolute=True) for n in range(len(names))]
            self.send_json(urls)
        else:
            self.send_json(status_json(job))


def status_json(job) -> dict:
    """A job as the document's status dictionary (``status``, ``startTime``, ``progress``)."""
    out = {"id": str(job.id), "status": job.state, "startTime": times.utc_pattern(job.started, STATUS_TIME),
           "progress": f"{round(job.progress * 100)}%"}  # fmt: skip
    if job.ended:
        out["endTime"] = times.utc_pattern(job.ended, STATUS_TIME)
    if job.error_message:
        out["error"] = job.error_message
    return out


class ImgservResultHandler(ImageHandler):
    """``GET image/v0/{id}/results/0``: the file an asynchronous request made."""

    @endpoint(anonymous=True)
    async def get(self, job_id: str, n: str):
        path, media, name = await self.call(self.archive.images.cutouts.result, self.principal, job_id, int(n))
        data = await self.call(path.read_bytes)
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(data, set_content_type=media)


class ImageNotFoundHandler(ImageHandler):
    """Anything else under the image services: 404 in metaserv's shape."""

    async def _missing(self, path: str):
        raise not_found(f"no such image resource: /{path}", path=path)

    get = endpoint(anonymous=True)(_missing)
    post = put = delete = patch = get


def dax_image_handlers() -> list[tuple[str, type]]:
    """The routes; register them before ``dax_handlers`` (whose last route takes the rest of dax)."""
    meta = r"archive/dax/meta/v0/image"
    img = r"archive/dax/image/v0"
    metaserv = [
        (meta + r"/?", MetaLevelsHandler),
        (meta + r"/(?P<level>[^/]+)/?", MetaCollectionsHandler),
        (meta + r"/(?P<level>[^/]+)/(?P<collection>[^/]+)/?", MetaKindsHandler),
        (meta + "/" + _IMG + r"/?", MetaImagesHandler),
        (meta + "/" + _IMG + r"/(?P<image_id>[^/]+)/?", MetaImageHandler),
    ]
    # imgserv: its index, the async cutout jobs, then the images themselves
    jobs = img + r"/(?P<job_id>\d+)"
    imgserv = [(r"archive/dax/image(?:/(?P<version>v0))?/?", ImgservIndexHandler)]
    imgserv += [(jobs + r"/?", ImgservJobHandler), (jobs + r"/(?P<what>status|results|explain)/?", ImgservJobHandler)]
    imgserv += [(jobs + r"/results/(?P<n>\d+)/?", ImgservResultHandler), (img + "/" + _IMG + r"/?", ImgservListHandler)]
    imgserv.append((img + "/" + _IMG + r"/(?P<image_id>[^/]+)(?:/(?P<cutout>cutout))?/?", ImgservImageHandler))
    return [*metaserv, *imgserv, (r"archive/dax/(?P<path>(?:meta/v0/)?image/.*)", ImageNotFoundHandler)]
