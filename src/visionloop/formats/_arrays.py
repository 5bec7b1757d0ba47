"""What the formats that store pixels as arrays share (CIFAR pickles, MNIST IDX files): images decoded from the
arrays into PNG files a reader can hand out, and a sample's pixels as the fixed-size array a writer stores, with
every lossy step counted.

Reading: each array becomes a PNG in a temporary extraction folder (`base.extraction_folder`, removed at exit):
an import then stores it in the blob store as that PNG. Writing: the image is decoded upright (EXIF orientation
applied), converted to the format's mode and resized to its size when it differs, each counted as converted
(`--strict` refuses); a sample without image bytes (`--images none`) cannot be stored and is dropped (counted).
The class is the sample's one whole-image label; other geometry is dropped (counted).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from visionloop.core.errors import ImageError
from visionloop.core.geometry import Label, kind
from visionloop.core.sample import ImageRef, Sample
from visionloop.formats.base import WriteReport, extraction_folder


class Extractor:
    """PNG files made from arrays, in one extraction folder made on first use."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._folder: Path | None = None

    def save(self, pixels: np.ndarray, file_name: str) -> ImageRef:
        """`pixels` (H×W grey or H×W×3 RGB, uint8) as `file_name` (a relative POSIX name ending in .png)."""
        from PIL import Image

        if self._folder is None:
            self._folder = extraction_folder(self.prefix)
        dest = self._folder / file_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(pixels)).save(dest, format="PNG")
        h, w = pixels.shape[:2]
        return ImageRef(file_name, width=w, height=h, path=os.path.abspath(dest), format="png")


def one_label(sample: Sample, report: WriteReport, *, what: str) -> str | None:
    """The class of a sample as a format holding one class per image stores it; the rest is dropped (counted)."""
    labels: list[str] = []
    for ann in sample.annotations:
        if isinstance(ann.geometry, Label):
            labels.append(ann.label)
        else:
            report.drop(kind(ann.geometry), f"{what} holds one whole-image class per image")
    labels = list(dict.fromkeys(labels))
    if not labels:
        report.drop("image", "no class")
        return None
    if len(labels) > 1:
        report.drop("label", f"{what} holds one class per image", len(labels) - 1)
    return labels[0]


def pixels(sample: Sample, report: WriteReport, *, size: tuple[int, int], mode: str, what: str) -> np.ndarray | None:
    """The sample's image upright, in `mode` ("RGB" or "L") and `size` (width, height), as a uint8 array; None
    (dropped, counted) when the sample has no image bytes. Mode and size changes are counted as converted."""
    from PIL import Image, ImageOps

    ref = sample.image
    if ref.path is None:
        report.drop("image", f"no image bytes ({what} stores the pixels; --images none cannot write it)")
        return None
    try:
        with Image.open(ref.path) as opened:
            im: Image.Image = ImageOps.exif_transpose(opened)
            if im.mode != mode:
                if not (mode == "RGB" and im.mode == "L"):  # grey into RGB loses nothing
                    report.converted[f"image: {im.mode} -> {mode} ({what} stores {mode} pixels)"] += 1
                im = im.convert(mode)
            if im.size != size:
                report.converted[f"image: resized to {size[0]}x{size[1]} ({what} stores that size)"] += 1
                im = im.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError("image file not found", path=ref.path) from None
    except OSError as e:
        raise ImageError(f"not a readable image ({e})", path=ref.path) from None
