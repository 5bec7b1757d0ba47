"""Which images a version holds, in which order and split — without holding the images.

The selection is every labelled image (state annotated or null; images nobody
labelled are left out), filtered by tags, with the recipe's class changes
applied and empty images thinned to the recipe's share. Its order is
(file name, sha256, split), which does not depend on database ids, so two
projects holding the same data select the same version.

Memory: a few numpy numbers per image (id, split, hashes) — no per-image
Python objects — so a quarter of a million images cost a few megabytes.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import case, func, select

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, ClassRow, ImageRow
from visionloop.versions.choices import SplitMode
from visionloop.versions.recipe import Recipe, RecipeError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
           "dev": "valid", "test": "test", "testing": "test"}
UNASSIGNED = -1

#: streams of the recipe seed (so the split, the null filter and the outputs never share draws)
SPLIT_STREAM, NULL_STREAM = 101, 102


@dataclass
class Selection:
    ids: np.ndarray  # position → image id
    splits: np.ndarray  # position → index into SPLITS
    digest: str
    batches: list[int]
    classes: ClassMap  # the version's classes, after renames / merges / drops
    label_of: dict[int, str | None]  # class row id → version class name (None: dropped)
    keypoint_names: dict[str, tuple[str, ...]]
    duplicate_stems: set[int]  # hashes of file stems that occur twice: those names get the sha appended
    counts: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def split_of(self, position: int) -> str:
        return SPLITS[int(self.splits[position])]


def stem_key(file_name: str) -> int:
    """64-bit hash of a file name without its extension (plain string work: pathlib would intern every name)."""
    stem = posixpath.splitext(file_name)[0].lower()
    return int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little")


def version_classes(store: Store, recipe: Recipe) -> tuple[ClassMap, dict[int, str | None], dict[str, tuple[str, ...]]]:
    changes = recipe.preprocess.classes
    mapping = changes.mapping()
    with store.session() as s:
        rows = s.scalars(select(ClassRow).order_by(ClassRow.position)).all()
    names = {r.name for r in rows}
    for field_name, olds in (("rename", list(changes.rename)),
                             ("merge", [o for v in changes.merge.values() for o in v]), ("drop", list(changes.drop))):
        for old in olds:
            if old not in names:
                raise RecipeError(f"class {old!r} is not in the project", where=f"preprocess.classes.{field_name}",
                                  hint=f"the project's classes: {', '.join(sorted(names)) or '(none)'}")
    out = ClassMap()
    label_of: dict[int, str | None] = {}
    keypoints: dict[str, tuple[str, ...]] = {}
    for r in rows:
        new = mapping.get(r.name, r.name)
        label_of[r.id] = new
        if new is None or new in out:
            continue
        ext = r.external_id if out.by_id(r.external_id) is None else None
        out.add(new, id=ext, color=r.color, supercategory=r.supercategory, keypoints=tuple(r.keypoints or ()),
                skeleton=tuple(tuple(p) for p in r.skeleton or ()))
        if r.keypoints:
            keypoints[new] = tuple(r.keypoints)
    return out, label_of, keypoints


def classes_to_json(classes: ClassMap) -> list[dict[str, Any]]:
    return [{"name": c.name, "id": c.id, "color": c.color, "supercategory": c.supercategory,
             "keypoints": list(c.keypoints), "skeleton": [list(p) for p in c.skeleton]} for c in classes]


def classes_from_json(data: list[dict[str, Any]]) -> ClassMap:
    return ClassMap([ClassInfo(d["name"], d["id"], color=d.get("color"), supercategory=d.get("supercategory"),
                               keypoints=tuple(d.get("keypoints") or ()),
                               skeleton=tuple(tuple(p) for p in d.get("skeleton") or ())) for d in data])


def select_images(store: Store, recipe: Recipe) -> Selection:
    classes, label_of, keypoints = version_classes(store, recipe)
    tags = recipe.preprocess.filter_tags
    include, exclude = set(tags.include) if tags else set(), set(tags.exclude) if tags else set()
    ids = array("q")  # compact columns: 8 bytes an image, not a Python object
    sha_keys = array("Q")
    src_splits = array("b")
    stems = array("Q")
    batches: set[int] = set()
    digest = hashlib.sha256()
    counts: Counter[str] = Counter()
    with store.session() as s:
        q = (select(ImageRow.id, ImageRow.file_name, ImageRow.sha256, ImageRow.split, ImageRow.state,
                    ImageRow.tags, ImageRow.ann_digest, ImageRow.batch_id)
             .order_by(ImageRow.file_name, ImageRow.sha256, ImageRow.split).execution_options(yield_per=5000))
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
    null = rarest < 0
    keep = _filter_null(recipe, null)
    counts["filtered_null"] = int((~keep).sum())
    id_arr, rarest = id_arr[keep], rarest[keep]
    sha_arr = np.frombuffer(sha_keys, dtype=np.uint64)[keep] if len(ids) else np.zeros(0, np.uint64)
    src = np.frombuffer(src_splits, dtype=np.int8)[keep] if len(ids) else np.zeros(0, np.int8)
    stem_arr = np.frombuffer(stems, dtype=np.uint64) if len(ids) else np.zeros(0, np.uint64)
    u, n = np.unique(stem_arr, return_counts=True)
    duplicates = {int(v) for v in u[n > 1]}
    splits = assign_splits(recipe, sha_arr, rarest, src)
    counts["selected"] = len(id_arr)
    return Selection(ids=id_arr, splits=splits, digest=digest.hexdigest(), batches=sorted(batches), classes=classes,
                     label_of=label_of, keypoint_names=keypoints, duplicate_stems=duplicates, counts=dict(counts))


def _rarest_class(store: Store, ids: np.ndarray, label_of: dict[int, str | None]) -> np.ndarray:
    """Per image, the rank of its rarest (version) class, -1 for an image left empty."""
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
    expr = func.min(case(whens, value=AnnotationRow.class_id, else_=None))
    with store.session() as s:
        q = select(AnnotationRow.image_id, expr).group_by(AnnotationRow.image_id).execution_options(yield_per=10000)
        for iid, rank in s.execute(q):
            if rank is None:
                continue
            i = int(np.searchsorted(sorted_ids, iid))
            if i < len(sorted_ids) and sorted_ids[i] == iid:
                out[order[i]] = rank
    return out


def _filter_null(recipe: Recipe, null: np.ndarray) -> np.ndarray:
    """Keep mask: at most max_percent % of the kept images are empty (which ones: seeded draw)."""
    keep = np.ones(len(null), dtype=bool)
    f = recipe.preprocess.filter_null
    if f is None or not null.any():
        return keep
    annotated = int((~null).sum())
    p = f.max_percent / 100
    allowed = len(null) if p >= 1 else int(np.floor(p * annotated / (1 - p) + 1e-9))
    nulls = np.flatnonzero(null)
    if allowed >= len(nulls):
        return keep
    rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, NULL_STREAM]))
    drop = rng.permutation(nulls)[allowed:]
    keep[drop] = False
    return keep


def assign_splits(recipe: Recipe, sha_keys: np.ndarray, rarest: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Split index per position. Identical files (same sha256) share a split, unless `keep` keeps theirs."""
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
    out = unit_split[inverse].astype(np.int8)
    if mode is SplitMode.KEEP:  # kept means kept, even identical files in two splits (health reports that leak)
        given = source != UNASSIGNED
        out[given] = source[given]
    return out


def _targets(n: int, ratios: np.ndarray) -> np.ndarray:
    """Counts per split adding up to n, largest remainders first."""
    raw = ratios * n
    base = np.floor(raw).astype(np.int64)
    rest = n - int(base.sum())
    if rest > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:rest]] += 1
    return base


def _by_ratios(units: np.ndarray, rank: np.ndarray, ratios: np.ndarray, rng: np.random.Generator,
               stratify: bool) -> np.ndarray:
    """Split indices for `units`: shuffled, then cut by the ratios within each class group."""
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
        for _ in range(len(g) - int(take.sum())):  # leftovers go where the total lags most
            deficit = (total - given - take) + (want - take) * 1e-6
            take[int(np.argmax(deficit))] += 1
        start = 0
        for k, t in enumerate(take):
            out[g[start:start + t]] = k
            start += t
        given += take
    return out


def _rebalance(unit_split: np.ndarray, ratios: np.ndarray, rng: np.random.Generator) -> None:
    """Move as few units as possible (chosen at random) so the splits match the ratios."""
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
