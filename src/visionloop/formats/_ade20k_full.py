"""The full ADE20K release (ADE20K_2021_17_01; what datumaro reads as ``ade20k2020``), read by `ade20k`.

References: the release's README and sample (https://github.com/CSAILVision/ADE20K: README "Structure",
``dataset/ADE20K_2021_17_01/images/ADE/training/urban/street/ADE_train_00016869*``, ``utils/utils_ade20k.py``)
and datumaro's reader, datumaro/plugins/data_formats/ade20k2020.py (datumaro 1.13)::

    images/ADE/training/<scene...>/<name>.jpg
    <name>_seg.png        the objects' visible pixels: class = R/10*256 + G (the objects' name_ndx), instance in B
    <name>_parts_<N>.png  the same for the parts of level N
    <name>/instance_<id>_<name>.png   each object's amodal binary mask
    <name>.json           {"annotation": {"filename", "imsize": [h, w, 3], "scene": [...], "object": [
                            {"id", "name" (WordNet), "name_ndx", "raw_name" (as annotated), "attributes",
                             "occluded": "yes"/"no"/[], "crop", "depth_ordering_rank",
                             "parts": {"part_level", "ispartof", "hasparts"}, "instance_mask",
                             "polygon": {"x": [...], "y": [...]}}]}}

Reading: every image under the folder given (not ``_seg``, ``_parts_N`` nor ``instance_*`` PNGs) whose
``<name>.json`` is beside it. Each JSON object -- parts included, ``part_level`` > 0 -- becomes ONE annotation:
its polygon when it has three points or more, else its instance mask PNG (a `Mask`); datumaro's reader gives each
object as a Mask and a Polygon and each class again as a mask of ``_seg.png``, which would count every object two
or three times. The polygons are what was annotated; the instance masks are their amodal rendering, read only for
objects without a polygon; ``_seg.png`` and ``_parts_N.png`` are the visible pixels of the same objects (the JSON's
order is back to front, so painting the annotations in order gives them back) and are not read. The class is
``name`` with the id ``name_ndx`` (the class value ``_seg.png`` holds: the release's 3,688 categories), where
datumaro uses ``raw_name``; the attributes are ``id``, ``raw_name``, ``part_level``, ``ispartof`` (the id of the
object a part belongs to), ``occluded`` and ``crop`` (booleans), ``depth_ordering_rank`` and each of the object's
``attributes`` as ``True`` (as datumaro). The JSON's WordNet hypernyms and dates are not kept. The image size is
``imsize`` (``--images none`` works); the scene list goes to metadata (``scene``: its last word, ``scene_path``:
the list joined by ``/``). The split is the nearest folder named training / validation (or train, val, test),
else none. An image without a JSON is MISSING, unless its ``_seg.png`` is there (an error: the objects are in the
JSON); a JSON that is not this structure, a ``name`` with two ``name_ndx``, or two names of one ``name_ndx`` is an
error naming the file and object (the image is quarantined); an object with neither polygon nor instance mask is
counted (`skipped`). A JSON without its image is read with ``--images none`` (its ``filename`` and ``imsize``), else refused with
that hint. JSON files are UTF-8, else read as Latin-1 (as datumaro reads them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError, VisionLoopError
from visionloop.core.geometry import Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats.base import (
    NO_IMAGES_HINT,
    Detection,
    Reader,
    check_inside,
    images_are_optional,
    is_image,
    quarantine,
    relative_name,
    skip,
)

#: image stems that are the release's masks, not images (datumaro's Ade20k2020Path.MASK_PATTERN)
MASK_STEM = re.compile(r".+_seg|.+_parts_\d+|instance_.+")
SPLITS = {"training": "train", "validation": "val", "train": "train", "val": "val", "test": "test", "testing": "test"}
_HEAD = re.compile(rb'^\s*\{\s*"annotation"\s*:')
_KEPT = ("id", "raw_name", "part_level", "ispartof", "occluded", "crop", "depth_ordering_rank")
_WALK_DIRS = 400  # detection looks no further (the release's first pair is 5 folders down, the first it walks)
_WALK_FILES = 5000


def _entries(root: Path) -> Iterator[tuple[Path, Path | None]]:
    """(image, None) for each of the release's images under `root` and (json, its image's name) for each ADE20K JSON
    without its image, sorted, masks left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        stems = set()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if is_image(p) and not MASK_STEM.fullmatch(p.stem):
                stems.add(p.stem)
                yield p, None
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() == ".json" and p.stem not in stems and _HEAD.match(_head(p)):
                yield p, p


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(256).lstrip(b"\xef\xbb\xbf")
    except OSError:
        return b""


