"""RetinaNet Keras CSV: ``path,x1,y1,x2,y2,class_name`` per box, plus ``class_name,id`` classes.

Reference: https://github.com/fizyr/keras-retinanet#csv-datasets (and ``preprocessing/csv_generator.py``);
Roboflow's "RetinaNet Keras CSV" export writes ``_annotations.csv`` and ``_classes.csv`` per split
folder with the images beside them (https://roboflow.com/formats/retinanet-keras-csv)::

    img_001.jpg,837,346,981,456,cow
    img_002.jpg,215,312,279,391,cat
    img_003.jpg,,,,,                    <- an image with no object (a negative example)

Neither file has a header. Image paths are relative to the folder of the annotations CSV
(keras-retinanet's default ``base_dir``). Class ids come from the classes file and are kept.

Conventions
    x1, y1, x2, y2 are absolute pixel corners, continuous (no offset): x1 = x0. keras-retinanet
    parses them as integers and requires x2 > x1 and y2 > y1, so the writer rounds every corner
    to the nearest integer (counted as a conversion when a value was fractional), widens a box
    that rounds to zero width or height to 1 px (counted), and the reader accepts decimals too.
    A row with empty box and class is an image labelled empty (NULL); the writer writes images
    without boxes that way (a MISSING image too, counted as a conversion).

Layouts read: an annotations CSV (classes from ``classes.csv`` / ``_classes.csv`` beside it, else in
order of appearance); a folder with ``_annotations.csv`` or ``annotations.csv`` (and
``<split>_annotations.csv``); split folders each holding ``_annotations.csv`` (the split is the
folder name). Rows of one image need not be adjacent.

Writing: ``out/[<split>/]_annotations.csv`` and ``_classes.csv`` (every class, in each folder), images
beside. Other geometries become their bounds (keypoints their declared bbox); whole-image labels
and box-less keypoints are dropped; all counted.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import SPLIT_WORDS, CsvRows, Row, UniqueNames, as_box, grouped, split_folder
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

FORMAT = "retinanet"
ANNOTATIONS = ("_annotations.csv", "annotations.csv")
CLASSES = ("_classes.csv", "classes.csv")


@dataclass(frozen=True)
class _File:
    path: Path
    split: str | None


def _first_row(path: Path) -> list[str] | None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.reader(f):
                if row and any(v.strip() for v in row):
                    return [v.strip() for v in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _looks_like_row(row: list[str] | None) -> bool:
    if row is None or len(row) != 6 or not row[0]:
        return False
    if not row[0].lower().endswith(IMAGE_EXTENSIONS):
        return False
    if not any(row[1:]):
        return True
    try:
        [float(v) for v in row[1:5]]
    except ValueError:
        return False
    return bool(row[5])


def _files(path: Path) -> list[_File]:
    if path.is_file():
        return [_File(path, _split_of(path))] if path.suffix.lower() == ".csv" else []
    if not path.is_dir():
        return []
    for name in ANNOTATIONS:
        if (path / name).is_file():
            return [_File(path / name, None)]
    found = [_File(f, _split_of(f)) for f in sorted(path.glob("*_annotations.csv")) if _looks_like_row(_first_row(f))]
    if found:
        return found
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        for name in ANNOTATIONS:
            if (sub / name).is_file():
                found.append(_File(sub / name, sub.name))
                break
    return found


def _split_of(path: Path) -> str | None:
    stem = path.stem.lower()
    if stem.endswith("_annotations") and stem[: -len("_annotations")] in SPLIT_WORDS:
        return path.stem[: -len("_annotations")]
    if path.name in ANNOTATIONS and path.parent.name.lower() in SPLIT_WORDS:
        return path.parent.name
    return None


def _classes_file(folder: Path) -> Path | None:
    for d in (folder, folder.parent):
        for name in CLASSES:
            if (d / name).is_file():
                return d / name
    return None


def read_classes(path: Path) -> ClassMap:
    """`class_name,id` lines as a ClassMap (ids kept)."""
    classes = ClassMap()
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = CsvRows(f, path)
        for row in reader:
            where = f"line {reader.line_num}"
            if not row or not any(v.strip() for v in row):
                continue
            if len(row) != 2:
                raise FormatError(f"expected `class_name,id`, got {len(row)} fields", path=path, where=where)
            name, ident = row[0].strip(), row[1].strip()
            try:
                classes.add(name, id=int(ident))
            except ValueError as e:
                raise FormatError(f"bad class line: {e}", path=path, where=where) from None
            if classes[name].id != int(ident):
                raise FormatError(f"class {name!r} is listed twice", path=path, where=where)
    return classes


# ------------------------------------------------------------------------------------ detect


def detect(path: Path) -> Detection:
    """An annotations CSV whose first row is `image,x1,y1,x2,y2,class` (or `image,,,,,`)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv" and path.name in CLASSES:
        return Detection.no("a classes file, not annotations")
    files = _files(path)
    if not files:
        return Detection.no("no RetinaNet annotations CSV (_annotations.csv, annotations.csv)")
    f = files[0].path
    if not _looks_like_row(_first_row(f)):
        return Detection.no(f"{f.name}'s first row is not `image,x1,y1,x2,y2,class`")
    has_classes = _classes_file(f.parent) is not None
    return Detection(0.95 if has_classes else 0.8,
                     f"{f.name} has `image,x1,y1,x2,y2,class` rows" + (" and a classes file" if has_classes else ""))


