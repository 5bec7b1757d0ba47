"""Shared by the pixel-mask formats (Cityscapes, KITTI segmentation, Mapillary Vistas, ADE20K,
CamVid, common semantic segmentation): label PNGs in, Mask annotations out, and back.

Reading turns a label image into one `Mask` per distinct value with `np.unique` (never a
Python loop over pixels). Writing paints annotations into a label array in annotation order,
so a later annotation covers an earlier one where they overlap, the way the datasets' own
tools rasterise. Only one image's arrays are alive at a time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from visionloop.core.classes import ClassMap, default_color
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, kind, polygon_to_mask
from visionloop.core.sample import Annotation
from visionloop.formats.base import WriteReport, safe_name

if TYPE_CHECKING:
    import numpy as np

RGB = tuple[int, int, int]
#: the split folder a writer uses for samples without a split (datumaro's name for it)
NO_SPLIT = "default"


# ---------------------------------------------------------------- label maps

#: datumaro's label map beside CamVid, Cityscapes and KITTI segmentation exports (CVAT writes it the same way)
LABEL_COLORS = "label_colors.txt"


def parse_label_colors(path: Path) -> list[tuple[str, RGB | None]]:
    """`label_colors.txt`: `r g b name` a line, the class id being the line's index among the non-empty,
    non-comment lines; a file of lines with only a name has no colours (datumaro writes ` name` for classes
    without one; it never mixes the two). A name listed twice, a colour that is not three integers in 0..255,
    a line of two or three words, or a name-only line among coloured ones (a file cut short) is an error naming
    the line."""
    out: list[tuple[str, RGB | None]] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=3)
        where = f"line {number}"
        if len(parts) == 1:
            name, rgb = parts[0], None
        elif len(parts) == 4:
            try:
                rgb = (int(parts[0]), int(parts[1]), int(parts[2]))
            except ValueError:
                raise FormatError(f"colour {' '.join(parts[:3])!r} is not three integers", path=path,
                                  where=where) from None
            if not all(0 <= c <= 255 for c in rgb):
                raise FormatError(f"colour {rgb} is outside 0..255", path=path, where=where)
            name = parts[3].strip()
        else:
            raise FormatError("a label map line must be `r g b name` (or just `name`)", path=path, where=where)
        if name in seen:
            raise FormatError(f"class {name!r} is listed twice", path=path, where=where)
        if out and (out[0][1] is None) != (rgb is None):
            raise FormatError("a label map line must be `r g b name` like the others (or every line just a name)"
                              if rgb is None else "a label map line must be just a name like the others",
                              path=path, where=where)
        seen.add(name)
        out.append((name, rgb))
    return out


def voc_colormap(n: int = 256) -> list[RGB]:
    """The PASCAL VOC devkit's colour map: index i -> (r, g, b) by spreading i's bits (index 0 is black);
    datumaro's `generate_colormap` gives the same colours, and uses them for label maps without colours."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors


# ---------------------------------------------------------------- reading


def load_png(path: Path) -> np.ndarray:
    """A label image as an array: 2-D for palette / grey / 16-bit, (h, w, 3) for colour.

    Palette PNGs give their indices (not the colours), as the datasets' own readers do.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            mode = opened.mode
            im: Image.Image = opened
            if mode in ("RGBA", "LA", "PA"):
                im = opened.convert("RGB" if mode != "LA" else "L")
            elif mode == "1":
                im = opened.convert("L")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise FormatError("label image not found", path=path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise FormatError(f"not a readable image ({e})", path=path) from None
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        return arr
    raise FormatError(f"a label image must be palette, grey, 16-bit or RGB, not mode {mode}", path=path)


def rgb_codes(arr: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 colours as one int32 code per pixel (r << 16 | g << 8 | b)."""
    import numpy as np

    return (arr[..., 0].astype(np.int32) << 16) | (arr[..., 1].astype(np.int32) << 8) | arr[..., 2]


def code(rgb: RGB) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


def colours_to_index(arr: np.ndarray, colours: Mapping[RGB, int], path: Path, *, hint: str) -> np.ndarray:
    """An RGB label image mapped to class indices through `colours`; unknown colours are errors."""
    import numpy as np

    codes = rgb_codes(arr)
    lookup = {code(c): i for c, i in colours.items()}
    unique, inverse = np.unique(codes, return_inverse=True)
    indices = np.empty(len(unique), dtype=np.int32)
    for i, c in enumerate(unique.tolist()):
        if c not in lookup:
            first = np.argwhere(codes == c)[0]
            raise FormatError(f"colour {(c >> 16, (c >> 8) & 255, c & 255)} is not a known class colour",
                              path=path, where=f"pixel x={int(first[1])}, y={int(first[0])}", hint=hint)
        indices[i] = lookup[c]
    return indices[inverse].reshape(codes.shape)


