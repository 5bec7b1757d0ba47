"""Turning request bytes into RGB arrays safely: content sniffing, a decompression-bomb guard, corrupt → 400.

The file name and the declared content type are never trusted: the first bytes decide (a PNG named
.jpg decodes; a PDF named .jpg is a 415). The size is read from the header before any pixel is
decoded, so a 60000×60000 PNG of a few KB is refused without allocating 10 GB.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from visionloop.serve.errors import BadImage, PayloadTooLarge, UnsupportedMedia

READS = "JPEG, PNG, BMP, TIFF or WebP"


def sniff(data: bytes) -> str | None:
    """The image kind from the magic bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"BM" and len(data) > 26:
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def describe(data: bytes) -> str:
    """What unreadable bytes look like, for the 415 message."""
    head = data[:16].lstrip()
    for magic, what in ((b"%PDF", "a PDF document"), (b"GIF8", "a GIF (not supported)"), (b"PK\x03\x04", "a ZIP file"),
                        (b"<", "text (HTML or XML)"), (b"{", "JSON"), (b"[", "JSON"), (b"\x1f\x8b", "gzip data")):
        if head.startswith(magic):
            return what
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "a video or HEIF file"
    return "empty" if not data else "unknown bytes"


def check(data: bytes, *, max_pixels: int, name: str = "image") -> tuple[str, int, int]:
    """Kind, width, height from the header; raises 415 / 413 / 400 with a message naming `name`."""
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMedia(f"{name} is not an image this server reads: it looks like {describe(data)}",
                               hint=f"send {READS}")
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                w, h = im.size
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"{name} has too many pixels", hint=f"at most {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise BadImage(f"{name} is a corrupt or truncated {kind.upper()}: its header cannot be read",
                       hint="send the complete file") from None
    if w * h > max_pixels:
        raise PayloadTooLarge(f"{name} is {w}x{h} = {w * h:,} pixels, more than this server's limit of "
                              f"{max_pixels:,}", hint="resize it before sending")
    if kind == "jpeg" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise BadImage(f"{name} is a truncated JPEG (no end-of-image marker after its last scan)",
                       hint="send the complete file")
    return kind, w, h


def decode(data: bytes, *, max_pixels: int, name: str = "image") -> np.ndarray:
    """HWC uint8 RGB, EXIF orientation applied (as training decoded it)."""
    import cv2

    check(data, max_pixels=max_pixels, name=name)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadImage(f"{name} cannot be decoded: the file is corrupt", hint="send the complete file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
