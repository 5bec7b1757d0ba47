"""Classification CSV, multiclass and multi-label: one-hot ``filename,class_a,class_b,...`` or ``filename,label``.

References: Roboflow's "Multiclass Classification CSV" export
(https://roboflow.com/formats/multiclass-classification-csv) writes ``_classes.csv`` per split folder
with the images beside it, one row per image, a 0/1 column per class (header cells after a comma
and a space, as Roboflow writes them, are accepted)::

    filename, cat, dog, outdoor
    a.jpg, 1, 0, 1
    b.jpg, 0, 0, 0            <- labelled, no class applies (NULL)

The two-column form (``filename,label``; headers ``image``/``file``/``path`` and ``class``/``labels``
accepted) has one row per image and label: several rows for one image make it multi-label, and a
row with an empty label is an image labelled empty.

Every class of an image becomes a whole-image `Label` annotation. Class ids: the one-hot column order
(0-based), or order of appearance in the two-column form. Image paths are relative to the CSV
(``images/`` beside it is tried too). Images that no row lists are not part of the dataset.

Layouts read: a CSV file with such a header; a folder with ``_classes.csv`` (or exactly one such CSV);
split folders each holding ``_classes.csv`` (the split is the folder name).

Writing: ``out/[<split>/]_classes.csv``, images beside. ``layout="onehot"`` (default, Roboflow's) or
``"pairs"``. One-hot needs every class in the header, so rows are spilled to a temporary file and
the CSV is written once all classes are known (memory stays flat). Boxes, polygons, masks, rotated
boxes and keypoints are dropped with a reason (the format holds image labels only). A MISSING image
is written as labelled empty (counted).
"""

from __future__ import annotations

import csv
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Label, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import CsvRows, ImageRoot, Row, UniqueNames, grouped, split_folder
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport, place_image, safe_name

log = logging.getLogger(__name__)

FORMAT = "clscsv"
ROBOFLOW_NAME = "_classes.csv"
_FILE_WORDS = frozenset({"filename", "file", "image", "image_path", "path", "file_name", "image_id"})
_LABEL_WORDS = frozenset({"label", "labels", "class", "classes", "category"})
LAYOUTS = ("onehot", "pairs")


