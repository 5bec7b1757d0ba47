"""What PyTorch Lightning would cost visionloop's training on this CPU: the same detector, data and optimiser
stepped by visionloop's lean loop and by Lightning's `Trainer`, in one run, taking turns.

    .venv/bin/python bench/lightning_overhead.py [--steps 40] [--rounds 3] [--imgsz 320] [--batch 8]

Both arms run `fcos_lite0` (the default detector, offline ImageNet backbone) on the raccoon train images
(../shared/datasets/raccoon, imported into a temporary project and versioned), through the same `TrainSet`
(augmentation on) and `DataLoader` (batch 8, seeded), with AdamW, gradient clipping at 10 and the same
learning rate. Only the driver differs:

- lean: visionloop's step — zero_grad, loss.backward(), clip_grad_norm_, opt.step() (as train/loop.py);
- lightning: a `LightningModule` whose `training_step` returns the same loss, `Trainer(max_steps=N,
  accelerator="cpu", gradient_clip_val=10, logger=False, enable_checkpointing=False,
  enable_progress_bar=False, enable_model_summary=False)` — Lightning at its leanest.

Each round builds a fresh model and loader for each arm (order alternates between rounds) and times N steps
after 3 warm-up steps. Printed: seconds per step (median over rounds) and Lightning's overhead in % and ms.

Lightning is not a dependency of visionloop: this script installs `lightning` and `lightning-utilities`
(without dependencies: torch is the project's) into bench/.cache/lightning once and imports it from there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "bench" / ".cache" / "lightning"
PACKAGES = ["lightning==2.6.6", "lightning-utilities", "torchmetrics"]


def lightning_module():
    marker = TARGET / ".installed"
    if not (marker.exists() and marker.read_text().split() == PACKAGES):
        print(f"installing {' '.join(PACKAGES)} into {TARGET.relative_to(ROOT)} (no dependencies) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--target", str(TARGET), *PACKAGES], check=True)
        marker.write_text("\n".join(PACKAGES) + "\n")
    sys.path.insert(0, str(TARGET))
    import lightning

    return lightning


def setup(work: Path):
    sys.path.insert(0, str(ROOT / "bench"))
    import train as bench_train

    data = bench_train.datasets() / "raccoon"
    store, info = bench_train.make_project(work, data)
    return store, info.name


def parts(store, version: str, imgsz: int, batch: int, seed: int):
    import torch

    from visionloop import models as M
    from visionloop.train.data import TrainSet, collate
    from visionloop.versions import VersionDataset

    torch.manual_seed(seed)
    ds = VersionDataset(store, version, "train")
    arch = M.arch_for("detect", None)
    net = M.create(arch.name, len(ds.class_names), M.resolve("default"))
    data = TrainSet(ds, width=imgsz, height=imgsz, resize=arch.resize, augment=True, seed=seed, task="detect",
                    zoom=25.0)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, collate_fn=collate, num_workers=0,
                                         generator=torch.Generator().manual_seed(seed), drop_last=True)
    return net, loader


def _optimizer(net, lr: float = 1e-3):
    import torch

    return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)


def lean(net, loader, steps: int, warm: int) -> float:
    import torch

    opt = _optimizer(net)
    net.train()
    done, t = 0, 0.0
    while done < steps + warm:
        for images, targets in loader:
            if done == warm:
                t = time.perf_counter()
            x = images.float()
            tg = [{k: v[k] for k in ("boxes", "labels") if k in v} for v in targets]
            loss = sum(net.loss(x, tg).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            done += 1
            if done == steps + warm:
                break
    return (time.perf_counter() - t) / steps


def lit(L, net, loader, steps: int, warm: int) -> float:
    class Module(L.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.t = 0.0
            self.seen = 0

        def training_step(self, batch, batch_idx):
            if self.seen == warm:
                self.t = time.perf_counter()
            self.seen += 1
            images, targets = batch
            tg = [{k: v[k] for k in ("boxes", "labels") if k in v} for v in targets]
            return sum(self.net.loss(images.float(), tg).values())

        def configure_optimizers(self):
            return _optimizer(self.net)

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            return batch  # CPU: nothing to move (the targets are a list of dicts Lightning would walk)

    module = Module(net)
    trainer = L.Trainer(max_steps=steps + warm, accelerator="cpu", devices=1, gradient_clip_val=10.0,
                        gradient_clip_algorithm="norm", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader)
    return (time.perf_counter() - module.t) / steps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    import logging

    import torch

    L = lightning_module()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores; {args.steps} steps (+{args.warm} warm-up) per arm per round, batch "
          f"{args.batch}, {args.imgsz} px", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        store, version = setup(Path(tmp))
        times: dict[str, list[float]] = {"lean": [], "lightning": []}
        for r in range(args.rounds):
            order = ["lean", "lightning"] if r % 2 == 0 else ["lightning", "lean"]
            for arm in order:
                net, loader = parts(store, version, args.imgsz, args.batch, seed=r)
                s = lean(net, loader, args.steps, args.warm) if arm == "lean" else \
                    lit(L, net, loader, args.steps, args.warm)
                times[arm].append(s)
                print(f"  round {r + 1} {arm:9s} {s * 1000:7.1f} ms/step", flush=True)
    a, b = statistics.median(times["lean"]), statistics.median(times["lightning"])
    print()
    print("| driver | ms per step (median of rounds) | rounds |")
    print("|---|---|---|")
    for arm, v in (("visionloop lean loop", a), ("Lightning Trainer", b)):
        key = "lean" if arm.startswith("visionloop") else "lightning"
        print(f"| {arm} | {v * 1000:.1f} | {', '.join(f'{x * 1000:.0f}' for x in times[key])} |")
    print(f"\nLightning overhead: {(b - a) * 1000:+.1f} ms per step ({(b / a - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
