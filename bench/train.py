"""Train the default detector on raccoon (a deterministic 160/40 split) and print per-epoch time and mAP.

    .venv/bin/python bench/train.py raccoon [--epochs 20] [--budget 600] [--random] [--device cpu|cuda]

Imports ../shared/datasets/raccoon into a temporary project, versions it with a fixed recipe
(random split 0.8/0.2, seed 0, no preprocessing: training letterboxes on the fly), trains
`fcos_lite0` with the offline ImageNet EfficientNet-Lite0 backbone (and, with --random, the same
budget from a random backbone), and evaluates on the 40 validation images with pycocotools
(end to end through the exported ONNX model as well). Ultralytics YOLO11n is not run here yet.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def datasets() -> Path:
    env = os.environ.get("VISIONLOOP_DATASETS")
    return Path(env) if env else (ROOT / ".." / "shared" / "datasets").resolve()


def make_project(work: Path, data: Path):
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.versions import create_version

    store = Store.init(work / "project")
    import_dataset(store, data)
    info = create_version(store, {"schema": 1, "seed": 0,
                                  "split": {"mode": "random", "ratios": {"train": 0.8, "valid": 0.2, "test": 0.0},
                                            "stratify": False}},
                          workers=0)
    return store, info


def run(store, version, *, weights: str, epochs: int, budget: float, imgsz: int, batch: int, device: str,
        label: str, threads: int | None, workers: int, **kw) -> dict:
    from visionloop.train import train

    def show(p):
        if p.phase == "epoch":
            m = p.metrics
            print(f"  [{label}] epoch {p.epoch:2d}/{p.epochs}  loss {m['loss']:.3f}  train {m['train_s']:.1f}s  "
                  f"valid {m.get('valid_s', 0):.1f}s  mAP50 {m.get('map50', 0):.3f}  mAP50-95 {m.get('map', 0):.3f}",
                  flush=True)

    t = time.perf_counter()
    r = train(store, version, task="detect", weights=weights, epochs=epochs, time_budget=budget, imgsz=imgsz,
              batch=batch, seed=0, device=device, progress=show, threads=threads, workers=workers,
              name=label, export=True, **kw)
    wall = time.perf_counter() - t
    return {"label": label, "result": r, "wall": wall}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", choices=["raccoon"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--budget", type=float, default=600.0, help="seconds per model (training + validation)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--zoom", type=float, default=None, help="scale jitter: random crops keeping >= 100-zoom %% "
                    "of each side (default: the training default)")
    ap.add_argument("--random", action="store_true", help="also train from a random backbone, same budget")
    args = ap.parse_args()
    zoom = {} if args.zoom is None else {"zoom": args.zoom}
    with tempfile.TemporaryDirectory(prefix="vl-bench-train-") as tmp:
        t = time.perf_counter()
        store, info = make_project(Path(tmp), datasets() / args.dataset)
        print(f"project + version {info.name}: {info.counts.get('by_split')} in {time.perf_counter() - t:.1f}s")
        runs = [run(store, info.name, weights="default", epochs=args.epochs, budget=args.budget, imgsz=args.imgsz,
                    batch=args.batch, device=args.device, label="lite0-imagenet", threads=args.threads,
                    workers=args.workers, **zoom)]
        if args.random:
            runs.append(run(store, info.name, weights="random", epochs=args.epochs, budget=args.budget,
                            imgsz=args.imgsz, batch=args.batch, device=args.device, label="lite0-random",
                            threads=args.threads, workers=args.workers, **zoom))
        from visionloop.store import models as registry

        print()
        print("| model | epochs | train+valid s | s/epoch (train) | mAP50 (torch) | mAP50-95 (torch) | "
              "mAP50 (ONNX e2e) | mAP50-95 (ONNX e2e) | best epoch | stopped |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        from visionloop.train.export import accuracy

        for r in runs:
            res = r["result"]
            m = res.metrics
            info_m = registry.get(store, res.model.name)
            e2e = accuracy(store, info_m, {"fp32": store.blobs.get(info_m.export("onnx", "fp32").sha256)})
            per_epoch = sum(h["train_s"] for h in res.history) / max(1, len(res.history))
            print(f"| {r['label']} | {res.epochs} | {res.seconds:.0f} | {per_epoch:.1f} | {m.get('map50', 0):.3f} | "
                  f"{m.get('map', 0):.3f} | {e2e['fp32']['map50']:.3f} | {e2e['fp32']['map']:.3f} | "
                  f"{m['best_epoch']} | {m['stopped']} |")
        store.close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
