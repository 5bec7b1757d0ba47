"""Open Images V4-V7 CSV: boxes, human-verified image labels and instance masks.

Documentation: https://storage.googleapis.com/openimages/web/download_v7.html (the CSV columns
below) and datumaro's layout for a local copy
(https://openvinotoolkit.github.io/datumaro/stable/docs/data-formats/formats/open_images.html)::

    annotations/   (or the root)
        class-descriptions-boxable.csv              MID,Name (no header); oidv6/oidv7-class-descriptions.csv
                                                    (header LabelName,DisplayName) are read too
        <split>-annotations-bbox.csv                ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,
                                                    IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside
        <split>-annotations-human-imagelabels.csv   ImageID,Source,LabelName,Confidence (-boxable too)
        <split>-annotations-object-segmentation.csv MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,
                                                    BoxYMin,BoxYMax,PredictedIoU,Clicks
        images.meta                                 "<ImageID> <height> <width>" (optional, datumaro)
    images/<split>/<ImageID>.jpg   (or <split>/<ImageID>.jpg)
    masks/<split>/<MaskPath>       (or <split>-masks/, <split>-masks-<first hex digit>/)

A file name may carry a prefix (`oidv6-train-annotations-bbox.csv`). Splits: `train`,
`validation` -> "val", `test`; `default` is no split. A split is named by an annotation CSV or by an image
folder (`images/<split>/`, `<split>/`): the images of a split without any CSV are read as MISSING, not dropped.

Conventions
    Coordinates are fractions of the image size, continuous: x0 = XMin * width, x1 = XMax *
    width (values within 1e-6 of a whole pixel are snapped to it). Image sizes come from
    images.meta, else from the image headers. Mask PNGs have their own resolution: they are
    resized to the image size with nearest-neighbour sampling.

Reading
    Rows are grouped by ImageID. The official CSVs are sorted by ImageID: each CSV is checked in
    one cheap pass and, when all are sorted, merged as streams; otherwise rows are spilled into
    a temporary SQLite file (as coco.py does), so memory stays flat. Samples come in ImageID
    order per split, images without any row (present in the image folder) as MISSING.
    - image labels: Confidence 1 -> a `Label` (attribute `source`); Confidence 0 (verified
      absent) -> the class name in ImageRef.metadata["negative_labels"]; other values (machine
      labels) -> a `Label` with that confidence.
    - boxes: `Box`, IsGroupOf -> `crowd`, IsOccluded / IsTruncated / IsDepiction / IsInside ->
      attributes `occluded`, `truncated`, `is_depiction`, `is_inside` (booleans; -1 = unknown is
      left out), `source`; Confidence other than 1 -> `confidence`; other columns (XClick1X...)
      kept as attributes under their column name.
    - masks: `Mask` with the Box* columns as `bbox` (None when equal to the mask's bounds),
      attributes `box_id`, `predicted_iou`, `clicks`.
    Class names are the display names (MIDs without a description keep the MID; a display name
    used by two MIDs gets " (<MID>)" appended); ids are the description file's line order.

Writing
    `annotations/` with the three CSVs per split, `class-descriptions-boxable.csv` and
    `images.meta`; `images/<split>/<ImageID><ext>` (ImageID: the file stem, made unique) and
    `masks/<split>/<ImageID>_<mid>_<n>.png` (0/255 grey at the image's size). visionloop's
    ClassMap has no slot for MIDs: a class name that is a MID ("/m/0k4j") is written as is,
    other names get a synthetic MID "/visionloop/<name>". Polygons are rasterised into masks,
    rotated boxes written as their bounds, keypoints dropped, the crowd flag of a mask dropped,
    and a labelled image with no annotation cannot be told from an unlabelled one (all counted).
"""

from __future__ import annotations

import csv
import heapq
import itertools
import logging
import math
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, polygon_to_mask
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats._tabular import CsvRows
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    image_size,
    place_image,
    refuse_filled,
    relative_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "openimages"
CLASS_FILES = ("class-descriptions-boxable.csv", "oidv7-class-descriptions.csv", "oidv6-class-descriptions.csv",
               "class-descriptions.csv")
