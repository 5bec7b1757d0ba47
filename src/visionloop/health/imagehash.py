"""Per-image fingerprints for duplicate finding, computed once per blob (and cached).

For every distinct blob:

- `pixels`: 16 bytes of SHA-256 over the reduced-size grayscale decode and its
  shape. Equal pixels give equal reduced decodes, so this finds candidates for
  "same pixels, different bytes" (re-saved, EXIF stripped) cheaply; candidates are
  then confirmed on the full colour decode (`full_pixel_digest`).
- `views`: seven 64-bit pHashes (DCT of a 32×32 area-resized grayscale, the 8×8
  lowest frequencies against their median): of the whole image, of its four
  corner windows covering 95% of each side, of its central 90%, and of the whole
  image mirrored left-right. A copy cropped by up to ~5% looks like one of these
  windows of the original, which a single whole-image hash does not see (see
  `duplicates.py` for the numbers); a horizontally flipped copy (a common
  augmentation) is 26-38 bits from the original's whole hash on raccoon but equal
  to its mirrored hash.

Decoding is at reduced size: JPEGs are decoded by libjpeg's DCT scaling at 1/2,
1/4 or 1/8 (OpenCV `IMREAD_REDUCED_GRAYSCALE_*`), chosen so the short side stays
at least 64 px. EXIF orientation is applied, as in the store's upright sizes.
The loop over images runs on a process pool.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.runtime import map_chunks

log = logging.getLogger(__name__)

VERSION = 2  # 2: the mirrored view (version 1 had six views)
N_VIEWS = 7
MIRROR = 6  # index of the mirrored whole-image view
MIN_SIDE = 64
CORNER = 0.95
CENTRE = 0.90
#: below this many images to hash, a process pool costs more than it saves
POOL_MIN = 2000
CHUNK = 256

_blobs: Any = None  # the worker's BlobStore, made once by the pool initializer


def _reduction(width: float, height: float) -> int:
    short = min(width, height)
    for f in (8, 4, 2):
        if short / f >= MIN_SIDE:
            return f
    return 1


def _phash(gray: np.ndarray) -> int:
    import cv2

    s = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    d = cv2.dct(s)[:8, :8].reshape(-1)
    bits = d > np.median(d[1:])
    return int(np.packbits(bits).view(">u8")[0])


def views(gray: np.ndarray) -> list[int]:
    """The seven pHashes of a grayscale image: whole, four 95% corner windows, central 90%, mirrored whole."""
    h, w = gray.shape
    a, b = max(1, round(h * CORNER)), max(1, round(w * CORNER))
    c, e = round(h * (1 - CENTRE) / 2), round(w * (1 - CENTRE) / 2)
    wins = [gray, gray[:a, :b], gray[:a, w - b:], gray[h - a:, :b], gray[h - a:, w - b:], gray[c:h - c, e:w - e]]
    return [_phash(x) for x in wins] + [_phash(np.ascontiguousarray(gray[:, ::-1]))]


def decode_reduced(data: bytes, width: float, height: float) -> np.ndarray | None:
    import cv2

    flag = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[_reduction(width, height)]
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if gray is None or gray.size == 0 or gray.ndim != 2:
        return None
    return gray


def fingerprint(data: bytes, width: float, height: float) -> tuple[list[int], bytes] | None:
    """(views, pixel digest) of image bytes, None if they do not decode."""
    gray = decode_reduced(data, width, height)
    if gray is None:
        return None
    h = hashlib.sha256(f"{gray.shape}".encode())
    h.update(np.ascontiguousarray(gray).tobytes())
    return views(gray), h.digest()[:16]


def full_pixel_digest(data: bytes) -> str | None:
    """SHA-256 of the full colour decode (upright) and its shape: equal iff the pixels are equal."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    h = hashlib.sha256(f"{img.shape}{img.dtype}".encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def _init_worker(blob_url: str) -> None:
    """Once per worker (the runtime has already put OpenCV on one thread: one image per process at a time)."""
    global _blobs
    from visionloop.store.blobs import BlobStore

    _blobs = BlobStore(blob_url)


