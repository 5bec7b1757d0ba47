"""YOLO in the Ultralytics layout: ``data.yaml``, ``images/<split>/x.jpg``, ``labels/<split>/x.txt``.

Documentation of the format: https://docs.ultralytics.com/datasets/detect/ (boxes),
https://docs.ultralytics.com/datasets/segment/ (polygons), https://docs.ultralytics.com/datasets/obb/
(oriented boxes) and https://docs.ultralytics.com/datasets/pose/ (keypoints).

One label line per object, every coordinate a fraction (0..1) of the image's width or height:

====================================  ==========================================================
``cls cx cy w h``                     box → :class:`Box`
``cls x1 y1 x2 y2 ... xn yn``         polygon, n >= 3 → :class:`Polygon` (one ring)
``cls x1 y1 x2 y2 x3 y3 x4 y4``       oriented box → :class:`RotatedBox` (only in an OBB dataset)
``cls cx cy w h px1 py1 [v1] ...``    pose → :class:`Keypoints` with the box as ``Annotation.bbox``
                                      (only when data.yaml has ``kpt_shape``)
====================================  ==========================================================

**The 8-number rule.** Eight numbers after the class are both a 4-point polygon and an oriented
box. They are read as a :class:`RotatedBox` only when data.yaml says ``task: obb`` or the caller
passes ``read(..., task="obb")``; otherwise they are a 4-point :class:`Polygon`. The writer adds
``task: obb`` to data.yaml when it writes an oriented box, and reports 4-point polygons written into
such a dataset (they would read back as oriented boxes).

**Several rings.** An Ultralytics line holds one ring, so the writer writes each ring of a
multi-ring polygon (or of a mask with several parts) as its own line with the same class, and
counts it in ``WriteReport.converted``. Read back, each ring is its own annotation.

Reading streams: image folders are walked lazily and each label file is read when its image is
yielded. Sizes come from the image headers through `base.image_size`, upright (EXIF orientation
applied), which is also the size Ultralytics normalises by. Coordinates well outside 0..1 (below -0.5 or above 1.5) are refused as "not
normalised"; small overhangs are kept as they are for the health checks to report.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError, ImageError, VisionLoopError
from visionloop.core.geometry import (
    Box,
    Caption,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    mask_to_polygon,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    check_inside,
    image_size,
    is_image,
    iter_files,
    place_image,
    quarantine,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "yolo"
YAML_NAMES = ("data.yaml", "data.yml")
SPLIT_KEYS = ("train", "val", "test")
#: classes.txt as labelImg writes it, used when there is no data.yaml
CLASSES_TXT = "classes.txt"
#: data.yaml keys that never name images
_NOT_SPLITS = frozenset({
    "path", "names", "nc", "task", "download", "kpt_shape", "flip_idx", "channels", "roboflow",
    "yaml_file", "license", "url", "description", "version",
})
#: how far outside 0..1 a coordinate may be before the file is taken for not normalised
_NORMALISED_MIN, _NORMALISED_MAX = -0.5, 1.5
_MAX_DETECT_ENTRIES = 2000


# --------------------------------------------------------------------------- label lines (shared)


@dataclass(frozen=True)
class LineRules:
    """How to read the numbers after the class index (shared with `formats.darknet`).

    obb: eight numbers are an oriented box (else a 4-point polygon).
    boxes_only: only ``cls cx cy w h`` is allowed (Darknet).
    kpt_shape: (keypoints, 2 or 3) of a pose dataset.
    """

    obb: bool = False
    boxes_only: bool = False
    kpt_shape: tuple[int, int] | None = None


def parse_label_file(
    label: Path,
    size: tuple[int, int],
    classes: ClassMap,
    *,
    rules: LineRules,
    grow: bool = False,
) -> tuple[Annotation, ...] | None:
    """The annotations of one label file in absolute pixels, or None when the file does not exist.

    `size` is the image's (width, height). With `grow` unknown class indices become classes
    named by their index; without it they are an error.
    """
    try:
        handle = open(label, encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise FormatError(f"cannot read the label file ({e.strerror or e})", path=label) from None
    annotations: list[Annotation] = []
    with handle:
        lineno = 0
        try:
            for lineno, line in enumerate(handle, start=1):
                fields = line.split()
                if fields:
                    annotations.append(
                        _parse_line(fields, size, classes, rules=rules, grow=grow, path=label, lineno=lineno)
                    )
        except UnicodeDecodeError:
            raise FormatError("not a text file (cannot decode it as UTF-8)", path=label,
                              where=f"line {lineno + 1}") from None
    return tuple(annotations)


def _parse_line(
    fields: list[str],
    size: tuple[int, int],
    classes: ClassMap,
    *,
    rules: LineRules,
    grow: bool,
    path: Path,
    lineno: int,
) -> Annotation:
    where = f"line {lineno}"
    shape = _line_shape(len(fields) - 1, rules, path=path, where=where)
    values = _floats(fields[1:], path=path, where=where)
    name = _class_name(fields[0], classes, grow=grow, path=path, where=where)
    _check_normalised(values, shape, rules, path=path, where=where)
    width, height = size
    try:
        if shape == "box":
            return Annotation(name, _box(values, width, height, path=path, where=where))
        if shape == "obb":
            points = [(values[i] * width, values[i + 1] * height) for i in range(0, 8, 2)]
            return Annotation(name, RotatedBox.from_corners(points))
        if shape == "pose":
            box = _box(values[:4], width, height, path=path, where=where)
            return Annotation(name, _keypoints(values[4:], rules, width, height), bbox=box)
        ring = tuple(v * (width if i % 2 == 0 else height) for i, v in enumerate(values))
        return Annotation(name, Polygon((ring,)))
    except ValueError as e:
        raise FormatError(str(e), path=path, where=where) from None


def _line_shape(n: int, rules: LineRules, *, path: Path, where: str) -> str:
    """What a line with `n` numbers after the class is: box, obb, pose or polygon."""
    if rules.boxes_only:
        if n != 4:
            raise FormatError(f"expected 5 fields (class cx cy w h), got {n + 1}", path=path, where=where)
        return "box"
    if rules.kpt_shape is not None and n == 4 + rules.kpt_shape[0] * rules.kpt_shape[1]:
        return "pose"
    if n == 4:
        return "box"
    if n == 8 and rules.obb:
        return "obb"
    if n >= 6 and n % 2 == 0:
        return "polygon"
    if n % 2:
        raise FormatError(
            f"wrong number of fields ({n + 1}): a polygon needs an even number of coordinates after "
            f"the class, got {n}",
            path=path, where=where,
            hint="a box is `class cx cy w h`, a polygon `class x1 y1 x2 y2 x3 y3 ...`",
        )
    raise FormatError(
        f"wrong number of fields ({n + 1}): expected `class cx cy w h` (5 fields) or a polygon "
        "of at least 3 points (7 or more fields)",
        path=path, where=where,
    )


def _floats(tokens: Sequence[str], *, path: Path, where: str) -> list[float]:
    out: list[float] = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise FormatError(f"{token!r} is not a number", path=path, where=where) from None
        if not math.isfinite(value):
            raise FormatError(f"{token!r} is not a finite number", path=path, where=where)
        out.append(value)
    return out


def _class_name(token: str, classes: ClassMap, *, grow: bool, path: Path, where: str) -> str:
    try:
        index = int(token)
    except ValueError:
        try:
            as_float = float(token)
        except ValueError:
            raise FormatError(f"class index {token!r} is not a number", path=path, where=where) from None
        if not as_float.is_integer():
            raise FormatError(f"class index {token!r} is not a whole number", path=path, where=where) from None
        index = int(as_float)
    info = classes.by_id(index)
    if info is not None:
        return info.name
    if grow and index >= 0:
        return classes.add(str(index), id=index).name
    known = ", ".join(str(c.id) for c in classes) or "none"
    raise FormatError(
        f"class index {index} is not in the class names (known indices: {known})",
        path=path, where=where, hint="add the class to `names` in data.yaml or fix the label",
    )


def _check_normalised(values: list[float], shape: str, rules: LineRules, *, path: Path, where: str) -> None:
    coords = values
    if shape == "pose" and rules.kpt_shape is not None and rules.kpt_shape[1] == 3:
        coords = values[:4] + [v for i, v in enumerate(values[4:]) if i % 3 != 2]
    for v in coords:
        if not _NORMALISED_MIN <= v <= _NORMALISED_MAX:
            raise FormatError(
                f"coordinate {v:g} is not normalised: YOLO coordinates are fractions (0..1) of the "
                "image size",
                path=path, where=where, hint="convert pixel coordinates by dividing by the image size",
            )


def _box(values: Sequence[float], width: int, height: int, *, path: Path, where: str) -> Box:
    cx, cy, w, h = values
    if w < 0 or h < 0:
        raise FormatError(f"negative box size ({w:g} × {h:g})", path=path, where=where)
    return Box.from_cxcywh(cx * width, cy * height, w * width, h * height)


def _keypoints(values: Sequence[float], rules: LineRules, width: int, height: int) -> Keypoints:
    assert rules.kpt_shape is not None
    count, dims = rules.kpt_shape
    flat: list[float] = []
    for k in range(count):
        x, y = values[k * dims], values[k * dims + 1]
        v = values[k * dims + 2] if dims == 3 else (2.0 if (x or y) else 0.0)
        flat += [x * width, y * height, v]
    return Keypoints(tuple(flat))


def number(value: float) -> str:
    """A normalised coordinate as the writers print it: 6 decimals, never ``-0.000000``."""
    text = f"{value:.6f}"
    return "0.000000" if text == "-0.000000" else text


def box_line(index: int, box: Box, width: int, height: int) -> str:
    """``cls cx cy w h`` normalised to the image size (shared with `formats.darknet`)."""
    line = (f"{index} {(box.x0 + box.x1) / 2 / width:.6f} {(box.y0 + box.y1) / 2 / height:.6f} "
            f"{(box.x1 - box.x0) / width:.6f} {(box.y1 - box.y0) / height:.6f}")
    return line.replace("-0.000000", "0.000000") if "-0.000000" in line else line


def points_line(index: int, flat: Sequence[float], width: int, height: int) -> str:
    """``cls x1 y1 ... xn yn`` normalised to the image size."""
    coords = (number(v / (width if i % 2 == 0 else height)) for i, v in enumerate(flat))
    return " ".join([str(index), *coords])


def upright_size(ref: ImageRef) -> tuple[int, int]:
    """The upright (width, height) coordinates are relative to; from the file when the ref lacks it."""
    sized = with_size(ref)
    if sized.width is None or sized.height is None:  # pragma: no cover - with_size fills both
        raise ImageError("image size unknown", path=ref.file_name)
    return sized.width, sized.height


class NameBook:
    """Unique image names per output folder: a second ``x.jpg`` (or ``x.png``) becomes ``x_1.jpg``.

    Names are compared by stem, case-insensitively, because the label file is ``<stem>.txt`` and
    file systems may ignore case. Shared with `formats.darknet`.
    """

    def __init__(self) -> None:
        self._taken: dict[str, set[str]] = {}

    def claim(self, folder: str, name: str, report: WriteReport) -> str:
        taken = self._taken.setdefault(folder, set())
        stem, suffix = os.path.splitext(name)
        candidate, k, key = name, 0, stem.casefold()
        while key in taken:
            k += 1
            candidate = f"{stem}_{k}{suffix}"
            key = f"{stem}_{k}".casefold()
        taken.add(key)
        if k:
            log.warning("%s: %s already written to %s; writing it as %s", report.format, name, folder, candidate)
            report.converted["image name -> renamed (name already used in its split)"] += 1
        return candidate


def folder_name(split: str) -> str:
    """A split name usable as one folder name."""
    cleaned = re.sub(r"[^\w.-]+", "_", split).strip("._")
    return cleaned or "train"


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Source:
    split: str | None
    location: Path  # a folder of images, or a .txt file listing images
    declared_by: Path | None = None  # the data.yaml that named it


@dataclass
class _Layout:
    root: Path
    classes: ClassMap
    known_names: bool
    sources: list[_Source]
    rules: LineRules


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8-sig") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise FormatError("file not found", path=path) from None
    except UnicodeDecodeError:
        raise FormatError("not a text file (cannot decode it as UTF-8)", path=path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FormatError(f"malformed YAML: {problem}", path=path, where=where) from None


def _find_yaml(folder: Path) -> Path | None:
    """data.yaml / data.yml, else the first top-level YAML file with `names` and a split key."""
    for name in YAML_NAMES:
        if (folder / name).is_file():
            return folder / name
    with os.scandir(folder) as entries:
        others = sorted(Path(e.path) for e in entries
                        if e.name.lower().endswith((".yaml", ".yml")) and e.is_file())
    for candidate in others[:5]:
        try:
            data = _load_yaml(candidate)
        except FormatError:
            continue
        if isinstance(data, dict) and "names" in data and any(k in data for k in SPLIT_KEYS):
            return candidate
    return None


def _classes_from_yaml(data: dict[str, Any], path: Path) -> ClassMap:
    names = data.get("names")
    nc = data.get("nc")
    if names is None:
        if isinstance(nc, int) and nc >= 0:
            return ClassMap.from_names(f"class_{i}" for i in range(nc))
        raise FormatError("no `names` (the class names) in the YAML", path=path,
                          hint="add `names: {0: first_class, 1: second_class}`")
    if isinstance(names, list):
        pairs = list(enumerate(names))
    elif isinstance(names, dict):
        pairs = []
        for key, value in names.items():
            try:
                pairs.append((int(key), value))
            except (TypeError, ValueError):
                raise FormatError(f"class index {key!r} in `names` is not a whole number", path=path,
                                  where="names") from None
        pairs.sort()
    else:
        raise FormatError(f"`names` must be a list or a mapping of index to name, got {type(names).__name__}",
                          path=path, where="names")
    infos = []
    for index, name in pairs:
        if name is None or str(name).strip() == "":
            raise FormatError(f"class {index} has an empty name", path=path, where="names")
        infos.append(ClassInfo(str(name), index))
    try:
        classes = ClassMap(infos)
    except ValueError as e:
        raise FormatError(str(e), path=path, where="names") from None
    if isinstance(nc, int) and nc != len(classes):
        raise FormatError(f"`nc` is {nc} but `names` has {len(classes)} classes", path=path, where="nc")
    return classes


def _dataset_root(value: Any, yaml_path: Path) -> Path:
    """`path:` relative to the YAML's folder (Ultralytics takes it relative to its own datasets
    folder, which does not exist elsewhere); the YAML's folder when missing or not found here."""
    here = yaml_path.parent
    if value in (None, ""):
        return here
    candidate = Path(str(value)).expanduser()
    if not candidate.is_absolute():
        candidate = here / candidate
    if candidate.is_dir():
        return candidate
    log.warning("%s: `path: %s` does not exist here; using the YAML's folder %s", yaml_path, value, here)
    return here


