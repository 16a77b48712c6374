"""What HTTP tests of several faces share: each face's error shape, TAP's VOTable readers and clients'
ways of calling it, the demo's images read straight from their files, and mount bodies."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jupyter_archive
import numpy as np
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.wcs import WCS

from tests.support.raw_http import Reply

# -- each face's error shape ------------------------------------------------------------------------

FACES = Path(jupyter_archive.__file__).parent / "faces"  # the package's faces/ folder


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


def shape_problem(face: str, reply: Reply) -> str | None:
    """None when the reply's body is this face's error document, else what is wrong with it."""
    body, ctype = reply.body, reply.headers.get("content-type", "")
    doc = _json(body)
    if face == "native":
        ok = isinstance(doc, dict) and isinstance(doc.get("error"), dict) and {"code", "message"} <= set(doc["error"])
    elif face == "casjobs":
        ok = isinstance(doc, dict) and {"Error Code", "Error Type", "Error Message", "LogMessageID"} <= set(doc)
    elif face == "quasar":
        ok = isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"]
    elif face == "sas":
        ok = isinstance(doc, dict) and {"version", "httpStatusCode", "errorCode", "message", "details"} <= set(doc)
        ok = ok and "application/vnd.sas.error" in ctype
    elif face == "dax":
        ok = isinstance(doc, dict) and isinstance(doc.get("message"), str) and ("exception" in doc or "error" in doc)
    elif face == "auth":
        ok = isinstance(doc, dict) and isinstance(doc.get("error"), dict) and {"code", "title", "message"} <= set(doc["error"])
    elif face == "kasabi":
        ok = ctype.startswith("text/plain") and body.strip() and doc is None
    elif face == "soda":
        ok = ctype.startswith("text/plain") and re.match(rb"(UsageError|NotFoundFault|AuthorizationFault|Error): ", body)
    elif face == "tap":
        ok = b'<INFO name="QUERY_STATUS" value="ERROR">' in body and b"<VOTABLE" in body
    else:
        return f"no error shape known for face {face!r}"
    return None if ok else f"not a {face} error document"


# -- TAP ------------------------------------------------------------------------------------------

VOT = "{http://www.ivoa.net/xml/VOTable/v1.3}"
QUERY = "SELECT TOP 5 objid, ra, dec FROM demo.PhotoObj ORDER BY objid"


def infos(body: bytes) -> list[tuple[str, str, str]]:
    root = ET.fromstring(body)
    return [(i.get("name"), i.get("value"), (i.text or "").strip()) for i in root.iter(VOT + "INFO")]


def rows(body: bytes) -> list[tuple]:
    t = parse_single_table(io.BytesIO(body)).to_table()
    return [tuple(r) for r in t]


async def in_thread(fn):
    # pyvo is synchronous and the server runs on this test's loop: call it off the loop
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def votlint(tmp_path, body: bytes) -> list[str]:
    path = tmp_path / "doc.vot"
    path.write_bytes(body)
    out = subprocess.run(["stilts", "votlint", f"votable={path}"], capture_output=True, text=True, timeout=120)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(("ERROR", "WARNING"))]


def stilts_multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[str, bytes]:
    """A body the way STILTS sends it: a leading CRLF, a quoted boundary with odd characters."""
    boundary = "<<<--------------MULTIPART-BOUNDARY------->>>"
    out = [b"\r\n"]
    for k, v in fields.items():
        out.append(f'--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, v in files.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}"\r\n'
                   "Content-Type: application/x-votable+xml\r\n\r\n".encode() + v + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return f'multipart/form-data; boundary="{boundary}"', b"".join(out)


# -- images -----------------------------------------------------------------------------------------

PLANES = {"data": "IMAGE", "mask": "MASK", "variance": "VARIANCE"}


def image_file(archive_data_dir, kind="calexp", image_id="1000"):
    return archive_data_dir / "demo" / "images" / kind / f"{image_id}.fits"


def reference(archive_data_dir, kind="calexp", image_id="1000"):
    """(planes by name, WCS) of a demo image, read straight from its file."""
    with fits.open(image_file(archive_data_dir, kind, image_id)) as hdul:
        planes = {p: np.array(hdul[name].data) for p, name in PLANES.items()}
        return planes, WCS(hdul["IMAGE"].header)


# -- mounts -----------------------------------------------------------------------------------------


def mount_body(kind, uri, **extra):
    return json.dumps({kind: {"connectionUri": str(uri), **extra}})
