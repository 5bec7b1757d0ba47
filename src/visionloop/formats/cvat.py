"""CVAT for images, XML 1.1 (`annotations.xml`, images in `images/`).

Specification: https://docs.cvat.ai/docs/other/xml_format/ ("Annotation" section) and the export
layout https://docs.cvat.ai/docs/manual/advanced/formats/format-cvat/ (`annotations.xml` beside
`images/`; a project export adds `subset` to <image> and puts images in `images/<subset>/`). datumaro's
`cvat` exporter (datumaro/plugins/data_formats/cvat/exporter.py, `CvatExporter._apply_impl`) writes one
`<subset>.xml` per subset beside one flat `images/` instead: a folder of several CVAT XML files is read
as that, each file's stem its split.

Coordinates are absolute pixels in the same continuous space as ours (CVAT draws a box from
`xtl,ytl` to `xbr,ybr` on the image canvas), so they are read and written as they are. CVAT writes
2 decimals; the writer does the same unless a value needs more, which it then keeps exactly.

What each element becomes
=========================  ===================================================================
``<box>``                  :class:`Box`; with ``rotation`` (degrees, clockwise, about the centre)
                           a :class:`RotatedBox`
``<polygon>``              :class:`Polygon` (one ring)
``<mask rle left top       :class:`Mask`. CVAT's RLE: run lengths alternating from a run of 0s,
width height>``            row by row over the width×height rectangle at (left, top) (CVAT issue
                           #6487); the writer crops to the mask's bounds, as CVAT does.
``<points>``               :class:`Keypoints`, one visible point (v=2) per point, attribute
                           ``cvat_shape="points"``
``<polyline>``             :class:`Polyline` (an open line, at least 2 points)
``<skeleton>``             :class:`Keypoints` in the order of the skeleton's point labels in
                           <meta>; outside → v=0 (x=y=0), occluded → v=1, else v=2. The class
                           gets the point names and the SVG's edges as its skeleton.
``<ellipse>``              :class:`Polygon` of 64 points (lossy on read), ``cvat_shape="ellipse"``
``<tag>``                  :class:`Label` (whole image)
``<cuboid>``               not held: skipped and counted (`skipped`; --strict refuses)
=========================  ===================================================================

Fields: ``occluded="1"`` → attribute ``occluded: True``; a non-zero ``z_order`` and ``group_id``
→ attributes of those names; ``<attribute name>`` children → attributes, typed by the label's
``input_type`` in <meta> (checkbox → bool, number → int/float, else text); ``source``: manual,
semi-auto, consensus → Source.HUMAN, auto → Source.MODEL, file or none → Source.IMPORTED.
Classes: the <meta> labels in order, ids 0..n-1 (CVAT has no ids); skeleton point labels are
keypoint names, not classes. Splits: ``subset`` on <image> (project exports). Every listed image
is labelled (NULL when empty); images in ``images/`` that the XML does not list are MISSING.

Writing: `out/annotations.xml` (images and shapes streamed into a temporary file, then the
<meta> with every label and attribute type seen is put in front) and `out/images/[<split>/]<name>`.
Keypoints of a class with keypoint names become a <skeleton>, others <points> (hidden points are
left out and counted); a Polyline becomes a <polyline>. Multi-part polygons become one
<polygon> each (counted). Not held, and counted as dropped: confidence, crowd, track ids (use
`cvat_video`). Non-scalar attribute values are written as JSON text (counted).
"""

from __future__ import annotations

import logging
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _cvat
from visionloop.formats._labeltools import UniqueNames, image_files
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    place_image,
    relative_name,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "cvat"
XML_NAME = "annotations.xml"
_SHAPES = ("box", "polygon", "polyline", "points", "mask", "ellipse", "skeleton", "cuboid", "tag")


