"""Pascal VOC: one XML file per image, plus SegmentationClass / SegmentationObject palette PNGs.

Reference: http://host.robots.ox.ac.uk/pascal/VOC/voc2012/htmldoc/devkit_doc.html

Pixel convention
    VOC boxes are 1-based, inclusive pixel indices (the devkit): a box covering
    exactly the first pixel column is xmin = xmax = 1. Canonical coordinates are
    continuous, (0, 0) the top-left corner of the first pixel (see
    `visionloop.core.geometry`). So

        read:   x0 = xmin - 1,  y0 = ymin - 1,  x1 = xmax,  y1 = ymax
        write:  xmin = x0 + 1,  ymin = y0 + 1,  xmax = x1,  ymax = y1

    Fractional values in the XML ("81.5") are accepted as they are.

Write rounding rule
    A coordinate within 1e-6 of an integer is written as that integer ("81");
    any other value is rounded to 2 decimals with trailing zeros removed
    ("81.5", "81.25"), never in scientific notation. Integer boxes therefore
    round-trip exactly; fractional ones to within 0.005 px.

Layouts read
    (a) a folder of XML files next to or apart from the images (the raccoon
        dataset: `annotations/*.xml` + `images/*.jpg`). The XML's <filename>
        names the image, looked up in the XML's folder, then `../images/`, then
        `../JPEGImages/`, then the dataset root (and `JPEGImages/`, `images/`
        and <folder> under the root).
    (b) the devkit layout: `Annotations/`, `JPEGImages/`, `ImageSets/Main/*.txt`
        (every list of one id per line is a split, `train`, `val`, `test` first
        and `trainval` last; an image in no list has split None),
        `SegmentationClass/*.png` and `SegmentationObject/*.png`. An image in
        JPEGImages without an XML is LabelState.MISSING.

Segmentation
    SegmentationClass holds a class index per pixel (palette index; 255 is the
    void border and is ignored), SegmentationObject an instance index per pixel.
    Class names come from `labelmap.txt` (CVAT / datumaro "name:r,g,b::" lines,
    "background" first; prepended when missing, as datumaro does) or else the
    standard 21 VOC names. RGB masks are mapped back through the label map's
    colours (or the VOC colour map).

    Where SegmentationObject exists, each instance becomes one Mask annotation
    whose class is the most frequent SegmentationClass index under it (or, with
    no class PNG, the class of the XML object of the same number). Instance k
    belongs to the k-th <object> of the XML (the devkit convention, also
    datumaro's): when their classes agree they become ONE annotation, the mask
    as geometry, the XML box as `bbox` (None when it equals the mask's bounds)
    and the XML attributes, so no object is counted twice. Class pixels that no
    instance covers (all of them when only SegmentationClass exists) become one
    Mask per class with attributes {"semantic": True}.

Writing
    Always the devkit layout: `Annotations/<stem>.xml` (each built whole, then
    written once), `JPEGImages/<name>` (flat: the base name, a unique suffix on
    collision), `ImageSets/Main/<split>.txt` (plus `trainval.txt` when train and
    val exist), `labelmap.txt` (palette index = line order) and, for images with
    masks, `SegmentationClass/` and `SegmentationObject/` palette PNGs. Every
    <object> gets <pose>, <truncated> and <difficult> (Unspecified / 0 when not
    set) because common VOC tools read them unconditionally. Polygons and
    rotated boxes are written as their bounds; instance masks as their box
    plus the PNG pixels; keypoints are dropped. The report counts each of these.
    An object's <part>s (annotations with `part_of` and its `group`) are written
    inside it. Whole-image labels go to the devkit's classification lists
    `ImageSets/Main/<class>_<split>.txt` (`<id>  1`, `0` when difficult, `-1`
    for the split's other images); one without a split, or whose class an object
    of the image already shows, is dropped (counted).

Reading the lists
    `ImageSets/Main/<class>_<split>.txt` give a whole-image Label for each class
    marked present (`1`, or `0`: attribute difficult) that no object of the image
    shows, and the split of an image in no plain list. <part> boxes are Boxes with
    attributes `group` (the object's number, also set on the object) and
    `part_of` (its class), as datumaro's VOC importer groups them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError, VisionLoopError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._seg import voc_colormap
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    NO_IMAGES_HINT,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    find_image,
    images_are_optional,
    iter_files,
    place_image,
    quarantine,
    refuse_filled,
    safe_name,
    skip,
    with_size,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: the standard VOC class list, palette index = position (0 is the background)
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOID = 255
BACKGROUND = "background"
_FLAGS = ("difficult", "truncated", "occluded")
GROUP, PART_OF = "group", "part_of"  # an object with <part>s and its parts share `group`; a part names its object
_KNOWN_ATTRIBUTES = (*_FLAGS, "pose", "semantic")
_SPLIT_FIRST = ("train", "val", "test")
_SPLIT_LAST = ("trainval",)
_ANNOTATION_TAG = re.compile(rb"<annotation[\s>]")
_SNIFF_BYTES = 2048


# ---------------------------------------------------------------- numbers


def format_coordinate(value: float) -> str:
    """A VOC coordinate as text: integers bare, else up to 2 decimals, never scientific."""
    nearest = round(value)
    if abs(value - nearest) < 1e-6:
        return str(int(nearest))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _number(text: str | None, *, path: Path, where: str) -> float:
    if text is None or not text.strip():
        raise FormatError("value is missing", path=path, where=where)
    try:
        value = float(text.strip())
    except ValueError:
        raise FormatError(f"{text.strip()!r} is not a number", path=path, where=where) from None
    if not math.isfinite(value):
        raise FormatError(f"{text.strip()!r} is not a finite number", path=path, where=where)
    return value


def _flag(text: str | None, *, path: Path, where: str) -> bool:
    value = (text or "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    try:
        return float(value) != 0
    except ValueError:
        raise FormatError(f"{value!r} is not a flag (0 or 1)", path=path, where=where) from None


def _attribute_value(text: str) -> Any:
    """CVAT / datumaro free attributes: booleans and numbers come back typed."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# ---------------------------------------------------------------- parsing one XML


