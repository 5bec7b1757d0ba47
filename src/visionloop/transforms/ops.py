"""Ops: what a recipe is made of, usable on their own at train time.

    aug = Compose([HFlip(), Affine(rotate=15), Brightness(percent=25)], seed=0)
    sample, pixels = aug(sample, pixels)          # pixels: HWC uint8 RGB; the sample's geometry follows

An op declares the geometry it handles (`handles`); annotations of other kinds
pass through unchanged. `make_params(frame, rng)` draws everything random once
per image (None: the op does nothing this time); `apply(frame, params)` does the
work — geometric ops give the frame a matrix (kernels move every annotation,
pixels follow in one warp), colour ops a colour matrix, the rest a pixel
function. Subclasses override those two; `__call__` is not to be overridden.
Builders take keyword arguments only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, Sample
from visionloop.transforms import affine as A
from visionloop.transforms import kernels, pixels
from visionloop.transforms.choices import Contrast, Edges, NoiseKind, ResizeMode
from visionloop.transforms.frame import Frame

Params = dict[str, Any]

SHAPES: tuple[type, ...] = (Box, RotatedBox, Polygon, Mask, Keypoints, Polyline)


class Op:
    """Base of every op. Override `make_params` and `apply`; never `__call__`."""

    name: ClassVar[str] = "op"
    handles: ClassVar[tuple[type, ...]] = ()

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return {}

    def apply(self, frame: Frame, params: Params) -> None:
        raise NotImplementedError

    def describe(self, params: Params) -> str:
        return self.name

    def __call__(self, frame: Frame, rng: np.random.Generator) -> None:
        params = self.make_params(frame, rng)
        if params is None:
            return
        self.apply(frame, params)
        frame.ops.append(self.describe(params))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


# -- geometric ops ----------------------------------------------------------------------------
class AffineOp(Op):
    """An op that is a matrix and a canvas size; make_params returns matrix, size (and edges)."""

    handles = SHAPES

    def apply(self, frame: Frame, params: Params) -> None:
        frame.warp(params["matrix"], params["size"], handles=self.handles, edges=params.get("edges", Edges.BLACK))


class Window(AffineOp):
    """Cut a fixed window [x0, x1) × [y0, y1) of whole pixels (tiles, static crop, object crops)."""

    name = "window"

    def __init__(self, *, x0: int, y0: int, x1: int, y1: int, label: str | None = None) -> None:
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty window ({x0}, {y0})–({x1}, {y1})")
        self.x0, self.y0, self.x1, self.y1, self.label = x0, y0, x1, y1, label

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params:
        return {"matrix": A.translate(-self.x0, -self.y0), "size": (self.x1 - self.x0, self.y1 - self.y0)}

    def describe(self, params: Params) -> str:
        return self.label or f"window({self.x0},{self.y0},{self.x1},{self.y1})"


class StaticCrop(AffineOp):
    """The same window, in percent of each image's size, rounded outwards to whole pixels."""

    name = "static_crop"

    def __init__(self, *, x0: float, y0: float, x1: float, y1: float) -> None:
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1

    def window(self, width: int, height: int) -> tuple[int, int, int, int]:
        x0 = math.floor(self.x0 * width / 100 + 1e-9)
        y0 = math.floor(self.y0 * height / 100 + 1e-9)
        x1 = max(x0 + 1, min(width, math.ceil(self.x1 * width / 100 - 1e-9)))
        y1 = max(y0 + 1, min(height, math.ceil(self.y1 * height / 100 - 1e-9)))
        return x0, y0, x1, y1

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params:
        x0, y0, x1, y1 = self.window(frame.width, frame.height)
        return {"matrix": A.translate(-x0, -y0), "size": (x1 - x0, y1 - y0)}


