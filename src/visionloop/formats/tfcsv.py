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

Kaggle-style box CSVs (tests/formats/test_csv_kaggle.py)
    Other header names are recognised case-insensitively: image ``filename, file_name, image_name, image,
    image_id, image_path, path, ...``; class ``class, label, label_name, class_name, category, ...``; the box
    as ``xmin,ymin,xmax,ymax`` / ``x1,y1,x2,y2`` / ``x_min..`` / ``left,top,right,bottom`` (corners),
    ``x,y,w,h`` / ``x,y,width,height`` (corner and size), or one ``bbox`` column holding "[x, y, w, h]"
    (Kaggle's global-wheat-detection ``train.csv``: ``image_id,width,height,bbox,source``; corners with
    ``bbox_format=xyxy``); the image size from ``width,height`` / ``image_width,image_height``. Other columns
    (global-wheat's ``source``) become attributes of each box. An image id without an extension is the
    image file with that stem (refused, naming the id, when no file or several have it). A folder is read
    through its CSVs whose columns are recognised (``sample_submission.csv`` has no box columns); images are
    also looked up in the folder named like the CSV (``train.csv``: ``train/``), and an image there that no
    row names is read as labelled empty (global-wheat lists only images with wheat heads), and counted in the
    summary as ``assumed`` (``convert`` and ``import`` print how many).
    Nothing is guessed: when the columns are ambiguous (two image columns, no class column, no or several
    box layouts) or every box value is <= 1 (normalised or pixels?), the read is refused before anything
    is read, with one line listing the columns and what to pass: ``convert --csv-columns image=<column>,
    class=<column>, one_class=<name>, bbox=<column>, bbox_format=xywh|xyxy, xmin=..,ymin=..,xmax=..,ymax=..,
    x=..,y=..,w=..,h=.., width=..,height=.., coords=pixel|normalised`` (library: ``base.csv_columns()``
    around ``read()``). Normalised values are multiplied by the image size (the size columns, else the file).

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
import os
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
    CsvRows,
    ImageRoot,
    Row,
    UniqueNames,
    as_box,
    grouped,
    number,
    split_folder,
)
from visionloop.formats.base import (
    CSV_COLUMNS_FLAG,
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    assume,
    csv_columns_given,
    image_size,
    iter_files,
    place_image,
    quarantine,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "tfcsv"
ROBOFLOW_NAME = "_annotations.csv"
COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


#: header names recognised (case-insensitively) for each role, Kaggle-style CSVs included
IMAGE_WORDS = ("filename", "file_name", "image_name", "image", "image_id", "image_path", "path", "file", "img",
               "img_name", "image_file")
CLASS_WORDS = ("class", "label", "label_name", "class_name", "category", "category_name", "classname", "labelname")
#: box column sets, each (layout, names)
BOX_SETS = (
    ("xyxy", ("xmin", "ymin", "xmax", "ymax")),
    ("xyxy", ("x_min", "y_min", "x_max", "y_max")),
    ("xyxy", ("x1", "y1", "x2", "y2")),
    ("xyxy", ("left", "top", "right", "bottom")),
    ("xywh", ("x", "y", "w", "h")),
    ("xywh", ("x", "y", "width", "height")),
    ("xywh", ("xmin", "ymin", "w", "h")),
)
BBOX_WORDS = ("bbox", "box", "bounding_box")
#: image size column pairs (``width,height`` only when no box set uses them)
SIZE_SETS = (("width", "height"), ("image_width", "image_height"), ("img_width", "img_height"))
MAPPING_KEYS = ("image", "class", "one_class", "bbox", "bbox_format", "xmin", "ymin", "xmax", "ymax", "x", "y", "w",
                "h", "width", "height", "coords")
_COORDS = {"pixel": False, "pixels": False, "normalised": True, "normalized": True}


class _Ambiguous(Exception):
    """The columns cannot be mapped without the user's word: the message says what to pass."""


@dataclass(frozen=True)
class _Columns:
    """Where each role sits in a header (column indices)."""

    image: int
    cls: int | None  # None: every box is `one_class`
    one_class: str | None
    box: tuple[int, ...]  # four columns, or one `bbox` column
    layout: str  # "xyxy" or "xywh"
    size: tuple[int, int] | None
    normalised: bool | None  # None: not said (refused when every value is <= 1)
    extra: tuple[tuple[int, str], ...]  # other columns, kept as annotation attributes


def _pick(header: list[str], words: tuple[str, ...]) -> list[int]:
    low = [h.lower() for h in header]
    return [low.index(w) for w in words if w in low]


def _column(header: list[str], name: str) -> int:
    low = [h.lower() for h in header]
    if name.lower() not in low:
        raise _Ambiguous(f"{CSV_COLUMNS_FLAG} names column {name!r}, which is not in the header "
                         f"({', '.join(header)})")
    return low.index(name.lower())


def _columns(header: list[str], mapping: dict[str, str]) -> _Columns:
    """The roles of a header's columns, from the mapping where given, else from the names; _Ambiguous if unsure."""
    seen = ", ".join(header)
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        raise _Ambiguous(f"{CSV_COLUMNS_FLAG} key {unknown[0]!r} unknown (keys: {', '.join(MAPPING_KEYS)})")
    # image
    if "image" in mapping:
        image = _column(header, mapping["image"])
    else:
        found = _pick(header, IMAGE_WORDS)
        if len(found) != 1:
            what = "no image column" if not found else f"{len(found)} image columns ({', '.join(header[i] for i in found)})"
            raise _Ambiguous(f"{what} among {seen}: pass {CSV_COLUMNS_FLAG} image=<column>")
        image = found[0]
    # box
    layout = mapping.get("bbox_format", "xywh").lower()
    if layout not in ("xywh", "xyxy"):
        raise _Ambiguous(f"{CSV_COLUMNS_FLAG} bbox_format must be xywh or xyxy, got {layout!r}")
    sets: list[tuple[str, tuple[int, ...]]] = []
    if "bbox" in mapping:
        sets = [(layout, (_column(header, mapping["bbox"]),))]
    elif {"xmin", "ymin", "xmax", "ymax"} <= set(mapping):
        sets = [("xyxy", tuple(_column(header, mapping[k]) for k in ("xmin", "ymin", "xmax", "ymax")))]
    elif {"x", "y", "w", "h"} <= set(mapping):
        sets = [("xywh", tuple(_column(header, mapping[k]) for k in ("x", "y", "w", "h")))]
    else:
        low = [h.lower() for h in header]
        for lay, names in BOX_SETS:
            if set(names) <= set(low):
                sets.append((lay, tuple(low.index(n) for n in names)))
        sets += [(layout, (i,)) for i in _pick(header, BBOX_WORDS)]
        if len(sets) > 1 and any(lay == "xyxy" for lay, cols in sets if len(cols) == 4):
            # xmin,ymin,xmax,ymax beside xmin,ymin,w,h: the xyxy set is the box, the rest is extra
            sets = [s for s in sets if not (s[0] == "xywh" and len(s[1]) == 4)] or sets
    if len(sets) != 1:
        what = "no box columns" if not sets else "several sets of box columns"
        raise _Ambiguous(f"{what} among {seen}: pass {CSV_COLUMNS_FLAG} xmin=,ymin=,xmax=,ymax= (corners), "
                         "x=,y=,w=,h= (corner and size) or bbox=<column> (one \"[x, y, w, h]\" list)")
    (layout, box), = sets
    # class
    one_class = mapping.get("one_class")
    cls: int | None = None
    if "class" in mapping:
        cls = _column(header, mapping["class"])
    elif one_class is None:
        found = [i for i in _pick(header, CLASS_WORDS) if i not in box and i != image]
        if len(found) != 1:
            what = "no class column" if not found else f"{len(found)} class columns ({', '.join(header[i] for i in found)})"
            raise _Ambiguous(f"{what} among {seen}: pass {CSV_COLUMNS_FLAG} class=<column>, or one_class=<name> "
                             "when every box is of one class")
        cls = found[0]
    # image size
    size: tuple[int, int] | None = None
    if "width" in mapping or "height" in mapping:
        if not {"width", "height"} <= set(mapping):
            raise _Ambiguous(f"{CSV_COLUMNS_FLAG} needs both width= and height= (the image size columns)")
        size = (_column(header, mapping["width"]), _column(header, mapping["height"]))
    else:
        low = [h.lower() for h in header]
        for w, h in SIZE_SETS:
            if w in low and h in low and low.index(w) not in box and low.index(h) not in box:
                size = (low.index(w), low.index(h))
                break
    coords = mapping.get("coords")
    if coords is not None and coords.lower() not in _COORDS:
        raise _Ambiguous(f"{CSV_COLUMNS_FLAG} coords must be pixel or normalised, got {coords!r}")
    used = {image, *box, *(size or ()), *(() if cls is None else (cls,))}
    extra = tuple((i, h) for i, h in enumerate(header) if i not in used and h)
    return _Columns(image, cls, one_class, box, layout, size,
                    None if coords is None else _COORDS[coords.lower()], extra)


@dataclass(frozen=True)
class _File:
    path: Path
    split: str | None


def _first_line(path: Path) -> list[str] | None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            first = f.readline(4096)
    except (OSError, UnicodeDecodeError):
        return None
    return [c.strip() for c in next(csv.reader([first]), [])]


def _header(path: Path) -> list[str] | None:
    """The normalised header if it names every TF CSV column, else None."""
    cols = _first_line(path)
    if cols is None:
        return None
    cols = [c.lower() for c in cols]
    return cols if set(COLUMNS) <= set(cols) else None


def _box_csv(path: Path) -> bool:
    """The header is a box CSV's: the TF one, or one whose columns map (given `csv_columns()` or by their names)."""
    cols = _first_line(path)
    if not cols:
        return False
    try:
        _columns(cols, csv_columns_given())
    except _Ambiguous:
        # claimable, to say what to pass, when an image column and box columns are there
        return bool(_pick(cols, IMAGE_WORDS)) and (
            bool(_pick(cols, BBOX_WORDS)) or any(set(n) <= {c.lower() for c in cols} for _, n in BOX_SETS))
    return True


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
    if found:
        return found
    # Kaggle-style: a train.csv (image_id,...,bbox) beside the image folders
    return [_File(f, _split_of(f)) for f in sorted(path.glob("*.csv")) if _box_csv(f)]


# ---------------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """A CSV (or a folder's CSVs) with the TF header, or with image, class and box columns named as Kaggle's are."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            return Detection.no("not a .csv file")
        if _header(path):
            return Detection(0.95, f"{path.name} has the TF Object Detection CSV header")
        if _box_csv(path):
            return Detection(0.5, f"{path.name} has image and box columns (a box CSV)")
        return Detection.no(f"{path.name} lacks the header filename,width,height,class,xmin,ymin,xmax,ymax "
                            "(or image and box columns)")
    files = _files(path) if path.is_dir() else []
    if not files:
        return Detection.no("no CSV with the header filename,width,height,class,xmin,ymin,xmax,ymax "
                            "(or image and box columns)")
    if _header(files[0].path):
        return Detection(0.8, f"{files[0].path.name} has the TF Object Detection CSV header")
    return Detection(0.45, f"{files[0].path.name} has image and box columns (a box CSV)")


# ------------------------------------------------------------------------------------ read


def read(path: Path, *, split: str | None = None) -> Reader:
    """Read TF Object Detection CSVs, or box CSVs whose columns are named as Kaggle's are (or as `csv_columns()`
    maps them)."""
    path = Path(path)
    files = _files(path)
    if not files:
        if path.is_file():
            raise FormatError("not a TF Object Detection CSV (header filename,width,height,class,xmin,ymin,"
                              "xmax,ymax expected on line 1)", path=path, where="line 1")
        raise FormatError("no TF Object Detection CSV here", path=path,
                          hint="expected _annotations.csv, <split>_labels.csv or split folders")
    mapping = csv_columns_given()
    layouts = {}
    for f in files:  # refuse before reading anything when the columns are not clear
        try:
            layouts[f.path] = _columns(_first_line(f.path) or [], mapping)
        except _Ambiguous as e:
            raise FormatError(str(e), path=f.path, where="line 1") from None
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f in files:
            cols = layouts[f.path]
            normalised = cols.normalised if cols.normalised is not None else _normalised(f.path, cols)
            yield from _read_file(f.path, split or f.split, classes, cols, normalised)

    return Reader(classes, samples, source=path)


def _rows(path: Path, cols: _Columns) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = CsvRows(f, path)
        header = [c.strip() for c in next(reader, [])]
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) < len(header):
                raise FormatError(f"{len(values)} fields, the header has {len(header)}", path=path,
                                  where=f"line {line}")
            row = [v.strip() for v in values]
            if not row[cols.image]:
                raise FormatError(f"empty {header[cols.image]}", path=path, where=f"line {line}")
            yield row[cols.image], line, row


