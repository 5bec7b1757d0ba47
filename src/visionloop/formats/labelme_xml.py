"""LabelMe 3.0 XML, the original MIT LabelMe annotation files (what CVAT and datumaro export as "LabelMe 3.0").

Reference: the LabelMe toolbox documentation (Russell, Torralba et al., "LabelMe: a database and web-based tool
for image annotation", the MATLAB toolbox's ``LMread``/``LMwrite``), and datumaro's reader and writer,
datumaro/plugins/data_formats/labelme.py, which CVAT's "LabelMe 3.0" export uses::

    Annotations/<folder>/<name>.xml    Images/<folder>/<name>.jpg
    <annotation><filename>a.jpg</filename><folder>f</folder>
      <imagesize><nrows>H</nrows><ncols>W</ncols></imagesize>           (optional)
      <object><name>car</name><deleted>0</deleted><verified>0</verified><occluded>no</occluded>
        <attributes>a=1,b</attributes><id>0</id>
        <polygon><username/><pt><x>1</x><y>2</y></pt>...</polygon>
        <type>bounding_box</type>                                       (CVAT / datumaro boxes)
      </object></annotation>

Reading: each object with a polygon becomes a `Polygon` of class ``name`` (a ``bounding_box`` one a `Box`,
the bounds of its points); ``occluded`` (yes/no) and the ``attributes`` (``key=value`` or ``key``, comma
separated, ``\\``-escaped as datumaro writes them) become attributes. Objects with ``<deleted>1`` are skipped
and counted (`skipped`; `--strict` refuses), as are objects with a ``<segm>`` mask and no polygon, and polygons
of fewer than three points. The split is the folder when it is a split name (train, val, valid, test), else
none; the image name keeps the folder (``<folder>/<filename>``). Images are looked up in
``Images/<folder>/``, then beside the XML; ``--images none`` needs ``<imagesize>`` where an image is missing.
An image under ``Images/`` (or beside the XML files) that no XML names is MISSING (nobody labelled it), its split
the first folder when that is a split name; an XML without objects is NULL.

Writing: ``Annotations/[<split>/]<stem>.xml`` and ``Images/[<split>/]<name>``, with ``<imagesize>``; boxes as
``bounding_box`` polygons, polygons ring by ring (one object per ring, counted when an object has several),
masks as their outline polygons (counted), rotated boxes as their corners (counted), keypoints and whole-image
labels dropped (counted). Attributes other than ``occluded`` are written as ``key=value``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask, Polygon, RotatedBox, kind, mask_to_polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import UniqueNames, number, split_folder
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    images_are_optional,
    iter_files,
    place_image,
    quarantine,
    refuse_filled,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "labelme_xml"
_SPLITS = {"train": "train", "val": "val", "valid": "valid", "validation": "val", "test": "test"}
#: tags only LabelMe XML has (Pascal VOC has <size> and <bndbox>)
MARKERS = (b"<imagesize", b"<pt>", b"<polygon>")
_SNIFF = 4096


def _annotations_dir(path: Path) -> Path | None:
    for name in ("Annotations", "annotations"):
        if (path / name).is_dir():
            return path / name
    return None


def _first_xml(folder: Path) -> Path | None:
    return next(iter_files(folder, suffixes=(".xml",)), None)


def is_labelme_xml(head: bytes) -> bool:
    return b"<annotation" in head and any(m in head for m in MARKERS) and b"<bndbox" not in head


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    ann = _annotations_dir(path)
    if ann is None:
        return Detection.no("no Annotations/ folder")
    xml = _first_xml(ann)
    if xml is None:
        return Detection.no("no .xml file under Annotations/")
    try:
        with open(xml, "rb") as f:
            head = f.read(_SNIFF)
    except OSError:
        return Detection.no(f"cannot read {xml.name}")
    if not is_labelme_xml(head):
        return Detection.no(f"{xml.name} has no LabelMe tags (<imagesize>, <polygon>, <pt>)")
    return Detection(0.97, f"Annotations/ holds LabelMe XML ({xml.relative_to(ann).as_posix()})")


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text.strip())


def _attributes(text: str) -> dict[str, Any]:
    """``a=1,b`` (datumaro escapes ``\\``, ``=``, ``"`` and ``,`` with a backslash) as {"a": "1", "b": True}."""
    out: dict[str, Any] = {}
    for part in re.split(r"(?<!\\),", text):
        if not part.strip():
            continue
        key, *value = re.split(r"(?<!\\)=", part, maxsplit=1)
        out[_unescape(key)] = _unescape(value[0]) if value else True
    return out


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    ann = _annotations_dir(root)
    if ann is None:
        raise FormatError("no Annotations/ folder", path=root, hint="LabelMe keeps Annotations/<folder>/*.xml")
    classes = ClassMap()
    return Reader(classes, lambda: _samples(root, ann, split, classes), source=root)


def _samples(root: Path, ann_dir: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    used: set[str] = set()
    for xml in iter_files(ann_dir, suffixes=(".xml",)):
        try:
            sample = _sample(root, ann_dir, xml, split, classes, used)
        except FormatError as e:
            quarantine(e)
            continue
        yield sample
    yield from _unlabelled(root, ann_dir, split, used)


def _unlabelled(root: Path, ann_dir: Path, split: str | None, used: set[str]) -> Iterator[Sample]:
    """The images under Images/ and beside the XML files that no XML named: MISSING."""
    for base in (root / "Images", ann_dir):
        if not base.is_dir():
            continue
        for image in iter_files(base, suffixes=IMAGE_EXTENSIONS):
            key = os.path.normcase(os.path.abspath(image))
            if key in used:
                continue
            used.add(key)
            name = image.relative_to(base).as_posix()
            first = name.split("/")[0] if "/" in name else ""
            yield Sample(ImageRef(name, path=os.path.abspath(image)), (), split=split or _SPLITS.get(first.lower()),
                         state=LabelState.MISSING)


def _sample(root: Path, ann_dir: Path, xml: Path, split: str | None, classes: ClassMap, used: set[str]) -> Sample:
    try:
        tree = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise FormatError(f"malformed XML ({e})", path=xml) from None
    if tree.tag != "annotation":
        raise FormatError(f"root element <{tree.tag}>, expected <annotation>", path=xml)
    filename = _text(tree.find("filename"))
    if not filename:
        raise FormatError("no <filename>", path=xml)
    folder = _text(tree.find("folder")) or PurePosixPath(xml.parent.relative_to(ann_dir).as_posix()).as_posix()
    folder = "" if folder == "." else folder
    width = height = None
    size = tree.find("imagesize")
    if size is not None and _text(size.find("nrows")) and _text(size.find("ncols")):
        try:
            height, width = int(float(_text(size.find("nrows")))), int(float(_text(size.find("ncols"))))
        except ValueError:
            raise FormatError("<imagesize> is not two numbers", path=xml, where="imagesize") from None
    image = None
    for candidate in (root / "Images" / folder / filename, xml.parent / filename):
        if candidate.is_file():
            image = candidate
            break
    name = f"{folder}/{filename}" if folder else filename
    if image is None and not (images_are_optional() and width and height):
        from visionloop.core.errors import ImageError
        from visionloop.formats.base import NO_IMAGES_HINT

        raise ImageError(f"image {name} not found (looked in Images/{folder}/ and beside the XML)", path=xml,
                         hint=NO_IMAGES_HINT if width and height else "the XML has no <imagesize>: the images are needed")
    if image is not None:
        used.add(os.path.normcase(os.path.abspath(image)))
    ref = ImageRef(name, width=width or None, height=height or None,
                   path=os.path.abspath(image) if image is not None else None)
    anns: list[Annotation] = []
    for i, obj in enumerate(tree.iter("object")):
        where = f"object {i} ({_text(obj.find('name')) or 'no name'})"
        label = _text(obj.find("name"))
        if _text(obj.find("deleted")) in ("1", "true", "yes"):
            skip("object", "marked <deleted>1", path=xml, where=where)
            continue
        if not label:
            raise FormatError("object without <name>", path=xml, where=where)
        poly = obj.find("polygon")
        points: list[float] = []
        if poly is not None:
            for pt in poly.iter("pt"):
                try:
                    points += [float(_text(pt.find("x"))), float(_text(pt.find("y")))]
                except ValueError:
                    raise FormatError("a <pt> without numeric <x> and <y>", path=xml, where=where) from None
        if poly is None:
            reason = "a <segm> mask (not read)" if obj.find("segm") is not None else "no <polygon>"
            skip("object", reason, path=xml, where=where)
            continue
        attributes = _attributes(_text(obj.find("attributes")))
        occluded = _text(obj.find("occluded")).lower()
        if occluded:
            attributes["occluded"] = occluded == "yes"
        if _text(obj.find("type")) == "bounding_box" and len(points) >= 4:
            geometry: Box | Polygon = Box(min(points[0::2]), min(points[1::2]), max(points[0::2]), max(points[1::2]))
        elif len(points) < 6:
            skip("object", "polygon with fewer than 3 points", path=xml, where=where)
            continue
        else:
            geometry = Polygon((tuple(points),))
        classes.add(label)
        anns.append(Annotation(label, geometry, attributes))
    sample_split = split or _SPLITS.get(folder.lower())
    return Sample(ref, tuple(anns), split=sample_split, state=None if anns else LabelState.NULL)


# ------------------------------------------------------------------------------------- writing


def _rings(ann: Annotation, report: WriteReport) -> list[tuple[tuple[float, ...], bool]]:
    """(points, is a box) of the objects one annotation becomes."""
    g = ann.geometry
    if isinstance(g, Box):
        return [((g.x0, g.y0, g.x1, g.y0, g.x1, g.y1, g.x0, g.y1), True)]
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon"] += 1
        return [(tuple(c for p in g.corners() for c in p), False)]
    if isinstance(g, Mask):
        poly = mask_to_polygon(g)
        if poly is None:
            report.drop("mask", "empty")
            return []
        report.converted["mask -> polygon"] += 1
        g = poly
    if isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted["polygon: several rings -> one object per ring"] += 1
        return [(r, False) for r in g.rings]
    report.drop(kind(g), "LabelMe XML holds polygons and boxes")
    return []


def _escape(value: object) -> str:
    return re.sub(r'([\\=,"])', r"\\\1", str(value))


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out, "Annotations", "Images")
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    for sample in samples:
        folder = split_folder(sample.split) if sample.split else ""
        name = names.claim(folder, PurePosixPath(safe_name(sample.image.file_name)).name, report)
        ref = with_size(sample.image)
        count_state_change(report, sample, becomes=LabelState.NULL, why="an XML file lists the image as labelled")
        root = ET.Element("annotation")
        ET.SubElement(root, "filename").text = name
        ET.SubElement(root, "folder").text = folder
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "sourceImage").text = ""
        ET.SubElement(source, "sourceAnnotation").text = "visionloop"
        size = ET.SubElement(root, "imagesize")
        ET.SubElement(size, "nrows").text = str(ref.height)
        ET.SubElement(size, "ncols").text = str(ref.width)
        n = 0
        for ann in sample.annotations:
            for points, is_box in _rings(ann, report):
                obj = ET.SubElement(root, "object")
                ET.SubElement(obj, "name").text = ann.label
                ET.SubElement(obj, "deleted").text = "0"
                ET.SubElement(obj, "verified").text = "0"
                ET.SubElement(obj, "occluded").text = "yes" if ann.attributes.get("occluded") is True else "no"
                ET.SubElement(obj, "date").text = ""
                ET.SubElement(obj, "id").text = str(n)
                other = {k: v for k, v in ann.attributes.items() if k != "occluded"}
                if other:
                    ET.SubElement(obj, "attributes").text = ",".join(
                        _escape(k) if v is True else f"{_escape(k)}={_escape(v)}" for k, v in other.items())
                if is_box:
                    ET.SubElement(obj, "type").text = "bounding_box"
                poly = ET.SubElement(obj, "polygon")
                ET.SubElement(poly, "username").text = ""
                for x, y in zip(points[0::2], points[1::2], strict=True):
                    pt = ET.SubElement(poly, "pt")
                    ET.SubElement(pt, "x").text = number(round(x, 6))
                    ET.SubElement(pt, "y").text = number(round(y, 6))
                report.annotations["box" if is_box else "polygon"] += 1
                n += 1
        ET.indent(root)
        xml = out / "Annotations" / folder / f"{PurePosixPath(name).stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(xml, encoding="utf-8", xml_declaration=False)
        report.files += 1
        if place_image(sample.image, out / "Images" / folder / name, images):
            report.files += 1
        report.images += 1
    out.mkdir(parents=True, exist_ok=True)
    return report
