"""COCO box evaluation at scale: visionloop vs pycocotools vs faster-coco-eval, in one run.

    python bench/evaluate.py [--images 5000] [--per-image 100] [--seed 0] [--workdir DIR]

Writes a seeded synthetic ground truth (640×480 images, 20 classes, 1–14 objects each, 1% crowd) and
`images × per-image` detections (jittered copies of the ground truth with some class flips, the rest
random boxes) as COCO JSON files, then runs each engine in its own subprocess from the files to the 12
summary numbers: wall time, peak resident memory of that process (ru_maxrss), and whether the 12 numbers
are identical (==) to pycocotools'. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("pycocotools", "faster-coco-eval", "visionloop")


def make_data(images: int, per_image: int, seed: int, out: Path) -> tuple[Path, Path, int, int]:
    import numpy as np
    import orjson

    rng = np.random.default_rng(seed)
    w, h, n_cat = 640, 480, 20
    imgs = [{"id": i + 1, "file_name": f"{i:06d}.jpg", "width": w, "height": h} for i in range(images)]
    anns, dets = [], []
    for im in imgs:
        n = int(rng.integers(1, 15))
        bw, bh = rng.uniform(4, 200, n), rng.uniform(4, 200, n)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        cats = rng.integers(1, n_cat + 1, n)
        crowd = rng.random(n) < 0.01
        for k in range(n):
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(cats[k]),
                         "bbox": [round(float(x[k]), 2), round(float(y[k]), 2), round(float(bw[k]), 2),
                                  round(float(bh[k]), 2)], "area": round(float(bw[k] * bh[k]), 2),
                         "iscrowd": int(crowd[k])})
        m = min(per_image, 2 * n)
        src = rng.integers(0, n, m)
        j = rng.normal(0, 0.1, (m, 4))
        jb = np.stack([x[src] + j[:, 0] * bw[src], y[src] + j[:, 1] * bh[src], bw[src] * (1 + j[:, 2]),
                       bh[src] * (1 + j[:, 3])], axis=1)
        jc = np.where(rng.random(m) < 0.1, rng.integers(1, n_cat + 1, m), cats[src])
        rest = per_image - m
        rw, rh = rng.uniform(4, 200, rest), rng.uniform(4, 200, rest)
        rb = np.stack([rng.uniform(0, w - rw), rng.uniform(0, h - rh), rw, rh], axis=1)
        boxes = np.concatenate([jb, rb])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        cs = np.concatenate([jc, rng.integers(1, n_cat + 1, rest)])
        scores = np.concatenate([rng.uniform(0.2, 1.0, m), rng.uniform(0.0, 0.6, rest)])
        for b, c, s in zip(np.round(boxes, 2).tolist(), cs.tolist(), np.round(scores, 4).tolist(), strict=True):
            dets.append({"image_id": im["id"], "category_id": c, "bbox": b, "score": s})
    gt = {"images": imgs, "annotations": anns,
          "categories": [{"id": c, "name": f"class{c}"} for c in range(1, n_cat + 1)]}
    gt_path, res_path = out / "instances.json", out / "results.json"
    gt_path.write_bytes(orjson.dumps(gt))
    res_path.write_bytes(orjson.dumps(dets))
    return gt_path, res_path, len(anns), len(dets)


def worker(engine: str, gt: str, res: str) -> None:
    """Runs in a subprocess: files → the 12 numbers; prints JSON with the time and this process's peak."""
    import contextlib
    import io

    t0 = time.perf_counter()
    if engine == "visionloop":
        from visionloop.evaluate import coco_metrics

        stats = coco_metrics(gt, res, iou_type="bbox").stats
    else:
        if engine == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval as Eval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as Eval
        with contextlib.redirect_stdout(io.StringIO()):
            g = COCO(gt)
            d = g.loadRes(res)
            ev = Eval(g, d, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(v) for v in list(ev.stats)[:12]]
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "wall_s": wall, "peak_mb": peak_mb, "stats": stats}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--per-image", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "GT", "RESULTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        gt, res, n_gt, n_det = make_data(args.images, args.per_image, args.seed, Path(tmp))
        print(f"data: {args.images} images, {n_gt} ground-truth boxes, {n_det} detections "
              f"({res.stat().st_size / 1e6:.0f} MB results JSON), made in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        rows = {}
        for engine in ENGINES:
            proc = subprocess.run([sys.executable, __file__, "--worker", engine, str(gt), str(res)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{engine} failed:\n{proc.stderr}")
            rows[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{engine}: {rows[engine]['wall_s']:.1f} s", file=sys.stderr)
    ref = rows["pycocotools"]
    print(f"\n{args.images} images, {n_gt} ground-truth boxes, {n_det} detections (seed {args.seed}); "
          "each engine from the JSON files to the 12 COCO numbers, in its own process\n")
    print("| engine | wall time (s) | vs pycocotools | peak RSS (MB) | mAP | mAP50 | identical AP (12 numbers ==) "
          "| max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for engine in ENGINES:
        r = rows[engine]
        same = r["stats"] == ref["stats"]
        diff = max(abs(a - b) for a, b in zip(r["stats"], ref["stats"], strict=True))
        print(f"| {engine} | {r['wall_s']:.1f} | {ref['wall_s'] / r['wall_s']:.2f}× | {r['peak_mb']:.0f} | "
              f"{r['stats'][0]:.6f} | {r['stats'][1]:.6f} | {'yes' if same else 'NO'} | {diff:.1e} |")


if __name__ == "__main__":
    main()