@dataclass
class _Parsed:
    filename: str | None
    folder: str | None
    width: int | None
    height: int | None
    objects: list[Annotation]
    parts: list[Annotation] = field(default_factory=list)  # <part> boxes, linked to their object by `group`


def _parse_file(xml: Path) -> _Parsed:
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        line, column = e.position
        reason = re.sub(r": line \d+, column \d+$", "", str(e))
        raise FormatError(f"malformed XML ({reason})", path=xml,
                          where=f"line {line}, column {column + 1}",
                          hint="fix or remove this file") from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror})", path=xml) from None
    if root.tag != "annotation":
        raise FormatError(f"the root element is <{root.tag}>, not <annotation>", path=xml,
                          hint="this is not a Pascal VOC annotation file")
    return parse_annotation(root, path=xml)


def parse_annotation(root: ET.Element, *, path: Path) -> _Parsed:
    """The fields of one <annotation> element (pure: no file system access)."""
    width = height = None
    size = root.find("size")
    if size is not None:
        w, h = size.findtext("width"), size.findtext("height")
        if w and w.strip() and h and h.strip():
            wv = int(_number(w, path=path, where="<size> <width>"))
            hv = int(_number(h, path=path, where="<size> <height>"))
            if wv > 0 and hv > 0:
                width, height = wv, hv
    objects: list[Annotation] = []
    parts: list[Annotation] = []
    for i, obj in enumerate(root.findall("object"), start=1):
        annotation = _parse_object(obj, i, path=path)
        found = _parse_parts(obj, i, annotation.label, path=path)
        if found:  # the object and its parts share `group` (datumaro's VOC importer does the same)
            annotation = replace(annotation, attributes={**annotation.attributes, GROUP: i})
        objects.append(annotation)
        parts.extend(found)
    filename = (root.findtext("filename") or "").strip() or None
    folder = (root.findtext("folder") or "").strip() or None
    return _Parsed(filename, folder, width, height, objects, parts)


def _parse_parts(obj: ET.Element, index: int, parent: str, *, path: Path) -> list[Annotation]:
    """The <part> boxes of object `index` (VOC's person layout: head, hand, foot), each a Box with attributes
    `group` (the object's number) and `part_of` (its class). A part without <name> or <bndbox> is skipped."""
    out = []
    for j, part in enumerate(obj.findall("part"), start=1):
        where = f"object {index} part {j}"
        name = (part.findtext("name") or "").strip()
        bndbox = part.find("bndbox")
        if not name or bndbox is None:
            skip("part", "no <name> or no <bndbox>", path=path, where=where)
            continue
        xmin, ymin, xmax, ymax = (_number(bndbox.findtext(tag), path=path, where=f"{where} <{tag}>")
                                  for tag in ("xmin", "ymin", "xmax", "ymax"))
        try:
            box = Box(xmin - 1, ymin - 1, xmax, ymax)
        except ValueError as e:
            raise FormatError(f"impossible box ({e})", path=path, where=f"{where} <bndbox>") from None
        out.append(Annotation(name, box, attributes={GROUP: index, PART_OF: parent}))
    return out


def _parse_object(obj: ET.Element, index: int, *, path: Path) -> Annotation:
    where = f"object {index}"
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise FormatError("object has no <name>", path=path, where=f"{where} <name>")
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise FormatError("object has no <bndbox>", path=path, where=f"{where} <bndbox>")
    xmin, ymin, xmax, ymax = (
        _number(bndbox.findtext(tag), path=path, where=f"{where} <{tag}>")
        for tag in ("xmin", "ymin", "xmax", "ymax")
    )
    try:
        box = Box(xmin - 1, ymin - 1, xmax, ymax)
    except ValueError as e:
        raise FormatError(f"impossible box ({e})", path=path, where=f"{where} <bndbox>") from None
    attributes: dict[str, Any] = {}
    for tag in _FLAGS:
        element = obj.find(tag)
        if element is not None:
            attributes[tag] = _flag(element.text, path=path, where=f"{where} <{tag}>")
    pose = (obj.findtext("pose") or "").strip()
    if pose and pose.lower() != "unspecified":
        attributes["pose"] = pose
    for attribute in obj.iterfind("attributes/attribute"):
        key = (attribute.findtext("name") or "").strip()
        if key:
            attributes.setdefault(key, _attribute_value(attribute.findtext("value") or ""))
    return Annotation(name, box, attributes=attributes)


# ---------------------------------------------------------------- layout


def _child_dir(root: Path, name: str) -> Path | None:
    """root/name, matched case-insensitively when the exact name is not there."""
    exact = root / name
    if exact.is_dir():
        return exact
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.lower() == name.lower() and entry.is_dir():
                    return Path(entry.path)
    except OSError:
        return None
    return None


