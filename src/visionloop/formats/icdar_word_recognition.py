"""ICDAR word recognition (Robust Reading challenges 2 and 4, task 3: cropped word images and what they read).

References: the challenges' task pages (https://rrc.cvc.uab.es/?ch=4&com=tasks, "Word Recognition": one line per
word image, ``word_1.png, "Genaxis Theatre"``, a ``"`` or ``\\`` inside the transcription escaped with ``\\``), and
datumaro's reader and writer, datumaro/plugins/data_formats/icdar/base.py and exporter.py (datumaro 1.13), which
CVAT's "ICDAR Recognition 1.0" export uses::

    <subset>/gt.txt                 word_1.png, "RED"        (datumaro writes ``word_3.png,`` for no transcription)
    <subset>/images/word_1.png

The releases (https://rrc.cvc.uab.es/?ch=4&com=downloads; as mmocr's dataset_zoo/icdar2015/textrecog.py fetches
them) keep the training word images beside ``gt.txt`` and ship the test ground truth as one file beside the folder
of test word images, UTF-8 with a BOM and CRLF line ends::

    ch4_training_word_images_gt/gt.txt          word_1.png, "Genaxis Theatre"
    ch4_training_word_images_gt/word_1.png
    ch4_test_word_images_gt/word_1.png
    Challenge4_Test_Task3_GT.txt                word_1.png, "JOINT"   (ICDAR 2013: Challenge2_Test_Task3_GT.txt)

Reading: in the folder given, its sub-folders and theirs, every ``gt.txt`` whose lines are ``<image>, "<text>"``,
and every ``<name>_GT.txt`` whose first line is one (none that has an image of the same name beside it: that is
ICDAR text segmentation's ``<name>_GT.txt`` + ``<name>_GT.bmp``); a ``*Task3_GT.txt`` whose first line is not
one is refused. The images of a ``gt.txt`` are in ``images/`` beside it, else beside it; those of a ``_GT.txt``
beside it (or in ``images/``) when its first image is there, else in the one folder beside the file that holds
its first image and whose name says no other split (``ch4_test_word_images_gt/``; refused when several do). Each line becomes, on its image, a whole-image `Label` of
class ``text`` with the attribute ``transcription`` (an image on several lines gets one each): the data model
has no caption type, and a class-``text`` label keeps the transcription where every format that holds image
labels with attributes (Datumaro, CVAT tags, Label Studio...) keeps it, with the same attribute name as the
other ICDAR formats. A line without a transcription makes its image NULL; an image of the folder that no line
names is MISSING. The split is the word in a ``_GT.txt`` file's name (``Challenge4_Test_Task3_GT.txt``: test), else the word in
the folder's name (train, test, val; the images' folder for a ``_GT.txt``), else the folder's name (none for
datumaro's ``default`` and for ``gt.txt`` in the folder given). A line that is not ``<image>, "<text>"`` is an
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


#: a release's separate ground-truth file (``Challenge4_Test_Task3_GT.txt``), when its lines say so
_RELEASE_GT = re.compile(r"^.+_GT\.txt$", re.IGNORECASE)
#: one whose name alone says it is word recognition (challenge 2 and 4, task 3)
_TASK3_GT = re.compile(r"^.*task_?3_GT\.txt$", re.IGNORECASE)


def _gt_files(root: Path) -> list[Path]:
    """Every ``gt.txt`` and every release ``<name>_GT.txt`` whose first line is ``<image>, "<text>"`` (a
    ``*Task3_GT.txt`` whatever its first line: reading it then refuses the line)."""
    out = []
    for folder in _icdar.folders(root):
        entries = _icdar.listing(folder)
        names = {e.name.casefold() for e in entries}
        for e in entries:
            if not e.is_file():
                continue
            if e.name == GT:
                out.append(Path(e.path))
            elif _RELEASE_GT.match(e.name) and not _beside_its_image(e.name, names):
                first = _first_line(Path(e.path))
                if _TASK3_GT.match(e.name) or (first and _parse(first) is not None):
                    out.append(Path(e.path))
    return out


def _beside_its_image(name: str, names: set[str]) -> bool:
    """ICDAR text segmentation's ``<name>_GT.txt`` has its ``<name>_GT.bmp`` beside it."""
    stem = name[: -len(".txt")].casefold()
    return any(stem + ext in names for ext in IMAGE_EXTENSIONS)


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
        return Detection.no(f"no {GT} or <name>_GT.txt of <image>, \"<transcription>\" lines")
    empty = broken = None
    for f in files[:8]:
        rel = f.relative_to(path).as_posix()
        line = _first_line(f)
        bad = f"{rel} is not UTF-8 text" if line is None else (
            f'{rel} line 1 is not <image>, "<transcription>"' if line and _parse(line) is None else None)
        if bad and _TASK3_GT.match(f.name):  # word recognition by its name: refused, unless another file reads
            broken = broken or Detection.broken(f, bad)
            continue
        if bad:
            return Detection.no(bad)
        if line == "":
            empty = empty or f
            continue
        return Detection(0.9, f'{rel}: <image>, "<transcription>" lines')
    if broken is not None:
        return broken
    assert empty is not None
    images = _images_dir(empty.parent)
    if any(True for _ in iter_files(images, suffixes=IMAGE_EXTENSIONS)):
        return Detection(0.6, f"an empty {empty.relative_to(path).as_posix()} beside word images")
    return Detection.no(f"only empty {GT} files and no images")


