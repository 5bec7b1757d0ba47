"""ICDAR text segmentation (Robust Reading 2013, challenge 2 task 2: the pixels of every character).

References: datumaro's reader and writer, datumaro/plugins/data_formats/icdar/base.py and exporter.py (datumaro
1.13; CVAT's "ICDAR Segmentation 1.0" export is that writer), following the release's ``<name>_GT.bmp`` +
``<name>_GT.txt`` pairs::

    <subset>/<name>_GT.txt      one character a line:  R G B  cx cy  x0 y0 x1 y1  "c"
                                a blank line between words; ``#R G B ... " "`` for a space (datumaro's form)
    <subset>/<name>_GT.bmp      each character's pixels painted in its R G B, the rest white (255 255 255)
    <subset>/images/<name>.png

(the images may also be beside the ground truth, or in the one folder beside it whose name says the same split,
as ``Challenge2_Training_Task1_Images`` beside ``Challenge2_Training_Task2_GT``).

Reading: every folder (the one given, its sub-folders and theirs) holding ``*_GT.txt``. Each character becomes a
`Mask` of class ``text`` from the pixels of its colour in the BMP, with the attributes ``transcription`` (the
character), ``word`` (which word of the file, from 0: the blank lines), ``index`` (its line among the
characters, from 0), ``color`` (``"R G B"``) and ``center`` (``"cx cy"`` as written) -- datumaro's attributes,
its ``text`` named ``transcription`` as in the other ICDAR formats, and the word number where datumaro has a
group (0 for a one-character word). The box of a line is not kept: the mask gives it. A colour in the BMP that
no line gives, a colour given to two characters, a BMP of another size than its image, a line that is not ten
fields and a file with characters but no BMP are errors naming the file (and line or pixel); a character whose
colour has no pixel is counted (`skipped`). An image without ``_GT.txt`` is MISSING, one whose file lists no
character NULL; a ``_GT.txt`` without its image is counted. The split is the word in the folder's name (train,
test, val), else its name (none for datumaro's ``default`` and for the folder given).

Writing: ``out/<split>/<stem>_GT.txt`` and ``_GT.bmp`` (``default`` for no split, as datumaro) and
``out/<split>/images/<name>``. Masks are painted in annotation order (a later one over an earlier one, counted),
polygons and rotated boxes rasterised (counted); boxes, keypoints and whole-image labels are dropped (counted),
as is a character left with no pixel. A character keeps its ``color`` when no other has it, else gets a free
colour of the VOC colour map (as datumaro); ``center`` is written as given, ``- -`` when unknown (as datumaro);
the box is the mask's, ``x0 y0 x1 y1`` with x1, y1 one past the last pixel (as datumaro); a blank line separates characters whose ``word``
differs. The transcription is the ``transcription`` attribute (or datumaro's ``text``); none is written as
``""`` (counted), a class other than ``text`` is counted as converted.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _icdar, _seg
from visionloop.formats._tabular import UniqueNames, split_folder
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    image_size,
    is_image,
    place_image,
    quarantine,
    refuse_filled,
    relative_name,
    skip,
    skip_unpaired,
    with_size,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "icdar_text_segmentation"
CLASS = _icdar.CLASS
SUFFIX = "_GT"
WHITE = (255, 255, 255)
_TXT = re.compile(r"^(.+)_GT\.txt$")
# R G B cx cy x0 y0 x1 y1 "c"  (a leading # : the character is a space)
_LINE = re.compile(r'^(#?)(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.+)$')
_LINE_HINT = 'each line is R G B cx cy x0 y0 x1 y1 "c" (blank lines between words)'


@dataclass(frozen=True)
class _Char:
    line: int
    colour: tuple[int, int, int]
    center: str
    text: str
    word: int


def _is_gt(name: str) -> bool:
    return _TXT.match(name) is not None


def _is_annotation(name: str) -> bool:
    return PurePosixPath(name).stem.endswith(SUFFIX)


def _parse(line: str) -> tuple[tuple[int, int, int], str, str] | None:
    """(colour, centre, character) of one line, None when it is not one."""
    m = _LINE.match(line.strip())
    if m is None:
        return None
    space, r, g, b, cx, cy, x0, y0, x1, y1, text = m.groups()
    colour = (int(r), int(g), int(b))
    if max(colour) > 255:
        return None
    for v in (x0, y0, x1, y1):
        try:
            float(v)
        except ValueError:
            return None
    text = text.strip()
    if space:
        if text.replace(" ", "") != '""':
            return None
        return colour, f"{cx} {cy}", " "
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    elif " " in text or '"' in text:
        return None
    return colour, f"{cx} {cy}", text


def _gt_dirs(root: Path) -> list[Path]:
    return [f for f in _icdar.folders(root) if f.name != _icdar.IMAGES and _icdar.has_file(f, _is_gt)]


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    dirs = _gt_dirs(path)
    if not dirs:
        return Detection.no("no <name>_GT.txt files")
    for d in dirs[:4]:
        for e in _icdar.listing(d)[:400]:
            m = _TXT.match(e.name)
            if m is None or not (d / f"{m.group(1)}{SUFFIX}.bmp").is_file():
                continue
            try:
                with open(e.path, encoding="utf-8-sig") as f:
                    line = next((x for x in f if x.strip()), "")
            except (OSError, UnicodeDecodeError):
                return Detection.no(f"{e.name} is not UTF-8 text")
            if line and _parse(line) is None:
                return Detection.no(f'{e.name} line 1 is not R G B cx cy x0 y0 x1 y1 "c"')
            if line:
                rel = Path(e.path).relative_to(path).as_posix()
                return Detection(0.9, f"{rel} with its {m.group(1)}{SUFFIX}.bmp colour mask")
    return Detection.no("no <name>_GT.txt with characters beside its <name>_GT.bmp")


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("an ICDAR text segmentation dataset is a folder (<name>_GT.txt, <name>_GT.bmp, images)",
                          path=root)
    dirs = _gt_dirs(root)
    if not dirs:
        raise FormatError("no <name>_GT.txt files", path=root)
    pairs = [(d, _icdar.images_folder(d, is_annotation=_is_annotation)) for d in dirs]
    classes = ClassMap.from_names([CLASS])
    return Reader(classes, lambda: _samples(root, pairs, split), source=root)


def _samples(root: Path, pairs: list[tuple[Path, Path]], forced: str | None) -> Iterator[Sample]:
    for gt_dir, images in pairs:
        split = forced or _icdar.folder_split(gt_dir, root)
        gts = {m.group(1).casefold(): Path(e.path) for e in _icdar.listing(gt_dir)
               if e.is_file() and (m := _TXT.match(e.name))}
        used: set[str] = set()
        for e in _icdar.listing(images):
            if not e.is_file() or not is_image(Path(e.name)) or _is_annotation(e.name):
                continue
            image = Path(e.path)
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            txt = gts.get(image.stem.casefold())
            if txt is None:
                yield Sample(ref, (), split=split, state=LabelState.MISSING)
                continue
            used.add(os.path.abspath(txt))
            try:
                yield _sample(ref, image, txt, split)
            except FormatError as err:
                quarantine(err)
        skip_unpaired(sorted(gts.values()), used, what="ground-truth file",
                      reason=f"no image of that name in {images.name}/", path=gt_dir)


def _chars(txt: Path) -> list[_Char]:
    try:
        text = txt.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 ({e.reason})", path=txt) from None
    chars: list[_Char] = []
    word, in_word = 0, False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            if in_word:
                word, in_word = word + 1, False
            continue
        parsed = _parse(line)
        if parsed is None:
            raise FormatError(f"expected R G B cx cy x0 y0 x1 y1 \"c\", got {line.strip()[:60]!r}", path=txt,
                              where=f"line {n}", hint=_LINE_HINT)
        colour, center, char = parsed
        chars.append(_Char(n, colour, center, char, word))
        in_word = True
    return chars


def _load_rgb(path: Path) -> np.ndarray:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise FormatError("colour mask not found", path=path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise FormatError(f"not a readable image ({e})", path=path) from None


def _sample(ref: ImageRef, image: Path, txt: Path, split: str | None) -> Sample:
    chars = _chars(txt)
    bmp = txt.with_name(txt.name[:-len(".txt")] + ".bmp")
    if not chars:
        return Sample(ref, (), split=split, state=LabelState.NULL)
    if not bmp.is_file():
        raise FormatError(f"{len(chars)} characters listed but no {bmp.name} beside it", path=txt)
    colours: dict[tuple[int, int, int], int] = {WHITE: 0}
    for i, c in enumerate(chars, start=1):
        if c.colour in colours:
            other = "the background" if colours[c.colour] == 0 else f"line {chars[colours[c.colour] - 1].line}"
            raise FormatError(f"colour {' '.join(map(str, c.colour))} is also {other}'s: the mask cannot tell "
                              "them apart", path=txt, where=f"line {c.line}")
        colours[c.colour] = i
    arr = _load_rgb(bmp)
    size = image_size(image)
    _seg.check_shape(arr, size, bmp)
    index = _seg.colours_to_index(arr, colours, bmp, hint=f"every colour of the mask must be a line of {txt.name}")
    masks = dict(_seg.value_masks(index, skip=(0,)))
    anns = []
    for i, c in enumerate(chars, start=1):
        mask = masks.get(i)
        if mask is None:
            skip("character", "no pixel of its colour in the mask", path=txt, where=f"line {c.line}")
            continue
        attributes: dict[str, Any] = {_icdar.TRANSCRIPTION: c.text, "word": c.word, "index": i - 1,
                                      "color": " ".join(map(str, c.colour)), "center": c.center}
        anns.append(Annotation(CLASS, mask, attributes))
    return Sample(replace(ref, width=size[0], height=size[1]), tuple(anns), split=split,
                  state=None if anns else LabelState.NULL)


# ---------------------------------------------------------------------------------------- writing


def _colour(value: object) -> tuple[int, int, int] | None:
    parts = str(value).split() if isinstance(value, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    rgb = (int(parts[0]), int(parts[1]), int(parts[2]))
    return rgb if max(rgb) <= 255 else None


def _colours(anns: list[Annotation]) -> list[tuple[int, int, int]]:
    """Each character's colour: its own when free, else the next free one of the VOC colour map (not black,
    not white), as datumaro's writer picks them."""
    used = {WHITE}
    wanted = [_colour(a.attributes.get("color")) for a in anns]
    bank = iter(c for c in _seg.voc_colormap(1024)[1:] if c != WHITE)
    out = []
    for w in wanted:
        if w is None or w in used:
            w = next(c for c in bank if c not in used)
        used.add(w)
        out.append(w)
    return out


