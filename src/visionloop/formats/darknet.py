"""YOLO Darknet: ``obj.names``, ``obj.data``, ``train.txt`` / ``valid.txt``, a label .txt beside each image.

The layout CVAT's "YOLO 1.1" export and AlexeyAB's darknet use::

    obj.data            classes = 2 / train = data/train.txt / valid = data/valid.txt / names = data/obj.names
    obj.names           one class name a line, line n is class index n - 1
    train.txt           one image path a line, e.g. data/obj_train_data/x.jpg
    obj_train_data/     x.jpg and x.txt (label lines `cls cx cy w h`, normalised as in YOLO detect)

Paths in obj.data and the lists may be relative to the dataset folder, carry darknet's ``data/``
prefix (the dataset is darknet's ``data/`` folder), or be absolute paths of another machine that
contain ``/data/``: each is tried in that order. ``valid`` is read as split ``val`` (and split
``val`` is written as ``valid``), so Darknet and Ultralytics datasets agree on split names.
Without obj.data the reader takes obj.names plus train.txt / valid.txt / test.txt beside it, and
without lists every image under the folder (split None).

Darknet holds boxes only. The writer converts other geometries to their box: polygons, masks and
oriented boxes become ``Annotation.box`` (the declared bbox, else the geometry's bounds), keypoints
become their declared bbox when they have one; each conversion is counted in
``WriteReport.converted``. Keypoints without a declared bbox and whole-image labels are dropped
and counted in ``WriteReport.dropped``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Label, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    image_size,
    iter_files,
    place_image,
    safe_name,
)
from visionloop.formats.yolo import (
    LineRules,
    NameBook,
    box_line,
    folder_name,
    parse_label_file,
    upright_size,
)

log = logging.getLogger(__name__)

FORMAT = "darknet"
DATA_FILE = "obj.data"
NAMES_FILE = "obj.names"
LIST_KEYS = {"train": "train", "valid": "val", "test": "test"}  # obj.data key -> split
_NOT_LISTS = frozenset({"classes", "names", "backup", "eval", "results", "map", "labels"})
_RULES = LineRules(boxes_only=True)


@dataclass(frozen=True)
class _Source:
    split: str | None
    list_file: Path | None  # None: every image under the root


@dataclass
class _Layout:
    root: Path
    classes: ClassMap
    sources: list[_Source]


# --------------------------------------------------------------------------- files


def _parse_data_file(path: Path) -> dict[str, tuple[str, int]]:
    """obj.data as {key: (value, line number)}."""
    entries: dict[str, tuple[str, int]] = {}
    try:
        with open(path, encoding="utf-8-sig") as f:
            for n, raw in enumerate(f, start=1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                if "=" not in line:
                    raise FormatError(f"expected `key = value`, got {line!r}", path=path, where=f"line {n}")
                key, value = (part.strip() for part in line.split("=", 1))
                entries[key.lower()] = (value, n)
    except UnicodeDecodeError:
        raise FormatError("not a text file (cannot decode it as UTF-8)", path=path) from None
    return entries


def _read_names(path: Path) -> ClassMap:
    try:
        with open(path, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f]
    except FileNotFoundError:
        raise FormatError("class names file not found", path=path) from None
    except UnicodeDecodeError:
        raise FormatError("not a text file (cannot decode it as UTF-8)", path=path) from None
    while names and not names[-1]:
        names.pop()
    for n, name in enumerate(names, start=1):
        if not name:
            raise FormatError("empty class name", path=path, where=f"line {n}",
                              hint="line n names class n - 1; remove the blank line")
    try:
        return ClassMap.from_names(names)
    except ValueError as e:
        raise FormatError(str(e), path=path) from None


def _resolve(entry: str, bases: Sequence[Path]) -> Path | None:
    """A path from obj.data or a list: relative to a base, with darknet's `data/` prefix, or foreign."""
    entry = entry.strip().replace("\\", "/")
    if not entry:
        return None
    p = Path(entry)
    candidates: list[Path] = []
    if p.is_absolute():
        candidates.append(p)
        if "/data/" in entry:  # an absolute path of the machine that wrote it
            tail = entry.rsplit("/data/", 1)[1]
            candidates += [b / tail for b in bases]
    else:
        candidates += [b / entry for b in bases]
        if entry.startswith("data/"):
            candidates += [b / entry[len("data/"):] for b in bases]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return None


