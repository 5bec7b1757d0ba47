"""Common semantic segmentation: images plus one mask PNG per image (same stem) and a colour map.

Documentation: Roboflow's "Semantic Segmentation Masks" export as described (with a sample) by
the luxonis-ml "Segmentation Mask Directory" parser, https://github.com/luxonis/luxonis-ml
(`<split>/<name>.jpg`, `<split>/<name>_mask.png` grey masks whose value is the class,
`<split>/_classes.csv` with the header `Pixel Value, Class`), and the image-folder + mask-folder
layout (https://docs.ultralytics.com/datasets/semantic/: one-channel masks, value = class index,
255 = ignore) with a CVAT / datumaro `labelmap.txt` (`name:r,g,b::`, index = line order,
https://docs.cvat.ai/docs/dataset_management/formats/format-smask).

Layouts read
    (a) Roboflow: `<split>/` folders (or the root) each holding images, `<stem>_mask.png` and
        `_classes.csv`. Splits are the folder names as they are (`valid` stays `valid`).
    (b) `images/` + `masks/` (or `labels/`, `annotations/`), the mask `masks/<same path>.png`,
        optionally one level of split folders inside both (`images/train/`, `masks/train/`);
        the colour map (`_classes.csv` or `labelmap.txt`) in the root or the mask folder.

Masks
    Grey or palette PNGs give the value directly (a palette PNG's index, not its colour); RGB
    masks are mapped back through the label map's colours. Value 0 is the background when the
    map names it `background` (or has no entry for it), 255 is ignored when the map does not name
    it, any other value missing from the map is an error. Without any colour map the classes are
    named by their value ("1", "2", ...). Each class present becomes one Mask with attributes
    {"semantic": True}. An image without a mask file is MISSING; an all-background mask is NULL.

Writing
    Layout (a): `out/<split>/<name>` (no split: `out/<name>`), a grey `<stem>_mask.png` per
    labelled image and `_classes.csv` in every folder (`0, background`, then the classes: those
    given first, then new ones in order of appearance, values 1..254). Masks and polygons
    (rasterised, counted) are painted in annotation order, later over earlier; instances of one
    class merge (counted). Boxes, keypoints and whole-image labels are dropped and counted.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    iter_files,
    place_image,
    refuse_filled,
    relative_name,
    skip_unpaired,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "semseg"
CLASSES_CSV = "_classes.csv"
LABELMAP = "labelmap.txt"
MASK_SUFFIX = "_mask"
BACKGROUND = "background"
VOID = 255
IMAGE_DIRS = ("images",)
MASK_DIRS = ("masks", "labels", "annotations")
_HEADER = "pixel value"


# ---------------------------------------------------------------- colour map


@dataclass
class _Map:
    """Pixel value -> class name (and colour -> value for RGB masks)."""

    names: dict[int, str] = field(default_factory=dict)
    colours: dict[tuple[int, int, int], int] = field(default_factory=dict)
    source: Path | None = None

    def skipped(self) -> set[int]:
        skip = set()
        if self.names.get(0, BACKGROUND).lower() in (BACKGROUND, "_background_"):
            skip.add(0)
        if VOID not in self.names:
            skip.add(VOID)
        return skip

    def name(self, value: int, png: Path) -> str:
        if self.source is None:
            return str(value)
        if value not in self.names:
            raise FormatError(f"pixel value {value} has no class in {self.source.name}", path=png,
                              hint=f"add it to {self.source}")
        return self.names[value]


def _read_classes_csv(path: Path) -> _Map:
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    out = _Map(source=path)
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and row[0].strip().lower() == _HEADER:
            continue
        if len(row) < 2:
            raise FormatError("a class line needs `pixel value, class`", path=path, where=f"line {number}")
        value = _seg.number(row[0].strip(), path=path, where=f"line {number}", what="pixel value")
        if not value.is_integer() or not 0 <= value <= 65535:
            raise FormatError(f"pixel value {row[0].strip()!r} is not an integer 0..65535", path=path,
                              where=f"line {number}")
        name = row[1].strip()
        if not name:
            raise FormatError("class name is empty", path=path, where=f"line {number}")
        out.names[int(value)] = name
    return out


def _read_labelmap(path: Path) -> _Map:
    from visionloop.formats.voc import parse_labelmap

    out = _Map(source=path)
    for i, (name, colour) in enumerate(parse_labelmap(path.read_text(encoding="utf-8-sig"), path=path)):
        out.names[i] = name
        if colour is not None:
            out.colours[colour] = i
    return out


def _find_map(*folders: Path) -> _Map:
    for folder in folders:
        if (folder / CLASSES_CSV).is_file():
            return _read_classes_csv(folder / CLASSES_CSV)
        if (folder / LABELMAP).is_file():
            return _read_labelmap(folder / LABELMAP)
    return _Map()


# ---------------------------------------------------------------- layout


@dataclass
class _Part:
    split: str | None
    images: Path
    masks: Path
    roboflow: bool  # masks are `<stem>_mask.png` beside the images
    cmap: _Map


def _dirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _child(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _has_mask_file(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            for n, entry in enumerate(entries):
                if n > 200:
                    return False
                if entry.name.endswith(MASK_SUFFIX + ".png"):
                    return True
    except OSError:
        return False
    return False


def _parts(root: Path) -> list[_Part]:
    splits = [d for d in _dirs(root) if (d / CLASSES_CSV).is_file()]
    if splits:
        return [_Part(d.name, d, d, True, _find_map(d, root)) for d in splits]
    if (root / CLASSES_CSV).is_file() and _has_mask_file(root):
        return [_Part(None, root, root, True, _find_map(root))]
    images, masks = _child(root, IMAGE_DIRS), _child(root, MASK_DIRS)
    if images is None or masks is None:
        return []
    cmap = _find_map(root, masks)
    inner = [d for d in _dirs(images) if (masks / d.name).is_dir()]
    if inner:
        return [_Part(d.name, d, masks / d.name, False, cmap) for d in inner]
    return [_Part(None, images, masks, False, cmap)]


# ---------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    if (path / "objectInfo150.csv").is_file() or (path / "class_dict.csv").is_file():
        return Detection(0.2, "image and mask folders, but with another dataset's class file")
    for folder in [path, *_dirs(path)[:10]]:
        csv_path = folder / CLASSES_CSV
        if csv_path.is_file():
            with open(csv_path, encoding="utf-8-sig", errors="replace") as f:
                head = f.readline().strip().lower()
            if head.startswith(_HEADER) and _has_mask_file(folder):
                return Detection(0.9, f"{csv_path.relative_to(path).as_posix()} and *_mask.png (Roboflow masks)")
            if head.startswith(_HEADER):
                return Detection(0.5, f"{csv_path.name} with `Pixel Value, Class` but no *_mask.png beside it")
    images, masks = _child(path, IMAGE_DIRS), _child(path, MASK_DIRS)
    if images is None or masks is None:
        return Detection.no("no _classes.csv with *_mask.png and no images/ + masks/ folders")
    first = next(iter_files(masks, suffixes=(".png",)), None)
    if first is None:
        return Detection.no(f"{masks.name}/ holds no PNG mask")
    rel = first.relative_to(masks).with_suffix("")
    if not any(Path(f"{images / rel}{ext}").is_file() for ext in IMAGE_EXTENSIONS):
        # images and masks this reader cannot pair: reading would give unlabelled images, so not claimed
        return Detection.no(f"{masks.name}/{rel.as_posix()}.png has no image of the same name in {images.name}/")
    has_map = any((f / n).is_file() for f in (path, masks) for n in (CLASSES_CSV, LABELMAP))
    where = f"images/ and {masks.name}/ of PNG masks"
    return Detection(0.7 if has_map else 0.55, where + (" with a colour map" if has_map else ""))


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("a semantic segmentation dataset is a folder", path=root)
    parts = _parts(root)
    if not parts:
        raise FormatError("no _classes.csv with *_mask.png files and no images/ + masks/ folders", path=root)
    classes = ClassMap()
    for part in parts:
        skip = part.cmap.skipped()
        for value, name in sorted(part.cmap.names.items()):
            if value not in skip and name not in classes and classes.by_id(value) is None:
                classes.add(name, id=value)
    return Reader(classes, lambda: _samples(root, parts, classes, split), source=root)


def _samples(root: Path, parts: list[_Part], classes: ClassMap, forced: str | None) -> Iterator[Sample]:
    for part in parts:
        if part.roboflow:
            images: Iterable[Path] = sorted(
                p for p in part.images.iterdir()
                if p.is_file() and is_image(p) and not p.stem.endswith(MASK_SUFFIX))
        else:
            images = iter_files(part.images, suffixes=IMAGE_EXTENSIONS)
        used: set[str] = set()
        for image in images:
            if part.roboflow:
                mask = image.with_name(image.stem + MASK_SUFFIX + ".png")
            else:
                mask = (part.masks / image.relative_to(part.images)).with_suffix(".png")
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            split = forced or part.split
            if not mask.is_file():
                yield Sample(ref, split=split, state=LabelState.MISSING)
                continue
            used.add(os.path.abspath(mask))
            anns, (w, h) = _mask_annotations(mask, part.cmap)
            for ann in anns:
                if ann.label not in classes:
                    classes.add(ann.label)
            yield Sample(replace(ref, width=w, height=h), tuple(anns), split=split)
        masks = (p for p in part.images.glob(f"*{MASK_SUFFIX}.png")) if part.roboflow else \
            iter_files(part.masks, suffixes=(".png",))
        skip_unpaired(masks, used, what="mask", reason="no image for it", path=part.images if part.roboflow else part.masks)


def _mask_annotations(png: Path, cmap: _Map) -> tuple[list[Annotation], tuple[int, int]]:
    """The semantic masks of one mask PNG and its size (width, height)."""
    arr = _seg.load_png(png)
    if arr.ndim == 3:
        if cmap.colours:
            arr = _seg.colours_to_index(arr, cmap.colours, png, hint=f"add the colour to {LABELMAP}")
        elif (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
            arr = arr[..., 0]
        else:
            raise FormatError("a colour mask needs a labelmap.txt with the class colours", path=png)
    anns = _seg.semantic_annotations(arr, lambda v: cmap.name(v, png), skip=cmap.skipped())
    return anns, (int(arr.shape[1]), int(arr.shape[0]))


# ---------------------------------------------------------------- write


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.index: dict[str, int] = {BACKGROUND: 0}
        self.folders: dict[str, None] = {}
        self.names = _seg.NameBook()
        self.painter = _seg.Painter(self.report, "a semantic mask")
        if classes is not None:
            for name in classes.names:
                self._value(name)

    def _value(self, name: str) -> int | None:
        if name not in self.index:
            if len(self.index) >= VOID:
                return None
            self.index[name] = len(self.index)
        return self.index[name]

    def add(self, sample: Sample) -> None:
        import numpy as np

        folder = _seg.folder_name(sample.split) if sample.split else ""
        self.folders[folder] = None
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        if stem.endswith(MASK_SUFFIX):
            stem += "_"
        stem = self.names.unique(folder, stem)
        target = self.out / folder if folder else self.out
        if place_image(sample.image, target / f"{stem}{suffix}", self.images):
            self.report.files += 1
        self.report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        arr = np.zeros((ref.height, ref.width), dtype=np.uint8)
        for ann in sample.annotations:
            if ann.label == BACKGROUND:
                self.report.drop(_kind(ann), "'background' is pixel value 0, which reads back as no class")
                continue
            pixels = self.painter.pixels(ann, ref.width, ref.height)
            if pixels is None:
                continue
            value = self._value(ann.label)
            if value is None:
                self.report.drop(_kind(ann), "more than 254 classes do not fit an 8-bit mask")
                continue
            if isinstance(ann.geometry, Mask) and not _seg.is_semantic(ann):
                self.report.converted["mask -> semantic class pixels (instances of a class merge)"] += 1
            _seg.paint(arr, pixels, value, background=0, report=self.report)
            self.report.annotations["mask"] += 1
            _seg.count_lost(self.report, ann, "a semantic mask")
        _seg.save_png(arr, target / f"{stem}{MASK_SUFFIX}.png")
        self.report.files += 1

    def finish(self) -> WriteReport:
        lines = ["Pixel Value, Class"] + [f"{v}, {name}" for name, v in self.index.items()]
        text = "\n".join(lines) + "\n"
        for folder in self.folders or {"": None}:
            target = self.out / folder if folder else self.out
            target.mkdir(parents=True, exist_ok=True)
            (target / CLASSES_CSV).write_text(text, encoding="utf-8")
            self.report.files += 1
        return self.report


def _kind(ann: Annotation) -> str:
    return kind(ann.geometry)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write Roboflow-style mask folders under `out` (which must be empty or not exist)."""
    out = Path(out)
    refuse_filled(out)
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()

