"""CIFAR-10, the python version (pickled batches); see formats/_cifar.py for the layout and the rules."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from visionloop.core.classes import ClassMap
from visionloop.core.sample import Sample
from visionloop.formats import _cifar
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport

FORMAT = "cifar10"
_V = _cifar.CIFAR10


def detect(path: Path) -> Detection:
    return _cifar.detect(path, _V)


def read(path: Path, *, split: str | None = None) -> Reader:
    return _cifar.read(path, _V, split=split)


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    return _cifar.write(samples, out, _V, classes=classes, images=images)