IMAGES_META = "images.meta"
SPLIT_NAMES = {"train": "train", "validation": "val", "test": "test"}
FOLDER_OF_SPLIT = {v: k for k, v in SPLIT_NAMES.items()}
_CSV = re.compile(r"^(?:oidv\d+-)?(?P<split>[\w.]+?)-annotations-"
                  r"(?P<kind>bbox|human-imagelabels(?:-boxable)?|object-segmentation)\.csv$")
LABEL, BOX, MASK = 0, 1, 2
_KIND = {"bbox": BOX, "human-imagelabels": LABEL, "human-imagelabels-boxable": LABEL, "object-segmentation": MASK}
BOX_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
               "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
MASK_COLUMNS = ("MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
                "PredictedIoU", "Clicks")
REQUIRED = {
    BOX: ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"),
    LABEL: ("ImageID", "LabelName", "Confidence"),
    MASK: ("MaskPath", "ImageID", "LabelName"),
}
FLAGS = (("IsOccluded", "occluded"), ("IsTruncated", "truncated"), ("IsDepiction", "is_depiction"),
         ("IsInside", "is_inside"))
_KNOWN_BOX = set(BOX_COLUMNS)
_SNAP = 1e-6
DEFAULT_SOURCE = "visionloop"


# ---------------------------------------------------------------- layout


@dataclass
class _CsvFile:
    path: Path
    kind: int
    index: int = 0  # position in the dataset's file list, for error locations


@dataclass
class _Split:
    name: str  # as in the file names: train, validation, test, ...
    files: list[_CsvFile] = field(default_factory=list)

    @property
    def split(self) -> str | None:
        return None if self.name == _seg.NO_SPLIT else SPLIT_NAMES.get(self.name, self.name)


def _annotation_dir(root: Path) -> Path:
    return root / "annotations" if (root / "annotations").is_dir() else root


def _splits(root: Path) -> list[_Split]:
    ann = _annotation_dir(root)
    splits: dict[str, _Split] = {}
    try:
        names = sorted(os.listdir(ann))
    except OSError:
        return []
    for name in names:
        m = _CSV.match(name)
        if m:
            splits.setdefault(m["split"], _Split(m["split"])).files.append(_CsvFile(ann / name, _KIND[m["kind"]]))
    if not splits:
        return []
    # a split whose images have no annotation CSV (test images, a split not labelled yet) is a split too:
    # its images are read as MISSING rather than dropped
    for folder in _subdirs(root / "images") + [root / n for n in SPLIT_NAMES if (root / n).is_dir()]:
        splits.setdefault(folder.name, _Split(folder.name))
    order = {"train": 0, "validation": 1, "test": 2}
    out = sorted(splits.values(), key=lambda s: (order.get(s.name, 3), s.name))
    n = 0
    for s in out:
        for f in s.files:
            f.index = n
            n += 1
    return out


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def _image_dirs(root: Path, split_name: str) -> list[Path]:
    return [d for d in (root / "images" / split_name, root / split_name) if d.is_dir()]


def _mask_dirs(root: Path, split_name: str) -> list[Path]:
    dirs = [root / "masks" / split_name, root / f"{split_name}-masks"]
    dirs += sorted(root.glob(f"{split_name}-masks-*"))
    return [d for d in dirs if d.is_dir()]


# ---------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    splits = _splits(path)
    if not splits:
        return Detection.no("no *-annotations-bbox.csv, *-annotations-human-imagelabels.csv or "
                            "*-annotations-object-segmentation.csv")
    first = next(s.files[0] for s in splits if s.files)
    with open(first.path, encoding="utf-8-sig", errors="replace") as f:
        header = f.readline()
    if "ImageID" in header and "LabelName" in header:
        return Detection(0.95, f"{first.path.name} has Open Images columns")
    return Detection(0.2, f"{first.path.name} is named like Open Images but lacks ImageID/LabelName")


# ---------------------------------------------------------------- classes


def _read_classes(root: Path) -> tuple[ClassMap, dict[str, str]]:
    """ClassMap (display names, ids in file order) and MID -> name."""
    ann = _annotation_dir(root)
    mids: dict[str, str] = {}
    for name in CLASS_FILES:
        path = ann / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = CsvRows(f, path)
            for row in reader:
                if not row or (row[0] == "LabelName" and len(row) > 1 and row[1] == "DisplayName"):
                    continue
                if len(row) < 2 or not row[0].strip():
                    raise FormatError("a class line needs `MID,name`", path=path, where=f"line {reader.line_num}")
                mids.setdefault(row[0].strip(), ",".join(row[1:]).strip())
    classes = ClassMap()
    names: dict[str, str] = {}
    for mid, display in mids.items():
        name = display or mid
        if name in classes:
            name = f"{name} ({mid})"
        classes.add(name)
        names[mid] = name
    return classes, names