# -------------------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _files(path)
    if not files:
        raise FormatError("no RetinaNet annotations CSV here", path=path,
                          hint="expected _annotations.csv / annotations.csv (or split folders holding one)")
    classes = ClassMap()
    for f in files:
        cf = _classes_file(f.path.parent)
        if cf is None:
            continue
        for c in read_classes(cf):
            known = classes.get(c.name)
            if known is None:
                try:
                    classes.add(c.name, id=c.id)
                except ValueError as e:
                    raise FormatError(str(e), path=cf) from None
            elif known.id != c.id:
                raise FormatError(f"class {c.name!r} has id {c.id} here but {known.id} in another split", path=cf)
    fixed = len(classes) > 0

    def samples() -> Iterator[Sample]:
        for f in files:
            yield from _read_file(f.path, split or f.split, classes, fixed)

    return Reader(classes, samples, source=path)


def _rows(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = CsvRows(f, path)
        for values in reader:
            if not values or not any(v.strip() for v in values):
                continue
            line = reader.line_num
            if len(values) != 6:
                raise FormatError(f"expected `path,x1,y1,x2,y2,class_name`, got {len(values)} fields",
                                  path=path, where=f"line {line}")
            row = [v.strip() for v in values]
            if not row[0]:
                raise FormatError("empty image path", path=path, where=f"line {line}")
            yield row[0], line, row


def _read_file(path: Path, split: str | None, classes: ClassMap, fixed: bool) -> Iterator[Sample]:
    base = path.parent
    for name, rows in grouped(lambda: _rows(path)):
        anns = []
        for line, (_, *coords, cls) in rows:
            where = f"line {line}"
            if not cls and not any(coords):
                continue
            if not cls or not all(coords):
                raise FormatError("a row needs all of x1,y1,x2,y2,class_name, or none (a negative image)",
                                  path=path, where=where)
            try:
                x1, y1, x2, y2 = (float(v) for v in coords)
                box = Box(x1, y1, x2, y2)
            except ValueError as e:
                raise FormatError(f"bad box {','.join(coords)}: {e}", path=path, where=where) from None
            if fixed and cls not in classes:
                raise FormatError(f"class {cls!r} is not in the classes file", path=path, where=where)
            anns.append(Annotation(classes.add(cls).name, box))
        file_name = name.replace("\\", "/")
        image = Path(file_name) if Path(file_name).is_absolute() else base / file_name
        ref = ImageRef(file_name if not Path(file_name).is_absolute() else image.name, path=str(image))
        yield Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


# ------------------------------------------------------------------------------------- write


def _int_box(box: Box, report: WriteReport) -> tuple[int, int, int, int]:
    vals = (box.x0, box.y0, box.x1, box.y1)
    x1, y1, x2, y2 = (math.floor(v + 0.5) for v in vals)
    if any(not float(v).is_integer() for v in vals):
        report.converted["box -> integer pixel corners (rounded)"] += 1
    if x2 <= x1 or y2 <= y1:
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        report.converted["box -> widened to 1 px (keras-retinanet needs x2 > x1, y2 > y1)"] += 1
    return x1, y1, x2, y2


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """`out/[<split>/]_annotations.csv` + `_classes.csv`, images beside them."""
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    cmap = ClassMap(list(classes)) if classes is not None else ClassMap()
    names = UniqueNames()
    files: dict[str | None, IO[str]] = {}
    writers: dict[str | None, Any] = {}
    folders: dict[str | None, Path] = {}
    try:
        for sample in samples:
            folder = out / split_folder(sample.split) if sample.split else out
            if sample.split not in files:
                for name in (ANNOTATIONS[0], CLASSES[0]):
                    if (folder / name).exists():
                        raise FormatError("the file already exists; refusing to overwrite it", path=folder / name)
                folder.mkdir(parents=True, exist_ok=True)
                files[sample.split] = open(folder / ANNOTATIONS[0], "x", encoding="utf-8", newline="")
                writers[sample.split] = csv.writer(files[sample.split], lineterminator="\n")
                folders[sample.split] = folder
                report.files += 1
            name = names.claim(str(folder), safe_name(sample.image.file_name), report)
            if place_image(sample.image, folder / name, images):
                report.files += 1
            report.images += 1
            rows = []
            for ann in sample.annotations:
                box = as_box(ann, report, "RetinaNet CSV")
                if box is not None:
                    if ann.label not in cmap:
                        cmap.add(ann.label)
                    rows.append([name, *_int_box(box, report), ann.label])
            if not rows:
                if sample.state is LabelState.MISSING:
                    report.converted["image missing labels -> null (a negative row)"] += 1
                rows.append([name, "", "", "", "", ""])
            writers[sample.split].writerows(rows)
    finally:
        for f in files.values():
            f.close()
    if not folders:
        folders[None] = out
        out.mkdir(parents=True, exist_ok=True)
        (out / ANNOTATIONS[0]).touch(exist_ok=False)
        report.files += 1
    for folder in folders.values():
        with open(folder / CLASSES[0], "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerows([c.name, c.id] for c in cmap)
        report.files += 1
    return report
