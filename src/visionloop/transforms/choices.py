"""The choices the transforms offer, as enums that carry what each choice means.

A choice is an enum with metadata, never a boolean: `Edges.WHITE.fill` is the
value the letterbox bars get, `Contrast.CLAHE.description` what the option
does. Values are the strings a recipe file spells.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Choice(StrEnum):
    """A string enum whose members carry a description and extra attributes."""

    description: str

    def __new__(cls, value: str, description: str = "", *extra: Any) -> Choice:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.description = description
        for name, v in zip(cls._extra_names(), extra, strict=True):
            setattr(obj, name, v)
        return obj

    @classmethod
    def _extra_names(cls) -> tuple[str, ...]:
        return ()

    def __str__(self) -> str:
        return str(self.value)


class ResizeMode(Choice):
    STRETCH = "stretch", "scale each side to the target size (the aspect ratio changes)"
    FIT = "fit", "scale to fit within the target size and pad the rest with the edge fill"
    FILL = "fill", "scale to cover the target size and crop the centre (objects cut off are clipped)"


class Edges(Choice):
    """How the area a transform reveals (letterbox bars, rotated corners) is filled."""

    BLACK = "black", "constant black", "constant", (0, 0, 0)
    WHITE = "white", "constant white", "constant", (255, 255, 255)
    REFLECT = "reflect", "mirror the image at its border (OpenCV BORDER_REFLECT_101)", "reflect", None

    mode: str
    fill: tuple[int, int, int] | None

    @classmethod
    def _extra_names(cls) -> tuple[str, ...]:
        return ("mode", "fill")


class Contrast(Choice):
    NONE = "none", "leave contrast as it is"
    STRETCH = "stretch", "stretch the 2nd-98th percentile of luminance to the full range"
    EQUALIZE = "equalize", "histogram equalisation of luminance"
    CLAHE = "clahe", "adaptive histogram equalisation of luminance (CLAHE, clip limit 2, 8x8 tiles)"


class NoiseKind(Choice):
    SALT_PEPPER = "salt_pepper", "set up to `percent` % of the pixels to black or white"
    GAUSSIAN = "gaussian", "add Gaussian noise whose standard deviation is `percent` % of 255"
