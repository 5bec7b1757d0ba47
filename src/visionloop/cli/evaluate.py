"""visionloop evaluate / errors: parse, call the evaluate stage, render (rich tables on stdout, or --json).

    visionloop evaluate --predictions results.json --ground-truth instances.json   # plain files, no project
    visionloop evaluate MODEL [--dataset-version V] [--split valid]                  # a model of the project
    visionloop evaluate --predictions results.json --dataset-version V               # a model trained elsewhere
    visionloop evaluate --compare M1 M2 --dataset-version V                          # side by side
    visionloop errors MODEL [--type missed] [--class C] [--show DIR]                 # the stored error events
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt

MAX_CLASS_ROWS = 50
MAX_CONFUSION_CLASSES = 12
MAX_EVENT_ROWS = 50
ERROR_TYPES = ("missed", "background", "localization", "classification", "both", "duplicate")


def evaluate(
    model: Annotated[str | None, typer.Argument(help="A model of the project (name, id or `latest`).",
                                                show_default=False)] = None,
    predictions: Annotated[Path | None, typer.Option("--predictions", help="COCO results JSON (a list of "
                                                     "{image_id, category_id, bbox|segmentation, score}).")] = None,
    ground_truth: Annotated[Path | None, typer.Option("--ground-truth", help="COCO instances JSON the "
                                                      "predictions refer to.")] = None,
    dataset_version: Annotated[str | None, typer.Option("--dataset-version", help="Evaluate on this version of "
                                                        "the project (default for MODEL: the one it was "
                                                        "trained on).")] = None,
    split: Annotated[str, typer.Option("--split", help="The version's split to evaluate on.")] = "valid",
    compare: Annotated[list[str] | None, typer.Option("--compare", help="Two models to compare: --compare M1 "
                                                      "--compare M2, or MODEL --compare M2.")] = None,
    iou_type: Annotated[str | None, typer.Option("--iou-type", help="bbox or segm (default: segm when the "
                                                 "predictions carry masks).")] = None,
    iou: Annotated[float, typer.Option("--iou", min=0.05, max=0.95, help="IoU threshold of the confusion matrix "
                                       "and the error breakdown.")] = 0.5,
    conf: Annotated[float, typer.Option("--conf", min=0.0, max=1.0, help="Score threshold of the confusion "
                                        "matrix.")] = 0.25,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write pr_curve.png and confusion_matrix.png "
                                               "into this folder.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Evaluate detections or instance masks: COCO mAP (equal to pycocotools), per-class AP/AR, confusion
    matrix, TIDE error breakdown; --json adds every false positive and false negative. A model's evaluation
    and its error events are stored (see `visionloop errors`)."""
    from visionloop.evaluate import IouType, evaluate_detections

    if iou_type is not None and iou_type not in {t.value for t in IouType}:
        raise typer.BadParameter(f"--iou-type must be bbox or segm, not {iou_type!r}")
    if compare:
        names = ([model] if model else []) + list(compare)
        if len(names) != 2:
            raise typer.BadParameter("compare two models: --compare M1 --compare M2 (or MODEL --compare M2)")
        if dataset_version is None:
            raise typer.BadParameter("--compare needs --dataset-version V")
        _compare(project, names[0], names[1], dataset_version, split, iou=iou, conf=conf, as_json=as_json)
        return
    if model is not None:
        if predictions is not None or ground_truth is not None:
            raise typer.BadParameter("give a MODEL or --predictions, not both")
        _evaluate_model(project, model, dataset_version, split, iou=iou, conf=conf, plots=plots, as_json=as_json)
        return
    if predictions is None:
        raise typer.BadParameter("give a MODEL, or --predictions with --ground-truth or --dataset-version")
    if ground_truth is not None and dataset_version is not None:
        raise typer.BadParameter("give --ground-truth or --dataset-version, not both")
    if ground_truth is None and dataset_version is None:
        raise typer.BadParameter("give --ground-truth (a COCO JSON file) or --dataset-version (a version of the "
                                 "project) with --predictions")
    if dataset_version is not None:
        from visionloop.evaluate.model import evaluate_predictions
        from visionloop.store import Store

        with Store.open(project) as store:
            result = evaluate_predictions(store, predictions, dataset_version, split, iou_type=iou_type,
                                          iou_threshold=iou, score_threshold=conf, plots=plots)
    else:
        result = evaluate_detections(ground_truth, predictions, iou_type=iou_type,  # type: ignore[arg-type]
                                     iou_threshold=iou, score_threshold=conf, plots=plots)
    if as_json:
        print_json(result.to_json())
        return
    render(result)
    for path in result.plots:
        err_console.print(f"Wrote {path}")


