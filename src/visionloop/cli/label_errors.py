"""`visionloop label-errors`: rank the project's labelled images by how likely their labels are wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import render_json_or


def label_errors(
    model: Annotated[str | None, typer.Argument(help="A detector of the project (name, id or `latest`); with "
                                                     "--folds, whose version's recipe the fold models use.",
                                                show_default=False)] = None,
    version: Annotated[str | None, typer.Option("--version", help="The version whose held-out split is scored "
                                                "(default: the one MODEL was trained on).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="The held-out split to score (default valid, else "
                                              "test); train is refused without --folds.")] = None,
    folds: Annotated[int | None, typer.Option("--folds", min=2, help="Score every labelled image: train K models, "
                                              "each on the other K-1 folds, and let each predict its fold. "
                                              "Expensive: K full trainings (see --time); it adds K fold tags, K "
                                              "versions and K models to the project.")] = None,
    time_budget: Annotated[str | None, typer.Option("--time", help="With --folds: each fold model trains this "
                                                    "long (10m, 90s); default: train's default epochs.")] = None,
    epochs: Annotated[int | None, typer.Option(help="With --folds: epochs of each fold model.")] = None,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="Report (and tag) the N worst images.")] = 20,
    tag: Annotated[str | None, typer.Option(help="Tag the reported images with this (one batch; `visionloop "
                                               "undo` takes it off), for the relabelling round trip.")] = None,
    show: Annotated[Path | None, typer.Option("--show", help="Draw each reported image's worst findings into this "
                                              "folder (PNG; annotation green, model's suggestion red).")] = None,
    whole: Annotated[bool, typer.Option("--whole", help="With --show: whole images, not crops.")] = False,
    conf: Annotated[float, typer.Option(min=0.0, max=1.0, help="Score floor of the predictions.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the folds.")] = 0,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Find label errors (missing, misplaced, swapped and spurious boxes) with a detector's out-of-sample
    predictions: MODEL on its version's held-out split, or K fold models on everything (--folds K). --json
    prints {model, version, split, folds, scored, top, tag, batch_id, kinds, images: [{findings: [...]}]}."""
    from visionloop.loop.label_errors import draw, find_label_errors
    from visionloop.store import Store

    if folds is None and model is None:
        raise typer.BadParameter("give a MODEL, or --folds K to train fold models")
    with Store.open(project) as store:
        def train_fold(fold_version: str, k: int) -> str:
            from visionloop.store import models as registry
            from visionloop.train import train

            base = registry.get(store, model) if model is not None else None
            like = {h: base.hyper[h] for h in ("imgsz", "batch", "lr") if base and h in base.hyper}
            err_console.print(f"fold {k + 1}/{folds}: training on version {fold_version} ...")
            return train(store, fold_version, task="detect", model=base.arch if base else None,
                         time_budget=time_budget, epochs=epochs, seed=seed, **like).model.name

        result = find_label_errors(store, model, version=version, split=split, folds=folds, train_fold=train_fold,
                                   conf=conf, top=top, tag=tag, save=tag is not None, seed=seed)
        drawn = draw(store, result, show, crop=not whole) if show is not None else []
    data = render_json_or(result, as_json)
    if data is None:
        return
    table = Table("#", "image", "file", "score", "kind", "annotation", "label", "fix", title=(
        f"Label errors by {result.model}" + (f" on version {result.version} ({result.split})" if result.version else
                                             f" ({result.folds} folds)")))
    for k, im in enumerate(result.reported, 1):
        f = im.findings[0] if im.findings else None
        table.add_row(str(k), str(im.image_id), im.file_name, f"{im.score:.3f}", f.kind if f else "",
                      "" if f is None or f.annotation_id is None else str(f.annotation_id),
                      (f.label or "") if f else "", f.fix if f else "")
    console.print(table)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(result.counts().items()))
    line = f"scored {len(result.images)} images; the {result.top} worst: {kinds or 'no findings'}"
    if result.batch_id is not None:
        line += f"; tagged {result.tag!r} in batch {result.batch_id} (`visionloop undo {result.batch_id}` removes it)"
    elif tag is not None:
        line += f"; every one already had tag {result.tag!r}"
    err_console.print(line, soft_wrap=True)
    if show is not None:
        err_console.print(f"Wrote {len(drawn)} images to {show}")
