"""Frame: one image on its way through the ops — canvas, annotations, and pixels made only when needed.

Geometric ops do not touch pixels: they compose their matrix into the frame's
pending map (source pixels → canvas) and move the annotations at once through
the kernels. Colour ops compose a 3x4 colour matrix. Pixels are decoded and
rendered in one resampling when an op really needs them (blur, noise, contrast)
or at the end, so resize + flip + rotate + crop is one warp, and an output no
op changed reuses the source's bytes without decoding them.

The fused result equals applying the ops one after another (up to a single
rather than repeated interpolation): before an op that reveals area outside
the canvas (rotation, shear, letterbox) the pending map is rendered whenever
earlier ops cut something off, or used another edge fill, or a pending colour
change would not leave that fill as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from visionloop.core.geometry import Keypoints
from visionloop.core.sample import Annotation
from visionloop.transforms import affine as A
from visionloop.transforms import kernels, pixels
from visionloop.transforms.choices import Edges

log = logging.getLogger(__name__)


class PixelSource(Protocol):
    """Where a frame's pixels come from: the raw (un-oriented) size and a decoder."""

    size: tuple[int, int]
    jpeg: bool

    def load(self, reduce: int, grey: bool) -> np.ndarray: ...


class ArraySource:
    """Pixels already in memory (train-time use)."""

    jpeg = False

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.size = (int(array.shape[1]), int(array.shape[0]))

    def load(self, reduce: int, grey: bool) -> np.ndarray:
        return pixels.to_grey(self.array) if grey else self.array


