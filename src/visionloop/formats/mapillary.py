"""Mapillary Vistas v1.2 and v2.0: config JSON, label PNGs and instance PNGs.

Documentation: the README and `demo.py` shipped in the dataset's root
(https://www.mapillary.com/dataset/vistas), and datumaro's description of the layouts
(https://openvinotoolkit.github.io/datumaro/stable/docs/data-formats/formats/mapillary_vistas.html).

Layouts::

    config_v2.0.json | config_v1.2.json | config.json       {"labels": [{"name", "readable",
                                                               "color", "instances", "evaluate"}]}
    <split>/images/<id>.jpg                                  training, validation, testing
    <split>/v2.0/labels/<id>.png   (v1.2/ for v1.2; directly <split>/labels/ with config.json)
    <split>/v2.0/instances/<id>.png
    <split>/v2.0/panoptic/panoptic_2020.json + <id>.png      (COCO panoptic, id = R + 256 G + 256² B;
                                                              v1.2: <split>/v1.2/panoptic/panoptic_2018.json)

(Images and label folders directly in the root are a dataset without splits.) The version is
the config's file name; with both configs present v2.0 is read, unless the path given is a
config file. `training` is the split "train", `validation` "val", `testing` "test".

Encodings
    labels: palette PNG, the palette index is the label's position in the config (RGB label
    images are mapped back through the config colours). instances: uint16, label * 256 +
    instance number (`demo.py`: `instance_array / 256`, `instance_array % 256`).

Reading
    instances/ when there: for a label with `"instances": true` each distinct value is one Mask;
    for the others all pixels of the label are one semantic Mask (attributes
    {"semantic": True}). Else labels/: one semantic Mask per label. Else panoptic/ (spilled to a
    temporary SQLite file by image, so the big JSON is never held): one Mask per segment,
    `iscrowd` as `crowd`, labels without instances semantic; a category is named by its
    `supercategory` when that is a config name (the release: `name` is the readable name). Pixels of the `unlabeled`
    label are skipped. Class ids are the positions in the config, colours the config's.
    An image without label PNGs is MISSING.

Writing
    The v1.2 layout: `config_v1.2.json`, `<split>/images/<name>` (no split: `default/`),
    `<split>/v1.2/labels/<stem>.png` (palette) and `<split>/v1.2/instances/<stem>.png`, painted
    in annotation order (later over earlier). Labels: the given classes in order, then new ones;
    `void--unlabeled` first when the given classes have no `unlabeled` label (it is the
    background). A label has `"instances": true` when any non-semantic mask of it was written;
    semantic masks of such a label read back as instances (counted), instance masks are numbered
    0..255 per label and image (more are dropped). `readable` is derived from the name and
    `evaluate` is true (visionloop's ClassMap does not carry them). Polygons are rasterised;
    boxes, keypoints and whole-image labels are dropped; all counted.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    open_text_bytes,
    place_image,
    relative_name,
    skip_unpaired,
    with_size,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "mapillary"
CONFIGS = {"config_v2.0.json": "v2.0", "config_v1.2.json": "v1.2", "config.json": ""}
SPLIT_FOLDERS = {"training": "train", "validation": "val", "testing": "test"}
FOLDER_OF_SPLIT = {v: k for k, v in SPLIT_FOLDERS.items()}
UNLABELED = "void--unlabeled"


@dataclass(frozen=True)
class MapillaryLabel:
    name: str
    readable: str
    color: tuple[int, int, int]
    instances: bool
    evaluate: bool


@dataclass
class _Config:
    path: Path
    version: str  # "v2.0", "v1.2" or "" (labels directly in the split folder)
    labels: list[MapillaryLabel]
    skip: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.skip = {i for i, lb in enumerate(self.labels) if lb.name.endswith("unlabeled")}


def _load_config(path: Path) -> _Config:
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON: {e.msg}", path=path, where=f"line {e.lineno}, column {e.colno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        raise FormatError("expected an object with a `labels` list", path=path)
    labels = []
    for i, item in enumerate(data["labels"]):
        where = f"labels[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise FormatError("a label needs a `name`", path=path, where=where)
        color = item.get("color")
        if (not isinstance(color, list) or len(color) != 3
                or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise FormatError(f"`color` must be [r, g, b] integers 0..255, got {color!r}", path=path, where=where)
        labels.append(MapillaryLabel(item["name"], str(item.get("readable") or item["name"]),
                                     (color[0], color[1], color[2]), bool(item.get("instances")),
                                     bool(item.get("evaluate", True))))
    return _Config(path, CONFIGS.get(path.name, ""), labels)


def _find_config(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".json" else None
    for name in CONFIGS:
        if (path / name).is_file():
            return path / name
    return None


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Part:
    split: str | None
    folder: Path


def _parts(root: Path) -> list[_Part]:
    if (root / "images").is_dir():
        return [_Part(None, root)]
    parts = []
    try:
        with os.scandir(root) as entries:
            subdirs = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    for sub in subdirs:
        if (sub / "images").is_dir():
            split = None if sub.name == _seg.NO_SPLIT else SPLIT_FOLDERS.get(sub.name, sub.name)
            parts.append(_Part(split, sub))
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(parts, key=lambda p: (order.get(p.split or "", 1), p.folder.name))


def _annotation_dir(part: _Part, version: str, what: str) -> Path:
    return part.folder / version / what if version else part.folder / what


# ---------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    path = Path(path)
    config = _find_config(path)
    if config is None:
        return Detection.no("no config_v2.0.json, config_v1.2.json or config.json")
    try:
        with open_text_bytes(config) as f:
            head = f.read(2048)
    except OSError:
        return Detection.no(f"cannot read {config.name}")
    if b'"labels"' not in head or (b'"readable"' not in head and b'"instances"' not in head):
        return Detection.no(f"{config.name} is not a Mapillary Vistas config (no labels with readable/instances)")
    root = config.parent
    if _parts(root):
        return Detection(0.95, f"{config.name} and <split>/images/ (Mapillary Vistas)")
    return Detection(0.6, f"{config.name} is a Mapillary Vistas config, but no images/ folder was found")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    config_path = _find_config(path)
    if config_path is None:
        raise FormatError("no Mapillary Vistas config (config_v2.0.json, config_v1.2.json, config.json)", path=path)
    config = _load_config(config_path)
    root = config_path.parent
    parts = _parts(root)
    if not parts:
        raise FormatError("no images/ folder in the root or in a split folder", path=root)
    classes = ClassMap([ClassInfo(lb.name, i, color=_seg.rgb_to_hex(lb.color))
                        for i, lb in enumerate(config.labels)])
    return Reader(classes, lambda: _samples(root, parts, config, split), source=root)


def _samples(root: Path, parts: list[_Part], config: _Config, forced: str | None) -> Iterator[Sample]:
    for part in parts:
        images = sorted(p for p in (part.folder / "images").iterdir() if p.is_file() and is_image(p))
        inst_dir = _annotation_dir(part, config.version, "instances")
        label_dir = _annotation_dir(part, config.version, "labels")
        pan_dir = _annotation_dir(part, config.version, "panoptic")
        panoptic: _Panoptic | None = None
        stems = {p.stem for p in images}
        for folder in dict.fromkeys((inst_dir, label_dir, pan_dir)):  # annotation PNGs whose image is not there
            if folder.is_dir():
                pngs = sorted(folder.glob("*.png"))
                skip_unpaired(pngs, {os.path.abspath(p) for p in pngs if p.stem in stems}, what="annotation PNG",
                              reason="no image for it", path=folder)
        try:
            for image in images:
                ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
                split = forced or part.split
                inst, labels = inst_dir / f"{image.stem}.png", label_dir / f"{image.stem}.png"
                pan_png = pan_dir / f"{image.stem}.png"
                if inst.is_file():
                    arr = _seg.load_png(inst)
                    if arr.ndim != 2:
                        raise FormatError("an instance PNG must be one-channel 16-bit", path=inst)
                    anns = _instances(arr, config, inst)
                elif labels.is_file():
                    arr = _label_indices(labels, config)
                    anns = _seg.semantic_annotations(arr, _namer(config, labels), skip=config.skip)
                elif pan_png.is_file() and (pan_json := _panoptic_json(pan_dir)) is not None:
                    if panoptic is None:
                        panoptic = _Panoptic.open(pan_json, config)
                    arr, anns = panoptic.annotations(pan_png, config)
                else:
                    yield Sample(ref, split=split, state=LabelState.MISSING)
                    continue
                yield Sample(replace(ref, width=int(arr.shape[1]), height=int(arr.shape[0])), tuple(anns),
                             split=split)
        finally:
            if panoptic is not None:
                panoptic.close()


#: the panoptic JSON's name: v2.0 releases `panoptic_2020.json`, v1.2 `panoptic_2018.json` (datumaro's
#: mapillary_vistas importer and Mask2Former's registration read the same names)
PANOPTIC_JSONS = ("panoptic_2020.json", "panoptic_2018.json")


def _panoptic_json(folder: Path) -> Path | None:
    return next((folder / n for n in PANOPTIC_JSONS if (folder / n).is_file()), None)


@dataclass
class _Panoptic:
    """panoptic_2020.json (COCO panoptic: segments_info per image) spilled into SQLite by file name."""

    path: Path
    db: sqlite3.Connection
    tmp: tempfile.TemporaryDirectory[str]
    categories: dict[int, str]

    @classmethod
    def open(cls, path: Path, config: _Config) -> _Panoptic:
        """Category names are the config's: the release's categories carry the readable name in `name` and the
        config name in `supercategory` ({"id": 1, "name": "Bird", "supercategory": "animal--bird"}, ids 1-based;
        facebookresearch/Mask2Former mask2former/data/datasets/register_mapillary_vistas_panoptic.py
        `MAPILLARY_VISTAS_SEM_SEG_CATEGORIES`)."""
        import ijson

        known = {lb.name for lb in config.labels}

        tmp = tempfile.TemporaryDirectory(prefix="visionloop-mapillary-")
        db = sqlite3.connect(Path(tmp.name) / "panoptic.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("CREATE TABLE seg (stem TEXT PRIMARY KEY, data BLOB)")
        categories: dict[int, str] = {}
        try:
            with open_text_bytes(path) as f:
                for i, cat in enumerate(ijson.items(f, "categories.item")):
                    if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
                        raise FormatError("a category needs `id` and `name`", path=path, where=f"categories[{i}]")
                    parent = cat.get("supercategory")
                    categories[int(cat["id"])] = parent if parent in known else str(cat["name"])
            with open_text_bytes(path) as f:
                batch = []
                for i, ann in enumerate(ijson.items(f, "annotations.item")):
                    if not isinstance(ann, dict) or not isinstance(ann.get("segments_info"), list):
                        raise FormatError("an annotation needs `file_name` and `segments_info`", path=path,
                                          where=f"annotations[{i}]")
                    stem = Path(str(ann.get("file_name") or ann.get("image_id"))).stem
                    batch.append((stem, bytes(memoryview(orjson.dumps([i, ann["segments_info"]])))))  # no slack
                    if len(batch) >= 5000:
                        db.executemany("INSERT OR REPLACE INTO seg VALUES (?, ?)", batch)
                        batch.clear()
                db.executemany("INSERT OR REPLACE INTO seg VALUES (?, ?)", batch)
        except ijson.JSONError as e:
            db.close()
            tmp.cleanup()
            raise FormatError(f"malformed JSON ({e})", path=path) from None
        return cls(path, db, tmp, categories)

    def annotations(self, png: Path, config: _Config) -> tuple[np.ndarray, list[Annotation]]:
        row = self.db.execute("SELECT data FROM seg WHERE stem = ?", (png.stem,)).fetchone()
        rgb = _seg.load_png(png)
        if rgb.ndim != 3:
            raise FormatError("a panoptic PNG must be RGB (id = R + 256 G + 256² B)", path=png)
        if row is None:
            raise FormatError(f"{png.name} is not listed in {self.path.name}", path=png)
        index, segments = orjson.loads(row[0])
        ids = _seg.rgb_codes(rgb[..., ::-1])  # B << 16 | G << 8 | R = R + 256 G + 256² B
        instances = {lb.name: lb.instances for lb in config.labels}
        anns = []
        for k, info in enumerate(segments):
            where = f"annotations[{index}].segments_info[{k}]"
            try:
                name = self.categories[int(info["category_id"])]
                mask = Mask.from_array(ids == int(info["id"]))
            except (KeyError, TypeError, ValueError):
                raise FormatError("a segment needs an `id` and a known `category_id`", path=self.path,
                                  where=where) from None
            if name.endswith("unlabeled") or mask.area == 0:
                continue
            if instances.get(name, True):
                anns.append(Annotation(name, mask, crowd=bool(info.get("iscrowd"))))
            else:
                anns.append(Annotation(name, mask, attributes={"semantic": True}))
        return ids, anns

    def close(self) -> None:
        self.db.close()
        self.tmp.cleanup()


def _namer(config: _Config, path: Path) -> Callable[[int], str]:
    return lambda index: _name(config, index, path)


def _name(config: _Config, index: int, path: Path) -> str:
    if not 0 <= index < len(config.labels):
        raise FormatError(f"label index {index} is not in {config.path.name} ({len(config.labels)} labels)",
                          path=path)
    return config.labels[index].name


def _label_indices(path: Path, config: _Config) -> np.ndarray:
    arr = _seg.load_png(path)
    if arr.ndim == 3:
        colours = {lb.color: i for i, lb in reversed(list(enumerate(config.labels)))}
        arr = _seg.colours_to_index(arr, colours, path, hint=f"colours come from {config.path.name}")
    return arr


def _instances(arr: np.ndarray, config: _Config, path: Path) -> list[Annotation]:
    import numpy as np

    anns = []
    values = _seg.value_masks(arr)
    done: set[int] = set()
    for value, mask in values:
        index = value >> 8
        if index in config.skip or index in done:
            continue
        name = _seg.name_at(arr, value, lambda i: _name(config, i, path), index)
        if config.labels[index].instances:
            anns.append(Annotation(name, mask))
            continue
        same = [v for v, _ in values if v >> 8 == index]
        if len(same) > 1:
            mask = Mask.from_array(np.isin(arr, same))
        done.add(index)
        anns.append(Annotation(name, mask, attributes={"semantic": True}))
    return anns


# ---------------------------------------------------------------- write


def _readable(name: str) -> str:
    return name.rsplit("--", 1)[-1].replace("-", " ").capitalize()


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.source_classes = classes
        self.index: dict[str, int] = {}
        self.colours: list[tuple[int, int, int]] = []
        self.instances: Counter[str] = Counter()
        self.semantic: Counter[str] = Counter()
        self.names = _seg.NameBook()
        self.painter = _seg.Painter(self.report, "Mapillary Vistas")
        given = classes.names if classes is not None else []
        if not any(n.endswith("unlabeled") for n in given):
            self._index(UNLABELED)
        for name in given:
            self._index(name)
        self.background = next(i for n, i in self.index.items() if n.endswith("unlabeled"))

    def _index(self, name: str) -> int | None:
        if name not in self.index:
            if len(self.index) > 255:
                return None
            self.index[name] = len(self.index)
            wanted = (0, 0, 0) if name.endswith("unlabeled") else _seg.class_colour(self.source_classes, name)
            self.colours.append(_seg.free_colour(wanted, set(self.colours), len(self.colours)))
        return self.index[name]

    def add(self, sample: Sample) -> None:
        import numpy as np

        report = self.report
        folder = FOLDER_OF_SPLIT.get(sample.split, _seg.folder_name(sample.split)) if sample.split else _seg.NO_SPLIT
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = self.names.unique(folder, stem)
        if place_image(sample.image, self.out / folder / "images" / f"{stem}{suffix or '.jpg'}", self.images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        labels = np.full((ref.height, ref.width), self.background, dtype=np.uint8)
        inst = np.full((ref.height, ref.width), self.background * 256, dtype=np.uint16)
        numbers: Counter[str] = Counter()
        for ann in sample.annotations:
            pixels = self.painter.pixels(ann, ref.width, ref.height)
            if pixels is None:
                continue
            index = self._index(ann.label)
            if index is None:
                report.drop(kind(ann.geometry), "more than 256 labels do not fit Mapillary's 8-bit label images")
                continue
            if index == self.background:
                report.drop(kind(ann.geometry), "the unlabeled label is the background and reads back as nothing")
                continue
            if numbers[ann.label] > 255:
                report.drop(kind(ann.geometry), "more than 256 instances of a label in one image")
                continue
            number = numbers[ann.label]
            numbers[ann.label] += 1
            if _seg.is_semantic(ann):
                self.semantic[ann.label] += 1
            else:
                self.instances[ann.label] += 1
            pixels.set(labels, index)
            _seg.paint(inst, pixels, index * 256 + number, background=self.background * 256, report=report)
            report.annotations["mask"] += 1
            _seg.count_lost(report, ann, "Mapillary Vistas")
        base = self.out / folder / "v1.2"
        _seg.save_png(labels, base / "labels" / f"{stem}.png", palette=self.colours)
        _seg.save_png(inst, base / "instances" / f"{stem}.png")
        report.files += 2

    def finish(self) -> WriteReport:
        labels: list[dict[str, Any]] = []
        for name, i in self.index.items():
            has_instances = self.instances[name] > 0
            if has_instances and self.semantic[name]:
                self.report.converted["semantic mask -> instance (the label has instances)"] += self.semantic[name]
            labels.append({"color": list(self.colours[i]), "instances": has_instances,
                           "readable": _readable(name), "name": name, "evaluate": True})
        self.out.mkdir(parents=True, exist_ok=True)
        doc = {"labels": labels, "version": "1.2"}
        (self.out / "config_v1.2.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        self.report.files += 1
        return self.report


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the Mapillary Vistas v1.2 layout under `out` (which must not hold a config yet)."""
    out = Path(out)
    if any((out / name).exists() for name in CONFIGS):
        raise FormatError("the output folder already holds a Mapillary config", path=out,
                          hint="write into an empty folder; nothing is overwritten")
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()