# ---------------------------------------------------------------- row streams


Row = tuple[str, int, int, int, list[str]]  # (ImageID, kind, file index, line, values)


def _header(f: IO[str], path: Path, kind_: int) -> dict[str, int]:
    reader = CsvRows(f, path)
    header = next(reader, None)
    if header is None:
        return {}
    columns = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED[kind_] if c not in columns]
    if missing:
        raise FormatError(f"the header lacks {', '.join(missing)}", path=path, where="line 1")
    return columns


def _rows(file: _CsvFile, columns: dict[str, int]) -> Iterator[Row]:
    """The data rows of one CSV as (ImageID, kind, file, line, values), in file order."""
    with open(file.path, encoding="utf-8-sig", newline="") as f:
        reader = CsvRows(f, file.path)
        next(reader, None)
        image_col = columns["ImageID"]
        for values in reader:
            if not values:
                continue
            if len(values) <= image_col:
                raise FormatError(f"the row has {len(values)} values, the header {len(columns)}", path=file.path,
                                  where=f"line {reader.line_num}")
            yield (values[image_col], file.kind, file.index, reader.line_num, values)


def _is_sorted(file: _CsvFile, columns: dict[str, int]) -> bool:
    previous = ""
    for image_id, *_ in _rows(file, columns):
        if image_id < previous:
            return False
        previous = image_id
    return True


