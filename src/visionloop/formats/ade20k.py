"""ADE20K SceneParsing (the MIT Scene Parsing Benchmark release, ADEChallengeData2016).

Documentation: https://github.com/CSAILVision/sceneparsing (README: layout, "annotation masks
... pixel values are the class indices, 0 is other / not considered in evaluation") and
http://sceneparsing.csail.mit.edu/.

Layout::

    ADEChallengeData2016/
        objectInfo150.csv              Idx,Ratio,Train,Val,Name  (Idx 1..150, Name "wall", "building;edifice")
        sceneCategories.txt            ADE_train_00000001 airport_terminal
        images/training/ADE_train_00000001.jpg      images/validation/ADE_val_00000001.jpg
        annotations/training/ADE_train_00000001.png (uint8, class index per pixel, 0 = other)

The layout is the one open-mmlab/mmsegmentation reads (configs/_base_/datasets/ade20k.py: img_path
`images/training`, seg_map_path `annotations/training`; mmseg/datasets/ade.py: '.jpg' / '.png',
reduce_zero_label). objectInfo150 is read comma- or TAB-separated, its name from the `Name` column (see
`_object_info` for the three tables found under that name).

The path may be ADEChallengeData2016/ or the folder holding it. `training` is the split
"train", `validation` "val", `default` no split.

The full ADE20K release (ADE20K_2021_17_01: per image `<name>.jpg`, `<name>_seg.png`,
`<name>_parts_N.png`, `<name>.json`, `<name>/instance_*.png`; datumaro's `ade20k2020`) is
read too, by `_ade20k_full` (see there), when the folder is not the SceneParsing layout;
it is written as SceneParsing.

Reading
    One semantic Mask (attributes {"semantic": True}) per class index present; index 0 is
    skipped. Class ids are the indices, names the `Name` column as written (synonyms joined by
    ";"). The scene category goes to ImageRef.metadata["scene"]. An image without an annotation
    PNG is MISSING.

Writing
    The same layout: masks painted in annotation order (later over earlier), class indices the
    given classes' order from 1 (then new classes), `objectInfo150.csv` with the statistics
    recomputed (Ratio: the class's share of all labelled pixels; Train / Val: the number of
    images of that split showing it) and `sceneCategories.txt` from metadata["scene"].
    Instances of a class merge (counted); polygons are rasterised (counted); boxes, keypoints
    and whole-image labels are dropped (counted), as are classes past the 255th.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, kind
from visionloop.core.sample import ImageRef, LabelState, Sample
from visionloop.formats import _ade20k_full, _seg
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    iter_files,
    place_image,
    refuse_filled,
    relative_name,
    skip_unpaired,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "ade20k"
OBJECT_INFO = "objectInfo150.csv"
# its header, TABs read as commas: the release's, and semantic-segmentation-pytorch's object150_info.csv
_HEADERS = ("idx,ratio,train,val,name", "idx,ratio,train,val,stuff,name")
SCENES = "sceneCategories.txt"
RELEASE = "ADEChallengeData2016"
SPLIT_FOLDERS = {"training": "train", "validation": "val"}
FOLDER_OF_SPLIT = {v: k for k, v in SPLIT_FOLDERS.items()}
OTHER = 0


def _root(path: Path) -> Path:
    if (path / RELEASE).is_dir() and not (path / "images").is_dir():
        return path / RELEASE
    return path


def _dirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _scene_parsing(path: Path) -> Detection:
    root = _root(path)
    if (root / OBJECT_INFO).is_file():
        with open(root / OBJECT_INFO, encoding="utf-8-sig", errors="replace") as f:
            head = f.readline()
        if head.replace("\t", ",").replace(" ", "").lower().startswith(_HEADERS):
            return Detection(0.95, f"{OBJECT_INFO} (ADE20K SceneParsing)")
        return Detection(0.4, f"{OBJECT_INFO} without its Idx,Ratio,Train,Val,Name header")
    if (root / "images").is_dir() and (root / "annotations").is_dir():
        for split in _dirs(root / "annotations")[:4]:
            first = next(iter(sorted(split.glob("ADE_*.png"))[:1]), None)
            if first is not None:
                return Detection(0.8, f"annotations/{split.name}/{first.name} (ADE20K names, no {OBJECT_INFO})")
    return Detection.no(f"no {OBJECT_INFO} and no images/ + annotations/ of ADE_*.png")


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    scene = _scene_parsing(path)
    if scene.score > 0:
        return scene
    full = _ade20k_full.detect(path)
    if full.score > 0:
        return full
    return Detection.no(f"{scene.reason}; {full.reason}")


def _object_info(path: Path) -> dict[int, str]:
    """Idx -> Name. Three forms are found under this name: the release's comma CSV (`Idx,Ratio,Train,Val,Name`,
    synonyms joined by ";"), the TAB-separated table of CSAILVision/sceneparsing's objectInfo150.txt (names
    "building, edifice", stray spaces: "22 \t", "bed "), and semantic-segmentation-pytorch's object150_info.csv
    (`Idx,Ratio,Train,Val,Stuff,Name`). The delimiter is the header's, the name the `Name` column."""
    names: dict[int, str] = {}
    text = path.read_text(encoding="utf-8-sig")
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    name_col = header.index("name") if header[:1] == ["idx"] and "name" in header else 4
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and row[0].strip().lower() == "idx"):
            continue
        if len(row) <= name_col:
            raise FormatError(f"a class line needs {','.join(c.title() for c in header) or 'Idx,Ratio,Train,Val,Name'}",
                              path=path, where=f"line {number}")
        try:
            index = int(row[0].strip())
        except ValueError:
            raise FormatError(f"Idx {row[0]!r} is not an integer", path=path, where=f"line {number}") from None
        if not 1 <= index <= 255:
            raise FormatError(f"Idx {index} is outside 1..255", path=path, where=f"line {number}")
        names[index] = ",".join(row[name_col:]).strip()
    return names


