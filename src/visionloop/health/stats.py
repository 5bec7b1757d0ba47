"""Statistics: counts (SQL aggregates), dimensions, class balance, objects per image, box sizes,
tiny objects, heatmaps and position bias (vectorised numpy over the loaded columns)."""

from __future__ import annotations

from typing import Any

import numpy as np

from visionloop.health.load import Annotations, Classes, Images
from visionloop.health.result import ClassBalance, Finding, Severity

#: heatmap resolution (cells per side) and the position-bias rule: a class with at least
#: BIAS_MIN_BOXES boxes whose centres fall for BIAS_SHARE or more into one window covering
#: BIAS_WINDOW x BIAS_WINDOW of the frame (a quarter of it at 0.5; uniform would put 25% there)
GRID = 16
BIAS_WINDOW = 0.5
BIAS_SHARE = 0.9
BIAS_MIN_BOXES = 20
#: an object is tiny when the geometric mean of its sides, after letterboxing the image to the
#: model input size (longest side = input size), is below this many pixels
TINY_PX = 8.0
#: objects-per-image histogram: exact counts up to this, the rest in one "N+" bin
OBJECTS_CAP = 50
ABS_BINS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, float("inf")]
REL_BINS = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, float("inf")]


def _q(a: np.ndarray, *, overwrite: bool = False) -> dict[str, float]:
    """Quantiles, rounded (`overwrite`: `a` may be reordered in place instead of copied; same values)."""
    if a.size == 0:
        return {}
    q = np.quantile(a, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1], overwrite_input=overwrite)
    return {k: round(float(v), 4) for k, v in zip(("min", "p05", "p25", "median", "p75", "p95", "max"), q,
                                                   strict=True)}


def _hist_counts(values: np.ndarray, bins: list[float]) -> np.ndarray:
    return np.histogram(values, bins=np.asarray(bins, dtype=np.float64))[0].astype(np.int64)


