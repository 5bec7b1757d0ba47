"""YOLO Keras TXT: one line per image, ``path x_min,y_min,x_max,y_max,class_id ...``, plus a classes file.

References: https://github.com/qqwweee/keras-yolo3#training ("Row format: image_file_path box1 box2
... boxN; Box format: x_min,y_min,x_max,y_max,class_id (no space)") and Roboflow's "YOLO Keras TXT"
export (https://roboflow.com/formats/yolo-keras-txt): ``_annotations.txt`` and ``_classes.txt``
(one class name per line, names may hold spaces, no newline after the last; ``class_id`` is the 0-based line
number) per split folder, images beside. Real exports read in the tests: angshumansinha/keras-yolo3 @ 276a4be7
(train/_classes.txt + _annotations.txt) and 99002523/dataset @ 78ab31ee (a 2020 "YOLO v3 (Keras)" export
without _classes.txt, zero-size boxes)::

    img_001.jpg 48,240,195,371,11 8,12,352,498,14
    img_002.jpg                                  <- an image with no object

Conventions
    Corners are absolute pixels, continuous (x0 = x_min, no offset). keras-yolo3 parses them with
    ``int()``, so the writer rounds them to the nearest integer (counted when a value was
    fractional); the reader accepts decimals. Image paths are relative to the annotation file's
    folder and cannot contain spaces (the writer replaces them with ``_``, counted). A line with a
    path only is an image labelled empty (NULL); a MISSING image is written that way too (counted).
    Without a classes file, class names are the ids as text ("0", "1", ...). Class ids read are
    the classes file's line numbers; written ids are positions in the class map.

Layouts read: an annotation .txt file (classes from ``_classes.txt`` / ``classes.txt`` beside it); a
folder with ``_annotations.txt``; split folders each holding one (the split is the folder name).

Writing: ``out/[<split>/]_annotations.txt`` + ``_classes.txt``, images beside. Other geometries become
their bounds (keypoints their declared bbox); labels and box-less keypoints are dropped; all counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import UniqueNames, as_box, split_folder
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "yolokeras"
ANNOTATIONS = "_annotations.txt"
CLASSES = ("_classes.txt", "classes.txt")


def _files(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_file():
        return [(path, None)] if path.suffix.lower() == ".txt" and path.name not in CLASSES else []
    if not path.is_dir():
        return []
    if (path / ANNOTATIONS).is_file():
        return [(path / ANNOTATIONS, None)]
    return [(sub / ANNOTATIONS, sub.name) for sub in sorted(p for p in path.iterdir() if p.is_dir())
            if (sub / ANNOTATIONS).is_file()]


def _classes_file(folder: Path) -> Path | None:
    for d in (folder, folder.parent):
        for name in CLASSES:
            if (d / name).is_file():
                return d / name
    return None


def _read_names(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError:
        raise FormatError("not a UTF-8 text file", path=path) from None
    while names and not names[-1]:
        names.pop()
    for n, name in enumerate(names, start=1):
        if not name:
            raise FormatError("empty class name", path=path, where=f"line {n}", hint="line n names class n - 1")
    if len(set(names)) != len(names):
        raise FormatError("a class name is listed twice", path=path)
    return names


def _parse_box(token: str) -> tuple[float, float, float, float, int] | None:
    parts = token.split(",")
    if len(parts) != 5:
        return None
    try:
        x0, y0, x1, y1 = (float(p) for p in parts[:4])
        cls = int(parts[4])
    except ValueError:
        return None
    return x0, y0, x1, y1, cls


# ------------------------------------------------------------------------------------ detect


def _first_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def detect(path: Path) -> Detection:
    """`_annotations.txt` (or a given .txt) whose first line is `image x0,y0,x1,y1,c ...`."""
    path = Path(path)
    files = _files(path)
    if not files:
        return Detection.no("no _annotations.txt here or in split folders")
    f = files[0][0]
    line = _first_line(f)
    if line is None:
        return Detection(0.3 if f.name == ANNOTATIONS else 0.0, f"{f.name} is empty")
    tokens = line.split()
    if not tokens[0].lower().endswith(IMAGE_EXTENSIONS):
        return Detection.no(f"{f.name}'s first line does not start with an image path")
    boxes = tokens[1:]
    if boxes and all(_parse_box(t) is not None for t in boxes):
        return Detection(0.95 if f.name == ANNOTATIONS else 0.7, f"{f.name} has `image x0,y0,x1,y1,class` lines")
    if not boxes and f.name == ANNOTATIONS:
        return Detection(0.5, f"{f.name}'s first line is an image without boxes")
    return Detection.no(f"{f.name}'s first line is not `image x0,y0,x1,y1,class ...`")


# -------------------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _files(path)
    if not files:
        raise FormatError("no YOLO Keras annotation file here", path=path,
                          hint="expected _annotations.txt (or split folders holding one)")
    names: list[str] | None = None
    for f, _ in files:
        cf = _classes_file(f.parent)
        if cf is not None:
            found = _read_names(cf)
            if names is not None and found != names:
                raise FormatError("the classes differ from another split's classes file", path=cf)
            names = found
    classes = ClassMap.from_names(names) if names is not None else ClassMap()

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            yield from _read_file(f, split or file_split, classes, names is not None)

    return Reader(classes, samples, source=path)


def _read_file(path: Path, split: str | None, classes: ClassMap, fixed: bool) -> Iterator[Sample]:
    with open(path, encoding="utf-8-sig") as f:
        for n, raw in enumerate(f, start=1):
            tokens = raw.split()
            if not tokens:
                continue
            where = f"line {n}"
            anns = []
            for k, token in enumerate(tokens[1:], start=1):
                parsed = _parse_box(token)
                if parsed is None:
                    raise FormatError(f"box {k} {token!r} is not x_min,y_min,x_max,y_max,class_id", path=path,
                                      where=where)
                x0, y0, x1, y1, cls = parsed
                info = classes.by_id(cls)
                if info is None:
                    if fixed or cls < 0:
                        raise FormatError(f"class id {cls} is not in the classes file ({len(classes)} classes)",
                                          path=path, where=where)
                    info = classes.add(str(cls), id=cls)
                try:
                    box = Box(x0, y0, x1, y1)
                except ValueError as e:
                    raise FormatError(f"box {k}: {e}", path=path, where=where) from None
                anns.append(Annotation(info.name, box))
            name = tokens[0].replace("\\", "/")
            image = Path(name) if Path(name).is_absolute() else path.parent / name
            ref = ImageRef(image.name if Path(name).is_absolute() else name, path=str(image))
            yield Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


# ------------------------------------------------------------------------------------- write


def _ints(box: Box, report: WriteReport) -> list[int]:
    vals = (box.x0, box.y0, box.x1, box.y1)
    if any(not float(v).is_integer() for v in vals):
        report.converted["box -> integer pixel corners (rounded)"] += 1
    return [math.floor(v + 0.5) for v in vals]


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """`out/[<split>/]_annotations.txt` + `_classes.txt`, images beside them."""
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    cmap = ClassMap.from_names(classes.names) if classes is not None else ClassMap()
    names = UniqueNames()
    files: dict[str | None, IO[str]] = {}
    folders: dict[str | None, Path] = {}
    try:
        for sample in samples:
            folder = out / split_folder(sample.split) if sample.split else out
            if sample.split not in files:
                for n in (ANNOTATIONS, CLASSES[0]):
                    if (folder / n).exists():
                        raise FormatError("the file already exists; refusing to overwrite it", path=folder / n)
                folder.mkdir(parents=True, exist_ok=True)
                files[sample.split] = open(folder / ANNOTATIONS, "x", encoding="utf-8", newline="\n")
                folders[sample.split] = folder
                report.files += 1
            wanted = safe_name(sample.image.file_name)
            if any(c.isspace() for c in wanted):
                wanted = "_".join(wanted.split())
                report.converted["image name -> spaces replaced by _"] += 1
            name = names.claim(str(folder), wanted, report)
            if place_image(sample.image, folder / name, images):
                report.files += 1
            report.images += 1
            tokens = [name]
            for ann in sample.annotations:
                box = as_box(ann, report, "YOLO Keras TXT")
                if box is not None:
                    idx = cmap.index(cmap.add(ann.label).name)
                    tokens.append(",".join(str(v) for v in (*_ints(box, report), idx)))
            if len(tokens) == 1 and sample.state is LabelState.MISSING:
                report.converted["image missing labels -> null (a line without boxes)"] += 1
            files[sample.split].write(" ".join(tokens) + "\n")
    finally:
        for f in files.values():
            f.close()
    if not folders:
        out.mkdir(parents=True, exist_ok=True)
        (out / ANNOTATIONS).touch(exist_ok=False)
        folders[None] = out
        report.files += 1
    for folder in folders.values():
        (folder / CLASSES[0]).write_text("".join(f"{n}\n" for n in cmap.names), encoding="utf-8")
        report.files += 1
    return report
