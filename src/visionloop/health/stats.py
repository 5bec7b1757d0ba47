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


def _q(a: np.ndarray) -> dict[str, float]:
    if a.size == 0:
        return {}
    q = np.quantile(a, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1])
    return {k: round(float(v), 4) for k, v in zip(("min", "p05", "p25", "median", "p75", "p95", "max"), q,
                                                   strict=True)}


def _hist(values: np.ndarray, bins: list[float], fmt: str) -> dict[str, int]:
    counts, _ = np.histogram(values, bins=np.asarray(bins, dtype=np.float64))
    labels = [f"{fmt.format(lo)}–{fmt.format(hi)}" if np.isfinite(hi) else f"≥{fmt.format(lo)}"
              for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    return {lab: int(n) for lab, n in zip(labels, counts, strict=True)}


def counts(images: Images, anns: Annotations, classes: Classes) -> dict[str, Any]:
    """Images, annotations, classes per split and label state: integer group-bys (bincount) over the loaded
    columns (the same numbers as SQL GROUP BYs, and they work for a version's items as for the project's
    images); no per-annotation strings are made."""
    names = dict(zip(classes.id.tolist(), classes.name, strict=True))
    by_split: dict[str, dict[str, Any]] = {}
    per_class: dict[int, dict[str, Any]] = {}
    if len(images):
        splits, s_code = np.unique(images.split.astype(str), return_inverse=True)
        states, t_code = np.unique(images.state.astype(str), return_inverse=True)
        n = np.bincount(s_code * len(states) + t_code, minlength=len(splits) * len(states))
        for si, sp in enumerate(splits.tolist()):
            d = by_split.setdefault(sp, {"images": 0, "annotations": 0, "annotated": 0, "null": 0, "missing": 0,
                                         "by_class": {}})
            for ti, state in enumerate(states.tolist()):
                c = int(n[si * len(states) + ti])
                if c:
                    d["images"] += c
                    d[state] = d.get(state, 0) + c
        if len(anns):
            cids, c_code = np.unique(anns.class_id, return_inverse=True)
            nc = len(cids)
            a = np.bincount(s_code[anns.image] * nc + c_code, minlength=len(splits) * nc).reshape(len(splits), nc)
            # distinct (class, image) pairs: images per class
            img_per_class = np.bincount(np.unique(c_code * np.int64(len(images)) + anns.image) // len(images),
                                        minlength=nc)
            by_str = sorted(range(nc), key=lambda i: str(int(cids[i])))  # the order of the string group-by before
            for si, sp in enumerate(splits.tolist()):
                for ci in by_str:
                    c = int(a[si, ci])
                    if not c:
                        continue
                    cid = int(cids[ci])
                    d = by_split[sp]
                    d["annotations"] += c
                    name = names.get(cid, f"<unknown class {cid}>")
                    d["by_class"][name] = d["by_class"].get(name, 0) + c
                    per_class.setdefault(cid, {"annotations": 0, "images": int(img_per_class[ci])})["annotations"] += c
    files = len(np.unique(images.sha256.astype(str))) if len(images) else 0
    n_classes = len(classes.id)
    total = {k: sum(d[k] for d in by_split.values()) for k in ("images", "annotations", "annotated", "null",
                                                                 "missing")}
    return {**total, "classes": n_classes, "distinct_files": files,
            "by_split": dict(sorted(by_split.items())), "_per_class": per_class}


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


def objects_per_image(images: Images, anns: Annotations) -> dict[str, Any]:
    per_image = np.bincount(anns.image, minlength=len(images)) if len(images) else np.zeros(0, np.int64)
    capped = np.minimum(per_image, OBJECTS_CAP)
    hist = np.bincount(capped, minlength=1)
    labels = [str(k) if k < OBJECTS_CAP else f"{OBJECTS_CAP}+" for k in range(len(hist))]
    return {
        "histogram": {lab: int(n) for lab, n in zip(labels, hist, strict=True) if n},
        "mean": round(float(per_image.mean()), 4) if len(per_image) else 0.0,
        "median": float(np.median(per_image)) if len(per_image) else 0.0,
        "max": int(per_image.max()) if len(per_image) else 0,
    }


def _box_columns(images: Images, anns: Annotations) -> tuple[np.ndarray, ...]:
    has = ~np.isnan(anns.box).any(axis=1)
    b = anns.box[has]
    W, H = images.width[anns.image[has]], images.height[anns.image[has]]
    bw, bh = np.clip(b[:, 2] - b[:, 0], 0, None), np.clip(b[:, 3] - b[:, 1], 0, None)
    return has, b, W, H, bw, bh


def box_sizes(images: Images, anns: Annotations) -> dict[str, Any]:
    has, b, W, H, bw, bh = _box_columns(images, anns)
    side = np.sqrt(bw * bh)
    rel = np.sqrt((bw * bh) / (W * H)) if len(W) else np.zeros(0)
    area = bw * bh
    return {
        "boxes": int(has.sum()),
        "width_px": _q(bw), "height_px": _q(bh), "side_px": _q(side), "relative_side": _q(rel),
        "side_px_histogram": _hist(side, ABS_BINS, "{:g}"),
        "relative_side_histogram": _hist(rel, REL_BINS, "{:g}"),
        # COCO's size classes by pixel area
        "small": int((area < 32 ** 2).sum()), "medium": int(((area >= 32 ** 2) & (area < 96 ** 2)).sum()),
        "large": int((area >= 96 ** 2).sum()),
    }


def tiny_objects(images: Images, anns: Annotations, classes: Classes, input_size: int
                 ) -> tuple[dict[str, Any], list[Finding]]:
    """Objects smaller than TINY_PX after letterboxing to `input_size`, and a tiling suggestion."""
    has, b, W, H, bw, bh = _box_columns(images, anns)
    long_side = np.maximum(W, H)
    scale = input_size / long_side if len(long_side) else np.zeros(0)
    side = np.sqrt(bw * bh)
    tiny = side * scale < TINY_PX
    n, total = int(tiny.sum()), int(len(side))
    out: dict[str, Any] = {"input_size": input_size, "threshold_px": TINY_PX, "count": n,
                           "fraction": round(n / total, 4) if total else 0.0, "by_class": {}, "suggestion": None}
    if not n:
        return out, []
    names = classes.names_of(anns.class_id[has][tiny])
    u, c = np.unique(names, return_counts=True)
    out["by_class"] = {str(k): int(v) for k, v in zip(u, c, strict=True)}
    s25 = float(np.quantile(side[tiny], 0.25))
    typical_long = float(np.median(long_side))
    tile = int(max(32, (s25 * input_size / TINY_PX) // 32 * 32))
    if s25 > 0 and tile < typical_long:
        per = int(np.ceil(np.median(W) / (tile * 0.8))) * int(np.ceil(np.median(H) / (tile * 0.8)))
        out["suggestion"] = {"tile": tile, "overlap": 0.2, "tiles_per_image": per}
        advice = (f"tile the images into {tile}×{tile} crops with 20% overlap (about {per} per image) so that "
                  f"three quarters of them reach {TINY_PX:g} px, or train at a larger input size")
    else:
        needed = int(np.ceil(TINY_PX * typical_long / max(s25, 1e-6) / 32) * 32)
        out["suggestion"] = {"input_size": needed}
        advice = f"they are tiny even at full resolution: train at input size {needed} or drop them"
    sev = Severity.WARNING if n / total >= 0.05 else Severity.INFO
    at = np.flatnonzero(has)[tiny][:10]  # annotation positions of the first tiny objects
    side_at = (side * scale)[tiny][:10]
    ex_names = classes.names_of(anns.class_id[at])
    examples = [{"image": images.file_name[anns.image[p]], "annotation": int(anns.id[p]), "class": str(c),
                 "box": [round(float(v), 2) for v in anns.box[p]], "side_at_input_px": round(float(s), 2)}
                for p, c, s in zip(at.tolist(), ex_names, side_at.tolist(), strict=True)]
    return out, [Finding("tiny_objects", sev, n,
                         f"{n} objects ({n / total:.1%}) shrink below {TINY_PX:g} px when the image is resized to "
                         f"{input_size} px: {advice}", examples=examples)]


def heatmaps(images: Images, anns: Annotations, classes: Classes) -> tuple[dict[str, list[list[int]]],
                                                                            list[Finding]]:
    """Per-class grids of box-centre counts (normalised frame), and the position-bias finding."""
    has, b, W, H, bw, bh = _box_columns(images, anns)
    C = len(classes.id)
    if C == 0 or len(b) == 0:
        return {}, []
    cx = np.clip((b[:, 0] + b[:, 2]) / 2 / W, 0, 1 - 1e-9)
    cy = np.clip((b[:, 1] + b[:, 3]) / 2 / H, 0, 1 - 1e-9)
    ci = np.searchsorted(np.sort(classes.id), anns.class_id[has])
    order = np.argsort(classes.id)
    known = (ci < C) & (np.sort(classes.id)[np.minimum(ci, C - 1)] == anns.class_id[has])
    cpos = order[np.minimum(ci, C - 1)][known]
    gx, gy = (cx[known] * GRID).astype(np.int64), (cy[known] * GRID).astype(np.int64)
    grid = np.bincount(cpos * GRID * GRID + gy * GRID + gx, minlength=C * GRID * GRID).reshape(C, GRID, GRID)
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
            f"y {first['y'][0]:.0%}–{first['y'][1]:.0%}); a model may learn the position instead of the object: "
            "add varied shots or augment with flips and crops", examples=ex))
    return maps, findings