def _hist_dict(counts: np.ndarray, bins: list[float], fmt: str) -> dict[str, int]:
    labels = [f"{fmt.format(lo)}–{fmt.format(hi)}" if np.isfinite(hi) else f"≥{fmt.format(lo)}"
              for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    return {lab: int(n) for lab, n in zip(labels, counts, strict=True)}


def median_repeated(values: np.ndarray, counts: np.ndarray) -> float:
    """`np.median(np.repeat(values, counts))` without making the repeated array (the median over boxes of a
    value of their image, from each image's value and box count)."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(counts[order])
    n = int(cum[-1])

    def kth(k: int) -> np.float64:  # the k-th (from 0) of the repeated values, sorted
        return v[int(np.searchsorted(cum, k, side="right"))]

    if n % 2:
        return float(kth(n // 2))
    return float(np.mean(np.array([kth(n // 2 - 1), kth(n // 2)])))  # what np.median does with the middle two


class _Column:
    """A float64 column filled chunk by chunk: into one array of `capacity` (allocated, not touched: pages
    count once written) while it fits, so the column is never held twice; beyond it, in parts joined once."""

    def __init__(self, capacity: int = 0) -> None:
        self.buf = np.empty(capacity, np.float64)
        self.n = 0
        self.parts: list[np.ndarray] = []

    def append(self, a: np.ndarray) -> None:
        if not self.parts and self.n + len(a) <= len(self.buf):
            self.buf[self.n:self.n + len(a)] = a
            self.n += len(a)
        else:
            self.parts.append(a)

    def values(self) -> np.ndarray:
        if self.parts:
            self.buf = np.concatenate([self.buf[:self.n], *self.parts])
            self.n, self.parts = len(self.buf), []
        return self.buf[:self.n]


def _add(into: dict[int, int], keys: np.ndarray, values: np.ndarray) -> None:
    for k, v in zip(keys.tolist(), values.tolist(), strict=True):
        if v:
            into[k] = into.get(k, 0) + v


class Tally:
    """The annotation statistics accumulated chunk by chunk, so memory stays flat in the number of
    annotations: counts, histograms, heatmap grids and per-image counts are summed; examples keep the
    lowest annotation ids; only what exact quantiles need stays per box (three float64 a box, and the
    sizes of the tiny ones). Each chunk must hold whole images (`load.iter_annotations`, `load.chunks_of`);
    the results are those of the whole-column functions below, exactly. `capacity`: how many annotations
    may come (an upper bound; the per-box columns are then filled in place, never joined).

        t = Tally(images, classes, input_size)
        for part in iter_annotations(store, images): t.add(part)
        t.counts(), t.objects_per_image(), t.box_sizes(), t.tiny_objects(), t.heatmaps()
    """

    def __init__(self, images: Images, classes: Classes, input_size: int = 640, limit: int = 10,
                 capacity: int = 0) -> None:
        self.images, self.classes, self.input_size, self.limit = images, classes, input_size, limit
        n = len(images)
        if n:
            self.splits, self.s_code = np.unique(images.split.astype(str), return_inverse=True)
        else:
            self.splits, self.s_code = np.zeros(0, str), np.zeros(0, np.int64)
        self.annotations = 0
        self.by_split_class: dict[tuple[int, int], int] = {}  # (split code, class id) -> annotations
        self.images_per_class: dict[int, int] = {}
        #: class id -> positions of the first images carrying it (what a class-level finding names)
        self.first_images: dict[int, np.ndarray] = {}
        self.per_image = np.zeros(n, np.int64)  # annotations
        self.boxes_per_image = np.zeros(n, np.int64)  # annotations with a box
        self.boxes = 0
        self._bw, self._bh, self._rel = _Column(capacity), _Column(capacity), _Column(capacity)
        self._sizes: dict[str, Any] | None = None
        self.side_hist = np.zeros(len(ABS_BINS) - 1, np.int64)
        self.rel_hist = np.zeros(len(REL_BINS) - 1, np.int64)
        self.small = self.medium = self.large = 0
        self.tiny = 0
        self._tiny_side: list[np.ndarray] = []
        self.tiny_by_class: dict[int, int] = {}
        self._tiny_examples: list[tuple[int, dict[str, Any]]] = []  # (annotation id, example), lowest ids
        self._sorted_cids = np.sort(classes.id)
        self._class_order = np.argsort(classes.id)
        self.grid = np.zeros((len(classes.id), GRID, GRID), np.int64)

    def add(self, anns: Annotations) -> Tally:
        """Add one chunk (whole images; positions into the `images` given at construction)."""
        if not len(anns):
            return self
        images, n_img = self.images, len(self.images)
        self.annotations += len(anns)
        # counts: (split, class) group-by, images per class, first images per class
        cids, c_code = np.unique(anns.class_id, return_inverse=True)
        nc, ns = len(cids), len(self.splits)
        a = np.bincount(self.s_code[anns.image] * nc + c_code, minlength=ns * nc).reshape(ns, nc)
        for si, ci in zip(*np.nonzero(a), strict=True):
            key = (int(si), int(cids[ci]))
            self.by_split_class[key] = self.by_split_class.get(key, 0) + int(a[si, ci])
        pairs = np.unique(c_code * np.int64(n_img) + anns.image)  # distinct (class, image), sorted
        pair_class = pairs // n_img
        _add(self.images_per_class, cids, np.bincount(pair_class, minlength=nc))
        starts = np.searchsorted(pair_class, np.arange(nc))
        for ci, st in enumerate(starts.tolist()):
            cid = int(cids[ci])
            have = self.first_images.get(cid, np.zeros(0, np.int64))
            if len(have) < self.limit:  # chunks come in image order: earlier chunks' images come first
                new = pairs[st:st + self.limit - len(have)]
                new = new[new // n_img == ci] % n_img
                self.first_images[cid] = np.concatenate([have, new])
        self.per_image += np.bincount(anns.image, minlength=n_img)
        # boxes: of objects; a polyline's box is not an object's size (a horizontal line has none): left out
        has = ~np.isnan(anns.box).any(axis=1) & (anns.kind != "polyline")
        b = anns.box[has]
        img = anns.image[has]
        W, H = images.width[img], images.height[img]
        bw, bh = np.clip(b[:, 2] - b[:, 0], 0, None), np.clip(b[:, 3] - b[:, 1], 0, None)
        self.boxes += int(has.sum())
        self.boxes_per_image += np.bincount(img, minlength=n_img)
        area = bw * bh
        side = np.sqrt(area)
        rel = np.sqrt(area / (W * H)) if len(W) else np.zeros(0)
        self._bw.append(bw)
        self._bh.append(bh)
        self._rel.append(rel)
        self.side_hist += _hist_counts(side, ABS_BINS)
        self.rel_hist += _hist_counts(rel, REL_BINS)
        self.small += int((area < 32 ** 2).sum())
        self.medium += int(((area >= 32 ** 2) & (area < 96 ** 2)).sum())
        self.large += int((area >= 96 ** 2).sum())
        # tiny objects
        scale = self.input_size / np.maximum(W, H) if len(W) else np.zeros(0)
        at_input = side * scale
        tiny = at_input < TINY_PX
        if tiny.any():
            self.tiny += int(tiny.sum())
            self._tiny_side.append(side[tiny])
            u, c = np.unique(anns.class_id[has][tiny], return_counts=True)
            _add(self.tiny_by_class, u, c)
            at = np.flatnonzero(has)[tiny]  # positions in this chunk
            first = np.argsort(anns.id[at], kind="stable")[:self.limit]
            ex_names = self.classes.names_of(anns.class_id[at[first]])
            self._tiny_examples += [
                (int(anns.id[p]), {"image": images.file_name[anns.image[p]], "annotation": int(anns.id[p]),
                                   "class": str(c), "box": [round(float(v), 2) for v in anns.box[p]],
                                   "side_at_input_px": round(float(s), 2)})
                for p, c, s in zip(at[first].tolist(), ex_names, at_input[tiny][first].tolist(), strict=True)]
            self._tiny_examples = sorted(self._tiny_examples, key=lambda e: e[0])[:self.limit]
        # heatmap grids of box centres, per known class
        C = len(self.classes.id)
        if C and len(b):
            cx = np.clip((b[:, 0] + b[:, 2]) / 2 / W, 0, 1 - 1e-9)
            cy = np.clip((b[:, 1] + b[:, 3]) / 2 / H, 0, 1 - 1e-9)
            cid = anns.class_id[has]
            ci = np.searchsorted(self._sorted_cids, cid)
            known = (ci < C) & (self._sorted_cids[np.minimum(ci, C - 1)] == cid)
            cpos = self._class_order[np.minimum(ci, C - 1)][known]
            gx, gy = (cx[known] * GRID).astype(np.int64), (cy[known] * GRID).astype(np.int64)
            self.grid += np.bincount(cpos * GRID * GRID + gy * GRID + gx,
                                     minlength=C * GRID * GRID).reshape(C, GRID, GRID)
        return self

    def counts(self) -> dict[str, Any]:
        """Images, annotations, classes per split and label state (integer group-bys; no per-annotation
        strings are made)."""
        images, classes = self.images, self.classes
        names = dict(zip(classes.id.tolist(), classes.name, strict=True))
        by_split: dict[str, dict[str, Any]] = {}
        per_class: dict[int, dict[str, Any]] = {}
        if len(images):
            states, t_code = np.unique(images.state.astype(str), return_inverse=True)
            n = np.bincount(self.s_code * len(states) + t_code, minlength=len(self.splits) * len(states))
            for si, sp in enumerate(self.splits.tolist()):
                d = by_split.setdefault(sp, {"images": 0, "annotations": 0, "annotated": 0, "null": 0,
                                             "missing": 0, "by_class": {}})
                for ti, state in enumerate(states.tolist()):
                    c = int(n[si * len(states) + ti])
                    if c:
                        d["images"] += c
                        d[state] = d.get(state, 0) + c
            cids = sorted({cid for _, cid in self.by_split_class})
            by_str = sorted(cids, key=str)  # the order of the string group-by before
            for si, sp in enumerate(self.splits.tolist()):
                for cid in by_str:
                    c = self.by_split_class.get((si, cid), 0)
                    if not c:
                        continue
                    d = by_split[sp]
                    d["annotations"] += c
                    name = names.get(cid, f"<unknown class {cid}>")
                    d["by_class"][name] = d["by_class"].get(name, 0) + c
                    per_class.setdefault(cid, {"annotations": 0, "images": self.images_per_class[cid]}
                                         )["annotations"] += c
        files = len(set(images.sha256.tolist()))  # (a set of the str objects there are; no fixed-width copy)
        total = {k: sum(d[k] for d in by_split.values()) for k in ("images", "annotations", "annotated", "null",
                                                                     "missing")}
        return {**total, "classes": len(classes.id), "distinct_files": files,
                "by_split": dict(sorted(by_split.items())), "_per_class": per_class}

    def objects_per_image(self) -> dict[str, Any]:
        per_image = self.per_image
        capped = np.minimum(per_image, OBJECTS_CAP)
        hist = np.bincount(capped, minlength=1)
        labels = [str(k) if k < OBJECTS_CAP else f"{OBJECTS_CAP}+" for k in range(len(hist))]
        return {
            "histogram": {lab: int(n) for lab, n in zip(labels, hist, strict=True) if n},
            "mean": round(float(per_image.mean()), 4) if len(per_image) else 0.0,
            "median": float(np.median(per_image)) if len(per_image) else 0.0,
            "max": int(per_image.max()) if len(per_image) else 0,
        }

    def box_sizes(self) -> dict[str, Any]:
        if self._sizes is not None:  # the quantiles below reorder the columns in place: once only
            return self._sizes
        bw, bh, rel = self._bw.values(), self._bh.values(), self._rel.values()
        side = bw * bh
        np.sqrt(side, out=side)
        out: dict[str, Any] = {"boxes": self.boxes, "side_px": _q(side, overwrite=True)}
        del side
        out = {"boxes": self.boxes, "width_px": _q(bw, overwrite=True), "height_px": _q(bh, overwrite=True),
               "side_px": out["side_px"], "relative_side": _q(rel, overwrite=True)}
        self._sizes = {**out,
                "side_px_histogram": _hist_dict(self.side_hist, ABS_BINS, "{:g}"),
                "relative_side_histogram": _hist_dict(self.rel_hist, REL_BINS, "{:g}"),
                # COCO's size classes by pixel area
                "small": self.small, "medium": self.medium, "large": self.large}
        return self._sizes

    def tiny_objects(self) -> tuple[dict[str, Any], list[Finding]]:
        """Objects smaller than TINY_PX after letterboxing to the input size, and a tiling suggestion."""
        input_size, n, total = self.input_size, self.tiny, self.boxes
        out: dict[str, Any] = {"input_size": input_size, "threshold_px": TINY_PX, "count": n,
                               "fraction": round(n / total, 4) if total else 0.0, "by_class": {}, "suggestion": None}
        if not n:
            return out, []
        cids = np.fromiter(self.tiny_by_class.keys(), np.int64)
        per = np.fromiter(self.tiny_by_class.values(), np.int64)
        u, inv = np.unique(self.classes.names_of(cids), return_inverse=True)
        out["by_class"] = {str(k): int(v) for k, v in zip(u, np.bincount(inv, weights=per).astype(np.int64),
                                                           strict=True)}
        s25 = float(np.quantile(_cat(self._tiny_side), 0.25))
        images, counts = self.images, self.boxes_per_image
        typical_long = median_repeated(np.maximum(images.width, images.height), counts)
        tile = int(max(32, (s25 * input_size / TINY_PX) // 32 * 32))
        if s25 > 0 and tile < typical_long:
            med_w, med_h = median_repeated(images.width, counts), median_repeated(images.height, counts)
            per_img = int(np.ceil(med_w / (tile * 0.8))) * int(np.ceil(med_h / (tile * 0.8)))
            out["suggestion"] = {"tile": tile, "overlap": 0.2, "tiles_per_image": per_img}
            advice = (f"tile the images into {tile}×{tile} crops with 20% overlap (about {per_img} per image) so "
                      f"that three quarters of them reach {TINY_PX:g} px, or train at a larger input size")
        else:
            needed = int(np.ceil(TINY_PX * typical_long / max(s25, 1e-6) / 32) * 32)
            out["suggestion"] = {"input_size": needed}
            advice = f"they are tiny even at full resolution: train at input size {needed} or drop them"
        sev = Severity.WARNING if n / total >= 0.05 else Severity.INFO
        return out, [Finding("tiny_objects", sev, n,
                             f"{n} objects ({n / total:.1%}) shrink below {TINY_PX:g} px when the image is resized "
                             f"to {input_size} px: {advice}", examples=[e for _, e in self._tiny_examples])]

    def heatmaps(self) -> tuple[dict[str, list[list[int]]], list[Finding]]:
        """Per-class grids of box-centre counts (normalised frame), and the position-bias finding."""
        classes, grid = self.classes, self.grid
        C = len(classes.id)
        if C == 0 or self.boxes == 0:
            return {}, []
        maps = {name: grid[i].tolist() for i, name in enumerate(classes.name) if grid[i].any()}
        # densest window of BIAS_WINDOW x BIAS_WINDOW of the frame, by summed-area tables
        k = int(round(GRID * BIAS_WINDOW))
        sat = np.zeros((C, GRID + 1, GRID + 1), np.int64)
        sat[:, 1:, 1:] = grid.cumsum(1).cumsum(2)
        win = sat[:, k:, k:] - sat[:, :-k, k:] - sat[:, k:, :-k] + sat[:, :-k, :-k]
        totals = grid.sum((1, 2))
        best = win.reshape(C, -1).max(1)
        arg = win.reshape(C, -1).argmax(1)
        findings = []
        biased = np.flatnonzero((totals >= BIAS_MIN_BOXES) & (best >= BIAS_SHARE * np.maximum(totals, 1)))
        if len(biased):
            ex: list[dict[str, Any]] = []
            for i in biased:
                y, x = divmod(int(arg[i]), GRID - k + 1)
                ex.append({"class": classes.name[i], "share": round(float(best[i] / totals[i]), 4),
                           "x": [x / GRID, (x + k) / GRID], "y": [y / GRID, (y + k) / GRID]})
            first = ex[0]
            findings.append(Finding(
                "position_bias", Severity.WARNING, len(biased),
                f"{len(biased)} classes nearly always sit in the same part of the frame (e.g. {first['class']}: "
                f"{first['share']:.0%} of its boxes are centred in x {first['x'][0]:.0%}–{first['x'][1]:.0%}, "
                f"y {first['y'][0]:.0%}–{first['y'][1]:.0%}); a model may learn the position instead of the "
                "object: add varied shots or augment with flips and crops", examples=ex))
        return maps, findings


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


# the same statistics over whole columns (one chunk)

def counts(images: Images, anns: Annotations, classes: Classes) -> dict[str, Any]:
    return Tally(images, classes).add(anns).counts()


def objects_per_image(images: Images, anns: Annotations) -> dict[str, Any]:
    return Tally(images, Classes(np.zeros(0, np.int64), [])).add(anns).objects_per_image()


def box_sizes(images: Images, anns: Annotations) -> dict[str, Any]:
    return Tally(images, Classes(np.zeros(0, np.int64), []), capacity=len(anns)).add(anns).box_sizes()


def tiny_objects(images: Images, anns: Annotations, classes: Classes, input_size: int
                 ) -> tuple[dict[str, Any], list[Finding]]:
    return Tally(images, classes, input_size).add(anns).tiny_objects()


def heatmaps(images: Images, anns: Annotations, classes: Classes) -> tuple[dict[str, list[list[int]]],
                                                                            list[Finding]]:
    return Tally(images, classes).add(anns).heatmaps()


def dimensions(images: Images) -> tuple[dict[str, Any], list[Finding]]:
    """Size and aspect-ratio distributions, outliers (Tukey fences on log scale), EXIF rotation."""
    w, h = images.width, images.height
    out: dict[str, Any] = {"width": _q(w), "height": _q(h), "aspect": _q(w / h) if len(w) else {}}
    if len(w) == 0:
        return {**out, "sizes": [], "outliers": 0, "exif_oriented": 0, "exif_rotated": 0, "scatter": []}, []
    sizes, n = np.unique(np.stack([w, h], 1), axis=0, return_counts=True)
    order = np.argsort(-n, kind="stable")[:10]
    out["sizes"] = [[int(sizes[i, 0]), int(sizes[i, 1]), int(n[i])] for i in order]
    out["distinct_sizes"] = int(len(n))
    log_aspect, log_area = np.log(w / h), np.log(w * h)
    outlier = np.zeros(len(w), bool)
    reasons = np.full(len(w), "", dtype=object)
    # Tukey's far-out fences (3 × IQR) on a log scale, but never closer than 2× the aspect ratio or 4× the
    # pixel area of the quartiles: portrait photos among landscape ones are not outliers, panoramas and
    # thumbnails are
    for values, floor, what in ((log_aspect, np.log(2.0), "aspect ratio"), (log_area, np.log(4.0), "size")):
        q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        spread = max(3.0 * (q3 - q1), floor)
        lo, hi = min(q1, med) - spread, max(q3, med) + spread
        bad = (values < lo) | (values > hi)
        reasons[bad & ~outlier] = what
        outlier |= bad
    out["outliers"] = int(outlier.sum())
    out["exif_oriented"] = int((images.orientation != 1).sum())
    out["exif_rotated"] = int(np.isin(images.orientation, [5, 6, 7, 8]).sum())
    # the scatter the HTML report draws: distinct sizes with their counts
    out["scatter"] = [[int(a), int(b), int(c)] for (a, b), c in zip(sizes.tolist(), n.tolist(), strict=True)]
    findings = []
    if outlier.any():
        idx = np.flatnonzero(outlier)
        med_w, med_h = float(np.median(w)), float(np.median(h))
        findings.append(Finding(
            "dimension_outliers", Severity.INFO, int(outlier.sum()),
            f"{int(outlier.sum())} images have an unusual {' or '.join(sorted(set(reasons[idx])))} compared with "
            f"the typical {med_w:g}×{med_h:g}; check they belong in the dataset",
            examples=[{"image": images.file_name[i], "width": int(w[i]), "height": int(h[i]), "why": reasons[i]}
                      for i in idx[:10]]))
    if out["exif_rotated"]:
        rot = np.flatnonzero(np.isin(images.orientation, [5, 6, 7, 8]))[:10]
        findings.append(Finding(
            "exif_rotated", Severity.INFO, out["exif_rotated"],
            f"{out['exif_rotated']} images are stored sideways with an EXIF rotation; visionloop applies it, "
            "but tools that ignore EXIF will see them turned by 90°",
            examples=[{"image": images.file_name[i], "orientation": int(images.orientation[i]),
                       "width": int(w[i]), "height": int(h[i])} for i in rot]))
    return out, findings


def verdict(n: int, median: float, n_classes: int) -> str:
    """A plain-language verdict on one class's count against the median class."""
    if n == 0:
        return "no annotations"
    if n_classes == 1:
        return "only class"
    ratio = n / median if median > 0 else float("inf")
    m = f"{n} vs median {median:g}"
    if ratio < 0.1:
        return f"severely under-represented: {m}"
    if ratio < 0.5:
        return f"under-represented: {m}"
    if ratio > 10:
        return f"dominant: {m}"
    if ratio > 2:
        return f"over-represented: {m}"
    return "balanced"


def class_balance(cnt: dict[str, Any], classes: Classes) -> tuple[list[ClassBalance], list[Finding]]:
    per_class = cnt["_per_class"]
    totals = np.array([per_class.get(int(c), {}).get("annotations", 0) for c in classes.id], dtype=np.int64)
    median = float(np.median(totals)) if len(totals) else 0.0
    all_anns = max(int(totals.sum()), 1)
    splits = [s for s, d in cnt["by_split"].items() if d["annotations"] > 0]
    out, findings = [], []
    for cid, name, n in zip(classes.id.tolist(), classes.name, totals.tolist(), strict=True):
        by_split = {s: cnt["by_split"][s]["by_class"].get(name, 0) for s in cnt["by_split"]}
        v = verdict(n, median, len(classes.name))
        absent = [s for s in splits if by_split.get(s, 0) == 0] if n and len(splits) > 1 else []
        if absent:
            v += f"; absent from {', '.join(absent)}"
        out.append(ClassBalance(name, n, per_class.get(cid, {}).get("images", 0), round(n / all_anns, 4),
                                by_split, v))
    bad = [c for c in out if c.verdict.startswith(("severely", "under", "no annotations")) or "absent" in c.verdict]
    if bad:
        findings.append(Finding(
            "class_imbalance", Severity.WARNING, len(bad),
            f"{len(bad)} of {len(out)} classes are under-represented, unused or missing from a split: "
            "collect or label more of them, or merge them", examples=[{"class": c.name, "verdict": c.verdict}
                                                                     for c in bad[:10]]))
    return out, findings
