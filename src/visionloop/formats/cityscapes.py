"""Cityscapes: gtFine polygon JSON, labelIds / instanceIds / color PNGs, leftImg8bit images.

Documentation: https://github.com/mcordts/cityscapesScripts#the-cityscapes-dataset (layout and
encodings), `cityscapesscripts/helpers/labels.py` (the label table embedded below) and
`cityscapesscripts/preparation/json2labelImg.py` / `json2instanceImg.py` (how the PNGs are drawn
from the polygons).

Layout::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      uint8, label id per pixel
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   uint16, see below
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_color.png

(`gtCoarse` instead of `gtFine` is read the same way; `imgsFine/leftImg8bit` as datumaro writes
it is found too.) Splits are the folder names; the folder `default` is a sample without split.

Pixel convention
    Polygon vertices are integer pixel indices: cityscapesScripts draws them with
    `PIL.ImageDraw.polygon`, which treats a vertex as the centre of its pixel. Canonical
    coordinates are continuous with (0, 0) the corner of the first pixel, so (as detectron2's
    Cityscapes loader does) read: x + 0.5, y + 0.5; write: x - 0.5, y - 0.5.

Reading
    Polygons JSON when it exists, in file order (later polygons are drawn over earlier ones by
    the official tools; the order is kept). `<name>group` labels of a class with instances
    (`cargroup`) become that class with `crowd=True`; objects marked `deleted` are skipped;
    other keys of an object become attributes. Without JSON, `instanceIds.png`: a value v >=
    1000 is instance v % 1000 of label v // 1000 (one Mask each); a value below 1000 is the
    label id itself: a crowd region (`crowd=True`) for a class with instances, else one
    semantic Mask per class (attributes {"semantic": True}). Without either, `labelIds.png`
    gives semantic Masks. Id 0 (`unlabeled`) is the background. Masks come in order of pixel
    value. Class ids are the label ids of the table (license plate -1); a `label_colors.txt`
    ("r g b name" a line, the id being the line number, datumaro's custom label map) replaces
    the table. An image without any gtFine file is MISSING.

Writing
    `leftImg8bit/<split>/<city>/<base>_leftImg8bit<ext>` (the image bytes, their extension
    kept), and for each labelled image the three PNGs drawn as cityscapesScripts draws them (in
    annotation order, later over earlier; instance numbers per class from 0, crowd regions and
    classes without instances as the bare label id). An image whose annotations are all vector
    geometry (polygons; boxes and rotated boxes become 4-point polygons) also gets the polygons
    JSON, one object per ring, `<name>group` for a crowd of a class with instances. An image
    with any Mask gets the PNGs only (so that reading back yields the masks, not traced
    polygons); its polygons are rasterised into them. City: the image's folder name, base: its
    file stem without `_leftImg8bit`. Classes outside the table get ids from 34 on and a
    `label_colors.txt` with the whole map is written. Keypoints and whole-image labels are
    dropped, and every conversion is counted in the report.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    refuse_filled,
    skip,
    with_size,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "cityscapes"
IMAGE_SUFFIX = "_leftImg8bit"
LABEL_COLORS = _seg.LABEL_COLORS
_SPLIT_ORDER = ("train", "val", "test")


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


#: cityscapesScripts/helpers/labels.py, verbatim in content
LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)
BY_NAME = {label.name: label for label in LABELS}
INSTANCE_CLASSES = frozenset(label.name for label in LABELS if label.has_instances)
UNLABELED = 0
_MAX_UINT16 = 65535


def table_classes() -> ClassMap:
    """The Cityscapes labels as a ClassMap: ids are the label ids, colours and categories kept."""
    return ClassMap([ClassInfo(lb.name, lb.id, color=_seg.rgb_to_hex(lb.color), supercategory=lb.category)
                     for lb in LABELS])


def single_instance_name(name: str) -> tuple[str, bool]:
    """(class, is_group): `cargroup` -> ("car", True) as cityscapesScripts' assureSingleInstanceName."""
    if name in BY_NAME or not name.endswith("group"):
        return name, False
    base = name[: -len("group")]
    if base in INSTANCE_CLASSES:
        return base, True
    return name, False


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    root: Path
    gt: Path | None  # gtFine/ (or gtCoarse/)
    gt_kind: str  # "gtFine" / "gtCoarse"
    images: Path | None  # leftImg8bit/