def value_masks(arr: np.ndarray, *, skip: Iterable[int] = ()) -> list[tuple[int, Mask]]:
    """(value, Mask) for every distinct value of a 2-D label array, in increasing value order.

    Vectorised: the present values come from one `bincount` (or `unique` for wide ranges), the
    array is laid out column-major once, and each value's mask is encoded straight from the
    comparison (pycocotools wants column-major uint8), with no per-pixel Python work.
    """
    import numpy as np
    from pycocotools import mask as mask_utils

    skipped = set(skip)
    flat = arr.ravel()
    if arr.dtype.kind in "ui" and flat.size and int(flat.min()) >= 0 and int(flat.max()) < (1 << 22):
        present = np.flatnonzero(np.bincount(flat)).tolist()
    else:
        present = np.unique(flat).tolist()
    column_major = np.asfortranarray(arr)
    height, width = arr.shape
    out = []
    for value in present:
        if int(value) in skipped:
            continue
        pixels = (column_major == value).view(np.uint8)
        rle = mask_utils.encode(pixels if pixels.flags.f_contiguous else np.asfortranarray(pixels))
        out.append((int(value), Mask(rle["counts"], height, width)))
    return out


def semantic_annotations(arr: np.ndarray, name_of: Callable[[int], str], *, skip: Iterable[int] = ()) -> list[Annotation]:
    """One semantic Mask annotation ({"semantic": True}) per class value present."""
    return [Annotation(name_at(arr, v, name_of), m, attributes={"semantic": True})
            for v, m in value_masks(arr, skip=skip)]


def locate(arr: np.ndarray, value: int) -> str:
    """Where a value first occurs in a label image, for error messages."""
    import numpy as np

    hits = np.argwhere(arr == value)
    return f"pixel x={int(hits[0][1])}, y={int(hits[0][0])}" if len(hits) else "no pixel"


def name_at(arr: np.ndarray, value: int, lookup: Callable[[int], str], key: int | None = None) -> str:
    """`lookup(key)` (key: the pixel value by default), its FormatError located at the first pixel
    holding `value`."""
    try:
        return lookup(value if key is None else key)
    except FormatError as e:
        if e.where:
            raise
        raise FormatError(e.message, path=e.path, where=locate(arr, value), hint=e.hint) from None


def check_shape(arr: np.ndarray, size: tuple[int, int] | None, path: Path) -> None:
    """A label image must have its image's size (width, height)."""
    if size is not None and (arr.shape[1], arr.shape[0]) != size:
        raise FormatError(f"label image is {arr.shape[1]}×{arr.shape[0]} but its image is {size[0]}×{size[1]}",
                          path=path)


# ---------------------------------------------------------------- writing


def is_semantic(ann: Annotation) -> bool:
    return bool(ann.attributes.get("semantic"))


