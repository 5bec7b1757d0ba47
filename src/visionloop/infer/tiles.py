"""Tiled inference: small objects in large images.

The image is cut into `rows x cols` overlapping tiles (each side overlaps its neighbour by
`overlap` of a tile); every tile goes through the model at the model's own input size, so an
object keeps `input / tile` times more pixels than when the whole image is squeezed in. With
`full=True` the whole image (downscaled, as without tiling) is predicted too, for objects larger
than a tile. Boxes are mapped back to the image and merged:

1. a box touching a tile edge that is not the image border is *cut*: when a box of the same class
   from another tile (or the whole image) covers at least `cover` of it, the cut box is a piece of
   an object seen whole elsewhere and is dropped; when nothing covers it, it is kept (the only
   evidence of that object);
2. the rest are merged class-wise: greedy NMS (`merge="nms"`, the highest score wins) or weighted
   boxes fusion (`merge="wbf"`: overlapping boxes averaged, weighted by score; the score is the
   cluster's highest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.infer.post import nms
from visionloop.infer.prediction import Prediction


class Model(Protocol):
    """What tiling needs of a predictor (`visionloop.infer.Predictor` is one)."""

    task: str
    classes: list[str]

    def predict(self, image: np.ndarray, *, conf: float = 0.25, iou: float = 0.6, max_det: int = 100) -> Prediction:
        ...

MERGES = ("nms", "wbf")


@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    x1: int
    y1: int


def parse_tile(text: str) -> tuple[int, int]:
    """`2x2` / `3x4` (rows x cols) → (rows, cols)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise VisionLoopError(f"cannot read the tile grid {text!r}", hint="write ROWSxCOLS, e.g. --tile 2x2") from None
    if rows < 1 or cols < 1:
        raise VisionLoopError(f"the tile grid {text!r} needs at least one row and one column", hint="e.g. --tile 2x2")
    return rows, cols


def _spans(length: int, n: int, overlap: float) -> list[tuple[int, int]]:
    size = length / (n - (n - 1) * overlap)
    step = size * (1 - overlap)
    out = []
    for k in range(n):
        a = int(round(k * step))
        b = length if k == n - 1 else min(length, int(round(k * step + size)))
        out.append((a, b))
    return out


def tile_grid(width: int, height: int, rows: int, cols: int, overlap: float = 0.2) -> list[Tile]:
    """Tiles covering the image row by row; neighbours share `overlap` of a tile's side."""
    if not 0.0 <= overlap < 1.0:
        raise VisionLoopError(f"overlap {overlap} is outside [0, 1)", hint="e.g. --overlap 0.2")
    if rows > height or cols > width:
        raise VisionLoopError(f"a {rows}x{cols} grid does not fit a {width}x{height} image", hint="use fewer tiles")
    return [Tile(x0, y0, x1, y1) for y0, y1 in _spans(height, rows, overlap) for x0, x1 in _spans(width, cols, overlap)]


def cut_mask(boxes: np.ndarray, tile: Tile, width: int, height: int, eps: float = 2.0) -> np.ndarray:
    """Boxes (image pixels) touching an edge of `tile` that is inside the image (where the object may go on)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    cut = np.zeros(len(b), bool)
    if tile.x0 > 0:
        cut |= b[:, 0] <= tile.x0 + eps
    if tile.y0 > 0:
        cut |= b[:, 1] <= tile.y0 + eps
    if tile.x1 < width:
        cut |= b[:, 2] >= tile.x1 - eps
    if tile.y1 < height:
        cut |= b[:, 3] >= tile.y1 - eps
    return cut


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) → (N, M) IoU."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _cover(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) → (N, M): the fraction of each `part` box inside each `whole` box."""
    w = np.clip(np.minimum(part[:, None, 2], whole[None, :, 2]) - np.maximum(part[:, None, 0], whole[None, :, 0]),
                0, None)
    h = np.clip(np.minimum(part[:, None, 3], whole[None, :, 3]) - np.maximum(part[:, None, 1], whole[None, :, 1]),
                0, None)
    area = (part[:, 2] - part[:, 0]) * (part[:, 3] - part[:, 1])
    return np.where(area[:, None] > 0, w * h / np.where(area[:, None] > 0, area[:, None], 1), 0.0)


