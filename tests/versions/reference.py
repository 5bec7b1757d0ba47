"""The previous selection and job-building code (before the memory and worker rework), kept as test oracles:
the reworked code must give the same splits, names and annotations, so versions (and resumes) do not change."""

from __future__ import annotations

import hashlib
import posixpath
from array import array
from collections import Counter
from typing import Any

import numpy as np
import orjson
from sqlalchemy import case, func, select

from visionloop.store import itemcodec
from visionloop.store.schema import AnnotationRow, ImageRow
from visionloop.versions.choices import SplitMode
from visionloop.versions.selection import (
    ALIASES,
    SPLIT_STREAM,
    SPLITS,
    UNASSIGNED,
    _filter_null,
    _targets,
    stem_key,
    version_classes,
)


def select_images(store, recipe) -> dict[str, Any]:
    classes, label_of, keypoints = version_classes(store, recipe)
    tags = recipe.preprocess.filter_tags
    include, exclude = set(tags.include) if tags else set(), set(tags.exclude) if tags else set()
    ids, sha_keys, src_splits, stems = array("q"), array("Q"), array("b"), array("Q")
    batches: set[int] = set()
    digest = hashlib.sha256()
    counts: Counter[str] = Counter()
    with store.session() as s:
        q = (select(ImageRow.id, ImageRow.file_name, ImageRow.sha256, ImageRow.split, ImageRow.state,
                    ImageRow.tags, ImageRow.ann_digest, ImageRow.batch_id)
             .order_by(ImageRow.file_name, ImageRow.sha256, ImageRow.split))
        for iid, name, sha, split, state, image_tags, ann_digest, batch_id in s.execute(q):
            if state == "missing":
                counts["skipped_unlabelled"] += 1
                continue
            tagset = set(image_tags or ())
            if (include and not tagset & include) or tagset & exclude:
                counts["skipped_by_tag"] += 1
                continue
            ids.append(iid)
            sha_keys.append(int(sha[:16], 16))
            src_splits.append(SPLITS.index(ALIASES[split.lower()]) if split and split.lower() in ALIASES
                              else UNASSIGNED)
            stems.append(stem_key(name))
            batches.add(batch_id)
            digest.update(f"{name}\0{sha}\0{split}\0{state}\0{ann_digest}\n".encode())
    id_arr = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, np.int64)
    rarest = _rarest_class(store, id_arr, label_of)
    keep = _filter_null(recipe, rarest < 0)
    counts["filtered_null"] = int((~keep).sum())
    id_arr, rarest = id_arr[keep], rarest[keep]
    sha_arr = np.frombuffer(sha_keys, dtype=np.uint64)[keep] if len(ids) else np.zeros(0, np.uint64)
    src = np.frombuffer(src_splits, dtype=np.int8)[keep] if len(ids) else np.zeros(0, np.int8)
    u, n = np.unique(np.frombuffer(stems, dtype=np.uint64), return_counts=True)
    counts["selected"] = len(id_arr)
    return {"ids": id_arr, "splits": assign_splits(recipe, sha_arr, rarest, src), "digest": digest.hexdigest(),
            "batches": sorted(batches), "duplicate_stems": {int(v) for v in u[n > 1]}, "counts": dict(counts)}


def _rarest_class(store, ids: np.ndarray, label_of: dict[int, str | None]) -> np.ndarray:
    out = np.full(len(ids), -1, dtype=np.int32)
    if not len(ids):
        return out
    with store.session() as s:
        per_class = dict(s.execute(select(AnnotationRow.class_id, func.count(func.distinct(AnnotationRow.image_id)))
                                   .group_by(AnnotationRow.class_id)).all())
    freq: Counter[str] = Counter()
    for cid, n in per_class.items():
        name = label_of.get(cid)
        if name is not None:
            freq[name] += n
    ranked = sorted(freq, key=lambda name: (freq[name], name))
    rank_of_name = {name: i for i, name in enumerate(ranked)}
    whens = {cid: rank_of_name[name] for cid, name in label_of.items() if name is not None and name in rank_of_name}
    if not whens:
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    with store.session() as s:
        q = select(AnnotationRow.image_id, func.min(case(whens, value=AnnotationRow.class_id, else_=None))) \
            .group_by(AnnotationRow.image_id)
        for iid, rank in s.execute(q):
            if rank is None:
                continue
            i = int(np.searchsorted(sorted_ids, iid))
            if i < len(sorted_ids) and sorted_ids[i] == iid:
                out[order[i]] = rank
    return out


