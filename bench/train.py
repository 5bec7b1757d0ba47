"""Train the default detector on raccoon (a deterministic 160/40 split) and print per-epoch time and mAP.

    .venv/bin/python bench/train.py raccoon [--epochs 20] [--budget 600] [--random] [--peer yolo]
        [--only yolo] [--device cpu|cuda]

Imports ../shared/datasets/raccoon into a temporary project, versions it with a fixed recipe
(`--split canonical`, the default: the author's 160/40 from data/test_labels.csv; `--split random`: the
recipe's random 0.8/0.2 with seed 0, 161/39; no preprocessing: training letterboxes on the fly), trains
`fcos_lite0` with the offline ImageNet EfficientNet-Lite0 backbone (and, with --random, the same
budget from a random backbone), and evaluates on the 40 validation images with pycocotools
(end to end through the exported ONNX model as well).

`--peer yolo` adds Ultralytics YOLO11n as a peer, trained for the same wall clock from what an
offline user has: `yolo11n.yaml` (random init, no downloaded weights). Ultralytics is AGPL and is
never a dependency of visionloop: this script installs it (with torch 2.14.1 / torchvision 0.29.1)
into its own venv, `bench/.venv-ultralytics` (created once, reused), exports the same train/valid
split in the YOLO layout with visionloop's own exporter, and runs `bench/yolo_peer.py` in that venv
(imgsz, batch, device and torch threads as ours; plots and AMP off; offline) with `time=` the budget,
or the longest visionloop run's train+valid seconds if an epoch of ours ran past the budget.
Its best.pt is scored twice on the 40 validation images: by Ultralytics' own val, and by
visionloop's pycocotools metric on its predictions (the number in the table, comparable to ours).
The two disagree most on a barely trained model: pycocotools gives each ground truth to the
highest-scoring overlapping box, Ultralytics to the highest-IoU one, so near-uniform large boxes on
raccoon's large objects score far higher under the first (a 60 s run: mAP50 0.36-0.51 against ~0.01).
If the venv cannot be installed or the peer fails, one line says so and the other rows still print.
`--only yolo` runs the peer alone (a smoke test of the peer).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "bench" / ".venv-ultralytics"
PEER_PACKAGES = ["ultralytics", "torch==2.14.1", "torchvision==0.29.1"]


def datasets() -> Path:
    env = os.environ.get("VISIONLOOP_DATASETS")
    return Path(env) if env else (ROOT / ".." / "shared" / "datasets").resolve()


def canonical_valid(data: Path) -> set[str]:
    """The dataset's own 40 test images: `data/test_labels.csv` as its author split it (160 train / 40 test)."""
    import csv

    with (data / "data" / "test_labels.csv").open(newline="") as f:
        return {row["filename"] for row in csv.DictReader(f)}


def make_project(work: Path, data: Path, split: str = "canonical"):
    """Import raccoon and version it. `canonical`: the author's 160/40 split (the 40 of data/test_labels.csv
    become `valid`), imported as two splits from symlinked halves and kept; `random`: the recipe's random
    0.8/0.2 with seed 0 (161/39)."""
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.versions import create_version

    store = Store.init(work / "project")
    if split == "canonical":
        valid = canonical_valid(data)
        for name in ("train", "valid"):
            half = work / f"raccoon-{name}"
            (half / "images").mkdir(parents=True)
            (half / "annotations").mkdir()
            for xml in sorted((data / "annotations").glob("*.xml")):
                jpg = xml.stem + ".jpg"
                if (jpg in valid) == (name == "valid"):
                    (half / "annotations" / xml.name).symlink_to(xml)
                    (half / "images" / jpg).symlink_to(data / "images" / jpg)
            import_dataset(store, half, split=name)
        recipe = {"schema": 1, "seed": 0, "split": {"mode": "keep"}}
    else:
        recipe = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.8, "valid": 0.2,
                                                                                 "test": 0.0}, "stratify": False}}
        import_dataset(store, data)
    info = create_version(store, recipe, workers=0)
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