def _line(colour: tuple[int, int, int], center: str, box: tuple[int, int, int, int], text: str) -> str:
    prefix = "#" if text == " " else ""
    return f'{prefix}{colour[0]} {colour[1]} {colour[2]} {center} {box[0]} {box[1]} {box[2]} {box[3]} "{text}"'


def _center(ann: Annotation) -> str:
    parts = str(ann.attributes.get("center", "")).split()
    return " ".join(parts) if len(parts) == 2 else "- -"


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(FORMAT, str(out))
    stems = UniqueNames()
    for sample in samples:
        folder = split_folder(sample.split) if sample.split else _icdar.NO_SPLIT
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = stems.claim(folder, stem, report)
        if place_image(sample.image, out / folder / _icdar.IMAGES / f"{stem}{suffix or '.png'}", images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            continue
        _write_gt(sample, out / folder, stem, report)
    out.mkdir(parents=True, exist_ok=True)
    return report


def _write_gt(sample: Sample, folder: Path, stem: str, report: WriteReport) -> None:
    import numpy as np

    painter = _seg.Painter(report, "ICDAR text segmentation")
    kept: list[Annotation] = []
    regions = []
    index = None
    if sample.annotations:
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        index = np.zeros((ref.height, ref.width), np.uint16)
        for ann in sample.annotations:
            region = painter.pixels(ann, ref.width, ref.height)
            if region is None:
                continue
            if len(kept) + 1 >= 65535:
                report.drop("mask", "more than 65534 characters in one image")
                continue
            kept.append(ann)
            regions.append(region)
            _seg.paint(index, region, len(kept), background=0, report=report)
    present = set(np.flatnonzero(np.bincount(index.ravel())).tolist()) if index is not None else set()
    survivors = [(i, a) for i, a in enumerate(kept, start=1) if i in present]
    if len(survivors) < len(kept):
        report.drop("mask", "no pixel left (covered by later annotations)", len(kept) - len(survivors))
    colours = _colours([a for _, a in survivors])
    lines: list[str] = []
    word: object = None
    palette = np.zeros((len(kept) + 1, 3), np.uint8)
    palette[0] = WHITE
    for (i, ann), colour in zip(survivors, colours, strict=True):
        assert index is not None
        palette[i] = colour
        ys, xs = np.nonzero(regions[i - 1].window(index) == i)
        r = regions[i - 1]
        box = (r.x0 + int(xs.min()), r.y0 + int(ys.min()), r.x0 + int(xs.max()) + 1, r.y0 + int(ys.max()) + 1)
        text = _icdar.transcription(ann)
        if text is None:
            report.converted['no transcription -> "" (empty character)'] += 1
            text = ""
        if "\n" in text or "\r" in text:
            report.converted["transcription: line break -> space"] += 1
            text = " ".join(text.splitlines())
        if ann.label != CLASS:
            report.converted[f"class {ann.label} -> {CLASS} (ICDAR has one class)"] += 1
        this_word = ann.attributes.get("word")
        if lines and this_word != word:
            lines.append("")
        word = this_word
        lines.append(_line(colour, _center(ann), box, text))
        _seg.count_lost(report, ann, "ICDAR text segmentation",
                        attributes=(_icdar.TRANSCRIPTION, _icdar.DATUMARO_TEXT, "word", "index", "color", "center"))
        report.annotations["mask"] += 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}{SUFFIX}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    report.files += 1
    if survivors:
        assert index is not None
        from PIL import Image

        Image.fromarray(palette[index]).save(folder / f"{stem}{SUFFIX}.bmp")
        report.files += 1
