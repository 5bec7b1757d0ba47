"""VGG Image Annotator (VIA) CSV export.

Reference: https://www.robots.ox.ac.uk/~vgg/software/via/ ("Annotation → Export Annotations (as
csv)"; the header is shown in https://www.robots.ox.ac.uk/~vgg/software/via/docs/face_track_annotation.html).

One row per region, the JSON objects in cells (quotes doubled, as CSV does)::

    filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes
    swan.jpg,-1,"{""caption"":""Swan""}",1,0,"{""name"":""rect"",""x"":116,""y"":157,""width"":797,""height"":400}","{""name"":""Swan""}"

An image without regions has one row with region_count 0 and ``{}`` shapes. VIA 1 writes the first
header cell as ``#filename``; both are read. Rows of one image are consecutive (VIA writes them
so); a later, separated row of the same image starts another sample. Shapes, classes (the region
attribute chosen by ``class_attribute``, default as in `formats.via`), file attributes and
everything the writer converts or drops are as in `formats.via`.

Writing: `out/via_region_data.csv` with images beside it, or one such folder per split.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Label
from visionloop.core.sample import Annotation, LabelState, Sample
from visionloop.formats._labeltools import UniqueNames, head
from visionloop.formats._tabular import CsvRows
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
)
from visionloop.formats.via import (
    file_attributes_out,
    file_labels,
    file_size,
    make_sample,
    parse_region,
    placed_samples,
    region_entries,
    split_files,
)

log = logging.getLogger(__name__)

FORMAT = "via_csv"
CSV_NAME = "via_region_data.csv"
HEADER = ["filename", "file_size", "file_attributes", "region_count", "region_id", "region_shape_attributes",
          "region_attributes"]


def _is_via_header(line: bytes) -> bool:
    cells = [c.strip().strip('"') for c in line.decode("utf-8-sig", "replace").strip().split(",")]
    return len(cells) >= 7 and cells[0].lstrip("#") == "filename" and cells[5] == "region_shape_attributes"


def detect(path: Path) -> Detection:
    files = split_files(Path(path), CSV_NAME, ".csv")
    if not files:
        return Detection.no("no via_region_data.csv or .csv file")
    first = head(files[0][0], 1024).splitlines()[:1]
    if not first or not _is_via_header(first[0]):
        return Detection.no(f"{files[0][0].name} does not start with the VIA CSV header")
    return Detection(0.95, f"{files[0][0].name} has the VIA CSV header")


def _cell(text: str, *, path: Path, where: str, what: str) -> Any:
    if text.strip() == "":
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FormatError(f"`{what}` is not JSON: {text[:60]!r}", path=path, where=where) from None


def read(path: Path, *, split: str | None = None, class_attribute: str | None = None) -> Reader:
    path = Path(path)
    files = split_files(path, CSV_NAME, ".csv")
    if not files:
        raise FormatError("no VIA CSV here", path=path, hint="expected via_region_data.csv")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            for sample in _read_file(f, class_attribute, split or file_split):
                for a in sample.annotations:
                    if a.label not in classes:
                        classes.add(a.label)
                yield sample

    return Reader(classes, samples, source=path)


def _read_file(path: Path, class_attribute: str | None, split: str | None) -> Iterator[Sample]:
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None
    with handle:
        reader = CsvRows(handle, path)
        header = next(reader, None)
        if header is None or not _is_via_header(",".join(header).encode()):
            raise FormatError("the first line is not the VIA CSV header", path=path, where="line 1",
                              hint=",".join(HEADER))
        current: tuple[str, str] | None = None
        anns: list[Annotation] = []
        rest: dict[str, Any] = {}
        size: Any = None
        for row in reader:
            lineno = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            where = f"line {lineno}"
            if len(row) < 7:
                raise FormatError(f"expected 7 cells, got {len(row)}", path=path, where=where)
            key = (row[0], row[1])
            if key != current:
                if current is not None:
                    yield make_sample(current[0], size, anns, rest, path.parent, split)
                current = key
                labels, rest = file_labels(_cell(row[2], path=path, where=where, what="file_attributes"),
                                           class_attribute)
                anns = list(labels)
                try:
                    size = int(row[1])
                except ValueError:
                    size = None
            shape = _cell(row[5], path=path, where=where, what="region_shape_attributes")
            if row[3].strip() in ("", "0") and not shape:
                continue
            attrs = _cell(row[6], path=path, where=where, what="region_attributes")
            anns.append(parse_region(shape, attrs, class_attribute=class_attribute, path=path, where=where))
        if current is not None:
            yield make_sample(current[0], size, anns, rest, path.parent, split)


class _Folder:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.final = folder / CSV_NAME
        self.partial = folder / (CSV_NAME + ".partial")
        self.handle: IO[str] = open(self.partial, "w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.handle, lineterminator="\n")
        self.csv.writerow(HEADER)
        self.names = UniqueNames()

    def close(self) -> None:
        self.handle.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


def _json(v: Any) -> str:
    return orjson.dumps(v).decode()


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    folders: dict[str | None, _Folder] = {}
    try:
        for sample, ref, folder, name, placed in placed_samples(samples, out, images, report, folders, _Folder):
            regions = [pair for ann in sample.annotations if not isinstance(ann.geometry, Label)
                       for pair in region_entries(ann, report, width=int(ref.width or 0), height=int(ref.height or 0))]
            size = str(file_size(ref, placed))
            fattrs = _json(file_attributes_out(sample, report))
            if not regions:
                folder.csv.writerow([name, size, fattrs, 0, 0, "{}", "{}"])
            for i, (shape, attrs) in enumerate(regions):
                folder.csv.writerow([name, size, fattrs, len(regions), i, _json(shape), _json(attrs)])
            count_state_change(report, sample, becomes=LabelState.NULL, why="VIA lists every image as labelled")
            report.images += 1
        if not folders:
            folders[None] = _Folder(out)
        for f in folders.values():
            f.close()
    except BaseException:
        for f in folders.values():
            f.abort()
        raise
    return report