def peer_python() -> Path | None:
    """The peer venv's python, creating `bench/.venv-ultralytics` and installing Ultralytics on first use."""
    py = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".installed"
    if py.exists() and marker.exists() and marker.read_text().split() == PEER_PACKAGES:
        return py
    log = PEER_VENV.parent / ".venv-ultralytics.log"
    print(f"installing the YOLO11n peer into {PEER_VENV.relative_to(ROOT)}: {' '.join(PEER_PACKAGES)} "
          f"(log {log.relative_to(ROOT)}) ...", flush=True)
    t = time.perf_counter()
    base = shutil.which("python3.11") or sys.executable
    with log.open("w") as f:
        for cmd in ([base, "-m", "venv", str(PEER_VENV)],
                    [str(py), "-m", "pip", "install", "--disable-pip-version-check", *PEER_PACKAGES]):
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            try:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=peer_env()).returncode
            except OSError as e:
                rc = 1
                f.write(f"{e}\n")
            if rc != 0:
                print(f"YOLO11n peer skipped: `{' '.join(cmd[:4])} ...` failed (exit {rc}); see {log}", flush=True)
                return None
    marker.write_text("\n".join(PEER_PACKAGES) + "\n")
    print(f"  installed in {time.perf_counter() - t:.0f}s", flush=True)
    return py


def peer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    config = PEER_VENV / "config"  # Ultralytics' settings.json and matplotlib's cache stay inside the peer venv
    env.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_CONFIG_DIR": str(config),
                "MPLCONFIGDIR": str(config / "matplotlib"), "PYTHONNOUSERSITE": "1"})
    return env


