"""Geometric confirmation of near-duplicate candidates: is one image really a copy of the other?

Perceptual hashes find candidates; in homogeneous imagery (microscopy, aerial,
industrial inspection) unrelated pictures share their low frequencies (the same
illumination, the same texture everywhere) and fall within a few bits of each
other. A candidate pair is confirmed only when the two pictures show the same
content in the same place:

1. both images are decoded in grayscale at reduced size and scaled so their
   longest side is SIDE px (the second one mirrored left-right when the pair was
   found through the mirrored hash);
2. ORB keypoints (up to N_FEATURES) are matched both ways (mutual nearest
   neighbours in Hamming distance, Lowe's ratio RATIO);
3. an affine transform from one image to the other is fitted with RANSAC
   (REPROJ px): at least MIN_INLIERS matches must agree with it;
4. the transform must map one frame onto the other so that they cover each other:
   the overlap is at least COVER of each frame (a resize, a recompression, a crop of
   a few percent, a flip are copies; two views of one scene or slide shifted by a
   third of the frame, a zoomed-in crop, are not).

What counts as a copy is therefore "the same content over at least COVER of both
frames", which is what leaks between a training and a validation split. Pairs
that are similar by hash but not confirmed are reported as look-alikes (info),
never as leakage. Measured in `bench/health.py` (precision and recall against
injected copies and look-alike distractors): at 10,000 synthetic images the 2,386
candidates that are not copies have at most 19 inliers, the 100 true copy pairs at
least 39; on raccoon, copies (resized to 50%, quality 30, cropped 5%, flipped) have
200+ inliers (5th percentile) and unrelated photos at most 8; two views overlapping by
a half, or a crop of the middle two thirds, cover 0.44-0.51 of the frames.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.runtime import map_chunks

log = logging.getLogger(__name__)

#: bump when the rule or its parameters change: cached results are keyed by it
VERSION = 2
SIDE = 320
N_FEATURES = 500
RATIO = 0.85
REPROJ = 4.0
MIN_INLIERS = 30
COVER = 0.8
#: below this many pairs to confirm, a process pool costs more than it saves
POOL_MIN = 200
CHUNK = 64
CACHE_FEATURES = 256

Features = tuple[np.ndarray, np.ndarray, tuple[int, int]]  # points (k, 2) float32, descriptors (k, 32), (w, h)

_blobs: Any = None
_cache: OrderedDict[tuple[str, bool], Features | None] = OrderedDict()


def decode(data: bytes, width: float, height: float, *, mirror: bool = False) -> np.ndarray | None:
    """Grayscale, upright, longest side SIDE px (libjpeg's reduced decode where it is large)."""
    import cv2

    long = max(width, height)
    f = next((f for f in (8, 4, 2) if long / f >= 2 * SIDE), 1)
    flag = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[f]
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if gray is None or gray.ndim != 2 or gray.size == 0:
        return None
    h, w = gray.shape
    s = SIDE / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(gray[:, ::-1]) if mirror else gray


def features(gray: np.ndarray) -> Features:
    import cv2

    orb = cv2.ORB_create(nfeatures=N_FEATURES, fastThreshold=10, edgeThreshold=15, patchSize=15)
    kps, desc = orb.detectAndCompute(gray, None)
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
    if desc is None:
        desc = np.zeros((0, 32), np.uint8)
    return pts, desc, (gray.shape[1], gray.shape[0])


def _mutual_matches(da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    if len(da) < 2 or len(db) < 2:
        e = np.zeros(0, np.int64)
        return e, e
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    ab = bf.knnMatch(da, db, k=2)
    ba = bf.match(db, da)
    back = np.full(len(db), -1, np.int64)
    for m in ba:
        back[m.queryIdx] = m.trainIdx
    ia, ib = [], []
    for ms in ab:
        if len(ms) < 2:
            continue
        m, n = ms
        if m.distance < RATIO * n.distance and back[m.trainIdx] == m.queryIdx:
            ia.append(m.queryIdx)
            ib.append(m.trainIdx)
    return np.asarray(ia, np.int64), np.asarray(ib, np.int64)


def _cover(m: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> float:
    """The smaller of the two shares of each frame that the other covers, with A mapped into B by `m`."""
    import cv2

    wa, ha = size_a
    wb, hb = size_b
    quad = np.array([[0, 0], [wa, 0], [wa, ha], [0, ha]], np.float32)
    mapped = (quad @ m[:, :2].T + m[:, 2]).astype(np.float32)
    area_a = abs(float(cv2.contourArea(mapped)))
    rect = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], np.float32)
    if area_a <= 0 or np.linalg.det(m[:, :2]) <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(mapped, rect)
    return float(min(inter / area_a, inter / (wb * hb)))


def compare(fa: Features | None, fb: Features | None) -> tuple[int, float]:
    """(RANSAC inliers of an affine map from A to B, frame cover of that map); (0, 0.0) when none."""
    import cv2

    if fa is None or fb is None:
        return 0, 0.0
    ia, ib = _mutual_matches(fa[1], fb[1])
    if len(ia) < 3:
        return 0, 0.0
    pa, pb = fa[0][ia], fb[0][ib]
    m, inl = cv2.estimateAffine2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=REPROJ, maxIters=2000,
                                  confidence=0.995, refineIters=10)
    if m is None or inl is None:
        return 0, 0.0
    return int(inl.sum()), _cover(m, fa[2], fb[2])


