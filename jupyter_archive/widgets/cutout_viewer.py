"""CutoutViewer: a cutout of the archive's images around a sky position, with ra/dec/size and plane controls."""

from __future__ import annotations

import html

import ipywidgets as w

from ..client import ArchiveClient, ArchiveError

PLANES = ("data", "mask", "variance")
KINDS = ("calexp", "deepCoadd")


class CutoutViewer(w.VBox):
    """Show a PNG cutout (``size`` arcsec square) of an image covering ``ra``, ``dec``.

    ``Cut out`` finds the images of the chosen kind that cover the position, offers them in
    ``image`` and shows the cutout of the chosen (default: the first) one and plane.
    """

    def __init__(self, client: ArchiveClient | None = None, ra: float = 0.0, dec: float = 0.0, size: float = 30.0,
                 plane: str = "data", kind: str = "calexp", level: str = "L2", collection: str = "DEMO", **kwargs):
        self.client = client or ArchiveClient()
        self.level, self.collection = level, collection
        self.ra = w.BoundedFloatText(value=ra, min=0.0, max=360.0, step=0.001, description="ra [deg]")
        self.dec = w.BoundedFloatText(value=dec, min=-90.0, max=90.0, step=0.001, description="dec [deg]")
        self.size = w.BoundedFloatText(value=size, min=1.0, max=3600.0, description="size [arcsec]")
        self.plane = w.Dropdown(options=PLANES, value=plane, description="Plane")
        self.kind = w.Dropdown(options=KINDS, value=kind, description="Kind")
        self.image_id = w.Dropdown(options=[], description="Image")
        self.cut_button = w.Button(description="Cut out", icon="crop", button_style="primary")
        self.cut_button.on_click(self.cut)
        self.image = w.Image(format="png", layout=w.Layout(min_width="128px"))
        self.info = w.HTML()
        self.error = w.HTML()
        self.png: bytes | None = None
        # A new plane or image shows at once; a new position waits for "Cut out" (typing would fire each key).
        self.plane.observe(lambda _c: self._show(), names="value")
        self._quiet = False
        self.image_id.observe(lambda _c: None if self._quiet else self._show(), names="value")
        super().__init__([
            w.HBox([self.ra, self.dec, self.size]),
            w.HBox([self.kind, self.image_id, self.plane, self.cut_button]),
            self.error, self.info, self.image,
        ], **kwargs)  # fmt: skip

    def cut(self, _button=None) -> bytes | None:
        """Find the images covering the position and show the cutout."""
        self.error.value = ""
        try:
            covering = self.client.images(self.ra.value, self.dec.value, level=self.level,
                                          collection=self.collection, kind=self.kind.value)
        except ArchiveError as e:
            return self._fail(e)
        ids = [str(img["id"]) for img in covering]
        if not ids:
            self.image_id.options = []
            return self._fail(f"no {self.kind.value} image covers ra={self.ra.value}, dec={self.dec.value}")
        keep = self.image_id.value if self.image_id.value in ids else ids[0]
        self._quiet = True  # one cutout for the new choices, not one per trait change
        try:
            self.image_id.options = ids
            self.image_id.value = keep
        finally:
            self._quiet = False
        return self._show()

    def _show(self) -> bytes | None:
        if not self.image_id.value:
            return None
        self.error.value = ""
        try:
            png = self.client.cutout(self.ra.value, self.dec.value, self.size.value, image=self.image_id.value,
                                     plane=self.plane.value, kind=self.kind.value, level=self.level,
                                     collection=self.collection, format="png")
        except ArchiveError as e:
            return self._fail(e)
        self.png = self.image.value = png
        self.info.value = (f"{self.kind.value} {html.escape(self.image_id.value)} · {self.plane.value} · "
                           f"{self.size.value:g}″ around ({self.ra.value:.5f}, {self.dec.value:+.5f})")
        return png

    def _fail(self, err) -> None:
        self.error.value = f'<span style="color:#b00">{html.escape(str(err))}</span>'
        self.info.value = ""