def _xml_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() == ".xml" else None
    if not path.is_dir():
        return None
    if (path / XML_NAME).is_file():
        return path / XML_NAME
    xmls = sorted(path.glob("*.xml"))
    return xmls[0] if len(xmls) == 1 else None


def _subset_files(path: Path) -> list[Path]:
    """datumaro's layout: several `<subset>.xml`, all CVAT XML, and no annotations.xml ([] otherwise)."""
    if not path.is_dir() or (path / XML_NAME).is_file():
        return []
    xmls = sorted(path.glob("*.xml"))
    return xmls if len(xmls) > 1 and all(_cvat.sniff(x) is not None for x in xmls) else []


# ---------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    subsets = _subset_files(Path(path))
    if subsets:
        kinds = {x.name: (_cvat.sniff(x) or ("", None))[0] for x in subsets}
        if "track" in kinds.values():
            return Detection(0.1, f"{', '.join(kinds)} are CVAT XML, with <track> elements (CVAT for video)")
        return Detection(0.95, f"{', '.join(kinds)} are CVAT XML, one per subset (datumaro's layout)")
    xml = _xml_file(Path(path))
    if xml is None:
        return Detection.no("no annotations.xml (or single .xml file)")
    found = _cvat.sniff(xml)
    if found is None:
        return Detection.no(f"{xml.name} is not CVAT XML (no <annotations> with <version>)")
    kind, mode = found
    if kind in ("image", "tag"):
        return Detection(0.95, f"{xml.name} is CVAT XML with <image> elements")
    if kind == "empty":
        return Detection(0.6 if mode != "interpolation" else 0.3, f"{xml.name} is CVAT XML without images")
    return Detection(0.1, f"{xml.name} is CVAT XML with <track> elements (CVAT for video)")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    subsets = _subset_files(path)
    xml = _xml_file(path)
    files: list[tuple[Path, str | None]] = [(x, x.stem) for x in subsets]
    if not files and xml is not None:
        files = [(xml, None)]
    if not files:
        raise FormatError("no CVAT annotation file here", path=path, hint="expected annotations.xml or an .xml file")
    metas = [read_meta(x) for x, _ in files]
    classes = metas[0].classes()
    for meta in metas[1:]:
        for info in meta.classes():
            if info.name not in classes:
                classes.add(info.name, color=info.color, keypoints=info.keypoints, skeleton=info.skeleton)

    def samples() -> Iterator[Sample]:
        yield from _samples([(x, meta, split or file_split) for (x, file_split), meta in zip(files, metas, strict=True)],
                            classes, split)

    return Reader(classes, samples, source=path)


def read_meta(xml: Path) -> _cvat.Meta:
    for el in _cvat.iter_top(xml):
        if el.tag == "meta":
            return _cvat.parse_meta(el, xml)
        if el.tag in ("image", "track", "tag"):
            break
    return _cvat.Meta()


def _samples(files: list[tuple[Path, _cvat.Meta, str | None]], classes: ClassMap,
             split: str | None) -> Iterator[Sample]:
    images = files[0][0].parent / "images"
    seen: set[str] = set()
    for xml, meta, file_split in files:
        for el in _cvat.iter_top(xml):
            if el.tag == "track":
                raise FormatError("this is CVAT for video (it has <track> elements)", path=xml,
                                  where=f"<track id={el.get('id')!r}>", hint="read it with --format cvat_video")
            if el.tag != "image":
                continue
            sample = _image(el, xml, meta, classes, images, file_split)
            seen.add(sample.image.file_name)
            if sample.split:
                seen.add(f"{sample.split}/{sample.image.file_name}")
            yield sample
    for f in image_files(images):
        rel = relative_name(f, images)
        if rel not in seen:
            yield Sample(ImageRef(rel, path=str(f)), (), split=split, state=LabelState.MISSING)


