"""COCO JSON: detection boxes, polygons (multi-part), RLE masks, crowd, keypoints.

Layouts read:
- one JSON file (`instances_val2017.json`, `_annotations.coco.json`, anything with
  `images`/`annotations`/`categories`);
- a folder with `annotations/instances_<split>.json` and `<split>/` image folders (COCO);
- a folder with `<split>/_annotations.coco.json` per split (Roboflow).

Streaming: the JSON is never loaded whole (`_jsonwalk` decodes one element at a
time). `read()` scans the file once for categories, images (kept compactly) and
whether each image's annotations are contiguous, as nearly every tool writes
them; iterating then streams the annotations in one more pass. A file whose
annotations are not grouped by image is spilled into a temporary SQLite file
keyed by image id, so memory stays flat either way. Samples come out in the
order of the `images` list (when groups are in another order: in group order,
then the images without annotations).

Conventions: `bbox` is [x, y, w, h] in the same continuous pixel space as ours.
Category ids are kept as the file has them (sparse ids stay sparse). An image
listed with no annotations is NULL (labelled empty). A keypoint annotation
becomes a `Keypoints` geometry with its declared bbox; its segmentation, if it
has one, becomes a second annotation of the same class. Written area, when the
sample does not carry a declared one, is the geometry's area (box w·h,
polygon shoelace area, mask pixel count).

Writing: `out/_annotations.coco.json` with images beside it, or one such
folder per split (`out/train/…`, the Roboflow layout). Annotation ids are
unique, 1..N per file. Masks are written as compressed RLE strings.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Geometry, Keypoints, Label, Mask, Polygon, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._jsonwalk import top_level
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

ROBOFLOW_NAME = "_annotations.coco.json"
_STANDARD_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_STANDARD_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation",
                      "keypoints", "num_keypoints", "attributes", "score"}


# -- detect -------------------------------------------------------------------------------
def _split_of(file: Path) -> str | None:
    """The split a file's name says: `instances_val2017.json` → val2017, `person_keypoints_train.json` → train;
    `_annotations.coco.json` in a split folder → that folder (the Roboflow layout)."""
    stem = file.stem
    for prefix in ("instances_", "person_keypoints_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    if file.name == ROBOFLOW_NAME and file.parent.name.lower() in _SPLIT_FOLDERS:
        return file.parent.name
    return None


_SPLIT_FOLDERS = {"train", "valid", "val", "test", "training", "validation", "testing"}


def _json_files(path: Path) -> list[tuple[Path, str | None]]:
    """(annotation file, split) pairs that a path holds, without reading them."""
    if path.is_file():
        return [(path, _split_of(path))] if path.suffix.lower() == ".json" else []
    if not path.is_dir():
        return []
    found: list[tuple[Path, str | None]] = []
    if (path / ROBOFLOW_NAME).is_file():
        found.append((path / ROBOFLOW_NAME, None))
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        if (sub / ROBOFLOW_NAME).is_file():
            found.append((sub / ROBOFLOW_NAME, sub.name))
    ann_dir = path / "annotations"
    if ann_dir.is_dir():
        for f in sorted(ann_dir.glob("instances_*.json")) + sorted(ann_dir.glob("person_keypoints_*.json")):
            found.append((f, _split_of(f)))
    if not found:
        jsons = sorted(path.glob("*.json"))
        if len(jsons) == 1:
            found.append((jsons[0], None))
    return found


def _looks_like_coco(head: bytes) -> bool:
    return b'"images"' in head or b'"annotations"' in head or b'"categories"' in head


def detect(path: Path) -> Detection:
    files = _json_files(Path(path))
    if not files:
        return Detection.no("no COCO JSON (no *.json file, _annotations.coco.json or annotations/instances_*.json)")
    with open(files[0][0], "rb") as f:
        head = f.read(4096)
    if not head.lstrip().startswith(b"{") or not _looks_like_coco(head):
        return Detection(0.05, f"{files[0][0].name} is JSON without COCO keys at its start")
    if files[0][0].name == ROBOFLOW_NAME or files[0][0].parent.name == "annotations":
        return Detection(0.95, f"{files[0][0].name} in the COCO/Roboflow layout")
    return Detection(0.8, f"{files[0][0].name} has COCO keys")


# -- read ---------------------------------------------------------------------------------
def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _json_files(path)
    if not files:
        raise FormatError("no COCO annotation file here", path=path,
                          hint="expected a .json file, _annotations.coco.json or annotations/instances_*.json")
    classes = ClassMap()
    indexes = []
    for f, file_split in files:
        index = _scan(f)
        for cat in index.categories:
            info = classes.get(cat.name)
            if info is None:
                other = classes.by_id(cat.id)
                if other is not None:
                    raise FormatError(f"category id {cat.id} is {cat.name!r} here but {other.name!r} "
                                      "in another split's file", path=f)
                classes._insert(cat)
            elif info.id != cat.id:
                raise FormatError(f"category {cat.name!r} has id {cat.id} here but {info.id} in another split's file",
                                  path=f)
        indexes.append((index, split or file_split))

    def samples() -> Iterator[Sample]:
        for index, file_split in indexes:
            yield from _read_file(index, file_split)


    return Reader(classes, samples, source=path)


class _Index:
    """What one scan of a COCO file learns, kept in a temporary SQLite file, not in memory.

    `img`: every image entry in file order; `grp`: the image id of each run of annotations in file order.
    From these: whether each image's annotations are contiguous (`grouped`) and whether the runs follow
    the order of `images` (`in_image_order`). Memory stays flat whatever the number of images.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.categories: list[ClassInfo] = []
        self.annotations = 0
        self.grouped = True
        self.in_image_order = True
        self._tmp = tempfile.TemporaryDirectory(prefix="visionloop-coco-")
        self.db = sqlite3.connect(Path(self._tmp.name) / "index.db")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE img (seq INTEGER PRIMARY KEY, id UNIQUE, data BLOB)")
        self.db.execute("CREATE TABLE grp (seq INTEGER PRIMARY KEY, image_id, ann_pos INTEGER, ann_id)")

    def image(self, image_id: Any) -> dict[str, Any]:
        row = self.db.execute("SELECT data FROM img WHERE id = ?", (image_id,)).fetchone()
        return orjson.loads(row[0])  # type: ignore[no-any-return]

    def images(self, *, unannotated: bool = False) -> Iterator[tuple[Any, dict[str, Any]]]:
        """(id, entry) in file order; only those without annotations when asked."""
        q = "SELECT id, data FROM img" + (" WHERE id NOT IN (SELECT image_id FROM grp)" if unannotated else "")
        for image_id, data in _stream(self.db, q + " ORDER BY seq"):
            yield image_id, orjson.loads(data)


