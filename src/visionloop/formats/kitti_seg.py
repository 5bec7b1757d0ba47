"""KITTI semantic and instance segmentation (the 2015 semantics benchmark, data_semantics.zip).

Documentation: http://www.cvlibs.net/datasets/kitti/eval_semseg.php and the readme of the
semantics development kit (https://s3.eu-central-1.amazonaws.com/avg-kitti/devkit_semantics.zip):
the labels follow Cityscapes (same label ids, see `cityscapes.LABELS`).

Layout::

    training/image_2/<id>.png
    training/semantic/<id>.png       uint8, Cityscapes label id per pixel
    training/semantic_rgb/<id>.png   the same in Cityscapes colours
    training/instance/<id>.png       uint16, label id * 256 + instance number
    testing/image_2/<id>.png

(`image_2` + `semantic` in the root is read too, as a dataset without splits; `training` is the
split "train", `testing` "test".)

Reading
    `instance/` when it exists: a value v is label v // 256 and instance v % 256; instance 0 is
    no instance: a crowd region (`crowd=True`) for a Cityscapes class with instances, else one
    semantic Mask per class (attributes {"semantic": True}); instances 1..255 are one Mask each.
    Else `semantic/`: one semantic Mask per label id. Id 0 (`unlabeled`) is the background.
    Masks come in order of pixel value. A `label_colors.txt` ("r g b name", id = line number;
    datumaro's custom label map) replaces the Cityscapes table. An image without label PNGs is
    MISSING.

Writing
    `training/` for split "train", `testing/` for "test", the split name otherwise, the root
    when a sample has no split: `image_2/<stem><ext>` and, for labelled images, `semantic/`,
    `semantic_rgb/` and `instance/` PNGs painted in annotation order (later over earlier).
    Instances are numbered 1..255 per class and image; semantic masks and crowd regions get
    instance 0. Classes outside the Cityscapes table get ids 34.. and a `label_colors.txt`.
    Polygons are rasterised (counted); boxes, keypoints and whole-image labels are dropped
    (counted), as are instances past the 255th of a class and ids above 255.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    place_image,
    refuse_filled,
    relative_name,
    skip_unpaired,
    with_size,
)
from visionloop.formats.cityscapes import (
    BY_NAME,
    INSTANCE_CLASSES,
    LABEL_COLORS,
    LABELS,
    read_label_colors,
    table_classes,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "kitti_seg"
IMAGES, SEMANTIC, SEMANTIC_RGB, INSTANCE = "image_2", "semantic", "semantic_rgb", "instance"
SPLIT_FOLDERS = {"training": "train", "testing": "test"}
FOLDER_OF_SPLIT = {v: k for k, v in SPLIT_FOLDERS.items()}
UNLABELED = 0


@dataclass(frozen=True)
class _Part:
    split: str | None
    folder: Path


def _parts(root: Path) -> list[_Part]:
    if (root / IMAGES).is_dir() and ((root / SEMANTIC).is_dir() or (root / INSTANCE).is_dir()):
        return [_Part(None, root)]
    parts = []
    try:
        with os.scandir(root) as entries:
            subdirs = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    for sub in subdirs:
        if (sub / IMAGES).is_dir() or (sub / SEMANTIC).is_dir() or (sub / INSTANCE).is_dir():
            parts.append(_Part(SPLIT_FOLDERS.get(sub.name, sub.name), sub))
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(parts, key=lambda p: (order.get(p.split or "", 1), p.folder.name))


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    parts = _parts(path)
    for part in parts:
        for sub in (INSTANCE, SEMANTIC):
            folder = part.folder / sub
            if folder.is_dir() and any(p.suffix.lower() == ".png" for p in _some(folder)):
                return Detection(0.9, f"{folder.relative_to(path).as_posix()}/ holds KITTI label PNGs")
    return Detection.no("no semantic/ or instance/ folder of PNGs beside image_2/")


def _some(folder: Path, n: int = 20) -> list[Path]:
    out = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                out.append(Path(entry.path))
                if len(out) >= n:
                    break
    except OSError:
        pass
    return out


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("a KITTI segmentation dataset is a folder (training/, testing/)", path=root)
    parts = _parts(root)
    if not parts:
        raise FormatError("no image_2/ with semantic/ or instance/ here or one level down", path=root)
    colors = root / LABEL_COLORS
    classes = read_label_colors(colors) if colors.is_file() else table_classes()
    return Reader(classes, lambda: _samples(root, parts, classes, split), source=root)


def _samples(root: Path, parts: list[_Part], classes: ClassMap, forced: str | None) -> Iterator[Sample]:
    instance_names = frozenset(n for n in INSTANCE_CLASSES if n in classes)
    for part in parts:
        images = part.folder / IMAGES
        files = sorted(p for p in images.iterdir() if p.is_file() and is_image(p)) if images.is_dir() else []
        stems = {p.stem for p in files}
        for sub in (INSTANCE, SEMANTIC):
            if (part.folder / sub).is_dir():
                skip_unpaired(sorted((part.folder / sub).glob("*.png")),
                              {os.path.abspath(p) for p in (part.folder / sub).glob("*.png") if p.stem in stems},
                              what=f"{sub} PNG", reason="no image for it", path=part.folder / sub)
        for image in files:
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            split = forced or part.split
            inst = part.folder / INSTANCE / f"{image.stem}.png"
            sem = part.folder / SEMANTIC / f"{image.stem}.png"
            if inst.is_file():
                arr = _seg.load_png(inst)
                if arr.ndim != 2:
                    raise FormatError("an instance PNG must be one-channel 16-bit", path=inst)
                anns = _instances(arr, classes, instance_names, inst)
            elif sem.is_file():
                arr = _seg.load_png(sem)
                if arr.ndim != 2:
                    raise FormatError("a semantic PNG must be one-channel label ids", path=sem)
                anns = _seg.semantic_annotations(arr, _namer(classes, sem), skip=(UNLABELED,))
            else:
                yield Sample(ref, split=split, state=LabelState.MISSING)
                continue
            ref = replace(ref, width=int(arr.shape[1]), height=int(arr.shape[0]))
            yield Sample(ref, tuple(anns), split=split)


def _namer(classes: ClassMap, path: Path) -> Callable[[int], str]:
    return lambda value: _name(classes, value, path)


def _name(classes: ClassMap, value: int, path: Path) -> str:
    info = classes.by_id(value)
    if info is None:
        raise FormatError(f"label id {value} is not a Cityscapes label", path=path,
                          hint=f"add it to {LABEL_COLORS} (r g b name, id = line number)")
    return info.name


def _instances(arr: np.ndarray, classes: ClassMap, instance_names: frozenset[str], path: Path) -> list[Annotation]:
    anns = []
    for value, mask in _seg.value_masks(arr):
        label_id, number = value >> 8, value & 255
        if label_id == UNLABELED:
            continue
        name = _seg.name_at(arr, value, lambda i: _name(classes, i, path), label_id)
        if number:
            anns.append(Annotation(name, mask))
        elif name in instance_names:
            anns.append(Annotation(name, mask, crowd=True))
        else:
            anns.append(Annotation(name, mask, attributes={"semantic": True}))
    return anns


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.ids: dict[str, int] = {lb.name: lb.id for lb in LABELS}
        self.colours: dict[int, tuple[int, int, int]] = {lb.id: lb.color for lb in LABELS}
        self.extra = False
        self.source_classes = classes
        self.names = _seg.NameBook()
        self.painter = _seg.Painter(self.report, "KITTI segmentation")
        if classes is not None:
            for name in classes.names:
                self._id(name)

    def _id(self, name: str) -> int:
        if name not in self.ids:
            new = max(self.ids.values()) + 1
            self.ids[name] = new
            self.extra = True
            used = set(self.colours.values())
            self.colours[new] = _seg.free_colour(_seg.class_colour(self.source_classes, name), used, new)
        return self.ids[name]

    def add(self, sample: Sample) -> None:
        import numpy as np

        report = self.report
        if sample.split is None:
            folder = self.out
        else:
            folder = self.out / FOLDER_OF_SPLIT.get(sample.split, _seg.folder_name(sample.split))
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = self.names.unique(str(folder), stem)
        if place_image(sample.image, folder / IMAGES / f"{stem}{suffix or '.png'}", self.images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        sem = np.zeros((ref.height, ref.width), dtype=np.uint8)
        inst = np.zeros((ref.height, ref.width), dtype=np.uint16)
        counts: Counter[str] = Counter()
        for ann in sample.annotations:
            pixels = self.painter.pixels(ann, ref.width, ref.height)
            if pixels is None:
                continue
            label_id = self._id(ann.label)
            if label_id <= UNLABELED or label_id > 255:
                why = ("'unlabeled' is the background" if label_id == UNLABELED
                       else f"label id {label_id} does not fit an 8-bit semantic PNG")
                report.drop(kind(ann.geometry), why)
                continue
            number = self._number(ann, counts)
            if number is None:
                continue
            pixels.set(sem, label_id)
            _seg.paint(inst, pixels, label_id * 256 + number, background=0, report=report)
            report.annotations["mask"] += 1
            _seg.count_lost(report, ann, "KITTI segmentation", crowd=True)
        _seg.save_png(sem, folder / SEMANTIC / f"{stem}.png")
        _seg.save_png(inst, folder / INSTANCE / f"{stem}.png")
        lut = np.zeros((256, 3), dtype=np.uint8)
        for i, rgb in self.colours.items():
            if 0 <= i < 256:
                lut[i] = rgb
        _seg.save_png(lut[sem], folder / SEMANTIC_RGB / f"{stem}.png")
        report.files += 3

    def _number(self, ann: Annotation, counts: Counter[str]) -> int | None:
        """Instance number 1..255, or 0 for a semantic mask or a crowd region."""
        report = self.report
        has_instances = ann.label in INSTANCE_CLASSES or ann.label not in BY_NAME
        if _seg.is_semantic(ann) or ann.crowd:
            if ann.crowd and ann.label not in INSTANCE_CLASSES:
                report.converted["crowd mask -> semantic mask (the class has no crowd regions)"] += 1
            elif _seg.is_semantic(ann) and ann.label in INSTANCE_CLASSES:
                report.converted["semantic mask -> crowd region (the class has instances)"] += 1
            return 0
        if not has_instances:
            report.converted["mask -> semantic mask (the Cityscapes class has no instances)"] += 1
            return 0
        counts[ann.label] += 1
        if counts[ann.label] > 255:
            report.drop("mask", "more than 255 instances of a class in one image")
            return None
        return counts[ann.label]

    def finish(self) -> WriteReport:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.extra:
            lines = [f"{r} {g} {b} {name}" for name, i in sorted(self.ids.items(), key=lambda t: t[1]) if i >= 0
                     for r, g, b in [self.colours[i]]]
            (self.out / LABEL_COLORS).write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.report.files += 1
        return self.report


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the KITTI semantics layout under `out` (whose label folders must not exist yet)."""
    out = Path(out)
    refuse_filled(out, *(Path(f) / sub for f in (".", *FOLDER_OF_SPLIT.values()) for sub in (SEMANTIC, INSTANCE)))
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()
