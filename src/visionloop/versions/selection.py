"""Which images a version holds, in which order and split — without holding the images.

The selection is every labelled image (state annotated or null; images nobody
labelled are left out), filtered by tags, with the recipe's class changes
applied and empty images thinned to the recipe's share. Its order is
(file name, sha256, split), which does not depend on database ids, so two
projects holding the same data select the same version.

Memory: a few numpy numbers per image (id, split, hashes) — no per-image
Python objects — so a quarter of a million images cost a few megabytes. One
query streams them in version order into preallocated columns (the rarest
class of each image comes from a correlated subquery, an index lookup); the
split draws work on int32 indices in chunked passes. What stays for the
generation is the ids (int32) and splits (int8): 5 bytes an image.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Text, case, func, null, select, type_coerce
from sqlalchemy.orm import Session

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
    ids: np.ndarray  # position → image id (int32 while ids fit)
    splits: np.ndarray  # position → index into SPLITS
    digest: str
    batches: list[int]
    classes: ClassMap  # the version's classes, after renames / merges / drops
    label_of: dict[int, str | None]  # class row id → version class name (None: dropped)
    keypoint_names: dict[str, tuple[str, ...]]
    duplicate_stems: np.ndarray  # sorted hashes (stem_key) of file stems that occur twice: those names get the sha appended
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
    filtering = bool(include or exclude)
    batches: set[int] = set()
    digest = hashlib.sha256()
    counts: Counter[str] = Counter()
    with store.session() as s:
        ranks = _class_ranks(s, label_of)
        # per image, the rank of its rarest (version) class, NULL for an image left empty: an index lookup per
        # image inside the one query, so no second pass and no id → position map
        rarest = (select(func.min(case(ranks, value=AnnotationRow.class_id, else_=None)))
                  .where(AnnotationRow.image_id == ImageRow.id).scalar_subquery() if ranks else null())
        image_tags = type_coerce(ImageRow.tags, Text) if filtering else null()
        n_images, max_id = s.execute(select(func.count(), func.max(ImageRow.id))).one()
        cols = _Columns(n_images or 0, wide_ids=(max_id or 0) > _INT32_MAX)
        q = (select(ImageRow.id, ImageRow.file_name, ImageRow.sha256, ImageRow.split, ImageRow.state, image_tags,
                    ImageRow.ann_digest, ImageRow.batch_id, rarest)
             .order_by(ImageRow.file_name, ImageRow.sha256, ImageRow.split).execution_options(yield_per=5000))
        for rows in s.execute(q).partitions():
            part: tuple[list[int], list[int], list[int], list[int], list[int]] = ([], [], [], [], [])
            ids, sha_keys, src_splits, stems, rank = part
            for iid, name, sha, split, state, tag_json, ann_digest, batch_id, r in rows:
                if state == "missing":
                    counts["skipped_unlabelled"] += 1
                    continue
                if filtering:
                    tagset = set(orjson.loads(tag_json) or ()) if tag_json else set()
                    if (include and not tagset & include) or tagset & exclude:
                        counts["skipped_by_tag"] += 1
                        continue
                ids.append(iid)
                sha_keys.append(int(sha[:16], 16))
                src_splits.append(SPLITS.index(ALIASES[split.lower()]) if split and split.lower() in ALIASES
                                  else UNASSIGNED)
                stems.append(stem_key(name))
                rank.append(-1 if r is None else r)
                batches.add(batch_id)
                digest.update(f"{name}\0{sha}\0{split}\0{state}\0{ann_digest}\n".encode())
            cols.extend(part)
    id_arr, sha_arr, src, stem_arr, rank_arr = cols.arrays()
    del cols
    stem_arr.sort()  # in place: only the duplicates are kept
    duplicates = np.unique(stem_arr[1:][stem_arr[1:] == stem_arr[:-1]])
    del stem_arr
    keep = _filter_null(recipe, rank_arr < 0)
    dropped = int(len(keep) - np.count_nonzero(keep))
    counts["filtered_null"] = dropped
    if dropped:
        id_arr, sha_arr, src, rank_arr = (_compact(a, keep) for a in (id_arr, sha_arr, src, rank_arr))
    del keep
    units = _Units(sha_arr, rank_arr, src)
    del sha_arr, rank_arr  # not needed for the draws: a few bytes per image less at the peak
    splits = _split_units(recipe, units, src)
    del units
    counts["selected"] = len(id_arr)
    return Selection(ids=id_arr, splits=splits, digest=digest.hexdigest(), batches=sorted(batches), classes=classes,
                     label_of=label_of, keypoint_names=keypoints, duplicate_stems=duplicates, counts=dict(counts))


_INT32_MAX = 2**31 - 1


class _Columns:
    """The selection's per-image numbers, in numpy arrays sized by a count of the images (grown if more come):
    id (int32 while ids fit), sha256 key, source split, stem key, rarest class."""

    def __init__(self, capacity: int, *, wide_ids: bool = False) -> None:
        self.n = 0
        dtypes = (np.int64 if wide_ids else np.int32, np.uint64, np.int8, np.uint64, np.int32)
        self.columns = [np.empty(capacity, dtype=d) for d in dtypes]

    def extend(self, values: tuple[list[int], ...]) -> None:
        k = len(values[0])
        if k and self.columns[0].dtype == np.int32 and max(values[0]) > _INT32_MAX:  # ids grew meanwhile
            self.columns[0] = self.columns[0].astype(np.int64)
        if self.n + k > len(self.columns[0]):
            size = max(self.n + k, len(self.columns[0]) * 3 // 2)
            self.columns = [np.concatenate([c[:self.n], np.empty(size - self.n, dtype=c.dtype)]) for c in self.columns]
        for c, v in zip(self.columns, values, strict=True):
            c[self.n:self.n + k] = v
        self.n += k

    def arrays(self) -> list[np.ndarray]:
        """Arrays of exactly n images (copies, one at a time, only where the count was too high)."""
        out = []
        while self.columns:
            c = self.columns.pop(0)
            out.append(c if self.n == len(c) else c[:self.n].copy())
            del c  # before the next copy
        return out


def _compact(a: np.ndarray, keep: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """a[keep] written over a's own front chunk by chunk (no second full-size array), as a view."""
    w = 0
    for lo in range(0, len(a), chunk):
        part = a[lo:lo + chunk][keep[lo:lo + chunk]]
        a[w:w + len(part)] = part
        w += len(part)
    return a[:w]