def _exact(data: bytes) -> bytes:
    """An exact-size copy: each orjson result keeps ~4 KB of allocator slack while it is alive."""
    return bytes(memoryview(data))


def _stream(db: sqlite3.Connection, query: str, chunk: int = 2000) -> Iterator[tuple[Any, ...]]:
    """Rows of a query fetched `chunk` at a time on their own cursor (other queries may run meanwhile)."""
    cur = db.cursor()
    cur.execute(query)
    while rows := cur.fetchmany(chunk):
        yield from rows


def _scan(path: Path) -> _Index:
    index = _Index(path)
    db = index.db
    first_use: dict[Any, tuple[int, Any]] = {}  # category id -> (position, annotation id) of its first use
    last: Any = None
    buf: list[tuple[Any, ...]] = []
    for key, value in top_level(path, stream={"images", "annotations"}):
        if key == "categories":
            index.categories = _categories(value, path)
        elif key == "images":
            for i, item in enumerate(value):
                _check_image(item, path, i)
                buf.append((i, item["id"], _exact(orjson.dumps(item))))
                if len(buf) >= 2000:
                    _insert_images(db, buf, path)
            _insert_images(db, buf, path)
        elif key == "annotations":
            groups: list[tuple[Any, ...]] = []
            for i, item in enumerate(value):
                if not isinstance(item, dict) or "image_id" not in item or "category_id" not in item:
                    where = f"annotations[{i}]" + (f" (id {item['id']})" if isinstance(item, dict) and "id" in item else "")
                    raise FormatError("annotation needs `image_id` and `category_id`", path=path, where=where)
                image_id = item["image_id"]
                if image_id != last:
                    groups.append((len(groups), image_id, i, item.get("id")))
                    last = image_id
                    if len(groups) >= 20000:
                        db.executemany("INSERT INTO grp (image_id, ann_pos, ann_id) VALUES (?, ?, ?)",
                                       [g[1:] for g in groups])
                        groups.clear()
                if item["category_id"] not in first_use:
                    first_use[item["category_id"]] = (i, item.get("id"))
                index.annotations += 1
            db.executemany("INSERT INTO grp (image_id, ann_pos, ann_id) VALUES (?, ?, ?)", [g[1:] for g in groups])
    ids = {c.id for c in index.categories}
    for category_id, (i, ann_id) in first_use.items():
        if category_id not in ids:
            where = f"annotations[{i}]" + (f" (id {ann_id})" if ann_id is not None else "")
            raise FormatError(f"unknown category_id {category_id!r}", path=path, where=where,
                              hint=f"known ids: {sorted(ids)[:20]}")
    orphan = db.execute("SELECT g.ann_pos, g.image_id, g.ann_id FROM grp g LEFT JOIN img i ON i.id = g.image_id "
                        "WHERE i.id IS NULL ORDER BY g.seq LIMIT 1").fetchone()
    if orphan:
        where = f"annotations[{orphan[0]}]" + (f" (id {orphan[2]})" if orphan[2] is not None else "")
        raise FormatError(f"refers to image_id {orphan[1]}, which is not in `images`", path=path, where=where)
    db.execute("CREATE INDEX grp_image ON grp (image_id)")
    runs, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT image_id) FROM grp").fetchone()
    index.grouped = runs == distinct
    # do the runs follow the order of `images`? (each run's image comes later in `images` than the last one's)
    backwards = db.execute(
        "SELECT COUNT(*) FROM (SELECT i.seq - LAG(i.seq) OVER (ORDER BY g.seq) AS step "
        "FROM grp g JOIN img i ON i.id = g.image_id) WHERE step < 0").fetchone()[0]
    index.in_image_order = backwards == 0
    return index