def _head(path: Path) -> tuple[list[str], list[str] | None] | None:
    """Header and first data row, or None when the file is not a CSV."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            first = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if header is None:
        return None
    return [c.strip() for c in header], [c.strip() for c in first] if first is not None else None


def _style(path: Path) -> str | None:
    """"onehot", "pairs" or None (not a classification CSV)."""
    head = _head(path)
    if head is None:
        return None
    header, first = head
    if len(header) < 2 or header[0].lower() not in _FILE_WORDS:
        return None
    if len(header) == 2 and header[1].lower() in _LABEL_WORDS:
        return "pairs"
    if first is None:
        return "onehot" if path.name == ROBOFLOW_NAME else None
    if len(first) == len(header) and all(v in ("0", "1") for v in first[1:]):
        return "onehot"
    return None


def _files(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_file():
        return [(path, None)] if path.suffix.lower() == ".csv" and _style(path) else []
    if not path.is_dir():
        return []
    if (path / ROBOFLOW_NAME).is_file() and _style(path / ROBOFLOW_NAME):
        return [(path / ROBOFLOW_NAME, None)]
    found = [f for f in sorted(path.glob("*.csv")) if _style(f)]
    if len(found) == 1:
        return [(found[0], None)]
    return [(sub / ROBOFLOW_NAME, sub.name) for sub in sorted(p for p in path.iterdir() if p.is_dir())
            if (sub / ROBOFLOW_NAME).is_file() and _style(sub / ROBOFLOW_NAME)]


# ------------------------------------------------------------------------------------ detect


def detect(path: Path) -> Detection:
    """A CSV whose header is `filename,<class>...` with 0/1 values, or `filename,label`."""
    path = Path(path)
    files = _files(path)
    if not files:
        return Detection.no("no classification CSV (header `filename, class...` with 0/1 rows, or `filename,label`)")
    f = files[0][0]
    style = _style(f)
    score = 0.9 if f.name == ROBOFLOW_NAME else 0.75
    return Detection(score, f"{f.name} is a {'one-hot' if style == 'onehot' else 'filename,label'} classification CSV")


# -------------------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _files(path)
    if not files:
        raise FormatError("no classification CSV here", path=path,
                          hint="expected _classes.csv (header filename, class_a, class_b, ...) or filename,label")
    classes = ClassMap()
    for f, _ in files:
        head = _head(f)
        if head is not None and _style(f) == "onehot":
            for i, name in enumerate(head[0][1:], start=2):
                if not name:
                    raise FormatError("empty class name in the header", path=f, where=f"line 1, column {i}")
                classes.add(name)

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            yield from _read_file(f, split or file_split, classes)

    return Reader(classes, samples, source=path)


def _rows(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = CsvRows(f, path)
        header = next(reader, [])
        for values in reader:
            if not values or not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise FormatError(f"{len(values)} fields, the header has {len(header)}", path=path,
                                  where=f"line {reader.line_num}")
            row = [v.strip() for v in values]
            if not row[0]:
                raise FormatError("empty filename", path=path, where=f"line {reader.line_num}")
            yield row[0], reader.line_num, row


def _read_file(path: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    style = _style(path)
    header = [c.strip() for c in (_head(path) or ([], None))[0]]
    roots = ImageRoot([path.parent, path.parent / "images"])
    for name, rows in grouped(lambda: _rows(path)):
        labels: list[str] = []
        for line, row in rows:
            if style == "onehot":
                for col, (cls, v) in enumerate(zip(header[1:], row[1:], strict=True), start=2):
                    if v not in ("0", "1"):
                        raise FormatError(f"{cls!r} must be 0 or 1, got {v!r}", path=path,
                                          where=f"line {line}, column {col}")
                    if v == "1" and cls not in labels:
                        labels.append(cls)
            elif row[1] and row[1] not in labels:
                labels.append(row[1])
        anns = tuple(Annotation(classes.add(label).name, Label()) for label in labels)
        file_name = name.replace("\\", "/")
        ref = ImageRef(file_name, path=str(roots.resolve(file_name)))
        yield Sample(ref, anns, split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


# ------------------------------------------------------------------------------------- write


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
    layout: str = "onehot",
) -> WriteReport:
    """`out/[<split>/]_classes.csv` (one-hot, or `filename,label` pairs), images beside it."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    cmap = ClassMap(list(classes)) if classes is not None else ClassMap()
    names = UniqueNames()
    spills: dict[str | None, IO[bytes]] = {}
    folders: dict[str | None, Path] = {}
    try:
        for sample in samples:
            folder = out / split_folder(sample.split) if sample.split else out
            if sample.split not in spills:
                if (folder / ROBOFLOW_NAME).exists():
                    raise FormatError("the CSV already exists; refusing to overwrite it", path=folder / ROBOFLOW_NAME)
                folder.mkdir(parents=True, exist_ok=True)
                spills[sample.split] = tempfile.TemporaryFile()
                folders[sample.split] = folder
            name = names.claim(str(folder), safe_name(sample.image.file_name), report)
            if place_image(sample.image, folder / name, images):
                report.files += 1
            report.images += 1
            labels = _labels(sample.annotations, report)
            for label in labels:
                cmap.add(label)
            if not labels and sample.state is LabelState.MISSING:
                report.converted["image missing labels -> null (no class)"] += 1
            spills[sample.split].write(orjson.dumps([name, labels]) + b"\n")
        if not folders:
            folders[None] = out
            out.mkdir(parents=True, exist_ok=True)
            spills[None] = tempfile.TemporaryFile()
        for key, folder in folders.items():
            _flush(spills[key], folder / ROBOFLOW_NAME, cmap.names, layout)
            report.files += 1
    finally:
        for spill in spills.values():
            spill.close()
    return report


def _labels(annotations: Iterable[Annotation], report: WriteReport) -> list[str]:
    labels: list[str] = []
    for ann in annotations:
        if isinstance(ann.geometry, Label):
            if ann.label not in labels:
                labels.append(ann.label)
            report.annotations["label"] += 1
        else:
            report.drop(kind(ann.geometry), "a classification CSV holds whole-image labels only")
    return labels


def _flush(spill: IO[bytes], target: Path, class_names: list[str], layout: str) -> None:
    spill.seek(0)
    with open(target, "x", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["filename", *class_names] if layout == "onehot" else ["filename", "label"])
        for raw in spill:
            name, labels = orjson.loads(raw)
            rows: list[list[Any]]
            if layout == "onehot":
                wanted = set(labels)
                rows = [[name, *(int(c in wanted) for c in class_names)]]
            else:
                rows = [[name, label] for label in labels] or [[name, ""]]
            w.writerows(rows)