def _images_dir(folder: Path) -> Path:
    return folder / _icdar.IMAGES if (folder / _icdar.IMAGES).is_dir() else folder


def _images_of(gt: Path) -> Path:
    """The folder of a ground-truth file's word images (see the module's docstring)."""
    here = _images_dir(gt.parent)
    if gt.name == GT:
        return here
    first = _first_line(gt)
    parsed = _parse(first) if first else None
    if parsed is None or (here / parsed[0]).is_file():
        return here
    said = _icdar.split_word(gt.stem)
    beside = [Path(e.path) for e in _icdar.listing(gt.parent) if e.is_dir() and (Path(e.path) / parsed[0]).is_file()
              and _icdar.split_word(e.name) in (None, said)]
    if len(beside) > 1:
        same = [d for d in beside if _icdar.split_word(d.name) == said]
        if len(same) != 1:
            raise FormatError(f"cannot tell which folder holds the word images of {gt.name} (beside it, each with "
                              f"{parsed[0]}: {', '.join(d.name for d in beside)})", path=gt,
                              hint="keep only the word images' folder beside it, or name it by split "
                                   "(ch4_test_word_images_gt/)")
        beside = same
    return beside[0] if beside else here


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError(f"an ICDAR word recognition dataset is a folder ({GT} and its word images)", path=root)
    files = _gt_files(root)
    if not files:
        raise FormatError(f"no {GT} or <name>_GT.txt (lines <image>, \"<transcription>\")", path=root)
    pairs = [(gt, _images_of(gt)) for gt in files]
    seen: dict[str, Path] = {}
    for gt, images in pairs:
        other = seen.setdefault(os.path.normcase(os.path.abspath(images)), gt)
        if other != gt:
            raise FormatError(f"{relative_name(other, root)} and {relative_name(gt, root)} both label the word "
                              f"images of {images.name}/", path=gt, hint="keep one ground-truth file per folder")
    classes = ClassMap.from_names([CLASS])
    return Reader(classes, lambda: _samples(root, pairs, split), source=root)


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


def _split(gt: Path, images: Path, root: Path) -> str | None:
    """The word in a ``_GT.txt``'s name, else that of the folder of ``gt.txt`` / of the images beside a ``_GT.txt``."""
    beside = gt.name != GT and images not in (gt.parent, gt.parent / _icdar.IMAGES)
    said = _icdar.split_word(gt.stem) if gt.name != GT else None
    return said or _icdar.folder_split(images if beside else gt.parent, root)


def _samples(root: Path, pairs: list[tuple[Path, Path]], forced: str | None) -> Iterator[Sample]:
    for gt, images in pairs:
        split = forced or _split(gt, images, root)
        used: set[str] = set()
        broken: set[str] = set()
        for name, lines in _lines(gt, broken).items():
            image = images / name
            if not image.is_file():
                quarantine(ImageError(f"listed image {name} not found in {images}", path=gt,
                                      where=f"line {lines[0][0]}",
                                      hint=f"{gt.name} gives no image size: the word images are needed"))
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
