"""Fashion-MNIST as IDX files (train-images-idx3-ubyte...); see formats/_idx.py for the layout and the rules."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from visionloop.core.classes import ClassMap
from visionloop.core.sample import Sample
from visionloop.formats import _idx
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport

FORMAT = "fashion_mnist"
_V = _idx.FASHION


def detect(path: Path) -> Detection:
    return _idx.detect(path, _V)


def read(path: Path, *, split: str | None = None) -> Reader:
    return _idx.read(path, _V, split=split)


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    return _idx.write(samples, out, _V, classes=classes, images=images)
