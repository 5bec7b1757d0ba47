"""Train Ultralytics YOLO11n from its yaml for a wall-clock budget; run by bench/train.py inside its own venv.

    bench/.venv-ultralytics/bin/python bench/yolo_peer.py DATA_YAML OUT_DIR --budget 600 [--imgsz 320]
        [--batch 8] [--device cpu] [--threads 2] [--workers 0]

This file is a measurement peer, never part of visionloop: it runs only in `bench/.venv-ultralytics`
(created by `bench/train.py --peer yolo`), and nothing in src/ or tests/ imports Ultralytics (AGPL).

It starts from `yolo11n.yaml` (random init, no .pt weights: nothing is downloaded), trains with
`time=` set to the budget so Ultralytics fits its epochs to the same wall clock, validates best.pt with
Ultralytics' own val, and predicts the validation images so that the caller can score them with
visionloop's pycocotools metric. Offline: YOLO_OFFLINE=1 and settings sync=False (set by the caller and
here), plots=False, amp=False (AMP's check downloads yolo11n.pt), and `check_font` is replaced by a
no-op so that the dataset check does not probe the network for Arial.ttf (plots=False draws nothing).
Lines starting with `@@` are for the caller (JSON); everything else is Ultralytics' own log.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


def emit(kind: str, **data) -> None:
    print(f"@@{kind} {json.dumps(data)}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--budget", type=float, required=True, help="seconds of training (+ per-epoch validation)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out).resolve()

    import torch
    import ultralytics
    from ultralytics import YOLO, settings
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import checks, torch_utils

    settings.update({"sync": False, "runs_dir": str(out / "runs"), "weights_dir": str(out / "weights"),
                     "datasets_dir": str(out / "datasets")})
    # the dataset check calls check_font("Arial.ttf"), which asks GitHub for the font when it is not
    # cached: nothing here draws text (plots=False), so skip the probe instead of waiting on the network
    checks.check_font = data_utils.check_font = lambda *a, **k: None
    if args.threads:  # Ultralytics uses cpu_count - 1 threads on CPU: give it the threads visionloop had
        torch_utils.NUM_THREADS = args.threads
    emit("version", ultralytics=ultralytics.__version__, torch=torch.__version__,
         threads=args.threads)

    model = YOLO("yolo11n.yaml")
    epochs: list[dict] = []
    mark: dict = {}

    def on_train_epoch_start(trainer) -> None:
        mark["train"] = time.perf_counter()

    def on_train_epoch_end(trainer) -> None:
        mark["train_s"] = time.perf_counter() - mark["train"]
        mark["valid"] = time.perf_counter()
        mark["pending"] = True

    def on_fit_epoch_end(trainer) -> None:
        if not mark.pop("pending", False):
            return  # final_eval (best.pt validated after training) runs this callback again: not an epoch
        m = trainer.metrics or {}
        row = {"epoch": trainer.epoch + 1, "epochs": trainer.epochs,
               "loss": sum(float(x) for x in trainer.tloss.values()) if trainer.tloss else None,
               "train_s": mark.get("train_s", 0.0), "valid_s": time.perf_counter() - mark.get("valid", 0.0),
               "map50": float(m.get("metrics/mAP50(B)", 0.0)), "map": float(m.get("metrics/mAP50-95(B)", 0.0)),
               "fitness": float(trainer.fitness or 0.0)}
        epochs.append(row)
        emit("epoch", **row)

    model.add_callback("on_train_epoch_start", on_train_epoch_start)
    model.add_callback("on_train_epoch_end", on_train_epoch_end)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)

    t = time.perf_counter()
    model.train(data=args.data, imgsz=args.imgsz, batch=args.batch, device=args.device, workers=args.workers,
                time=args.budget / 3600, epochs=1000, patience=1000, seed=args.seed, deterministic=True,
                plots=False, amp=False, val=True, project=str(out / "runs"), name="yolo11n", exist_ok=True,
                pretrained=False, verbose=False)
    wall = time.perf_counter() - t
    trainer = model.trainer
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)

    peer = YOLO(str(best))
    v = peer.val(data=args.data, imgsz=args.imgsz, batch=args.batch, device=args.device, workers=args.workers,
                 plots=False, split="val", project=str(out / "runs"), name="val", exist_ok=True, verbose=False)
    names = peer.names
    valid = sorted(p for p in (Path(args.data).parent / "images" / "valid").iterdir() if p.is_file())
    preds = {}
    for r in peer.predict([str(p) for p in valid], imgsz=args.imgsz, conf=0.001, iou=0.7, max_det=300,
                          device=args.device, verbose=False, stream=True):
        b = r.boxes
        preds[Path(r.path).name] = {"boxes": b.xyxy.tolist(), "scores": b.conf.tolist(),
                                    "labels": [names[int(c)] for c in b.cls.tolist()]}
    best_epoch = max(epochs, key=lambda e: e["fitness"])["epoch"] if epochs else 0
    result = {"ultralytics": ultralytics.__version__, "epochs": len(epochs), "history": epochs, "wall": wall,
              "train_valid_s": sum(e["train_s"] + e["valid_s"] for e in epochs), "best_epoch": best_epoch,
              "best": str(best), "stopped": "time" if trainer.args.time and
              sum(e["train_s"] + e["valid_s"] for e in epochs) >= 0.95 * args.budget else "epochs",
              "val": {"map50": float(v.box.map50), "map": float(v.box.map)}, "predictions": preds}
    (out / "result.json").write_text(json.dumps(result))
    emit("done", path=str(out / "result.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
