"""COCO JSON: detection boxes, polygons (multi-part), RLE masks, crowd, keypoints.

Layouts read:
- one JSON file (`instances_val2017.json`, `_annotations.coco.json`, anything with
  `images`/`annotations`/`categories`);
- a folder with `annotations/instances_<split>.json` and `<split>/` image folders (COCO). The files of
  one split there describe the same images and are read as one sample per image with the annotations of
  all: `instances_`, `person_keypoints_` (an object both annotate, same id, is one: its polygon and its
  keypoints), `stuff_` (COCO-Stuff), `captions_` (`Caption` annotations, after the image's objects) and
  `image_info_` (test sets: images without annotations, MISSING);
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
unique, 1..N per file. Masks are written as compressed RLE strings. Captions
go where COCO 2017 keeps them, `out/annotations/captions_<split>.json`
(`captions_default.json` for no split), beside the images' `<split>/` folder:
its `images` list is the split's, byte for byte (same ids), its entries
`{id, image_id, caption}` numbered 1..N (`_captions.caption_entry`); the reader
merges it with that split's `_annotations.coco.json`, one sample per image.
"""

from __future__ import annotations

import codecs
import functools
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import (
    Box,
    Caption,
    Geometry,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._captions import caption_annotation, caption_entry
from visionloop.formats._jsonstream import iter_items
from visionloop.formats._jsonwalk import array_cut, resume, top_level
from visionloop.formats.base import (
    UNHELD,
    Detection,
    ImageMode,
    Reader,
    ReadPart,
    WriteReport,
    count_state_change,
    open_text_bytes,
    place_image,
    quarantine,
    quarantining,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

ROBOFLOW_NAME = "_annotations.coco.json"
_STANDARD_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_STANDARD_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation",
                      "keypoints", "num_keypoints", "attributes", "score"}


# -- detect -------------------------------------------------------------------------------
#: the files of COCO's annotation folder, by name prefix, in the order their annotations are merged: files of
#: one split describe the same images (shared image ids) and are read as one set of samples
#: (`instances_val2017.json` + `person_keypoints_val2017.json` + `captions_val2017.json` + `stuff_val2017.json`);
#: `image_info_<split>.json` lists images without annotations (COCO's test sets)
INSTANCES, KEYPOINTS, STUFF, CAPTIONS, IMAGE_INFO = "instances_", "person_keypoints_", "stuff_", "captions_", "image_info_"
_PREFIXES = (INSTANCES, KEYPOINTS, STUFF, CAPTIONS, IMAGE_INFO)


def _prefix_of(file: Path) -> str | None:
    stem = file.stem
    for prefix in _PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return prefix
    return None


def _split_of(file: Path) -> str | None:
    """The split a file's name says: `instances_val2017.json` → val2017, `person_keypoints_train.json` → train;
    `_annotations.coco.json` in a split folder → that folder (the Roboflow layout)."""
    prefix = _prefix_of(file)
    if prefix is not None:
        return file.stem[len(prefix):]
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
        found.extend(_annotation_folder(ann_dir, {s for _, s in found}))
    if not found:
        jsons = sorted(path.glob("*.json"))
        if len(jsons) == 1:
            found.append((jsons[0], None))
    return found


def _annotation_folder(ann_dir: Path, roboflow: set[str | None]) -> list[tuple[Path, str | None]]:
    """COCO's `annotations/` files, by split then in `_PREFIXES` order. Captions are read with the object
    annotations of their split: in this folder, else in the `_annotations.coco.json` of the split's folder
    (`roboflow`: the splits that have one, None for the one beside `annotations/`, whose captions are
    `captions_default.json`) -- the layout our writer gives captions. A folder of captions alone is the
    `coco_captions` format."""
    files = [(f, _split_of(f)) for f in sorted(ann_dir.glob("*.json")) if f.is_file() and _prefix_of(f) is not None]
    with_objects = {s for f, s in files if _prefix_of(f) in (INSTANCES, KEYPOINTS, STUFF)}
    files = [(f, s) for f, s in files if _prefix_of(f) != CAPTIONS or s in with_objects or _beside(s, roboflow) is not False]
    order = {s: i for i, s in enumerate(dict.fromkeys(s for _, s in files))}
    return sorted(files, key=lambda fs: (order[fs[1]], _PREFIXES.index(_prefix_of(fs[0]) or INSTANCES)))


def _refuse_unmatched_captions(path: Path, files: list[tuple[Path, str | None]]) -> None:
    """An `annotations/captions_<X>.json` read with no split's objects (no `instances_<X>.json`, no `<X>/`
    folder with `_annotations.coco.json`): refused naming it, never left out in silence. Which images it
    captions is not guessed from ids or file names (a Roboflow export numbers every split's images from 0)."""
    ann_dir = path / "annotations"
    if not path.is_dir() or not ann_dir.is_dir():
        return
    kept = {os.path.abspath(f) for f, _ in files}
    for f in sorted(ann_dir.glob(f"{CAPTIONS}*.json")):
        if f.is_file() and _prefix_of(f) == CAPTIONS and os.path.abspath(f) not in kept:
            splits = ", ".join(sorted({str(sp) for _, sp in files if sp is not None})) or "none"
            raise FormatError(f"no split {_split_of(f)!r} here for these captions (splits: {splits})", path=f,
                              hint=f"rename it {CAPTIONS}<split>.json after the split whose images it captions, "
                                   "or move it out and read it alone as coco_captions")


def _beside(split: str | None, roboflow: set[str | None]) -> str | None | bool:
    """The split of the `_annotations.coco.json` that `annotations/captions_<split>.json` goes with, False for
    none: the split folder of that name, else (`default`) the file beside `annotations/`."""
    if split in roboflow:
        return split
    if split == "default" and None in roboflow:
        return None
    return False


def _looks_like_coco(head: bytes) -> bool:
    """COCO's `images` list, or (LVIS writes `annotations` first) annotations with `image_id` and
    `category_id`: a JSON object with only some other keys is not claimed."""
    return b'"images"' in head or (b'"annotations"' in head and b'"image_id"' in head and b'"category_id"' in head)


def detect(path: Path) -> Detection:
    files = _json_files(Path(path))
    if not files:
        return Detection.no("no COCO JSON (no *.json file, _annotations.coco.json or annotations/instances_*.json)")
    f = files[0][0]
    head, problem, fatal = _sniff(f)
    if problem is not None:
        # a file named as COCO names it (or anything unreadable as JSON at all) is an error, not a weak guess
        named = f.name == ROBOFLOW_NAME or f.parent.name == "annotations" or _split_of(f) is not None
        if fatal or named:
            return Detection.broken(f, problem)
        return Detection.no(f"{f.name}: {problem}")
    if not _looks_like_coco(head):
        return Detection.no(f"{f.name} is JSON without COCO's `images` list near its start")
    if f.name == ROBOFLOW_NAME or f.parent.name == "annotations":
        return Detection(0.95, f"{f.name} in the COCO/Roboflow layout")
    return Detection(0.8, f"{f.name} has COCO keys")


def _sniff(f: Path, n: int = 65536) -> tuple[bytes, str | None, bool]:
    """(head, problem, fatal): the first bytes after a BOM, and what keeps them from being COCO. `fatal`:
    the file is no JSON at all (empty, not UTF-8, malformed), which no other format reads either."""
    try:
        with open_text_bytes(f) as fh:
            head = fh.read(n)
            whole = not fh.read(1)
    except OSError as e:
        return b"", f"cannot read the file ({e.strerror or e})", True
    text = head.lstrip()
    if not text:
        return head, "the file is empty", True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError as e:
        return head, f"not UTF-8 text ({e.reason} at byte {e.start})", True
    if whole:
        try:
            doc = orjson.loads(head)
        except orjson.JSONDecodeError as e:
            return head, f"malformed JSON ({e})", True
        if isinstance(doc, list):
            return head, "a JSON array, where COCO has an object {images, annotations, categories}", False
        if not isinstance(doc, dict) or "images" not in doc:
            return head, "no `images` in it (COCO lists every image in `images`)", False
        if not doc.keys() & {"annotations", "categories"}:
            return head, "`images` but no `annotations` or `categories` beside it", False
        return head, None, False
    if text.startswith(b"["):
        return head, "a JSON array, where COCO has an object {images, annotations, categories}", False
    if not text.startswith(b"{"):
        return head, "not JSON (it does not start with `{`)", True
    return head, None, False


# -- read ---------------------------------------------------------------------------------
#: annotations shorter than this are read by one process: forking would cost more than it saves
PART_MIN_BYTES = 8 << 20


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _json_files(path)
    if not files:
        raise FormatError("no COCO annotation file here", path=path,
                          hint="expected a .json file, _annotations.coco.json or annotations/instances_*.json")
    _refuse_unmatched_captions(path, files)
    classes = ClassMap()
    groups: dict[tuple[Path, str | None], list[tuple[Path, _Index | None]]] = {}
    roboflow = {s: f for f, s in files if f.name == ROBOFLOW_NAME}
    with_objects = {s for f, s in files if _prefix_of(f) in (INSTANCES, KEYPOINTS, STUFF)}
    for f, file_split in files:
        index = None
        if _prefix_of(f) != CAPTIONS:  # a captions file has no categories: read with its split's others
            index = _Index(f)
            index.prescan()
            _add_categories(classes, _without_umbrella(index, f), f)
        # files of COCO's annotation folder that name the same split describe the same images
        key = (f.parent, file_split) if _prefix_of(f) is not None else (f, file_split)
        if _prefix_of(f) == CAPTIONS and file_split not in with_objects:  # with its split's _annotations.coco.json
            beside = _beside(file_split, set(roboflow))
            assert not isinstance(beside, bool)  # never False: `_annotation_folder` keeps no other
            key = (roboflow[beside], beside)
        groups.setdefault(key, []).append((f, index))
    sources = [(members, split or file_split) for (_, file_split), members in groups.items()]

    def samples() -> Iterator[Sample]:
        for members, group_split in sources:
            if len(members) == 1 and members[0][1] is not None and _prefix_of(members[0][0]) != IMAGE_INFO:
                index = members[0][1]
                index.complete()
                yield from _read_file(index, group_split)
            else:
                yield from _read_merged(members, group_split, classes)

    def parts(n: int) -> list[ReadPart] | None:
        if len(sources) != 1 or len(sources[0][0]) != 1 or sources[0][0][0][1] is None:
            return None
        index = sources[0][0][0][1]
        return None if _prefix_of(index.path) == IMAGE_INFO else _parts(index, sources[0][1], n)

    def verify_parts(read: list[ReadPart]) -> None:
        index = sources[0][0][0][1]
        assert index is not None  # parts() offered them
        _verify_parts(index, read)

    return Reader(classes, samples, source=path, parts=parts, verify_parts=verify_parts)


def _without_umbrella(index: _Index, f: Path) -> list[ClassInfo]:
    """The file's categories less Roboflow's umbrella category: its COCO export lists the dataset's name as a
    category (id 0, supercategory "none") that is the supercategory of every real one and that no annotation
    uses. It is not a class: left out and counted (`skipped`, not refused by --strict: nothing is lost). Used by
    an annotation, it is an ordinary class."""
    cats = index.categories
    umbrella = next((c for c in cats if str(c.supercategory).lower() == "none" and len(cats) > 1
                     and all(o.supercategory == c.name for o in cats if o is not c)), None)
    if umbrella is None:
        return cats
    index.complete()  # which categories the annotations use
    if umbrella.id in index.used_categories:
        return cats
    skip("category", "Roboflow's umbrella category (the dataset's name, supercategory none), used by no "
         "annotation", path=f, where=f"categories (id {umbrella.id}, {umbrella.name!r})", refuse_strict=False)
    return [c for c in cats if c is not umbrella]


def _add_categories(classes: ClassMap, categories: list[ClassInfo], f: Path) -> None:
    """One file's categories into the classes of all: the same name keeps the same id in every file; a class
    gains the keypoint names and skeleton that `person_keypoints_*.json` gives COCO's `person`."""
    for cat in categories:
        info = classes.get(cat.name)
        if info is None:
            other = classes.by_id(cat.id)
            if other is not None:
                raise FormatError(f"category id {cat.id} is {cat.name!r} here but {other.name!r} "
                                  "in another file of this dataset", path=f)
            classes._insert(cat)
        elif info.id != cat.id:
            raise FormatError(f"category {cat.name!r} has id {cat.id} here but {info.id} in another file of this "
                              "dataset", path=f)
        elif cat.keypoints and info.keypoints != cat.keypoints:
            if info.keypoints:
                raise FormatError(f"category {cat.name!r} has other keypoint names here than in another file of "
                                  "this dataset", path=f)
            classes.replace(cat.name, keypoints=cat.keypoints, skeleton=cat.skeleton)


def _check_has_images(index: _Index) -> None:
    if not index.has_images:
        raise FormatError("no `images` list in this file: COCO names every image in `images`", path=index.path,
                          hint="pass the right file, or the format it is in (see `visionloop formats`)")


class _Index:
    """What the scans of a COCO file learn, kept in a temporary SQLite file, not in memory.

    `img`: every image entry in file order; `grp`: the image id of each run of annotations in file order.
    From these: whether each image's annotations are contiguous (`grouped`) and whether the runs follow
    the order of `images` (`in_image_order`). Memory stays flat whatever the number of images.

    Two scans: `prescan()` reads everything but the annotations when `images` comes first and the
    categories come first or last (where COCO puts them); `complete()` then scans the annotations, only
    when they are read in one process. Parts (`_parts`) need no more than the prescan.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.categories: list[ClassInfo] = []
        self.annotations = 0
        self.grouped = True
        self.in_image_order = True
        self.ann_at: int | None = None  # file offset of the `annotations` array
        self.images_first = False  # `images` comes before `annotations`
        self.has_images = False  # the file has an `images` list (seen by a scan)
        self.tail_categories = False  # categories found at the end of the file, not yet confirmed by a scan
        self.used_categories: set[Any] = set()  # category ids the annotations use (known once complete())
        self.done = False
        self._tmp = tempfile.TemporaryDirectory(prefix="visionloop-coco-")
        self.db_path = Path(self._tmp.name) / "index.db"
        self.db = sqlite3.connect(self.db_path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE img (seq INTEGER PRIMARY KEY, id UNIQUE, stem TEXT, data BLOB)")
        self.db.execute("CREATE TABLE grp (seq INTEGER PRIMARY KEY, image_id, ann_pos INTEGER, ann_id)")
        self.db.execute("CREATE TABLE aid (id PRIMARY KEY, pos INTEGER) WITHOUT ROWID")  # ids that are not int64
        self.int_ids = array("q")  # integer annotation ids (8 bytes each), checked for repeats after the scan
        self.n_images = 0

    def image(self, image_id: Any) -> dict[str, Any]:
        row = self.db.execute("SELECT data FROM img WHERE id = ?", (image_id,)).fetchone()
        return orjson.loads(row[0])  # type: ignore[no-any-return]

    def images(self, *, unannotated: bool = False) -> Iterator[tuple[Any, dict[str, Any]]]:
        """(id, entry) in file order; only those without annotations when asked."""
        q = "SELECT id, data FROM img" + (" WHERE id NOT IN (SELECT image_id FROM grp)" if unannotated else "")
        for image_id, data in _stream(self.db, q + " ORDER BY seq"):
            yield image_id, orjson.loads(data)

    def prescan(self) -> None:
        path = self.path
        seen_categories = False
        for key, value in top_level(path, stream={"images"}, stop={"annotations"}):
            if key == "categories":
                self.categories = _categories(value, path)
                seen_categories = True
            elif key == "images":
                self._add_images(value)
                self.images_first = True
            elif key == "annotations":
                self.ann_at = value
        self.db.commit()  # parts read the index from other processes
        if self.ann_at is not None and not seen_categories:
            tail = _tail_categories(path)
            if tail is None:
                self.complete()  # the categories are needed now
            else:
                self.categories = _categories(tail, path)
                self.tail_categories = True

    def _add_images(self, items: Iterable[Any]) -> None:
        self.has_images = True
        buf: list[tuple[Any, ...]] = []
        for item in items:
            i = self.n_images
            _check_image(item, self.path, i)
            buf.append((i, item["id"], _stem(item["file_name"]), _exact(orjson.dumps(item))))
            self.n_images += 1
            if len(buf) >= 2000:
                _insert_images(self.db, buf, self.path)
        _insert_images(self.db, buf, self.path)

    def complete(self) -> None:
        """Scan the annotations (once): count them, check their categories and images, learn their order."""
        if self.done:
            return
        path, db = self.path, self.db
        first_use: dict[Any, tuple[int, Any]] = {}  # category id -> (position, annotation id) of its first use
        walk = resume(path, self.ann_at, "annotations", stream={"images", "annotations"}) \
            if self.ann_at is not None else iter(())
        for key, value in walk:
            if key == "categories":
                found = _categories(value, path)
                if self.tail_categories and found != self.categories:
                    raise FormatError("`categories` is not what the end of the file seemed to hold", path=path)
                self.categories, self.tail_categories = found, False
            elif key == "images":
                self._add_images(value)
            elif key == "annotations":
                self._scan_annotations(value, first_use)
        _check_has_images(self)
        self.used_categories = set(first_use)
        # an unknown category_id is the error of the annotation that has it (`_annotations`): refused with
        # --strict, otherwise its image is quarantined and the rest lands
        orphan = db.execute("SELECT g.ann_pos, g.image_id, g.ann_id FROM grp g LEFT JOIN img i ON i.id = g.image_id "
                            "WHERE i.id IS NULL ORDER BY g.seq LIMIT 1").fetchone()
        if orphan:
            where = f"annotations[{orphan[0]}]" + (f" (id {orphan[2]})" if orphan[2] is not None else "")
            raise FormatError(f"refers to image_id {orphan[1]}, which is not in `images`", path=path, where=where)
        db.execute("CREATE INDEX grp_image ON grp (image_id)")
        runs, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT image_id) FROM grp").fetchone()
        self.grouped = runs == distinct
        # do the runs follow the order of `images`? (each run's image comes later in `images` than the last one's)
        backwards = db.execute(
            "SELECT COUNT(*) FROM (SELECT i.seq - LAG(i.seq) OVER (ORDER BY g.seq) AS step "
            "FROM grp g JOIN img i ON i.id = g.image_id) WHERE step < 0").fetchone()[0]
        self.in_image_order = backwards == 0
        db.commit()
        self.done = True

    def _scan_annotations(self, items: Iterable[Any], first_use: dict[Any, tuple[int, Any]]) -> None:
        groups: list[tuple[Any, ...]] = []
        ids: list[tuple[Any, int]] = []
        last: Any = None
        insert = "INSERT INTO grp (image_id, ann_pos, ann_id) VALUES (?, ?, ?)"
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image_id" not in item or "category_id" not in item:
                where = f"annotations[{i}]" + (f" (id {item['id']})" if isinstance(item, dict) and "id" in item else "")
                raise FormatError("annotation needs `image_id` and `category_id`", path=self.path, where=where)
            image_id = item["image_id"]
            if type(image_id) is bool or type(item["category_id"]) is bool:
                where = f"annotations[{i}]" + (f" (id {item['id']})" if "id" in item else "")
                raise FormatError("`image_id` and `category_id` must be ids, not true/false", path=self.path,
                                  where=where)
            if image_id != last:
                groups.append((image_id, i, item.get("id")))
                last = image_id
                if len(groups) >= 20000:
                    self.db.executemany(insert, groups)
                    groups.clear()
            if item["category_id"] not in first_use:
                first_use[item["category_id"]] = (i, item.get("id"))
            ann_id = item.get("id")
            if type(ann_id) is int and -(1 << 63) <= ann_id < (1 << 63):
                self.int_ids.append(ann_id)
            elif ann_id is not None:
                ids.append((ann_id, i))
                if len(ids) >= 20000:
                    self._add_ids(ids)
            self.annotations += 1
        self.db.executemany(insert, groups)
        self._add_ids(ids)
        self._check_int_ids()

    def _check_int_ids(self) -> None:
        import numpy as np

        ids = np.frombuffer(self.int_ids, dtype=np.int64)
        if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):  # ascending, as nearly every tool writes them
            self.int_ids = array("q")
            return
        ordered = np.sort(ids)
        repeats = ordered[1:][ordered[1:] == ordered[:-1]]
        self.int_ids = array("q")
        if len(repeats):
            raise self.duplicate_id(int(repeats[0]))

    def duplicate_id(self, dup: Any) -> FormatError:
        """The error for an annotation id found twice, naming both places (one more pass over `annotations`)."""
        walk = resume(self.path, self.ann_at, "annotations", stream={"annotations"}) if self.ann_at is not None \
            else iter(())
        at = [i for key, value in walk if key == "annotations"
              for i, item in enumerate(value) if isinstance(item, dict) and type(item.get("id")) is type(dup)
              and item["id"] == dup][:2]
        at += [-1] * (2 - len(at))
        return FormatError(f"duplicate annotation id {dup!r} (first at annotations[{at[0]}])", path=self.path,
                           where=f"annotations[{at[1]}]", hint="annotation ids must be unique; remove the repeated entry")

    def _add_ids(self, ids: list[tuple[Any, int]]) -> None:
        """Annotation ids must be unique: the same id twice is an error naming both places."""
        try:
            self.db.executemany("INSERT INTO aid (id, pos) VALUES (?, ?)", ids)
        except sqlite3.IntegrityError:
            for ann_id, pos in ids:
                row = self.db.execute("SELECT pos FROM aid WHERE id = ?", (ann_id,)).fetchone()
                if row is not None and row[0] != pos:
                    raise FormatError(f"duplicate annotation id {ann_id!r} (first at annotations[{row[0]}])",
                                      path=self.path, where=f"annotations[{pos}]",
                                      hint="annotation ids must be unique; remove the repeated entry") from None
                if row is None:
                    self.db.execute("INSERT INTO aid (id, pos) VALUES (?, ?)", (ann_id, pos))
            raise
        ids.clear()


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
    """Both scans of one file (what reading it in one process needs)."""
    index = _Index(path)
    index.prescan()
    index.complete()
    return index


def _stem(file_name: str) -> str:
    """A key that is equal for any two images a writer would give files of the same name: the base name,
    case-folded, up to its first dot after the first character (coarser than every writer's stem, so a
    clash between parts is never missed; a false clash only means one process)."""
    base = file_name.replace("\\", "/").rpartition("/")[2]
    dot = base.find(".", 1)
    return (base[:dot] if dot > 0 else base).casefold()


def _tail_categories(path: Path, probe: int = 4 << 20) -> Any:
    """The `categories` array when it is the last member of the document (COCO's own order), read from
    the end of the file without scanning what comes before; None when the end is not like that.
    `_Index.complete()` confirms it when the whole file is scanned, and the last part when it is cut."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - probe))
        data = f.read()
    at = data.rfind(b'"categories"')
    if at < 0:
        return None
    before = data[:at].rstrip()
    if not before.endswith(b","):
        return None
    text = data[at:].decode("utf-8", errors="strict")
    decoder = json.JSONDecoder()
    try:
        key, pos = decoder.raw_decode(text, 0)
        pos = _skip_ws(text, pos)
        if text[pos] != ":":
            return None
        value, pos = decoder.raw_decode(text, _skip_ws(text, pos + 1))
        pos = _skip_ws(text, pos)
        if text[pos] != "}" or text[pos + 1:].strip() or not isinstance(value, list):
            return None
    except (json.JSONDecodeError, UnicodeDecodeError, IndexError):
        return None
    return value


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _parts(index: _Index, split: str | None, n: int) -> list[ReadPart] | None:
    """The annotations cut into about `n` byte ranges at changes of image, each with its range of images.

    Possible when the file is long enough, `images` comes before the annotations, no two image names
    share a stem, and the cuts land where the images' order says (each part's images follow the last
    part's). Each part then checks as it reads that its annotations are grouped by image in the order
    of `images`, and the last that the end of the file holds the categories read from it.
    """
    if n < 2 or index.ann_at is None or not index.images_first or index.done:
        return None
    size = index.path.stat().st_size
    if size - index.ann_at < PART_MIN_BYTES:
        return None
    db = index.db
    if db.execute("SELECT 1 FROM img GROUP BY stem HAVING COUNT(*) > 1 LIMIT 1").fetchone():
        return None  # two images would write files of the same name: one process keeps them apart
    bounds: list[tuple[int, int]] = [(index.ann_at, 0)]  # (file offset, first image's position in `images`)
    for k in range(1, n):
        target = index.ann_at + (size - index.ann_at) * k // n
        if target <= bounds[-1][0]:
            continue
        found = array_cut(index.path, target, lambda element: element["image_id"])
        if found is None:
            continue
        offset, element = found
        row = db.execute("SELECT seq FROM img WHERE id = ?", (element["image_id"],)).fetchone()
        if row is None or offset <= bounds[-1][0] or row[0] <= bounds[-1][1]:
            return None
        bounds.append((offset, row[0]))
    if len(bounds) < 2:
        return None
    parts = []
    for k, (offset, lo) in enumerate(bounds):
        end, hi = bounds[k + 1] if k + 1 < len(bounds) else (None, index.n_images)
        parts.append(ReadPart(lo, functools.partial(_read_part, index, split, offset, end, lo, hi, inside=k > 0)))
    return parts


def _read_part(index: _Index, split: str | None, offset: int, end: int | None, lo: int, hi: int, *,
               inside: bool) -> Iterator[Sample]:
    """The samples of images [lo, hi) of `images`, whose annotations lie in the bytes [offset, end)."""
    path = index.path
    names: dict[int, str] = {c.id: c.name for c in index.categories}
    roots = _ImageRoot(path, split)
    split = None if split == "default" else split
    db = sqlite3.connect(index.db_path)  # this process's own connection
    try:
        rows = _stream(db, f"SELECT id, data FROM img WHERE seq >= {int(lo)} AND seq < {int(hi)} ORDER BY seq")
        ordered = ((image_id, orjson.loads(data)) for image_id, data in rows)
        int_ids: array[int] = array("q")
        other_ids: list[Any] = []

        def noted(items: Iterable[Any]) -> Iterator[Any]:  # the ids this part read, checked across parts after all
            for item in items:
                ann_id = item.get("id") if isinstance(item, dict) else None
                if type(ann_id) is int and -(2**63) <= ann_id < 2**63:
                    int_ids.append(ann_id)
                elif ann_id is not None:
                    other_ids.append(ann_id)
                yield item

        for key, value in resume(path, offset, "annotations", stream={"annotations", "images"}, inside=inside,
                                 end=end):
            if key == "annotations":
                yield from _grouped(noted(value), index, ordered, names, split, roots, in_part=True)
            elif key == "images":
                raise FormatError("`images` after `annotations`", path=path)
            elif key == "categories" and _categories(value, path) != index.categories:
                raise FormatError("`categories` is not what the end of the file seemed to hold", path=path)
        for _, entry in ordered:
            yield _sample(entry, [], split, roots)
        scratch = Path(index._tmp.name)
        (scratch / f"ids-{lo}.bin").write_bytes(int_ids.tobytes())
        (scratch / f"ids-{lo}.json").write_bytes(orjson.dumps(other_ids))
    finally:
        db.close()


def _verify_parts(index: _Index, parts: list[ReadPart]) -> None:
    """After every part was read (each in its process): annotation ids unique across the parts too."""
    from collections import Counter

    import numpy as np

    scratch = Path(index._tmp.name)
    ints = np.sort(np.concatenate([np.frombuffer((scratch / f"ids-{p.start}.bin").read_bytes(), dtype=np.int64)
                                   for p in parts]))
    repeats = ints[1:][ints[1:] == ints[:-1]]
    if len(repeats):
        raise index.duplicate_id(int(repeats[0]))
    others = Counter(orjson.dumps(v) for p in parts for v in orjson.loads((scratch / f"ids-{p.start}.json").read_bytes()))
    if dup := next((orjson.loads(k) for k, n in others.items() if n > 1), None):
        raise index.duplicate_id(dup)


def _insert_images(db: sqlite3.Connection, buf: list[tuple[Any, ...]], path: Path) -> None:
    try:
        db.executemany("INSERT INTO img (seq, id, stem, data) VALUES (?, ?, ?, ?)", buf)
    except sqlite3.IntegrityError:
        seen: dict[Any, int] = {}
        for seq, ident, _, _ in buf:  # the first entry whose id came before (earlier in this batch or in the db)
            row = db.execute("SELECT seq FROM img WHERE id = ?", (ident,)).fetchone()
            first = row[0] if row and row[0] != seq else seen.get(ident)
            if first is not None:
                raise FormatError(f"duplicate image id {ident} (first at images[{first}])", path=path,
                                  where=f"images[{seq}]") from None
            seen[ident] = seq
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
    if not index.grouped:
        yield from _read_spilled(index, split, names, roots)
        return
    ordered = index.images() if index.in_image_order else None
    for key, value in _annotations_walk(index):
        if key == "annotations":
            yield from _grouped(value, index, ordered, names, split, roots)
    # the images without annotations that were not yielded yet
    rest = ordered if ordered is not None else index.images(unannotated=True)
    for _, entry in rest:
        yield _sample(entry, [], split, roots)


def _grouped(items: Iterable[Any], index: _Index, ordered: Iterator[tuple[Any, dict[str, Any]]] | None,
             names: dict[int, str], split: str | None, roots: _ImageRoot, *,
             in_part: bool = False) -> Iterator[Sample]:
    """Samples from annotations grouped by image (each run of one image id is one sample). `in_part`: the
    annotations of one part of the file, whose positions are not the file's — an entry that cannot be read
    fails the part, and the one-process read (which falls back) quarantines it under its real position."""
    current: Any = None
    anns: list[Annotation] = []
    bad = False  # an annotation of the current image could not be read: the image is quarantined
    for i, item in enumerate(items):
        image_id = item["image_id"]
        if image_id != current:
            if current is not None:
                yield from _flush_group(index, ordered, current, anns, split, roots, left_out=bad)
            current, anns, bad = image_id, [], False
        if in_part:
            anns.extend(_annotations(item, names, index.path, i))
        elif not bad:
            bad = not _read_into(anns, item, names, index.path, i)
    if current is not None:
        yield from _flush_group(index, ordered, current, anns, split, roots, left_out=bad)


def _read_into(anns: list[Annotation], item: dict[str, Any], names: dict[int, str], path: Path, seq: int) -> bool:
    """Append the annotations of one COCO entry; False when it cannot be read and the import quarantines
    (`formats.base.quarantine`: the error names the entry and its image, which is left out whole — a
    partly read image would look complete). Strict (the default outside an import) raises."""
    try:
        anns.extend(_annotations(item, names, path, seq))
    except FormatError as e:
        if not quarantining():
            raise
        quarantine(FormatError(f"{e.message}; image_id {item['image_id']!r} left out", path=e.path, where=e.where,
                               hint=e.hint))
        return False
    return True


def _annotations_walk(index: _Index) -> Iterator[tuple[str, Any]]:
    if index.ann_at is None:
        return iter(())
    return resume(index.path, index.ann_at, "annotations", stream={"images", "annotations"})


def _flush_group(index: _Index, ordered: Iterator[tuple[Any, dict[str, Any]]] | None, image_id: Any,
                 anns: list[Annotation], split: str | None, roots: _ImageRoot, *,
                 left_out: bool = False) -> Iterator[Sample]:
    if ordered is None:  # groups in another order than `images`: look the image up
        if not left_out:
            yield _sample(index.image(image_id), anns, split, roots)
        return
    for other, entry in ordered:  # images without annotations before this one come out first
        if other == image_id:
            if not left_out:
                yield _sample(entry, anns, split, roots)
            return
        yield _sample(entry, [], split, roots)
    raise FormatError(f"the annotations of image_id {image_id!r} are not where the order of `images` puts them",
                      path=index.path)


def _read_spilled(index: _Index, split: str | None, names: dict[int, str], roots: _ImageRoot) -> Iterator[Sample]:
    """Annotations not grouped by image: spill them into the index's SQLite file, keyed by image id."""
    path = index.path
    db = index.db
    db.execute("CREATE TABLE IF NOT EXISTS ann (seq INTEGER PRIMARY KEY, image_id, data BLOB)")
    db.execute("DELETE FROM ann")
    for key, value in _annotations_walk(index):
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
        rows = db.execute("SELECT seq, data FROM ann WHERE image_id = ? ORDER BY seq", (image_id,))
        if all(_read_into(anns, orjson.loads(data), names, path, seq) for seq, data in rows):
            yield _sample(entry, anns, split, roots)


def _read_merged(members: list[tuple[Path, _Index | None]], split: str | None, classes: ClassMap) -> Iterator[Sample]:
    """The files of one split of COCO's annotation folder as one sample per image, in the order of the first
    file's `images` (then the images only later files list): every file's annotations (an object two files
    annotate, as COCO's persons in instances_* and person_keypoints_*, is one), then its captions (`Caption`
    annotations, in file order). An image listed only by `image_info_*.json` is not labelled (MISSING)."""
    names = {c.id: c.name for c in classes}
    paths = [f for f, _ in members]
    roots = _ImageRoot(paths[0], split)
    split = None if split == "default" else split
    with tempfile.TemporaryDirectory(prefix="visionloop-coco-merge-") as tmp:
        db = sqlite3.connect(Path(tmp) / "merge.db")
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE img (seq INTEGER PRIMARY KEY, id UNIQUE, file INTEGER, labelled INTEGER, "
                       "data BLOB)")
            db.execute("CREATE TABLE ann (seq INTEGER PRIMARY KEY, image_id, file INTEGER, pos INTEGER, data BLOB)")
            db.execute("CREATE TABLE cap (seq INTEGER PRIMARY KEY, image_id, pos INTEGER, data BLOB)")
            for k, (f, index) in enumerate(members):
                labelled = _prefix_of(f) != IMAGE_INFO
                if index is None:
                    _merge_images(db, k, paths, _caption_images(f), labelled)
                    _spill_captions(db, f)
                    continue
                index.complete()
                _merge_images(db, k, paths, index.images(), labelled)
                buf: list[tuple[Any, int, int, bytes]] = []
                for key, value in _annotations_walk(index):
                    if key != "annotations":
                        continue
                    for i, item in enumerate(value):
                        buf.append((item["image_id"], k, i, _exact(orjson.dumps(item))))
                        if len(buf) >= 2000:
                            db.executemany("INSERT INTO ann (image_id, file, pos, data) VALUES (?, ?, ?, ?)", buf)
                            buf.clear()
                db.executemany("INSERT INTO ann (image_id, file, pos, data) VALUES (?, ?, ?, ?)", buf)
            orphan = db.execute("SELECT c.pos, c.image_id FROM cap c LEFT JOIN img i ON i.id = c.image_id "
                                "WHERE i.id IS NULL ORDER BY c.seq LIMIT 1").fetchone()
            captions = next((f for f, index in members if index is None), paths[0])  # the split's captions file
            if orphan:
                raise FormatError(f"refers to image_id {orphan[1]}, which is in no `images` list of this split",
                                  path=captions, where=f"annotations[{orphan[0]}]")
            db.execute("CREATE INDEX ann_image ON ann (image_id, file, pos)")
            db.execute("CREATE INDEX cap_image ON cap (image_id, seq)")
            for image_id, labelled, data in _stream(db, "SELECT id, labelled, data FROM img ORDER BY seq"):
                items = [(file, pos, orjson.loads(d)) for file, pos, d in db.execute(
                    "SELECT file, pos, data FROM ann WHERE image_id = ? ORDER BY file, pos", (image_id,))]
                anns: list[Annotation] = []
                if not all(_read_into(anns, item, names, paths[file], pos) for file, pos, item in _same_objects(items)):
                    continue
                entry = orjson.loads(data)
                anns.extend(caption_annotation(orjson.loads(d), captions, f"annotations[{pos}]") for pos, d in
                            db.execute("SELECT pos, data FROM cap WHERE image_id = ? ORDER BY seq", (image_id,)))
                state = LabelState.ANNOTATED if anns else LabelState.NULL if labelled else LabelState.MISSING
                yield _sample(entry, anns, split, roots, state=state)
        finally:
            db.close()


def _merge_images(db: sqlite3.Connection, k: int, paths: list[Path], images: Iterable[tuple[Any, dict[str, Any]]],
                  labelled: bool) -> None:
    """One file's images into the split's: an id already listed by an earlier file must name the same file."""
    for image_id, entry in images:
        cur = db.execute("INSERT OR IGNORE INTO img (id, file, labelled, data) VALUES (?, ?, ?, ?)",
                         (image_id, k, int(labelled), _exact(orjson.dumps(entry))))
        if cur.rowcount:
            continue
        first, data = db.execute("SELECT file, data FROM img WHERE id = ?", (image_id,)).fetchone()
        other = orjson.loads(data)["file_name"]
        if other != entry["file_name"]:
            raise FormatError(f"image id {image_id} is {entry['file_name']!r} here but {other!r} in "
                              f"{paths[first].name}", path=paths[k], where=f"images (id {image_id})",
                              hint="files of one split must describe the same images with the same ids")
        if labelled:
            db.execute("UPDATE img SET labelled = 1 WHERE id = ?", (image_id,))


def _caption_images(f: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    for i, item in enumerate(iter_items(f, "images.item")):
        _check_image(item, f, i)
        yield item["id"], item


def _spill_captions(db: sqlite3.Connection, f: Path) -> None:
    buf: list[tuple[Any, int, bytes]] = []
    for i, ann in enumerate(iter_items(f, "annotations.item")):
        where = f"annotations[{i}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        caption_annotation(ann, f, where)  # checked here: an error names its entry
        buf.append((ann["image_id"], i, _exact(orjson.dumps(ann))))
        if len(buf) >= 20000:
            db.executemany("INSERT INTO cap (image_id, pos, data) VALUES (?, ?, ?)", buf)
            buf.clear()
    db.executemany("INSERT INTO cap (image_id, pos, data) VALUES (?, ?, ?)", buf)


def _same_objects(items: list[tuple[int, int, dict[str, Any]]]) -> list[tuple[int, int, dict[str, Any]]]:
    """An image's annotations from every file, an object that two files annotate made one: the same
    annotation id, category and bbox in another file (COCO's person in instances_* and again, with its
    keypoints, in person_keypoints_*) adds its keys to the first (a Keypoints and the polygon, once)."""
    out: list[tuple[int, int, dict[str, Any]]] = []
    first: dict[Any, tuple[int, int, dict[str, Any]]] = {}
    for file, pos, item in items:
        ann_id = item.get("id")
        prev = first.get(ann_id) if ann_id is not None and type(ann_id) is not bool else None
        if prev is not None and prev[0] != file and prev[2].get("category_id") == item.get("category_id") \
                and prev[2].get("bbox") == item.get("bbox"):
            prev[2].update(item)
            continue
        if ann_id is not None and ann_id not in first:
            first[ann_id] = (file, pos, item)
        out.append((file, pos, item))
    return out


def _check_image(item: Any, path: Path, i: int) -> None:
    if type(item) is dict:  # the common case, quickly: int id, a name, int sizes
        w, h, name = item.get("width", 0), item.get("height", 0), item.get("file_name")
        if type(item.get("id")) is int and type(name) is str and name and type(w) is int and type(h) is int \
                and w >= 0 and h >= 0:
            return  # (type(True) is bool, not int: booleans take the slow path and are refused there)
    where = f"images[{i}]"
    if not isinstance(item, dict):
        raise FormatError("expected an object", path=path, where=where)
    for k in ("id", "file_name"):
        if k not in item:
            raise FormatError(f"image entry has no `{k}`", path=path, where=where)
    if type(item["id"]) not in _REAL or not isinstance(item["file_name"], str) or not item["file_name"]:
        raise FormatError("image `id` must be a number and `file_name` a non-empty string", path=path, where=where)
    for k in ("width", "height"):
        v = item.get(k)
        if v is not None and (type(v) not in _REAL or v < 0):
            raise FormatError(f"image `{k}` must be a non-negative number, got {v!r}", path=path, where=where)


def _sample(image: dict[str, Any], anns: list[Annotation], split: str | None, roots: _ImageRoot, *,
            state: LabelState | None = None) -> Sample:
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
    if state is None:
        state = LabelState.ANNOTATED if anns else LabelState.NULL
    return Sample(ref, tuple(anns), split=split, state=state)


def _annotations(item: dict[str, Any], names: dict[int, str], path: Path, seq: int) -> list[Annotation]:
    label = names.get(item["category_id"])
    if label is None:
        where = f"annotations[{seq}]" + (f" (id {item['id']})" if "id" in item else "")
        raise FormatError(f"unknown category_id {item['category_id']!r}", path=path, where=where,
                          hint=f"known ids: {sorted(names)[:20]}")
    bbox = item.get("bbox")
    if not item.get("keypoints") and bbox is not None and len(bbox) == 4 and not item.get("attributes") \
            and item.get("score") is None:
        # the common cases, a plain box or a polygon with its box: no closures
        seg = item.get("segmentation")
        try:
            x, y, w, h = bbox
            if not (type(x) in _REAL and type(y) in _REAL and type(w) in _REAL and type(h) in _REAL):
                raise ValueError(f"bbox values must be numbers, got {bbox!r}")
            box = Box(x, y, x + w, y + h)
            area = item.get("area")
            if not seg:
                return [Annotation(label, box, crowd=bool(item.get("iscrowd", 0)),
                                   area=None if area is None or area == w * h else _real(area, "area"))]
            if type(seg) is list:
                polygon = Polygon(tuple(_ring(ring) for ring in seg if ring))
                return [Annotation(label, polygon, crowd=bool(item.get("iscrowd", 0)),
                                   area=None if area is None else _real(area, "area"), bbox=box)]
        except (TypeError, ValueError) as e:
            raise _bad(item, path, seq, e) from None
    try:
        bbox = item.get("bbox")
        if bbox and len(bbox) != 4:
            raise ValueError(f"bbox needs 4 numbers [x, y, w, h], got {len(bbox)}")
        declared = Box.from_xywh(*(_real(v, "bbox") for v in bbox)) if bbox else None
        area = _real(item["area"], "area") if item.get("area") is not None else None
        score = _real(item["score"], "score") if item.get("score") is not None else None

        def make(geometry: Geometry, bbox: Box | None, area: float | None = area) -> Annotation:
            return Annotation(label, geometry, attributes=item.get("attributes") or {},
                              crowd=bool(item.get("iscrowd", 0)), area=area, confidence=score, bbox=bbox)

        seg = item.get("segmentation")
        geometry = _segmentation(seg) if seg else None
        kps = item.get("keypoints")
        if kps:
            out = [make(Keypoints(tuple(_real(v, "keypoints") for v in kps)), declared)]
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


_REAL = (int, float)  # not bool (type(True) is bool), not str: "10" and true are refused, never read as numbers


def _real(v: Any, what: str) -> float:
    if type(v) not in _REAL:
        raise ValueError(f"{what} values must be numbers, got {v!r}")
    return float(v)


def _ring(ring: Any) -> tuple[float, ...]:
    """A polygon ring's coordinates; strings and nulls refused (sum() checks at C speed)."""
    if type(ring) is not list:
        raise ValueError(f"a polygon ring must be a list of numbers, got {ring!r}")
    try:
        sum(ring)  # TypeError on a string or null
    except TypeError:
        raise ValueError(f"polygon values must be numbers, got {ring!r}"[:200]) from None
    return tuple(map(float, ring))


def _bad(item: dict[str, Any], path: Path, seq: int, e: Exception) -> FormatError:
    where = f"annotations[{seq}]" + (f" (id {item['id']})" if "id" in item else "")
    return FormatError(f"bad annotation: {e}", path=path, where=where)


def _segmentation(seg: Any) -> Polygon | Mask:
    if isinstance(seg, list):
        return Polygon(tuple(_ring(ring) for ring in seg if ring))
    if isinstance(seg, dict):
        h, w = (int(v) for v in seg["size"])
        counts = seg["counts"]
        if isinstance(counts, list):
            return Mask.from_uncompressed([int(c) for c in counts], h, w)
        if isinstance(counts, str):
            return Mask(counts.encode("ascii"), h, w)
    raise ValueError(f"segmentation must be a list of polygons or an RLE object, got {type(seg).__name__}")


# -- write --------------------------------------------------------------------------------
def _annotation_bytes(n: int, entry: dict[str, Any]) -> bytes:
    """An annotation object with its id first (so parts written apart can be numbered when joined)."""
    return b'{"id":%d,' % n + orjson.dumps(entry)[1:]


class _SplitWriter:
    """One `_annotations.coco.json`: images streamed into it, annotations via a temp file; the split's captions,
    if any, via another into `annotations/captions_<split>.json` (`captions`), with the same `images` list."""

    def __init__(self, folder: Path, captions: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.captions = captions
        self.caps: IO[bytes] | None = None
        self.n_caps = 0
        self.final = folder / ROBOFLOW_NAME
        self.partial = folder / (ROBOFLOW_NAME + ".partial")
        self.main: IO[bytes] = open(self.partial, "wb")
        self.anns: IO[bytes] = tempfile.TemporaryFile(dir=folder)
        self.main.write(_HEAD)
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
        self.anns.write((b"," if self.n_anns > 1 else b"") + _annotation_bytes(self.n_anns, entry))

    def caption(self, entry: dict[str, Any]) -> None:
        """A caption entry without its id (numbered 1..N here)."""
        if self.caps is None:
            self.caps = tempfile.TemporaryFile(dir=self.folder)
        self.n_caps += 1
        self.caps.write((b"," if self.n_caps > 1 else b"") + _annotation_bytes(self.n_caps, entry))

    def close(self, categories: list[dict[str, Any]]) -> None:
        images_end = self.main.tell()
        self.main.write(b'],"annotations":[')
        self.anns.seek(0)
        while chunk := self.anns.read(1 << 20):
            self.main.write(chunk)
        self.anns.close()
        self.main.write(_tail(categories))
        self.main.close()
        if self.caps is not None:  # the images list again, byte for byte, so the ids are the same
            with open(self.partial, "rb") as f:
                f.seek(len(_HEAD))
                images = [f.read(images_end - len(_HEAD))]
            self.caps.seek(0)
            _write_captions(self.captions, images, [self.caps])
            self.caps.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.anns.close()
        if self.caps is not None:
            self.caps.close()
        self.main.close()
        self.partial.unlink(missing_ok=True)


def _captions_file(out: Path, split: str | None) -> Path:
    """Where a split's captions go: COCO 2017's `annotations/captions_<split>.json` (`default` for no split,
    datumaro's name and coco_captions'); its `images` are those of the split's `_annotations.coco.json`."""
    return out / "annotations" / f"{CAPTIONS}{split or 'default'}.json"


def _write_captions(path: Path, images: Iterable[bytes], captions: Iterable[IO[bytes]]) -> None:
    """COCO's captions file from the bytes of its `images` entries and of its numbered caption entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(_HEAD)
        for chunk in images:
            f.write(chunk)
        f.write(b'],"annotations":[')
        for part in captions:
            shutil.copyfileobj(part, f, 1 << 20)
        f.write(b"]}")
    partial.replace(path)


_HEAD = b'{"info":{"description":"written by visionloop"},"licenses":[],"images":['


def _tail(categories: list[dict[str, Any]]) -> bytes:
    return b'],"categories":' + orjson.dumps(categories) + b"}"


class _PartSplit(_SplitWriter):
    """A part's share of one split (`write_part`): image entries already numbered from the part's start,
    annotations one per line without their id, numbered when `finish_parts` joins the parts — except in
    the first part, which numbers its own from 1 and is joined as it is."""

    def __init__(self, folder: Path, scratch: Path, start: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        scratch.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.scratch = scratch
        self.caps = None
        self.n_caps = 0
        self.main = open(scratch / "images", "wb")
        self.anns = open(scratch / "annotations", "wb")
        self.n_images = start
        self.n_anns = 0
        self.names = set()
        self.numbered = start == 0

    def image(self, entry: dict[str, Any]) -> int:
        self.n_images += 1
        entry["id"] = self.n_images
        self.main.write((b"," if self.main.tell() else b"") + orjson.dumps(entry))
        return self.n_images

    def annotation(self, entry: dict[str, Any]) -> None:
        self.n_anns += 1
        if self.numbered:
            self.anns.write((b"," if self.n_anns > 1 else b"") + _annotation_bytes(self.n_anns, entry))
        else:
            self.anns.write(orjson.dumps(entry)[1:] + b"\n")

    def caption(self, entry: dict[str, Any]) -> None:
        """One line without its id: `finish_parts` numbers the split's captions 1..N."""
        if self.caps is None:
            self.caps = open(self.scratch / "captions", "wb")
        self.n_caps += 1
        self.caps.write(orjson.dumps(entry)[1:] + b"\n")

    def close(self, categories: list[dict[str, Any]]) -> None:
        self.main.close()
        self.anns.close()
        if self.caps is not None:
            self.caps.close()


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    classes = ClassMap(list(classes)) if classes is not None else ClassMap()
    report = WriteReport("coco", str(out))
    writers: dict[str | None, _SplitWriter] = {}

    def split_writer(split: str | None) -> _SplitWriter:
        return _SplitWriter(out / split if split else out, _captions_file(out, split))

    try:
        _write_samples(samples, writers, split_writer, classes, images, report, frozen=False)
        categories = [_category_entry(c) for c in classes]
        if not writers:
            writers[None] = _SplitWriter(out, _captions_file(out, None))
        for sw in writers.values():
            sw.close(categories)
    except BaseException:
        for sw in writers.values():
            sw.abort()
        raise
    return report


def write_part(samples: Iterable[Sample], out: Path, *, classes: ClassMap, images: ImageMode = ImageMode.COPY,
               start: int = 0) -> dict[str, Any]:
    """One part of a parallel write (`formats.parallel`): its entries in scratch files, joined by `finish_parts`.

    Image ids continue from `start` (the samples of the earlier parts), so a part holds one split."""
    out = Path(out)
    report = WriteReport("coco", str(out))
    writers: dict[str | None, _SplitWriter] = {}

    def split_writer(split: str | None) -> _SplitWriter:
        if writers:
            raise FormatError("a part holds more than one split", path=out)
        return _PartSplit(out / split if split else out, out / f".coco-part-{start}", start)

    try:
        _write_samples(samples, writers, split_writer, classes, images, report, frozen=True)
    finally:
        for sw in writers.values():
            sw.close([])
    splits = [(split, str(sw.folder), str(getattr(sw, "scratch", "")), getattr(sw, "numbered", False), sw.n_anns)
              for split, sw in writers.items()]
    return {"report": report.to_json(), "splits": splits}


def finish_parts(out: Path, results: list[dict[str, Any]], *, classes: ClassMap) -> WriteReport:
    """Join the parts' scratch files into one `_annotations.coco.json` per split, annotation ids 1..N."""
    out = Path(out)
    report = WriteReport("coco", str(out))
    by_split: dict[str | None, tuple[str, list[tuple[Path, bool, int]]]] = {}
    for r in results:
        report.add(r["report"])
        for split, folder, scratch, numbered, count in r["splits"]:
            by_split.setdefault(split, (folder, []))[1].append((Path(scratch), numbered, count))
    if not by_split:
        by_split[None] = (str(out), [])
    tail = _tail([_category_entry(c) for c in classes])
    for split, (folder, scratches) in by_split.items():
        _join_captions(_captions_file(out, split), [scratch for scratch, _, _ in scratches])
        final = Path(folder) / ROBOFLOW_NAME
        partial = final.with_name(ROBOFLOW_NAME + ".partial")
        with open(partial, "wb") as f:
            f.write(_HEAD)
            first = True
            for scratch, _, _ in scratches:
                data = (scratch / "images").read_bytes()
                if data:
                    f.write(data if first else b"," + data)
                    first = False
            f.write(b'],"annotations":[')
            n = 0
            for scratch, numbered, count in scratches:
                if numbered:  # the first part: its annotations numbered 1..count already
                    if n:
                        raise RuntimeError(f"{scratch}: a numbered part after others")
                    with open(scratch / "annotations", "rb") as part:
                        shutil.copyfileobj(part, f, 1 << 20)
                    n = count
                    continue
                for lines in _line_blocks(scratch / "annotations"):
                    f.write((b"," if n else b"") + b",".join(
                        [b'{"id":%d,%s' % pair for pair in zip(range(n + 1, n + 1 + len(lines)), lines, strict=True)]))
                    n += len(lines)
            f.write(tail)
        partial.replace(final)
        for scratch, _, _ in scratches:
            shutil.rmtree(scratch)
    return report


def _join_captions(path: Path, scratches: list[Path]) -> None:
    """The parts' captions of one split (lines without ids), numbered 1..N, into its captions file with the
    split's `images` (the parts' image entries, as in its `_annotations.coco.json`); none when no part has any."""
    if not any((s / "captions").is_file() for s in scratches):
        return
    with tempfile.TemporaryFile(dir=scratches[0]) as joined:
        n = 0
        for scratch in scratches:
            if not (scratch / "captions").is_file():
                continue
            for lines in _line_blocks(scratch / "captions"):
                joined.write((b"," if n else b"") + b",".join(
                    [b'{"id":%d,%s' % pair for pair in zip(range(n + 1, n + 1 + len(lines)), lines, strict=True)]))
                n += len(lines)
        joined.seek(0)
        images = (data for data in ((s / "images").read_bytes() for s in scratches) if data)
        _write_captions(path, _joined(images), [joined])


def _joined(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Comma-joined JSON array items, chunk by chunk."""
    for i, chunk in enumerate(chunks):
        yield chunk if i == 0 else b"," + chunk


def _line_blocks(path: Path, size: int = 4 << 20) -> Iterator[list[bytes]]:
    """The lines of a file that ends with a newline, a few MB at a time."""
    rest = b""
    with open(path, "rb") as f:
        while block := f.read(size):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            if lines:
                yield lines


def _write_samples(samples: Iterable[Sample], writers: dict[str | None, _SplitWriter],
                   split_writer: Callable[[str | None], _SplitWriter], classes: ClassMap, images: ImageMode,
                   report: WriteReport, *, frozen: bool) -> None:
    next_id = max((c.id for c in classes), default=0) + 1
    for sample in samples:
        sw = writers.get(sample.split)
        if sw is None:
            sw = writers[sample.split] = split_writer(sample.split)
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
        count_state_change(report, sample, becomes=LabelState.NULL, why="COCO lists every image as labelled")
        report.images += 1
        boxes = polygons = 0
        for ann in sample.annotations:
            g = ann.geometry
            if type(g) is Box and ann.bbox is None and not ann.attributes and ann.confidence is None \
                    and ann.label in classes:
                # the common case, inline: what _annotation_entry makes of a plain box
                w, h = g.x1 - g.x0, g.y1 - g.y0
                sw.annotation({"segmentation": [], "bbox": [g.x0, g.y0, w, h],
                               "area": w * h if ann.area is None else ann.area, "iscrowd": int(ann.crowd),
                               "image_id": image_id, "category_id": classes[ann.label].id})
                boxes += 1
                continue
            if type(g) is Polygon and ann.bbox is not None and ann.area is not None and not ann.attributes \
                    and ann.confidence is None and ann.label in classes:
                # a polygon with its declared box and area, inline: what _annotation_entry makes of it
                b = ann.bbox
                sw.annotation({"segmentation": g.rings, "bbox": [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0],
                               "area": ann.area, "iscrowd": int(ann.crowd),
                               "image_id": image_id, "category_id": classes[ann.label].id})
                polygons += 1
                continue
            if isinstance(g, Caption):  # into the split's captions_<split>.json, with the same image id
                entry = caption_entry(image_id, 0, ann)
                del entry["id"]
                sw.caption(entry)
                report.annotations["caption"] += 1
                continue
            if ann.label not in classes:
                if frozen:
                    raise FormatError(f"class {ann.label!r} is not in the class list", path=str(sw.folder))
                classes.add(ann.label, id=next_id)
                next_id = max(next_id, classes[ann.label].id) + 1
            coco = _annotation_entry(ann, ref, report)
            if coco is None:
                continue
            coco.update(image_id=image_id, category_id=classes[ann.label].id)
            sw.annotation(coco)
        if boxes:
            report.annotations["box"] += boxes
        if polygons:
            report.annotations["polygon"] += polygons


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
    if isinstance(g, Polyline):  # `registry.write` drops lines before a writer sees them; a direct caller too
        report.drop("polyline", f"coco {UNHELD['polyline']}")
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
