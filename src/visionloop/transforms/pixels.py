"""Pixel work with OpenCV: decoding, one-warp rendering of an affine map, colour matrices, encoding.

Arrays are uint8, (h, w, 3) in OpenCV's BGR order or (h, w) grey. The recipe
never sees this module; ops call it.

Decoding ignores EXIF orientation (the orientation is part of the op's
matrix, so it costs nothing extra) and, when the output is at most a half,
quarter or eighth of the source, asks libjpeg for a reduced decode.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from visionloop.transforms import affine as A

#: luminance weights of the SVG/CSS colour filters (Rec. 709, rounded so each row sums to 1), RGB order
LUMA_RGB = np.array([0.213, 0.715, 0.072])


def cv2_module() -> Any:
    import cv2

    return cv2


def decode(data: bytes, *, reduce: int = 1, grey: bool = False) -> np.ndarray:
    """Raw (un-oriented) pixels; `reduce` ∈ {1, 2, 4, 8} decodes JPEGs at that fraction."""
    cv2 = cv2_module()
    flags = cv2.IMREAD_IGNORE_ORIENTATION
    if grey:
        flags |= {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                  8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduce]
    else:
        flags |= {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None:
        raise ValueError("not a decodable image")
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    return arr  # type: ignore[no-any-return]


#: a reduced decode is used while it leaves at least 1/UPSAMPLE source pixels per output pixel along each
#: axis: JPEG's DCT-domain reduction keeps what a half-size image can hold, and an output at most 1.25× larger
#: than that loses little (the crop/zoom of an augmentation, a 16:9 frame stretched to a square)
UPSAMPLE = 1.25


def reduction_for(matrix: np.ndarray, *, jpeg: bool) -> int:
    """The largest JPEG decode reduction (1, 2, 4, 8) the map from source to output allows."""
    if not jpeg:
        return 1
    a = matrix[:2, :2]
    s = max(math.hypot(a[0, 0], a[1, 0]), math.hypot(a[0, 1], a[1, 1]))
    for f in (8, 4, 2):
        if s * f <= UPSAMPLE + 1e-9:
            return f
    return 1


def encode(pixels: np.ndarray, *, extension: str, quality: int) -> bytes:
    cv2 = cv2_module()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if extension == ".jpg" else []
    ok, buf = cv2.imencode(extension, pixels, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {extension}")
    return buf.tobytes()  # type: ignore[no-any-return]


def _fill(pixels: np.ndarray, fill: tuple[int, int, int] | None) -> Any:
    value = fill or (0, 0, 0)
    return value[0] if pixels.ndim == 2 else tuple(int(v) for v in value)


def _pad(pixels: np.ndarray, x0: int, y0: int, w: int, h: int, *, reflect: bool,
         fill: tuple[int, int, int] | None) -> np.ndarray:
    """Window [x0, x0 + w) × [y0, y0 + h) of `pixels`; parts outside are filled or mirrored."""
    cv2 = cv2_module()
    ph, pw = pixels.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + w <= pw and y0 + h <= ph:
        return pixels[y0:y0 + h, x0:x0 + w]
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + w - pw), max(0, y0 + h - ph)
    if reflect and max(left, right) < pw and max(top, bottom) < ph:
        padded = cv2.copyMakeBorder(pixels, top, bottom, left, right, cv2.BORDER_REFLECT_101)
    else:
        padded = cv2.copyMakeBorder(pixels, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                    value=_fill(pixels, fill))
    return padded[y0 + top:y0 + top + h, x0 + left:x0 + left + w]  # type: ignore[no-any-return]


def _orient(pixels: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Apply a signed permutation (2x2, entries 0/±1) to the pixel grid, exactly."""
    out = pixels
    if a[0, 0] == 0:  # x' depends on y: transpose first
        out = out.transpose(1, 0, 2) if out.ndim == 3 else out.T
        a = a @ np.array([[0.0, 1.0], [1.0, 0.0]])
    if a[0, 0] < 0:
        out = out[:, ::-1]
    if a[1, 1] < 0:
        out = out[::-1]
    return out


