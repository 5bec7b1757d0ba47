"""ICDAR word recognition (Robust Reading challenges 2 and 4, task 3: cropped word images and what they read).

References: the challenges' task pages (https://rrc.cvc.uab.es/?ch=4&com=tasks, "Word Recognition": one line per
word image, ``word_1.png, "Genaxis Theatre"``, a ``"`` or ``\\`` inside the transcription escaped with ``\\``), and
datumaro's reader and writer, datumaro/plugins/data_formats/icdar/base.py and exporter.py (datumaro 1.13), which
CVAT's "ICDAR Recognition 1.0" export uses::

    <subset>/gt.txt                 word_1.png, "RED"        (datumaro writes ``word_3.png,`` for no transcription)
    <subset>/images/word_1.png

The release keeps the word images beside ``gt.txt`` (``ch4_training_word_images_gt/``); that is read too.

Reading: in the folder given, its sub-folders and theirs, every ``gt.txt`` whose lines are ``<image>, "<text>"``;
its images are in ``images/`` beside it, else beside it. Each line becomes, on its image, a whole-image `Label` of
class ``text`` with the attribute ``transcription`` (an image on several lines gets one each): the data model
has no caption type, and a class-``text`` label keeps the transcription where every format that holds image
labels with attributes (Datumaro, CVAT tags, Label Studio...) keeps it, with the same attribute name as the
other ICDAR formats. A line without a transcription makes its image NULL; an image of the folder that no line
names is MISSING. The split is the word in the folder's name (train, test, val), else the folder's name (none
for datumaro's ``default`` and for ``gt.txt`` in the folder given). A line that is not ``<image>, "<text>"`` is an
error naming the file and line (a file cut short is refused; an import quarantines the line); a listed image that is not there is an error
naming the line (the image is quarantined). ``gt.txt`` gives no image size: the images are needed.

Unlike datumaro's reader, a transcription may hold ``, `` (datumaro splits the line there and then drops the
image name's last character), and ``\\`` escapes one character (datumaro drops every backslash).

Writing: ``out/<split>/gt.txt`` (``default`` for no split, as datumaro) and ``out/<split>/images/<name>``; one line
per whole-image label that has a transcription (``"`` and ``\\`` escaped, a line break written as a space and
counted), ``<name>,`` for an image without one; a MISSING image is placed and not listed. A label without a
transcription, other geometry (the format holds one text per cropped word image) and a class other than ``text``
are counted (dropped, dropped, converted).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Label, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _icdar
from visionloop.formats._tabular import UniqueNames, split_folder
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    iter_files,
    place_image,
    quarantine,
    refuse_filled,
    relative_name,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "icdar_word_recognition"
GT = "gt.txt"
CLASS = _icdar.CLASS
_LINE_HINT = 'each line is <image file>, "<transcription>" (or <image file>, for none)'


def _parse(line: str) -> tuple[str, str | None] | None:
    """(image name, transcription or None) of one gt.txt line, None when it is not one."""
    name, sep, rest = line.strip().partition(",")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not is_image(Path(name)):
        return None
    if not rest:
        return name, None
    if len(rest) < 2 or rest[0] != '"' or rest[-1] != '"':
        return None
    return name, re.sub(r"\\(.)", r"\1", rest[1:-1])


def _gt_files(root: Path) -> list[Path]:
    return [f / GT for f in _icdar.folders(root) if (f / GT).is_file()]


def _first_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return next((line for line in f if line.strip()), "")
    except (OSError, UnicodeDecodeError):
        return None


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    files = _gt_files(path)
    if not files:
        return Detection.no(f"no {GT}")
    empty = None
    for f in files[:8]:
        line = _first_line(f)
        if line is None:
            return Detection.no(f"{f.relative_to(path).as_posix()} is not UTF-8 text")
        if line == "":
            empty = empty or f
            continue
        if _parse(line) is None:
            return Detection.no(f'{f.relative_to(path).as_posix()} line 1 is not <image>, "<transcription>"')
        return Detection(0.9, f'{f.relative_to(path).as_posix()}: <image>, "<transcription>" lines')
    assert empty is not None
    images = _images_dir(empty.parent)
    if any(True for _ in iter_files(images, suffixes=IMAGE_EXTENSIONS)):
        return Detection(0.6, f"an empty {empty.relative_to(path).as_posix()} beside word images")
    return Detection.no(f"only empty {GT} files and no images")


def _images_dir(folder: Path) -> Path:
    return folder / _icdar.IMAGES if (folder / _icdar.IMAGES).is_dir() else folder


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError(f"an ICDAR word recognition dataset is a folder ({GT} and its word images)", path=root)
    files = _gt_files(root)
    if not files:
        raise FormatError(f"no {GT} (lines <image>, \"<transcription>\")", path=root)
    classes = ClassMap.from_names([CLASS])
    return Reader(classes, lambda: _samples(root, files, split), source=root)


def _lines(gt: Path, broken: set[str]) -> dict[str, list[tuple[int, str | None]]]:
    """Image name -> [(line number, transcription or None)], in the order of first mention; the image names of
    lines that cannot be read (quarantined) go to `broken`."""
    try:
        text = gt.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 ({e.reason})", path=gt) from None
    out: dict[str, list[tuple[int, str | None]]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed = _parse(line)
        if parsed is None:  # refused; when importing, that line is quarantined and the others read
            broken.add(line.partition(",")[0].strip())
            quarantine(FormatError(f"expected <image>, \"<transcription>\", got {line.strip()[:60]!r}", path=gt,
                                   where=f"line {n}", hint=_LINE_HINT))
            continue
        out.setdefault(parsed[0], []).append((n, parsed[1]))
    return out


def _samples(root: Path, files: list[Path], forced: str | None) -> Iterator[Sample]:
    for gt in files:
        split = forced or _icdar.folder_split(gt.parent, root)
        images = _images_dir(gt.parent)
        used: set[str] = set()
        broken: set[str] = set()
        for name, lines in _lines(gt, broken).items():
            image = images / name
            if not image.is_file():
                quarantine(ImageError(f"listed image {name} not found in {images}", path=gt,
                                      where=f"line {lines[0][0]}",
                                      hint=f"{GT} gives no image size: the word images are needed"))
                continue
            used.add(os.path.normcase(os.path.abspath(image)))
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            anns = tuple(Annotation(CLASS, Label(), {_icdar.TRANSCRIPTION: text}) for _, text in lines
                         if text is not None)
            yield Sample(ref, anns, split=split, state=None if anns else LabelState.NULL)
        used.update(os.path.normcase(os.path.abspath(images / name)) for name in broken if name)
        for image in iter_files(images, suffixes=IMAGE_EXTENSIONS):
            if os.path.normcase(os.path.abspath(image)) in used:
                continue  # read, or its line quarantined (never MISSING: it was labelled)
            if images == gt.parent and image.parent != images:
                continue  # beside gt.txt: only the folder's own images (sub-folders may be other subsets)
            yield Sample(ImageRef(relative_name(image, root), path=os.path.abspath(image)), (), split=split,
                         state=LabelState.MISSING)


# ---------------------------------------------------------------------------------------- writing


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    lines: dict[str, list[str]] = {}
    for sample in samples:
        folder = split_folder(sample.split) if sample.split else _icdar.NO_SPLIT
        name = names.claim(folder, PurePosixPath(safe_name(sample.image.file_name)).name, report)
        rows = lines.setdefault(folder, [])
        texts = []
        for ann in sample.annotations:
            if not isinstance(ann.geometry, Label):
                report.drop(kind(ann.geometry), "ICDAR word recognition holds one transcription per word image")
                continue
            text = _icdar.transcription(ann)
            if text is None:
                report.drop("label", "no transcription (attribute `transcription`)")
                continue
            if ann.label != CLASS:
                report.converted[f"class {ann.label} -> {CLASS} (ICDAR has one class)"] += 1
            if "\n" in text or "\r" in text:
                report.converted["transcription: line break -> space"] += 1
                text = " ".join(text.splitlines())
            texts.append(text)
            report.annotations["label"] += 1
        if texts:
            rows.extend(f'{name}, "{_escape(t)}"' for t in texts)
        elif sample.state is not LabelState.MISSING:
            rows.append(f"{name},")
        if place_image(sample.image, out / folder / _icdar.IMAGES / name, images):
            report.files += 1
        report.images += 1
    for folder, rows in lines.items():
        gt = out / folder / GT
        gt.parent.mkdir(parents=True, exist_ok=True)
        gt.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        report.files += 1
    out.mkdir(parents=True, exist_ok=True)
    return report
