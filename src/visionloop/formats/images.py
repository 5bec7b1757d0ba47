"""Probe image bytes once: hash, format, raw and upright size, EXIF orientation, GPS, truncation."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.core.errors import ImageError
from visionloop.core.sample import GPS

_SWAPS = {5, 6, 7, 8}  # orientations whose upright image is the raw one turned by 90°


@dataclass(frozen=True, slots=True)
class ImageInfo:
    sha256: str
    size: int
    format: str
    raw_width: int
    raw_height: int
    orientation: int
    gps: GPS | None
    heading: float | None
    timestamp: str | None
    truncated: bool = False  # cut short and repaired (`repair_truncated`): imported with a note

    @property
    def width(self) -> int:
        return self.raw_height if self.orientation in _SWAPS else self.raw_width

    @property
    def height(self) -> int:
        return self.raw_width if self.orientation in _SWAPS else self.raw_height


#: the most pixels an image may have (Pillow's own refusal threshold, 2 × its MAX_IMAGE_PIXELS); the environment
#: variable VISIONLOOP_MAX_IMAGE_PIXELS changes it (0: no limit). Decoding is at reduced size wherever a version
#: shrinks the image anyway, so a large limit costs memory only where full pixels are needed.
DEFAULT_MAX_PIXELS = 178_956_970


def max_image_pixels() -> int | None:
    """The pixel limit in force (None: none), from VISIONLOOP_MAX_IMAGE_PIXELS or the default."""
    text = os.environ.get("VISIONLOOP_MAX_IMAGE_PIXELS", "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise ImageError(f"VISIONLOOP_MAX_IMAGE_PIXELS={text!r} is not a whole number",
                         hint="set it to a pixel count, or 0 for no limit") from None
    return value if value > 0 else None


def check_pixels(width: int, height: int, *, path: str | Path) -> None:
    """An ImageError when width × height is over the limit (`max_image_pixels`)."""
    limit = max_image_pixels()
    if limit is not None and width * height > limit:
        raise ImageError(f"too many pixels to decode safely ({width}×{height} = {width * height:,} pixels, "
                         f"the limit is {limit:,})", path=path,
                         hint="resize the image, or raise the limit with VISIONLOOP_MAX_IMAGE_PIXELS (0: none)")


def read_bytes(path: str, *, listed_in: str | Path | None = None) -> bytes:
    try:
        if "://" in path:
            import fsspec

            with fsspec.open(path, "rb") as f:
                return f.read()  # type: ignore[no-any-return]
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        where = f"listed in {listed_in}" if listed_in else None
        raise ImageError("image file not found", path=path, where=where,
                         hint="check the image folder next to the annotations; to convert the annotations alone, "
                              "pass --images none") from None
    except IsADirectoryError:
        raise ImageError("expected an image file, found a folder", path=path) from None


def probe(data: bytes, *, path: str | Path) -> ImageInfo:
    """Everything the store records about an image, reading its header only.

    Raises ImageError for bytes that are not an image, TruncatedImage for a JPEG or PNG cut short.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("empty file, not an image", path=path)
    old_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the limit is ours: check_pixels
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "unknown").lower()
            raw_w, raw_h = im.size
            check_pixels(raw_w, raw_h, path=path)
            exif = header_exif(im)
            if fmt not in ("jpeg", "png"):
                im.verify()
    except Image.DecompressionBombError as e:
        raise ImageError(f"too many pixels to decode safely ({e})", path=path,
                         hint="resize the image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if data.startswith(b"\xff\xd8\xff") and data.rfind(b"\xff\xd9") < max(data.rfind(b"\xff\xda"), 0) + 1:
            raise TruncatedImage("truncated JPEG (the data ends before the end-of-image marker)", path=path,
                                 hint="re-export or re-download the file") from None
        if data.startswith(b"\x89PNG") and data.rfind(b"IEND", max(0, len(data) - 64)) < 0:
            raise TruncatedImage("truncated PNG (no IEND chunk at the end)", path=path,
                                 hint="re-export or re-download the file") from None
        raise ImageError(f"not a readable image ({e})", path=path) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if fmt == "jpeg":
        sos, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
        if sos < 0 or eoi < sos:
            raise TruncatedImage("truncated JPEG (the data ends before the end-of-image marker)", path=path,
                                 hint="re-export or re-download the file")
    elif fmt == "png" and data.rfind(b"IEND", max(0, len(data) - 64)) < 0:
        raise TruncatedImage("truncated PNG (no IEND chunk at the end)", path=path)
    orientation = int(exif.get(0x0112, 1) or 1)
    if not 1 <= orientation <= 8:
        orientation = 1
    gps, heading = _gps(exif)
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), format=fmt, raw_width=raw_w, raw_height=raw_h,
        orientation=orientation, gps=gps, heading=heading, timestamp=_timestamp(exif),
    )


