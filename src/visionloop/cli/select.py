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
    budget: Annotated[int | None, typer.Option("--budget", "-n", help="How many images to pick.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model name, id or `latest` (its ONNX "
                                                                          "export scores the images); repeat for a "
                                                                          "committee (disagreement, vote-entropy, "
                                                                          "bald).")] = None,
    strategy: Annotated[str, typer.Option(help="random | least-confidence | margin | entropy | k-center | hybrid "
                                               "| like | disagreement | vote-entropy | bald (the last three: "
                                               "several --model)")] = "entropy",
    aggregate: Annotated[str, typer.Option(help="A detector's per-box (or per-object, for a committee) "
                                                "uncertainties per image: max | mean | sum.")]
    = "max",
    source: Annotated[str, typer.Option("--from", help="unlabelled (images nobody labelled) | all | predictions "
                                                       "(images the server logged: picked ones are imported)")]
    = "unlabelled",
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
    since: Annotated[str | None, typer.Option(help="With --from predictions: logged from this time (ISO, or an age: "
                                                   "30m, 6h, 7d; UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="With --from predictions: logged before this time.")] = None,
    class_name: Annotated[str | None, typer.Option("--class", help="Images with a logged prediction (--from "
                                                                   "predictions) or a human annotation (--from "
                                                                   "all) of this class.")] = None,
    budget_boxes: Annotated[int | None, typer.Option(help="With --from predictions: stop before the pick would hold "
                                                          "more predicted boxes than this.")] = None,
    split: Annotated[str | None, typer.Option(help="Only images of this split.")] = None,
    has_tag: Annotated[list[str] | None, typer.Option("--has-tag", help="Only images with this tag (repeat: all "
                                                                        "of them).")] = None,
    not_tag: Annotated[list[str] | None, typer.Option("--not-tag", help="Leave out images with this tag, e.g. an "
                                                                        "earlier pick's (repeat for several).")]
    = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Only images whose metadata has KEY=VALUE "
                                                                  "(repeat: all of them).")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Pick what to label next and save the pick as a tag on those images (one batch: `visionloop undo` takes it
    back). --json prints {model, strategy, aggregate, from, candidates, budget, tag, batch_id, picked: [...]}."""
    from visionloop.loop.select import select_images
    from visionloop.store import Store

    models = list(model or [])
    if source == "predictions":
        if split or has_tag or not_tag or meta:
            raise typer.BadParameter("--split, --has-tag, --not-tag and --meta filter project images; logged "
                                     "predictions filter by --since, --until and --class", param_hint="--from")
        if len(models) > 1:
            raise typer.BadParameter("--from predictions takes one --model", param_hint="--model")
        _from_predictions(project, models[0] if models else None, budget=budget, budget_boxes=budget_boxes,
                          strategy=strategy, aggregate=aggregate, since=since, until=until, class_name=class_name,
                          tag=tag, conf=conf, seed=seed, dry_run=dry_run, as_json=as_json)
        return
    if budget is None:
        raise typer.BadParameter("--budget is required", param_hint="--budget")
    if since or until or budget_boxes is not None:
        raise typer.BadParameter("--since, --until and --budget-boxes take --from predictions", param_hint="--from")
    pairs = {}
    for item in meta or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        pairs[key] = value

    if like_errors is not None or (like and strategy == "entropy"):
        strategy = "like"  # --like / --like-errors name targets: nothing else uses them
    with Store.open(project) as store:
        def default_embedder() -> str:
            from visionloop.store.models import blob_file
            from visionloop.train.concepts import default_embedder as make

            return blob_file(store, make(store)[1])

        which = models if len(models) > 1 else (models[0] if models else None)
        result = select_images(store, which, budget=budget, strategy=strategy, aggregate=aggregate, source=source,
                               tag=tag, conf=conf, embedder=embedder if embedder is not None else default_embedder,
                               like=list(like or []), like_errors=like_errors, seed=seed, save=not dry_run,
                               split=split, has_tags=list(has_tag or []), not_tags=list(not_tag or []),
                               class_name=class_name, meta=pairs or None)
    data = render_json_or(result, as_json)
    if data is None:
        return
    table = Table("#", "image", "file", "split", "score")
    for k, p in enumerate(result.picked, 1):
        table.add_row(str(k), str(p.image_id), p.file_name, p.split or "", "" if p.score is None else f"{p.score:.4f}")
    console.print(table)
    how = result.strategy + (f" ({result.aggregate})" if result.aggregate else "")
    if result.members:
        how += " between " + ", ".join(result.members)
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


def _from_predictions(project: Path, model: str | None, *, budget: int | None, budget_boxes: int | None,
                      strategy: str, aggregate: str, since: str | None, until: str | None, class_name: str | None,
                      tag: str | None, conf: float, seed: int, dry_run: bool, as_json: bool) -> None:
    """`select --from predictions`: the logged images, scored from the log, the picked ones imported and tagged."""
    from visionloop.cli.predictions import when
    from visionloop.ingest import import_samples
    from visionloop.loop.from_log import select_from_log
    from visionloop.store import Store

    if model is None:
        raise typer.BadParameter("--from predictions needs the model that scores the images", param_hint="--model")
    with Store.open(project) as store:
        result = select_from_log(store, model, budget=budget, budget_boxes=budget_boxes, strategy=strategy,
                                 aggregate=aggregate, since=when(since), until=when(until), class_name=class_name,
                                 tag=tag, conf=conf, seed=seed, importer=import_samples, save=not dry_run)
    data = render_json_or(result, as_json)
    if data is None:
        return
    table = Table("#", "log id", "image", "file", "boxes", "scored from", "score")
    for k, p in enumerate(result.picked, 1):
        table.add_row(str(k), str(p.log_id), "" if p.image_id is None else str(p.image_id), p.file_name,
                      str(p.boxes), p.scored_from, "" if p.score is None else f"{p.score:.4f}")
    console.print(table)
    how = result.strategy + (f" ({result.aggregate})" if result.aggregate else "")
    line = (f"picked {len(result.picked)} of {result.candidates} logged images ({result.logged} rows; "
            f"{result.in_project} already in the project) by {how} under {result.model}, {result.boxes} boxes; "
            f"{result.rescored} scored by running the model, the rest from the logged predictions")
    if result.batch_id is not None:
        line += (f"; imported with their pre-labels and tagged {result.tag!r} in batch {result.batch_id} "
                 f"(`visionloop label send --tag {result.tag}` sends them; `visionloop undo {result.batch_id}` "
                 "removes them)")
    err_console.print(line, soft_wrap=True)