class Resize(AffineOp):
    """Resize to width × height: stretch, fit within (bars filled per `edges`) or fill (centre crop)."""

    name = "resize"

    def __init__(self, *, width: int, height: int, mode: ResizeMode = ResizeMode.STRETCH,
                 edges: Edges = Edges.BLACK) -> None:
        self.width, self.height, self.mode, self.edges = width, height, ResizeMode(mode), Edges(edges)

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params:
        w, h, W, H = frame.width, frame.height, self.width, self.height
        if self.mode is ResizeMode.STRETCH:
            return {"matrix": A.scale(W / w, H / h), "size": (W, H)}
        s = min(W / w, H / h) if self.mode is ResizeMode.FIT else max(W / w, H / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))  # whole pixels, so bars and crops are exact
        ox, oy = (W - nw) // 2, (H - nh) // 2
        return {"matrix": A.translate(ox, oy) @ A.scale(nw / w, nh / h), "size": (W, H), "edges": self.edges}

    def describe(self, params: Params) -> str:
        return f"resize({self.width}x{self.height},{self.mode.value})"


class HFlip(AffineOp):
    name = "hflip"

    def __init__(self, *, p: float = 0.5) -> None:
        self.p = p

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        if rng.random() >= self.p:
            return None
        return {"matrix": A.hflip(frame.width), "size": frame.size}


class VFlip(AffineOp):
    name = "vflip"

    def __init__(self, *, p: float = 0.5) -> None:
        self.p = p

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        if rng.random() >= self.p:
            return None
        return {"matrix": A.vflip(frame.height), "size": frame.size}


class Rot90(AffineOp):
    """Quarter turns: k counter-clockwise turns (as np.rot90) drawn from `turns`, 0 meaning none."""

    name = "rot90"

    def __init__(self, *, turns: Sequence[int] = (0, 1, 3)) -> None:
        self.turns = tuple(int(k) % 4 for k in turns)

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        k = self.turns[int(rng.integers(len(self.turns)))]
        if k == 0:
            return None
        size = (frame.height, frame.width) if k % 2 else frame.size
        return {"matrix": A.rot90(k, frame.width, frame.height), "size": size, "k": k}

    def describe(self, params: Params) -> str:
        return f"rot90({params['k']})"


class Affine(AffineOp):
    """Rotation (±rotate degrees) and shear (±shear_x, ±shear_y degrees) about the centre, one matrix."""

    name = "affine"

    def __init__(self, *, rotate: float = 0.0, shear_x: float = 0.0, shear_y: float = 0.0,
                 edges: Edges = Edges.BLACK) -> None:
        self.rotate, self.shear_x, self.shear_y, self.edges = rotate, shear_x, shear_y, Edges(edges)

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        angle = float(rng.uniform(-self.rotate, self.rotate)) if self.rotate else 0.0
        sx = float(rng.uniform(-self.shear_x, self.shear_x)) if self.shear_x else 0.0
        sy = float(rng.uniform(-self.shear_y, self.shear_y)) if self.shear_y else 0.0
        if angle == sx == sy == 0.0:
            return None
        cx, cy = frame.width / 2, frame.height / 2
        m = A.rotate(angle, cx, cy) @ A.shear(sx, sy, cx, cy)
        return {"matrix": m, "size": frame.size, "edges": self.edges, "angle": angle, "shear": (sx, sy)}

    def describe(self, params: Params) -> str:
        sx, sy = params["shear"]
        return f"affine(rotate={params['angle']:.2f},shear={sx:.2f},{sy:.2f})"


class Zoom(AffineOp):
    """Crop/zoom: keep a random window of (100 - up to `percent`) % of each side, scaled back to the size."""

    name = "zoom"

    def __init__(self, *, percent: float) -> None:
        self.percent = percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        keep = 1.0 - float(rng.uniform(0, self.percent)) / 100
        w, h = frame.width, frame.height
        cw, ch = w * keep, h * keep
        x0 = float(rng.uniform(0, w - cw))
        y0 = float(rng.uniform(0, h - ch))
        m = A.scale(w / cw, h / ch) @ A.translate(-x0, -y0)
        return {"matrix": m, "size": frame.size, "keep": keep}

    def describe(self, params: Params) -> str:
        return f"zoom({1 / params['keep']:.3f})"


