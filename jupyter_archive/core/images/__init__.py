"""Survey images: the catalog of image files (``catalog``), cutting them (``cut``, SODA's
``stencils``), the service the archive hands out as ``archive.images`` (``service``) and the
cutout job kind (``cutout``)."""
