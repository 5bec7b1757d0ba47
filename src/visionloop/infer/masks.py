"""Masks in numpy: instance masks from prototypes, semantic label maps, both mapped back to the photo.

`instance_masks` mixes the prototypes (P, h, w) with each kept detection's coefficients, maps the
soft masks from the prototype grid to the photo with the inverse of the letterbox (one warp per
mask, bilinear), cuts each to its box and thresholds at 0.5. `semantic_map` does the same for the
per-pixel class probabilities and takes the argmax. With `matrix` the identity they stay in the
model's input pixels (training's validation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROTO_STRIDE = 4  # models.instance.PROTO_STRIDE (infer imports no torch)


def _inverse_warp(maps: np.ndarray, to_source: np.ndarray, width: int, height: int) -> np.ndarray:
    """maps (H', W', C) in a grid; to_source: 2×3 matrix photo pixel → grid coordinate. → (height, width, C)."""
    import cv2

    out = [cv2.warpAffine(np.ascontiguousarray(maps[..., i:i + 256]), to_source, (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
           for i in range(0, maps.shape[-1], 256)]
    out = [o[..., None] if o.ndim == 2 else o for o in out]
    return np.concatenate(out, axis=-1)


def _grid_matrix(matrix: np.ndarray, stride: float) -> np.ndarray:
    """photo pixel index → grid index, for a grid of `stride` input pixels per cell. `matrix` (the letterbox,
    photo → input) is in continuous coordinates (pixel i spans [i, i + 1)); OpenCV puts centres on integers."""
    m = np.asarray(matrix, dtype=np.float64)[:2].copy() / stride
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return m


def instance_masks(coefs: np.ndarray, protos: np.ndarray, boxes: np.ndarray, matrix: np.ndarray, width: int,
                   height: int, *, threshold: float = 0.5) -> np.ndarray:
    """coefs (K, P), protos (P, h, w), boxes (K, 4) in the photo's pixels → bool masks (K, height, width)."""
    k = len(coefs)
    out = np.zeros((k, height, width), dtype=bool)
    if k == 0:
        return out
    p, h, w = protos.shape
    logits = (coefs.astype(np.float32) @ protos.reshape(p, -1).astype(np.float32)).reshape(k, h, w)
    soft = (1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))).astype(np.float32)
    grid = _grid_matrix(matrix, PROTO_STRIDE)
    for i, b in enumerate(boxes):
        x0, y0 = max(0, int(np.floor(b[0]))), max(0, int(np.floor(b[1])))
        x1, y1 = min(width, int(np.ceil(b[2]))), min(height, int(np.ceil(b[3])))
        if x1 <= x0 or y1 <= y0:
            continue
        local = grid.copy()
        local[:, 2] += grid[:, :2] @ np.array([x0, y0], dtype=np.float64)  # only the box's pixels are warped
        out[i, y0:y1, x0:x1] = _inverse_warp(soft[i][..., None], local, x1 - x0, y1 - y0)[..., 0] > threshold
    return out


def semantic_map(probabilities: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """probabilities (K + 1, H, W) in the model's input → (height, width) class map of the photo
    (uint8 up to 255 classes, else uint16): 0 background, k + 1 the model's class k."""
    grid = _grid_matrix(matrix, 1.0)
    best = np.full((height, width), -np.inf, np.float32)
    labels = np.zeros((height, width), np.uint8 if probabilities.shape[0] <= 256 else np.uint16)
    for k, channel in enumerate(probabilities.astype(np.float32)):  # one photo-sized map at a time, not K + 1
        value = _inverse_warp(channel[..., None], grid, width, height)[..., 0]
        better = value > best  # strict: ties keep the lower class, as argmax
        best[better] = value[better]
        labels[better] = k
    return labels


def rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask (H, W) as COCO compressed RLE {"size": [H, W], "counts": str}."""
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