class TruncatedImage(ImageError):
    """A JPEG or PNG cut short (`repair_truncated` may still make it readable)."""


def repair_truncated(data: bytes) -> bytes | None:
    """Bytes every decoder reads for a JPEG or PNG cut short, or None when nothing can be read.

    A JPEG gets its end-of-image marker back (the same bytes plus two: what browsers and Pillow with
    LOAD_TRUNCATED_IMAGES show, the missing rows grey); a PNG is decoded as far as it goes and saved
    again as PNG (lossless). Checked by decoding with OpenCV, the decoder of versions and training.
    """
    import cv2
    import numpy as np

    if data.startswith(b"\xff\xd8"):
        if data.find(b"\xff\xda") < 0:
            return None  # cut before the image data starts
        fixed = data + b"\xff\xd9"
    else:
        from PIL import Image, ImageFile

        old, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, True
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                buf = io.BytesIO()
                im.save(buf, format="PNG")
                fixed = buf.getvalue()
        except (OSError, ValueError, SyntaxError):
            return None
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old
    arr = cv2.imdecode(np.frombuffer(fixed, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return fixed if arr is not None and arr.size else None


def header_exif(im: Any) -> Any:
    """The image's EXIF without decoding it: Pillow's PNG getexif() loads every pixel to look for an eXIf
    chunk after the image data; here a PNG's EXIF counts only when it comes before the pixels."""
    if (im.format or "").upper() != "PNG":
        return im.getexif()
    from PIL import Image

    exif = Image.Exif()
    if im.info.get("exif"):
        exif.load(im.info["exif"])
    return exif


def _ratio(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return float("nan")


def _dms(values: Any) -> float:
    d, m, s = (_ratio(v) for v in values)
    return d + m / 60 + s / 3600


def _gps(exif: Any) -> tuple[GPS | None, float | None]:
    try:
        ifd = exif.get_ifd(0x8825)
    except Exception:  # noqa: BLE001 - broken EXIF is no reason to reject an image
        return None, None
    if not ifd or 2 not in ifd or 4 not in ifd:
        return None, None
    try:
        lat = _dms(ifd[2]) * (-1 if ifd.get(1) in ("S", b"S") else 1)
        lon = _dms(ifd[4]) * (-1 if ifd.get(3) in ("W", b"W") else 1)
        alt = _ratio(ifd[6]) * (-1 if ifd.get(5) in (1, b"\x01") else 1) if 6 in ifd else None
        heading = _ratio(ifd[17]) if 17 in ifd else None
    except (TypeError, ValueError):
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return GPS(lat, lon, alt), heading


def _timestamp(exif: Any) -> str | None:
    try:
        value = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
    except Exception:  # noqa: BLE001
        return None
    if not value:
        return None
    text = str(value).strip().replace("\x00", "")
    # EXIF "2019:06:01 12:30:00" -> ISO 8601
    if len(text) >= 19 and text[4] == ":" and text[7] == ":":
        text = f"{text[:4]}-{text[5:7]}-{text[8:10]}T{text[11:19]}"
    return text or None