def _layout(path: Path) -> _Layout:
    if path.is_file():
        root = path.parent
        data_file: Path | None = path if path.suffix.lower() == ".data" else None
        if data_file is None and path.name != NAMES_FILE:
            raise FormatError("not a Darknet obj.data or obj.names file", path=path)
    elif path.is_dir():
        root = path
        data_file = path / DATA_FILE if (path / DATA_FILE).is_file() else None
    else:
        raise FormatError("no such file or folder", path=path)
    if data_file is not None:
        return _data_layout(data_file, root)
    names = root / NAMES_FILE
    if not names.is_file():
        raise FormatError("not a Darknet dataset: no obj.data and no obj.names", path=path,
                          hint="point at the folder holding obj.data")
    sources = [_Source(split, root / f"{key}.txt") for key, split in LIST_KEYS.items()
               if (root / f"{key}.txt").is_file()]
    return _Layout(root, _read_names(names), sources or [_Source(None, None)])


def _data_layout(data_file: Path, root: Path) -> _Layout:
    entries = _parse_data_file(data_file)
    bases = [root]
    if "names" in entries:
        value, n = entries["names"]
        names = _resolve(value, bases)
        if names is None:
            raise FormatError(f"names file {value!r} not found", path=data_file, where=f"line {n}")
    elif (root / NAMES_FILE).is_file():
        names = root / NAMES_FILE
    else:
        raise FormatError("no `names = ...` and no obj.names beside it", path=data_file)
    classes = _read_names(names)
    if "classes" in entries:
        value, n = entries["classes"]
        if not value.isdigit() or int(value) != len(classes):
            raise FormatError(f"`classes = {value}` but {names.name} has {len(classes)} names",
                              path=data_file, where=f"line {n}")
    sources = []
    for key, (value, n) in entries.items():
        if key in _NOT_LISTS or (key not in LIST_KEYS and not value.lower().endswith(".txt")):
            continue
        found = _resolve(value, bases)
        if found is None or not found.is_file():
            raise FormatError(f"image list {value!r} not found", path=data_file, where=f"line {n}",
                              hint="fix the path or remove the line")
        sources.append(_Source(LIST_KEYS.get(key, key), found))
    sources.sort(key=lambda s: _split_rank(s.split))
    return _Layout(root, classes, sources or [_Source(None, None)])


def _split_rank(split: str | None) -> tuple[int, str]:
    return ({"train": 0, "val": 1, "test": 2}.get(split or "", 3), split or "")


# --------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    """Stream a Darknet dataset (its folder, obj.data or obj.names). `split` names every sample's split."""
    path = Path(path)
    layout = _layout(path)
    return Reader(layout.classes, lambda: _samples(layout, split), source=path)


def _samples(layout: _Layout, split: str | None) -> Iterator[Sample]:
    """The samples; when not one image has a label file but .txt files lie elsewhere, an error (labels where
    this reader does not look would otherwise read as a dataset of unlabelled images)."""
    images = labelled = 0
    for sample in _all_samples(layout, split):
        images += 1
        labelled += sample.state is not LabelState.MISSING
        yield sample
    if images and not labelled:
        lists = {s.list_file.resolve() for s in layout.sources if s.list_file is not None}
        stray = next((f for f in iter_files(layout.root, suffixes=(".txt",))
                      if f.resolve() not in lists and f.stem.lower() not in ("readme", "classes", "obj")), None)
        if stray is not None:  # label files where this reader does not look: not a dataset of unlabelled images
            where = ", ".join(f"{d}/" for d in _LABEL_DIRS[:3])
            raise FormatError(f"none of the {images} images has a label file (looked for <image>.txt beside each "
                              f"image and in {where} beside its images folder), but there are .txt files elsewhere",
                              path=stray, hint="put each label file beside its image, or in labels/ beside images/")


