"""TensorFlow Object Detection CSV: ``filename,width,height,class,xmin,ymin,xmax,ymax``, one row per box.

References: the CSV that datitran/raccoon_dataset's ``xml_to_csv.py`` writes and ``generate_tfrecord.py``
turns into TFRecords (https://github.com/datitran/raccoon_dataset), and Roboflow's "Tensorflow Object
Detection CSV" export (https://roboflow.com/formats/tensorflow-object-detection-csv): per split
folder an ``_annotations.csv`` with the images beside it.

Pixel convention (decided and pinned in tests/formats/test_tfcsv.py)
    The numbers are continuous pixel edges, (0, 0) the top-left corner of the first pixel -- our
    canonical space, read and written without offset. Reason: the tool that consumes this CSV,
    ``generate_tfrecord.py``, divides them by width/height as they are (``xmin / width``) to make
    the TF OD API's normalised coordinates, which are continuous fractions of the image; reading
    them any other way would make a CSV and the TFRecord built from it disagree. Note that the
    raccoon CSVs were made by ``xml_to_csv.py``, which copies the VOC XML's 1-based inclusive
    integers verbatim: the same raccoon box therefore reads 1 px further right/down at its top-left
    corner here (x0 = xmin) than from the VOC XML (x0 = xmin - 1), exactly as it does in the TF
    tooling. Writing: integers as integers, other values as the shortest exact decimal.

Layouts read
    a CSV file with that header (columns in any order); a folder with ``_annotations.csv``
    (Roboflow; images beside it), or ``<split>_labels.csv`` files (raccoon: ``train_labels.csv``,
    ``test_labels.csv``; the split is the prefix), or split folders each with ``_annotations.csv``
    (the split is the folder name). Images are looked up beside the CSV, in ``images/`` beside it,
    then in ``../images/`` and ``../``. Rows of one image need not be adjacent. Class names come
    from the ``class`` column (ids 0, 1, ... in order of appearance; the format has no ids).

Images without boxes
    The format lists boxes only. A row whose class and coordinates are empty is read as an image
    labelled empty (NULL). In a Roboflow ``_annotations.csv`` folder, an image file beside the CSV
    that no row lists is read as NULL too, and that is how the writer writes images without boxes
    (copied, not listed; a MISSING image also becomes NULL this way, counted as a conversion).
    Image names keep their folders (``sub/x.jpg``), relative to the CSV.

Writing
    ``out/_annotations.csv`` (or ``out/<split>/_annotations.csv``) with the images beside it.
    Polygons, masks and rotated boxes become their bounds (declared bbox first), keypoints their
    declared bbox; whole-image labels and box-less keypoints are dropped; all counted.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import (
    SPLIT_WORDS,
    ImageRoot,
    Row,
    UniqueNames,
    as_box,
    grouped,
    number,
    split_folder,
)
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    iter_files,
    place_image,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "tfcsv"
ROBOFLOW_NAME = "_annotations.csv"
COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class _File:
    path: Path
    split: str | None


def _header(path: Path) -> list[str] | None:
    """The normalised header if it names every TF CSV column, else None."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            first = f.readline(4096)
    except (OSError, UnicodeDecodeError):
        return None
    cols = [c.strip().lower() for c in next(csv.reader([first]), [])]
    return cols if set(COLUMNS) <= set(cols) else None


def _split_of(path: Path) -> str | None:
    stem = path.stem.lower()
    for suffix in ("_labels", "_annotations", "-labels", "_label"):
        if stem.endswith(suffix) and stem[: -len(suffix)] in SPLIT_WORDS:
            return path.stem[: -len(suffix)]
    if stem in SPLIT_WORDS:
        return path.stem
    if path.name == ROBOFLOW_NAME and path.parent.name.lower() in SPLIT_WORDS:
        return path.parent.name
    return None


def _files(path: Path) -> list[_File]:
    if path.is_file():
        return [_File(path, _split_of(path))] if path.suffix.lower() == ".csv" else []
    if not path.is_dir():
        return []
    if (path / ROBOFLOW_NAME).is_file() and _header(path / ROBOFLOW_NAME):
        return [_File(path / ROBOFLOW_NAME, None)]
    found = [_File(f, _split_of(f)) for f in sorted(path.glob("*.csv")) if _header(f)]
    if found:
        return found
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        f = sub / ROBOFLOW_NAME
        if f.is_file() and _header(f):
            found.append(_File(f, sub.name))
    return found


# ---------------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """A CSV (or a folder's CSVs) whose header names filename,width,height,class,xmin,ymin,xmax,ymax."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            return Detection.no("not a .csv file")
        if _header(path):
            return Detection(0.95, f"{path.name} has the TF Object Detection CSV header")
        return Detection.no(f"{path.name} lacks the header filename,width,height,class,xmin,ymin,xmax,ymax")
    files = _files(path) if path.is_dir() else []
    if not files:
        return Detection.no("no CSV with the header filename,width,height,class,xmin,ymin,xmax,ymax")
    return Detection(0.8, f"{files[0].path.name} has the TF Object Detection CSV header")


