"""Annotation formats: one module per format family, plus the registry."""

from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport
from visionloop.formats.registry import FORMATS, FormatSpec, detect, get, read, write

__all__ = ["FORMATS", "Detection", "FormatSpec", "ImageMode", "Reader", "WriteReport", "detect", "get", "read", "write"]
