"""What a health check returns: plain dataclasses with `to_json()`; rendering lives elsewhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How much a finding matters before training."""

    ERROR = "error"  # wrong data: fix before training
    WARNING = "warning"  # likely hurts the model or the evaluation
    INFO = "info"  # worth knowing


@dataclass
class Finding:
    """One thing the check found, in words a non-expert can act on.

    `check` is a stable name (scripts key on it), `count` how many
    annotations/images/pairs/classes it concerns, `fixable` whether
    `visionloop fix` repairs it, `examples` a few concrete cases, `images` the
    file names of (the first of) the images concerned, so every finding can be
    looked at (for a class-level finding: images carrying that class).
    """

    check: str
    severity: Severity
    count: int
    message: str
    fixable: bool = False
    examples: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.value
        return d


@dataclass
class ClassBalance:
    name: str
    annotations: int
    images: int
    share: float
    by_split: dict[str, int]
    verdict: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DuplicatePair:
    """Two images that show the same picture. `kind`: exact (same bytes), pixels, near (a confirmed copy),
    similar (close perceptual hashes, not confirmed: a look-alike)."""

    kind: str
    a: str  # file names
    b: str
    split_a: str
    split_b: str
    distance: int = 0  # Hamming distance of the perceptual hashes (0 for exact)
    same_annotations: bool | None = None
    image_a: int = 0  # image row ids
    image_b: int = 0
    sha_a: str = ""
    sha_b: str = ""
    mirrored: bool = False  # found through the mirrored hash: one is a flipped copy of the other
    inliers: int | None = None  # near/similar: keypoint matches agreeing with one affine map (-1: not checked)

    @property
    def cross_split(self) -> bool:
        return self.split_a != self.split_b

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cross_split": self.cross_split}


@dataclass
class HealthReport:
    """Everything `visionloop health` says about a project (or one split of it)."""

    split: str | None
    input_size: int
    counts: dict[str, Any]
    dimensions: dict[str, Any]
    classes: list[ClassBalance]
    objects_per_image: dict[str, Any]
    box_sizes: dict[str, Any]
    tiny_objects: dict[str, Any]
    heatmaps: dict[str, list[list[int]]]  # class -> grid rows (top to bottom) of box-centre counts
    duplicates: dict[str, Any]
    pairs: list[DuplicatePair]
    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)
    version: str | None = None  # the version checked, None for the project itself

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def count(self, check: str) -> int:
        """The count of a finding, 0 when the check found nothing."""
        f = self.finding(check)
        return f.count if f is not None else 0

    def pairs_of(self, kind: str) -> list[DuplicatePair]:
        return [p for p in self.pairs if p.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "version": self.version,
            "input_size": self.input_size,
            "counts": self.counts,
            "dimensions": self.dimensions,
            "classes": [c.to_json() for c in self.classes],
            "objects_per_image": self.objects_per_image,
            "box_sizes": self.box_sizes,
            "tiny_objects": self.tiny_objects,
            "heatmaps": self.heatmaps,
            "duplicates": self.duplicates,
            "pairs": [p.to_json() for p in self.pairs],
            "findings": [f.to_json() for f in self.findings],
            "timings": self.timings,
        }