def detect(path: Path) -> Detection:
    """A folder whose first image with a ``<name>.json`` beside it (within the first folders walked) is annotated
    by an ADE20K ``{"annotation": ...}`` JSON."""
    dirs = files = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        dirs, files = dirs + 1, files + len(filenames)
        if dirs > _WALK_DIRS or files > _WALK_FILES:
            break
        names = set(filenames)
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not is_image(p) or MASK_STEM.fullmatch(p.stem) or f"{p.stem}.json" not in names:
                continue
            head = _head(p.with_suffix(".json"))
            rel = p.with_suffix(".json").relative_to(path).as_posix()
            if not _HEAD.match(head):
                return Detection.no(f"{rel} is not an ADE20K {{\"annotation\": ...}} file")
            if f"{p.stem}_seg.png" in names:
                return Detection(0.9, f"{rel} with {p.stem}_seg.png (ADE20K full release)")
            return Detection(0.75, f"{rel} (ADE20K full release annotation, no {p.stem}_seg.png)")
    return Detection.no("no <name>.json ADE20K annotation beside an image")


def read(root: Path, *, split: str | None = None) -> Reader:
    classes = ClassMap()
    return Reader(classes, lambda: _samples(root, classes, split), source=root)


def _split(image: Path, root: Path) -> str | None:
    parts = list(image.relative_to(root).parts[:-1])[::-1] + [root.name]
    return next((SPLITS[p.lower()] for p in parts if p.lower() in SPLITS), None)


def _samples(root: Path, classes: ClassMap, forced: str | None) -> Iterator[Sample]:
    for image, orphan in _entries(root):
        if orphan is not None:
            sample = _without_image(orphan, root, classes, forced)
            if sample is not None:
                yield sample
            continue
        ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
        split = forced or _split(image, root)
        js = image.with_suffix(".json")
        if not js.is_file():
            seg = image.with_name(f"{image.stem}_seg.png")
            if seg.is_file():
                quarantine(FormatError(f"{js.name} is missing: the objects of {image.name} are in it ({seg.name} "
                                       "alone gives class numbers without names)", path=image))
                continue
            yield Sample(ref, (), split=split, state=LabelState.MISSING)
            continue
        try:
            yield _sample(ref, image, js, split, classes)
        except FormatError as e:
            quarantine(e)


def _without_image(js: Path, root: Path, classes: ClassMap, forced: str | None) -> Sample | None:
    """A JSON whose image is not there: read with `--images none` (imsize gives the size), else refused."""
    try:
        filename = _load(js).get("filename")
        if not isinstance(filename, str) or not filename or "/" in filename or "\\" in filename:
            filename = f"{js.stem}.jpg"
        image = js.with_name(filename)
        if not images_are_optional():
            raise ImageError(f"image {filename} not found beside {js.name}", path=js, hint=NO_IMAGES_HINT)
        ref = ImageRef(relative_name(image, root))
        return _sample(ref, image, js, forced or _split(image, root), classes)
    except VisionLoopError as e:
        quarantine(e)
        return None


