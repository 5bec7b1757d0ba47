"""visionloop train: a dataset version in, a registered and exported model out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt

#: the validation metrics shown per epoch and at the end, per task (those present)
SCORES = [("map50", "mAP50"), ("map", "mAP50-95"), ("mask_map50", "mask mAP50"), ("mask_map", "mask mAP50-95"),
          ("miou", "mIoU"), ("accuracy", "accuracy")]


def train(
    version: Annotated[str, typer.Option("--dataset-version", "-d", help="Dataset version (name, id or latest).")] = "latest",
    task: Annotated[str, typer.Option(help="detect | segment (instance masks) | semantic | classify")] = "detect",
    model: Annotated[str | None, typer.Option("--model", help="Architecture (fcos_lite0, fcos_seg_lite0, lraspp_lite0, cls_lite0); default: the task's.")] = None,
    weights: Annotated[str | None, typer.Option(
        help="Pretrained weights: efficientnet_lite0.imagenet (offline default), random, a hub name, or a PATH.")
    ] = None,
    weights_file: Annotated[Path | None, typer.Option(
        help="A local file standing in for the hub download of --weights NAME.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 10; 300 with --time).")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Square input size (multiple of 32).")] = None,
    time_budget: Annotated[str | None, typer.Option("--time", help="Stop within this time: 10m, 90s, 1h.")] = None,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same metrics on CPU.")] = 0,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    patience: Annotated[int | None, typer.Option(help="Early stop after this many epochs without gain.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default m<n>).")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume the unfinished training of this model.")] = None,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Validate, keep and export the moving average of the weights (smoother, not better on raccoon).")] = False,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Train a detector or classifier on a version, register it and export it to ONNX."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from visionloop.store import Store
    from visionloop.train import train as run

    with Store.open(project) as store, Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("ETA {task.fields[eta]}"), TimeRemainingColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as bar:
        task_id = bar.add_task("train", total=None, epoch="", loss=0.0, eta="")

        def show(p) -> None:  # noqa: ANN001
            if p.phase == "epoch":
                m = p.metrics
                score = "  ".join(f"{label} {m[k]:.3f}" for k, label in SCORES if isinstance(m.get(k), int | float))
                bar.console.print(f"epoch {p.epoch}/{p.epochs}  loss {m['loss']:.3f}  {score}  "
                                  f"({m['train_s']:.0f}s)", highlight=False)
                return
            eta = f"{int(p.eta_s) // 60}m{int(p.eta_s) % 60:02d}s" if p.eta_s is not None else ""
            bar.update(task_id, total=p.steps, completed=p.step, epoch=f"{p.epoch}/{p.epochs}", loss=p.loss, eta=eta)

        result = run(store, version, task=task, model=model, weights=weights, weights_file=weights_file,
                     epochs=epochs, imgsz=imgsz, time_budget=time_budget, batch=batch, lr=lr, seed=seed,
                     device=device, workers=workers, patience=patience, name=name, resume=resume, ema=ema, progress=show)
    if as_json:
        print_json(result.to_json())
        return
    m = result.model
    score = ", ".join(f"{label} {result.metrics[k]:.3f}" for k, label in SCORES
                      if isinstance(result.metrics.get(k), int | float))
    console.print(f"Trained model [bold]{m.name}[/] ({m.task}, {m.arch}) on version {m.version}: {score} "
                  f"after {result.epochs} epochs in {result.seconds:.0f}s (stopped: {result.stopped})",
                  soft_wrap=True, highlight=False)
