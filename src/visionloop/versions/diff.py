"""diff_versions: what changed between two versions — images, annotations, splits, recipe.

Images are matched by file name (names are derived from the source image, the
tile or object and the copy number, so they are stable across versions). Both
versions are streamed in name order and merged: memory does not grow with
their size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select

from visionloop.store.project import Store
from visionloop.store.schema import VersionItemRow
from visionloop.versions.api import show_version

EXAMPLES = 10


@dataclass
class VersionDiff:
    a: str
    b: str
    images: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    annotations: Counter[str] = field(default_factory=Counter)
    by_class: dict[str, int] = field(default_factory=dict)  # b - a, per class
    recipe: list[dict[str, Any]] = field(default_factory=list)
    same_content: bool = False
    #: split -> the same counts as `images`, each image under its split in b (removed ones: in a)
    by_split: dict[str, Counter[str]] = field(default_factory=dict)

    def note(self, what: str, name: str, split: str | None = None) -> None:
        self.images[what] += 1
        if split is not None:
            self.by_split.setdefault(split or "", Counter())[what] += 1
        ex = self.examples.setdefault(what, [])
        if len(ex) < EXAMPLES:
            ex.append(name)

    def to_json(self) -> dict[str, Any]:
        keys = ("added", "removed", "changed", "pixels_changed", "annotations_changed", "split_changed",
                "unchanged")
        return {"a": self.a, "b": self.b, "same_content": self.same_content,
                "images": {k: self.images.get(k, 0) for k in keys},
                "annotations": {k: self.annotations.get(k, 0) for k in ("a", "b", "added", "removed")},
                "by_class": self.by_class, "recipe": self.recipe, "examples": self.examples,
                "by_split": {sp: {k: c.get(k, 0) for k in keys} for sp, c in sorted(self.by_split.items())}}


def _items(store: Store, version_id: int) -> Iterator[tuple[str, str, str, str]]:
    name_col = VersionItemRow.file_name
    if store.engine.dialect.name == "postgresql":
        name_col = name_col.collate("C")  # type: ignore[assignment]
    with store.session() as s:
        q = (select(VersionItemRow.file_name, VersionItemRow.split, VersionItemRow.sha256, VersionItemRow.annotations)
             .where(VersionItemRow.version_id == version_id).order_by(name_col).execution_options(yield_per=5000))
        for row in s.execute(q):
            yield row[0], row[1], row[2], row[3]


def _canon(annotations: str) -> Counter[bytes]:
    return Counter(orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in orjson.loads(annotations))


def recipe_changes(a: Any, b: Any, path: str = "") -> list[dict[str, Any]]:
    """Fields whose values differ, as {"field": "augment.rotate.degrees", "a": 10, "b": 15}."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[dict[str, Any]] = []
        for k in sorted(set(a) | set(b)):
            out += recipe_changes(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [{"field": path or "recipe", "a": a, "b": b}]


def diff_versions(store: Store, a: str | int, b: str | int) -> VersionDiff:
    va, vb = show_version(store, a), show_version(store, b)
    d = VersionDiff(va.name, vb.name, recipe=recipe_changes(va.recipe, vb.recipe))
    d.same_content = va.content_digest is not None and va.content_digest == vb.content_digest
    class_delta: Counter[str] = Counter()
    ia, ib = _items(store, va.id), _items(store, vb.id)
    x, y = next(ia, None), next(ib, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            assert x is not None
            d.note("removed", x[0], x[1])
            anns = orjson.loads(x[3])
            for ann in anns:
                class_delta[ann["label"]] -= 1
            d.annotations["a"] += len(anns)
            d.annotations["removed"] += len(anns)
            x = next(ia, None)
            continue
        if x is None or y[0] < x[0]:
            d.note("added", y[0], y[1])
            anns = orjson.loads(y[3])
            for ann in anns:
                class_delta[ann["label"]] += 1
            d.annotations["b"] += len(anns)
            d.annotations["added"] += len(anns)
            y = next(ib, None)
            continue
        name = x[0]
        changed = False
        ca, cb = _canon(x[3]), _canon(y[3])
        d.annotations["a"] += sum(ca.values())
        d.annotations["b"] += sum(cb.values())
        if x[2] != y[2]:
            d.note("pixels_changed", name, y[1])
            changed = True
        if x[3] != y[3]:
            if ca != cb:
                d.note("annotations_changed", name, y[1])
                changed = True
                d.annotations["removed"] += sum((ca - cb).values())
                d.annotations["added"] += sum((cb - ca).values())
                for k, n in (cb - ca).items():
                    class_delta[orjson.loads(k)["label"]] += n
                for k, n in (ca - cb).items():
                    class_delta[orjson.loads(k)["label"]] -= n
        if x[1] != y[1]:
            d.note("split_changed", name, y[1])
            changed = True
        d.note("changed" if changed else "unchanged", name, y[1])
        x, y = next(ia, None), next(ib, None)
    d.by_class = {k: v for k, v in sorted(class_delta.items()) if v}
    return d
