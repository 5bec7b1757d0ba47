"""VoTT (Microsoft Visual Object Tagging Tool 2.x) CSV export.

Reference: https://github.com/microsoft/VoTT `src/providers/export/csv.ts` (@ 664e3f60): writes
`vott-csv-export/<project name, spaces as ->-export.csv` with json2csv 4.x and, with includeImages, the images
beside it. One row per region and tag (a POINT region: its 0x0 bounding box); header and strings quoted,
numbers bare; rows joined by os.EOL (CRLF on Windows), no newline after the last::

    "image","xmin","ymin","xmax","ymax","label"
    "img_001.jpg",10.5,20,110.5,220,"cat"

The box is the region's bounding box in image pixels (continuous, top-left origin), kept as is.
Rows of one image are consecutive. A video frame's row names its image as VoTT wrote it beside the CSV
(``video.mp4#t=2.5.jpg``, see vott.py); a frame named without its image there (``video.mp4#t=2.5``: exported
without "Include images") is refused naming the row. An image in the folder without rows was exported but untagged
and is read as NULL. Classes: in order of appearance. Every `*-export.csv` of the folder is read (one per
split, e.g. `train-export.csv` and `valid-export.csv`: the split is the name before `-export`), or of each
split folder (`train/vott-csv-export/...`: the folder's name); an image named by two files is an error.

Writing: `out/vott-csv-export/visionloop-export.csv` with the images beside it. Everything is
written as its bounding box (non-box geometry counted as converted); a region with several tags
(``extra_labels``) becomes one row per tag, as VoTT does (counted). Whole-image labels,
attributes, confidence, crowd flags, track ids and splits cannot be held (dropped, counted).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Label, bounds, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._labeltools import UniqueNames, head, image_files
from visionloop.formats._tabular import CsvRows
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    place_image,
    quarantine,
    relative_name,
    safe_name,
    with_size,
)
from visionloop.formats.vott import frame_not_exported, is_video_frame, note_losses, tags_of

log = logging.getLogger(__name__)

FORMAT = "vott_csv"
EXPORT_DIR = "vott-csv-export"
HEADER = ["image", "xmin", "ymin", "xmax", "ymax", "label"]


def _exports(folder: Path) -> list[Path]:
    for f in (folder, folder / EXPORT_DIR):
        found = sorted(p for p in f.glob("*-export.csv") if p.is_file()) if f.is_dir() else []
        if found:
            return found
    return []


def _csv_files(path: Path) -> list[tuple[Path, str | None]]:
    """(export CSV, split): every `*-export.csv` here (one per split or project: each is read), else in split
    folders (`train/`, `valid/`...), else the one CSV of the folder. Several files in one folder are split by
    their name (`train-export.csv` → train), files in split folders by the folder's."""
    if path.is_file():
        return [(path, None)] if path.suffix.lower() == ".csv" else []
    if not path.is_dir():
        return []
    found = _exports(path)
    if found:
        return [(f, f.name[:-len("-export.csv")] if len(found) > 1 else None) for f in found]
    in_splits: list[tuple[Path, str | None]] = [(f, sub.name) for sub in sorted(p for p in path.iterdir() if p.is_dir() and p.name != EXPORT_DIR)
                 for f in _exports(sub)]
    if in_splits:
        return in_splits
    csvs = sorted(path.glob("*.csv"))
    return [(csvs[0], None)] if len(csvs) == 1 else []


def _csv_file(path: Path) -> Path | None:
    files = _csv_files(path)
    return files[0][0] if files else None


def _header_ok(line: bytes) -> bool:
    cells = [c.strip().strip('"').lower() for c in line.decode("utf-8-sig", "replace").strip().split(",")]
    return cells == HEADER