def _work(job: list[tuple[str, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fingerprints of a chunk of blobs: (views uint64 (n, 7), digests (n, 16) uint8, ok bool (n,))."""
    n = len(job)
    out_v = np.zeros((n, N_VIEWS), np.uint64)
    out_d = np.zeros((n, 16), np.uint8)
    ok = np.zeros(n, bool)
    for i, (sha, w, h) in enumerate(job):
        try:
            data = _blobs.get(sha)
        except (OSError, FileNotFoundError):
            log.warning("blob %s is missing from the blob store", sha)
            continue
        fp = fingerprint(data, w, h)
        if fp is None:
            continue
        out_v[i] = np.array(fp[0], dtype=np.uint64)
        out_d[i] = np.frombuffer(fp[1], np.uint8)
        ok[i] = True
    return out_v, out_d, ok


class HashCache:
    """Fingerprints by blob sha256 in `<project>/cache/health-hashes-v{VERSION}.npz` (bytes never change)."""

    def __init__(self, root: Path | None) -> None:
        self.path = root / "cache" / f"health-hashes-v{VERSION}.npz" if root is not None else None
        self.sha = np.zeros(0, dtype="S64")
        self.views = np.zeros((0, N_VIEWS), np.uint64)
        self.digest = np.zeros((0, 16), np.uint8)
        self.ok = np.zeros(0, bool)
        if self.path is not None and self.path.exists():
            try:
                with np.load(self.path) as z:
                    if z["views"].ndim == 2 and z["views"].shape[1] == N_VIEWS:
                        self.sha, self.views, self.digest, self.ok = z["sha"], z["views"], z["digest"], z["ok"]
            except (OSError, KeyError, ValueError) as e:
                log.warning("ignoring unreadable hash cache %s: %s", self.path, e)

    def lookup(self, sha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, positions in the cache) for the given sha256 strings (as S64)."""
        if len(self.sha) == 0:
            return np.zeros(len(sha), bool), np.zeros(len(sha), np.int64)
        order = np.argsort(self.sha)
        s = self.sha[order]
        pos = np.minimum(np.searchsorted(s, sha), len(s) - 1)
        found = s[pos] == sha
        return found, order[pos]

    def add(self, sha: np.ndarray, views: np.ndarray, digest: np.ndarray, ok: np.ndarray) -> None:
        self.sha = np.concatenate([self.sha, sha])
        self.views = np.concatenate([self.views, views])
        self.digest = np.concatenate([self.digest, digest])
        self.ok = np.concatenate([self.ok, ok])
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, sha=self.sha, views=self.views, digest=self.digest, ok=self.ok)
        os.replace(tmp, self.path)


def fingerprints(blob_url: str, sha: Sequence[str], width: np.ndarray, height: np.ndarray, *,
                 cache_root: Path | None = None, workers: int = 2, pool_min: int | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fingerprints of distinct blobs: (views (n, 7) uint64, digests (n, 16) uint8, decoded ok (n,))."""
    key = np.asarray(sha, dtype="S64")
    cache = HashCache(cache_root)
    found, where = cache.lookup(key)
    todo = np.flatnonzero(~found)
    if len(todo):
        jobs = [[(sha[i], float(width[i]), float(height[i])) for i in todo[s:s + CHUNK]]
                for s in range(0, len(todo), CHUNK)]
        parts = map_chunks(_work, jobs, initializer=_init_worker, initargs=(blob_url,), workers=workers,
                           parallel=len(todo) >= (POOL_MIN if pool_min is None else pool_min),
                           name="image hashing", progress=progress)
        v = np.concatenate([p[0] for p in parts])
        d = np.concatenate([p[1] for p in parts])
        ok = np.concatenate([p[2] for p in parts])
        cache.add(key[todo], v, d, ok)
        found, where = cache.lookup(key)
        log.info("hashed %d images (%d from the cache)", len(todo), len(key) - len(todo))
    return cache.views[where], cache.digest[where], cache.ok[where]