@dataclass
class _Spill:
    """A temporary SQLite file that orders rows (and image files) by ImageID."""

    db: sqlite3.Connection
    tmp: tempfile.TemporaryDirectory[str]

    @classmethod
    def open(cls) -> _Spill:
        tmp = tempfile.TemporaryDirectory(prefix="visionloop-openimages-")
        db = sqlite3.connect(Path(tmp.name) / "spill.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE r (image_id TEXT, kind INTEGER, file INTEGER, line INTEGER, data BLOB)")
        return cls(db, tmp)

    def add(self, rows: Iterable[Row]) -> None:
        batch: list[tuple[Any, ...]] = []
        for image_id, kind_, file, line, values in rows:
            batch.append((image_id, kind_, file, line, orjson.dumps(values)))
            if len(batch) >= 20000:
                self.db.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", batch)
                batch.clear()
        if batch:
            self.db.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", batch)

    def ordered(self) -> Iterator[Row]:
        self.db.execute("CREATE INDEX r_order ON r (image_id, kind, file, line)")
        for image_id, kind_, file, line, data in self.db.execute(
                "SELECT image_id, kind, file, line, data FROM r ORDER BY image_id, kind, file, line"):
            yield (image_id, kind_, file, line, orjson.loads(data))

    def lookup_size(self, image_id: str) -> tuple[int, int] | None:
        row = self.db.execute("SELECT w, h FROM meta WHERE id = ?", (image_id,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def close(self) -> None:
        self.db.close()
        self.tmp.cleanup()


IMAGE_FILE = -1


def _image_rows(folders: list[Path], spill: _Spill) -> int:
    """Insert the image files of a split as rows of kind -1 (data: the path)."""
    n = 0
    batch = []
    for folder in folders:
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                stem, ext = os.path.splitext(name)
                if ext.lower() in IMAGE_EXTENSIONS:
                    batch.append((stem, IMAGE_FILE, -1, 0, orjson.dumps([os.path.join(dirpath, name)])))
                    n += 1
        if batch:
            spill.db.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", batch)
            batch.clear()
    return n


def _load_meta(root: Path, spill: _Spill) -> None:
    spill.db.execute("CREATE TABLE meta (id TEXT PRIMARY KEY, h INTEGER, w INTEGER)")
    path = _annotation_dir(root) / IMAGES_META
    if not path.is_file():
        return
    batch = []
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.rsplit(maxsplit=2)
            if len(parts) != 3:
                raise FormatError("an images.meta line must be `<ImageID> <height> <width>`", path=path,
                                  where=f"line {number}")
            image_id = parts[0].strip("'\"")
            try:
                h, w = int(parts[1]), int(parts[2])
            except ValueError:
                raise FormatError("height and width must be integers", path=path, where=f"line {number}") from None
            batch.append((image_id, h, w))
    spill.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", batch)


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("an Open Images dataset is a folder with annotation CSVs", path=root)
    splits = _splits(root)
    if not splits:
        raise FormatError("no Open Images annotation CSV here or in annotations/", path=root)
    classes, mid_names = _read_classes(root)
    return Reader(classes, lambda: _samples(root, splits, classes, mid_names, split), source=root)


@dataclass
class _Context:
    root: Path
    split: _Split
    files: list[_CsvFile]
    columns: dict[int, dict[str, int]]  # file index -> header
    classes: ClassMap
    mid_names: dict[str, str]
    spill: _Spill
    masks: list[Path]
    by_index: dict[int, _CsvFile] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_index = {f.index: f for f in self.files}

    def name(self, mid: str) -> str:
        name = self.mid_names.get(mid)
        if name is None:
            name = mid
            if name not in self.classes:
                self.classes.add(name)
            self.mid_names[mid] = name
        return name


def _samples(root: Path, splits: list[_Split], classes: ClassMap, mid_names: dict[str, str],
             forced: str | None) -> Iterator[Sample]:
    for part in splits:
        spill = _Spill.open()
        try:
            _load_meta(root, spill)
            columns: dict[int, dict[str, int]] = {}
            for file in part.files:
                with open(file.path, encoding="utf-8-sig", newline="") as f:
                    columns[file.index] = _header(f, file.path, file.kind)
            ctx = _Context(root, part, part.files, columns, classes, mid_names, spill, _mask_dirs(root, part.name))
            _image_rows(_image_dirs(root, part.name), spill)
            present = [f for f in part.files if columns[f.index]]
            merged: Iterator[Row]
            if all(_is_sorted(f, columns[f.index]) for f in present):
                streams = [_rows(f, columns[f.index]) for f in present]
                merged = heapq.merge(spill.ordered(), *streams, key=lambda r: (r[0], r[1], r[2], r[3]))
            else:
                log.info("%s: rows are not grouped by ImageID; spilling them to a temporary database", part.name)
                spill.add(_rows_of(present, columns))
                merged = spill.ordered()
            for image_id, group in itertools.groupby(merged, key=lambda r: r[0]):
                yield _sample(ctx, image_id, list(group), forced or part.split)
        finally:
            spill.close()


def _rows_of(files: list[_CsvFile], columns: dict[int, dict[str, int]]) -> Iterator[Row]:
    for f in files:
        yield from _rows(f, columns[f.index])


def _sample(ctx: _Context, image_id: str, rows: list[Row], split: str | None) -> Sample:
    image_path = next((r[4][0] for r in rows if r[1] == IMAGE_FILE), None)
    if image_path is not None:
        file_name = relative_name(Path(image_path), ctx.root)
        path: str | None = os.path.abspath(image_path)
    else:
        file_name = f"images/{ctx.split.name}/{image_id}.jpg"
        path = None
    size = ctx.spill.lookup_size(image_id)
    ref = ImageRef(file_name, width=size[0] if size else None, height=size[1] if size else None, path=path)
    data_rows = [r for r in rows if r[1] != IMAGE_FILE]
    if not data_rows:
        return Sample(ref, split=split, state=LabelState.MISSING)
    anns: list[Annotation] = []
    negatives: list[str] = []
    for _, kind_, file, line, values in data_rows:
        f = ctx.by_index[file]
        cols = ctx.columns[file]
        where = f"line {line}"
        if kind_ == LABEL:
            ann = _label(values, cols, ctx, f.path, where)
            if ann is None:
                negatives.append(ctx.name(_value(values, cols, "LabelName")))
            else:
                anns.append(ann)
            continue
        if ref.width is None or ref.height is None:
            ref = _sized(ref, f.path, where, image_id)
        assert ref.width is not None and ref.height is not None
        if kind_ == BOX:
            anns.append(_box(values, cols, ctx, f.path, where, ref.width, ref.height))
        else:
            anns.append(_mask(values, cols, ctx, f.path, where, ref.width, ref.height))
    if negatives:
        ref = replace(ref, metadata={**ref.metadata, "negative_labels": negatives})
    return Sample(ref, tuple(anns), split=split, state=None if anns else LabelState.NULL)


def _sized(ref: ImageRef, csv_path: Path, where: str, image_id: str) -> ImageRef:
    if ref.path is None:
        raise ImageError(f"image {image_id} is needed for its size (boxes and masks are normalised) but was "
                         "not found", path=csv_path, where=where,
                         hint=f"put the images in images/<split>/ or list their sizes in annotations/{IMAGES_META}")
    w, h = image_size(ref.path)
    return replace(ref, width=w, height=h)


def _value(values: list[str], cols: dict[str, int], name: str) -> str:
    i = cols.get(name)
    return values[i].strip() if i is not None and i < len(values) else ""


def _fraction(values: list[str], cols: dict[str, int], name: str, path: Path, where: str) -> float:
    text = _value(values, cols, name)
    if not text:
        raise FormatError(f"{name} is empty", path=path, where=where)
    return _seg.number(text, path=path, where=f"{where}, {name}", what=name)


def _pixel(fraction: float, size: int) -> float:
    v = fraction * size
    r = round(v)
    return float(r) if abs(v - r) < _SNAP else v


def _label(values: list[str], cols: dict[str, int], ctx: _Context, path: Path, where: str) -> Annotation | None:
    name = ctx.name(_value(values, cols, "LabelName"))
    confidence = _fraction(values, cols, "Confidence", path, where)
    if not 0.0 <= confidence <= 1.0:
        raise FormatError(f"Confidence {confidence} is outside 0..1", path=path, where=where)
    if confidence == 0.0:
        return None
    source = _value(values, cols, "Source")
    attributes = {"source": source} if source else {}
    return Annotation(name, Label(), attributes=attributes, confidence=None if confidence == 1.0 else confidence)


def _box(values: list[str], cols: dict[str, int], ctx: _Context, path: Path, where: str, width: int,
         height: int) -> Annotation:
    name = ctx.name(_value(values, cols, "LabelName"))
    x0, x1, y0, y1 = (_fraction(values, cols, c, path, where) for c in ("XMin", "XMax", "YMin", "YMax"))
    try:
        box = Box(_pixel(x0, width), _pixel(y0, height), _pixel(x1, width), _pixel(y1, height))
    except ValueError as e:
        raise FormatError(f"impossible box ({e})", path=path, where=where) from None
    attributes: dict[str, Any] = {}
    source = _value(values, cols, "Source")
    if source:
        attributes["source"] = source
    for column, key in FLAGS:
        flag = _value(values, cols, column)
        if flag in ("0", "1"):
            attributes[key] = flag == "1"
    for column, i in cols.items():
        if column not in _KNOWN_BOX and i < len(values) and values[i].strip():
            attributes[column] = _typed(values[i].strip())
    confidence = None
    if _value(values, cols, "Confidence"):
        c = _fraction(values, cols, "Confidence", path, where)
        if not 0.0 <= c <= 1.0:
            raise FormatError(f"Confidence {c} is outside 0..1", path=path, where=where)
        confidence = None if c == 1.0 else c
    crowd = _value(values, cols, "IsGroupOf") == "1"
    return Annotation(name, box, attributes=attributes, confidence=confidence, crowd=crowd)


def _typed(text: str) -> Any:
    for cast in (int, float):
        try:
            v = cast(text)
            return v if not isinstance(v, float) or math.isfinite(v) else text
        except ValueError:
            pass
    return text


def _mask(values: list[str], cols: dict[str, int], ctx: _Context, path: Path, where: str, width: int,
          height: int) -> Annotation:
    import numpy as np
    from PIL import Image

    name = ctx.name(_value(values, cols, "LabelName"))
    mask_name = _value(values, cols, "MaskPath")
    png = next((d / mask_name for d in ctx.masks if (d / mask_name).is_file()), None)
    if png is None:
        raise FormatError(f"mask file {mask_name!r} not found", path=path, where=where,
                          hint=f"extract the masks into masks/{ctx.split.name}/")
    arr = _seg.load_png(png)
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    if arr.shape != (height, width):
        arr = np.asarray(Image.fromarray((arr > 0).astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST))
    mask = Mask.from_array(arr > 0)
    bbox = None
    if all(_value(values, cols, c) for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")):
        x0, x1, y0, y1 = (_fraction(values, cols, c, path, where) for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"))
        try:
            bbox = Box(_pixel(x0, width), _pixel(y0, height), _pixel(x1, width), _pixel(y1, height))
        except ValueError as e:
            raise FormatError(f"impossible box ({e})", path=path, where=where) from None
        if mask.area > 0 and bbox == mask.bounds():
            bbox = None
    attributes: dict[str, Any] = {}
    for column, key in (("BoxID", "box_id"), ("Clicks", "clicks")):
        if _value(values, cols, column):
            attributes[key] = _value(values, cols, column)
    if _value(values, cols, "PredictedIoU"):
        attributes["predicted_iou"] = _fraction(values, cols, "PredictedIoU", path, where)
    return Annotation(name, mask, attributes=attributes, bbox=bbox)


# ---------------------------------------------------------------- write


def _norm(value: float, size: int) -> str:
    return repr(value / size) if size else "0"


def _flag(value: Any) -> str:
    if value is None:
        return "-1"
    if isinstance(value, str):
        return "1" if value.strip().lower() in ("1", "true", "yes") else "0"
    return "1" if value else "0"


class _SplitFiles:
    def __init__(self, ann_dir: Path, name: str) -> None:
        ann_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.handles: dict[int, IO[str]] = {}
        self.writers: dict[int, Any] = {}
        self.ann_dir = ann_dir

    def writer(self, kind_: int) -> Any:
        if kind_ not in self.writers:
            suffix = {BOX: "bbox", LABEL: "human-imagelabels", MASK: "object-segmentation"}[kind_]
            f = open(self.ann_dir / f"{self.name}-annotations-{suffix}.csv", "w", encoding="utf-8", newline="")
            self.handles[kind_] = f
            w = csv.writer(f, lineterminator="\n")
            w.writerow({BOX: BOX_COLUMNS, LABEL: LABEL_COLUMNS, MASK: MASK_COLUMNS}[kind_])
            self.writers[kind_] = w
        return self.writers[kind_]

    def close(self) -> int:
        for f in self.handles.values():
            f.close()
        return len(self.handles)


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.ann_dir = out / "annotations"
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.mids: dict[str, str] = {}
        self.splits: dict[str, _SplitFiles] = {}
        self.names = _seg.NameBook()
        self.ann_dir.mkdir(parents=True, exist_ok=True)
        self.meta = open(self.ann_dir / IMAGES_META, "w", encoding="utf-8")
        self.meta.write("# <image name> <height> <width>\n")
        if classes is not None:
            for name in classes.names:
                self._mid(name)

    def _mid(self, name: str) -> str:
        if name not in self.mids:
            if re.fullmatch(r"/[mg]/[0-9a-z_]+", name):
                mid = name
            else:
                slug = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower() or "class"
                mid, n = f"/visionloop/{slug}", 1
                while mid in self.mids.values():
                    n += 1
                    mid = f"/visionloop/{slug}_{n}"
            self.mids[name] = mid
        return self.mids[name]

    def add(self, sample: Sample) -> None:
        report = self.report
        folder = FOLDER_OF_SPLIT.get(sample.split, _seg.folder_name(sample.split)) if sample.split else _seg.NO_SPLIT
        files = self.splits.get(folder)
        if files is None:
            files = self.splits[folder] = _SplitFiles(self.ann_dir, folder)
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        image_id = self.names.unique(folder, re.sub(r"[\s,\"']", "_", stem))
        if place_image(sample.image, self.out / "images" / folder / f"{image_id}{suffix or '.jpg'}", self.images):
            report.files += 1
        report.images += 1
        negatives = sample.image.metadata.get("negative_labels") or []
        needs_size = any(not isinstance(a.geometry, Label) for a in sample.annotations)
        ref = with_size(sample.image) if needs_size or sample.image.path else sample.image
        if ref.width and ref.height:
            self.meta.write(f"{image_id} {ref.height} {ref.width}\n")
        if not sample.annotations and not negatives:
            if sample.state is LabelState.NULL:
                report.converted["labelled empty image -> unlabelled (Open Images lists no empty image)"] += 1
            return
        for name in negatives:
            files.writer(LABEL).writerow([image_id, DEFAULT_SOURCE, self._mid(str(name)), "0"])
        mask_number = 0
        for ann in sample.annotations:
            g = ann.geometry
            if isinstance(g, Label):
                source = str(ann.attributes.get("source") or DEFAULT_SOURCE)
                conf = ann.confidence if ann.confidence is not None else 1
                files.writer(LABEL).writerow([image_id, source, self._mid(ann.label), _number(conf)])
                report.annotations["label"] += 1
                _seg.count_lost(report, ann, "the Open Images image-label CSV", attributes=("source",),
                                confidence=True)
                continue
            assert ref.width is not None and ref.height is not None
            if isinstance(g, Keypoints):
                report.drop("keypoints", "Open Images holds boxes, masks and image labels only")
            elif isinstance(g, (Box, RotatedBox)):
                self._box(files, image_id, ann, ref.width, ref.height)
            else:
                mask_number += 1
                self._mask(files, folder, image_id, ann, ref.width, ref.height, mask_number)

    def _box(self, files: _SplitFiles, image_id: str, ann: Annotation, width: int, height: int) -> None:
        g = ann.geometry
        if isinstance(g, RotatedBox):
            box = g.bounds()
            self.report.converted["rotated_box -> box"] += 1
        else:
            assert isinstance(g, Box)
            box = g
        a = ann.attributes
        source = str(a.get("source") or DEFAULT_SOURCE)
        conf = ann.confidence if ann.confidence is not None else 1
        row = [image_id, source, self._mid(ann.label), _number(conf),
               _norm(box.x0, width), _norm(box.x1, width), _norm(box.y0, height), _norm(box.y1, height),
               _flag(a.get("occluded")), _flag(a.get("truncated")), "1" if ann.crowd else "0",
               _flag(a.get("is_depiction")), _flag(a.get("is_inside"))]
        _seg.count_lost(self.report, ann, "the Open Images box CSV", crowd=True, confidence=True,
                        attributes=("source", "occluded", "truncated", "is_depiction", "is_inside"))
        files.writer(BOX).writerow(row)
        self.report.annotations["box"] += 1

    def _mask(self, files: _SplitFiles, folder: str, image_id: str, ann: Annotation, width: int, height: int,
              number: int) -> None:
        import numpy as np

        g = ann.geometry
        report = self.report
        if isinstance(g, Polygon):
            g = polygon_to_mask(g, height, width)
            report.converted["polygon -> mask (rasterised as COCO does)"] += 1
        assert isinstance(g, Mask)
        if (g.width, g.height) != (width, height):
            report.drop("mask", f"mask is {g.width}×{g.height} but the image is {width}×{height}")
            return
        if g.area == 0:
            report.drop("mask", "empty mask")
            return
        mid = self._mid(ann.label)
        name = f"{image_id}_{mid.replace('/', '')}_{number:08x}.png"
        _seg.save_png(g.to_array().astype(np.uint8) * 255, self.out / "masks" / folder / name)
        report.files += 1
        box = ann.bbox or g.bounds()
        a = ann.attributes
        iou = a.get("predicted_iou")
        files.writer(MASK).writerow([
            name, image_id, mid, str(a.get("box_id") or ""), _norm(box.x0, width), _norm(box.x1, width),
            _norm(box.y0, height), _norm(box.y1, height), "" if iou is None else _number(float(iou)),
            str(a.get("clicks") or "")])
        _seg.count_lost(report, ann, "the Open Images segmentation CSV",
                        attributes=("box_id", "predicted_iou", "clicks"))
        report.annotations["mask"] += 1

    def finish(self) -> WriteReport:
        self.meta.close()
        self.report.files += 1
        for files in self.splits.values():
            self.report.files += files.close()
        with open(self.ann_dir / CLASS_FILES[0], "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            for name, mid in self.mids.items():
                w.writerow([mid, name])
        self.report.files += 1
        return self.report

    def abort(self) -> None:
        self.meta.close()
        for files in self.splits.values():
            files.close()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the Open Images layout (annotations/, images/, masks/) under `out`."""
    out = Path(out)
    refuse_filled(out, "annotations")
    writer = _Writer(out, classes, images)
    try:
        for sample in samples:
            writer.add(sample)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()