@dataclass
class _Layout:
    root: Path
    xml_source: Path  # a folder walked for *.xml, or one file
    images_dir: Path | None  # JPEGImages: images without XML are MISSING
    image_sets: Path | None
    seg_class: Path | None
    seg_object: Path | None
    seg_names: list[str]
    seg_colors: list[tuple[int, int, int]]
    labelmap: bool
    background: int = 0
    extra_dirs: list[Path] = field(default_factory=list)


def _layout(path: Path) -> _Layout:
    if path.is_file():
        if path.suffix.lower() != ".xml":
            raise FormatError("a VOC dataset is a folder or one .xml file", path=path)
        root = path.parent.parent if path.parent.name.lower() == "annotations" else path.parent
        xml_source = path
    elif path.is_dir():
        root = path.parent if path.name.lower() == "annotations" else path
        xml_source = _child_dir(root, "Annotations") or root
    else:
        raise FormatError("no such file or folder", path=path)
    names, colors, has_labelmap = _seg_classes(root)
    background = names.index(BACKGROUND)
    images_dir = _child_dir(root, "JPEGImages") if path.is_dir() else None
    return _Layout(
        root=root,
        xml_source=xml_source,
        images_dir=images_dir,
        image_sets=_child_dir(root, "ImageSets"),
        seg_class=_child_dir(root, "SegmentationClass"),
        seg_object=_child_dir(root, "SegmentationObject"),
        seg_names=names,
        seg_colors=colors,
        labelmap=has_labelmap,
        background=background,
        extra_dirs=[d for d in (_child_dir(root, "JPEGImages"), _child_dir(root, "images")) if d],
    )


