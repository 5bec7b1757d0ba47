"""Health check on a synthetic project: time and peak memory of the statistics and of the
near-duplicate search, each in its own child process (peak = that child's VmHWM), and the
precision and recall of the near-duplicate search against the known copies. The statistics (and
`--only health`, the whole check) also list each step's time and peak RSS: the kernel's peak is
reset before each step (/proc/self/clear_refs), so one step's peak does not hide another's.

    python bench/health.py                  # 50,000 images / 500,000 boxes
    python bench/health.py --images 10000   # a few minutes on 2 cores
    python bench/health.py --images 10000 --boxes-per-image 50 --only statistics
                                            # 500,000 boxes on 10,000 images: memory against boxes alone
    git archive REV src | tar -x -C /tmp/old && python bench/health.py --baseline-src /tmp/old/src
                                            # statistics of another revision too (peak RSS before/after)

Images are 256×192 JPEGs. Most are random smooth colour fields with ten coloured boxes each
(so their perceptual hashes are as varied as photos'). 5% are look-alikes, as in microscopy:
families of ten under one strong illumination field, each image its own random "cells"
(independent fields of view), three of each family being views of one wider slide shifted by a
third or a half of the frame; their hashes are within a few bits of each other although none is
a copy of another. 1% are copies of an earlier image (of either kind): resized to 75%,
recompressed at quality 40, cropped by 5% on two sides, or flipped left-right. The truth is every
pair of images showing the same source picture; precision and recall are measured on the hash
candidates alone (the old rule) and after geometric confirmation (`health.confirm`), and the
look-alike distractor pairs are counted separately. The project is made once by `import_dataset`
(not timed) and reused. The near-duplicate time is cold: no hash cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

W, H = 256, 192


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def trace_phases() -> dict[str, dict[str, float]]:
    """Wrap the steps `health.check` calls so each records its own time and peak RSS: the kernel's peak
    (VmHWM) is reset to the current RSS before each step (`/proc/self/clear_refs`), so one step's peak does
    not hide a later one's. Returns the dict the steps fill: name -> seconds, rss before, peak."""
    import sys as _sys

    from visionloop.health import findings, stats

    check_mod = _sys.modules["visionloop.health.check"]
    phases: dict[str, dict[str, float]] = {}
    peaks: list[float] = []  # the whole run's peak, since the resets hide it from VmHWM

    def wrap(owner, name: str, label: str) -> None:
        fn = getattr(owner, name, None)
        if fn is None:  # another revision's steps
            return

        def run(*a, **kw):
            before = rss_mb()
            peaks.append(peak_rss_mb())
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                p = phases.setdefault(label, {"seconds": 0.0, "rss_before_mb": round(before, 1), "peak_mb": 0.0})
                p["seconds"] = round(p["seconds"] + time.perf_counter() - t, 3)
                p["peak_mb"] = round(max(p["peak_mb"], peak_rss_mb()), 1)
                peaks.append(peak_rss_mb())

        setattr(owner, name, run)

    for name in ("load_images", "load_annotations", "load_classes", "class_counts", "declared_sizes"):
        wrap(check_mod, name, name)
    for name in ("counts", "dimensions", "class_balance", "objects_per_image", "box_sizes", "tiny_objects",
                 "heatmaps"):
        wrap(stats, name, f"stats.{name}")
    for name in ("detect", "findings", "name_images"):
        wrap(findings, name, f"findings.{name}")
    # the chunked statistics (a chunk's rows are read between two `add`s, outside these steps)
    for name in ("add", "counts", "objects_per_image", "box_sizes", "tiny_objects", "heatmaps"):
        if hasattr(stats, "Tally"):
            wrap(stats.Tally, name, f"stats.Tally.{name}")
    for name in ("add", "result"):
        if hasattr(findings, "Flagged"):
            wrap(findings.Flagged, name, f"findings.Flagged.{name}")
    wrap(check_mod.duplicates, "find", "duplicates.find")
    phases["_peaks"] = peaks  # type: ignore[assignment]
    return phases


def _cells(rng, w: int, h: int, n: int):
    """A multiplicative layer of n small dark discs ("cells") on 1.0."""
    import cv2
    import numpy as np

    m = np.ones((h, w), np.float32)
    for _ in range(n):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 7)
        cv2.circle(m, (int(x), int(y)), int(r), float(rng.uniform(0.7, 0.85)), -1, lineType=cv2.LINE_AA)
    return m