def _class_ranks(s: Session, label_of: dict[int, str | None]) -> dict[int, int]:
    """Class row id → rank of its version class, rarest first (images holding it, ties by name)."""
    per_class = dict(s.execute(select(AnnotationRow.class_id, func.count(func.distinct(AnnotationRow.image_id)))
                               .group_by(AnnotationRow.class_id)).all())
    freq: Counter[str] = Counter()
    for cid, n in per_class.items():
        name = label_of.get(cid)
        if name is not None:
            freq[name] += n
    ranked = sorted(freq, key=lambda name: (freq[name], name))
    rank_of_name = {name: i for i, name in enumerate(ranked)}
    return {cid: rank_of_name[name] for cid, name in label_of.items() if name is not None and name in rank_of_name}


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
    """Split index per position. Identical files (same sha256) share a split, unless `keep` keeps theirs.

    The units are the distinct files in sha256-key order, each with the rarest class and source split of its
    first position. Memory: a few bytes per image (int32 indices, chunked passes) — np.unique with its index
    and inverse would hold some 70 bytes per image at once.
    """
    return _split_units(recipe, _Units(sha_keys, rarest, source), source)


class _Units:
    """The distinct files of a selection: positions in key order, where each unit starts, its rank and source
    split. Built first so the caller can let go of the keys and ranks before the split draws."""

    def __init__(self, sha_keys: np.ndarray, rarest: np.ndarray, source: np.ndarray) -> None:
        n = len(sha_keys)
        self.order = _int32(np.argsort(sha_keys, kind="stable"))  # positions by key; equal keys by position
        self.starts = np.empty(n, dtype=bool)  # over `order`: a new unit begins here
        self.starts[:1] = True
        for lo in range(1, n, _CHUNK):
            keys = sha_keys[self.order[lo - 1:lo + _CHUNK]]
            np.not_equal(keys[1:], keys[:-1], out=self.starts[lo:lo + _CHUNK])
        first = self.order[self.starts]  # each unit's first position
        self.rank = rarest[first]
        self.source = source[first]