def detect(path: Path) -> Detection:
    f = _csv_file(Path(path))
    if f is None:
        return Detection.no("no <project>-export.csv (or vott-csv-export/)")
    first = head(f, 512).splitlines()[:1]
    if not first or not _header_ok(first[0]):
        return Detection.no(f"{f.name} does not start with image,xmin,ymin,xmax,ymax,label")
    return Detection(0.9, f"{f.name} has the VoTT CSV header")


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _csv_files(path)
    if not files:
        raise FormatError("no VoTT CSV export here", path=path, hint="expected vott-csv-export/<project>-export.csv")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        folders: dict[Path, list[tuple[Path, str | None]]] = {}
        for f, file_split in files:
            folders.setdefault(f.parent, []).append((f, split or file_split))
        for folder, members in folders.items():
            seen: dict[str, Path] = {}  # image -> the CSV that names it
            for f, file_split in members:
                for sample in _rows(f, file_split):
                    name = sample.image.file_name
                    if name in seen:
                        raise FormatError(f"image {name!r} has rows here and in {seen[name].name}", path=f,
                                          hint="each image belongs to one export; remove the repeated rows")
                    seen[name] = f
                    for a in sample.annotations:
                        if a.label not in classes:
                            classes.add(a.label)
                    yield sample
            # an image beside the export(s) without rows was exported untagged (its split: the one file's)
            rest_split = members[0][1] if len(members) == 1 else split
            for img in image_files(folder):
                rel = relative_name(img, folder)
                if rel not in seen:
                    yield Sample(ImageRef(rel, path=str(img)), (), split=rest_split, state=LabelState.NULL)

    return Reader(classes, samples, source=path)


def _rows(path: Path, split: str | None) -> Iterator[Sample]:
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None
    with handle:
        reader = CsvRows(handle, path)
        header = next(reader, None)
        if header is None or [c.strip().lower() for c in header] != HEADER:
            raise FormatError("the first line is not the VoTT CSV header", path=path, where="line 1",
                              hint=",".join(HEADER))
        current: str | None = None
        first = ""  # the line of the current image's first row
        anns: list[Annotation] = []
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            where = f"line {reader.line_num}"
            if len(row) != 6:
                raise FormatError(f"expected 6 cells, got {len(row)}", path=path, where=where)
            name = row[0]
            if name != current:
                if current is not None and (sample := _sample(current, anns, path, split, first)) is not None:
                    yield sample
                current, anns, first = name, [], where
            try:
                x0, y0, x1, y1 = (float(v) for v in row[1:5])
                anns.append(Annotation(row[5], Box(x0, y0, x1, y1)))
            except ValueError as e:
                raise FormatError(f"bad box ({e})", path=path, where=where) from None
        if current is not None and (sample := _sample(current, anns, path, split, first)) is not None:
            yield sample


def _sample(name: str, anns: list[Annotation], path: Path, split: str | None, where: str) -> Sample | None:
    local = path.parent / name
    if not local.is_file() and is_video_frame(None, name):  # exported without "Include images" (vott.py)
        quarantine(frame_not_exported(name, None, path=path, where=where))
        return None
    return Sample(ImageRef(name, path=str(local)), tuple(anns), split=split,
                  state=LabelState.ANNOTATED if anns else LabelState.NULL)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    folder = out / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    final, partial = folder / "visionloop-export.csv", folder / "visionloop-export.csv.partial"
    try:
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            w = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
            w.writerow(HEADER)
            for sample in samples:
                ref = with_size(sample.image)
                name = names(safe_name(ref.file_name))
                if place_image(ref, folder / name, images):
                    report.files += 1
                if sample.split:
                    report.drop("split", "VoTT has no splits")
                for ann in sample.annotations:
                    if isinstance(ann.geometry, Label):
                        report.drop("label", "VoTT has no whole-image tags")
                        continue
                    note_losses(ann, report, "VoTT CSV")
                    box = bounds(ann.geometry)
                    if box is None:
                        report.drop(kind(ann.geometry), "no labelled points")
                        continue
                    if not isinstance(ann.geometry, Box):
                        report.converted[f"{kind(ann.geometry)} -> box"] += 1
                    tags = tags_of(ann)
                    if len(tags) > 1:
                        report.converted[f"region with {len(tags)} tags -> {len(tags)} rows"] += 1
                    for t in tags:
                        w.writerow([name, box.x0, box.y0, box.x1, box.y1, t])
                        report.annotations["box"] += 1
                count_state_change(report, sample, becomes=LabelState.NULL, why="an image without rows reads as labelled empty")
                report.images += 1
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return report