def render(pixels: np.ndarray, matrix: np.ndarray, size: tuple[int, int], *, reflect: bool = False,
           fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """`pixels` mapped by `matrix` (continuous coordinates) onto a canvas of `size` = (w, h), one resampling.

    Lattice maps (flips, quarter turns, crops) move pixels exactly. Scale +
    offset maps with a whole-pixel result resize with INTER_AREA (shrinking) or
    INTER_LINEAR and then pad or crop. Anything else is one warpAffine
    (bilinear), after an INTER_AREA pre-shrink when it shrinks by more than 2.
    """
    cv2 = cv2_module()
    w, h = int(size[0]), int(size[1])
    ph, pw = pixels.shape[:2]
    m = np.asarray(matrix, dtype=np.float64)
    a = m[:2, :2]
    # 1. a signed permutation with any scale: orient exactly, keep the scale + offset part
    nz = np.abs(a) > 1e-12
    if nz.sum() == 2 and (nz.sum(axis=0) == 1).all():
        signs = np.sign(a) * nz
        if not (signs[0, 0] == 1 and signs[1, 1] == 1):
            oriented = _orient(pixels, signs)
            oh, ow = oriented.shape[:2]
            # L maps pixels' continuous coords onto the oriented grid; m = rest @ L
            L = np.eye(3)
            L[:2, :2] = signs
            L[0, 2] = ow if (signs[0] < 0).any() else 0.0
            L[1, 2] = oh if (signs[1] < 0).any() else 0.0
            return render(np.ascontiguousarray(oriented), m @ np.linalg.inv(L), size, reflect=reflect, fill=fill)
        sx, sy, tx, ty = m[0, 0], m[1, 1], m[0, 2], m[1, 2]
        if abs(sx - 1) < 1e-12 and abs(sy - 1) < 1e-12 and abs(tx - round(tx)) < 1e-9 and abs(ty - round(ty)) < 1e-9:
            return np.ascontiguousarray(_pad(pixels, -round(tx), -round(ty), w, h, reflect=reflect, fill=fill))
        nw, nh = pw * sx, ph * sy
        if abs(nw - round(nw)) < 1e-6 and abs(nh - round(nh)) < 1e-6 and abs(tx - round(tx)) < 1e-6 \
                and abs(ty - round(ty)) < 1e-6 and round(nw) > 0 and round(nh) > 0:
            nw_i, nh_i = round(nw), round(nh)
            # INTER_AREA only for a real shrink (at fractional ratios it is 6× slower than bilinear,
            # which aliases little above half size)
            interp = cv2.INTER_AREA if 2 * nw_i <= pw or 2 * nh_i <= ph else cv2.INTER_LINEAR
            x0, y0 = -round(tx), -round(ty)
            if (nw_i, nh_i) == (pw, ph):
                scaled = pixels
            elif x0 >= 0 and y0 >= 0 and x0 + w <= nw_i and y0 + h <= nh_i and (w, h) != (nw_i, nh_i) \
                    and interp == cv2.INTER_LINEAR:
                scaled = None  # an enlarged crop: warp only the window
            else:
                scaled = cv2.resize(pixels, (nw_i, nh_i), interpolation=interp)
            if scaled is not None:
                return np.ascontiguousarray(_pad(scaled, x0, y0, w, h, reflect=reflect, fill=fill))
    # 2. general: pre-shrink strong reductions with INTER_AREA, then one bilinear warp
    s = min(math.hypot(a[0, 0], a[1, 0]), math.hypot(a[0, 1], a[1, 1]))
    if s < 0.5:
        f = 1 / (2 * s)
        sw, sh = max(1, round(pw / f)), max(1, round(ph / f))
        pixels = cv2.resize(pixels, (sw, sh), interpolation=cv2.INTER_AREA)
        m = m @ A.scale(pw / sw, ph / sh)
        ph, pw = sh, sw
    idx = A.to_index(m)[:2]
    border = cv2.BORDER_REFLECT_101 if reflect else cv2.BORDER_CONSTANT
    out = cv2.warpAffine(pixels, idx, (w, h), flags=cv2.INTER_LINEAR, borderMode=border,
                         borderValue=_fill(pixels, fill) if not reflect else 0)
    return out  # type: ignore[no-any-return]


# -- colour -----------------------------------------------------------------------------------
def saturation_matrix(s: float) -> np.ndarray:
    """3x3 RGB matrix scaling saturation by s (0 = grey), luminance kept (SVG feColorMatrix saturate)."""
    lum = np.tile(LUMA_RGB, (3, 1))
    return lum + s * (np.eye(3) - lum)


def hue_matrix(degrees: float) -> np.ndarray:
    """3x3 RGB matrix turning hue by `degrees` about the grey axis, grey kept (SVG feColorMatrix hueRotate)."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return np.array([
        [0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928],
        [0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283],
        [0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072],
    ])


def apply_color(pixels: np.ndarray, m: np.ndarray, *, bgr: bool = True) -> np.ndarray:
    """Apply a 3x4 RGB colour matrix (linear part + offset in 0..255 units), saturating to uint8."""
    cv2 = cv2_module()
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 1):
        gain = float(m[0, :3].sum())
        offset = float(m[0, 3])
        lut = np.clip(np.arange(256) * gain + offset, 0, 255).round().astype(np.uint8)
        return cv2.LUT(pixels, lut)  # type: ignore[no-any-return]
    lin, off = m[:, :3], m[:, 3]
    if np.allclose(lin, np.diag(np.diag(lin))) and np.allclose(np.diag(lin), lin[0, 0]) and np.allclose(off, off[0]):
        lut = np.clip(np.arange(256) * lin[0, 0] + off[0], 0, 255).round().astype(np.uint8)
        return cv2.LUT(pixels, lut)  # type: ignore[no-any-return]
    if bgr:
        p = [2, 1, 0]
        lin = lin[p][:, p]
        off = off[p]
    mat = np.concatenate([lin, off[:, None]], axis=1).astype(np.float32)
    return cv2.transform(pixels, mat)  # type: ignore[no-any-return]


def to_grey(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return pixels
    return cv2_module().cvtColor(pixels, cv2_module().COLOR_BGR2GRAY)  # type: ignore[no-any-return]


def luminance_op(pixels: np.ndarray, fn: Any) -> np.ndarray:
    """Apply `fn` (uint8 grey → uint8 grey) to the luminance, keeping colour (YCrCb)."""
    cv2 = cv2_module()
    if pixels.ndim == 2:
        return fn(pixels)  # type: ignore[no-any-return]
    ycc = cv2.cvtColor(pixels, cv2.COLOR_BGR2YCrCb)
    ycc[:, :, 0] = fn(np.ascontiguousarray(ycc[:, :, 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)  # type: ignore[no-any-return]


def contrast_stretch(grey: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(grey, (2, 98))
    if hi - lo < 1:
        return grey
    lut = np.clip((np.arange(256) - lo) * 255.0 / (hi - lo), 0, 255).round().astype(np.uint8)
    return cv2_module().LUT(grey, lut)  # type: ignore[no-any-return]


def equalize(grey: np.ndarray) -> np.ndarray:
    return cv2_module().equalizeHist(grey)  # type: ignore[no-any-return]


def clahe(grey: np.ndarray) -> np.ndarray:
    return cv2_module().createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)  # type: ignore[no-any-return]


# -- filters and noise ------------------------------------------------------------------------
def gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    return cv2_module().GaussianBlur(pixels, (0, 0), sigma)  # type: ignore[no-any-return]


def motion_blur(pixels: np.ndarray, length: int, degrees: float) -> np.ndarray:
    cv2 = cv2_module()
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(math.radians(degrees)) * c, math.sin(math.radians(degrees)) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    k /= max(float(k.sum()), 1.0)
    return cv2.filter2D(pixels, -1, k)  # type: ignore[no-any-return]


def salt_pepper(pixels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    h, w = pixels.shape[:2]
    n = int(round(fraction * h * w))
    if n == 0:
        return pixels
    out = pixels.copy()
    flat = out.reshape(h * w, -1)
    idx = rng.integers(0, h * w, n)
    values = rng.integers(0, 2, n).astype(np.uint8) * 255
    flat[idx] = values[:, None]
    return out


def gaussian_noise(pixels: np.ndarray, sigma: float, rng: np.random.Generator, *, gain: float = 1.0) -> np.ndarray:
    """(pixels · gain) + N(0, sigma²), the same noise on every channel (luminance noise)."""
    cv2 = cv2_module()
    h, w = pixels.shape[:2]
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(sigma)
    base = pixels.astype(np.float32)
    if gain != 1.0:
        base *= np.float32(gain)
    if pixels.ndim == 3:
        noise = noise[:, :, None]
    out = base + noise
    return cv2.convertScaleAbs(np.clip(out, 0, 255))  # type: ignore[no-any-return]