def _split_units(recipe: Recipe, units: _Units, source: np.ndarray) -> np.ndarray:
    n = len(units.order)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    ratios = np.array([recipe.split.ratios.as_dict()[k] for k in SPLITS])
    rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, SPLIT_STREAM]))
    mode = recipe.split.mode
    unit_split = np.full(len(units.rank), UNASSIGNED, dtype=np.int8)
    if mode is SplitMode.KEEP:
        unit_split[:] = units.source
        todo = np.flatnonzero(unit_split == UNASSIGNED)
        unit_split[todo] = _by_ratios(todo, units.rank, ratios, rng, recipe.split.stratify)
    elif mode is SplitMode.RANDOM:
        unit_split[:] = _by_ratios(None, units.rank, ratios, rng, recipe.split.stratify)
    else:
        unit_split[:] = units.source
        _rebalance(unit_split, ratios, rng)
    out = np.empty(n, dtype=np.int8)
    unit = -1
    for lo in range(0, n, _CHUNK):  # each position gets its unit's split
        index = np.cumsum(units.starts[lo:lo + _CHUNK], dtype=np.int64)
        index += unit
        out[units.order[lo:lo + _CHUNK]] = unit_split[index]
        unit = int(index[-1])
    if mode is SplitMode.KEEP:  # kept means kept, even identical files in two splits (health reports that leak)
        given = source != UNASSIGNED
        out[given] = source[given]
    return out


_CHUNK = 1 << 16


def _int32(a: np.ndarray) -> np.ndarray:
    """Indices as int32 where they fit (half the memory of numpy's int64 indices)."""
    return a.astype(np.int32) if len(a) < 2**31 else a


def _targets(n: int, ratios: np.ndarray) -> np.ndarray:
    """Counts per split adding up to n, largest remainders first."""
    raw = ratios * n
    base = np.floor(raw).astype(np.int64)
    rest = n - int(base.sum())
    if rest > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:rest]] += 1
    return base


def _by_ratios(units: np.ndarray | None, rank: np.ndarray, ratios: np.ndarray, rng: np.random.Generator,
               stratify: bool) -> np.ndarray:
    """Split indices for `units` (None: all of them): shuffled, then cut by the ratios within each class group."""
    m = len(rank) if units is None else len(units)
    out = np.empty(m, dtype=np.int8)
    if not m:
        return out
    shuffled = _int32(rng.permutation(m))
    total = _targets(m, ratios)
    given = np.zeros(len(ratios), dtype=np.int64)
    for g in _groups(shuffled, (rank if units is None else rank[units])[shuffled] if stratify else None):
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


def _groups(shuffled: np.ndarray, keys: np.ndarray | None) -> Iterator[np.ndarray]:
    """`shuffled` cut into its class groups (by key, smallest first; each in shuffled order), one at a time."""
    if keys is None:
        yield shuffled
        return
    values = np.unique(keys)
    if len(values) <= 256:  # a pass per group: no int64 sort order of every unit
        for v in values:
            yield shuffled[keys == v]
        return
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    for g in np.split(order, cuts):
        yield shuffled[g]


def _rebalance(unit_split: np.ndarray, ratios: np.ndarray, rng: np.random.Generator) -> None:
    """Move as few units as possible (chosen at random) so the splits match the ratios."""
    target = _targets(len(unit_split), ratios)
    loose = [rng.permutation(np.flatnonzero(unit_split == UNASSIGNED))]  # taken from the end
    for k in range(len(ratios)):
        members = np.flatnonzero(unit_split == k)
        extra = len(members) - int(target[k])
        if extra > 0:
            moved = rng.permutation(members)[:extra]
            unit_split[moved] = UNASSIGNED
            loose.append(moved)
    pool = np.concatenate(loose)
    end = len(pool)
    for k in range(len(ratios)):
        need = max(0, int(target[k]) - int((unit_split == k).sum()))
        unit_split[pool[end - need:end]] = k
        end -= need
