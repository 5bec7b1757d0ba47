"""train(): a version in, a registered (and exported) model out. A lean loop, no Lightning.

    result = train(store, "v1", task="detect", epochs=10, imgsz=320, seed=0)
    result.model.name, result.metrics          # m1, {"map50": ..., "map": ...}

Per epoch: augmented batches (transforms, seeded by seed/epoch/index), AdamW with a linear warm-up
and a cosine decay over the planned steps (or over the time budget when only `--time` is given),
validation on the `valid` split (COCO mAP via pycocotools for detection, box and mask mAP for
instance segmentation, mIoU for semantic segmentation, accuracy for classification), a CSV row and
TensorBoard scalars (`tensorboard --logdir <checkpoint folder>/tensorboard`), `last.pt` (resume point)
and `best.pt` in the model's checkpoint folder. With `ema=True` (`--ema`) what is validated, kept and exported
is the exponential moving average of the weights (timm's ModelEmaV3). It is off by default: on raccoon
(bench/train.py --ema, 20 epochs) it removed the epoch-to-epoch dips of the raw weights but ended 0.015
mAP50-95 lower, the average lagging behind a schedule that still improves. The last `zoom_off` (30 %) of
the schedule trains without scale jitter, on the sizes the model will see (as YOLOX drops its strong
augmentation at the end); on raccoon its last epochs scored mAP50 0.95 where they scored 0.94 without. `--time` stops inside an epoch when one is long. Early stopping after `patience` epochs without improvement. At the end the best weights
become a blob of the model row and, unless `export=False`, the model is exported to ONNX.

Same seed, same data, same device (CPU) → same metrics: torch's generator, each item's
augmentation and the batch order derive from the seed.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionloop import models as M
from visionloop.core.errors import VisionLoopError
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store.models import ModelInfo
from visionloop.train.data import TrainSet, collate, preprocessing
from visionloop.train.metrics import classification_metrics, detection_metrics, semantic_metrics
from visionloop.versions import VersionDataset

log = logging.getLogger(__name__)

BOX_TASKS = ("detect", "segment")  # tasks whose targets are per-object boxes (and masks)


@dataclass
class Progress:
    """One step of training, for progress bars (the CLI renders loss and ETA)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # within the epoch, 1-based
    steps: int
    loss: float
    eta_s: float | None
    phase: str = "train"  # train | validate | epoch
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: ModelInfo
    metrics: dict[str, Any]
    epochs: int
    seconds: float
    stopped: str  # epochs | time | early-stop
    history: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.to_json(), "metrics": self.metrics, "epochs": self.epochs,
                "seconds": round(self.seconds, 2), "stopped": self.stopped, "history": self.history}