class Mosaic(Op):
    """2x2 mosaic of this frame (top-left) and three partner frames on a canvas of this frame's size.

    The centre is the canvas centre moved by up to `jitter` % of half a side. Each image keeps its
    aspect ratio: scaled to cover its cell, centred, the overflow cropped (objects cut by the crop
    are clipped and kept above the recipe's visibility threshold, as for any crop).
    The generator sets `frame.partners`; without partners the op does nothing.
    """

    name = "mosaic"
    handles = SHAPES

    def __init__(self, *, jitter: float = 0.0) -> None:
        self.jitter = jitter

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        if not frame.partners:
            return None
        W, H = frame.size
        jx = float(rng.uniform(-1, 1)) * self.jitter / 100
        jy = float(rng.uniform(-1, 1)) * self.jitter / 100
        cx = min(max(1, round(W / 2 * (1 + jx))), W - 1)
        cy = min(max(1, round(H / 2 * (1 + jy))), H - 1)
        return {"centre": (cx, cy)}

    def apply(self, frame: Frame, params: Params) -> None:
        assert frame.partners is not None
        W, H = frame.size
        cx, cy = params["centre"]
        cells = [(0, 0, cx, cy), (cx, 0, W, cy), (0, cy, cx, H), (cx, cy, W, H)]
        frames = [frame, *frame.partners[:3]]
        grey = all(f.grey for f in frames)
        canvas = np.zeros((H, W) if grey else (H, W, 3), dtype=np.uint8)
        annotations: list[Annotation] = []
        dropped = 0
        for f, (x0, y0, x1, y1) in zip(frames, cells, strict=True):
            cw, ch = x1 - x0, y1 - y0
            k = max(cw / f.width, ch / f.height)
            cover = A.translate(-(f.width * k - cw) / 2, -(f.height * k - ch) / 2) @ A.scale(k, k)
            f.warp(cover, (cw, ch), handles=self.handles)
            tile = f.image()
            if not grey and tile.ndim == 2:
                tile = np.repeat(tile[:, :, None], 3, axis=2)
            canvas[y0:y1, x0:x1] = tile
            shift = A.translate(x0, y0)
            for ann in f.annotations:
                if isinstance(ann.geometry, self.handles):
                    pieces, _ = kernels.affine_pieces(ann.geometry, matrix=shift, size=(W, H))
                    if not pieces:
                        dropped += 1
                        continue
                    annotations.extend(replace(ann, geometry=g, bbox=None, area=None) for g in pieces)
                    continue
                annotations.append(ann)
            dropped += f.dropped if f is not frame else 0
        frame.set_image(canvas)
        frame.annotations = annotations
        frame.dropped += dropped

    def describe(self, params: Params) -> str:
        return f"mosaic(centre={params['centre'][0]},{params['centre'][1]})"


# -- colour ops (one fused colour matrix) -------------------------------------------------------
def _m34(lin: np.ndarray, off: float | np.ndarray = 0.0) -> np.ndarray:
    out = np.zeros((3, 4))
    out[:, :3] = lin
    out[:, 3] = off
    return out


class Grey(Op):
    """Preprocessing: the version's images are single-channel grey."""

    name = "grey"

    def apply(self, frame: Frame, params: Params) -> None:
        frame.to_grey()


class RandomGrey(Op):
    """Augmentation: `percent` % of outputs become grey (still three channels)."""

    name = "greyscale"

    def __init__(self, *, percent: float) -> None:
        self.percent = percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return {} if rng.random() < self.percent / 100 else None

    def apply(self, frame: Frame, params: Params) -> None:
        frame.color(_m34(pixels.saturation_matrix(0.0)))


class Hue(Op):
    name = "hue"

    def __init__(self, *, degrees: float) -> None:
        self.degrees = degrees

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return {"degrees": float(rng.uniform(-self.degrees, self.degrees))}

    def apply(self, frame: Frame, params: Params) -> None:
        frame.color(_m34(pixels.hue_matrix(params["degrees"])))

    def describe(self, params: Params) -> str:
        return f"hue({params['degrees']:.1f})"


class Saturation(Op):
    name = "saturation"

    def __init__(self, *, percent: float) -> None:
        self.percent = percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return {"factor": 1.0 + float(rng.uniform(-self.percent, self.percent)) / 100}

    def apply(self, frame: Frame, params: Params) -> None:
        frame.color(_m34(pixels.saturation_matrix(params["factor"])))

    def describe(self, params: Params) -> str:
        return f"saturation({params['factor']:.3f})"


