"""The choices only a dataset version makes (how to split, what to encode outputs as); the transform
choices (resize mode, edges, contrast, noise) live in `visionloop.transforms.choices`."""

from __future__ import annotations

from visionloop.transforms.choices import Choice


class SplitMode(Choice):
    RANDOM = "random", "shuffle with the seed and cut by the ratios (stratified by class presence)"
    KEEP = "keep", "keep the split each image came with; unassigned images are split by the ratios"
    REBALANCE = "rebalance", "start from the images' splits and move as few as possible to reach the ratios"


class ImageFormat(Choice):
    JPEG = "jpeg", "JPEG at the recipe's quality", ".jpg"
    PNG = "png", "lossless PNG", ".png"

    extension: str

    @classmethod
    def _extra_names(cls) -> tuple[str, ...]:
        return ("extension",)