def assign_splits(recipe, sha_keys: np.ndarray, rarest: np.ndarray, source: np.ndarray) -> np.ndarray:
    n = len(sha_keys)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    uniq, first, inverse = np.unique(sha_keys, return_index=True, return_inverse=True)
    unit_rank = rarest[first]
    unit_src = source[first]
    ratios = np.array([recipe.split.ratios.as_dict()[k] for k in SPLITS])
    rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, SPLIT_STREAM]))
    mode = recipe.split.mode
    unit_split = np.full(len(uniq), UNASSIGNED, dtype=np.int8)
    if mode is SplitMode.KEEP:
        unit_split[:] = unit_src
        todo = np.flatnonzero(unit_split == UNASSIGNED)
        unit_split[todo] = _by_ratios(todo, unit_rank, ratios, rng, recipe.split.stratify)
    elif mode is SplitMode.RANDOM:
        everything = np.arange(len(uniq))
        unit_split[:] = _by_ratios(everything, unit_rank, ratios, rng, recipe.split.stratify)
    else:
        unit_split[:] = unit_src
        _rebalance(unit_split, ratios, rng)
    out = unit_split[inverse.reshape(-1)].astype(np.int8)
    if mode is SplitMode.KEEP:
        given = source != UNASSIGNED
        out[given] = source[given]
    return out


def _by_ratios(units, rank, ratios, rng, stratify) -> np.ndarray:
    out = np.empty(len(units), dtype=np.int8)
    if not len(units):
        return out
    shuffled = rng.permutation(len(units))
    if not stratify:
        groups = [shuffled]
    else:
        keys = rank[units][shuffled]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
        groups = [shuffled[g] for g in np.split(order, cuts)]
    total = _targets(len(units), ratios)
    given = np.zeros(len(ratios), dtype=np.int64)
    for g in groups:
        want = ratios * len(g)
        take = np.floor(want).astype(np.int64)
        for _ in range(len(g) - int(take.sum())):
            deficit = (total - given - take) + (want - take) * 1e-6
            take[int(np.argmax(deficit))] += 1
        start = 0
        for k, t in enumerate(take):
            out[g[start:start + t]] = k
            start += t
        given += take
    return out


def _rebalance(unit_split: np.ndarray, ratios: np.ndarray, rng) -> None:
    target = _targets(len(unit_split), ratios)
    loose = list(rng.permutation(np.flatnonzero(unit_split == UNASSIGNED)))
    for k in range(len(ratios)):
        members = np.flatnonzero(unit_split == k)
        extra = len(members) - int(target[k])
        if extra > 0:
            moved = rng.permutation(members)[:extra]
            unit_split[moved] = UNASSIGNED
            loose.extend(moved.tolist())
    for k in range(len(ratios)):
        need = int(target[k]) - int((unit_split == k).sum())
        for _ in range(max(0, need)):
            unit_split[loose.pop()] = k


def source_annotations(store, label_of: dict[int, str | None], image_id: int) -> tuple:
    """An image's annotations as the main process used to send them: dicts → item JSON → itemcodec.loads."""
    out = []
    with store.session() as s:
        for a in s.execute(select(AnnotationRow).where(AnnotationRow.image_id == image_id)
                           .order_by(AnnotationRow.id)).scalars():
            label = label_of.get(a.class_id)
            if label is None:
                continue
            d: dict[str, Any] = {"label": label, "kind": a.kind}
            if a.x0 is not None:
                d["box"] = [a.x0, a.y0, a.x1, a.y1]
            if a.data:
                d["data"] = a.data
            if a.attributes:
                d["attributes"] = a.attributes
            if a.source != "imported":
                d["source"] = a.source
            if a.confidence is not None:
                d["confidence"] = a.confidence
            if a.track_id is not None:
                d["track_id"] = a.track_id
            if a.crowd:
                d["crowd"] = True
            if a.bbox_declared:
                d["bbox"] = [a.x0, a.y0, a.x1, a.y1]
            if a.area_declared:
                d["area"] = a.area
            out.append(d)
    return itemcodec.loads(orjson.dumps(out))


def output_name(name: str, sha: str, split: str | None, duplicate_stems: set[int]) -> str:
    if stem_key(name) in duplicate_stems:
        stem, ext = posixpath.splitext(name)
        return f"{stem}_{sha[:8]}{ext.replace('.', '_')}{'_' + split if split else ''}{ext}"
    return name