def _layout(path: Path) -> _Layout:
    root = Path(path)
    if root.name in ("gtFine", "gtCoarse", "leftImg8bit") and not (root / "gtFine").is_dir():
        root = root.parent
    if root.name == "imgsFine":
        root = root.parent
    gt, gt_kind = None, "gtFine"
    for name in ("gtFine", "gtCoarse"):
        if (root / name).is_dir():
            gt, gt_kind = root / name, name
            break
    images = None
    for candidate in (root / "leftImg8bit", root / "imgsFine" / "leftImg8bit"):
        if candidate.is_dir():
            images = candidate
            break
    return _Layout(root, gt, gt_kind, images)


def _dirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _split_dirs(folder: Path) -> list[Path]:
    def order(p: Path) -> tuple[int, str]:
        return (_SPLIT_ORDER.index(p.name), "") if p.name in _SPLIT_ORDER else (len(_SPLIT_ORDER), p.name)

    return sorted(_dirs(folder), key=order)


def _cities(split_dir: Path) -> list[tuple[str, Path]]:
    """(city name, folder) of a split folder: its sub-folders, and the split folder itself (city "") when files
    lie directly in it — datumaro's (and so CVAT's "Cityscapes 1.0") export has no city level."""
    cities = [(d.name, d) for d in _dirs(split_dir)]
    try:
        with os.scandir(split_dir) as entries:
            if any(e.is_file() for e in entries):
                cities.insert(0, ("", split_dir))
    except OSError:
        pass
    return cities


def _first_file(folder: Path, suffixes: tuple[str, ...]) -> str | None:
    """The name of a file ending with one of `suffixes`, two folder levels down at most (cheap)."""
    for split in _dirs(folder)[:8]:
        for _, city in _cities(split)[:3]:
            try:
                with os.scandir(city) as entries:
                    for n, entry in enumerate(entries):
                        if n > 50:
                            break
                        if entry.name.endswith(suffixes):
                            return entry.name
            except OSError:
                continue
    return None


# ---------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    layout = _layout(path)
    if layout.gt is not None:
        k = layout.gt_kind
        found = _first_file(layout.gt, (f"_{k}_polygons.json", f"_{k}_labelIds.png", f"_{k}_instanceIds.png"))
        if found:
            return Detection(0.95, f"{k}/<split>/<city>/ holds {found}")
        return Detection(0.3, f"a {k}/ folder without Cityscapes label files")
    if layout.images is not None:
        found = _first_file(layout.images, tuple(IMAGE_SUFFIX + e for e in IMAGE_EXTENSIONS))
        if found:
            return Detection(0.6, f"leftImg8bit/<split>/<city>/ holds {found} (no gtFine)")
    return Detection.no("no gtFine/ or leftImg8bit/ folder")


# ---------------------------------------------------------------- read


@dataclass
class _Names:
    """Label id <-> name for reading PNGs: the table, or label_colors.txt."""

    classes: ClassMap
    instance_names: frozenset[str]

    def name(self, value: int, path: Path) -> str:
        info = self.classes.by_id(value)
        if info is None:
            raise FormatError(f"label id {value} is not a Cityscapes label", path=path,
                              hint=f"add it to {LABEL_COLORS} (r g b name, one a line, id = line number)")
        return info.name


def read_label_colors(path: Path) -> ClassMap:
    """datumaro's `label_colors.txt` (`_seg.parse_label_colors`) as the class map: id = line index, the
    Cityscapes table's category where a name is the table's."""
    classes = ClassMap()
    for index, (name, rgb) in enumerate(_seg.parse_label_colors(path)):
        table = BY_NAME.get(name)
        classes._insert(ClassInfo(name, index, color=_seg.rgb_to_hex(rgb) if rgb else None,
                                  supercategory=table.category if table else None))
    return classes