def parse_duration(text: str | float | None) -> float | None:
    """`10m`, `90s`, `1h30m`, or seconds → seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return float(text)
    import re

    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not parts or not any(parts.groups()):
        raise VisionLoopError(f"cannot read the duration {text!r}", hint="write it as 10m, 90s or 1h30m")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


def _device(device: str) -> torch.device:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise VisionLoopError(f"unknown device {device!r}", hint="use cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VisionLoopError("no CUDA device is available to torch", hint="use --device cpu")
    return torch.device(device)


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(store: Store, version: str | int, *, task: str = "detect", model: str | None = None,
          weights: str | Path | None = None, weights_file: str | Path | None = None, epochs: int | None = None,
          imgsz: int | None = None, time_budget: float | str | None = None, batch: int = 8, lr: float = 1e-3,
          weight_decay: float = 5e-4, seed: int = 0, device: str = "cpu", workers: int = 0,
          threads: int | None = None, patience: int | None = None, multi_label: bool | None = None,
          resume: str | None = None, name: str | None = None, export: bool = True, zoom: float = 25.0,
          zoom_off: float = 0.3,
          ema: bool = False, max_steps: int | None = None, progress: Callable[[Progress], None] | None = None,
          **options: Any) -> TrainResult:
    """Train a model on `version` and register it. See the module docstring."""
    budget = parse_duration(time_budget)
    dev = _device(device)
    if threads:
        torch.set_num_threads(threads)
    if resume is not None:
        info = registry.get(store, resume)
        if info.status == "ready":
            raise VisionLoopError(f"model {info.name} already finished training", hint="train a new one")
        hyper = info.hyper
        task, arch_name = info.task, info.arch
        epochs, imgsz, batch, lr = hyper["epochs"], hyper["imgsz"], hyper["batch"], hyper["lr"]
        weight_decay, seed, patience = hyper["weight_decay"], hyper["seed"], hyper.get("patience")
        budget, multi_label = hyper.get("time_budget"), hyper.get("multi_label", False)
        zoom, zoom_off = hyper.get("zoom", 0.0), hyper.get("zoom_off", 0.0)
        ema = hyper.get("ema") is not None
        version = info.version_id if info.version_id is not None else info.version
        arch = M.ARCHS[arch_name]
    else:
        arch = M.arch_for(task, model)
    imgsz = int(imgsz or arch.imgsz)
    if imgsz % 32:
        raise VisionLoopError(f"--imgsz {imgsz} is not a multiple of 32", hint="use 320, 416, 640, ...")
    if epochs is None:
        epochs = 300 if budget else 10
    _seed_all(seed)

    train_ds = VersionDataset(store, version, "train")
    if len(train_ds) == 0:
        raise VisionLoopError(f"version {train_ds.version} has no train images", hint="split it with a recipe")
    valid_split = next((s for s in ("valid", "test") if len(VersionDataset(store, version, s))), None)
    if task != "classify":  # classification reads whole-image labels only
        _warn_polylines(train_ds, VersionDataset(store, version, valid_split) if valid_split else None, task)
    classes = list(train_ds.class_names)
    if task == "classify" and multi_label is None:
        multi_label = _has_multi_labels(train_ds)
    multi_label = bool(multi_label)

    if resume is None:
        spec = M.resolve(weights, local=weights_file)
        net = M.create(arch.name, len(classes), spec, multi_label=multi_label, **options) \
            if task == "classify" else M.create(arch.name, len(classes), spec, **options)
        hyper = {"epochs": epochs, "imgsz": imgsz, "batch": batch, "lr": lr, "weight_decay": weight_decay,
                 "seed": seed, "patience": patience, "time_budget": budget, "multi_label": multi_label,
                 "optimizer": "AdamW", "schedule": "warmup+cosine", "device": device, "split": "train", "zoom": zoom,
                 "zoom_off": zoom_off,
                 "valid_split": valid_split, "weights": spec.name, "config": net.config,
                 "ema": EMA if ema else None}
        info = registry.create(store, task=task, arch=arch.name, weights_init=spec.name,
                               version_id=train_ds.version_id, classes=classes, input_size=[imgsz, imgsz],
                               preprocessing=preprocessing(imgsz, imgsz, arch.resize), hyper=hyper, name=name)
    else:
        net = M.build(arch.name, info.hyper["config"])
    net.to(dev)
    folder = registry.checkpoint_dir(store, info)

    data = TrainSet(train_ds, width=imgsz, height=imgsz, resize=arch.resize, augment=True, seed=seed, task=task,
                    multi_label=multi_label, zoom=zoom)
    if task in ("segment", "semantic"):
        _check_masks(train_ds, task)
    if task == "classify" and not multi_label:
        unlabelled = sum(1 for i in range(len(train_ds)) if not any(
            a.label for a in train_ds.sample(i).annotations))
        if unlabelled:
            raise VisionLoopError(f"{unlabelled} train images of version {train_ds.version} have no class label",
                                  hint="classification needs one whole-image label per image")
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, generator=gen, collate_fn=collate,
                                         num_workers=workers, drop_last=len(data) > batch,
                                         persistent_workers=False)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * epochs
    warmup = min(100, max(1, total_steps // 10))
    decay, no_decay = [], []
    for n_, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or n_.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)

    averaged = _ema(net, dev) if ema else None
    history: list[dict[str, Any]] = []
    start_epoch, step, best, best_epoch, spent = 0, 0, -math.inf, 0, 0.0
    last = folder / "last.pt"
    if resume is not None and last.exists():
        ck = torch.load(last, map_location=dev, weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if averaged is not None and ck.get("ema") is not None:
            averaged.module.load_state_dict(ck["ema"])
        start_epoch, step, best, best_epoch = ck["epoch"], ck["step"], ck["best"], ck["best_epoch"]
        history, spent = ck["history"], ck.get("seconds", 0.0)
        torch.set_rng_state(ck["torch_rng"])
        gen.set_state(ck["loader_rng"])
        log.info("resuming %s at epoch %d", info.name, start_epoch + 1)

    def lr_at(progress_fraction: float, s: int) -> float:
        if s < warmup:
            return lr * (s + 1) / warmup
        f = min(1.0, max(0.0, progress_fraction))
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))

    t0 = time.perf_counter() - spent
    stopped = "epochs"
    reserve = 0.0  # seconds kept for the validation after a stop inside an epoch (the last one's duration)
    epoch = start_epoch
    csv_path = folder / "log.csv"
    out_of_time = False
    board = _board(folder)
    for epoch in range(start_epoch, epochs):
        data.epoch = epoch
        done = max(epoch / epochs, (time.perf_counter() - t0) / budget if budget else 0.0)
        if zoom and zoom_off and done >= 1.0 - zoom_off:
            data.stop_zoom()  # the last `zoom_off` of the schedule without scale jitter
        net.train()
        te = time.perf_counter()
        losses: list[float] = []
        for i, (images, targets) in enumerate(loader):
            elapsed = time.perf_counter() - t0
            frac = (step - warmup) / max(1, total_steps - warmup)
            if budget:
                frac = max(frac, elapsed / budget)
            for g in opt.param_groups:
                g["lr"] = lr_at(frac, step)
            x = images.to(dev, non_blocking=True).float()
            if task in BOX_TASKS:
                tg = [{k: t[k].to(dev) for k in ("boxes", "labels", "masks") if k in t} for t in targets]
                parts = net.loss(x, tg)
                loss = sum(parts.values())
            else:
                loss = net.loss(x, targets.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            step += 1
            if averaged is not None:
                averaged.update(net, step=step)
            losses.append(float(loss.detach()))
            if board is not None:
                board.add_scalar("train/loss", losses[-1], step)
                board.add_scalar("train/lr", opt.param_groups[0]["lr"], step)
            if progress is not None:
                done = (epoch - start_epoch) * steps_per_epoch + i + 1
                rate = (time.perf_counter() - t0 - spent) / done
                eta = rate * (total_steps - step)
                if budget:
                    eta = min(eta, max(0.0, budget - (time.perf_counter() - t0)))
                progress(Progress(epoch + 1, epochs, i + 1, steps_per_epoch, float(np.mean(losses[-20:])), eta))
            if max_steps is not None and step >= max_steps:
                break
            if budget is not None and time.perf_counter() - t0 + reserve >= budget:
                out_of_time = True  # stop inside the epoch: the budget holds for one long epoch too
                break
        train_s = time.perf_counter() - te
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 6) if losses else None,
                               "lr": opt.param_groups[0]["lr"], "train_s": round(train_s, 3), "steps": len(losses)}
        scored = averaged.module if averaged is not None else net  # what is validated, kept and exported
        if valid_split is not None:
            tv = time.perf_counter()
            row.update(evaluate(scored, store, version, valid_split, task=task, imgsz=imgsz, resize=arch.resize,
                                device=dev, multi_label=multi_label, batch=batch))
            row["valid_s"] = round(time.perf_counter() - tv, 3)
            reserve = row["valid_s"]  # the next stop leaves time for one more validation
        history.append(row)
        score = _score(row, task)
        if score > best:
            best, best_epoch = score, epoch + 1
            torch.save(scored.state_dict(), folder / "best.pt")
        _csv(csv_path, row)
        if board is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k not in ("epoch", "steps"):
                    board.add_scalar(f"epoch/{k}", v, epoch + 1)
            board.flush()
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1, "step": step,
                    "ema": averaged.module.state_dict() if averaged is not None else None,
                    "best": best, "best_epoch": best_epoch, "history": history,
                    "seconds": time.perf_counter() - t0, "torch_rng": torch.get_rng_state(),
                    "loader_rng": gen.get_state()}, last)
        registry.update(store, info.id, history=history)
        if progress is not None:
            progress(Progress(epoch + 1, epochs, steps_per_epoch, steps_per_epoch, row["loss"] or 0.0, None,
                              phase="epoch", metrics=row))
        if max_steps is not None and step >= max_steps:
            stopped = "steps"
            break
        if out_of_time:
            stopped = "time"
            break
        if patience is not None and epoch + 1 - best_epoch >= patience:
            stopped = "early-stop"
            break
        if budget is not None:
            per_epoch = (time.perf_counter() - t0) / (epoch + 1 - start_epoch + (spent > 0))
            if time.perf_counter() - t0 + per_epoch > budget:
                stopped = "time"
                break
    seconds = time.perf_counter() - t0
    if board is not None:
        board.close()
    if averaged is not None:
        net.load_state_dict(averaged.module.state_dict())  # without a validation split, the last average is kept
    if (folder / "best.pt").exists():
        net.load_state_dict(torch.load(folder / "best.pt", map_location=dev, weights_only=True))
    best_row = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {})
    metrics = {k: v for k, v in best_row.items() if k not in ("lr", "train_s", "valid_s", "steps")}
    metrics.update({"best_epoch": best_epoch, "epochs_run": len(history), "seconds": round(seconds, 2),
                    "stopped": stopped})
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
    info = registry.finish(store, info.id, weights=buf.getvalue(), metrics=metrics, history=history)
    if export:
        from visionloop.train.export import export_model

        export_model(store, info.name, net=net.cpu())
        info = registry.get(store, info.id)
    return TrainResult(info, metrics, len(history), seconds, stopped, history)


EMA = {"decay": 0.9998, "warmup_power": 0.75}


def _ema(net: torch.nn.Module, device: torch.device) -> Any:
    """An exponential moving average of the weights (timm's ModelEmaV3), the model that is validated and kept.

    The decay warms up as 1 - (1 + step)^-3/4 (timm's setting for short runs): 0.97 after 100 steps, 0.99
    after 500, so a 20-epoch run on a few hundred images averages over its last few epochs, not its first."""
    from timm.utils import ModelEmaV3

    return ModelEmaV3(net, decay=EMA["decay"], use_warmup=True, warmup_power=EMA["warmup_power"], device=device)


def _board(folder: Path) -> Any:
    """A TensorBoard event writer in the checkpoint folder (`tensorboard --logdir <folder>/tensorboard`)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # pragma: no cover - a dependency; the CSV log stays
        log.warning("tensorboardX is not installed: no TensorBoard log (log.csv is written)")
        return None
    return SummaryWriter(str(folder / "tensorboard"), flush_secs=30)


def _has_multi_labels(ds: VersionDataset) -> bool:
    from visionloop.core.geometry import Label

    for i in range(len(ds)):
        if sum(isinstance(a.geometry, Label) for a in ds.sample(i).annotations) > 1:
            return True
    return False


def _warn_polylines(train_ds: VersionDataset, valid_ds: VersionDataset | None, task: str) -> int:
    """One warning line counting the polylines training leaves out (the targets hold objects; a line is none)."""
    n_train = train_ds.polylines()
    n_valid = valid_ds.polylines() if valid_ds is not None else 0
    if n_train or n_valid:
        where = f"{n_train} in train" + (f", {n_valid} in {valid_ds.split}" if valid_ds is not None else "")
        log.warning("%d polylines of version %s are left out (%s): a %s model learns objects, not lines",
                    n_train + n_valid, train_ds.version, where, task)
    return n_train + n_valid


def _check_masks(ds: VersionDataset, task: str) -> None:
    """Segmentation learns from polygons and masks; boxes alone would teach rectangles. Refuse a split without
    any, and say how many objects have only a box (they train as filled rectangles)."""
    from visionloop.core.geometry import Caption, Label, Mask, Polygon, Polyline

    shaped = boxes_only = 0
    for i in range(len(ds)):
        for a in ds.sample(i).annotations:
            if isinstance(a.geometry, Mask | Polygon):
                shaped += 1
            elif not isinstance(a.geometry, Label | Caption | Polyline):
                boxes_only += 1
    if not shaped:
        raise VisionLoopError(f"the train split of version {ds.version} has no polygons or masks "
                              f"({boxes_only} objects have only a box)",
                              hint=f"--task {task} needs segmentation annotations; train --task detect on boxes")
    if boxes_only:
        log.warning("%d of %d train objects of version %s have no polygon or mask: they train as filled boxes",
                    boxes_only, boxes_only + shaped, ds.version)


def _score(row: dict[str, Any], task: str) -> float:
    fallback = -row["loss"] if row.get("loss") is not None else 0.0
    if task == "detect":
        return float(row.get("map", fallback))
    if task == "segment":
        return float(row.get("mask_map", fallback))
    if task == "semantic":
        return float(row.get("miou", fallback))
    return float(row.get("accuracy", row.get("map_labels", -(row.get("loss") or 0.0))))


def _csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


@torch.no_grad()
def predict_batches(net: Any, store: Store, version: str | int, split: str, *, task: str, imgsz: int, resize: str,
                    device: torch.device, multi_label: bool = False, batch: int = 8) -> tuple[list[Any], list[Any]]:
    """Raw torch outputs on a split (preprocessed as for training, without augmentation) and the targets."""
    ds = TrainSet(VersionDataset(store, version, split), width=imgsz, height=imgsz, resize=resize, augment=False,
                  seed=0, task=task, multi_label=multi_label)
    net.eval()
    outs, targets = [], []
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False, collate_fn=collate,
                                         num_workers=0)
    for images, tg in loader:
        x = images.to(device).float()
        if task == "detect":
            boxes, scores = net.predict_raw(x)
            outs += [(b.cpu().numpy(), s.cpu().numpy()) for b, s in zip(boxes, scores, strict=True)]
            targets += tg
        elif task == "segment":
            raw = [r.cpu().numpy() for r in net.predict_raw(x)]
            outs += list(zip(*raw, strict=True))
            targets += tg
        elif task == "semantic":
            outs += list(net.probabilities(x).argmax(1).cpu().numpy().astype(np.uint8))
            targets += list(tg.numpy())
        else:
            outs.append(net.probabilities(x).cpu().numpy())
            targets.append(tg.numpy())
    return outs, targets


def evaluate(net: Any, store: Store, version: str | int, split: str, *, task: str, imgsz: int, resize: str,
             device: torch.device, multi_label: bool = False, batch: int = 8) -> dict[str, Any]:
    outs, targets = predict_batches(net, store, version, split, task=task, imgsz=imgsz, resize=resize,
                                    device=device, multi_label=multi_label, batch=batch)
    if task in ("detect", "segment"):
        dets = detections(outs, targets, task=task, imgsz=imgsz)
        return detection_metrics(dets, targets, num_classes=net.num_classes, masks=task == "segment")
    if task == "semantic":
        return semantic_metrics(outs, targets, num_classes=net.num_classes)
    return classification_metrics(np.concatenate(outs), np.concatenate(targets), multi_label=multi_label)


def detections(outs: list[Any], targets: list[Any], *, task: str, imgsz: int) -> list[tuple[np.ndarray, ...]]:
    """A detector's raw outputs (`predict_batches`) as the deployed model makes them (`infer.Predictor`):
    threshold and NMS, then boxes clipped to the image (not the letterbox bars), masks cut to those boxes —
    in the model's input pixels: (boxes, scores, labels[, masks]) per image."""
    from visionloop.infer.post import select

    eye = np.eye(3)
    dets: list[tuple[np.ndarray, ...]] = []
    for out, t in zip(outs, targets, strict=True):
        index, scores, labels = select(out[0], out[1])
        boxes = _clip(out[0][index].reshape(-1, 4), t["content"])
        if task == "segment":
            from visionloop.infer.masks import instance_masks

            dets.append((boxes, scores, labels, instance_masks(out[2][index], out[3], boxes, eye, imgsz, imgsz)))
        else:
            dets.append((boxes, scores, labels))
    return dets


def _clip(boxes: np.ndarray, content: tuple[float, float, float, float]) -> np.ndarray:
    """Boxes (A, 4) in the model's input clipped to the image's rectangle in it (`TrainSet.content`): what
    `infer.post.unletterbox` does to the deployed model's boxes, so both measure the same detections."""
    x0, y0, x1, y1 = content
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    out[:, [0, 2]] = out[:, [0, 2]].clip(x0, x1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(y0, y1)
    return out
