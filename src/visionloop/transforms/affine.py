"""3x3 affine matrices in continuous pixel coordinates, and their pixel-index form.

Coordinates follow `core.geometry`: (0, 0) is the top-left corner of the first
pixel, pixel column i spans [i, i + 1). Every geometric op of a version is one
of these matrices plus an output canvas size, so boxes, polygons, masks and the
pixels all follow the same map. Angles are degrees, clockwise on screen (y
points down), as `RotatedBox.angle`.
"""

from __future__ import annotations

import math

import numpy as np

Matrix = np.ndarray  # (3, 3) float64


def identity() -> Matrix:
    return np.eye(3)


def translate(tx: float, ty: float) -> Matrix:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scale(sx: float, sy: float) -> Matrix:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def hflip(width: float) -> Matrix:
    """Mirror left-right within a canvas `width` wide: x → width - x."""
    return np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def vflip(height: float) -> Matrix:
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, height], [0.0, 0.0, 1.0]])


def rot90(k: int, width: float, height: float) -> Matrix:
    """Turn by k quarter turns counter-clockwise (as np.rot90(image, k)); the canvas becomes H×W for odd k."""
    k %= 4
    if k == 0:
        return identity()
    if k == 1:  # (x, y) → (y, W - x)
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, width], [0.0, 0.0, 1.0]])
    if k == 2:
        return np.array([[-1.0, 0.0, width], [0.0, -1.0, height], [0.0, 0.0, 1.0]])
    return np.array([[0.0, -1.0, height], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (x, y) → (H - y, x)


def rotate(degrees: float, cx: float, cy: float) -> Matrix:
    """Rotate about (cx, cy), clockwise on screen for positive degrees."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return translate(cx, cy) @ r @ translate(-cx, -cy)


def shear(degrees_x: float, degrees_y: float, cx: float, cy: float) -> Matrix:
    """Shear about (cx, cy): x += tan(ax)·(y - cy), y += tan(ay)·(x - cx)."""
    m = np.array([[1.0, math.tan(math.radians(degrees_x)), 0.0],
                  [math.tan(math.radians(degrees_y)), 1.0, 0.0], [0.0, 0.0, 1.0]])
    return translate(cx, cy) @ m @ translate(-cx, -cy)


def apply(matrix: Matrix, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = matrix
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def det(matrix: Matrix) -> float:
    return float(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0])


def to_index(matrix: Matrix) -> Matrix:
    """The same map between pixel indices (pixel i's centre is at i + 0.5), what OpenCV's warps take."""
    return translate(-0.5, -0.5) @ matrix @ translate(0.5, 0.5)


def is_lattice(matrix: Matrix, *, tol: float = 1e-9) -> bool:
    """A map of whole pixels onto whole pixels: linear part a signed permutation, integer offset.

    Flips, quarter turns, crops and tiles are lattice maps; they move pixels
    without resampling, so masks and pixels follow them exactly.
    """
    a = matrix[:2, :2]
    if not np.all(np.isclose(np.abs(a), np.round(np.abs(a)), atol=tol)):
        return False
    r = np.round(a)
    if not (np.abs(r).sum(axis=0) == 1).all() or not (np.abs(r).sum(axis=1) == 1).all():
        return False
    idx = to_index(matrix)
    t = idx[:2, 2]
    return bool(np.all(np.abs(t - np.round(t)) < tol))


def is_axis_aligned(matrix: Matrix, *, tol: float = 1e-12) -> bool:
    """Only scale and translation (no turn, shear or flip)."""
    return abs(matrix[0, 1]) < tol and abs(matrix[1, 0]) < tol and matrix[0, 0] > 0 and matrix[1, 1] > 0


def _corners(matrix: Matrix, w: float, h: float) -> list[tuple[float, float]]:
    (a, b, c), (d, e, f) = matrix[0].tolist(), matrix[1].tolist()
    return [(a * x + b * y + c, d * x + e * y + f) for x, y in ((0.0, 0.0), (w, 0.0), (w, h), (0.0, h))]


def covers(matrix: Matrix, src_size: tuple[float, float], dst_size: tuple[float, float], *,
           tol: float = 1e-6) -> bool:
    """Whether the image of the src canvas under `matrix` covers the whole dst canvas."""
    W, H = src_size
    return all(-tol <= x <= W + tol and -tol <= y <= H + tol
               for x, y in _corners(np.linalg.inv(matrix), *dst_size))


def contains(matrix: Matrix, src_size: tuple[float, float], dst_size: tuple[float, float], *,
             tol: float = 1e-6) -> bool:
    """Whether the whole src canvas, mapped by `matrix`, lies inside the dst canvas (nothing is cut off)."""
    w, h = dst_size
    return all(-tol <= x <= w + tol and -tol <= y <= h + tol for x, y in _corners(matrix, *src_size))


def is_identity(matrix: Matrix, *, tol: float = 1e-12) -> bool:
    (a, b, c), (d, e, f) = matrix[0].tolist(), matrix[1].tolist()
    return abs(a - 1) < tol and abs(e - 1) < tol and abs(b) < tol and abs(c) < tol and abs(d) < tol and abs(f) < tol


def orientation(code: int, raw_width: float, raw_height: float) -> Matrix:
    """Raw pixel grid → upright image for an EXIF orientation code (1..8)."""
    W, H = raw_width, raw_height
    if code == 1:
        return identity()
    if code == 2:
        return hflip(W)
    if code == 3:
        return rot90(2, W, H)
    if code == 4:
        return vflip(H)
    if code == 5:  # transpose
        return np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    if code == 6:  # the raw image is turned 90° clockwise to be upright
        return rot90(3, W, H)
    if code == 7:  # transverse
        return np.array([[0.0, -1.0, H], [-1.0, 0.0, W], [0.0, 0.0, 1.0]])
    if code == 8:
        return rot90(1, W, H)
    raise ValueError(f"EXIF orientation must be 1..8, got {code}")