@dataclass(frozen=True)
class Region:
    """The pixels of one annotation: a bool crop and where it sits (rows y0:y1, columns x0:x1).

    Painting through the crop touches only the annotation's bounding box, not the whole image.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    crop: np.ndarray

    @classmethod
    def of(cls, pixels: np.ndarray) -> Region | None:
        """The region of a full-size bool array, None when it is empty."""
        import numpy as np

        rows = np.flatnonzero(pixels.any(axis=1))
        if not rows.size:
            return None
        cols = np.flatnonzero(pixels.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls(y0, y1, x0, x1, pixels[y0:y1, x0:x1])

    @classmethod
    def of_mask(cls, mask: Mask) -> Region | None:
        """The region of a Mask, its bounds read from the RLE (no full-size scan)."""
        if mask.area == 0:
            return None
        b = mask.bounds()
        y0, y1, x0, x1 = int(b.y0), int(math.ceil(b.y1)), int(b.x0), int(math.ceil(b.x1))
        return cls(y0, y1, x0, x1, mask.to_array()[y0:y1, x0:x1].astype(bool))

    def window(self, target: np.ndarray) -> np.ndarray:
        return target[self.y0:self.y1, self.x0:self.x1]

    def set(self, target: np.ndarray, value: int) -> None:
        self.window(target)[self.crop] = value


class Painter:
    """Turns one annotation into a boolean pixel array of the image's size, counting in the
    report what it converted (polygons, rotated boxes) and dropping (with the reason) what a
    pixel format cannot hold: boxes, keypoints, whole-image labels, empty or mis-sized masks."""

    def __init__(self, report: WriteReport, format_name: str) -> None:
        self.report = report
        self.format_name = format_name

    def pixels(self, ann: Annotation, width: int, height: int) -> Region | None:
        g = ann.geometry
        report = self.report
        region: Region | None
        if isinstance(g, Mask):
            if (g.width, g.height) != (width, height):
                report.drop("mask", f"mask is {g.width}×{g.height} but the image is {width}×{height}")
                return None
            region = Region.of_mask(g)
        elif isinstance(g, Polygon):
            region = Region.of_mask(polygon_to_mask(g, height, width))
            report.converted["polygon -> mask (rasterised as COCO does)"] += 1
        elif isinstance(g, RotatedBox):
            poly = Polygon.from_points(list(g.corners()))
            region = Region.of_mask(polygon_to_mask(poly, height, width))
            report.converted["rotated_box -> mask (rasterised)"] += 1
        elif isinstance(g, Box):
            report.drop("box", f"{self.format_name} holds pixel masks only (a box is not a region outline)")
            return None
        elif isinstance(g, (Keypoints, Label)):
            report.drop(kind(g), f"{self.format_name} holds pixel masks only")
            return None
        else:  # pragma: no cover - every geometry kind is handled above
            report.drop(kind(g), f"{self.format_name} cannot hold it")
            return None
        if region is None:
            report.drop(kind(g), "empty region (no pixel inside)")
        return region


def count_lost(report: WriteReport, ann: Annotation, format_name: str, *, attributes: Iterable[str] | None = (),
               crowd: bool = False, confidence: bool = False) -> None:
    """Count in the report what of an annotation a format cannot keep beside its geometry.

    `attributes`: the attribute keys the format keeps (None: it keeps them all; "semantic" is
    always kept, it is what pixel formats are made of); `crowd` / `confidence`: whether it
    keeps those. Track ids are never kept by these formats.
    """
    if attributes is not None:
        kept = {"semantic", *attributes}
        lost = [k for k in ann.attributes if k not in kept]
        if lost:
            report.drop("attribute", f"{format_name} has no place for it", len(lost))
    if ann.crowd and not crowd:
        report.drop("crowd flag", f"{format_name} has no crowd flag")
    if ann.confidence is not None and not confidence:
        report.drop("confidence", f"{format_name} has no confidence")
    if ann.track_id is not None:
        report.drop("track id", f"{format_name} has no tracks")


def paint(target: np.ndarray, region: Region, value: int, *, background: int, report: WriteReport) -> None:
    """Set the region's pixels of `target` to `value`; count the overlap when it covers another region."""
    window = region.window(target)
    previous = window[region.crop]
    if ((previous != background) & (previous != value)).any():
        report.converted["overlapping pixels -> the later annotation's (as the format holds one value a pixel)"] += 1
    window[region.crop] = value


def save_png(arr: np.ndarray, path: Path, *, palette: Iterable[RGB] | None = None) -> None:
    """Save a label array: uint8 as grey (or palette when given), uint16 as 16-bit grey, (h, w, 3) as RGB."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(arr)
    if palette is not None:
        flat = [v for rgb in palette for v in rgb]
        image.putpalette(flat + [0] * (768 - len(flat)))
    image.save(path)


class NameBook:
    """Unique file stems per folder (case-insensitive): `a`, `a_2`, `a_3`, ..."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def unique(self, folder: str, stem: str) -> str:
        candidate, n = stem, 1
        while f"{folder}/{candidate}".lower() in self.taken:
            n += 1
            candidate = f"{stem}_{n}"
        self.taken.add(f"{folder}/{candidate}".lower())
        return candidate


def stem_and_suffix(file_name: str) -> tuple[str, str]:
    base = PurePosixPath(safe_name(file_name)).name
    p = PurePosixPath(base)
    return p.stem or "image", p.suffix


def folder_name(name: str) -> str:
    """A split or class name as one safe path component."""
    cleaned = re.sub(r"[\\/]", "_", name).strip()
    return cleaned if cleaned not in ("", ".", "..") else f"_{cleaned}"


def hex_to_rgb(color: str | None) -> RGB | None:
    if not color or not re.fullmatch(r"#?[0-9a-fA-F]{6}", color):
        return None
    h = color.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def rgb_to_hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def free_colour(wanted: RGB | None, used: set[RGB], index: int) -> RGB:
    """`wanted` when no other class has it, else a well-separated colour nobody uses."""
    if wanted is not None and wanted not in used:
        return wanted
    k = index
    while True:
        rgb = hex_to_rgb(default_color(k))
        assert rgb is not None
        if rgb not in used:
            return rgb
        k += 1


def class_colour(classes: ClassMap | None, name: str) -> RGB | None:
    if classes is None or name not in classes:
        return None
    return hex_to_rgb(classes[name].color)


def number(text: str, *, path: Path, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"{what} {text!r} is not a number", path=path, where=where) from None
    if not math.isfinite(value):
        raise FormatError(f"{what} {text!r} is not a finite number", path=path, where=where)
    return value


def jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of an attribute mapping."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, str | int | float | bool | type(None)):
            out[str(k)] = v
        elif isinstance(v, list | tuple) and all(isinstance(x, str | int | float | bool) for x in v):
            out[str(k)] = list(v)
    return out