def _load(js: Path) -> dict[str, Any]:
    data = js.read_bytes().lstrip(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON ({e.msg})", path=js, where=f"line {e.lineno}") from None
    ann = doc.get("annotation") if isinstance(doc, dict) else None
    if not isinstance(ann, dict):
        raise FormatError('no "annotation" object', path=js)
    return ann


def _sample(ref: ImageRef, image: Path, js: Path, split: str | None, classes: ClassMap) -> Sample:
    ann = _load(js)
    size = ann.get("imsize")
    if not (isinstance(size, list) and len(size) >= 2 and all(isinstance(v, int) and v > 0 for v in size[:2])):
        raise FormatError(f"imsize {size!r} is not [height, width, ...]", path=js, where="imsize")
    height, width = size[0], size[1]
    objects = ann.get("object", [])
    if not isinstance(objects, list):
        raise FormatError('"object" is not a list', path=js, where="object")
    scene = ann.get("scene")
    meta: dict[str, Any] = {}
    if isinstance(scene, list) and scene and all(isinstance(s, str) for s in scene):
        meta = {"scene": scene[-1], "scene_path": "/".join(scene)}
    anns = []
    for i, obj in enumerate(objects):
        a = _object(obj, i, js, image, width, height, classes)
        if a is not None:
            anns.append(a)
    ref = replace(ref, width=width, height=height, metadata=meta)
    return Sample(ref, tuple(anns), split=split, state=None if anns else LabelState.NULL)


def _class(name: str, index: int, classes: ClassMap, js: Path, where: str) -> None:
    known = classes.get(name)
    if known is not None and known.id != index:
        raise FormatError(f"class {name!r} has name_ndx {index} here but {known.id} in an earlier image", path=js,
                          where=where)
    other = classes.by_id(index)
    if other is not None and other.name != name:
        raise FormatError(f"name_ndx {index} is {name!r} here but {other.name!r} in an earlier image", path=js,
                          where=where)
    classes.add(name, id=index)


def _object(obj: Any, i: int, js: Path, image: Path, width: int, height: int,
            classes: ClassMap) -> Annotation | None:
    where = f"object {i}"
    if not isinstance(obj, dict):
        raise FormatError("an object is not a JSON object", path=js, where=where)
    name, index, raw = obj.get("name"), obj.get("name_ndx"), obj.get("raw_name")
    where = f"object {i} (id {obj.get('id')}, {raw or name})"
    if not isinstance(name, str) or not name or not isinstance(index, int) or isinstance(index, bool):
        raise FormatError("an object needs a name and an integer name_ndx", path=js, where=where)
    parts: dict[str, Any] = obj["parts"] if isinstance(obj.get("parts"), dict) else {}
    level = parts.get("part_level", 0)
    if not isinstance(level, int):
        raise FormatError(f"part_level {level!r} is not an integer", path=js, where=where)
    geometry: Polygon | Mask | None = _polygon(obj, js, where)
    if geometry is None:
        geometry = _instance_mask(obj, js, image, width, height, where)
        if geometry is None:
            return None
    _class(name, index, classes, js, where)
    attributes: dict[str, Any] = {"id": obj.get("id"), "raw_name": raw if isinstance(raw, str) else name,
                                  "part_level": level}
    owner = parts.get("ispartof")
    if isinstance(owner, int) and not isinstance(owner, bool) and level > 0:
        attributes["ispartof"] = owner
    attributes["occluded"] = obj.get("occluded") == "yes"
    try:
        attributes["crop"] = int(obj.get("crop") or 0) == 1
    except (TypeError, ValueError):
        raise FormatError(f"crop {obj.get('crop')!r} is not 0 or 1", path=js, where=where) from None
    if isinstance(obj.get("depth_ordering_rank"), int):
        attributes["depth_ordering_rank"] = obj["depth_ordering_rank"]
    listed = obj.get("attributes", [])
    for attr in [listed] if isinstance(listed, str) else listed if isinstance(listed, list) else []:
        if not isinstance(attr, str) or not attr.strip():
            continue
        if attr in _KEPT:
            skip("object attribute", "its name is one the reader gives (id, raw_name, part_level...)", path=js,
                 where=f"{where}: {attr}")
            continue
        attributes[attr] = True
    return Annotation(name, geometry, attributes)


def _polygon(obj: dict[str, Any], js: Path, where: str) -> Polygon | None:
    poly = obj.get("polygon")
    if not isinstance(poly, dict):
        return None
    xs, ys = poly.get("x", []), poly.get("y", [])
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise FormatError("polygon x and y are not two lists of one length", path=js, where=where)
    if len(xs) < 3:
        return None
    try:
        return Polygon((tuple(float(c) for xy in zip(xs, ys, strict=True) for c in xy),))
    except (TypeError, ValueError) as e:
        raise FormatError(f"polygon: {e}", path=js, where=where) from None


def _instance_mask(obj: dict[str, Any], js: Path, image: Path, width: int, height: int, where: str) -> Mask | None:
    rel = obj.get("instance_mask")
    if not isinstance(rel, str) or not rel:
        skip("object", "no polygon (3 points or more) and no instance_mask", path=js, where=where)
        return None
    check_inside(rel, image.parent, path=js, where=where)
    png = image.parent / rel
    if not png.is_file():
        skip("object", "no polygon (3 points or more) and its instance mask is missing", path=js,
             where=f"{where}: {rel}")
        return None
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(png) as im:
            if im.mode in ("L", "1"):  # the release's masks: grey 0 / 255
                arr = np.asarray(im) != 0
            else:  # any non-black pixel
                arr = np.asarray(im.convert("RGB")).any(axis=2)
    except (UnidentifiedImageError, OSError) as e:
        raise FormatError(f"not a readable image ({e})", path=png) from None
    if arr.shape != (height, width):
        raise FormatError(f"instance mask is {arr.shape[1]}×{arr.shape[0]} but imsize is {width}×{height}", path=png)
    return Mask.from_array(arr)