def _insert_images(db: sqlite3.Connection, buf: list[tuple[Any, ...]], path: Path) -> None:
    try:
        db.executemany("INSERT INTO img (seq, id, data) VALUES (?, ?, ?)", buf)
    except sqlite3.IntegrityError:
        for seq, ident, _ in buf:
            if db.execute("SELECT 1 FROM img WHERE id = ?", (ident,)).fetchone() or \
                    sum(1 for _, other, _ in buf if other == ident) > 1:
                raise FormatError(f"duplicate image id {ident}", path=path, where=f"images[{seq}]") from None
        raise
    buf.clear()


def _categories(value: Any, path: Path) -> list[ClassInfo]:
    if not isinstance(value, list):
        raise FormatError("`categories` must be an array", path=path)
    out = []
    for i, c in enumerate(value):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise FormatError("a category needs `id` and `name`", path=path, where=f"categories[{i}]")
        try:
            out.append(ClassInfo(
                name=str(c["name"]), id=int(c["id"]), supercategory=c.get("supercategory"),
                keypoints=tuple(c.get("keypoints") or ()),
                skeleton=tuple((int(p[0]), int(p[1])) for p in c.get("skeleton") or ()),
            ))
        except (TypeError, ValueError, IndexError) as e:
            raise FormatError(f"bad category: {e}", path=path, where=f"categories[{i}]") from None
    return out


class _ImageRoot:
    """Finds where a COCO file's images live, learning the folder from the first image found."""

    def __init__(self, json_path: Path, split: str | None) -> None:
        d = json_path.parent
        candidates = [d, d / "images", d.parent / "images", d.parent]
        if split:
            candidates[2:2] = [d.parent / split, d.parent / "images" / split]
        self.candidates = [str(c) for c in candidates]
        self.known: str | None = None
        self.misses = 0

    def resolve(self, file_name: str) -> str:
        if self.known is not None:
            return os.path.join(self.known, file_name)
        for root in self.candidates:
            p = os.path.join(root, file_name)
            if os.path.isfile(p):
                self.known = root
                return p
        self.misses += 1
        if self.misses >= 50:  # annotations without images (an export with images=none): stop looking
            self.known = self.candidates[0]
        return os.path.join(self.candidates[0], file_name)