def _scenes(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = parts[1]
    return out


@dataclass(frozen=True)
class _Part:
    split: str | None
    images: Path
    annotations: Path


def read(path: Path, *, split: str | None = None) -> Reader:
    if Path(path).is_dir() and _scene_parsing(Path(path)).score <= 0 and _ade20k_full.detect(Path(path)).score > 0:
        return _ade20k_full.read(Path(path), split=split)
    root = _root(Path(path))
    if not (root / "images").is_dir():
        raise FormatError("no images/ folder (ADEChallengeData2016 layout)", path=root)
    info = root / OBJECT_INFO
    names = _object_info(info) if info.is_file() else {}
    classes = ClassMap()
    for index, name in sorted(names.items()):
        classes.add(name, id=index)
    parts = []
    for folder in _dirs(root / "images"):
        name = folder.name
        part_split = None if name == _seg.NO_SPLIT else SPLIT_FOLDERS.get(name, name)
        parts.append(_Part(part_split, folder, root / "annotations" / name))
    order = {"train": 0, "val": 1}
    parts.sort(key=lambda p: (order.get(p.split or "", 2), p.images.name))
    return Reader(classes, lambda: _samples(root, parts, names, classes, split), source=root)


def _namer(names: dict[int, str], classes: ClassMap, png: Path) -> Callable[[int], str]:
    def name(value: int) -> str:
        if not names:
            if str(value) not in classes:
                classes.add(str(value), id=value)
            return str(value)
        if value not in names:
            raise FormatError(f"class index {value} is not in {OBJECT_INFO}", path=png)
        return names[value]

    return name


def _samples(root: Path, parts: list[_Part], names: dict[int, str], classes: ClassMap,
             forced: str | None) -> Iterator[Sample]:
    scenes = _scenes(root / SCENES)
    for part in parts:
        used: set[str] = set()
        yield from _part_samples(root, part, names, classes, forced, scenes, used)
        skip_unpaired(iter_files(part.annotations, suffixes=(".png",)), used, what="annotation PNG",
                      reason="no image for it", path=part.annotations)


def _part_samples(root: Path, part: _Part, names: dict[int, str], classes: ClassMap, forced: str | None,
                  scenes: dict[str, str], used: set[str]) -> Iterator[Sample]:
    for image in iter_files(part.images, suffixes=IMAGE_EXTENSIONS):
        meta = {"scene": scenes[image.stem]} if image.stem in scenes else {}
        ref = ImageRef(relative_name(image, root), path=os.path.abspath(image), metadata=meta)
        split = forced or part.split
        png = (part.annotations / image.relative_to(part.images)).with_suffix(".png")
        if not png.is_file():
            yield Sample(ref, split=split, state=LabelState.MISSING)
            continue
        used.add(os.path.abspath(png))
        arr = _seg.load_png(png)
        if arr.ndim != 2:
            raise FormatError("an ADE20K annotation must be a one-channel class index image", path=png)
        anns = _seg.semantic_annotations(arr, _namer(names, classes, png), skip=(OTHER,))
        yield Sample(replace(ref, width=int(arr.shape[1]), height=int(arr.shape[0])), tuple(anns), split=split)


class _Writer:
    def __init__(self, out: Path, classes: ClassMap | None, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.index: dict[str, int] = {}
        self.pixels: Counter[int] = Counter()
        self.total_pixels = 0
        self.seen: dict[str, Counter[int]] = {"train": Counter(), "val": Counter()}
        self.scenes: list[tuple[str, str]] = []
        self.names = _seg.NameBook()
        self.painter = _seg.Painter(self.report, "ADE20K")
        if classes is not None:
            for name in classes.names:
                self._value(name)

    def _value(self, name: str) -> int | None:
        if name not in self.index:
            if len(self.index) >= 255:
                return None
            self.index[name] = len(self.index) + 1
        return self.index[name]

    def add(self, sample: Sample) -> None:
        import numpy as np

        report = self.report
        folder = FOLDER_OF_SPLIT.get(sample.split, _seg.folder_name(sample.split)) if sample.split else _seg.NO_SPLIT
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = self.names.unique(folder, stem)
        if place_image(sample.image, self.out / "images" / folder / f"{stem}{suffix or '.jpg'}", self.images):
            report.files += 1
        report.images += 1
        scene = sample.image.metadata.get("scene")
        if isinstance(scene, str) and scene.strip():
            self.scenes.append((stem, scene.strip().replace(" ", "_")))
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        arr = np.zeros((ref.height, ref.width), dtype=np.uint8)
        for ann in sample.annotations:
            pixels = self.painter.pixels(ann, ref.width, ref.height)
            if pixels is None:
                continue
            value = self._value(ann.label)
            if value is None:
                report.drop(kind(ann.geometry), "more than 255 classes do not fit an 8-bit ADE20K annotation")
                continue
            if isinstance(ann.geometry, Mask) and not _seg.is_semantic(ann):
                report.converted["mask -> semantic class pixels (instances of a class merge)"] += 1
            _seg.paint(arr, pixels, value, background=OTHER, report=report)
            report.annotations["mask"] += 1
            _seg.count_lost(report, ann, "ADE20K")
        _seg.save_png(arr, self.out / "annotations" / folder / f"{stem}.png")
        report.files += 1
        values, counts = np.unique(arr, return_counts=True)
        self.total_pixels += arr.size
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            if v != OTHER:
                self.pixels[v] += c
                if sample.split in self.seen:
                    self.seen[sample.split][v] += 1

    def finish(self) -> WriteReport:
        self.out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["Idx", "Ratio", "Train", "Val", "Name"])
        for name, v in self.index.items():
            ratio = self.pixels[v] / self.total_pixels if self.total_pixels else 0.0
            w.writerow([v, f"{ratio:.4f}", self.seen["train"][v], self.seen["val"][v], name])
        (self.out / OBJECT_INFO).write_text(buf.getvalue(), encoding="utf-8")
        self.report.files += 1
        if self.scenes:
            (self.out / SCENES).write_text("".join(f"{s} {c}\n" for s, c in self.scenes), encoding="utf-8")
            self.report.files += 1
        return self.report


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write the ADEChallengeData2016 layout under `out` (which must not hold annotations yet)."""
    out = Path(out)
    refuse_filled(out, "annotations")
    writer = _Writer(out, classes, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()