def read(path: Path, *, split: str | None = None) -> Reader:
    """Stream a Cityscapes dataset (the root holding gtFine/ and leftImg8bit/)."""
    path = Path(path)
    if not path.is_dir():
        raise FormatError("a Cityscapes dataset is a folder with gtFine/ and leftImg8bit/", path=path)
    layout = _layout(path)
    if layout.gt is None and layout.images is None:
        raise FormatError("no gtFine/ or leftImg8bit/ folder here", path=path)
    colors = layout.root / LABEL_COLORS
    classes = read_label_colors(colors) if colors.is_file() else table_classes()
    names = _Names(classes, frozenset(n for n in INSTANCE_CLASSES if n in classes))
    return Reader(classes, lambda: _samples(layout, names, split), source=layout.root)


def _split_of(folder: str, forced: str | None) -> str | None:
    if forced:
        return forced
    return None if folder == _seg.NO_SPLIT else folder


def _gt_bases(city: Path, k: str) -> list[str]:
    """The image bases (`<city>_<seq>_<frame>`) a gt city folder has annotations for."""
    return sorted({m.group(1) for f in city.iterdir()
                   if (m := re.fullmatch(rf"(.+)_{k}_(?:polygons\.json|labelIds\.png|instanceIds\.png)", f.name))})


def _samples(layout: _Layout, names: _Names, forced: str | None) -> Iterator[Sample]:
    if layout.images is not None:
        seen: set[tuple[str, str, str]] = set()
        for split_dir in _split_dirs(layout.images):
            for city_name, city in _cities(split_dir):
                for image in sorted(city.iterdir()):
                    stem = image.stem
                    if not stem.endswith(IMAGE_SUFFIX) or image.suffix.lower() not in IMAGE_EXTENSIONS:
                        continue
                    base = stem[: -len(IMAGE_SUFFIX)]
                    seen.add((split_dir.name, city_name, base))
                    yield _sample(layout, names, split_dir.name, city_name, base, image, forced)
        if layout.gt is not None:  # ground truth whose image is not in leftImg8bit/: counted, never dropped silently
            for split_dir in _split_dirs(layout.gt):
                for city_name, city in _cities(split_dir):
                    left = [b for b in _gt_bases(city, layout.gt_kind) if (split_dir.name, city_name, b) not in seen]
                    if left:
                        skip("ground truth", "no image for it in leftImg8bit/", path=city, where=f"e.g. {left[0]}",
                             n=len(left))
        return
    assert layout.gt is not None
    k = layout.gt_kind
    for split_dir in _split_dirs(layout.gt):
        for city_name, city in _cities(split_dir):
            bases = _gt_bases(city, k)
            for base in bases:
                image = layout.root / "leftImg8bit" / split_dir.name / city_name / f"{base}{IMAGE_SUFFIX}.png"
                yield _sample(layout, names, split_dir.name, city_name, base, image, forced)


def _sample(layout: _Layout, names: _Names, split: str, city: str, base: str, image: Path,
            forced: str | None) -> Sample:
    file_name = PurePosixPath(os.path.relpath(image, layout.root)).as_posix()
    path = os.path.abspath(image) if image.is_file() else None
    ref = ImageRef(file_name, path=path, metadata={"city": city} if city else {})
    if layout.gt is None:
        return Sample(ref, split=_split_of(split, forced), state=LabelState.MISSING)
    gt = layout.gt / split / city / f"{base}_{layout.gt_kind}"
    polygons = Path(f"{gt}_polygons.json")
    instances = Path(f"{gt}_instanceIds.png")
    labels = Path(f"{gt}_labelIds.png")
    if polygons.is_file():
        width, height, anns = _read_polygons(polygons, names)
    elif instances.is_file():
        width, height, anns = _read_instance_png(instances, names)
    elif labels.is_file():
        width, height, anns = _read_label_png(labels, names)
    else:
        return Sample(ref, split=_split_of(split, forced), state=LabelState.MISSING)
    from dataclasses import replace

    ref = replace(ref, width=width, height=height)
    return Sample(ref, tuple(anns), split=_split_of(split, forced))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON: {e.msg}", path=path, where=f"line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text ({e.reason})", path=path, where=f"byte {e.start}") from None