class Brightness(Op):
    """Add up to ±percent % of full scale."""

    name = "brightness"

    def __init__(self, *, percent: float) -> None:
        self.percent = percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return {"offset": float(rng.uniform(-self.percent, self.percent)) / 100 * 255}

    def apply(self, frame: Frame, params: Params) -> None:
        frame.color(_m34(np.eye(3), params["offset"]))

    def describe(self, params: Params) -> str:
        return f"brightness({params['offset']:+.1f})"


class Exposure(Op):
    """Multiply by 1 ± up to percent %."""

    name = "exposure"

    def __init__(self, *, percent: float) -> None:
        self.percent = percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return {"gain": 1.0 + float(rng.uniform(-self.percent, self.percent)) / 100}

    def apply(self, frame: Frame, params: Params) -> None:
        frame.color(_m34(np.eye(3) * params["gain"]))

    def describe(self, params: Params) -> str:
        return f"exposure({params['gain']:.3f})"


# -- pixel ops --------------------------------------------------------------------------------
class ContrastOp(Op):
    name = "contrast"

    def __init__(self, *, mode: Contrast) -> None:
        self.mode = Contrast(mode)

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        return None if self.mode is Contrast.NONE else {}

    def apply(self, frame: Frame, params: Params) -> None:
        fn = {Contrast.STRETCH: pixels.contrast_stretch, Contrast.EQUALIZE: pixels.equalize,
              Contrast.CLAHE: pixels.clahe}[self.mode]
        frame.update(lambda p: pixels.luminance_op(p, fn))

    def describe(self, params: Params) -> str:
        return f"contrast({self.mode.value})"


class Blur(Op):
    name = "blur"

    def __init__(self, *, pixels: float) -> None:
        self.pixels = pixels

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        sigma = float(rng.uniform(0, self.pixels))
        return {"sigma": sigma} if sigma >= 0.3 else None

    def apply(self, frame: Frame, params: Params) -> None:
        frame.update(lambda p: pixels.gaussian_blur(p, params["sigma"]))

    def describe(self, params: Params) -> str:
        return f"blur({params['sigma']:.2f})"


class MotionBlur(Op):
    name = "motion_blur"

    def __init__(self, *, pixels: int) -> None:
        self.pixels = pixels

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        length = int(rng.integers(3, self.pixels + 1)) | 1
        return {"length": length, "angle": float(rng.uniform(0, 180))}

    def apply(self, frame: Frame, params: Params) -> None:
        frame.update(lambda p: pixels.motion_blur(p, params["length"], params["angle"]))

    def describe(self, params: Params) -> str:
        return f"motion_blur({params['length']},{params['angle']:.0f})"


class Noise(Op):
    name = "noise"

    def __init__(self, *, percent: float, kind: NoiseKind = NoiseKind.SALT_PEPPER) -> None:
        self.percent, self.kind = percent, NoiseKind(kind)

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        amount = float(rng.uniform(0, self.percent)) / 100
        return {"amount": amount, "seed": int(rng.integers(2**63))} if amount > 0 else None

    def apply(self, frame: Frame, params: Params) -> None:
        r = np.random.default_rng(params["seed"])
        if self.kind is NoiseKind.SALT_PEPPER:
            frame.update(lambda p: pixels.salt_pepper(p, params["amount"], r))
        else:
            frame.update(lambda p: pixels.gaussian_noise(p, params["amount"] * 255, r))

    def describe(self, params: Params) -> str:
        return f"noise({self.kind.value},{params['amount']:.3f})"


class CameraGain(Op):
    """Sensor gain: brighter by up to percent %, with luminance noise that grows with the gain."""

    name = "camera_gain"

    def __init__(self, *, percent: float) -> None:
        self.percent = percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        g = float(rng.uniform(0, self.percent)) / 100
        return {"gain": 1.0 + g, "sigma": 20.0 * g, "seed": int(rng.integers(2**63))} if g > 0 else None

    def apply(self, frame: Frame, params: Params) -> None:
        r = np.random.default_rng(params["seed"])
        frame.update(lambda p: pixels.gaussian_noise(p, params["sigma"], r, gain=params["gain"]))

    def describe(self, params: Params) -> str:
        return f"camera_gain({params['gain']:.3f})"