def _read_file(index: _Index, split: str | None) -> Iterator[Sample]:
    names: dict[int, str] = {c.id: c.name for c in index.categories}
    roots = _ImageRoot(index.path, split)  # a file's split also says where its images are: images/<split>/
    split = None if split == "default" else split  # datumaro's and CVAT's name for "no split"
    path = index.path
    if not index.grouped:
        yield from _read_spilled(index, split, names, roots)
        return
    ordered = index.images() if index.in_image_order else None
    for key, value in top_level(path, stream={"images", "annotations"}):
        if key != "annotations":
            continue
        current: Any = None
        anns: list[Annotation] = []
        for i, item in enumerate(value):
            image_id = item["image_id"]
            if image_id != current:
                if current is not None:
                    yield from _flush_group(index, ordered, current, anns, split, roots)
                current, anns = image_id, []
            anns.extend(_annotations(item, names, path, i))
        if current is not None:
            yield from _flush_group(index, ordered, current, anns, split, roots)
    # the images without annotations that were not yielded yet
    rest = ordered if ordered is not None else index.images(unannotated=True)
    for _, entry in rest:
        yield _sample(entry, [], split, roots)


def _flush_group(index: _Index, ordered: Iterator[tuple[Any, dict[str, Any]]] | None, image_id: Any,
                 anns: list[Annotation], split: str | None, roots: _ImageRoot) -> Iterator[Sample]:
    if ordered is None:  # groups in another order than `images`: look the image up
        yield _sample(index.image(image_id), anns, split, roots)
        return
    for other, entry in ordered:  # images without annotations before this one come out first
        if other == image_id:
            yield _sample(entry, anns, split, roots)
            return
        yield _sample(entry, [], split, roots)


def _read_spilled(index: _Index, split: str | None, names: dict[int, str], roots: _ImageRoot) -> Iterator[Sample]:
    """Annotations not grouped by image: spill them into the index's SQLite file, keyed by image id."""
    path = index.path
    db = index.db
    db.execute("CREATE TABLE IF NOT EXISTS ann (seq INTEGER PRIMARY KEY, image_id, data BLOB)")
    db.execute("DELETE FROM ann")
    for key, value in top_level(path, stream={"images", "annotations"}):
        if key != "annotations":
            continue
        buf: list[tuple[int, Any, bytes]] = []
        for i, item in enumerate(value):
            buf.append((i, item["image_id"], _exact(orjson.dumps(item))))
            if len(buf) >= 2000:
                db.executemany("INSERT INTO ann VALUES (?, ?, ?)", buf)
                buf.clear()
        db.executemany("INSERT INTO ann VALUES (?, ?, ?)", buf)
    db.execute("CREATE INDEX IF NOT EXISTS ann_image ON ann (image_id, seq)")
    for image_id, entry in index.images():
        anns: list[Annotation] = []
        for seq, data in db.execute("SELECT seq, data FROM ann WHERE image_id = ? ORDER BY seq", (image_id,)):
            anns.extend(_annotations(orjson.loads(data), names, path, seq))
        yield _sample(entry, anns, split, roots)


def _check_image(item: Any, path: Path, i: int) -> None:
    where = f"images[{i}]"
    if not isinstance(item, dict):
        raise FormatError("expected an object", path=path, where=where)
    for k in ("id", "file_name"):
        if k not in item:
            raise FormatError(f"image entry has no `{k}`", path=path, where=where)
    if not isinstance(item["id"], int | float) or not isinstance(item["file_name"], str) or not item["file_name"]:
        raise FormatError("image `id` must be a number and `file_name` a non-empty string", path=path, where=where)
    for k in ("width", "height"):
        v = item.get(k)
        if v is not None and (not isinstance(v, int | float) or v < 0):
            raise FormatError(f"image `{k}` must be a non-negative number, got {v!r}", path=path, where=where)