def _resolve_entry(entry: str, root: Path, yaml_path: Path) -> Path | None:
    """A split entry (`images/train`, `../train/images`, `train.txt`) as an existing path."""
    entry = entry.strip().replace("\\", "/")
    p = Path(entry).expanduser()
    if p.is_absolute():
        return p if p.exists() else None
    bases = [root, yaml_path.parent]
    candidates = [b / entry for b in bases]
    if entry.startswith("../"):  # Roboflow writes ../train/images next to train/
        candidates += [b / entry[3:] for b in bases]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return None


def _split_entries(value: Any) -> list[str] | None:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _yaml_layout(yaml_path: Path, task: str | None) -> _Layout:
    data = _load_yaml(yaml_path)
    if not isinstance(data, dict):
        raise FormatError("the YAML is not a mapping of keys to values", path=yaml_path)
    root = _dataset_root(data.get("path"), yaml_path)
    classes = _classes_from_yaml(data, yaml_path)
    task = task or (str(data["task"]) if data.get("task") else None)
    rules = LineRules(obb=task == "obb", kpt_shape=_kpt_shape(data, yaml_path))
    sources: list[_Source] = []
    for key in SPLIT_KEYS:
        entries = _split_entries(data.get(key))
        for entry in entries or []:
            found = _resolve_entry(entry, root, yaml_path)
            if found is None and key == "test":
                # Ultralytics requires `train` and `val` only; Roboflow writes `test: ../test/images` whether or
                # not the export has a test split
                log.info("%s: `test: %s` is absent; no test split", yaml_path, entry)
                continue
            if found is None:
                raise FormatError(
                    f"`{key}: {entry}` is not a folder or file here (looked relative to {root})",
                    path=yaml_path, where=f"key {key!r}", hint="fix the path or remove the key",
                )
            check_inside(found, yaml_path.parent, path=yaml_path, where=f"key {key!r}")
            sources.append(_Source(key, found, yaml_path))
    for key, value in data.items():  # extra splits written as `holdout: images/holdout`
        if key in SPLIT_KEYS or key in _NOT_SPLITS or not isinstance(key, str):
            continue
        for entry in _split_entries(value) or []:
            found = _resolve_entry(entry, root, yaml_path)
            if found is not None and (found.is_dir() or found.suffix.lower() == ".txt"):
                check_inside(found, yaml_path.parent, path=yaml_path, where=f"key {key!r}")
                sources.append(_Source(key, found, yaml_path))
    if not sources and not any(key in data for key in SPLIT_KEYS):
        # supervision's `DetectionDataset.as_yolo` writes `nc` and `names` only (supervision/dataset/formats/
        # yolo.py, `save_data_yaml`): the images are found as without a data.yaml, the classes are the YAML's
        sources = _folder_sources(root)
    if not sources:
        raise FormatError("the YAML names no images (no `train:`, `val:` or `test:`)", path=yaml_path,
                          hint="add `train: images/train`")
    return _Layout(root, classes, True, sources, rules)