class Cutout(Op):
    """`count` black squares, each `percent` % of the shorter side, at random places; annotations stay."""

    name = "cutout"

    def __init__(self, *, count: int, percent: float) -> None:
        self.count, self.percent = count, percent

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        side = max(1, round(min(frame.size) * self.percent / 100))
        xs = rng.integers(0, max(1, frame.width - side + 1), self.count)
        ys = rng.integers(0, max(1, frame.height - side + 1), self.count)
        return {"side": side, "at": list(zip(xs.tolist(), ys.tolist(), strict=True))}

    def apply(self, frame: Frame, params: Params) -> None:
        p = frame.writable_image()
        s = params["side"]
        for x, y in params["at"]:
            p[y:y + s, x:x + s] = 0
        frame.changed = True

    def describe(self, params: Params) -> str:
        return f"cutout({len(params['at'])}x{params['side']})"


# -- box-level variants -----------------------------------------------------------------------
class BoxLevel(Op):
    """Variants applied inside each object's box, each box drawing its own values; boxes stay put.

    Geometric variants (flip, rotate, shear, crop = zoom into the box) move the
    pixels inside the box, and the object's polygon, mask, rotated box or
    keypoints with them, clipped to the box; its Box stays as it is. Pixels
    revealed inside the box are mirrored from its content. Other objects
    overlapping the box are not moved.
    """

    name = "box"

    def __init__(self, *, flip_h: bool = False, flip_v: bool = False, rotate: float = 0.0, shear_x: float = 0.0,
                 shear_y: float = 0.0, crop: float = 0.0, brightness: float = 0.0, exposure: float = 0.0,
                 blur: float = 0.0, noise: float = 0.0, noise_kind: NoiseKind = NoiseKind.SALT_PEPPER) -> None:
        self.flip_h, self.flip_v, self.rotate, self.shear_x, self.shear_y = flip_h, flip_v, rotate, shear_x, shear_y
        self.crop, self.brightness, self.exposure, self.blur = crop, brightness, exposure, blur
        self.noise, self.noise_kind = noise, NoiseKind(noise_kind)

    def make_params(self, frame: Frame, rng: np.random.Generator) -> Params | None:
        boxes = []
        for i, ann in enumerate(frame.annotations):
            b = ann.box
            if b is None:
                continue
            x0, y0 = max(0, math.floor(b.x0)), max(0, math.floor(b.y0))
            x1, y1 = min(frame.width, math.ceil(b.x1)), min(frame.height, math.ceil(b.y1))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            w, h = x1 - x0, y1 - y0
            m = A.identity()
            if self.flip_h and rng.random() < 0.5:
                m = A.hflip(w) @ m
            if self.flip_v and rng.random() < 0.5:
                m = A.vflip(h) @ m
            if self.rotate or self.shear_x or self.shear_y:
                angle = float(rng.uniform(-self.rotate, self.rotate)) if self.rotate else 0.0
                sx = float(rng.uniform(-self.shear_x, self.shear_x)) if self.shear_x else 0.0
                sy = float(rng.uniform(-self.shear_y, self.shear_y)) if self.shear_y else 0.0
                m = A.rotate(angle, w / 2, h / 2) @ A.shear(sx, sy, w / 2, h / 2) @ m
            if self.crop:
                keep = 1.0 - float(rng.uniform(0, self.crop)) / 100
                cx0, cy0 = float(rng.uniform(0, w * (1 - keep))), float(rng.uniform(0, h * (1 - keep)))
                m = A.scale(1 / keep, 1 / keep) @ A.translate(-cx0, -cy0) @ m
            gain = 1.0 + float(rng.uniform(-self.exposure, self.exposure)) / 100 if self.exposure else 1.0
            offset = float(rng.uniform(-self.brightness, self.brightness)) / 100 * 255 if self.brightness else 0.0
            sigma = float(rng.uniform(0, self.blur)) if self.blur else 0.0
            noise = float(rng.uniform(0, self.noise)) / 100 if self.noise else 0.0
            seed = int(rng.integers(2**63)) if noise else 0
            boxes.append({"index": i, "roi": (x0, y0, x1, y1), "matrix": m, "gain": gain, "offset": offset,
                          "sigma": sigma, "noise": noise, "seed": seed})
        return {"boxes": boxes} if boxes else None

    def apply(self, frame: Frame, params: Params) -> None:
        img = frame.writable_image()
        annotations: list[Annotation | list[Annotation]] = list(frame.annotations)
        for p in params["boxes"]:
            x0, y0, x1, y1 = p["roi"]
            roi = img[y0:y1, x0:x1]
            m = p["matrix"]
            if not A.is_identity(m):
                roi[...] = pixels.render(np.ascontiguousarray(roi), m, (x1 - x0, y1 - y0), reflect=True)
                ann = frame.annotations[p["index"]]
                if not isinstance(ann.geometry, (Box, Label)):
                    to_roi = m @ A.translate(-x0, -y0)
                    inside, _ = kernels.affine_pieces(ann.geometry, matrix=to_roi, size=(x1 - x0, y1 - y0))
                    moved = [g for piece in inside
                             for g in kernels.affine_pieces(piece, matrix=A.translate(x0, y0), size=frame.size)[0]]
                    if moved:  # a polyline the box cuts: its parts inside the box, each with the object's box
                        annotations[p["index"]] = [replace(ann, geometry=g, bbox=ann.box, area=None) for g in moved]
            if p["gain"] != 1.0 or p["offset"]:
                roi[...] = pixels.apply_color(np.ascontiguousarray(roi), _m34(np.eye(3) * p["gain"], p["offset"]))
            if p["sigma"] >= 0.3:
                roi[...] = pixels.gaussian_blur(np.ascontiguousarray(roi), p["sigma"])
            if p["noise"]:
                r = np.random.default_rng(p["seed"])
                if self.noise_kind is NoiseKind.SALT_PEPPER:
                    roi[...] = pixels.salt_pepper(np.ascontiguousarray(roi), p["noise"], r)
                else:
                    roi[...] = pixels.gaussian_noise(np.ascontiguousarray(roi), p["noise"] * 255, r)
        frame.annotations = [a for x in annotations for a in (x if isinstance(x, list) else [x])]
        frame.changed = True

    def describe(self, params: Params) -> str:
        return f"box({len(params['boxes'])})"


