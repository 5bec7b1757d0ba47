"""COCO panoptic segmentation: ``annotations/panoptic_<split>.json`` + one PNG per image.

Reference: https://cocodataset.org/#format-data ("Panoptic Segmentation") and the panopticapi
(https://github.com/cocodataset/panopticapi, ``converters/`` and ``panopticapi/utils.py``)::

    {"images": [{"id", "file_name", "width", "height"}],
     "annotations": [{"image_id", "file_name": "<stem>.png",
                      "segments_info": [{"id", "category_id", "iscrowd", "bbox": [x, y, w, h], "area"}]}],
     "categories": [{"id", "name", "supercategory", "isthing": 0 | 1, "color": [r, g, b]}]}

Each PNG (in the folder named like the JSON without ``.json``: ``annotations/panoptic_val2017/``)
stores a segment id per pixel as ``id = R + 256·G + 256²·B``; 0 is unlabelled. Boxes are COCO's
[x, y, w, h] in the same continuous pixel convention as ours.

Reading: every segment becomes one Mask annotation (things and stuff alike) of its category, with
``crowd`` from ``iscrowd``, ``attributes["isthing"]`` (bool) from its category, and the declared
``bbox`` / ``area`` kept. Category ids are kept as ClassMap ids, ``color`` as the class colour,
``supercategory`` as such. The JSON is streamed with ijson: images are spilled into a temporary SQLite
file keyed by id and annotations are taken one at a time, so memory holds one image's PNG. Samples come
in the order of ``annotations``, then the listed images that have none (MISSING). An image with a PNG
and no segment is NULL. Split = the ``<split>`` of the file name (``default`` is None).

Writing: ``annotations/panoptic_<split>.json`` (split None → ``default``), PNGs in
``annotations/panoptic_<split>/`` and images in ``images/<split>/`` (the layout datumaro reads;
the reader also finds COCO's own ``<split>/`` beside ``annotations/``). Segment ids are 1, 2, ... per image,
painted in annotation order; panoptic segments cannot overlap, so where masks overlap the later one
wins (counted as converted) and a segment left with no pixel is dropped (counted). Boxes, rotated
boxes and polygons are rasterised (counted); keypoints and whole-image labels are dropped (counted).
The written bbox and area are those of the painted segment (equal to the declared ones when nothing
overlapped). A category's ``isthing`` is 0 when its annotations say ``isthing: False``, else 1;
``color`` is the class colour, else derived from the name's position.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import (
    Box,
    Caption,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    kind,
    polygon_to_mask,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._jsonstream import UniqueNames, head, iter_items, jsonable, prefixed_json_files
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    safe_name,
    with_size,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "coco_panoptic"
PREFIX = "panoptic_"
DEFAULT_SPLIT = "default"


# ---------------------------------------------------------------- detect


def _json_files(path: Path) -> list[Path]:
    return prefixed_json_files(path, PREFIX)


def detect(path: Path) -> Detection:
    path = Path(path)
    files = _json_files(path)
    if not files:
        return Detection.no("no panoptic_<split>.json")
    f = files[0]
    data = head(f, 65536)
    named = f.name.startswith(PREFIX)
    if not data.lstrip().startswith(b"{") or not (named or b'"segments_info"' in data):
        return Detection.no(f"{f.name} is not a COCO panoptic file")
    if path.is_dir() and any((path / "annotations").glob("instances_*.json")):
        return Detection(0.5, "panoptic JSON beside COCO instances (the instances are read as COCO)")
    # above COCO's 0.95 for a JSON inside annotations/: the name (or segments_info) says panoptic
    return Detection(0.98, f"{f.name} is COCO panoptic")


# ---------------------------------------------------------------- read


def _split_of(f: Path) -> str | None:
    stem = f.stem
    split = stem[len(PREFIX):] if stem.startswith(PREFIX) else None
    return None if split in (None, "", DEFAULT_SPLIT) else split


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _json_files(path)
    if not files:
        raise FormatError("no COCO panoptic file here", path=path, hint="expected annotations/panoptic_<split>.json")
    classes = ClassMap()
    isthing: dict[str, bool] = {}
    for f in files:
        for i, c in enumerate(iter_items(f, "categories.item")):
            where = f"categories[{i}]"
            if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
                raise FormatError("a category needs an integer `id` and a `name`", path=f, where=where)
            color = c.get("color")
            hexcolor = None
            if isinstance(color, list) and len(color) == 3:
                hexcolor = "#{:02x}{:02x}{:02x}".format(*(int(v) for v in color))
            known = classes.get(c["name"])
            if known is None:
                if classes.by_id(c["id"]) is not None:
                    raise FormatError(f"category id {c['id']} is used twice", path=f, where=where)
                classes._insert(ClassInfo(c["name"], c["id"], color=hexcolor, supercategory=c.get("supercategory")))
            elif known.id != c["id"]:
                raise FormatError(f"category {c['name']!r} has id {c['id']} here but {known.id} elsewhere",
                                  path=f, where=where)
            isthing[c["name"]] = bool(c.get("isthing", 1))

    def samples() -> Iterator[Sample]:
        for f in files:
            yield from _read_file(f, split or _split_of(f), classes, isthing)

    return Reader(classes, samples, source=path)


@dataclass
class _Images:
    """Finds the image folder from the first image that exists."""

    json_path: Path
    split: str | None
    known: Path | None = None
    candidates: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        d = self.json_path.parent
        root = d.parent if d.name == "annotations" else d
        raw_split = self.json_path.stem[len(PREFIX):] if self.json_path.stem.startswith(PREFIX) else ""
        self.candidates = [root / raw_split, root / "images" / raw_split, root / "images", root, d] if raw_split \
            else [root / "images", root, d]

    def resolve(self, name: str) -> Path:
        if self.known is not None and (self.known / name).is_file():
            return self.known / name
        for c in self.candidates:
            if (c / name).is_file():
                self.known = c
                return c / name
        return (self.known or self.candidates[0]) / name


def _png_dir(json_path: Path) -> Path:
    same = json_path.with_suffix("")
    if same.is_dir():
        return same
    root = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    return root / json_path.stem if (root / json_path.stem).is_dir() else same


def _read_file(path: Path, split: str | None, classes: ClassMap,
               isthing: dict[str, bool]) -> Iterator[Sample]:
    names = {c.id: c.name for c in classes}
    pngs = _png_dir(path)
    images = _Images(path, split)
    with tempfile.TemporaryDirectory(prefix="visionloop-panoptic-") as tmp:
        db = sqlite3.connect(Path(tmp) / "images.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE img (id INTEGER PRIMARY KEY, seq INTEGER, data BLOB, seen INTEGER DEFAULT 0)")
        batch: list[tuple[Any, ...]] = []
        for i, im in enumerate(iter_items(path, "images.item")):
            if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
                raise FormatError("an image needs an integer `id` and a `file_name`", path=path, where=f"images[{i}]")
            batch.append((im["id"], i, bytes(memoryview(orjson.dumps(im)))))  # exact size: no 4 KB slack
            if len(batch) >= 20000:
                _insert(db, batch, path)
                batch.clear()
        _insert(db, batch, path)
        for i, ann in enumerate(iter_items(path, "annotations.item")):
            where = f"annotations[{i}]"
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise FormatError("an annotation needs `image_id`", path=path, where=where)
            row = db.execute("SELECT data, seen FROM img WHERE id = ?", (ann["image_id"],)).fetchone()
            if row is None:
                raise FormatError(f"refers to image_id {ann['image_id']}, which is not in `images`", path=path,
                                  where=where)
            if row[1]:
                raise FormatError(f"a second annotation for image_id {ann['image_id']}", path=path, where=where)
            db.execute("UPDATE img SET seen = 1 WHERE id = ?", (ann["image_id"],))
            image = orjson.loads(row[0])
            anns = _segments(ann, image, pngs, names, isthing, path, where)
            yield Sample(_ref(image, images), tuple(anns), split=split,
                         state=LabelState.ANNOTATED if anns else LabelState.NULL)
        for (data,) in db.execute("SELECT data FROM img WHERE seen = 0 ORDER BY seq"):
            yield Sample(_ref(orjson.loads(data), images), (), split=split, state=LabelState.MISSING)
        db.close()


def _insert(db: sqlite3.Connection, rows: list[tuple[Any, ...]], path: Path) -> None:
    try:
        db.executemany("INSERT INTO img (id, seq, data) VALUES (?, ?, ?)", rows)
    except sqlite3.IntegrityError:
        seen: set[int] = set()
        for ident, seq, _ in rows:
            if ident in seen or db.execute("SELECT 1 FROM img WHERE id = ?", (ident,)).fetchone():
                raise FormatError(f"duplicate image id {ident}", path=path, where=f"images[{seq}]") from None
            seen.add(ident)
        raise


def _ref(image: dict[str, Any], images: _Images) -> ImageRef:
    w, h = image.get("width"), image.get("height")
    meta = {k: v for k, v in image.items() if k not in ("id", "file_name", "width", "height")}
    meta["coco_id"] = image["id"]
    return ImageRef(image["file_name"], width=int(w) if w else None, height=int(h) if h else None,
                    path=str(images.resolve(image["file_name"]).absolute()), metadata=meta)


def _load_ids(png: Path) -> np.ndarray:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(png) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint32)
    except FileNotFoundError:
        raise ImageError("panoptic PNG not found", path=png) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"not a readable PNG ({e})", path=png) from None
    return arr[..., 0] + 256 * arr[..., 1] + 65536 * arr[..., 2]


def _segments(ann: dict[str, Any], image: dict[str, Any], pngs: Path, names: dict[int, str],
              isthing: dict[str, bool], path: Path, where: str) -> list[Annotation]:
    segments = ann.get("segments_info") or []
    if not isinstance(segments, list):
        raise FormatError("`segments_info` must be a list", path=path, where=where)
    if not segments:
        return []
    png_name = ann.get("file_name") or PurePosixPath(image["file_name"]).with_suffix(".png").as_posix()
    ids = _load_ids(pngs / png_name)
    h, w = ids.shape
    if (image.get("width"), image.get("height")) not in ((None, None), (w, h)):
        raise FormatError(f"the PNG {png_name} is {w}×{h} but the image is {image.get('width')}×{image.get('height')}",
                          path=path, where=where)
    out = []
    for j, seg in enumerate(segments):
        swhere = f"{where}.segments_info[{j}]"
        if not isinstance(seg, dict) or not isinstance(seg.get("id"), int) or "category_id" not in seg:
            raise FormatError("a segment needs an integer `id` and a `category_id`", path=path, where=swhere)
        if seg["category_id"] not in names:
            raise FormatError(f"unknown category_id {seg['category_id']!r}", path=path, where=swhere)
        label = names[seg["category_id"]]
        pixels = ids == seg["id"]
        if not pixels.any():
            raise FormatError(f"segment id {seg['id']} has no pixel in {png_name}", path=path, where=swhere)
        try:
            bbox = seg.get("bbox")
            declared = Box.from_xywh(*(float(v) for v in bbox)) if bbox else None
            area = float(seg["area"]) if seg.get("area") is not None else None
        except (TypeError, ValueError) as e:
            raise FormatError(f"bad bbox or area: {e}", path=path, where=swhere) from None
        out.append(Annotation(label, Mask.from_array(pixels), attributes={"isthing": isthing.get(label, True)},
                              crowd=bool(seg.get("iscrowd", 0)), bbox=declared, area=area))
    return out


# ---------------------------------------------------------------- write


class _SplitFile:
    def __init__(self, out: Path, split: str) -> None:
        self.split = split
        self.final = out / "annotations" / f"{PREFIX}{split}.json"
        self.png_dir = out / "annotations" / f"{PREFIX}{split}"
        self.image_dir = out / "images" / split
        self.png_dir.mkdir(parents=True, exist_ok=True)
        self.images: IO[bytes] = tempfile.TemporaryFile(dir=self.final.parent)
        self.anns: IO[bytes] = tempfile.TemporaryFile(dir=self.final.parent)
        self.count = 0
        self.names = UniqueNames()
        self.stems: set[str] = set()
        self.ids: set[int] = set()

    def add(self, image: dict[str, Any], ann: dict[str, Any]) -> None:
        sep = b"," if self.count else b""
        self.images.write(sep + orjson.dumps(image))
        self.anns.write(sep + orjson.dumps(ann))
        self.count += 1

    def close(self, categories: list[dict[str, Any]]) -> None:
        partial = self.final.with_name(self.final.name + ".partial")
        with open(partial, "wb") as f:
            f.write(b'{"info":{"description":"written by visionloop"},"licenses":[],"images":[')
            for part, key in ((self.images, b'],"annotations":['), (self.anns, b'],"categories":')):
                part.seek(0)
                while chunk := part.read(1 << 20):
                    f.write(chunk)
                f.write(key)
            f.write(orjson.dumps(categories) + b"}")
        self.abort()
        partial.replace(self.final)

    def abort(self) -> None:
        self.images.close()
        self.anns.close()


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    cmap = ClassMap(list(classes)) if classes is not None else ClassMap()
    report = WriteReport(FORMAT, str(out))
    stuff: set[str] = set()
    files: dict[str, _SplitFile] = {}
    next_image_id = 1
    try:
        for sample in samples:
            split = sample.split or DEFAULT_SPLIT
            sf = files.get(split)
            if sf is None:
                sf = files[split] = _SplitFile(out, split)
            ref = with_size(sample.image)
            assert ref.width is not None and ref.height is not None
            name = sf.names.claim(PurePosixPath(safe_name(ref.file_name)).name)
            while (stem := PurePosixPath(name).stem) in sf.stems:
                name = sf.names.claim(name)
            sf.stems.add(stem)
            if place_image(ref, sf.image_dir / name, images):
                report.files += 1
            image_id = ref.metadata.get("coco_id")
            if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id in sf.ids:
                while next_image_id in sf.ids:
                    next_image_id += 1
                image_id = next_image_id
            sf.ids.add(image_id)
            entry = {"id": image_id, "file_name": name, "width": ref.width, "height": ref.height}
            entry.update(jsonable({k: v for k, v in ref.metadata.items() if k != "coco_id" and k not in entry}))
            for ann in sample.annotations:
                if ann.label not in cmap:
                    cmap.add(ann.label, id=max((c.id for c in cmap), default=0) + 1)
                if ann.attributes.get("isthing") is False:
                    stuff.add(ann.label)
            png_name = f"{stem}.png"
            segments = _paint(sample, ref.width, ref.height, cmap, sf.png_dir / png_name, report)
            if sample.state is LabelState.MISSING:
                report.converted["missing -> null (every image gets a PNG)"] += 1
            sf.add(entry, {"image_id": image_id, "file_name": png_name, "segments_info": segments})
            report.images += 1
        if not files:
            files[DEFAULT_SPLIT] = _SplitFile(out, DEFAULT_SPLIT)
        categories = [_category(c, i, c.name not in stuff) for i, c in enumerate(cmap)]
        for sf in files.values():
            sf.close(categories)
            report.files += 1
    except BaseException:
        for sf in files.values():
            sf.abort()
        raise
    return report


def _category(c: ClassInfo, index: int, isthing: bool) -> dict[str, Any]:
    from visionloop.core.classes import default_color

    color = c.color or default_color(index)
    return {"id": c.id, "name": c.name, "supercategory": c.supercategory or "none", "isthing": int(isthing),
            "color": [int(color[k:k + 2], 16) for k in (1, 3, 5)]}


def _paint(sample: Sample, width: int, height: int, cmap: ClassMap, png: Path,
           report: WriteReport) -> list[dict[str, Any]]:
    import numpy as np
    from PIL import Image

    ids = np.zeros((height, width), dtype=np.uint32)
    painted: list[tuple[int, Annotation]] = []
    for ann in sample.annotations:
        g = ann.geometry
        if isinstance(g, Keypoints | Label | Polyline | Caption):  # (captions and lines are left out before: base.UNHELD)
            report.drop(kind(g), "COCO panoptic holds segments only")
            continue
        if isinstance(g, Mask):
            if (g.width, g.height) != (width, height):
                report.drop("mask", f"mask size {g.width}×{g.height} differs from the image's {width}×{height}")
                continue
            mask = g
        else:
            if isinstance(g, Box):
                poly = Polygon(((g.x0, g.y0, g.x1, g.y0, g.x1, g.y1, g.x0, g.y1),))
            elif isinstance(g, RotatedBox):
                poly = Polygon.from_points(list(g.corners()))
            else:
                poly = g
            mask = polygon_to_mask(poly, height, width)
            report.converted[f"{kind(g)} -> mask (rasterised)"] += 1
        pixels = mask.to_array().astype(bool)
        seg_id = len(painted) + 1
        if (ids[pixels] != 0).any():
            report.converted["overlapping masks -> the later one wins (panoptic segments do not overlap)"] += 1
        ids[pixels] = seg_id
        painted.append((seg_id, ann))
    segments = []
    for seg_id, ann in painted:
        pixels = ids == seg_id
        if not pixels.any():
            report.drop(kind(ann.geometry), "covered entirely by later segments")
            continue
        final = Mask.from_array(pixels)
        box = final.bounds()
        segments.append({"id": seg_id, "category_id": cmap[ann.label].id, "iscrowd": int(ann.crowd),
                         "bbox": [int(v) for v in box.xywh()], "area": int(final.area)})
        report.annotations["mask"] += 1
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(png)
    report.files += 1
    return segments