def run_yolo(store, version: str, work: Path, *, budget: float, imgsz: int, batch: int, device: str,
             threads: int | None, workers: int) -> dict | None:
    """Ultralytics YOLO11n from its yaml on the same split and wall clock, in its own venv; None if it failed."""
    import numpy as np
    import torch

    from visionloop.train.metrics import detection_metrics
    from visionloop.versions import VersionDataset
    from visionloop.versions.api import export_version

    py = peer_python()
    if py is None:
        return None
    data = work / "yolo"
    export_version(store, version, data, format="yolo")
    out = work / "yolo-run"
    out.mkdir()
    log = out / "ultralytics.log"
    threads = threads or torch.get_num_threads()
    cmd = [str(py), str(ROOT / "bench" / "yolo_peer.py"), str(data / "data.yaml"), str(out), "--budget", str(budget),
           "--imgsz", str(imgsz), "--batch", str(batch), "--device", device, "--threads", str(threads),
           "--workers", str(workers)]
    t = time.perf_counter()
    done = None
    tail: list[str] = []
    with log.open("w") as f, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                              cwd=data, env=peer_env(), bufsize=1) as p:
        assert p.stdout is not None
        for line in p.stdout:
            f.write(line)
            tail = (tail + [line.rstrip()])[-15:]
            if not line.startswith("@@"):
                continue
            kind, _, payload = line[2:].partition(" ")
            d = json.loads(payload)
            if kind == "version":
                print(f"  [yolo11n] ultralytics {d['ultralytics']}, torch {d['torch']}, {d['threads']} threads",
                      flush=True)
            elif kind == "epoch":
                print(f"  [yolo11n] epoch {d['epoch']:2d}/{d['epochs']}  loss {d['loss'] or 0:.3f}  "
                      f"train {d['train_s']:.1f}s  valid {d['valid_s']:.1f}s  mAP50 {d['map50']:.3f}  "
                      f"mAP50-95 {d['map']:.3f}", flush=True)
            elif kind == "done":
                done = Path(d["path"])
        rc = p.wait()
    if rc != 0 or done is None:
        print(f"YOLO11n peer failed (exit {rc}) after {time.perf_counter() - t:.0f}s; last lines of {log}:")
        print("\n".join("    " + x for x in tail))
        return None
    r = json.loads(done.read_text())
    # visionloop's metric on the peer's predictions (original pixels; ours are scored in letterbox pixels,
    # mAP does not change under one scale + offset per image)
    ds = VersionDataset(store, version, "valid")
    dets, targets, missing = [], [], 0
    for i in range(len(ds)):
        target = ds.target(ds.sample(i), i, 0, 0)
        pred = r["predictions"].get(Path(target["file_name"]).name)
        if pred is None:
            missing += 1
            pred = {"boxes": [], "scores": [], "labels": []}
        dets.append((np.asarray(pred["boxes"], np.float32).reshape(-1, 4), np.asarray(pred["scores"], np.float32),
                     np.asarray([ds.class_names.index(c) for c in pred["labels"]], np.int64)))
        targets.append(target)
    if missing:
        print(f"  [yolo11n] {missing} of {len(ds)} validation images had no prediction file (scored as empty)")
    r["metrics"] = detection_metrics(dets, targets, num_classes=len(ds.class_names))
    r["label"] = "YOLO11n (yaml, random init)"
    r["total_wall"] = time.perf_counter() - t
    return r


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
    ap.add_argument("--split", choices=["canonical", "random"], default="canonical",
                    help="canonical: the dataset author's 160/40 (data/test_labels.csv); random: 0.8/0.2 seed 0")
    ap.add_argument("--zoom", type=float, default=None, help="scale jitter: random crops keeping >= 100-zoom %% "
                    "of each side (default: the training default)")
    ap.add_argument("--zoom-off", type=float, default=None, help="the last fraction of the schedule without "
                    "scale jitter (e.g. 0.25)")
    ap.add_argument("--keep", type=Path, default=None, help="build the project in this (new) folder and keep it")
    ap.add_argument("--freeze-bn", action="store_true", help="pretrained backbone's batch norms frozen")
    ap.add_argument("--ema", action="store_true", help="keep the moving average of the weights, not the raw ones")
    ap.add_argument("--random", action="store_true", help="also train from a random backbone, same budget")
    ap.add_argument("--peer", choices=["yolo"], default=None,
                    help="also train Ultralytics YOLO11n from its yaml, same budget, in bench/.venv-ultralytics")
    ap.add_argument("--only", choices=["yolo"], default=None, help="run only the peer (implies --peer)")
    args = ap.parse_args()
    peer = args.only or args.peer
    zoom = {} if args.zoom is None else {"zoom": args.zoom}
    if args.ema:
        zoom["ema"] = True
    if args.zoom_off:
        zoom["zoom_off"] = args.zoom_off
    if args.keep is not None and args.keep.exists():
        ap.error(f"--keep {args.keep}: the folder exists; name a new one")
    with (contextlib.nullcontext(str(args.keep)) if args.keep is not None
          else tempfile.TemporaryDirectory(prefix="vl-bench-train-")) as tmp:
        t = time.perf_counter()
        store, info = make_project(Path(tmp), datasets() / args.dataset, args.split)
        print(f"project + version {info.name}: {info.counts.get('by_split')} in {time.perf_counter() - t:.1f}s")
        runs = []
        if not args.only:
            runs.append(run(store, info.name, weights="default", epochs=args.epochs, budget=args.budget,
                            imgsz=args.imgsz, batch=args.batch, device=args.device, label="lite0-imagenet",
                            threads=args.threads, workers=args.workers,
                            **zoom, **({"freeze_bn": True} if args.freeze_bn else {})))
        if args.random and not args.only:
            runs.append(run(store, info.name, weights="random", epochs=args.epochs, budget=args.budget,
                            imgsz=args.imgsz, batch=args.batch, device=args.device, label="lite0-random",
                            threads=args.threads, workers=args.workers, **zoom))
        yolo = None
        if peer == "yolo":
            # the same wall clock as ours took: the budget, or more if an epoch of ours ran past it
            budget = max([args.budget] + [r["result"].seconds for r in runs])
            print(f"  [yolo11n] budget {budget:.0f}s", flush=True)
            yolo = run_yolo(store, info.name, Path(tmp), budget=budget, imgsz=args.imgsz, batch=args.batch,
                            device=args.device, threads=args.threads, workers=args.workers)
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
        if yolo is not None:
            m = yolo["metrics"]
            per_epoch = sum(h["train_s"] for h in yolo["history"]) / max(1, len(yolo["history"]))
            print(f"| {yolo['label']} | {yolo['epochs']} | {yolo['train_valid_s']:.0f} | {per_epoch:.1f} | "
                  f"{m['map50']:.3f} | {m['map']:.3f} | – | – | {yolo['best_epoch']} | {yolo['stopped']} |")
            print()
            print(f"YOLO11n: ultralytics {yolo['ultralytics']}; mAP above is visionloop's pycocotools metric on its "
                  f"best.pt predictions (conf 0.001, NMS IoU 0.7); Ultralytics' own val of best.pt: mAP50 "
                  f"{yolo['val']['map50']:.3f}, mAP50-95 {yolo['val']['map']:.3f}; wall {yolo['wall']:.0f}s for "
                  f"model.train (setup and final val included), {yolo['total_wall']:.0f}s for the whole peer")
        store.close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