# -- composition ------------------------------------------------------------------------------
class Compose:
    """Ops in order, as one callable on a Sample and its pixels (train time).

    `seed` fixes the draws (a fresh generator per call would repeat them: the
    generator is created once and advances); without a seed each process draws
    from fresh OS entropy, so DataLoader workers do not repeat each other.
    """

    def __init__(self, ops: Sequence[Op], *, seed: int | None = None, min_visibility: float = 0.0) -> None:
        self.ops = list(ops)
        self.seed = seed
        self.min_visibility = min_visibility
        self._rng: np.random.Generator | None = None
        self._pid = -1

    def rng(self) -> np.random.Generator:
        if self._rng is None or self._pid != os.getpid():
            self._rng = np.random.default_rng(self.seed)
            self._pid = os.getpid()
        return self._rng

    def run(self, frame: Frame, rng: np.random.Generator | None = None) -> Frame:
        r = rng or self.rng()
        for op in self.ops:
            op(frame, r)
        return frame

    def __call__(self, sample: Sample, image: np.ndarray, *, rng: np.random.Generator | None = None,
                 bgr: bool = False) -> tuple[Sample, np.ndarray]:
        """Apply to `image` (HWC uint8, RGB unless bgr) and the sample's annotations."""
        frame = Frame.from_array(image, sample.annotations, bgr=bgr, min_visibility=self.min_visibility)
        self.run(frame, rng)
        out = frame.image()
        ref = replace(sample.image, width=frame.width, height=frame.height, orientation=1) \
            if isinstance(sample.image, ImageRef) else sample.image
        return replace(sample, image=ref, annotations=tuple(frame.annotations), state=None), out

    def __repr__(self) -> str:
        return f"Compose({self.ops!r})"