# ------------------------------------------------------------------------------------ read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _files(path)
    if not files:
        if path.is_file():
            raise FormatError("not a TF Object Detection CSV (header filename,width,height,class,xmin,ymin,"
                              "xmax,ymax expected on line 1)", path=path, where="line 1")
        raise FormatError("no TF Object Detection CSV here", path=path,
                          hint="expected _annotations.csv, <split>_labels.csv or split folders")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f in files:
            yield from _read_file(f.path, split or f.split, classes)

    return Reader(classes, samples, source=path)


def _rows(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [c.strip().lower() for c in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise FormatError(f"header lacks {', '.join(missing)}", path=path, where="line 1")
        idx = [header.index(c) for c in COLUMNS]
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) < len(header):
                raise FormatError(f"{len(values)} fields, the header has {len(header)}", path=path,
                                  where=f"line {line}")
            row = [values[i].strip() for i in idx]
            if not row[0]:
                raise FormatError("empty filename", path=path, where=f"line {line}")
            yield row[0], line, row


def _read_file(path: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    d = path.parent
    roots = ImageRoot([d, d / "images", d.parent / "images", d.parent])
    listed: set[str] | None = set() if path.name == ROBOFLOW_NAME else None
    for name, rows in grouped(lambda: _rows(path)):
        if listed is not None:
            listed.add(name)
        yield _sample(name, rows, path, split, classes, roots)
    if listed is not None:
        for image in iter_files(d, suffixes=IMAGE_EXTENSIONS):
            name = PurePosixPath(image.relative_to(d)).as_posix()
            if name not in listed:
                yield Sample(ImageRef(name, path=str(image)), (), split=split, state=LabelState.NULL)


def _float(text: str, column: str, path: Path, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"{column} {text!r} is not a number", path=path, where=f"line {line}") from None


def _size(text: str, column: str, path: Path, line: int) -> int | None:
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if v <= 0 or not v.is_integer():
        raise FormatError(f"{column} {text!r} is not a positive integer", path=path, where=f"line {line}")
    return int(v)


def _sample(name: str, rows: list[tuple[int, list[str]]], path: Path, split: str | None, classes: ClassMap,
            roots: ImageRoot) -> Sample:
    width = height = None
    anns: list[Annotation] = []
    for line, (_, w, h, cls, *coords) in rows:
        ww, hh = _size(w, "width", path, line), _size(h, "height", path, line)
        if (width, height) != (None, None) and (ww, hh) != (width, height):
            raise FormatError(f"{name} is {ww}x{hh} here but {width}x{height} on an earlier line",
                              path=path, where=f"line {line}")
        width, height = ww, hh
        if not cls and not any(coords):
            continue  # an image listed without a box
        if not cls:
            raise FormatError("a box without a class", path=path, where=f"line {line}")
        x0, y0, x1, y1 = (_float(v, c, path, line) for v, c in zip(coords, COLUMNS[4:], strict=True))
        try:
            box = Box(x0, y0, x1, y1)
        except ValueError as e:
            raise FormatError(str(e), path=path, where=f"line {line}") from None
        anns.append(Annotation(classes.add(cls).name, box))
    file_name = name.replace("\\", "/")
    ref = ImageRef(file_name, width=width, height=height, path=str(roots.resolve(file_name)))
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


# ----------------------------------------------------------------------------------- write


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """`out/[<split>/]_annotations.csv` with the images beside it (see the module docstring)."""
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    files: dict[str | None, IO[str]] = {}
    writers: dict[str | None, Any] = {}
    try:
        for sample in samples:
            folder = out / split_folder(sample.split) if sample.split else out
            if sample.split not in files:
                target = folder / ROBOFLOW_NAME
                if target.exists():
                    raise FormatError("the CSV already exists; refusing to overwrite it", path=target)
                folder.mkdir(parents=True, exist_ok=True)
                files[sample.split] = open(target, "x", encoding="utf-8", newline="")
                writers[sample.split] = csv.writer(files[sample.split], lineterminator="\n")
                writers[sample.split].writerow(COLUMNS)
                report.files += 1
            ref = with_size(sample.image)
            name = names.claim(str(folder), safe_name(ref.file_name), report)
            copied = place_image(ref, folder / name, images)
            report.files += int(copied)
            report.images += 1
            rows = []
            for ann in sample.annotations:
                box = as_box(ann, report, "TF Object Detection CSV")
                if box is not None:
                    rows.append([name, ref.width, ref.height, ann.label,
                                 number(box.x0), number(box.y0), number(box.x1), number(box.y1)])
            if rows:
                writers[sample.split].writerows(rows)
            elif copied:
                if sample.state is LabelState.MISSING:
                    report.converted["image missing labels -> null (an unlisted image)"] += 1
            else:
                report.drop("image", "no boxes, and TF CSV lists only images with boxes (images not written)")
    finally:
        for f in files.values():
            f.close()
    if not files:
        out.mkdir(parents=True, exist_ok=True)
        target = out / ROBOFLOW_NAME
        if target.exists():
            raise FormatError("the CSV already exists; refusing to overwrite it", path=target)
        target.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
        report.files += 1
    return report