def _sample(image: dict[str, Any], anns: list[Annotation], split: str | None, roots: _ImageRoot) -> Sample:
    w, h = image.get("width"), image.get("height")
    file_name = image["file_name"]
    meta = {k: v for k, v in image.items() if k not in _STANDARD_IMAGE_KEYS}
    meta["coco_id"] = image["id"]
    ref = ImageRef(
        file_name=file_name,
        width=int(w) if w else None,
        height=int(h) if h else None,
        path=roots.resolve(file_name),
        timestamp=image.get("date_captured") or None,
        metadata=meta,
    )
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _annotations(item: dict[str, Any], names: dict[int, str], path: Path, seq: int) -> list[Annotation]:
    label = names[item["category_id"]]
    bbox = item.get("bbox")
    if not item.get("segmentation") and not item.get("keypoints") and bbox is not None and len(bbox) == 4 \
            and not item.get("attributes") and item.get("score") is None:
        # the common case, a plain box: no closures, no conversions
        try:
            x, y, w, h = bbox
            box = Box(x, y, x + w, y + h)
            area = item.get("area")
            return [Annotation(label, box, crowd=bool(item.get("iscrowd", 0)),
                               area=None if area is None or area == w * h else float(area))]
        except (TypeError, ValueError) as e:
            raise _bad(item, path, seq, e) from None
    try:
        bbox = item.get("bbox")
        if bbox and len(bbox) != 4:
            raise ValueError(f"bbox needs 4 numbers [x, y, w, h], got {len(bbox)}")
        declared = Box.from_xywh(*(float(v) for v in bbox)) if bbox else None
        area = float(item["area"]) if item.get("area") is not None else None
        score = float(item["score"]) if item.get("score") is not None else None

        def make(geometry: Geometry, bbox: Box | None, area: float | None = area) -> Annotation:
            return Annotation(label, geometry, attributes=item.get("attributes") or {},
                              crowd=bool(item.get("iscrowd", 0)), area=area, confidence=score, bbox=bbox)

        seg = item.get("segmentation")
        geometry = _segmentation(seg) if seg else None
        kps = item.get("keypoints")
        if kps:
            out = [make(Keypoints(tuple(float(v) for v in kps)), declared)]
            if geometry is not None:
                out.append(make(geometry, declared))
            return out
        if geometry is None:
            if declared is None:
                raise ValueError("annotation has neither bbox nor segmentation nor keypoints")
            return [make(declared, None, area if area != declared.area else None)]
        return [make(geometry, declared)]
    except (TypeError, ValueError, KeyError) as e:
        raise _bad(item, path, seq, e) from None


def _bad(item: dict[str, Any], path: Path, seq: int, e: Exception) -> FormatError:
    where = f"annotations[{seq}]" + (f" (id {item['id']})" if "id" in item else "")
    return FormatError(f"bad annotation: {e}", path=path, where=where)


def _segmentation(seg: Any) -> Polygon | Mask:
    if isinstance(seg, list):
        rings = tuple(tuple(float(v) for v in ring) for ring in seg if ring)
        return Polygon(rings)
    if isinstance(seg, dict):
        h, w = (int(v) for v in seg["size"])
        counts = seg["counts"]
        if isinstance(counts, list):
            return Mask.from_uncompressed([int(c) for c in counts], h, w)
        if isinstance(counts, str):
            return Mask(counts.encode("ascii"), h, w)
    raise ValueError(f"segmentation must be a list of polygons or an RLE object, got {type(seg).__name__}")