def _coords(row: list[str], cols: _Columns, path: Path, line: int, header: list[str]) -> list[float] | None:
    """The row's four box numbers as written, or None when the row has no box (an image listed alone)."""
    if len(cols.box) == 1:
        text = row[cols.box[0]]
        if not text or text in ("[]", "()"):
            return None
        parts = [p for p in text.strip("[]() ").replace(",", " ").split()]
        if len(parts) != 4:
            raise FormatError(f"{header[cols.box[0]]} {text!r} is not a list of four numbers", path=path,
                              where=f"line {line}")
        return [_float(p, header[cols.box[0]], path, line) for p in parts]
    texts = [row[i] for i in cols.box]
    if not any(texts):
        return None
    return [_float(t, header[i], path, line) for t, i in zip(texts, cols.box, strict=True)]


def _normalised(path: Path, cols: _Columns) -> bool:
    """False when some box value is above 1 (pixels); refuses when every value is <= 1 and nobody said which."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = CsvRows(f, path)
        header = [c.strip() for c in next(reader, [])]
        any_box = False
        for values in reader:
            if len(values) < len(header):
                continue  # reported by the read itself
            try:
                coords = _coords([v.strip() for v in values], cols, path, reader.line_num, header)
            except FormatError:
                continue  # reported by the read itself
            if coords is None:
                continue
            any_box = True
            if max(abs(c) for c in coords) > 1:
                return False
    if not any_box:
        return False
    names = header[cols.box[0]] if len(cols.box) == 1 else ",".join(header[i] for i in cols.box)
    raise FormatError(f"every box value ({names}) is <= 1: normalised (fractions of the image) or pixels?",
                      path=path, where="line 1",
                      hint=f"pass {CSV_COLUMNS_FLAG} coords=normalised (or coords=pixel)")


def _read_file(path: Path, split: str | None, classes: ClassMap, cols: _Columns, normalised: bool) -> Iterator[Sample]:
    d = path.parent
    roots = ImageRoot([d, d / "images", d / path.stem, d.parent / "images", d.parent])
    header = _first_line(path) or []
    stems = _Stems(roots.candidates)
    listed: set[str] | None = set() if path.name == ROBOFLOW_NAME else None
    named_folder = d / path.stem  # Kaggle: train.csv + train/
    in_named: set[str] = set()
    for name, rows in grouped(lambda: _rows(path, cols)):
        if listed is not None:
            listed.add(name)
        try:
            sample = _sample(name, rows, path, split, classes, roots, stems, cols, normalised, header)
        except _Refused as e:
            quarantine(e.error)
            continue
        if sample.image.path is not None and Path(sample.image.path).parent == named_folder:
            in_named.add(sample.image.file_name)
        yield sample
    if listed is not None:
        for image in iter_files(d, suffixes=IMAGE_EXTENSIONS):
            name = PurePosixPath(image.relative_to(d)).as_posix()
            if name not in listed:
                yield Sample(ImageRef(name, path=str(image)), (), split=split, state=LabelState.NULL)
    elif in_named:
        # the CSV's own image folder (global-wheat: train/ holds every training image, train.csv only those
        # with boxes): an image there that no row names has no boxes
        unlisted = 0
        for image in sorted(named_folder.iterdir()):
            if image.suffix.lower() in IMAGE_EXTENSIONS and image.is_file() and image.name not in in_named:
                unlisted += 1
                yield Sample(ImageRef(image.name, path=str(image)), (), split=split, state=LabelState.NULL)
        if unlisted:  # said in the summary: the user sees images that no row names
            assume(f"image in {named_folder.name}/ that no row of {path.name} names", "labelled empty (no boxes)",
                   path=path, n=unlisted)


class _Refused(Exception):
    def __init__(self, error: FormatError) -> None:
        self.error = error


class _Stems:
    """Image files by stem (case-insensitively) in each candidate folder, listed once per folder."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self._index: dict[Path, dict[str, list[str]]] = {}

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._index:
            found: dict[str, list[str]] = {}
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                names = []
            for n in names:
                p = PurePosixPath(n)
                if p.suffix.lower() in IMAGE_EXTENSIONS:
                    found.setdefault(p.stem.casefold(), []).append(n)
            self._index[folder] = found
        return self._index[folder]

    def resolve(self, image_id: str, path: Path, line: int) -> str:
        """`image_id` with its image file's extension; refused when no file or several files have that stem."""
        rel = PurePosixPath(image_id)
        for root in self.roots:
            names = self._listing(root / rel.parent).get(rel.name.casefold(), [])
            if len(names) > 1:
                raise _Refused(FormatError(
                    f"image id {image_id!r} has no extension and matches {' and '.join(names)} in {root / rel.parent}",
                    path=path, where=f"line {line}", hint="name the file with its extension in the CSV"))
            if names:
                return str(rel.with_name(names[0]))
        raise _Refused(FormatError(
            f"image id {image_id!r} has no extension and no image file has that stem "
            f"(looked in {', '.join(str(r) for r in self.roots if r.is_dir())})",
            path=path, where=f"line {line}", hint="put the images beside the CSV, in images/ or in a folder named "
            "like the CSV (train.csv: train/)"))


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
            roots: ImageRoot, stems: _Stems, cols: _Columns, normalised: bool, header: list[str]) -> Sample:
    width = height = None
    found: list[tuple[int, str, list[float], dict[str, str]]] = []
    for line, row in rows:
        if cols.size is not None:
            ww = _size(row[cols.size[0]], header[cols.size[0]], path, line)
            hh = _size(row[cols.size[1]], header[cols.size[1]], path, line)
            if (width, height) != (None, None) and (ww, hh) != (width, height):
                raise FormatError(f"{name} is {ww}x{hh} here but {width}x{height} on an earlier line",
                                  path=path, where=f"line {line}")
            width, height = ww, hh
        cls = row[cols.cls] if cols.cls is not None else (cols.one_class or "")
        coords = _coords(row, cols, path, line, header)
        if coords is None:
            if cols.cls is not None and cls:
                raise FormatError("a class without a box", path=path, where=f"line {line}")
            continue  # an image listed without a box
        if not cls:
            raise FormatError("a box without a class", path=path, where=f"line {line}")
        extra = {h: row[i] for i, h in cols.extra if row[i]}
        found.append((line, cls, coords, extra))
    file_name = name.replace("\\", "/")
    if PurePosixPath(file_name).suffix.lower() not in IMAGE_EXTENSIONS:
        file_name = stems.resolve(file_name, path, rows[0][0])
    image = roots.resolve(file_name)
    if normalised and found and (width is None or height is None):
        width, height = image_size(image)
    anns: list[Annotation] = []
    for line, cls, (a, b, c, e), extra in found:
        if normalised:
            assert width is not None and height is not None
            a, c = a * width, c * width
            b, e = b * height, e * height
        try:
            box = Box(a, b, c, e) if cols.layout == "xyxy" else Box.from_xywh(a, b, c, e)
        except ValueError as err:
            raise FormatError(str(err), path=path, where=f"line {line}") from None
        anns.append(Annotation(classes.add(cls).name, box, attributes=extra))
    ref = ImageRef(file_name, width=width, height=height, path=str(image))
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