def _image(el: ET.Element, xml: Path, meta: _cvat.Meta, classes: ClassMap, images: Path,
           split: str | None) -> Sample:
    name = el.get("name")
    where = f"<image id={el.get('id')!r}>"
    if not name:
        raise FormatError("<image> has no `name`", path=xml, where=where)
    where = f"<image id={el.get('id')!r} name={name!r}>"
    size: tuple[int, int] | None = None
    w, h = el.get("width"), el.get("height")
    if w and h:
        try:
            size = (int(w), int(h))
        except ValueError:
            raise FormatError(f"width/height {w!r}×{h!r} are not integers", path=xml, where=where) from None
        if size[0] <= 0 or size[1] <= 0:
            size = None
    subset = el.get("subset") or None
    anns: list[Annotation] = []
    counts: dict[str, int] = {}
    for child in el:
        if child.tag not in _SHAPES:
            continue
        counts[child.tag] = counts.get(child.tag, 0) + 1
        label = child.get("label")
        swhere = f"{where} <{child.tag}> {counts[child.tag]}"
        if not label:
            raise FormatError(f"<{child.tag}> has no `label`", path=xml, where=swhere)
        ann = _cvat.parse_shape(child, label, _cvat.Context(xml, swhere, size, meta))
        if ann is None:
            continue
        if label not in classes:
            classes.add(label)
        anns.append(ann)
    candidates = [images / subset / name] if subset else []
    candidates += [images / name, xml.parent / name]
    found = next((c for c in candidates if c.is_file()), candidates[0])
    ref = ImageRef(name, width=size[0] if size else None, height=size[1] if size else None, path=str(found),
                   metadata={"cvat_id": int(el.get("id") or 0)} if (el.get("id") or "").isdigit() else {})
    return Sample(ref, tuple(anns), split=split or subset,
                  state=LabelState.ANNOTATED if anns else LabelState.NULL)


# ---------------------------------------------------------------- write


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    book = _cvat.LabelBook(ClassMap(list(classes)) if classes is not None else ClassMap())
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    body: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8", dir=out)
    final = out / XML_NAME
    partial = out / (XML_NAME + ".partial")
    try:
        n = 0
        for sample in samples:
            ref = with_size(sample.image)
            name = names(f"{sample.split}/{safe_name(ref.file_name)}" if sample.split else safe_name(ref.file_name))
            if sample.split:
                name = name.split("/", 1)[1]
            dest = out / "images" / (f"{sample.split}/{name}" if sample.split else name)
            if place_image(ref, dest, images):
                report.files += 1
            fields = {"id": str(n), "name": name}
            if sample.split:
                fields["subset"] = sample.split
            fields.update(width=str(ref.width), height=str(ref.height))
            head = " ".join(f"{k}={quoteattr(v)}" for k, v in fields.items())
            parts = [f"  <image {head}>\n"]
            for ann in sample.annotations:
                if ann.label not in book.classes:
                    book.classes.add(ann.label)
                if ann.track_id is not None:
                    report.drop("track id", "CVAT for images has no tracks (write cvat_video)")
                lead = {"label": ann.label, "source": _cvat.source_text(ann.source)}
                for shape in _cvat.shapes_for(ann, lead, book=book, report=report):
                    parts.append(shape.render("    "))
            parts.append("  </image>\n")
            body.write("".join(parts))
            count_state_change(report, sample, becomes=LabelState.NULL, why="CVAT lists every image as labelled")
            report.images += 1
            n += 1
        meta = ("  <meta>\n    <task>\n      <id>0</id>\n      <name>visionloop</name>\n"
                f"      <size>{n}</size>\n      <mode>annotation</mode>\n      <overlap>0</overlap>\n"
                f"{book.xml('      ')}\n    </task>\n    <dumped>{escape('visionloop')}</dumped>\n  </meta>\n")
        with open(partial, "w", encoding="utf-8") as f:
            f.write(_cvat.header(meta))
            body.seek(0)
            while chunk := body.read(1 << 20):
                f.write(chunk)
            f.write("</annotations>\n")
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        body.close()
    return report