def _read_polygons(path: Path, names: _Names) -> tuple[int | None, int | None, list[Annotation]]:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise FormatError("expected an object with an `objects` list", path=path)
    width, height = data.get("imgWidth"), data.get("imgHeight")
    for key, v in (("imgWidth", width), ("imgHeight", height)):
        if v is not None and (not isinstance(v, int) or v <= 0):
            raise FormatError(f"`{key}` must be a positive integer, got {v!r}", path=path)
    anns: list[Annotation] = []
    for i, obj in enumerate(data["objects"]):
        where = f"objects[{i}]"
        if not isinstance(obj, dict):
            raise FormatError("an object must be a JSON object", path=path, where=where)
        if obj.get("deleted"):
            log.debug("%s: %s is marked deleted; skipped", path, where)
            continue
        label = obj.get("label")
        if not isinstance(label, str) or not label:
            raise FormatError("object has no `label`", path=path, where=where)
        points = obj.get("polygon")
        if not isinstance(points, list):
            raise FormatError("object has no `polygon` list", path=path, where=where)
        try:
            flat = tuple(float(c) + 0.5 for p in points for c in _point(p))
            polygon = Polygon((flat,))
        except (TypeError, ValueError) as e:
            raise FormatError(f"bad polygon: {e}", path=path, where=f"{where} ({label})") from None
        name, group = single_instance_name(label)
        if name not in names.classes:
            names.classes.add(name)
        attributes = {k: v for k, v in obj.items() if k not in ("label", "polygon", "deleted")}
        anns.append(Annotation(name, polygon, attributes=attributes, crowd=group))
    return width, height, anns


def _point(p: Any) -> tuple[float, float]:
    if not isinstance(p, list | tuple) or len(p) != 2:
        raise ValueError(f"a vertex must be [x, y], got {p!r}")
    return (float(p[0]), float(p[1]))


