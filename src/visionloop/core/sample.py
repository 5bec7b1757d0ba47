"""ImageRef, Annotation and Sample: what every reader yields and every writer takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from visionloop.core.geometry import Box, Caption, Geometry, Label, bounds


class Source(StrEnum):
    """Who made an annotation."""

    HUMAN = "human"
    MODEL = "model"
    IMPORTED = "imported"


class LabelState(StrEnum):
    """Whether an image's (lack of) annotations was meant.

    ANNOTATED: it has annotations. NULL: it was labelled and has nothing in it
    (an empty YOLO file, an image listed with no objects). MISSING: nobody
    labelled it (no annotation file at all).
    """

    ANNOTATED = "annotated"
    NULL = "null"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class GPS:
    latitude: float
    longitude: float
    altitude: float | None = None


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image: where its bytes are, its upright size and what it is.

    `file_name` is the image's path relative to its dataset (POSIX separators),
    the name formats write. `path` is where the bytes can be read (a local path
    or an fsspec URL) and `sha256` the hash of those bytes once known.
    `width`/`height` are the upright size (EXIF orientation applied), None when
    a format does not declare them and nobody has looked yet.
    """

    file_name: str
    width: int | None = None
    height: int | None = None
    path: str | None = None
    sha256: str | None = None
    format: str | None = None
    orientation: int = 1
    gps: GPS | None = None
    heading: float | None = None
    timestamp: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.file_name:
            raise ValueError("ImageRef.file_name must not be empty")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"ImageRef.{name} must be positive, got {v} for {self.file_name}")
        if not 1 <= self.orientation <= 8:
            raise ValueError(f"EXIF orientation must be 1..8, got {self.orientation}")

    @property
    def size(self) -> tuple[int, int] | None:
        if self.width is None or self.height is None:
            return None
        return (self.width, self.height)


@dataclass(frozen=True, slots=True)
class Annotation:
    """One object or image-level label.

    `label` is the class name (ids live in the ClassMap and at format edges); a caption (`Caption`) has no
    class and its label is empty: `Annotation("", Caption("a dog on a sofa"))`, `is_caption`.
    `bbox` and `area` are what the source file declared beside the geometry
    (COCO's bbox and area next to a segmentation), kept so a round trip does
    not change them; None means "derive from the geometry".
    """

    label: str
    geometry: Geometry
    attributes: Mapping[str, Any] = field(default_factory=dict)
    source: Source = Source.IMPORTED
    confidence: float | None = None
    track_id: int | None = None
    crowd: bool = False
    bbox: Box | None = None
    area: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or (self.label == "") is not isinstance(self.geometry, Caption):
            if isinstance(self.geometry, Caption):
                raise ValueError(f"a caption has no class: its label must be empty, got {self.label!r}")
            raise ValueError(f"Annotation.label must be a non-empty class name, got {self.label!r}")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Annotation.confidence must be within [0, 1], got {self.confidence}")

    @property
    def box(self) -> Box | None:
        """The declared box, else the geometry's bounds (None for image labels)."""
        return self.bbox if self.bbox is not None else bounds(self.geometry)

    @property
    def is_image_label(self) -> bool:
        return isinstance(self.geometry, Label)

    @property
    def is_caption(self) -> bool:
        """A caption: text about the whole image, with no class (its label is empty)."""
        return isinstance(self.geometry, Caption)


@dataclass(frozen=True, slots=True)
class Sample:
    """An image with its annotations, its split and whether it was labelled at all."""

    image: ImageRef
    annotations: tuple[Annotation, ...] = ()
    split: str | None = None
    state: LabelState | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.annotations, tuple):
            object.__setattr__(self, "annotations", tuple(self.annotations))
        if self.state is None:
            state = LabelState.ANNOTATED if self.annotations else LabelState.NULL
            object.__setattr__(self, "state", state)
        elif self.annotations and self.state is not LabelState.ANNOTATED:
            raise ValueError(f"{self.image.file_name}: a sample with annotations cannot be {self.state.value}")
        elif not self.annotations and self.state is LabelState.ANNOTATED:
            object.__setattr__(self, "state", LabelState.NULL)