def parse_labelmap(text: str, *, path: Path) -> list[tuple[str, tuple[int, int, int] | None]]:
    """CVAT / datumaro labelmap.txt: `name:r,g,b:parts:actions`, one class a line, in index order."""
    out: list[tuple[str, tuple[int, int, int] | None]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name:
            raise FormatError("a label map line has no name", path=path, where=f"line {number}")
        color_text = rest.split(":", 1)[0].strip()
        color = None
        if color_text:
            try:
                r, g, b = (int(v) for v in color_text.split(","))
            except ValueError:
                raise FormatError(f"colour {color_text!r} is not r,g,b", path=path,
                                  where=f"line {number}") from None
            color = (r, g, b)
        out.append((name, color))
    return out


def _seg_classes(root: Path) -> tuple[list[str], list[tuple[int, int, int]], bool]:
    """Names and colours of the segmentation palette indices, and whether a labelmap said so."""
    cmap = voc_colormap()
    labelmap = root / "labelmap.txt"
    if not labelmap.is_file():
        return list(VOC_CLASSES), cmap[: len(VOC_CLASSES)], False
    entries = parse_labelmap(labelmap.read_text(encoding="utf-8-sig"), path=labelmap)
    if BACKGROUND not in [name for name, _ in entries]:
        entries.insert(0, (BACKGROUND, (0, 0, 0)))
    names = [name for name, _ in entries]
    colors = [color if color is not None else cmap[i % 256] for i, (_, color) in enumerate(entries)]
    return names, colors, True


@dataclass
class _ImageSets:
    split_of: dict[str, str] = field(default_factory=dict)  # image id -> split
    #: image id -> class -> difficult, from ImageSets/Main/<class>_<split>.txt (`id 1`: present, `id 0`: only
    #: difficult objects of it, `id -1`: absent)
    labels: dict[str, dict[str, bool]] = field(default_factory=dict)


def _read_splits(image_sets: Path | None) -> _ImageSets:
    """Image id -> split from ImageSets/Main (else ImageSets/Segmentation) id lists, and the image-level classes
    of the per-class lists `ImageSets/Main/<class>_<split>.txt` (whose split also counts for an image in no
    plain list)."""
    out = _ImageSets()
    if image_sets is None:
        return out
    lists: dict[str, list[str]] = {}
    class_splits: dict[str, str] = {}
    for sub in ("Main", "Segmentation"):
        folder = _child_dir(image_sets, sub)
        if folder is None:
            continue
        for txt in sorted(folder.glob("*.txt")):
            ids = _id_list(txt)
            if ids is not None:
                lists.setdefault(txt.stem, []).extend(ids)
            elif sub == "Main":
                _class_list(txt, out.labels, class_splits)
        if lists or out.labels:
            break

    def order(name: str) -> tuple[int, str]:
        if name in _SPLIT_FIRST:
            return (0, str(_SPLIT_FIRST.index(name)))
        return (2, name) if name in _SPLIT_LAST else (1, name)

    split_of: dict[str, str] = {}
    conflicts = 0
    for name in sorted(lists, key=order):
        for image_id in lists[name]:
            if image_id in split_of:
                conflicts += split_of[image_id] in _SPLIT_FIRST and name in _SPLIT_FIRST
                continue
            split_of[image_id] = name
    if conflicts:
        log.warning("%s: %d image ids are in more than one of train/val/test; the first list wins",
                    image_sets, conflicts)
    for image_id, name in class_splits.items():
        split_of.setdefault(image_id, name)
    out.split_of = split_of
    return out


def _class_list(txt: Path, labels: dict[str, dict[str, bool]], split_of: dict[str, str]) -> None:
    """Read `<class>_<split>.txt` (`<id> 1|0|-1` lines, the devkit's classification lists) into `labels`
    and `split_of` (train/val/test before trainval, as for the plain lists). Any other file is skipped."""
    name, _, split = txt.stem.rpartition("_")
    rows: list[tuple[str, int]] = []
    with open(txt, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 2 or tokens[1] not in ("1", "0", "-1") or not name or not split:
                skip("ImageSets list", "not `<id>` nor `<id> 1|0|-1` lines", path=txt, where=f"line {number}")
                return
            rows.append((tokens[0], int(tokens[1])))
    for image_id, value in rows:
        if value >= 0:
            labels.setdefault(image_id, {})[name] = value == 0
        old = split_of.get(image_id)
        if old is None or (old in _SPLIT_LAST and split not in _SPLIT_LAST):
            split_of[image_id] = split


def _id_list(txt: Path) -> list[str] | None:
    """The ids of a split list, None for a per-class list (`id  1` lines)."""
    ids = []
    with open(txt, encoding="utf-8-sig") as f:
        for line in f:
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 1:
                return None
            ids.append(tokens[0])
    return ids


# ---------------------------------------------------------------- reading


def read(path: Path, *, split: str | None = None) -> Reader:
    """Stream a VOC dataset (a folder, or one XML file), one XML at a time.

    `split`, when given, puts every image in that split (what the format says is
    ignored), as the other readers and `visionloop convert --split` do.
    """
    path = Path(path)
    layout = _layout(path)
    classes = ClassMap()
    if layout.labelmap:
        for name in layout.seg_names:
            if name != BACKGROUND:
                classes.add(name)
    return Reader(classes, lambda: _samples(layout, classes, split), source=path)


def _samples(layout: _Layout, classes: ClassMap, forced_split: str | None) -> Iterator[Sample]:
    sets = _read_splits(layout.image_sets)
    split_of: dict[str, str] = {} if forced_split else sets.split_of
    seen: set[str] = set()
    if layout.xml_source.is_file():
        xml_files: Iterable[Path] = [layout.xml_source]
    else:
        xml_files = iter_files(layout.xml_source, suffixes=(".xml",))
    skipped: set[str] = set()  # stems of quarantined XMLs: their images are not "unlabelled"
    stems: set[str] = set()  # ids met as an XML or an image: the class lists' other ids have nothing to label
    for xml in xml_files:
        stems.add(xml.stem)
        try:
            sample = _sample_from_xml(xml, layout, forced_split or split_of.get(xml.stem))
        except VisionLoopError as e:
            quarantine(e)  # raises unless the import quarantines
            skipped.add(xml.stem)
            continue
        sample = _with_image_labels(sample, sets.labels.get(xml.stem))
        for annotation in sample.annotations:
            classes.add(annotation.label)
        if sample.image.path is not None:
            seen.add(sample.image.path)
        yield sample
    if layout.images_dir is not None:
        yield from _unannotated(layout, classes, sets, split_of, forced_split, seen, skipped, stems)
    left = [i for i in sets.labels if i not in stems]
    if left and layout.xml_source.is_dir():
        skip("image-level labels", "the ImageSets/Main class lists name an id with no XML and no image",
             path=layout.image_sets or layout.root, where=f"e.g. {left[0]}", n=len(left))


def _unannotated(layout: _Layout, classes: ClassMap, sets: _ImageSets, split_of: dict[str, str],
                 forced_split: str | None, seen: set[str], skipped: set[str], stems: set[str]) -> Iterator[Sample]:
    """The images of JPEGImages/ without an XML: MISSING, or labelled by masks or the class lists."""
    assert layout.images_dir is not None
    for image in iter_files(layout.images_dir, suffixes=IMAGE_EXTENSIONS):
        stems.add(image.stem)
        absolute = os.path.abspath(image)
        if absolute in seen or image.stem in skipped:
            continue
        ref = ImageRef(_relative(absolute, layout.root), path=absolute)
        annotations = _segmentation(layout, image.stem, [], ref)
        listed = sets.labels.get(image.stem)
        state = None if annotations or listed else LabelState.MISSING
        sample = _with_image_labels(Sample(ref, tuple(annotations), split=forced_split or split_of.get(image.stem),
                                           state=state), listed)
        for annotation in sample.annotations:
            classes.add(annotation.label)
        yield sample


def _with_image_labels(sample: Sample, listed: dict[str, bool] | None) -> Sample:
    """The sample plus a whole-image Label for each class the per-class lists mark present that no object of
    it already shows (attribute `difficult` for a `0` line)."""
    if not listed:
        return sample
    shown = {a.label for a in sample.annotations}
    extra = [Annotation(name, Label(), attributes={"difficult": True} if difficult else {})
             for name, difficult in listed.items() if name not in shown]
    if not extra:
        return sample
    return replace(sample, annotations=(*sample.annotations, *extra), state=LabelState.ANNOTATED)


def _relative(absolute: str, root: Path) -> str:
    rel = os.path.relpath(absolute, os.path.abspath(root))
    if rel.startswith(".."):
        return PurePath(absolute).name
    return PurePath(rel).as_posix()


def _sample_from_xml(xml: Path, layout: _Layout, split: str | None) -> Sample:
    parsed = _parse_file(xml)
    try:
        image = _locate_image(xml, parsed, layout)
    except ImageError:
        if not (images_are_optional() and parsed.width and parsed.height):
            raise
        # --images none and the XML gives the size: the annotations alone, named as the XML names the image
        name = (parsed.filename or xml.stem).replace("\\", "/").rsplit("/", 1)[-1]
        if not PurePath(name).suffix:
            name += ".jpg"
        ref = ImageRef(name, width=parsed.width, height=parsed.height)
        return Sample(ref, (*parsed.objects, *parsed.parts), split=split)
    absolute = os.path.abspath(image)
    ref = ImageRef(_relative(absolute, layout.root), width=parsed.width, height=parsed.height, path=absolute)
    annotations = _segmentation(layout, xml.stem, parsed.objects, ref)
    return Sample(ref, (*annotations, *parsed.parts), split=split)


def _image_folders(xml: Path, parsed: _Parsed, layout: _Layout) -> list[Path]:
    here = xml.parent
    folders = [here, here.parent / "images", here.parent / "JPEGImages", layout.root, *layout.extra_dirs]
    if parsed.folder:
        try:
            folders.append(layout.root / safe_name(parsed.folder.replace("\\", "/")))
        except FormatError:
            pass
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def _locate_image(xml: Path, parsed: _Parsed, layout: _Layout) -> Path:
    names = []
    if parsed.filename:
        names.append(parsed.filename.replace("\\", "/").rsplit("/", 1)[-1])
    if xml.stem not in names:
        names.append(xml.stem)
    folders = _image_folders(xml, parsed, layout)
    # exact names first: one stat per folder in the common case
    for name in names:
        if PurePath(name).suffix:
            for folder in folders:
                if (folder / name).is_file():
                    return folder / name
    for name in names:
        for folder in folders:
            try:
                return find_image(folder, name)
            except ImageError:
                continue
    raise ImageError(
        f"image {names[0]!r} named by this XML not found",
        path=xml,
        hint="looked in " + ", ".join(str(f) for f in folders) + "; " + NO_IMAGES_HINT
        + (" (the XML gives the image size)" if parsed.width and parsed.height else ""),
    )


# ---------------------------------------------------------------- segmentation PNGs


def _load_index_png(png: Path, colors: list[tuple[int, int, int]]) -> np.ndarray:
    """A palette (or grey) PNG as its indices; an RGB PNG mapped back through `colors`."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(png) as im:
            mode = im.mode
            arr = np.asarray(im.convert("RGB") if mode in ("RGBA", "LA") else im)
    except (UnidentifiedImageError, OSError) as e:
        raise FormatError(f"not a readable PNG ({e})", path=png) from None
    if arr.ndim == 2:
        return arr.astype(np.int32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise FormatError(f"a segmentation PNG must be palette, grey or RGB, not mode {mode}", path=png)
    codes = (arr[..., 0].astype(np.int32) << 16) | (arr[..., 1].astype(np.int32) << 8) | arr[..., 2]
    lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(colors)}
    lookup.setdefault((224 << 16) | (224 << 8) | 192, VOID)  # the devkit's void colour
    unique, inverse = np.unique(codes, return_inverse=True)
    indices = np.empty(len(unique), dtype=np.int32)
    for i, code in enumerate(unique.tolist()):
        if code not in lookup:
            rgb = (code >> 16, (code >> 8) & 255, code & 255)
            raise FormatError(f"colour {rgb} is not in the label map", path=png,
                              hint="add it to labelmap.txt or save the mask as a palette PNG")
        indices[i] = lookup[code]
    return indices[inverse].reshape(codes.shape)


def _class_name(layout: _Layout, index: int, png: Path) -> str:
    if index >= len(layout.seg_names):
        raise FormatError(f"class index {index} has no name", path=png,
                          hint="add a labelmap.txt (name:r,g,b:: per index) beside the dataset")
    return layout.seg_names[index]


def _segmentation(layout: _Layout, stem: str, objects: list[Annotation], ref: ImageRef) -> list[Annotation]:
    """The XML's objects with the image's PNG masks folded in (see the module docstring)."""
    class_png = layout.seg_class / f"{stem}.png" if layout.seg_class else None
    object_png = layout.seg_object / f"{stem}.png" if layout.seg_object else None
    has_class = class_png is not None and class_png.is_file()
    has_object = object_png is not None and object_png.is_file()
    if not has_class and not has_object:
        return list(objects)
    import numpy as np

    cls = _load_index_png(class_png, layout.seg_colors) if has_class and class_png else None
    inst = _load_index_png(object_png, voc_colormap()) if has_object and object_png else None
    shape = (cls if cls is not None else inst).shape  # type: ignore[union-attr]
    if cls is not None and inst is not None and cls.shape != inst.shape:
        raise FormatError(f"SegmentationObject is {inst.shape[1]}×{inst.shape[0]} but SegmentationClass "
                          f"is {cls.shape[1]}×{cls.shape[0]}", path=object_png)
    if ref.size is not None and ref.size != (shape[1], shape[0]):
        log.warning("%s: mask size %d×%d differs from the declared image size %d×%d",
                    class_png if has_class else object_png, shape[1], shape[0], *ref.size)
    result = list(objects)
    extra: list[Annotation] = []
    covered = np.zeros(shape, dtype=bool)
    if inst is not None:
        assert object_png is not None
        for k in (int(v) for v in np.unique(inst) if v not in (0, VOID)):
            pixels = inst == k
            covered |= pixels
            name = _instance_class(layout, k, pixels, cls, objects, class_png or object_png)
            if name is None:
                log.warning("%s: instance %d has no class (no SegmentationClass pixels, no object %d); "
                            "skipped", object_png, k, k)
                continue
            mask = Mask.from_array(pixels)
            if k <= len(objects) and objects[k - 1].label == name and isinstance(objects[k - 1].geometry, Box):
                xml_box = objects[k - 1].geometry
                assert isinstance(xml_box, Box)
                result[k - 1] = replace(objects[k - 1], geometry=mask,
                                        bbox=None if xml_box == mask.bounds() else xml_box)
            else:
                extra.append(Annotation(name, mask))
    if cls is not None:
        assert class_png is not None
        rest = np.where(covered, VOID, cls)
        for index in (int(v) for v in np.unique(rest) if v not in (VOID, layout.background)):
            name = _class_name(layout, index, class_png)
            extra.append(Annotation(name, Mask.from_array(rest == index), attributes={"semantic": True}))
    return result + extra


def _instance_class(
    layout: _Layout, k: int, pixels: np.ndarray, cls: np.ndarray | None, objects: list[Annotation], png: Path
) -> str | None:
    import numpy as np

    if cls is not None:
        values = cls[pixels]
        values = values[(values != VOID) & (values != layout.background)]
        if values.size:
            return _class_name(layout, int(np.bincount(values).argmax()), png)
    if k <= len(objects):
        return objects[k - 1].label
    return None


# ---------------------------------------------------------------- detection


def _sniff(xml: Path) -> bool:
    """An <annotation> root and none of LabelMe XML's own tags (<imagesize>, <polygon>, <pt>: formats/labelme_xml)."""
    try:
        with open(xml, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    if _ANNOTATION_TAG.search(head) is None:
        return False
    return b"<bndbox" in head or not any(m in head for m in (b"<imagesize", b"<pt>", b"<polygon>"))


def _first_xml(folder: Path) -> Path | None:
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower().endswith(".xml") and entry.is_file():
                    return Path(entry.path)
    except OSError:
        return None
    return None


def detect(path: Path) -> Detection:
    """Cheap: looks at one XML file's first 2 KB at most per folder."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".xml":
            return Detection.no("not an .xml file")
        if _sniff(path):
            return Detection(0.6, "one XML file with an <annotation> root (Pascal VOC)")
        return Detection.no("an XML file without <annotation> in its first 2 KB")
    if not path.is_dir():
        return Detection.no("no such file or folder")
    annotations = _child_dir(path, "Annotations")
    if annotations is not None:
        xml = _first_xml(annotations)
        if xml is not None and _sniff(xml):
            return Detection(0.95, f"{annotations.name}/ holds Pascal VOC XML ({xml.name})")
        if xml is None and _child_dir(path, "JPEGImages") is not None:
            return Detection(0.5, "VOC devkit folders (Annotations/, JPEGImages/) but no XML yet")
        if xml is not None:
            return Detection.no(f"{annotations.name}/{xml.name} has no <annotation> element")
    xml = _first_xml(path)
    if xml is not None and _sniff(xml):
        return Detection(0.9, f"a folder of Pascal VOC XML files ({xml.name})")
    try:
        with os.scandir(path) as entries:
            subdirs = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return Detection.no("cannot list the folder")
    for sub in subdirs[:20]:
        xml = _first_xml(sub)
        if xml is not None and _sniff(xml):
            return Detection(0.85, f"{sub.name}/ holds Pascal VOC XML files ({xml.name})")
    return Detection.no("no .xml file with an <annotation> element here or one folder down")


# ---------------------------------------------------------------- writing


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the devkit layout under `out` (which must not hold a VOC dataset already)."""
    out = Path(out)
    refuse_filled(out, "Annotations", "JPEGImages")
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()


def write_part(samples: Iterable[Sample], out: Path, *, classes: ClassMap, images: ImageMode = ImageMode.COPY,
               start: int = 0) -> dict[str, Any]:
    """One part of a parallel write (`formats.parallel`): its XML and PNG files, and what the lists need."""
    writer = _Writer(Path(out), classes, images)
    known = len(writer.names)
    for sample in samples:
        writer.add(sample)
    if len(writer.names) != known:
        raise FormatError("a part met classes that are not in the class list", path=out)
    return {"report": writer.report.to_json(), "splits": writer.splits, "labels": writer.labels}


def finish_parts(out: Path, results: list[dict[str, Any]], *, classes: ClassMap) -> WriteReport:
    """ImageSets/Main/<split>.txt and labelmap.txt over the parts, as `write` would have written them."""
    writer = _Writer(Path(out), classes, ImageMode.NONE)
    for r in results:
        writer.report.add(r["report"])
        for split, stems in r["splits"].items():
            writer.splits.setdefault(split, []).extend(stems)
        for split, by_class in r.get("labels", {}).items():
            for name, listed in by_class.items():
                writer.labels.setdefault(split, {}).setdefault(name, {}).update(listed)
    return writer.finish()


@dataclass
class _Objects:
    """What one image's XML and PNGs will hold."""

    boxes: list[tuple[Annotation, Box]] = field(default_factory=list)
    instances: list[tuple[int, Annotation, int]] = field(default_factory=list)  # (object no., ann, class idx)
    semantic: list[tuple[Annotation, int]] = field(default_factory=list)
    parts: dict[Any, list[tuple[Annotation, Box]]] = field(default_factory=dict)  # group -> its <part> boxes
    labels: list[Annotation] = field(default_factory=list)  # whole-image labels: the class lists


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport("voc", str(out))
        self.names: list[str] = [BACKGROUND]
        if classes is not None:
            self.names += [name for name in classes.names if name != BACKGROUND]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.stems: set[str] = set()
        self.splits: dict[str, list[str]] = {}
        self.labels: dict[str, dict[str, dict[str, bool]]] = {}  # split -> class -> stem -> difficult
        self.cmap = voc_colormap()
        self.made_annotations = False

    def _class_index(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]

    def _unique(self, file_name: str) -> tuple[str, str]:
        base = safe_name(file_name).rpartition("/")[2]
        dot = base.rfind(".")  # pathlib's stem and suffix, without making paths
        stem, suffix = (base[:dot], base[dot:]) if 0 < dot < len(base) - 1 else (base, "")
        candidate, n = stem, 1
        while candidate.lower() in self.stems:
            n += 1
            candidate = f"{stem}_{n}"
        if n > 1:
            log.info("%s: name taken, written as %s%s", file_name, candidate, suffix)
        self.stems.add(candidate.lower())
        return candidate, candidate + suffix

    def add(self, sample: Sample) -> None:
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        stem, name = self._unique(ref.file_name)
        if self.images is not ImageMode.NONE and place_image(ref, self.out / "JPEGImages" / name, self.images):
            self.report.files += 1
        self.report.images += 1
        if sample.split:
            self.splits.setdefault(sample.split, []).append(stem)
        if sample.state is LabelState.MISSING and not sample.annotations:
            return  # no XML: nobody labelled it
        objects = self._collect(sample.annotations, ref.width, ref.height)
        self._image_labels(sample, stem, objects)
        if objects.instances or objects.semantic:
            self._write_pngs(stem, objects, ref.width, ref.height)
        self._write_xml(stem, name, ref, objects)

    def _image_labels(self, sample: Sample, stem: str, objects: _Objects) -> None:
        """Whole-image labels go to ImageSets/Main/<class>_<split>.txt (`1`, `0` when difficult), as the devkit's
        classification lists; the reader gives back a Label for a listed class no object of the image shows."""
        shown = {a.label for a, _ in objects.boxes} | {a.label for _, a, _ in objects.instances}
        for ann in objects.labels:
            if not sample.split:
                self.report.drop("label", "VOC keeps image labels in per-split class lists; the image has no split")
            elif ann.label in shown:
                self.report.drop("label", "an object of the same class already says it (VOC's class lists)")
            else:
                self._class_index(ann.label)
                listed = self.labels.setdefault(sample.split, {}).setdefault(ann.label, {})
                listed[stem] = listed.get(stem, True) and bool(ann.attributes.get("difficult"))
                self.report.annotations["label"] += 1
                if any(k != "difficult" for k in ann.attributes):
                    self.report.drop("attributes", "a VOC class list holds a class and `difficult` only")

    def _collect(self, annotations: Iterable[Annotation], width: int, height: int) -> _Objects:
        objects = _Objects()
        report = self.report
        for ann in annotations:
            geometry = ann.geometry
            if ann.crowd and not isinstance(geometry, (Keypoints, Label)):
                report.converted["crowd -> ordinary object (VOC has no crowd flag)"] += 1
            if isinstance(geometry, Box) and PART_OF in ann.attributes and ann.attributes.get(GROUP) is not None:
                objects.parts.setdefault(ann.attributes[GROUP], []).append((ann, geometry))
                report.annotations["box"] += 1
            elif isinstance(geometry, Box):
                objects.boxes.append((ann, geometry))
                report.annotations["box"] += 1
            elif isinstance(geometry, (Polygon, RotatedBox)):
                objects.boxes.append((ann, geometry.bounds()))
                report.converted[f"{kind(geometry)} -> box"] += 1
                report.annotations["box"] += 1
            elif isinstance(geometry, Mask):
                self._collect_mask(ann, geometry, width, height, objects)
            elif isinstance(geometry, Label):
                objects.labels.append(ann)
            else:
                report.drop(kind(geometry), "VOC holds boxes and masks only")
        return objects

    def _collect_mask(self, ann: Annotation, mask: Mask, width: int, height: int, objects: _Objects) -> None:
        report = self.report
        if mask.area == 0:
            report.drop("mask", "empty mask")
            return
        index = self._class_index(ann.label)
        fits = (mask.width, mask.height) == (width, height)
        if ann.attributes.get("semantic"):
            if not fits:
                report.drop("mask", "semantic mask size differs from the image size")
            elif index >= VOID:
                report.drop("mask", "class index above 254 does not fit a VOC palette PNG")
            else:
                objects.semantic.append((ann, index))
                report.annotations["mask"] += 1
            return
        box = ann.box
        assert box is not None
        objects.boxes.append((ann, box))
        number = len(objects.boxes)
        reason = None
        if not fits:
            reason = "mask size differs from the image size"
        elif number >= VOID:
            reason = "more than 254 objects in one image"
        elif index >= VOID:
            reason = "class index above 254"
        if reason:
            report.converted[f"mask -> box ({reason})"] += 1
            report.annotations["box"] += 1
        else:
            objects.instances.append((number, ann, index))
            report.annotations["mask"] += 1

    def _write_pngs(self, stem: str, objects: _Objects, width: int, height: int) -> None:
        import numpy as np

        class_arr = np.zeros((height, width), dtype=np.uint8)
        for ann, index in objects.semantic:
            assert isinstance(ann.geometry, Mask)
            class_arr[ann.geometry.to_array().astype(bool)] = index
        if objects.instances:
            object_arr = np.zeros((height, width), dtype=np.uint8)
            for number, ann, index in objects.instances:
                assert isinstance(ann.geometry, Mask)
                pixels = ann.geometry.to_array().astype(bool)
                if object_arr[pixels].any():
                    self.report.converted["mask -> mask (overlapping pixels go to the later object)"] += 1
                object_arr[pixels] = number
                class_arr[pixels] = index
            self._save_png(object_arr, self.out / "SegmentationObject" / f"{stem}.png")
        self._save_png(class_arr, self.out / "SegmentationClass" / f"{stem}.png")

    def _save_png(self, arr: np.ndarray, path: Path) -> None:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(arr)  # mode "L"; putpalette makes it "P", the indices kept
        image.putpalette([v for rgb in self.cmap for v in rgb])
        image.save(path, optimize=True)
        self.report.files += 1

    def _write_xml(self, stem: str, name: str, ref: ImageRef, objects: _Objects) -> None:
        segmented = "1" if objects.instances or objects.semantic else "0"
        parts = [
            "<annotation>\n",
            "\t<folder>JPEGImages</folder>\n",
            f"\t<filename>{_escape(name)}</filename>\n",
            f"\t<size>\n\t\t<width>{ref.width}</width>\n\t\t<height>{ref.height}</height>\n"
            "\t\t<depth>3</depth>\n\t</size>\n",
            f"\t<segmented>{segmented}</segmented>\n",
        ]
        placed: set[Any] = set()  # groups whose parts went inside their object
        for ann, box in objects.boxes:
            self._class_index(ann.label)
            g = ann.attributes.get(GROUP)
            inner = objects.parts.get(g, []) if g is not None and g not in placed else []
            placed.add(g)
            for part, _ in inner:
                self._class_index(part.label)
            parts.append(_object_xml(ann, box, inner))
        for g, orphans in objects.parts.items():  # parts whose object is not here: objects of their own
            if g not in placed:
                for ann, box in orphans:
                    self._class_index(ann.label)
                    parts.append(_object_xml(ann, box))
        parts.append("</annotation>\n")
        folder = f"{self.out}/Annotations"
        if not self.made_annotations:
            os.makedirs(folder, exist_ok=True)
            self.made_annotations = True
        with open(f"{folder}/{stem}.xml", "wb") as f:
            f.write("".join(parts).encode())
        self.report.files += 1

    def finish(self) -> WriteReport:
        main = self.out / "ImageSets" / "Main"
        splits = dict(self.splits)
        if "train" in splits and "val" in splits and "trainval" not in splits:
            splits["trainval"] = splits["train"] + splits["val"]
        for split, stems in splits.items():
            main.mkdir(parents=True, exist_ok=True)
            file_name = re.sub(r"[^\w.-]", "_", split) + ".txt"
            (main / file_name).write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
            self.report.files += 1
        for split, by_class in self.labels.items():  # the devkit's classification lists: every image of the split
            for name, listed in by_class.items():
                lines = [f"{s} {(0 if listed[s] else 1) if s in listed else -1:>2}\n" for s in self.splits[split]]
                safe = re.sub(r"[^\w.-]", "_", f"{name}_{split}")
                (main / f"{safe}.txt").write_text("".join(lines), encoding="utf-8")
                self.report.files += 1
        self.out.mkdir(parents=True, exist_ok=True)
        lines = ["# label:color_rgb:parts:actions"]
        for i, name in enumerate(self.names):
            r, g, b = self.cmap[i % 256]
            lines.append(f"{name}:{r},{g},{b}::")
        (self.out / "labelmap.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.report.files += 1
        return self.report


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _flag_text(value: Any) -> str:
    if isinstance(value, str):
        return "1" if value.strip().lower() in ("1", "true", "yes") else "0"
    return "1" if value else "0"


def _bndbox(box: Box, indent: str) -> list[str]:
    lines = [f"{indent}<bndbox>"]
    for tag, value in (("xmin", box.x0 + 1), ("ymin", box.y0 + 1), ("xmax", box.x1), ("ymax", box.y1)):
        lines.append(f"{indent}\t<{tag}>{format_coordinate(value)}</{tag}>")
    lines.append(f"{indent}</bndbox>")
    return lines


def _object_xml(ann: Annotation, box: Box, parts: Sequence[tuple[Annotation, Box]] = ()) -> str:
    """One <object> element as text (string building: ElementTree's serializer is 5x slower), with its
    <part> boxes (annotations of the same `group` with `part_of`)."""
    attrs = ann.attributes
    if parts:
        attrs = {k: v for k, v in attrs.items() if k != GROUP}
    lines = [
        "\t<object>",
        f"\t\t<name>{_escape(ann.label)}</name>",
        f"\t\t<pose>{_escape(str(attrs.get('pose') or 'Unspecified'))}</pose>",
        f"\t\t<truncated>{_flag_text(attrs.get('truncated', False))}</truncated>",
        f"\t\t<difficult>{_flag_text(attrs.get('difficult', False))}</difficult>",
    ]
    if "occluded" in attrs:
        lines.append(f"\t\t<occluded>{_flag_text(attrs['occluded'])}</occluded>")
    lines += _bndbox(box, "\t\t")
    for part, part_box in parts:
        lines.append(f"\t\t<part>\n\t\t\t<name>{_escape(part.label)}</name>")
        lines += _bndbox(part_box, "\t\t\t")
        lines.append("\t\t</part>")
    extra = {k: v for k, v in attrs.items() if k not in _KNOWN_ATTRIBUTES and v is not None}
    if extra:
        lines.append("\t\t<attributes>")
        for key, value in extra.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            lines.append(f"\t\t\t<attribute>\n\t\t\t\t<name>{_escape(str(key))}</name>\n"
                         f"\t\t\t\t<value>{_escape(text)}</value>\n\t\t\t</attribute>")
        lines.append("\t\t</attributes>")
    lines.append("\t</object>\n")
    return "\n".join(lines)
