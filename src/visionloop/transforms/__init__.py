"""Geometry and pixel transforms with exact box / polygon / mask / keypoint kernels.

One engine for every stage that moves pixels: dataset versions (preprocess and augment),
training (augmentation on the fly), inference and serving (resize / letterbox, boxes mapped
back). Depends only on `visionloop.core`, numpy and OpenCV — never on the store — so
importing it is cheap and training and inference preprocessing cannot drift apart.

    from visionloop.transforms import Compose, HFlip, Affine, Brightness
    aug = Compose([HFlip(), Affine(rotate=15), Brightness(percent=25)], seed=0)
    sample, pixels = aug(sample, pixels)     # pixels: HWC uint8 RGB; the geometry follows
"""

from visionloop.transforms.choices import Contrast, Edges, NoiseKind, ResizeMode
from visionloop.transforms.frame import Frame
from visionloop.transforms.ops import (
    Affine,
    Blur,
    BoxLevel,
    Brightness,
    CameraGain,
    Compose,
    ContrastOp,
    Cutout,
    Exposure,
    Grey,
    HFlip,
    Hue,
    MotionBlur,
    Noise,
    Op,
    RandomGrey,
    Resize,
    Rot90,
    Saturation,
    StaticCrop,
    VFlip,
    Window,
    Zoom,
)

__all__ = [
    "Affine", "Blur", "BoxLevel", "Brightness", "CameraGain", "Compose", "Contrast", "ContrastOp", "Cutout",
    "Edges", "Exposure", "Frame", "Grey", "HFlip", "Hue", "MotionBlur", "Noise", "NoiseKind", "Op", "RandomGrey",
    "Resize", "ResizeMode", "Rot90", "Saturation", "StaticCrop", "VFlip", "Window", "Zoom",
]