class Frame:
    def __init__(
        self,
        *,
        size: tuple[int, int],
        annotations: Sequence[Annotation],
        source: PixelSource | None,
        pending: np.ndarray | None = None,
        min_visibility: float = 0.0,
        bgr: bool = True,
        flip_pairs: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.width, self.height = int(size[0]), int(size[1])
        self.annotations: list[Annotation] = list(annotations)
        self.min_visibility = min_visibility
        self.bgr = bgr
        self.flip_pairs = flip_pairs or {}
        self.grey = False
        self.changed = False  # pixels differ from the source bytes
        self.ops: list[str] = []
        self.dropped = 0  # objects cut below min_visibility
        self.outside = 0  # objects wholly off the canvas (a tile or crop without them)
        self.partners: list[Frame] | None = None  # mosaic partners, set by the generator
        self._source = source
        self._pixels: np.ndarray | None = None
        self._owned = False  # False: the pixels may be shared with the source's decode cache
        self._pix_size: tuple[int, int] = source.size if source is not None else (self.width, self.height)
        self._pending = A.identity() if pending is None else pending
        self._edges: Edges | None = None
        self._color: np.ndarray | None = None
        self.clipped = not A.contains(self._pending, self._pix_size, (self.width, self.height))

    @classmethod
    def from_array(cls, array: np.ndarray, annotations: Sequence[Annotation], *, bgr: bool = False,
                   min_visibility: float = 0.0, flip_pairs: dict[str, np.ndarray] | None = None) -> Frame:
        frame = cls(size=(array.shape[1], array.shape[0]), annotations=annotations, source=ArraySource(array),
                    min_visibility=min_visibility, bgr=bgr, flip_pairs=flip_pairs)
        frame.grey = array.ndim == 2
        return frame

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    # -- geometry ---------------------------------------------------------------------------
    def warp(self, matrix: np.ndarray, size: tuple[int, int], *, handles: tuple[type, ...],
             edges: Edges = Edges.BLACK) -> None:
        """Map canvas and annotations by `matrix` onto a canvas of `size`; pixels follow lazily."""
        size = (int(size[0]), int(size[1]))
        if size == self.size and A.is_identity(matrix):
            return
        reveals = not A.covers(matrix, self.size, size)
        if reveals and self._must_render_before(edges):
            self._render()
        if reveals and self._edges is None:
            self._edges = edges
        self._move_annotations(matrix, size, handles)
        self._pending = matrix @ self._pending
        self.width, self.height = size
        self.clipped = not A.contains(self._pending, self._pix_size, size)
        self.changed = True

    def _must_render_before(self, edges: Edges) -> bool:
        if self.clipped:
            return True
        if self._edges is not None and self._edges is not edges:
            return True
        if self._color is not None and edges.fill is not None:
            fill = np.asarray(edges.fill, dtype=np.float64)
            mapped = self._color[:, :3] @ fill + self._color[:, 3]
            return not np.allclose(np.clip(mapped, 0, 255), fill, atol=0.5)
        return False

    def _move_annotations(self, matrix: np.ndarray, size: tuple[int, int], handles: tuple[type, ...]) -> None:
        flips = A.det(matrix) < 0
        out: list[Annotation] = []
        for ann in self.annotations:
            if not isinstance(ann.geometry, handles):
                out.append(ann)
                continue
            pieces, visible = kernels.affine_pieces(ann.geometry, matrix=matrix, size=size)
            if not pieces and visible == 0.0:
                self.outside += 1
                continue
            if not pieces or (visible < self.min_visibility and visible < 1.0):
                self.dropped += 1
                continue
            for g in pieces:  # several only for a polyline the canvas cuts: each part an annotation of its own
                if flips and isinstance(g, Keypoints) and ann.label in self.flip_pairs:
                    g = swap_keypoints(g, self.flip_pairs[ann.label])
                out.append(replace(ann, geometry=g, bbox=None, area=None))
        self.annotations = out

    # -- pixels -----------------------------------------------------------------------------
    def color(self, m: np.ndarray) -> None:
        """Compose a 3x4 RGB colour matrix (applied, saturating, when pixels are next needed)."""
        if self._color is None:
            self._color = np.asarray(m, dtype=np.float64)
        else:
            lin = m[:, :3] @ self._color[:, :3]
            off = m[:, :3] @ self._color[:, 3] + m[:, 3]
            self._color = np.concatenate([lin, off[:, None]], axis=1)
        self.changed = True

    def image(self) -> np.ndarray:
        """The canvas's pixels now (renders what is pending)."""
        self._render()
        assert self._pixels is not None
        return self._pixels

    def writable_image(self) -> np.ndarray:
        """The canvas's pixels as an array this frame owns (safe to change in place)."""
        self._render()
        assert self._pixels is not None
        if not self._owned or not self._pixels.flags.writeable or not self._pixels.flags.c_contiguous:
            self._pixels = np.array(self._pixels, order="C", copy=True)
            self._owned = True
        return self._pixels

    def update(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """Replace the pixels by fn(pixels); fn must not change its argument in place."""
        out = fn(self.image())
        if out is not self._pixels:
            self._pixels = out
            self._owned = False
        self.changed = True

    def set_image(self, array: np.ndarray) -> None:
        self._pixels = array
        self._owned = False
        self._pix_size = (int(array.shape[1]), int(array.shape[0]))
        self.width, self.height = self._pix_size
        self._pending = A.identity()
        self._edges = None
        self._color = None
        self.clipped = False
        self.grey = array.ndim == 2
        self.changed = True

    def to_grey(self) -> None:
        self.grey = True
        if self._pixels is not None and self._pixels.ndim == 3:
            self._pixels = pixels.to_grey(self._pixels)
            self._owned = False
        self.changed = True

    def _render(self) -> None:
        if self._pixels is None:
            if self._source is None:
                raise RuntimeError("this frame has no pixels (geometry only)")
            reduce = pixels.reduction_for(self._pending, jpeg=self._source.jpeg)
            arr = self._source.load(reduce, self.grey)
            W, H = self._source.size
            ph, pw = arr.shape[:2]
            if (pw, ph) != (W, H):
                self._pending = self._pending @ A.scale(W / pw, H / ph)
            self._pixels = arr
            self._owned = False
            self._pix_size = (pw, ph)
        if self.grey and self._pixels.ndim == 3:
            self._pixels = pixels.to_grey(self._pixels)
        if not (A.is_identity(self._pending) and self._pix_size == self.size):
            edges = self._edges or Edges.BLACK
            self._pixels = pixels.render(self._pixels, self._pending, self.size, reflect=edges.mode == "reflect",
                                         fill=edges.fill)
            self._owned = False
        self._pending = A.identity()
        self._pix_size = self.size
        self._edges = None
        self.clipped = False
        if self._color is not None:
            self._pixels = pixels.apply_color(self._pixels, self._color, bgr=self.bgr)
            self._owned = False
            self._color = None

    def result(self) -> np.ndarray | None:
        """The final pixels, or None when nothing changed them (reuse the source bytes)."""
        if not self.changed:
            return None
        return self.image()


def swap_keypoints(g: Keypoints, perm: np.ndarray) -> Keypoints:
    p = np.asarray(g.points, dtype=np.float64).reshape(-1, 3)
    if len(perm) != len(p):
        return g
    return Keypoints(tuple(float(v) for v in p[perm].reshape(-1)))


def flip_permutation(names: Sequence[str]) -> np.ndarray | None:
    """Index permutation swapping left_* and right_* keypoints (None when there are none)."""
    lowered = [n.lower() for n in names]
    perm = np.arange(len(names))
    found = False
    for i, n in enumerate(lowered):
        for a, b in (("left", "right"), ("right", "left")):
            if a in n:
                other = n.replace(a, b)
                if other in lowered:
                    perm[i] = lowered.index(other)
                    found = True
    return perm if found else None