# -- write --------------------------------------------------------------------------------
class _SplitWriter:
    """One `_annotations.coco.json`: images streamed into it, annotations via a temp file."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.final = folder / ROBOFLOW_NAME
        self.partial = folder / (ROBOFLOW_NAME + ".partial")
        self.main: IO[bytes] = open(self.partial, "wb")
        self.anns: IO[bytes] = tempfile.TemporaryFile(dir=folder)
        self.main.write(b'{"info":{"description":"written by visionloop"},"licenses":[],"images":[')
        self.n_images = 0
        self.n_anns = 0
        self.names: set[str] = set()

    def unique_name(self, name: str) -> str:
        if name not in self.names:
            self.names.add(name)
            return name
        stem, dot, ext = name.rpartition(".")
        k = 1
        while f"{stem}_{k}{dot}{ext}" in self.names:
            k += 1
        new = f"{stem}_{k}{dot}{ext}"
        self.names.add(new)
        return new

    def image(self, entry: dict[str, Any]) -> int:
        self.n_images += 1
        entry["id"] = self.n_images
        self.main.write((b"," if self.n_images > 1 else b"") + orjson.dumps(entry))
        return self.n_images

    def annotation(self, entry: dict[str, Any]) -> None:
        self.n_anns += 1
        entry["id"] = self.n_anns
        self.anns.write((b"," if self.n_anns > 1 else b"") + orjson.dumps(entry))

    def close(self, categories: list[dict[str, Any]]) -> None:
        self.main.write(b'],"annotations":[')
        self.anns.seek(0)
        while chunk := self.anns.read(1 << 20):
            self.main.write(chunk)
        self.anns.close()
        self.main.write(b'],"categories":' + orjson.dumps(categories) + b"}")
        self.main.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.anns.close()
        self.main.close()
        self.partial.unlink(missing_ok=True)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    classes = ClassMap(list(classes)) if classes is not None else ClassMap()
    next_id = max((c.id for c in classes), default=0) + 1
    report = WriteReport("coco", str(out))
    writers: dict[str | None, _SplitWriter] = {}
    try:
        for sample in samples:
            sw = writers.get(sample.split)
            if sw is None:
                sw = writers[sample.split] = _SplitWriter(out / sample.split if sample.split else out)
            ref = with_size(sample.image)
            name = sw.unique_name(safe_name(ref.file_name))
            if place_image(ref, sw.folder / name, images):
                report.files += 1
            entry: dict[str, Any] = {"file_name": name, "width": ref.width, "height": ref.height}
            if ref.timestamp:
                entry["date_captured"] = ref.timestamp
            extra = {k: v for k, v in ref.metadata.items() if k not in ("coco_id",) and k not in entry}
            entry.update(_jsonable(extra))
            image_id = sw.image(entry)
            report.images += 1
            for ann in sample.annotations:
                if ann.label not in classes:
                    classes.add(ann.label, id=next_id)
                    next_id = max(next_id, classes[ann.label].id) + 1
                coco = _annotation_entry(ann, ref, report)
                if coco is None:
                    continue
                coco.update(image_id=image_id, category_id=classes[ann.label].id)
                sw.annotation(coco)
        categories = [_category_entry(c) for c in classes]
        if not writers:
            writers[None] = _SplitWriter(out)
        for sw in writers.values():
            sw.close(categories)
    except BaseException:
        for sw in writers.values():
            sw.abort()
        raise
    return report


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    try:
        orjson.dumps(d)
        return d
    except TypeError:
        return {k: v for k, v in d.items() if isinstance(v, str | int | float | bool | type(None) | list | dict)}


def _category_entry(c: ClassInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": c.id, "name": c.name, "supercategory": c.supercategory or "none"}
    if c.keypoints:
        entry["keypoints"] = list(c.keypoints)
        entry["skeleton"] = [list(p) for p in c.skeleton]
    return entry


def _annotation_entry(ann: Annotation, ref: ImageRef, report: WriteReport) -> dict[str, Any] | None:
    g = ann.geometry
    entry: dict[str, Any] = {}
    if isinstance(g, Label):
        report.drop("label", "COCO instances cannot hold whole-image labels")
        return None
    if isinstance(g, Box):
        entry["segmentation"] = []
        report.annotations["box"] += 1
    elif isinstance(g, Polygon):
        entry["segmentation"] = [list(r) for r in g.rings]
        report.annotations["polygon"] += 1
    elif isinstance(g, Mask):
        entry["segmentation"] = {"size": [g.height, g.width], "counts": g.counts.decode("ascii")}
        report.annotations["mask"] += 1
    elif isinstance(g, RotatedBox):
        poly = Polygon.from_points(list(g.corners()))
        entry["segmentation"] = [list(poly.rings[0])]
        report.converted["rotated_box -> polygon"] += 1
        report.annotations["polygon"] += 1
    elif isinstance(g, Keypoints):
        entry["segmentation"] = []
        entry["keypoints"] = [int(v) if float(v).is_integer() else v for v in g.points]
        entry["num_keypoints"] = g.labelled
        report.annotations["keypoints"] += 1
    box = ann.bbox or (g.bounds() if isinstance(g, RotatedBox) else ann.box)
    entry["bbox"] = list(box.xywh()) if box is not None else []
    if ann.area is not None:
        entry["area"] = ann.area
    elif isinstance(g, Keypoints):
        entry["area"] = box.area if box is not None else 0.0
    else:
        entry["area"] = g.area
    entry["iscrowd"] = int(ann.crowd)
    if ann.attributes:
        entry["attributes"] = dict(ann.attributes)
    if ann.confidence is not None:
        entry["score"] = ann.confidence
    return entry
