"""Canonical types and geometry. Depends on nothing else in the package."""

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import (
    FormatError,
    ImageError,
    LossError,
    NotFoundError,
    ProjectError,
    VisionLoopError,
)
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
    bounds,
    box_iou_matrix,
    iou,
    kind,
    mask_to_polygon,
    polygon_to_mask,
)
from visionloop.core.sample import GPS, Annotation, ImageRef, LabelState, Sample, Source

__all__ = [
    "GPS", "Annotation", "Box", "Caption", "ClassInfo", "ClassMap", "FormatError", "Geometry", "ImageError",
    "ImageRef", "Keypoints", "Label", "LabelState", "LossError", "Mask", "NotFoundError",
    "Polygon", "Polyline", "ProjectError", "RotatedBox", "Sample", "Source", "VisionLoopError", "bounds",
    "box_iou_matrix", "iou", "kind", "mask_to_polygon", "polygon_to_mask",
]
