"""Exact duplicates (same bytes, or same decoded pixels) and near-duplicates (perceptual hashes),
within a split and across splits (train/validation leakage).

Near-duplicate rule
    Each image has seven 64-bit pHashes (`imagehash.views`): whole image, four 95%
    corner windows, central 90%, mirrored whole image. Two images are near-duplicate
    candidates when the whole-image hash of one is within NEAR_BITS (10) bits of any
    of the seven hashes of the other (through the mirrored hash: a flipped copy).
    A candidate is a near-duplicate (and, across splits, leakage) only once
    `confirm` has matched the two pictures geometrically (the same content over at
    least 80% of both frames); the others are look-alikes, an info note: in
    homogeneous imagery (microscopy, aerial) unrelated pictures often fall within
    10 bits.
    Measured on raccoon (200 photos of one animal, a hard set: 19,892 unrelated
    pairs): the whole-image pHash alone finds 100% of 50%-resized and quality-40
    copies but only 56-62% of copies cropped by 5% on two sides at 10 bits (93% at 14
    bits, where unrelated pairs start to match); with the windows, every copy (resized,
    recompressed, cropped 5% on any one, two or all sides, and all three at once) is
    found at 10 bits, with no unrelated pair within 10 bits. dHash was no better than
    pHash and adding it as a second condition did not help. A horizontally flipped
    copy is 26-38 bits from the original's whole hash, and within 10 (usually 0) of
    its mirrored hash; no unrelated raccoon pair is within 13 bits of a mirrored hash.

Search
    Brute force, exact: for each image the minimum Hamming distance of its whole hash
    to the six views of every other image, with XOR and `np.bitwise_count` on uint64 in
    cache-sized tiles (64 × 8192) on two threads (numpy releases the GIL). 50,000 images
    take about 6 s on this 2-core machine; multi-index hashing would need radius-2
    probes on 16-bit chunks (137 probes × 4) and skewed buckets on real photos, for
    less gain than that.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.health import confirm, imagehash
from visionloop.health.load import Images
from visionloop.health.result import DuplicatePair, Finding, Severity
from visionloop.store.project import Store

log = logging.getLogger(__name__)

NEAR_BITS = 10
TILE_ROWS = 64
TILE_COLS = 8192
#: at most this many near-duplicate blob pairs are collected (the count says when more exist)
MAX_PAIRS = 2_000_000
#: at most this many pairs of each kind are listed in the report (counts stay exact)
LIST_PAIRS = 10_000
SPLIT_RANK = {"train": 0, "unassigned": 1}


def near_pairs(views: np.ndarray, *, bits: int = NEAR_BITS, threads: int = 2
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(a, b, distance, truncated): index pairs a < b of rows of `views` (n, 7) uint64 within `bits`."""
    n = len(views)
    if n < 2:
        e = np.zeros(0, np.int64)
        return e, e, e, False
    full = np.ascontiguousarray(views[:, 0])
    cols = np.ascontiguousarray(views.T)  # (7, n)

    def block(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stop = min(start + TILE_ROWS, n)
        f = full[start:stop, None]
        tmp = np.empty((stop - start, TILE_COLS), np.uint64)
        acc = np.empty((stop - start, TILE_COLS), np.uint8)
        cnt = np.empty((stop - start, TILE_COLS), np.uint8)
        out_i, out_j, out_d = [], [], []
        for js in range(0, n, TILE_COLS):
            je = min(js + TILE_COLS, n)
            t, a, c = tmp[:, :je - js], acc[:, :je - js], cnt[:, :je - js]
            np.bitwise_xor(f, cols[0, None, js:je], out=t)
            np.bitwise_count(t, out=a)
            for k in range(1, cols.shape[0]):
                np.bitwise_xor(f, cols[k, None, js:je], out=t)
                np.bitwise_count(t, out=c)
                np.minimum(a, c, out=a)
            i, j = np.nonzero(a <= bits)
            i, j = i + start, j + js
            keep = i != j
            out_i.append(i[keep])
            out_j.append(j[keep])
            out_d.append(a[i[keep] - start, j[keep] - js])
        return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)

    found_i, found_j, found_d = [], [], []
    total, truncated = 0, False
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for i, j, d in pool.map(block, range(0, n, TILE_ROWS)):
            if total + len(i) > MAX_PAIRS:
                truncated = True
                continue
            total += len(i)
            found_i.append(i)
            found_j.append(j)
            found_d.append(d)
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d).astype(np.int64)
    a, b = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((d, b, a))  # per unordered pair keep the smaller of the two directed distances
    a, b, d = a[order], b[order], d[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    if truncated:
        log.warning("more than %d near-duplicate matches: the list is cut, raise NEAR_BITS' strictness or "
                    "look at the dataset: many images look alike", MAX_PAIRS)
    return a[first], b[first], d[first], truncated


def _within_groups(group: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (p, q), p < q in `members` order, of members sharing a group id (groups are small)."""
    order = np.argsort(group[members], kind="stable")
    s = members[order]
    g = group[s]
    pa, pb = [], []
    active = np.arange(len(s) - 1)
    k = 1
    while active.size:
        j = active + k
        ok = j < len(s)
        active, j = active[ok], j[ok]
        same = g[active] == g[j]
        active, j = active[same], j[same]
        pa.append(s[active])
        pb.append(s[j])
        k += 1
    if not pa:
        e = np.zeros(0, np.int64)
        return e, e
    return np.concatenate(pa), np.concatenate(pb)


#: near-duplicate pairs this close (and of equal size) are candidates for "same pixels"
PIXEL_CANDIDATE_BITS = 4


@dataclass
class Blobs:
    """Distinct blobs of a set of images, their fingerprints, same-picture groups and near pairs."""

    sha: np.ndarray  # distinct sha256 (str)
    first: np.ndarray  # an image position of each blob
    inv: np.ndarray  # image position -> blob position
    ok: np.ndarray  # decoded
    group: np.ndarray  # blob -> same-picture group id (a blob position)
    near_a: np.ndarray  # near-duplicate candidate group pairs (group ids, a < b) and their distance
    near_b: np.ndarray
    near_d: np.ndarray
    near_m: np.ndarray  # found through the mirrored hash (b is a flipped copy of a)
    near_ok: np.ndarray  # confirmed geometrically (all True when not confirmed: `analyse(confirm_near=False)`)
    near_inliers: np.ndarray  # matched keypoints that agree with one affine map (-1: not checked)
    truncated: bool
    timings: dict[str, float]
    views: np.ndarray | None = None  # the blobs' perceptual hashes (n, 7)


def mirrored(views: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each pair (a, b) of rows of `views` is closer through a mirrored hash than through the others."""
    full_a, full_b = views[a, 0], views[b, 0]
    direct = np.minimum(np.bitwise_count(full_a[:, None] ^ views[b, :imagehash.MIRROR]).min(1),
                        np.bitwise_count(full_b[:, None] ^ views[a, :imagehash.MIRROR]).min(1))
    mirror = np.minimum(np.bitwise_count(full_a ^ views[b, imagehash.MIRROR]),
                        np.bitwise_count(full_b ^ views[a, imagehash.MIRROR]))
    return mirror < direct


def analyse(store: Store, images: Images, *, bits: int = NEAR_BITS, workers: int = 2, cache: bool = True,
            confirm_near: bool = True, progress: Callable[[int], None] | None = None) -> Blobs:
    """Fingerprint every distinct blob, search near-duplicates, and group blobs showing the same pixels.

    With `confirm_near` every near-duplicate candidate is checked geometrically (`confirm`)."""
    t = time.perf_counter()
    # over the str objects there are (no fixed-width copy: 256 bytes an image, and a np.str_ per blob after)
    u_sha, first, inv = np.unique(images.sha256, return_index=True, return_inverse=True)
    views, digest, ok = imagehash.fingerprints(
        store.blobs.url, list(u_sha), images.width[first], images.height[first],
        cache_root=Path(store.root) if cache else None, workers=workers, progress=progress)
    hashed = time.perf_counter()
    good = np.flatnonzero(ok)
    na, nb, nd, truncated = near_pairs(views[good], bits=bits, threads=workers)
    ga, gb = good[na], good[nb]
    searched = time.perf_counter()
    # same pixels: equal reduced decodes (same codec), or near-identical hashes at equal size; confirmed on
    # the full decode, so a candidate that is not pixel-equal stays a near-duplicate
    cand: set[int] = set()
    key = np.where(ok[:, None], digest, 0).view(np.dtype((np.void, 16))).ravel()
    _, kinv, kcount = np.unique(key, return_inverse=True, return_counts=True)
    cand.update(np.flatnonzero((kcount[kinv] > 1) & ok).tolist())
    w, h = images.width[first], images.height[first]
    close = (nd <= PIXEL_CANDIDATE_BITS) & (w[ga] == w[gb]) & (h[ga] == h[gb])
    cand.update(ga[close].tolist())
    cand.update(gb[close].tolist())
    group = np.arange(len(u_sha))
    full: dict[str, int] = {}
    for b in sorted(cand):  # candidates are rare: each is decoded once, in full
        fd = imagehash.full_pixel_digest(store.blobs.get(str(u_sha[b])))
        if fd is not None:
            group[b] = full.setdefault(fd, b)
    # near pairs between groups (pairs inside a group are pixel-equal, not "near")
    a, b_ = group[ga], group[gb]
    keep = a != b_
    mir = mirrored(views, ga[keep], gb[keep])
    a, b_, d = np.minimum(a[keep], b_[keep]), np.maximum(a[keep], b_[keep]), nd[keep]
    order = np.lexsort((d, b_, a))
    a, b_, d, mir = a[order], b_[order], d[order], mir[order]
    uniq = np.ones(len(a), bool)
    uniq[1:] = (a[1:] != a[:-1]) | (b_[1:] != b_[:-1])
    a, b_, d, mir = a[uniq], b_[uniq], d[uniq], mir[uniq]
    grouped = time.perf_counter()
    if confirm_near:
        inliers, cover = confirm.confirm_pairs(
            store.blobs.url, u_sha, w, h, a, b_, mir, workers=workers,
            cache_root=Path(store.root) if cache else None)
        ok_near = confirm.confirmed(inliers, cover)
    else:
        inliers, ok_near = np.full(len(a), -1, np.int64), np.ones(len(a), bool)
    timings = {"hash_s": hashed - t, "search_s": searched - hashed, "pixels_s": grouped - searched,
               "confirm_s": time.perf_counter() - grouped}
    log.info("%d near-duplicate candidates, %d confirmed", len(a), int(ok_near.sum()))
    return Blobs(u_sha, first, inv, ok, group, a, b_, d, mir, ok_near, inliers, truncated, timings, views)


def find(store: Store, images: Images, *, split: str | None = None, bits: int = NEAR_BITS, workers: int = 2,
         cache: bool = True, progress: Callable[[int], None] | None = None
         ) -> tuple[list[DuplicatePair], dict[str, Any], list[Finding], dict[str, Any]]:
    """Duplicate pairs over the whole project (a `split` keeps the pairs that touch it).

    Returns (pairs listed, summary counts, findings, plan) where `plan` holds the
    same-picture groups that `fix` acts on.
    """
    bl = analyse(store, images, bits=bits, workers=workers, cache=cache, progress=progress)
    igroup = bl.group[bl.inv]
    same_a, same_b = _within_groups(igroup, np.arange(len(images)))
    ga, gb, nd, truncated, timings = bl.near_a, bl.near_b, bl.near_d, bl.truncated, bl.timings
    # expand group pairs to image pairs: every image of one group with every image of the other
    members = _members(igroup)
    pairs: list[DuplicatePair] = []
    in_split = (images.split == split) if split is not None else np.ones(len(images), bool)
    summary: dict[str, Any] = {"bits": bits, "truncated": truncated}

    def make(kind: str, pa: np.ndarray, pb: np.ndarray, dist: np.ndarray, pair: np.ndarray | None = None) -> None:
        keep = in_split[pa] | in_split[pb]
        pa, pb, dist = pa[keep], pb[keep], dist[keep]
        pair = pair[keep] if pair is not None else None
        cross = images.split[pa] != images.split[pb]
        same_ann = images.ann_digest[pa] == images.ann_digest[pb]
        summary[kind] = {"pairs": int(len(pa)), "cross_split": int(cross.sum()),
                         "images": int(len(np.unique(np.concatenate([pa, pb])))) if len(pa) else 0}
        if kind in ("exact", "pixels"):
            summary[kind]["conflicting"] = int((~same_ann).sum())
        if pair is not None:
            summary[kind]["mirrored"] = int(bl.near_m[pair].sum())
        # leakage table: split pair -> count
        if cross.any():
            sa, sb = images.split[pa[cross]], images.split[pb[cross]]
            lo, hi = np.minimum(sa, sb), np.maximum(sa, sb)
            keys, n = np.unique(np.char.add(np.char.add(lo.astype(str), "/"), hi.astype(str)), return_counts=True)
            summary[kind]["by_split_pair"] = {str(k): int(v) for k, v in zip(keys, n, strict=True)}
        order = np.lexsort((images.id[pb], images.id[pa]))[:LIST_PAIRS]
        for p in order:
            x, y = int(pa[p]), int(pb[p])
            extra = {} if pair is None else {"mirrored": bool(bl.near_m[pair[p]]),
                                             "inliers": int(bl.near_inliers[pair[p]])}
            pairs.append(DuplicatePair(kind, images.file_name[x], images.file_name[y], images.split[x],
                                       images.split[y], int(dist[p]), bool(same_ann[p]), int(images.id[x]),
                                       int(images.id[y]), images.sha256[x], images.sha256[y], **extra))

    same_kind = images.sha256[same_a] == images.sha256[same_b]
    make("exact", same_a[same_kind], same_b[same_kind], np.zeros(int(same_kind.sum()), np.int64))
    make("pixels", same_a[~same_kind], same_b[~same_kind], np.zeros(int((~same_kind).sum()), np.int64))
    ia, ib, ipair = _expand(members, ga, gb, np.arange(len(ga)))
    near = bl.near_ok[ipair]
    make("near", ia[near], ib[near], nd[ipair[near]], ipair[near])
    make("similar", ia[~near], ib[~near], nd[ipair[~near]], ipair[~near])
    summary["undecodable"] = int((~bl.ok).sum())
    drop, keep_of = drop_plan(images, igroup)
    if split is not None:
        drop = drop[in_split[drop] | in_split[keep_of]]
    summary["droppable"] = int(len(drop))
    findings = _findings(images, summary, drop, pairs)
    plan = {"group": igroup, "drop": drop}
    summary["timings"] = timings
    return pairs, summary, findings, plan


def _members(group: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(group, kind="stable")
    g = group[order]
    cuts = np.flatnonzero(np.diff(g)) + 1
    return {int(group[c[0]]): c for c in np.split(order, cuts) if len(c)} if len(g) else {}


def _expand(members: dict[int, np.ndarray], ga: np.ndarray, gb: np.ndarray, d: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blob-group pairs to image pairs. Most groups hold one image: those map directly."""
    if len(ga) == 0:
        e = np.zeros(0, np.int64)
        return e, e, e
    single = np.full(max(members) + 1, -1, np.int64)
    multi = set()
    for g, m in members.items():
        if len(m) == 1:
            single[g] = m[0]
        else:
            multi.add(g)
    simple = (single[ga] >= 0) & (single[gb] >= 0)
    pa, pb, pd = [single[ga[simple]]], [single[gb[simple]]], [d[simple]]
    for x, y, dist in zip(ga[~simple].tolist(), gb[~simple].tolist(), d[~simple].tolist(), strict=True):
        mx, my = members[x], members[y]
        pa.append(np.repeat(mx, len(my)))
        pb.append(np.tile(my, len(mx)))
        pd.append(np.full(len(mx) * len(my), dist))
    a, b = np.concatenate(pa), np.concatenate(pb)
    return np.minimum(a, b), np.maximum(a, b), np.concatenate(pd)


def keep_order(images: Images, pos: np.ndarray) -> np.ndarray:
    """`pos` sorted by which copy of a picture to keep first: train, then unassigned, then other splits; then
    the earliest imported (lowest batch); then the shortest file name; then the oldest row."""
    rank = np.array([SPLIT_RANK.get(s, 2) for s in images.split[pos]], dtype=np.int64)
    name_len = np.array([len(os.path.basename(str(f))) for f in images.file_name[pos]], dtype=np.int64)
    return pos[np.lexsort((images.id[pos], name_len, images.batch[pos], rank))]


def keep_reason(images: Images, keep: int, other: int) -> str:
    """Why `keep` is kept rather than `other` (the first rule of `keep_order` that tells them apart)."""
    rk, ro = SPLIT_RANK.get(images.split[keep], 2), SPLIT_RANK.get(images.split[other], 2)
    if rk != ro:
        return f"it is in {images.split[keep]}"
    if images.batch[keep] != images.batch[other]:
        return f"it was imported first (batch {images.batch[keep]}, the copy in batch {images.batch[other]})"
    if len(os.path.basename(str(images.file_name[keep]))) != len(os.path.basename(str(images.file_name[other]))):
        return "same import, and its name is the shorter"
    return "same import and name length: the first row"


def drop_plan(images: Images, igroup: np.ndarray, digest: np.ndarray | None = None,
              state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(drop, keep_of_each): image positions `fix` removes as duplicates, and the copy each one yields to.

    In each same-picture group one image is kept (see `keep_order`); another copy is
    dropped when its annotations are the same as the kept one's (same digest), or when
    it was never labelled. Copies with other annotations are left for a human.
    """
    digest = images.ann_digest if digest is None else digest
    state = images.state if state is None else state
    members = _members(igroup)
    drop, keep_of = [], []
    for m in members.values():  # groups of two or more only; usually few
        if len(m) < 2:
            continue
        keep = keep_order(images, m)[0]
        others = m[m != keep]
        same = (digest[others] == digest[keep]) | (state[others] == "missing")
        drop.append(others[same])
        keep_of.append(np.full(int(same.sum()), keep))
    if not drop:
        e = np.zeros(0, np.int64)
        return e, e
    return np.concatenate(drop), np.concatenate(keep_of)


def _findings(images: Images, s: dict[str, Any], drop: np.ndarray, pairs: list[DuplicatePair]) -> list[Finding]:
    out: list[Finding] = []
    ex = lambda kind, pred=lambda p: True: [  # noqa: E731
        {"a": p.a, "b": p.b, "splits": [p.split_a, p.split_b], "distance": p.distance,
         **({"mirrored": p.mirrored} if p.kind in ("near", "similar") else {})}
        for p in pairs if p.kind == kind and pred(p)][:10]
    exact = s["exact"]["pairs"] + s["pixels"]["pairs"]
    if exact:
        out.append(Finding(
            "exact_duplicates", Severity.WARNING, exact,
            f"{exact} pairs of images are the same picture ({s['exact']['pairs']} same file, {s['pixels']['pairs']} "
            f"same pixels); `visionloop fix` drops {len(drop)} copies whose annotations agree, keeping the one in "
            "train, else the earliest imported, else the one with the shortest name", fixable=bool(len(drop)),
            examples=ex("exact") + ex("pixels")))
    conflicting = s["exact"]["conflicting"] + s["pixels"]["conflicting"]
    if conflicting:
        out.append(Finding(
            "conflicting_duplicates", Severity.ERROR, conflicting,
            f"{conflicting} pairs of identical images carry different annotations: one of each pair is labelled "
            "wrongly; compare them and delete the wrong one (not fixed automatically)",
            examples=ex("exact", lambda p: not p.same_annotations) + ex("pixels", lambda p: not p.same_annotations)))
    near = s["near"]["pairs"]
    if near:
        out.append(Finding(
            "near_duplicates", Severity.WARNING, near,
            f"{near} pairs of images are near-duplicates (resized, recompressed, slightly cropped or flipped copies, "
            f"or burst shots; {s['near']['mirrored']} flipped), confirmed by matching their content; they add little "
            "and, across splits, inflate the evaluation", examples=ex("near")))
    similar = s["similar"]["pairs"]
    if similar:
        out.append(Finding(
            "look_alikes", Severity.INFO, similar,
            f"{similar} pairs of images look alike by their perceptual hash but are not copies of each other (no "
            f"geometric match covering both frames; {s['similar']['cross_split']} across splits): usual in "
            "homogeneous imagery such as microscopy or aerial views; not counted as leakage",
            examples=ex("similar")))
    cross = s["exact"]["cross_split"] + s["pixels"]["cross_split"] + s["near"]["cross_split"]
    if cross:
        table: dict[str, int] = {}
        for kind in ("exact", "pixels", "near"):
            for k, v in s[kind].get("by_split_pair", {}).items():
                table[k] = table.get(k, 0) + v
        listing = ", ".join(f"{k}: {v}" for k, v in sorted(table.items()))
        out.append(Finding(
            "split_leakage", Severity.ERROR, cross,
            f"{cross} pairs of the same or nearly the same picture sit in different splits ({listing}); the model "
            "is evaluated on images it trained on: move or drop one of each pair",
            examples=[e for k in ("exact", "pixels", "near")
                      for e in ex(k, lambda p: p.cross_split)][:10]))
    return out