def confirmed(inliers: np.ndarray, cover: np.ndarray) -> np.ndarray:
    return (inliers >= MIN_INLIERS) & (cover >= COVER)


def _init_worker(blob_url: str) -> None:
    global _blobs
    from visionloop.store.blobs import BlobStore

    _blobs = BlobStore(blob_url)
    _cache.clear()


def _features_of(sha: str, width: float, height: float, mirror: bool) -> Features | None:
    key = (sha, mirror)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    try:
        gray = decode(_blobs.get(sha), width, height, mirror=mirror)
    except (OSError, FileNotFoundError):
        log.warning("blob %s is missing from the blob store", sha)
        gray = None
    f = features(gray) if gray is not None else None
    _cache[key] = f
    if len(_cache) > CACHE_FEATURES:
        _cache.popitem(last=False)
    return f


def _work(job: list[tuple[str, float, float, str, float, float, bool]]) -> tuple[np.ndarray, np.ndarray]:
    inl = np.zeros(len(job), np.int64)
    cov = np.zeros(len(job), np.float64)
    for k, (sa, wa, ha, sb, wb, hb, mirrored) in enumerate(job):
        inl[k], cov[k] = compare(_features_of(sa, wa, ha, False), _features_of(sb, wb, hb, mirrored))
    return inl, cov


class PairCache:
    """(inliers, cover) by (blob a, blob b, mirrored) in `<project>/cache/health-confirm-v{VERSION}.npz`."""

    def __init__(self, root: Path | None) -> None:
        self.path = root / "cache" / f"health-confirm-v{VERSION}.npz" if root is not None else None
        self.key = np.zeros(0, dtype="S129")
        self.inliers = np.zeros(0, np.int64)
        self.cover = np.zeros(0)
        if self.path is not None and self.path.exists():
            try:
                with np.load(self.path) as z:
                    self.key, self.inliers, self.cover = z["key"], z["inliers"], z["cover"]
            except (OSError, KeyError, ValueError) as e:
                log.warning("ignoring unreadable cache %s: %s", self.path, e)

    @staticmethod
    def keys(sa: Sequence[str], sb: Sequence[str], mirrored: np.ndarray) -> np.ndarray:
        return np.array([f"{x}{y}{int(m)}" for x, y, m in zip(sa, sb, mirrored.tolist(), strict=True)], dtype="S129")

    def lookup(self, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.key) == 0:
            return np.zeros(len(key), bool), np.zeros(len(key), np.int64)
        order = np.argsort(self.key)
        s = self.key[order]
        pos = np.minimum(np.searchsorted(s, key), len(s) - 1)
        return s[pos] == key, order[pos]

    def add(self, key: np.ndarray, inliers: np.ndarray, cover: np.ndarray) -> None:
        self.key = np.concatenate([self.key, key])
        self.inliers = np.concatenate([self.inliers, inliers])
        self.cover = np.concatenate([self.cover, cover])
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, key=self.key, inliers=self.inliers, cover=self.cover)
        os.replace(tmp, self.path)


def confirm_pairs(blob_url: str, sha: Sequence[str], width: np.ndarray, height: np.ndarray, a: np.ndarray,
                  b: np.ndarray, mirrored: np.ndarray, *, workers: int = 2, pool_min: int | None = None,
                  cache_root: Path | None = None, progress: Callable[[int], None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(inliers, cover) of each candidate pair (a[k], b[k]) of blobs; `mirrored` flips b first."""
    cache = PairCache(cache_root)
    key = PairCache.keys([str(sha[i]) for i in a.tolist()], [str(sha[j]) for j in b.tolist()], mirrored)
    found, where = cache.lookup(key)
    todo = np.flatnonzero(~found)
    if len(todo):
        inl, cov = _confirm(blob_url, sha, width, height, a[todo], b[todo], mirrored[todo], workers=workers,
                            pool_min=pool_min, progress=progress)
        cache.add(key[todo], inl, cov)
        found, where = cache.lookup(key)
        log.info("confirmed %d near-duplicate candidates (%d from the cache)", len(todo), len(a) - len(todo))
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    return cache.inliers[where], cache.cover[where]


def _confirm(blob_url: str, sha: Sequence[str], width: np.ndarray, height: np.ndarray, a: np.ndarray,
             b: np.ndarray, mirrored: np.ndarray, *, workers: int, pool_min: int | None,
             progress: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(a)
    order = np.lexsort((b, a))  # pairs of one image together: its features are reused from the worker's cache
    rows = [(str(sha[i]), float(width[i]), float(height[i]), str(sha[j]), float(width[j]), float(height[j]),
             bool(mr)) for i, j, mr in zip(a[order].tolist(), b[order].tolist(), mirrored[order].tolist(),
                                            strict=True)]
    jobs = [rows[s:s + CHUNK] for s in range(0, n, CHUNK)]
    parts = map_chunks(_work, jobs, initializer=_init_worker, initargs=(blob_url,), workers=workers,
                       parallel=n >= (POOL_MIN if pool_min is None else pool_min), name="near-duplicate check",
                       progress=progress)
    _cache.clear()  # features kept by an in-process run (workers drop theirs when they end)
    inl, cov = np.empty(n, np.int64), np.empty(n)
    inl[order] = np.concatenate([p[0] for p in parts])
    cov[order] = np.concatenate([p[1] for p in parts])
    return inl, cov
