"""CamVid (Cambridge-driving Labeled Video Database), in its common 701-image distribution.

Documentation: http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/ (32 classes, colour
coded label images `<name>_L.png`) and the distribution most tools read (the Kaggle "CamVid"
dataset, also what datumaro's CamVid format mirrors,
https://openvinotoolkit.github.io/datumaro/stable/docs/data-formats/formats/camvid.html)::

    class_dict.csv        name,r,g,b   (Animal,64,128,64 ... Void,0,0,0 ...)
    train/<name>.png      train_labels/<name>_L.png
    val/<name>.png        val_labels/<name>_L.png
    test/<name>.png       test_labels/<name>_L.png

Reading
    Each label image is RGB; every colour is looked up in class_dict.csv (an unknown colour is
    an error). One semantic Mask (attributes {"semantic": True}) per class present, except
    `Void` (unlabelled pixels). Class ids are the class_dict lines, 0-based. The split is the
    image folder's name (`default` is no split). An image without a label image is MISSING.

Writing
    The same layout, the label images painted in annotation order (later over earlier) with
    the class colours: the given classes' colours when free, else new distinct ones. Unlabelled
    pixels are `Void` (0, 0, 0), listed in class_dict.csv (first when the given classes lack it).
    Instances of a class merge (counted); polygons are rasterised (counted); boxes, keypoints
    and whole-image labels are dropped (counted).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, kind
from visionloop.core.sample import ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    place_image,
    relative_name,
    skip_unpaired,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "camvid"
CLASS_DICT = "class_dict.csv"
LABEL_SUFFIX = "_L"
VOID = "Void"
_SPLIT_ORDER = ("train", "val", "test")


def _read_class_dict(path: Path) -> list[tuple[str, _seg.RGB]]:
    out: list[tuple[str, _seg.RGB]] = []
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")), skipinitialspace=True))
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and row[0].strip().lower() == "name":
            continue
        if len(row) != 4:
            raise FormatError("a class line must be `name,r,g,b`", path=path, where=f"line {number}")
        try:
            r, g, b = (int(v) for v in row[1:])
        except ValueError:
            raise FormatError(f"colour {','.join(row[1:])!r} is not three integers", path=path,
                              where=f"line {number}") from None
        if not all(0 <= c <= 255 for c in (r, g, b)):
            raise FormatError("colour values must be 0..255", path=path, where=f"line {number}")
        out.append((row[0].strip(), (r, g, b)))
    return out


def _splits(root: Path) -> list[Path]:
    """Image folders X that have an X_labels sibling."""
    try:
        with os.scandir(root) as entries:
            dirs = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    found = [d for d in dirs if not d.name.endswith("_labels") and (root / f"{d.name}_labels").is_dir()]

    def order(p: Path) -> tuple[int, str]:
        return (_SPLIT_ORDER.index(p.name), "") if p.name in _SPLIT_ORDER else (len(_SPLIT_ORDER), p.name)

    return sorted(found, key=order)


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    class_dict = path / CLASS_DICT
    if not class_dict.is_file():
        return Detection.no(f"no {CLASS_DICT}")
    with open(class_dict, encoding="utf-8-sig", errors="replace") as f:
        head = f.readline().replace(" ", "").lower()
    if not head.startswith("name,r,g,b"):
        return Detection.no(f"{CLASS_DICT} does not start with name,r,g,b")
    splits = _splits(path)
    if splits:
        return Detection(0.95, f"{CLASS_DICT} and {', '.join(s.name for s in splits)} with *_labels folders")
    return Detection(0.4, f"{CLASS_DICT} but no <split>/ + <split>_labels/ folders")


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    class_dict = root / CLASS_DICT
    if not class_dict.is_file():
        raise FormatError(f"no {CLASS_DICT} here", path=root)
    entries = _read_class_dict(class_dict)
    classes = ClassMap()
    colours: dict[_seg.RGB, int] = {}
    void: set[int] = set()
    for i, (name, rgb) in enumerate(entries):
        try:
            classes._insert(ClassInfo(name, i, color=_seg.rgb_to_hex(rgb)))
        except ValueError as e:
            raise FormatError(str(e), path=class_dict, where=f"class {i}") from None
        if rgb in colours:
            raise FormatError(f"colour {rgb} is used by {entries[colours[rgb]][0]!r} and {name!r}", path=class_dict)
        colours[rgb] = i
        if name.lower() == VOID.lower():
            void.add(i)
    splits = _splits(root)
    if not splits:
        raise FormatError("no <split>/ folder with a <split>_labels/ sibling", path=root)
    names = [name for name, _ in entries]
    return Reader(classes, lambda: _samples(root, splits, names, colours, void, split), source=root)


def _samples(root: Path, splits: list[Path], names: list[str], colours: dict[_seg.RGB, int], void: set[int],
             forced: str | None) -> Iterator[Sample]:
    for folder in splits:
        labels = root / f"{folder.name}_labels"
        part_split = None if folder.name == _seg.NO_SPLIT else folder.name
        used: set[str] = set()
        yield from _split_samples(root, folder, labels, part_split, names, colours, void, forced, used)
        if labels.is_dir():
            skip_unpaired(sorted(labels.glob("*.png")), used, what="label PNG", reason="no image for it", path=labels)


def _split_samples(root: Path, folder: Path, labels: Path, part_split: str | None, names: list[str],
                   colours: dict[_seg.RGB, int], void: set[int], forced: str | None, used: set[str]) -> Iterator[Sample]:
    for image in sorted(p for p in folder.iterdir() if p.is_file() and is_image(p)):
        ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
        split = forced or part_split
        png = labels / f"{image.stem}{LABEL_SUFFIX}.png"
        if not png.is_file():
            yield Sample(ref, split=split, state=LabelState.MISSING)
            continue
        used.add(os.path.abspath(png))
        arr = _seg.load_png(png)
        if arr.ndim == 2:
            raise FormatError("a CamVid label image must be RGB (colour coded)", path=png)
        index = _seg.colours_to_index(arr, colours, png, hint=f"add the colour to {CLASS_DICT}")
        anns = _seg.semantic_annotations(index, names.__getitem__, skip=void)
        yield Sample(replace(ref, width=int(arr.shape[1]), height=int(arr.shape[0])), tuple(anns), split=split)


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.source_classes = classes
        self.colours: dict[str, _seg.RGB] = {}
        self.names = _seg.NameBook()
        self.painter = _seg.Painter(self.report, "CamVid")
        given = classes.names if classes is not None else []
        if not any(n.lower() == VOID.lower() for n in given):
            self.colours[VOID] = (0, 0, 0)
        for name in given:
            self._colour(name)
        self.void = next(n for n in self.colours if n.lower() == VOID.lower())

    def _colour(self, name: str) -> _seg.RGB:
        if name not in self.colours:
            wanted = (0, 0, 0) if name.lower() == VOID.lower() else _seg.class_colour(self.source_classes, name)
            self.colours[name] = _seg.free_colour(wanted, set(self.colours.values()), len(self.colours))
        return self.colours[name]

    def add(self, sample: Sample) -> None:
        import numpy as np

        report = self.report
        folder = _seg.folder_name(sample.split) if sample.split else _seg.NO_SPLIT
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = self.names.unique(folder, stem)
        if place_image(sample.image, self.out / folder / f"{stem}{suffix or '.png'}", self.images):
            report.files += 1
        report.images += 1
        (self.out / f"{folder}_labels").mkdir(parents=True, exist_ok=True)
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        # paint class numbers first (0 = Void), colour them at the end
        order = list(self.colours)
        arr = np.full((ref.height, ref.width), order.index(self.void), dtype=np.int32)
        for ann in sample.annotations:
            pixels = self.painter.pixels(ann, ref.width, ref.height)
            if pixels is None:
                continue
            if ann.label == self.void:
                report.drop(kind(ann.geometry), "Void is the unlabelled colour and reads back as nothing")
                continue
            self._colour(ann.label)
            order = list(self.colours)
            if isinstance(ann.geometry, Mask) and not _seg.is_semantic(ann):
                report.converted["mask -> semantic class pixels (instances of a class merge)"] += 1
            _seg.paint(arr, pixels, order.index(ann.label), background=order.index(self.void), report=report)
            report.annotations["mask"] += 1
            _seg.count_lost(report, ann, "CamVid")
        lut = np.array([self.colours[n] for n in order], dtype=np.uint8)
        _seg.save_png(lut[arr], self.out / f"{folder}_labels" / f"{stem}{LABEL_SUFFIX}.png")
        report.files += 1

    def finish(self) -> WriteReport:
        self.out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["name", "r", "g", "b"])
        for name, (r, g, b) in self.colours.items():
            w.writerow([name, r, g, b])
        (self.out / CLASS_DICT).write_text(buf.getvalue(), encoding="utf-8")
        self.report.files += 1
        return self.report


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the CamVid layout under `out` (which must not hold a class_dict.csv yet)."""
    out = Path(out)
    if (out / CLASS_DICT).exists():
        raise FormatError(f"the output folder already has {CLASS_DICT}", path=out,
                          hint="write into an empty folder; nothing is overwritten")
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()
