"""The format registry: explicit, one line per format, modules imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, NotFoundError
from visionloop.core.sample import Sample
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport


@dataclass(frozen=True)
class FormatSpec:
    name: str
    module: str
    description: str
    reads: tuple[str, ...]  # geometry kinds the reader yields
    writes: tuple[str, ...]  # geometry kinds the writer keeps (others are converted or dropped)
    holds: tuple[str, ...] = ()  # extras: attributes, tracks, crowd, keypoint names, splits

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


FORMATS: dict[str, FormatSpec] = {}


def register(spec: FormatSpec) -> FormatSpec:
    if spec.name in FORMATS:
        raise ValueError(f"format {spec.name!r} is already registered (by {FORMATS[spec.name].module})")
    FORMATS[spec.name] = spec
    return spec


register(FormatSpec(
    "coco", "visionloop.formats.coco", "COCO JSON (instances, keypoints; Roboflow's _annotations.coco.json per split)",
    reads=("box", "polygon", "mask", "keypoints"), writes=("box", "polygon", "mask", "keypoints"),
    holds=("crowd", "category ids", "splits", "attributes"),
))
register(FormatSpec(
    "voc", "visionloop.formats.voc", "Pascal VOC XML (+ SegmentationClass / SegmentationObject PNGs)",
    reads=("box", "mask"), writes=("box", "mask"), holds=("difficult/truncated/occluded", "splits"),
))
register(FormatSpec(
    "yolo", "visionloop.formats.yolo", "YOLO, Ultralytics layout (data.yaml; detect, segment, OBB, pose)",
    reads=("box", "polygon", "rotated_box", "keypoints"), writes=("box", "polygon", "rotated_box"), holds=("splits",),
))
register(FormatSpec(
    "darknet", "visionloop.formats.darknet", "YOLO Darknet (obj.names + obj.data + train.txt)",
    reads=("box",), writes=("box",), holds=("splits",),
))
register(FormatSpec(
    "folders", "visionloop.formats.folders", "Classification folders (split/class/image.jpg)",
    reads=("label",), writes=("label",), holds=("splits",),
))


def get(name: str) -> FormatSpec:
    try:
        return FORMATS[name]
    except KeyError:
        raise NotFoundError(f"unknown format {name!r}", hint=f"one of: {', '.join(sorted(FORMATS))}") from None


def detect_all(path: Path) -> list[tuple[str, Detection]]:
    """Every format's opinion of `path`, most confident first."""
    results = [(name, spec.load().detect(path)) for name, spec in FORMATS.items()]
    return sorted(results, key=lambda r: -r[1].score)


def detect(path: Path) -> str:
    """The format of a file or folder, or a FormatError that says what each format thought."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    results = detect_all(path)
    best_name, best = results[0]
    if best.score <= 0:
        reasons = "; ".join(f"{n}: {d.reason}" for n, d in results)
        raise FormatError("cannot tell which annotation format this is", path=path,
                          hint=f"pass --format. What each format saw: {reasons}")
    return best_name


def read(path: Path, *, format: str | None = None, split: str | None = None) -> Reader:
    path = Path(path)
    name = format or detect(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    return get(name).load().read(path, split=split)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    format: str,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    report: WriteReport = get(format).load().write(samples, Path(out), classes=classes, images=images)
    return report