def _all_samples(layout: _Layout, split: str | None) -> Iterator[Sample]:
    seen: set[Path] = set()
    for source in layout.sources:
        name = split if split is not None else source.split
        images: Iterable[Path]
        if source.list_file is None:
            images = iter_files(layout.root, suffixes=IMAGE_EXTENSIONS)
        else:
            images = _listed(source.list_file, layout.root)
        for image in images:
            key = image.resolve()
            if key in seen:
                log.warning("%s: %s is listed again; read once", source.list_file, image)
                continue
            seen.add(key)
            yield _sample(image, layout, name)


def _listed(list_file: Path, root: Path) -> Iterator[Path]:
    bases = [root, list_file.parent]
    with open(list_file, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            found = _resolve(entry, bases)
            if found is None or not found.is_file():
                raise ImageError(f"image {entry!r} not found", path=list_file, where=f"line {n}",
                                 hint="fix the path or remove the line")
            yield found


#: image folders whose label files lie in a sibling folder: darknet swaps images/ and JPEGImages/ for labels/;
#: exports found in the wild use Images/ + Labels/ or Annotations/
_IMAGE_DIRS = ("images", "Images", "JPEGImages", "imgs")
_LABEL_DIRS = ("labels", "Labels", "Annotations", "annotations")


def _label_path(image: Path) -> Path:
    """The .txt beside the image; else in the label folder beside its image folder (`images/` -> `labels/`)."""
    beside = image.with_suffix(".txt")
    if beside.exists():
        return beside
    parts = image.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in _IMAGE_DIRS:
            for label_dir in _LABEL_DIRS:
                swapped = Path(*parts[:i], label_dir, *parts[i + 1:]).with_suffix(".txt")
                if swapped.exists():
                    return swapped
            break
    return beside


def _sample(image: Path, layout: _Layout, split: str | None) -> Sample:
    width, height = image_size(image)
    annotations = parse_label_file(_label_path(image), (width, height), layout.classes, rules=_RULES)
    try:
        file_name = PurePosixPath(image.relative_to(layout.root)).as_posix()
    except ValueError:
        file_name = image.name
    ref = ImageRef(file_name, width=width, height=height, path=str(image.absolute()))
    if annotations is None:
        return Sample(ref, (), split=split, state=LabelState.MISSING)
    return Sample(ref, annotations, split=split)


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """Darknet when obj.data (or obj.names with image lists) is there; reads obj.data only."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".data":
            return _detect_data(path)
        if path.name == NAMES_FILE:
            return Detection(0.6, "an obj.names file")
        return Detection.no("a file that is not obj.data or obj.names")
    if not path.is_dir():
        return Detection.no("no such folder")
    if (path / DATA_FILE).is_file():
        return _detect_data(path / DATA_FILE)
    if (path / NAMES_FILE).is_file():
        lists = [f"{k}.txt" for k in LIST_KEYS if (path / f"{k}.txt").is_file()]
        if lists:
            return Detection(0.8, f"obj.names and {', '.join(lists)}")
        return Detection(0.4, "obj.names but no obj.data and no train.txt")
    return Detection.no("no obj.data and no obj.names")


def _detect_data(path: Path) -> Detection:
    try:
        entries = _parse_data_file(path)
    except FormatError as e:
        return Detection(0.3, f"{path.name} does not parse ({e.message})")
    if "names" in entries or "classes" in entries:
        lists = [k for k in LIST_KEYS if k in entries]
        return Detection(0.95, f"{path.name} names classes and {', '.join(lists) or 'no image lists'}")
    return Detection(0.2, f"{path.name} has neither `classes` nor `names`")


# --------------------------------------------------------------------------- write


def _list_key(split: str | None) -> str:
    if split in (None, "train"):
        return "train"
    if split in ("val", "valid", "validation"):
        return "valid"
    return folder_name(split)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write a Darknet dataset in CVAT's layout: obj.data, obj.names, <split>.txt, obj_<split>_data/.

    Lists and obj.data use darknet's `data/` prefix. Non-box geometry becomes its box (see the
    module docstring); what cannot is dropped; both are counted in the report.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmap = ClassMap.from_names(classes.names) if classes is not None else ClassMap()
    report = WriteReport(format=FORMAT, path=str(out))
    names = NameBook()
    handles: dict[str, TextIO] = {}
    try:
        for sample in samples:
            key = _list_key(sample.split)
            if key not in handles:
                handles[key] = open(out / f"{key}.txt", "w", encoding="utf-8", newline="\n")
                report.files += 1
            entry = _write_sample(sample, out, key, cmap, images, names, report)
            handles[key].write(entry + "\n")
    finally:
        for handle in handles.values():
            handle.close()
    _write_meta(out, cmap, list(handles), report)
    return report


def _write_sample(
    sample: Sample, out: Path, key: str, cmap: ClassMap, images: ImageMode, names: NameBook,
    report: WriteReport,
) -> str:
    folder = f"obj_{key}_data"
    name = names.claim(folder, PurePosixPath(safe_name(sample.image.file_name)).name, report)
    lines: list[str] = []
    if sample.annotations:
        width, height = upright_size(sample.image)
        for ann in sample.annotations:
            box = _as_box(ann, report)
            if box is not None:
                lines.append(box_line(cmap.index(cmap.add(ann.label).name), box, width, height))
    if place_image(sample.image, out / folder / name, images):
        report.files += 1
    report.images += 1
    write_label = sample.state is not LabelState.MISSING and (lines or not sample.annotations)
    if write_label:
        label = out / folder / f"{PurePosixPath(name).stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        with open(label, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
        report.files += 1
    elif sample.annotations:
        log.info("%s: every annotation of %s was dropped; writing no label file", out, sample.image.file_name)
    return f"data/{folder}/{name}"


def _as_box(ann: Annotation, report: WriteReport) -> Box | None:
    geometry = ann.geometry
    if isinstance(geometry, Box):
        report.annotations["box"] += 1
        return geometry
    if isinstance(geometry, Label):
        report.drop("label", "Darknet cannot hold whole-image labels")
        return None
    if isinstance(geometry, Keypoints):
        if ann.bbox is None:
            report.drop("keypoints", "Darknet holds boxes only and these keypoints declare no box")
            return None
        report.converted["keypoints -> box (declared bbox)"] += 1
        report.annotations["box"] += 1
        return ann.bbox
    box = ann.box
    if box is None:  # pragma: no cover - every remaining kind has bounds
        report.drop(kind(geometry), "no box")
        return None
    report.converted[f"{kind(geometry)} -> box (bounds)"] += 1
    report.annotations["box"] += 1
    return box


def _write_meta(out: Path, cmap: ClassMap, keys: list[str], report: WriteReport) -> None:
    with open(out / NAMES_FILE, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(name + "\n" for name in cmap.names))
    if not keys:
        (out / "train.txt").touch()
        keys = ["train"]
        report.files += 1
    ordered = sorted(keys, key=lambda k: _split_rank(LIST_KEYS.get(k, k)))
    lines = [f"classes = {len(cmap)}"]
    lines += [f"{key} = data/{key}.txt" for key in ordered]
    lines += [f"names = data/{NAMES_FILE}", "backup = backup/"]
    with open(out / DATA_FILE, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    report.files += 2
