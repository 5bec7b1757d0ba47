"""Privacy redaction kernels: blur elliptical regions of an image, every other pixel byte-identical.

    out = blur_boxes(pixels, [(x0, y0, x1, y1), ...])        # a copy; only the boxes' ellipses change
    png = redact(blob_bytes, orientation, boxes)             # upright, blurred, lossless PNG bytes

Pure pixel work (no store): `geo.privacy` (detection and the `visionloop blur` command), `ingest` (export) and
`versions` (generation) all blur through these, so an exported image and a version image are the same pixels.
The output of `redact` is PNG so that pixels outside the regions stay exactly the decoded original's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionloop.transforms import affine as A
from visionloop.transforms import pixels as P

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's (upright) pixels


def blur_boxes(image: np.ndarray, boxes: Sequence[Box], *, grow: float = 0.15) -> np.ndarray:
    """A copy of `image` with an ellipse over each box (grown by `grow` per side) replaced by a strong Gaussian
    blur of the neighbourhood (sigma a quarter of the box's shorter side, at least 4 px). Pixels outside the
    ellipses are untouched (byte-identical). Any channel order."""
    import cv2

    out = image.copy()
    h, w = image.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = box
        gx, gy = (x1 - x0) * grow, (y1 - y0) * grow
        x0, y0 = max(0, int(x0 - gx)), max(0, int(y0 - gy))
        x1, y1 = min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy)))
        if x1 <= x0 or y1 <= y0:
            continue
        sigma = max(4.0, min(x1 - x0, y1 - y0) / 4)
        pad = int(3 * sigma)
        px0, py0, px1, py1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        blurred = cv2.GaussianBlur(out[py0:py1, px0:px1], (0, 0), sigmaX=sigma, sigmaY=sigma)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.ellipse(mask, (((x1 - x0) / 2, (y1 - y0) / 2), (float(x1 - x0), float(y1 - y0)), 0.0), 1, -1)
        inner = blurred[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        region = out[y0:y1, x0:x1]
        region[mask.astype(bool)] = inner[mask.astype(bool)]
    return out


def upright(data: bytes, orientation: int = 1) -> np.ndarray:
    """The image's pixels (BGR) with its EXIF orientation applied, as the store's coordinates see them."""
    raw = P.decode(data)
    if orientation == 1:
        return raw
    m = A.orientation(orientation, raw.shape[1], raw.shape[0])
    return np.ascontiguousarray(P._orient(raw, m[:2, :2]))


def redact(data: bytes, orientation: int, boxes: Sequence[Box]) -> bytes:
    """PNG bytes of the upright image with every box blurred (orientation 1 from then on)."""
    return P.encode(blur_boxes(upright(data, orientation), boxes), extension=".png", quality=0)