def wbf(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted boxes fusion of one class: clusters by IoU with the cluster's fused box (highest score first);
    fused box = score-weighted mean, score = the cluster's highest. Returns fused boxes and scores, best first."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    fused: list[np.ndarray] = []
    members: list[list[int]] = []
    for i in order:
        if fused:
            ious = _iou(boxes[i:i + 1], np.asarray(fused))[0]
            j = int(np.argmax(ious))
            if ious[j] > iou:
                members[j].append(int(i))
                w = scores[members[j]]
                fused[j] = (boxes[members[j]] * w[:, None]).sum(0) / w.sum()
                continue
        fused.append(boxes[i].astype(np.float64))
        members.append([int(i)])
    out_scores = np.asarray([scores[m].max() for m in members], np.float64)
    return np.asarray(fused, np.float64).reshape(-1, 4), out_scores


def merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, cut: np.ndarray, source: np.ndarray, *,
          iou: float = 0.5, method: str = "nms", cover: float = 0.6,
          max_det: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge detections from several tiles (image pixels). `cut`: the box touches an inner tile edge;
    `source`: the tile it came from. Returns boxes, scores, labels, best first (ties: earlier tile first)."""
    if method not in MERGES:
        raise VisionLoopError(f"unknown merge {method!r}", hint="use nms or wbf")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.int64)
    keep = np.ones(len(boxes), bool)
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        cut_idx, whole_idx = idx[cut[idx]], idx[~cut[idx]]
        if len(cut_idx) and len(whole_idx):
            frac = _cover(boxes[cut_idx], boxes[whole_idx])
            frac[source[cut_idx][:, None] == source[whole_idx][None, :]] = 0.0  # seen whole by *another* tile
            keep[cut_idx[(frac >= cover).any(1)]] = False
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    out_b, out_s, out_l = [], [], []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        if method == "nms":
            k = idx[nms(boxes[idx], scores[idx], iou)]
            b, s = boxes[k], scores[k]
        else:
            b, s = wbf(boxes[idx], scores[idx], iou)
        out_b.append(b)
        out_s.append(s)
        out_l.append(np.full(len(s), c, np.int64))
    if not out_s:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    b, s, lab = np.concatenate(out_b), np.concatenate(out_s), np.concatenate(out_l)
    order = np.lexsort((lab, -s))[:max_det]  # stable: score, then class
    return b[order].astype(np.float32), s[order].astype(np.float32), lab[order]


def predict_tiled(predictor: Model, image: np.ndarray, *, tile: tuple[int, int], overlap: float = 0.2,
                  full: bool = False, merge_method: str = "nms", conf: float = 0.25, iou: float = 0.6,
                  merge_iou: float = 0.5, max_det: int = 100, file_name: str = "") -> Prediction:
    """Predict every tile (and the whole image with `full`), map the boxes back, merge (see the module)."""
    h, w = image.shape[:2]
    tiles = tile_grid(w, h, *tile, overlap=overlap)
    per_tile = max(max_det, 300)
    parts = []
    for t in tiles:
        p = predictor.predict(image[t.y0:t.y1, t.x0:t.x1], conf=conf, iou=iou, max_det=per_tile)
        parts.append((p.boxes, p.scores, p.labels))
    if full:
        p = predictor.predict(image, conf=conf, iou=iou, max_det=per_tile)
        parts.append((p.boxes, p.scores, p.labels))
    pred = Prediction(file_name, w, h, predictor.task, predictor.classes)
    pred.boxes, pred.scores, pred.labels = merge_tiles(tiles, parts, w, h, merge_method=merge_method,
                                                       merge_iou=merge_iou, max_det=max_det)
    return pred


def merge_tiles(tiles: list[Tile], parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], width: int, height: int,
                *, merge_method: str = "nms", merge_iou: float = 0.5,
                max_det: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each tile's detections (boxes in the tile's pixels, scores, labels; one more part after the tiles: the
    whole image's) mapped to the image and merged."""
    bs, ss, ls, cuts, srcs = [], [], [], [], []
    for t_i, (boxes, scores, labels) in enumerate(parts):
        if t_i < len(tiles):
            t = tiles[t_i]
            b = boxes.astype(np.float64) + np.array([t.x0, t.y0, t.x0, t.y0], np.float64)
            cuts.append(cut_mask(b, t, width, height))
        else:
            b = boxes.astype(np.float64)
            cuts.append(np.zeros(len(b), bool))
        bs.append(b.reshape(-1, 4))
        ss.append(scores)
        ls.append(labels)
        srcs.append(np.full(len(b), t_i))
    return merge(np.concatenate(bs), np.concatenate(ss), np.concatenate(ls), np.concatenate(cuts),
                 np.concatenate(srcs), iou=merge_iou, method=merge_method, max_det=max_det)