def _evaluate_model(project: Path, model: str, version: str | None, split: str, *, iou: float, conf: float,
                    plots: Path | None, as_json: bool) -> None:
    from visionloop.evaluate.model import evaluate_model
    from visionloop.store import Store

    with Store.open(project) as store:
        result = evaluate_model(store, model, version, split, iou_threshold=iou, score_threshold=conf, plots=plots)
    if as_json:
        print_json(result.to_json())
        return
    console.print(f"Model {result.model} on version {result.version} ({result.split}, {result.images} images, "
                  f"{result.export}); evaluation {result.evaluation_id}, {len(result.events)} error events",
                  highlight=False)
    if result.detection is not None:
        render(result.detection)
        for path in result.detection.plots:
            err_console.print(f"Wrote {path}")
    elif result.classification is not None:
        render_classification(result.classification)


def render_classification(c: Any) -> None:
    console.print(f"accuracy {c.accuracy:.4f}  macro F1 {c.macro_f1:.4f}  ({c.samples} images"
                  f"{', multi-label' if c.multi_label else ''})", highlight=False)
    table = Table("class", "precision", "recall", "F1", "support", title="Per class")
    for s in c.per_class[:MAX_CLASS_ROWS]:
        table.add_row(s.name, f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}", str(s.support))
    console.print(table)


def _compare(project: Path, a: str, b: str, version: str, split: str, *, iou: float, conf: float,
             as_json: bool) -> None:
    from visionloop.evaluate.model import compare_models
    from visionloop.store import Store

    with Store.open(project) as store:
        result = compare_models(store, a, b, version, split, iou_threshold=iou, score_threshold=conf)
    if as_json:
        print_json(result.to_json())
        return
    o, n = result.older, result.newer
    table = Table("metric", f"{o.model} (eval {o.id})", f"{n.model} (eval {n.id})", "Δ",
                  title=f"Version {n.version} ({n.split})")
    for name, x, y, d in result.rows:
        whole = name in ("false_positives", "false_negatives")
        table.add_row(name, _f(x) if not whole or x is None else str(int(x)),
                      _f(y) if not whole or y is None else str(int(y)),
                      "—" if d is None else (f"{int(d):+d}" if whole else f"{d:+.4f}"))
    console.print(table)
    worse = Table("image", "id", f"errors {o.model}", f"errors {n.model}",
                  title=f"{len(result.worse)} images where {n.model} got worse ({result.better} got better; "
                        f"false positives scoring ≥ {result.min_score:g} and false negatives)")
    for w in result.worse[:MAX_EVENT_ROWS]:
        worse.add_row(w.file_name, str(w.image_id), str(w.errors_before), str(w.errors_after))
    console.print(worse)
    if len(result.worse) > MAX_EVENT_ROWS:
        err_console.print(f"… and {len(result.worse) - MAX_EVENT_ROWS} more images (--json lists them all)")


