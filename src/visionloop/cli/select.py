"""`visionloop select`: pick the images to label next (uncertainty, diversity, similarity) and tag them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import render_json_or


def select(
    budget: Annotated[int, typer.Option("--budget", "-n", help="How many images to pick.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name, id or `latest` (its ONNX export "
                                                                    "scores the images).")] = None,
    strategy: Annotated[str, typer.Option(help="random | least-confidence | margin | entropy | k-center | hybrid "
                                               "| like")] = "entropy",
    aggregate: Annotated[str, typer.Option(help="A detector's per-box uncertainties per image: max | mean | sum.")]
    = "max",
    source: Annotated[str, typer.Option("--from", help="unlabelled (images nobody labelled) | all")] = "unlabelled",
    tag: Annotated[str | None, typer.Option(help="Tag the picked images with this (default: select-<batch id>).")]
    = None,
    like: Annotated[list[str] | None, typer.Option(help="With --strategy like: a target image (id or file name); "
                                                        "repeat for several.")] = None,
    like_errors: Annotated[int | None, typer.Option(
        "--like-errors", help="The images of this evaluation's error events are targets (implies --strategy like; "
                              "`visionloop evaluate` prints the id).")] = None,
    embedder: Annotated[Path | None, typer.Option(
        help="ONNX embedder for k-center, hybrid and like; default: ImageNet EfficientNet-Lite0 (exported from "
             "torch on first use).")] = None,
    conf: Annotated[float, typer.Option(help="A detector's score floor for the boxes measured.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of random and hybrid.")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pick and print, tag nothing.")] = False,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Pick what to label next and save the pick as a tag on those images (one batch: `visionloop undo` takes it
    back). --json prints {model, strategy, aggregate, from, candidates, budget, tag, batch_id, picked: [...]}."""
    from visionloop.loop.select import select_images
    from visionloop.store import Store

    if like_errors is not None or (like and strategy == "entropy"):
        strategy = "like"  # --like / --like-errors name targets: nothing else uses them
    with Store.open(project) as store:
        def default_embedder() -> str:
            from visionloop.store.models import blob_file
            from visionloop.train.concepts import default_embedder as make

            return blob_file(store, make(store)[1])

        result = select_images(store, model, budget=budget, strategy=strategy, aggregate=aggregate, source=source,
                               tag=tag, conf=conf, embedder=embedder if embedder is not None else default_embedder,
                               like=list(like or []), like_errors=like_errors, seed=seed, save=not dry_run)
    data = render_json_or(result, as_json)
    if data is None:
        return
    table = Table("#", "image", "file", "split", "score")
    for k, p in enumerate(result.picked, 1):
        table.add_row(str(k), str(p.image_id), p.file_name, p.split or "", "" if p.score is None else f"{p.score:.4f}")
    console.print(table)
    how = result.strategy + (f" ({result.aggregate})" if result.aggregate else "")
    line = f"picked {len(result.picked)} of {result.candidates} {source} images by {how}"
    if result.batch_id is not None:
        line += f"; tagged {result.tag!r} in batch {result.batch_id} (`visionloop undo {result.batch_id}` removes it)"
    elif not dry_run:
        line += f"; every one already had tag {result.tag!r}"
    err_console.print(line, soft_wrap=True)
    if result.ties:
        last = result.picked[-1].score or 0.0
        err_console.print(f"warning: {result.ties} more images score within 1e-4 of the last one picked ({last:.4f}), "
                          "so the cut fell among near-equals"
                          + ("; per-box max saturates at the most uncertain box: try --aggregate mean or sum"
                             if result.aggregate == "max" else ""), soft_wrap=True)
