"""Instance and semantic segmentation on synthetic shapes: what a few minutes of CPU training reach.

    .venv/bin/python bench/segment.py [--images 300] [--budget 180] [--imgsz 320]

No real segmentation dataset ships with the project (../shared/datasets has boxes and GPS photos), so
this renders `visionloop demo`'s shapes (squares as boxes, triangles as polygons, discs as RLE masks) at
320×240, versions them 80/20, trains `fcos_seg_lite0` (--task segment) and `lraspp_lite0` (--task
semantic) from the offline ImageNet backbone for the same budget each, and evaluates each model's ONNX
export end to end on the validation split (`visionloop evaluate`: COCO segm mAP via faster-coco-eval;
per-class IoU and mIoU). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--budget", type=float, default=180.0, help="seconds per model")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    from visionloop import formats
    from visionloop.demo import synthetic
    from visionloop.evaluate.model import evaluate_model
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.train import train
    from visionloop.versions import create_version

    rows = []
    with tempfile.TemporaryDirectory(prefix="vl-bench-seg-") as tmp:
        root = Path(tmp)
        formats.write(synthetic.shapes(args.images, seed=0, size=(320, 240), folder=root / "render",
                                       splits=(("train", 0.8), ("valid", 0.2))),
                      root / "coco", format="coco", classes=synthetic.classes())
        store = Store.init(root / "project")
        import_dataset(store, root / "coco")
        version = create_version(store, {"schema": 1, "seed": 0}, workers=0)
        print(f"{args.images} synthetic images, version {version.name}: {version.counts.get('by_split')}", flush=True)
        for task in ("segment", "semantic"):
            def show(p, task=task):
                if p.phase == "epoch":
                    m = p.metrics
                    score = (f"mask mAP50 {m.get('mask_map50', 0):.3f}  mask mAP {m.get('mask_map', 0):.3f}"
                             if task == "segment" else f"mIoU {m.get('miou', 0):.3f}")
                    print(f"  [{task}] epoch {p.epoch:2d}  loss {m['loss']:.3f}  train {m['train_s']:.1f}s  {score}",
                          flush=True)

            t = time.perf_counter()
            r = train(store, version.name, task=task, epochs=300, time_budget=args.budget, imgsz=args.imgsz,
                      batch=args.batch, seed=0, name=task, progress=show)
            wall = time.perf_counter() - t
            ev = evaluate_model(store, task, save=False)
            if task == "segment":
                assert ev.detection is not None
                e2e = f"segm mAP50 {ev.detection.metrics.map50:.3f}, mAP50-95 {ev.detection.metrics.map:.3f}"
                val = f"mask mAP50 {r.metrics['mask_map50']:.3f}, mAP50-95 {r.metrics['mask_map']:.3f}"
            else:
                assert ev.semantic is not None
                ious = ", ".join(f"{c} {v:.3f}" for c, v in zip(ev.semantic.classes, ev.semantic.iou, strict=True)
                                 if v is not None)
                e2e = f"mIoU {ev.semantic.miou:.3f} ({ious})"
                val = f"mIoU {r.metrics['miou']:.3f}"
            rows.append((task, r.model.arch, r.epochs, wall, val, e2e))
        store.close()
    print()
    print("| task | model | epochs | wall s | validation (torch, letterboxed) | ONNX end to end (photo pixels) |")
    print("|---|---|---|---|---|---|")
    for task, arch, epochs, wall, val, e2e in rows:
        print(f"| {task} | {arch} | {epochs} | {wall:.0f} | {val} | {e2e} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