def generate(root: Path, n: int, boxes_per_image: int = 10, copies: float = 0.01, lookalikes: float = 0.05) -> Path:
    """n JPEGs + one COCO JSON (80 classes) + truth.json; the last `copies` × n images are altered copies of
    others, the first `lookalikes` × n are look-alike families of ten (see the module's docstring)."""
    import cv2
    import numpy as np
    import orjson

    ann_path = root / "annotations.json"
    if ann_path.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_copies = int(n * copies)
    n_look = int(n * lookalikes) // 10 * 10
    images, anns = [], []
    truth: dict[str, list] = {"copies": [], "families": [], "shifted": []}
    aid = 0
    light = None
    for i in range(n):
        name = f"{i:06d}.jpg"
        texture = False
        if i >= n - n_copies:  # an altered copy of an earlier image
            src_i = int(rng.integers(0, n - n_copies))
            src = cv2.imread(str(root / f"{src_i:06d}.jpg"))
            truth["copies"].append([name, f"{src_i:06d}.jpg"])
            how = i % 4
            if how == 0:
                img = cv2.resize(src, (W * 3 // 4, H * 3 // 4), interpolation=cv2.INTER_AREA)
            elif how == 1:
                img = src
            elif how == 2:
                img = src[round(H * 0.05):, : W - round(W * 0.05)]
            else:
                img = np.ascontiguousarray(src[:, ::-1])
            q = 40 if how == 1 else 85
        elif i < n_look:  # look-alike families of ten: 7 fields of view + 3 shifted views of one slide
            texture = True
            k = i % 10
            if k == 0:
                field = rng.integers(40, 256, (6, 8, 3)).astype(np.uint8)
                light = cv2.resize(field, (W, H), interpolation=cv2.INTER_CUBIC).astype(np.float32)
                slide = _cells(rng, 2 * W, H, 600)
                truth["families"].append([f"{j:06d}.jpg" for j in range(i, i + 10)])
                truth["shifted"] += [[f"{i + 7:06d}.jpg", f"{i + 8:06d}.jpg"], [f"{i + 7:06d}.jpg", f"{i + 9:06d}.jpg"],
                                     [f"{i + 8:06d}.jpg", f"{i + 9:06d}.jpg"]]
            layer = _cells(rng, W, H, 300) if k < 7 else slide[:, (0, W // 3, W // 2)[k - 7]:][:, :W]
            img = np.clip(light * layer[..., None], 0, 255).astype(np.uint8)
            q = 85
        else:
            field = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
            img = cv2.resize(field, (W, H), interpolation=cv2.INTER_CUBIC)
            q = 85
        h, w = img.shape[:2]
        boxes = []
        for _ in range(boxes_per_image):
            aid += 1
            bw, bh = int(rng.integers(4, 60)), int(rng.integers(4, 45))
            bx, by = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            if i < n - n_copies and not texture:
                cv2.rectangle(img, (bx, by), (bx + bw, by + bh), [int(c) for c in rng.integers(0, 256, 3)], -1)
            boxes.append({"id": aid, "image_id": i + 1, "category_id": int(rng.integers(1, 81)),
                          "bbox": [bx, by, bw, bh], "area": bw * bh, "iscrowd": 0})
        (root / name).write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes())
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        anns += boxes
    cats = [{"id": c, "name": f"class_{c:02d}"} for c in range(1, 81)]
    ann_path.write_bytes(orjson.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "truth.json").write_bytes(orjson.dumps(truth))
    return root


def scores(pairs: set[tuple[str, str]], truth_doc: dict) -> dict[str, object]:
    """Precision and recall of predicted file-name pairs against every pair showing one source picture,
    and how many look-alike distractor pairs (same family, shifted views) were predicted."""
    from itertools import combinations

    clusters: dict[str, set[str]] = {}
    for copy, src in truth_doc["copies"]:
        clusters.setdefault(src, {src}).add(copy)
    truth = {tuple(sorted(p)) for c in clusters.values() for p in combinations(sorted(c), 2)}
    family = {tuple(sorted(p)) for f in truth_doc["families"] for p in combinations(f, 2)} - truth
    shifted = {tuple(sorted(p)) for p in truth_doc["shifted"]} - truth
    hits = pairs & truth
    return {"predicted": len(pairs), "true_pairs": len(truth), "hits": len(hits),
            "precision": round(len(hits) / max(len(pairs), 1), 4), "recall": round(len(hits) / max(len(truth), 1), 4),
            "lookalike_pairs_reported": len(pairs & family), "lookalike_pairs": len(family),
            "shifted_pairs_reported": len(pairs & shifted), "shifted_pairs": len(shifted)}


def child(what: str, project: str, data: str) -> None:
    from itertools import combinations

    import numpy as np
    import orjson

    from visionloop.health import check, duplicates
    from visionloop.health.load import load_images
    from visionloop.store import Store

    with Store.open(project) as store:
        t = time.perf_counter()
        if what in ("statistics", "health"):
            phases = trace_phases()
            r = check(store, duplicates_search=what == "health", cache=False)
            peaks = phases.pop("_peaks")
            extra = {"images": r.counts["images"], "annotations": r.counts["annotations"],
                     "findings": len(r.findings), "timings": r.timings, "phases": phases,
                     "worker_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
                     "whole_peak_mb": round(max([*peaks, peak_rss_mb()]), 1)}
        else:
            images = load_images(store)
            bl = duplicates.analyse(store, images, cache=False)
            # image pairs: every image of a same-picture group with each other (exact copies), and every image
            # of one group with every image of the other for each near pair
            members: dict[int, list[str]] = {}
            for f, g in zip(images.file_name, bl.group[bl.inv].tolist(), strict=True):
                members.setdefault(g, []).append(f.rsplit("/", 1)[-1])
            same = {tuple(sorted(p)) for m in members.values() for p in combinations(m, 2)}

            def expand(a: np.ndarray, b: np.ndarray) -> set[tuple[str, str]]:
                return same | {tuple(sorted((x, y))) for i, j in zip(a.tolist(), b.tolist(), strict=True)
                               for x in members[i] for y in members[j]}

            cand = expand(bl.near_a, bl.near_b)
            # the rule before the mirrored view: six views (no flips), same 10 bits, no confirmation
            good = np.flatnonzero(bl.ok)
            a6, b6, _, _ = duplicates.near_pairs(bl.views[good, :6])
            g = bl.group
            six = expand(g[good[a6]], g[good[b6]])
            conf = expand(bl.near_a[bl.near_ok], bl.near_b[bl.near_ok])
            truth_doc = orjson.loads((Path(data) / "truth.json").read_bytes())
            extra = {"near_candidates": int(len(bl.near_a)), "near_confirmed": int(bl.near_ok.sum()),
                     "six_views": scores(six, truth_doc), "hash_only": scores(cand, truth_doc),
                     "confirmed": scores(conf, truth_doc),
                     "timings": {k: round(v, 2) for k, v in bl.timings.items()}}
        seconds = time.perf_counter() - t
    peak = extra.pop("whole_peak_mb", None) or peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "visionloop-bench-health")
    ap.add_argument("--baseline-src", type=Path, help="a `src` folder of another revision: its statistics are "
                    "measured too, on the same project")
    ap.add_argument("--boxes-per-image", type=int, default=10, help="boxes on each image (default 10)")
    ap.add_argument("--only", choices=["statistics", "near-duplicates", "health"], action="append",
                    help="run only these stages (repeatable); `health` is the whole `visionloop health` run "
                    "(statistics, findings and the near-duplicate search) in one process")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    n = args.images
    t = time.perf_counter()
    tag = f"{n}" if args.boxes_per_image == 10 else f"{n}x{args.boxes_per_image}"
    data = generate(args.work / f"data-{tag}", n, boxes_per_image=args.boxes_per_image)
    gen = time.perf_counter() - t
    project = args.work / f"project-{tag}"
    t = time.perf_counter()
    if not (project / "visionloop.yaml").exists():
        shutil.rmtree(project, ignore_errors=True)
        from visionloop.ingest import import_dataset
        from visionloop.store import Store

        with Store.init(project) as store:
            import_dataset(store, data / "annotations.json", format="coco")
    setup = time.perf_counter() - t
    rows = {}
    runs = [("statistics", "statistics", None), ("near-duplicates", "near-duplicates", None)]
    if args.baseline_src:
        runs.insert(0, ("statistics (baseline)", "statistics", str(args.baseline_src.resolve())))
    if args.only:
        runs = [r for r in runs if r[1] in args.only]
        if "health" in args.only:
            if args.baseline_src:
                runs.append(("health (baseline)", "health", str(args.baseline_src.resolve())))
            runs.append(("health", "health", None))
    for label, what, src in runs:
        env = {**os.environ, "PYTHONPATH": src} if src else None
        out = subprocess.run([sys.executable, __file__, "--child", what, str(project), str(data)], check=True,
                             capture_output=True, text=True, env=env)
        rows[label] = json.loads(out.stdout.strip().splitlines()[-1])
    boxes = next((r["annotations"] for r in rows.values() if "annotations" in r), "?")
    print(f"{n} images, {boxes} boxes (generation {gen:.0f} s, import {setup:.0f} s, not timed)")
    print(f"{'stage':<22} {'seconds':>8} {'peak MB':>8}   detail")
    for what, r in rows.items():
        detail = {k: v for k, v in r.items()
                  if k not in ("seconds", "peak_mb", "six_views", "hash_only", "confirmed", "phases")}
        print(f"{what:<22} {r['seconds']:>8.1f} {r['peak_mb']:>8.0f}   {json.dumps(detail)}")
    for what, r in rows.items():
        if r.get("phases"):
            print(f"\n{what}: step, seconds, RSS before (MB), peak during the step (MB)")
            for step, p in r["phases"].items():
                print(f"  {step:<28} {p['seconds']:>8.3f} {p['rss_before_mb']:>8.1f} {p['peak_mb']:>8.1f}")
    if "near-duplicates" not in rows:
        return
    near = rows["near-duplicates"]
    print()
    print("| near-duplicate rule | reported pairs | true copy pairs found | precision | recall | "
          "look-alike pairs reported | shifted-view pairs reported |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, key in (("before: pHash ≤ 10 bits, 6 views", "six_views"), ("pHash ≤ 10 bits, 7 views (+ mirror)",
                                                                           "hash_only"),
                       ("7 views + geometric confirmation", "confirmed")):
        sc = near[key]
        print(f"| {label} | {sc['predicted']} | {sc['hits']} / {sc['true_pairs']} | {sc['precision']:.4f} | "
              f"{sc['recall']:.4f} | {sc['lookalike_pairs_reported']} / {sc['lookalike_pairs']} | "
              f"{sc['shifted_pairs_reported']} / {sc['shifted_pairs']} |")

if __name__ == "__main__":
    main()
