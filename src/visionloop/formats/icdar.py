"""ICDAR 2015 Robust Reading, Challenge 4 task 1 (incidental scene text localisation).

Reference: the challenge's "Downloads" and "Tasks" pages (https://rrc.cvc.uab.es/?ch=4&com=tasks): per image
``img_<n>.jpg`` a ground-truth file ``gt_img_<n>.txt``, UTF-8 with a byte-order mark, one word per line::

    377,117,463,117,465,130,378,130,Genaxis Theatre
    374,155,409,155,409,170,374,170,###

four corners clockwise from the top-left (pixels), then the transcription (which may hold commas: the rest of
the line); ``###`` marks text that cannot be read ("do not care"). The release's folders are
``ch4_training_images/`` + ``ch4_training_localization_transcription_gt/`` and ``ch4_test_images/`` +
``Challenge4_Test_Task1_GT/``; conversions often use ``images/`` + ``gt/``.

Lines as the challenge's own evaluation script reads them (``rrc_evaluation_funcs.py`` `get_tl_line_values`,
e.g. YanShuang17/icdar_2015_evaluation_script @ 5bde5981): eight coordinates, then the transcription (the rest of
the line); a transcription in double quotes is unquoted, ``\\\\`` and ``\\"`` inside it unescaped. Also read, as
datumaro 1.13's ``icdar_text_localization`` exporter writes them (CVAT's "ICDAR Localization 1.0";
datumaro/plugins/data_formats/icdar/exporter.py `IcdarTextLocalizationExporter`): ``x1,y1,...,x4,y4,"text"``
(more than four points when the polygon has them: numbers, then the quoted text), coordinates without a
transcription, and boxes ``x0 y0 x1 y1 "text"`` (corners, space- or comma-separated; a box's text must be quoted).
The exporter neither escapes a text nor writes one unquoted, and writes every coordinate as a Python float
(``10.0``): in datumaro's layout (below) a quoted text is read verbatim and a line of more than eight such
numbers and nothing else is a polygon of all its points without text. Elsewhere that line reads two ways (the
ICDAR 2015 rule makes the numbers after the eighth the transcription) and is refused naming the file and line;
a line whose coordinates are not all floats (``374,155,...,374,170,100,000``) reads by the ICDAR 2015 rule.

Layout read: in the folder given, its sub-folders and theirs, every folder holding ``gt_*.txt`` files is
paired with its ``images/`` folder (datumaro's ``<subset>/gt_<id>.txt`` + ``<subset>/images/``), else the images
folder beside it (the one whose name says the same split -- train/training, test, val -- or the only one);
``gt_<stem>.txt`` belongs to the image ``<stem>.<ext>``. The split is the word in the folder names (a datumaro
subset's name; none for ``default``). Each line becomes a `Polygon` (a `Box` for a box line) of class ``text``
with the attribute ``transcription`` when the line has one (``###`` kept as written, plus ``dont_care: True``).
An image without a ground-truth file is MISSING, one with an empty file NULL; a ground-truth file without its
image is counted (`skipped`). A malformed line is an error naming the file and line (the image is quarantined).
The files give no image size: the images are needed.

Writing: ``out/[<split>/]images/<name>`` and ``out/[<split>/]gt/gt_<stem>.txt`` (UTF-8 with BOM, ``\\n``).
Polygons of four points are written as they are; boxes and rotated boxes as their four corners, other polygons
and masks as their minimum-area rectangle (counted as converted); keypoints and whole-image labels are dropped
(counted). The transcription is the ``transcription`` attribute, ``###`` for a do-not-care one or none (counted);
a class other than ``text`` is lost (counted).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask, Polygon, RotatedBox, kind, mask_to_polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _icdar
from visionloop.formats._icdar import folders as _folders
from visionloop.formats._icdar import has_file as _has
from visionloop.formats._icdar import listing as _listing
from visionloop.formats._icdar import split_word as _split_word
from visionloop.formats._tabular import UniqueNames, number, split_folder
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    place_image,
    quarantine,
    refuse_filled,
    relative_name,
    safe_name,
    skip_unpaired,
)

log = logging.getLogger(__name__)

FORMAT = "icdar"
CLASS = _icdar.CLASS
DONT_CARE = "###"
_GT = re.compile(r"^gt_(.+)\.txt$", re.IGNORECASE)


def _pairs(root: Path) -> list[tuple[Path, Path, str | None, bool]]:
    """(gt folder, images folder, split, in datumaro's layout) found under `root`; refused when a gt folder's
    images are ambiguous."""
    folders = _folders(root)
    gt_dirs = [f for f in folders if _has(f, lambda n: _GT.match(n) is not None)]
    img_dirs = [f for f in folders if _has(f, lambda n: is_image(Path(n)))]
    pairs = []
    for gt in gt_dirs:
        if (gt / _icdar.IMAGES).is_dir() and gt != root:  # datumaro: <subset>/gt_<id>.txt + <subset>/images/
            pairs.append((gt, gt / _icdar.IMAGES, _icdar.folder_split(gt, root), True))
            continue
        beside = [d for d in img_dirs if d.parent == gt.parent and d != gt] or ([gt] if gt in img_dirs else [])
        split = _split_word(gt.name) if gt != root else None
        same = [d for d in beside if _split_word(d.name) == split] if len(beside) > 1 else beside
        if len(same) != 1:
            names = ", ".join(d.name for d in beside) or "none"
            raise FormatError(f"cannot tell which images folder {gt.name}/ annotates (beside it: {names})",
                              path=gt, hint="keep one images folder beside each gt folder, or name both by split")
        split = split or _split_word(same[0].name)
        if split is None and gt.parent != root:
            split = _split_word(gt.parent.name)
        pairs.append((gt, same[0], split, False))
    return pairs


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    try:
        pairs = _pairs(path)
    except FormatError as e:
        return Detection(0.5, f"gt_*.txt files, but {e.message}")
    if not pairs:
        return Detection.no("no gt_<image>.txt files beside an images folder")
    gt, images, _, datumaro = pairs[0]
    # the first file's first line must be 8 numbers and a transcription
    first = next((Path(e.path) for e in _listing(gt) if _GT.match(e.name)), None)
    if first is not None:
        try:
            with open(first, encoding="utf-8-sig") as f:
                line = next((x for x in f if x.strip()), "")
        except (OSError, UnicodeDecodeError):
            line = "x"
        try:
            bad = bool(line) and _parse(line, datumaro=datumaro) is None
        except _Ambiguous:
            bad = False
        if bad:
            return Detection.no(f"{first.name} line 1 is not x1,y1,...,x4,y4,transcription")
    return Detection(0.9, f"gt_*.txt in {gt.name}/ for the images in {images.name}/")


_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")
_DECIMAL = re.compile(r"^-?\d+\.\d+$")  # datumaro writes coordinates as Python floats (``377.0``)
_QUOTED = re.compile(r'^\s*"(.*)"\s*$', re.DOTALL)
_BOX = re.compile(r'^\s*(-?\d+(?:\.\d+)?)(?:\s*,\s*|\s+)(-?\d+(?:\.\d+)?)(?:\s*,\s*|\s+)(-?\d+(?:\.\d+)?)'
                  r'(?:\s*,\s*|\s+)(-?\d+(?:\.\d+)?)\s*(?:,?\s*"(.*)")?\s*$', re.DOTALL)


def _unquote(text: str) -> str:
    """The transcription as the RRC evaluation script reads it: a quoted one unquoted and unescaped."""
    m = _QUOTED.match(text)
    return m.group(1).replace("\\\\", "\\").replace('\\"', '"') if m else text


class _Ambiguous(ValueError):
    """A line that reads two ways and the layout does not say which."""


def _parse(line: str, *, datumaro: bool = False) -> tuple[tuple[float, ...], str | None, bool] | None:
    """(coordinates, transcription or None, is a box) of one line; None when it is not a line of this format.

    `datumaro`: the file is in datumaro's layout (``<subset>/gt_<id>.txt`` beside ``<subset>/images/``), whose
    exporter writes a polygon's every point as a Python float (``10.0``), then ``,"text"`` verbatim (not escaped)
    when it has one. Raises `_Ambiguous` for a line of more than eight numbers and nothing else outside that
    layout when all of them are floats as datumaro writes them: the ICDAR 2015 rule reads four corners and the
    text ``x5,y5,...``, datumaro's exporter meant a polygon of more points without text."""
    line = line.rstrip("\r\n")
    parts = line.split(",")
    lead = 0
    while lead < len(parts) and _NUMBER.match(parts[lead]):
        lead += 1
    if lead >= 8:
        rest = ",".join(parts[lead:])
        quoted = _QUOTED.match(rest) if rest else None
        text = (quoted.group(1) if datumaro else _unquote(rest)) if quoted else None
        if lead > 8 and lead % 2 == 0 and quoted:
            # a polygon of more than four points, then its quoted text (datumaro's exporter; the ICDAR 2015 rule
            # would make the text "x5,y5,...,\"text\"")
            return tuple(float(p) for p in parts[:lead]), text, False
        if lead > 8 and lead % 2 == 0 and not rest and all(_DECIMAL.match(p.strip()) for p in parts[:lead]):
            if not datumaro:
                raise _Ambiguous(f"{lead} numbers and no text: 4 corners and the transcription "
                                 f"\"{','.join(p.strip() for p in parts[8:lead])}\" (ICDAR 2015) or a polygon "
                                 f"of {lead // 2} points without one (datumaro's export)")
            return tuple(float(p) for p in parts[:lead]), None, False
        coords = tuple(float(p) for p in parts[:8])
        if lead == 8 and datumaro and quoted:
            return coords, text, False
        return coords, (_unquote(",".join(parts[8:])) if len(parts) > 8 else None), False
    m = _BOX.match(line)
    if m is not None:
        text = None if m.group(5) is None else (m.group(5) if datumaro else _unquote(f'"{m.group(5)}"'))
        return tuple(float(m.group(i)) for i in range(1, 5)), text, True
    return None


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("an ICDAR dataset is a folder (images and gt_<image>.txt files)", path=root)
    pairs = _pairs(root)
    if not pairs:
        raise FormatError("no gt_<image>.txt files beside an images folder", path=root)
    classes = ClassMap.from_names([CLASS])
    return Reader(classes, lambda: _samples(root, pairs, split), source=root)


def _samples(root: Path, pairs: list[tuple[Path, Path, str | None, bool]], split: str | None) -> Iterator[Sample]:
    for gt, images, folder_split, datumaro in pairs:
        gts = {m.group(1).casefold(): Path(e.path) for e in _listing(gt) if (m := _GT.match(e.name)) and e.is_file()}
        used: set[str] = set()
        for e in _listing(images):
            if not (e.is_file() and is_image(Path(e.name))):
                continue
            image = Path(e.path)
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            f = gts.get(image.stem.casefold())
            if f is None:
                yield Sample(ref, (), split=split or folder_split, state=LabelState.MISSING)
                continue
            used.add(os.path.abspath(f))
            try:
                anns = _annotations(f, datumaro=datumaro)
            except FormatError as err:
                quarantine(err)
                continue
            yield Sample(ref, anns, split=split or folder_split, state=None if anns else LabelState.NULL)
        skip_unpaired(sorted(gts.values()), used, what="ground-truth file",
                      reason=f"no image of that name in {images.name}/", path=gt)


def _annotations(f: Path, *, datumaro: bool = False) -> tuple[Annotation, ...]:
    try:
        text = f.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 ({e.reason})", path=f) from None
    anns = []
    for number_, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = _parse(line, datumaro=datumaro)
        except _Ambiguous as e:
            raise FormatError(str(e), path=f, where=f"line {number_}",
                              hint="quote the transcription (...,x4,y4,\"text\") if it is one; a datumaro "
                                   "export reads as polygons in its own layout (<subset>/gt_<id>.txt beside "
                                   "<subset>/images/)") from None
        if parsed is None:
            raise FormatError("expected x1,y1,x2,y2,x3,y3,x4,y4,transcription", path=f, where=f"line {number_}")
        coords, transcription, is_box = parsed
        attributes: dict[str, object] = {}
        if transcription is not None:
            attributes["transcription"] = transcription
        if transcription == DONT_CARE:
            attributes["dont_care"] = True
        try:
            geometry = Box(*coords) if is_box else Polygon((coords,))
            anns.append(Annotation(CLASS, geometry, attributes))
        except ValueError as e:
            raise FormatError(str(e), path=f, where=f"line {number_}") from None
    return tuple(anns)


# ---------------------------------------------------------------------------------------- writing


def _corners(ann: Annotation, report: WriteReport) -> tuple[float, ...] | None:
    g = ann.geometry
    if isinstance(g, Polygon) and len(g.rings) == 1 and len(g.rings[0]) == 8:
        return g.rings[0]
    if isinstance(g, Box):
        report.converted["box -> polygon (4 corners)"] += 1
        return (g.x0, g.y0, g.x1, g.y0, g.x1, g.y1, g.x0, g.y1)
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon (4 corners)"] += 1
        return tuple(c for p in g.corners() for c in p)
    if isinstance(g, Polygon | Mask):
        poly = mask_to_polygon(g) if isinstance(g, Mask) else g
        if poly is None:
            report.drop(kind(g), "empty mask")
            return None
        import cv2
        import numpy as np

        pts = np.array([p for r in range(len(poly.rings)) for p in poly.points(r)], np.float32)
        report.converted[f"{kind(g)} -> polygon (minimum-area rectangle: ICDAR holds 4 corners)"] += 1
        return tuple(float(c) for p in cv2.boxPoints(cv2.minAreaRect(pts)) for c in p)
    report.drop(kind(g), "ICDAR holds text quadrilaterals only")
    return None


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    for sample in samples:
        base = split_folder(sample.split) + "/" if sample.split else ""
        name = names.claim(base, PurePosixPath(safe_name(sample.image.file_name)).name, report)
        lines = []
        for ann in sample.annotations:
            corners = _corners(ann, report)
            if corners is None:
                continue
            if ann.label != CLASS:
                report.converted[f"class {ann.label} -> {CLASS} (ICDAR has one class)"] += 1
            text = _icdar.transcription(ann)
            if text is None or text == "":
                report.converted["no transcription -> ### (do not care)"] += 1
                text = DONT_CARE
            text = str(text).replace("\n", " ")
            if _QUOTED.match(text):  # would be read unquoted: quote and escape it as the RRC script reads it
                text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(",".join(number(round(c, 6)) for c in corners) + "," + text)
            report.annotations["polygon"] += 1
        if sample.state is LabelState.MISSING and not lines:
            if place_image(sample.image, out / base / "images" / name, images):
                report.files += 1
            report.images += 1
            continue
        gt = out / base / "gt" / f"gt_{PurePosixPath(name).stem}.txt"
        gt.parent.mkdir(parents=True, exist_ok=True)
        gt.write_text("\ufeff" + "".join(line + "\n" for line in lines), encoding="utf-8", newline="")
        report.files += 1
        if place_image(sample.image, out / base / "images" / name, images):
            report.files += 1
        report.images += 1
    out.mkdir(parents=True, exist_ok=True)
    return report