def errors(
    model: Annotated[str, typer.Argument(help="Model name (m1), id, or `latest`.")],
    error_type: Annotated[str | None, typer.Option("--type", help="missed | background | localization | "
                                                   "classification | both | duplicate")] = None,
    cls: Annotated[str | None, typer.Option("--class", help="Only events of this class (predicted or "
                                            "true).")] = None,
    dataset_version: Annotated[str | None, typer.Option("--dataset-version", help="The latest evaluation on this "
                                                        "version (default: the latest on any).")] = None,
    show: Annotated[Path | None, typer.Option("--show", help="Draw each event into this folder (PNG; ground "
                                              "truth green, prediction red).")] = None,
    whole: Annotated[bool, typer.Option("--whole", help="With --show: whole images, not crops.")] = False,
    min_score: Annotated[float, typer.Option("--min-score", min=0.0, max=1.0, help="Leave out false positives "
                                             "scoring under this (evaluation keeps scores down to 0.001).")] = 0.0,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The false positives and false negatives of a model's latest evaluation (`visionloop evaluate MODEL`)."""
    from visionloop.evaluate.model import model_errors
    from visionloop.store import Store

    if error_type is not None and error_type not in ERROR_TYPES:
        raise typer.BadParameter(f"--type must be one of {', '.join(ERROR_TYPES)}, not {error_type!r}")
    with Store.open(project) as store:
        ev, events = model_errors(store, model, error=error_type, category=cls, version=dataset_version,
                                   min_score=min_score)
        drawn: list[Path] = []
        if show is not None:
            from visionloop.evaluate.show import draw_events

            drawn = draw_events(store, events, show, crop=not whole)
    if as_json:
        print_json({"evaluation": ev.to_json(), "events": [e.to_json() for e in events],
                    "drawn": [str(p) for p in drawn]})
        return
    table = Table("id", "error", "FP/FN", "image", "class", "truth", "score", "box x,y,w,h", "IoU",
                  title=f"{len(events)} error events of {ev.model} on version {ev.version} ({ev.split}), "
                        f"evaluation {ev.id}")
    for e in events[:MAX_EVENT_ROWS]:
        table.add_row(str(e.id), e.error, "FP" if e.kind == "false_positive" else "FN", e.file_name, e.category,
                      e.gt_category or "", "" if e.score is None else f"{e.score:.2f}",
                      "" if e.box is None else ",".join(f"{v:.0f}" for v in e.box), f"{e.iou:.2f}")
    console.print(table)
    if len(events) > MAX_EVENT_ROWS:
        err_console.print(f"… and {len(events) - MAX_EVENT_ROWS} more (--json lists them all)")
    if show is not None:
        err_console.print(f"Wrote {len(drawn)} images to {show}")


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def render(result: Any) -> None:
    """Rich tables of a `DetectionEvaluation` on stdout."""
    m = result.metrics
    console.print(f"{m.images} images, {m.ground_truth} ground-truth objects, {m.predictions} predictions "
                  f"({m.iou_type})")
    summary = Table("metric", "value", title="COCO metrics")
    for label, v in (("mAP@[.50:.95]", m.map), ("mAP@.50", m.map50), ("mAP@.75", m.map75),
                     ("mAP small", m.map_small), ("mAP medium", m.map_medium), ("mAP large", m.map_large),
                     ("AR@1", m.ar1), ("AR@10", m.ar10), ("AR@100", m.ar100), ("AR small", m.ar_small),
                     ("AR medium", m.ar_medium), ("AR large", m.ar_large)):
        summary.add_row(label, _f(v))
    console.print(summary)
    classes = Table("class", "id", "objects", "predictions", "AP", "AP50", "AP75", "AR@100", title="Per class")
    for c in m.per_class[:MAX_CLASS_ROWS]:
        classes.add_row(c.name, str(c.category_id), str(c.ground_truth), str(c.predictions), _f(c.ap), _f(c.ap50),
                        _f(c.ap75), _f(c.ar100))
    console.print(classes)
    if len(m.per_class) > MAX_CLASS_ROWS:
        err_console.print(f"… and {len(m.per_class) - MAX_CLASS_ROWS} more classes (--json lists them all)")
    t = result.errors.tide
    tide = Table("error", "count", "dAP", title=f"Errors (TIDE, dAP on {t.metric}, base {_f(t.base)})")
    for kind, n in t.counts.items():
        tide.add_row(kind.value, str(n), f"{t.delta[kind]:.4f}")
    tide.add_row("[dim]all false positives[/]", str(t.false_positives), f"{t.false_positive_delta:.4f}")
    tide.add_row("[dim]all false negatives[/]", str(t.false_negatives), f"{t.false_negative_delta:.4f}")
    console.print(tide)
    cm = result.confusion
    if len(cm.classes) <= MAX_CONFUSION_CLASSES + 1:
        table = Table("truth \\ predicted", *cm.classes,
                      title=f"Confusion (IoU ≥ {cm.iou_threshold:g}, score ≥ {cm.score_threshold:g})")
        for name, row in zip(cm.classes, cm.matrix.tolist(), strict=True):
            table.add_row(name, *(str(v) for v in row))
        console.print(table)