def _read_instance_png(path: Path, names: _Names) -> tuple[int, int, list[Annotation]]:
    arr = _seg.load_png(path)
    if arr.ndim != 2:
        raise FormatError("instanceIds must be a one-channel (16-bit) image", path=path)
    anns = []
    for value, mask in _seg.value_masks(arr, skip=(UNLABELED,)):
        if value >= 1000:
            anns.append(Annotation(_seg.name_at(arr, value, lambda i: names.name(i, path), value // 1000), mask))
            continue
        name = _seg.name_at(arr, value, lambda i: names.name(i, path))
        if name in names.instance_names:
            anns.append(Annotation(name, mask, crowd=True))
        else:
            anns.append(Annotation(name, mask, attributes={"semantic": True}))
    return arr.shape[1], arr.shape[0], anns


def _read_label_png(path: Path, names: _Names) -> tuple[int, int, list[Annotation]]:
    arr = _seg.load_png(path)
    if arr.ndim != 2:
        raise FormatError("labelIds must be a one-channel image of label ids", path=path)
    anns = _seg.semantic_annotations(arr, lambda v: names.name(v, path), skip=(UNLABELED,))
    return arr.shape[1], arr.shape[0], anns


# ---------------------------------------------------------------- write


def _vertex(v: float) -> float | int:
    out = v - 0.5
    return int(round(out)) if abs(out - round(out)) < 1e-9 else out


def _rings(ann: Annotation, report: WriteReport) -> list[tuple[float, ...]] | None:
    """The polygon rings of a vector annotation (None for masks and what cannot be drawn)."""
    g = ann.geometry
    if isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted[f"polygon ({len(g.rings)} rings) -> {len(g.rings)} polygons"] += 1
        return list(g.rings)
    if isinstance(g, Box):
        report.converted["box -> polygon (4 corners)"] += 1
        return [(g.x0, g.y0, g.x1, g.y0, g.x1, g.y1, g.x0, g.y1)]
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon (4 corners)"] += 1
        return [tuple(c for p in g.corners() for c in p)]
    return None


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.ids: dict[str, int] = {lb.name: lb.id for lb in LABELS}
        self.colours: dict[int, tuple[int, int, int]] = {lb.id: lb.color for lb in LABELS}
        self.extra: list[str] = []
        self.source_classes = classes
        self.names = _seg.NameBook()
        if classes is not None:
            for name in classes.names:
                self._id(name)

    def _id(self, name: str) -> int:
        if name not in self.ids:
            new = max(self.ids.values()) + 1
            self.ids[name] = new
            self.extra.append(name)
            used = set(self.colours.values())
            self.colours[new] = _seg.free_colour(_seg.class_colour(self.source_classes, name), used, new)
        return self.ids[name]

    def _place(self, ref: ImageRef, split: str) -> tuple[str, str, str]:
        """(city, base, image suffix) of the written image."""
        p = PurePosixPath(ref.file_name.replace("\\", "/"))
        city = _seg.folder_name(p.parent.name) if p.parent.name else _seg.NO_SPLIT
        stem, suffix = _seg.stem_and_suffix(ref.file_name)
        if stem.endswith(IMAGE_SUFFIX):
            stem = stem[: -len(IMAGE_SUFFIX)]
        base = self.names.unique(f"{split}/{city}", stem)
        dest = self.out / "leftImg8bit" / split / city / f"{base}{IMAGE_SUFFIX}{suffix or '.png'}"
        if place_image(ref, dest, self.images):
            self.report.files += 1
        return city, base, suffix

    def add(self, sample: Sample) -> None:
        ref = sample.image
        split = _seg.folder_name(sample.split) if sample.split else _seg.NO_SPLIT
        city, base, _ = self._place(ref, split)
        self.report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        ref = with_size(ref)
        assert ref.width is not None and ref.height is not None
        anns: list[Annotation] = []
        for ann in sample.annotations:
            if isinstance(ann.geometry, (Keypoints, Label)):
                self.report.drop(kind(ann.geometry), "Cityscapes holds polygons and pixel masks only")
            else:
                anns.append(ann)
        gt = self.out / "gtFine" / split / city / f"{base}_gtFine"
        vector = not any(isinstance(a.geometry, Mask) for a in anns)
        if vector:
            shapes = self._write_json(Path(f"{gt}_polygons.json"), anns, ref.width, ref.height)
        else:
            shapes = None
        self._write_pngs(gt, anns, shapes, ref.width, ref.height)

    def _write_json(self, path: Path, anns: list[Annotation], width: int, height: int
                    ) -> list[tuple[Annotation, list[tuple[float, ...]]]]:
        objects = []
        shapes = []
        for ann in anns:
            rings = _rings(ann, self.report)
            if rings is None:  # pragma: no cover - only masks return None, and they are not here
                continue
            self._id(ann.label)
            label = ann.label
            if ann.crowd:
                if ann.label in INSTANCE_CLASSES:
                    label = f"{ann.label}group"
                else:
                    self.report.converted["crowd -> ordinary polygon (the class has no <name>group label)"] += 1
            extra = {k: v for k, v in _seg.jsonable(ann.attributes).items()
                     if k not in ("label", "polygon", "deleted", "semantic")}
            for ring in rings:
                points = [[_vertex(x), _vertex(y)] for x, y in zip(ring[0::2], ring[1::2], strict=True)]
                objects.append({"label": label, "polygon": points, **extra})
            shapes.append((ann, rings))
            self.report.annotations["polygon"] += 1
            jsonable = set(_seg.jsonable(ann.attributes))
            _seg.count_lost(self.report, ann, "Cityscapes JSON", attributes=jsonable, crowd=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"imgHeight": height, "imgWidth": width, "objects": objects}
        path.write_text(json.dumps(doc, indent=4) + "\n", encoding="utf-8")
        self.report.files += 1
        return shapes

    def _write_pngs(self, gt: Path, anns: list[Annotation],
                    shapes: list[tuple[Annotation, list[tuple[float, ...]]]] | None, width: int, height: int) -> None:
        import numpy as np

        label_arr = np.zeros((height, width), dtype=np.int32)
        inst_arr = np.zeros((height, width), dtype=np.int32)
        counts: Counter[str] = Counter()
        painter = _seg.Painter(self.report, "Cityscapes")
        items: Iterable[tuple[Annotation, list[tuple[float, ...]] | None]] = (
            shapes if shapes is not None else [(a, None) for a in anns])
        for ann, rings in items:
            class_id = self._id(ann.label)
            if class_id < 0:
                if shapes is None:
                    self.report.drop(kind(ann.geometry), f"{ann.label!r} has id {class_id}: Cityscapes does not "
                                     "draw it in label images")
                continue
            if class_id == UNLABELED or class_id > 255:
                if shapes is None:
                    why = ("'unlabeled' is the background of the label images" if class_id == UNLABELED
                           else f"label id {class_id} does not fit the 8-bit labelIds.png")
                    self.report.drop(kind(ann.geometry), why)
                continue
            pixels: _seg.Region | None
            if rings is not None:
                pixels = _seg.Region.of(_draw_rings(rings, width, height))
            elif isinstance(ann.geometry, Mask):
                pixels = painter.pixels(ann, width, height)
            else:
                found = _rings(ann, self.report)
                if found is None:
                    continue
                pixels = _seg.Region.of(_draw_rings(found, width, height))
                self.report.converted["polygon -> mask (drawn as cityscapesScripts does)"] += 1
                if pixels is None:
                    self.report.drop(kind(ann.geometry), "empty region (no pixel inside)")
            if pixels is None:
                continue
            value = self._instance_value(ann, class_id, counts, write_json=shapes is not None)
            pixels.set(label_arr, class_id)
            # with the JSON written, overlaps in the PNGs lose nothing: count them only without it
            overlap_report = self.report if shapes is None else WriteReport(FORMAT, "")
            _seg.paint(inst_arr, pixels, value, background=UNLABELED, report=overlap_report)
            if shapes is None:
                self.report.annotations["mask"] += 1
                _seg.count_lost(self.report, ann, "Cityscapes label images", crowd=True)
        _seg.save_png(label_arr.astype(np.uint8), Path(f"{gt}_labelIds.png"))
        _seg.save_png(inst_arr.astype(np.uint16), Path(f"{gt}_instanceIds.png"))
        lut = np.zeros((256, 4), dtype=np.uint8)
        lut[:, 3] = 255
        for i, rgb in self.colours.items():
            if 0 <= i < 256:
                lut[i, :3] = rgb
        _seg.save_png(lut[label_arr], Path(f"{gt}_color.png"))
        self.report.files += 3

    def _instance_value(self, ann: Annotation, class_id: int, counts: Counter[str], *, write_json: bool) -> int:
        """The instanceIds value of an annotation, as json2instanceImg numbers them."""
        table = ann.label in BY_NAME
        has_instances = ann.label in INSTANCE_CLASSES or not table
        report = self.report
        if not has_instances:
            if not write_json and not _seg.is_semantic(ann):
                report.converted["mask -> semantic mask (the Cityscapes class has no instances)"] += 1
            return class_id
        if _seg.is_semantic(ann) or ann.crowd:
            if not write_json:
                if not table and ann.crowd:
                    report.converted["crowd mask -> semantic mask (a class outside the table has no crowd)"] += 1
                elif table and _seg.is_semantic(ann):
                    report.converted["semantic mask -> crowd region (the class has instances)"] += 1
            return class_id
        k = counts[ann.label]
        counts[ann.label] += 1
        value = class_id * 1000 + k
        if k >= 1000 or value > _MAX_UINT16:
            report.converted["instance -> crowd region (its number does not fit a 16-bit instanceIds value)"] += 1
            return class_id
        return value

    def finish(self) -> WriteReport:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.extra:
            lines = []
            for name, i in sorted(self.ids.items(), key=lambda item: item[1]):
                if i < 0:
                    continue
                r, g, b = self.colours[i]
                lines.append(f"{r} {g} {b} {name}")
            (self.out / LABEL_COLORS).write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.report.files += 1
        return self.report


def _draw_rings(rings: list[tuple[float, ...]], width: int, height: int) -> np.ndarray:
    """Pixels of polygon rings drawn as cityscapesScripts does (PIL, vertex = pixel centre)."""
    import numpy as np
    from PIL import Image, ImageDraw

    im = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(im)
    for ring in rings:
        draw.polygon([(x - 0.5, y - 0.5) for x, y in zip(ring[0::2], ring[1::2], strict=True)], fill=1)
    return np.asarray(im).astype(bool)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the Cityscapes layout under `out` (which must not hold gtFine/ files already)."""
    out = Path(out)
    refuse_filled(out, "gtFine", "leftImg8bit")
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()