def _kpt_shape(data: dict[str, Any], yaml_path: Path) -> tuple[int, int] | None:
    value = data.get("kpt_shape")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) for v in value)
            or value[0] <= 0 or value[1] not in (2, 3)):
        raise FormatError(f"`kpt_shape` must be [keypoints, 2 or 3], got {value!r}", path=yaml_path,
                          where="kpt_shape")
    return (value[0], value[1])


def _split_order(name: str) -> tuple[int, str]:
    order = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
    return (order.get(name, 3), name)


def _subdirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:  # d_type, no stat per entry: cheap on big flat folders
        dirs = [Path(e.path) for e in entries if e.is_dir()]
    return sorted(dirs, key=lambda p: _split_order(p.name))


def _has_images(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(e.is_file() and is_image(Path(e.name)) for e in entries)


def _folder_sources(root: Path) -> list[_Source]:
    """Sources of a folder without data.yaml: images/<split>, <split>/images, images/, or root."""
    images = root / "images"
    if images.is_dir() and (root / "labels").is_dir():
        subs = _subdirs(images)
        if subs and not _has_images(images):
            return [_Source(s.name, s) for s in subs]
        return [_Source(None, images)]
    sources = [_Source(s.name, s / "images") for s in _subdirs(root)
               if (s / "images").is_dir() and (s / "labels").is_dir()]
    if sources:
        return sources
    if images.is_dir():
        return [_Source(None, images)]
    return [_Source(None, root)] if _has_images(root) else []


def _folder_layout(root: Path, task: str | None) -> _Layout:
    sources = _folder_sources(root)
    if not sources:
        raise FormatError(
            "not a YOLO dataset: no data.yaml, no images/ + labels/ folders and no images",
            path=root, hint="point at the folder holding data.yaml",
        )
    classes, known = ClassMap(), False
    for candidate in (root / CLASSES_TXT, root / "labels" / CLASSES_TXT):
        if candidate.is_file():
            classes, known = _classes_txt(candidate), True
            break
    return _Layout(root, classes, known, sources, LineRules(obb=task == "obb"))


def _classes_txt(path: Path) -> ClassMap:
    with open(path, encoding="utf-8-sig") as f:
        lines = [line.strip() for line in f]
    while lines and not lines[-1]:
        lines.pop()
    for n, name in enumerate(lines, start=1):
        if not name:
            raise FormatError("empty class name", path=path, where=f"line {n}")
    try:
        return ClassMap.from_names(lines)
    except ValueError as e:
        raise FormatError(str(e), path=path) from None


def _layout(path: Path, task: str | None) -> _Layout:
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return _yaml_layout(path, task)
        raise FormatError("not a YOLO data.yaml or dataset folder", path=path)
    if not path.is_dir():
        raise FormatError("no such file or folder", path=path)
    yaml_path = _find_yaml(path)
    if yaml_path is not None:
        return _yaml_layout(yaml_path, task)
    return _folder_layout(path, task)


# --------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None, task: str | None = None) -> Reader:
    """Stream the samples of a YOLO dataset (a folder, or its data.yaml).

    `split` names the split of every sample (instead of the YAML key or folder name).
    `task="obb"` reads 8-number lines as oriented boxes even when data.yaml does not say so.
    Nothing but data.yaml (or classes.txt) is read before the first sample is asked for.
    """
    path = Path(path)
    layout = _layout(path, task)
    return Reader(layout.classes, lambda: _samples(layout, split), source=path)


def _samples(layout: _Layout, split: str | None) -> Iterator[Sample]:
    seen: set[Path] = set()
    for source in layout.sources:
        key = source.location.resolve()
        if key in seen:
            log.warning("%s: %s is listed twice; reading it once, as split %r",
                        source.declared_by or layout.root, source.location, source.split)
            continue
        seen.add(key)
        name = split if split is not None else source.split
        if source.location.is_dir():
            obb = _obb_text_labels(source.location, layout.root)
            if obb is not None:
                raise FormatError(f"no labels/ folder for {source.location.name}/, but {obb.name}/ beside it holds "
                                  "DOTA / YOLOv5-OBB label files (`x1 y1 ... x4 y4 class difficult`)",
                                  path=source.declared_by or source.location, where=f"split {source.split!r}",
                                  hint="read it as format dota")
            _check_orphan_labels(source.location, layout.root)
            images: Iterable[Path] = iter_files(source.location, suffixes=IMAGE_EXTENSIONS)
        else:
            images = _listed_images(source.location)
        for image in images:
            try:
                sample = _sample(image, layout, name)
            except VisionLoopError as e:
                quarantine(e)  # raises unless the import quarantines: then this image is left out
                continue
            yield sample


def _listed_images(list_file: Path) -> Iterator[Path]:
    """Images of an Ultralytics list file: one path a line, `./x` relative to the list's folder."""
    with open(list_file, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            entry = line.strip().replace("\\", "/")
            if not entry or entry.startswith("#"):
                continue
            p = Path(entry)
            if not p.is_absolute():
                p = list_file.parent / entry
            if not p.is_file():
                raise ImageError(f"image {entry!r} not found", path=list_file, where=f"line {n}")
            yield p


def _rel_parts(path: Path, root: Path) -> tuple[tuple[str, ...], Path]:
    """Path parts below root (the whole path when outside) and the base they are relative to."""
    try:
        return path.relative_to(root).parts, root
    except ValueError:
        return path.parts, Path(path.anchor)


def _swap_last(parts: tuple[str, ...], old: str, new: str) -> tuple[str, ...] | None:
    for i in range(len(parts) - 2, -1, -1):  # never the file name itself
        if parts[i] == old:
            return (*parts[:i], new, *parts[i + 1:])
    return None


def label_path(image: Path, root: Path) -> Path:
    """`.../images/x.jpg` → `.../labels/x.txt` (the last `images` folder below root), else `x.txt` beside."""
    parts, base = _rel_parts(image, root)
    swapped = _swap_last(parts, "images", "labels")
    if swapped is None:
        return image.with_suffix(".txt")
    return base.joinpath(*swapped).with_suffix(".txt")


def _obb_text_labels(image_dir: Path, root: Path) -> Path | None:
    """A `labelTxt*/` folder beside an image folder that has no YOLO labels folder: DOTA / YOLOv5-OBB labels
    (`x1 y1 ... x4 y4 class difficult`, Roboflow's "YOLOv5 Oriented Bounding Boxes" export), not YOLO's."""
    labels = label_path(image_dir / "x.jpg", root).parent
    if labels == image_dir or labels.is_dir() or not image_dir.parent.is_dir():
        return None
    found = sorted(d for d in image_dir.parent.iterdir() if d.is_dir() and d.name.startswith("labelTxt"))
    return found[0] if found else None


def _check_orphan_labels(image_dir: Path, root: Path) -> None:
    """A label file whose image is missing is an error (listing only, one folder at a time)."""
    probe = label_path(image_dir / "x.jpg", root).parent
    if probe == image_dir:
        return  # labels beside images: any .txt may be a readme
    labels_dir = probe
    if not labels_dir.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(labels_dir):
        dirnames.sort()
        texts = sorted(f for f in filenames if f.lower().endswith(".txt") and f != CLASSES_TXT)
        if not texts:
            continue
        folder = Path(dirpath)
        image_folder = image_dir / folder.relative_to(labels_dir)
        stems = ({Path(n).stem for n in os.listdir(image_folder) if is_image(Path(n))}
                 if image_folder.is_dir() else set())
        for text in texts:
            if Path(text).stem not in stems:
                quarantine(ImageError(
                    f"no image for this label file (looked for {Path(text).stem}.* in {image_folder})",
                    path=folder / text, hint="add the image or delete the label file",
                ))


def _file_name(image: Path, root: Path) -> str:
    try:
        return PurePosixPath(image.relative_to(root)).as_posix()
    except ValueError:
        return image.name


def _sample(image: Path, layout: _Layout, split: str | None) -> Sample:
    width, height = image_size(image)
    annotations = parse_label_file(
        label_path(image, layout.root), (width, height), layout.classes,
        rules=layout.rules, grow=not layout.known_names,
    )
    ref = ImageRef(_file_name(image, layout.root), width=width, height=height, path=str(image.absolute()))
    if annotations is None:
        return Sample(ref, (), split=split, state=LabelState.MISSING)
    return Sample(ref, annotations, split=split)


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """How YOLO-like a path is, reading data.yaml or the first line of one label file only."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return _detect_yaml(path)
        return Detection.no("a file that is not a YOLO data.yaml")
    if not path.is_dir():
        return Detection.no("no such folder")
    for name in YAML_NAMES:
        if (path / name).is_file():
            return _detect_yaml(path / name)
    yaml_path = _find_yaml(path)
    if yaml_path is not None:
        return _detect_yaml(yaml_path)
    return _detect_folders(path)


def _detect_yaml(path: Path) -> Detection:
    try:
        data = _load_yaml(path)
    except FormatError as e:
        if path.name in YAML_NAMES:
            return Detection(0.5, f"{path.name} is YOLO's file name but does not parse ({e.message})")
        return Detection.no(f"{path.name} does not parse as YAML")
    if not isinstance(data, dict):
        return Detection.no(f"{path.name} is not a YAML mapping")
    has_names = "names" in data or "nc" in data
    splits = [k for k in SPLIT_KEYS if data.get(k)]
    if has_names and splits:
        obb = _obb_labels_of(path)
        if obb is not None:
            return Detection.no(f"{path.name} names classes, but the labels are in {obb}/ (DOTA / YOLOv5-OBB "
                                "lines), not in labels/")
        return Detection(0.95, f"{path.name} has class names and {', '.join(splits)}")
    if has_names:
        return Detection(0.5, f"{path.name} has class names but no train/val/test")
    return Detection.no(f"{path.name} has no `names`")


def _obb_labels_of(yaml_path: Path) -> str | None:
    """The `labelTxt*/` folder (relative to the YAML's) that holds the labels of a split the YAML names, if any."""
    try:
        layout = _yaml_layout(yaml_path, None)
    except VisionLoopError:
        return None  # read() will say what is wrong
    for source in layout.sources:
        if source.location.is_dir():
            obb = _obb_text_labels(source.location, layout.root)
            if obb is not None:
                try:
                    return obb.relative_to(yaml_path.parent).as_posix()
                except ValueError:
                    return obb.name
    return None


def _label_dirs(root: Path) -> list[Path]:
    dirs = []
    if (root / "images").is_dir() and (root / "labels").is_dir():
        dirs.append(root / "labels")
    for sub in _subdirs(root):
        if (sub / "images").is_dir() and (sub / "labels").is_dir():
            dirs.append(sub / "labels")
    return dirs


def _first_label_line(labels_dirs: list[Path]) -> tuple[Path, str] | None:
    looked = 0
    for labels in labels_dirs:
        for dirpath, dirnames, filenames in os.walk(labels):
            dirnames.sort()
            for name in sorted(filenames):
                looked += 1
                if looked > _MAX_DETECT_ENTRIES:
                    return None
                p = Path(dirpath) / name
                if not name.lower().endswith(".txt") or name == CLASSES_TXT or p.stat().st_size == 0:
                    continue
                with open(p, encoding="utf-8-sig", errors="replace") as f:
                    return p, f.readline()
    return None


def _looks_like_line(line: str) -> bool:
    fields = line.split()
    if len(fields) < 5:
        return False
    try:
        index = float(fields[0])
        values = [float(v) for v in fields[1:]]
    except ValueError:
        return False
    n = len(values)
    shape_ok = n == 4 or (n >= 6 and n % 2 == 0) or n % 3 == 1  # box, polygon, pose (4 + 3k)
    return index.is_integer() and index >= 0 and shape_ok and all(-0.5 <= v <= 2.0 for v in values)


def _detect_folders(root: Path) -> Detection:
    labels_dirs = _label_dirs(root)
    if not labels_dirs:
        return Detection.no("no data.yaml and no images/ + labels/ folders")
    found = _first_label_line(labels_dirs)
    if found is None:
        return Detection(0.3, "images/ and labels/ folders but no non-empty label file")
    label, line = found
    if _looks_like_line(line):
        return Detection(0.6, f"images/ and labels/ folders; {label.name} line 1 is a YOLO label line")
    return Detection(0.05, f"images/ and labels/ folders, but {label.name} line 1 is not a YOLO line")


# --------------------------------------------------------------------------- write


@dataclass
class _WriteState:
    names: NameBook
    splits: dict[str, None]  # split folders, in order of appearance
    rotated: int = 0
    quads: int = 0  # 4-point polygon lines (ambiguous with oriented boxes)
    made: set[str] = field(default_factory=set)  # label folders already created


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write samples as an Ultralytics dataset: images/<split>/, labels/<split>/, data.yaml.

    Class indices are positions in `classes` followed by unseen names in order of appearance.
    Boxes, polygons (one line per ring) and oriented boxes are written; masks become polygons;
    keypoints and whole-image labels are dropped and counted in the report. A sample with no
    label file (MISSING) gets none; a NULL sample gets an empty one; a sample whose annotations
    were all dropped gets none either (it reads back as MISSING, not as "nothing here").
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmap = ClassMap.from_names(classes.names) if classes is not None else ClassMap()
    report = WriteReport(format=FORMAT, path=str(out))
    state = _WriteState(NameBook(), {})
    for sample in samples:
        _write_sample(sample, out, cmap, images, report, state)
    _finish(out, cmap, state, report)
    return report


def write_part(samples: Iterable[Sample], out: Path, *, classes: ClassMap, images: ImageMode = ImageMode.COPY,
               start: int = 0) -> dict[str, Any]:
    """One part of a parallel write (`formats.parallel`): its label files, and what data.yaml needs."""
    out = Path(out)
    cmap = ClassMap.from_names(classes.names)
    report = WriteReport(format=FORMAT, path=str(out))
    state = _WriteState(NameBook(), {})
    for sample in samples:
        _write_sample(sample, out, cmap, images, report, state)
    if len(cmap) != len(classes):
        raise FormatError("a part met classes that are not in the class list", path=out)
    return {"report": report.to_json(), "splits": list(state.splits), "rotated": state.rotated, "quads": state.quads}


def finish_parts(out: Path, results: list[dict[str, Any]], *, classes: ClassMap) -> WriteReport:
    """data.yaml over the parts' results, as `write` would have written it."""
    report = WriteReport(format=FORMAT, path=str(out))
    state = _WriteState(NameBook(), {})
    for r in results:
        report.add(r["report"])
        state.splits.update(dict.fromkeys(r["splits"]))
        state.rotated += r["rotated"]
        state.quads += r["quads"]
    _finish(Path(out), ClassMap.from_names(classes.names), state, report)
    return report


def _finish(out: Path, cmap: ClassMap, state: _WriteState, report: WriteReport) -> None:
    if state.rotated and state.quads:
        log.warning("%s: %d 4-point polygons written into an OBB dataset read back as oriented boxes",
                    out, state.quads)
        report.converted["polygon (4 points) -> rotated_box when read back (task: obb)"] += state.quads
    _write_yaml(out, cmap, state, report)


def _yaml_keys(folders: Iterable[str]) -> dict[str, str]:
    """Split folder -> data.yaml key: a `valid`/`validation` folder is `val:` when there is no `val`."""
    keys = {folder: folder for folder in sorted(folders, key=_split_order)}
    if "val" not in keys:
        for folder in ("valid", "validation"):
            if folder in keys:
                keys[folder] = "val"  # Ultralytics trains on `val`; the folder keeps its name
                break
    return keys


def _write_sample(
    sample: Sample, out: Path, cmap: ClassMap, images: ImageMode, report: WriteReport, state: _WriteState,
) -> None:
    folder = folder_name(sample.split or "train")
    state.splits.setdefault(folder, None)
    name = state.names.claim(folder, safe_name(sample.image.file_name).rsplit("/", 1)[-1], report)
    lines: list[str] = []
    if sample.annotations:
        width, height = upright_size(sample.image)
        boxes = 0
        for ann in sample.annotations:
            g = ann.geometry
            if type(g) is Box:  # the common case, inline: a box line
                try:
                    index = cmap.index(ann.label)
                except KeyError:
                    index = cmap.index(cmap.add(ann.label).name)
                lines.append(box_line(index, g, width, height))
                boxes += 1
            else:
                lines += _lines(ann, cmap, width, height, report, state)
        if boxes:
            report.annotations["box"] += boxes
    if images is not ImageMode.NONE and place_image(sample.image, out / "images" / folder / name, images):
        report.files += 1
    report.images += 1
    if sample.state is LabelState.MISSING:
        return
    if sample.annotations and not lines:
        log.info("%s: every annotation of %s was dropped; writing no label file", out, sample.image.file_name)
        return
    label_dir = f"{out}/labels/{folder}"
    if label_dir not in state.made:
        os.makedirs(label_dir, exist_ok=True)
        state.made.add(label_dir)
    stem = os.path.splitext(name)[0]
    with open(f"{label_dir}/{stem}.txt", "wb") as f:
        f.write("".join(line + "\n" for line in lines).encode())
    report.files += 1


def _lines(
    ann: Annotation, cmap: ClassMap, width: int, height: int, report: WriteReport, state: _WriteState,
) -> list[str]:
    geometry = ann.geometry
    if isinstance(geometry, Keypoints):
        report.drop("keypoints", "YOLO detect/segment cannot hold keypoints")
        return []
    if isinstance(geometry, Label):
        report.drop("label", "YOLO detect/segment cannot hold whole-image labels")
        return []
    if isinstance(geometry, Caption):  # (left out before: base.UNHELD)
        report.drop("caption", "YOLO cannot hold captions")
        return []
    if isinstance(geometry, Polyline):  # `registry.write` drops lines before; a direct caller too
        report.drop("polyline", "YOLO has no line geometry")
        return []
    if isinstance(geometry, Mask):
        polygon = mask_to_polygon(geometry)
        if polygon is None:
            report.drop("mask", "empty mask")
            return []
        report.converted["mask -> polygon"] += 1
        geometry = polygon
    index = cmap.index(cmap.add(ann.label).name)
    if isinstance(geometry, Box):
        report.annotations["box"] += 1
        return [box_line(index, geometry, width, height)]
    if isinstance(geometry, RotatedBox):
        report.annotations["rotated_box"] += 1
        state.rotated += 1
        return [points_line(index, [c for p in geometry.corners() for c in p], width, height)]
    if len(geometry.rings) > 1:
        report.converted["polygon (several rings) -> one line per ring"] += 1
    report.annotations["polygon"] += len(geometry.rings)
    state.quads += sum(1 for ring in geometry.rings if len(ring) == 8)
    return [points_line(index, ring, width, height) for ring in geometry.rings]


def _write_yaml(out: Path, cmap: ClassMap, state: _WriteState, report: WriteReport) -> None:
    import yaml

    if not state.splits:
        (out / "images" / "train").mkdir(parents=True, exist_ok=True)
        state.splits["train"] = None
    keys = _yaml_keys(state.splits)
    data: dict[str, Any] = {"path": "."}
    for folder, key in keys.items():
        data[key] = f"images/{folder}"
    unknown = [k for k in keys.values() if k not in SPLIT_KEYS]
    if unknown:
        log.info("%s: splits %s are written but Ultralytics only trains on train/val/test", out, unknown)
    if state.rotated:
        data["task"] = "obb"
    data["nc"] = len(cmap)
    data["names"] = dict(enumerate(cmap.names))
    with open(out / "data.yaml", "w", encoding="utf-8", newline="\n") as f:
        yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
    report.files += 1
