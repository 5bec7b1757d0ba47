"""Unlabelled images: a folder of image files and nothing else — the starting point for labelling.

Layouts read: images in one flat folder, or nested in sub-folders at any depth (`2023/06/a.jpg`). A first
level of split folders (`train/`, `valid/`, `val/`, `test/`) gives the split; other folders are only where
the files are. Every image is LabelState.MISSING (nobody labelled it), its size read from the file when needed.

Detection claims a folder only when nothing else could be meant: it holds images, no file that could be
annotations (any non-image file other than `Thumbs.db`, `desktop.ini`, `.DS_Store` and hidden files: a
`.txt`, `.xml`, `.json`, `.csv`...), and no folder named for annotations (`masks/`, `labels/`, `annotations/`,
`gt/`, `x/` beside `xannot/`...). Its score is the lowest a format gives, so any format that recognises the
layout wins: class folders (`cat/`, `dog/`) stay classification, `images/` + `labels/` stays YOLO. Read with
`--format unlabelled` regardless, a non-image file is counted as skipped (and refused by --strict).

Importing unlabelled images into a project that already has labels for them keeps those labels (an image
nobody labelled never replaces one somebody did; `store.writer`).

Writing copies (or links) the images to `out/[<split>/]<name>`; every annotation is dropped (counted).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import kind
from visionloop.core.sample import ImageRef, LabelState, Sample
from visionloop.formats._labeltools import UniqueNames
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    is_image,
    place_image,
    refuse_filled,
    safe_name,
    skip,
)

FORMAT = "unlabelled"
SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "val", "validation": "val", "test": "test"}
_JUNK = {"thumbs.db", "desktop.ini", ".ds_store"}
#: folder names that hold annotations, never just images
_ANNOTATION_DIRS = {"masks", "mask", "labels", "label", "annotations", "annotation", "annots", "gt", "groundtruth",
                    "ground_truth", "ground-truth", "segmentationclass", "segmentationobject", "labeltxt", "label_2"}
_ANNOTATION_SUFFIXES = ("annot", "annots", "_labels", "_label", "_masks", "_mask", "_gt")
_SNIFF = 5000  # entries looked at by detect()


def _walk(root: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield dirpath, dirnames, sorted(f for f in filenames if not f.startswith("."))


def _annotation_dir(name: str) -> bool:
    low = name.lower()
    return low in _ANNOTATION_DIRS or any(low.endswith(s) and len(low) > len(s) for s in _ANNOTATION_SUFFIXES)


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    images = seen = 0
    for dirpath, dirnames, filenames in _walk(path):
        for d in dirnames:
            if _annotation_dir(d):
                return Detection.no(f"{os.path.relpath(os.path.join(dirpath, d), path)}/ is named for annotations")
        for name in filenames:
            seen += 1
            if is_image(Path(name)):
                images += 1
            elif name.lower() not in _JUNK:
                rel = PurePosixPath(Path(os.path.relpath(os.path.join(dirpath, name), path))).as_posix()
                return Detection.no(f"{rel} is not an image (it may hold labels)")
        if seen >= _SNIFF:
            break
    if not images:
        return Detection.no("no image files")
    return Detection(0.02, f"{images}{'+' if seen >= _SNIFF else ''} images and no labels: unlabelled images")


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("unlabelled images are a folder of image files", path=root)

    def samples() -> Iterator[Sample]:
        for dirpath, _, filenames in _walk(root):
            for name in filenames:
                full = Path(dirpath) / name
                rel = PurePosixPath(full.relative_to(root)).as_posix()
                if not is_image(full):
                    if name.lower() not in _JUNK:
                        skip("file", "not an image (unlabelled images are read alone)", path=full)
                    continue
                first = rel.split("/", 1)[0].lower() if "/" in rel else None
                sample_split = split or (SPLIT_NAMES.get(first) if first else None)
                yield Sample(ImageRef(rel, path=str(full)), (), split=sample_split, state=LabelState.MISSING)

    return Reader(ClassMap(), samples, source=root)


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    for sample in samples:
        name = safe_name(sample.image.file_name)
        if sample.split and not name.lower().startswith(sample.split.lower() + "/"):
            name = f"{safe_name(sample.split)}/{name}"
        if place_image(sample.image, out / names(name), images):
            report.files += 1
        for ann in sample.annotations:
            report.drop(kind(ann.geometry), "unlabelled holds images only")
        count_state_change(report, sample, becomes=LabelState.MISSING, why="unlabelled has no labels")
        report.images += 1
    return report
