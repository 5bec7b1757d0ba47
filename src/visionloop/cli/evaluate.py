"""visionloop evaluate: parse, call the evaluate stage, render (rich tables on stdout, or --json).

Today: COCO files without a project (`--predictions results.json --ground-truth instances.json`).
Model-bound evaluation (`visionloop evaluate MODEL --version V`) comes with the model registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt

MAX_CLASS_ROWS = 50
MAX_CONFUSION_CLASSES = 12


def evaluate(
    model: Annotated[str | None, typer.Argument(help="A model of the project (not available yet: use "
                                                "--predictions with --ground-truth).", show_default=False)] = None,
    predictions: Annotated[Path | None, typer.Option("--predictions", help="COCO results JSON (a list of "
                                                     "{image_id, category_id, bbox|segmentation, score}).")] = None,
    ground_truth: Annotated[Path | None, typer.Option("--ground-truth", help="COCO instances JSON the "
                                                      "predictions refer to.")] = None,
    iou_type: Annotated[str | None, typer.Option("--iou-type", help="bbox or segm (default: segm when the "
                                                 "predictions carry masks).")] = None,
    iou: Annotated[float, typer.Option("--iou", min=0.05, max=0.95, help="IoU threshold of the confusion matrix "
                                       "and the error breakdown.")] = 0.5,
    conf: Annotated[float, typer.Option("--conf", min=0.0, max=1.0, help="Score threshold of the confusion "
                                        "matrix.")] = 0.25,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write pr_curve.png and confusion_matrix.png "
                                               "into this folder.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate detections or instance masks: COCO mAP (equal to pycocotools), per-class AP/AR, confusion
    matrix, TIDE error breakdown; --json adds every false positive and false negative."""
    from visionloop.core.errors import VisionLoopError
    from visionloop.evaluate import IouType, evaluate_detections

    if model is not None:
        raise VisionLoopError(f"evaluating model {model!r} inside a project is not available yet",
                              hint="evaluate its predictions: --predictions results.json --ground-truth "
                                   "instances.json")
    if predictions is None or ground_truth is None:
        raise typer.BadParameter("give --predictions and --ground-truth (COCO JSON files)")
    if iou_type is not None and iou_type not in {t.value for t in IouType}:
        raise typer.BadParameter(f"--iou-type must be bbox or segm, not {iou_type!r}")
    result = evaluate_detections(ground_truth, predictions, iou_type=iou_type, iou_threshold=iou,
                                 score_threshold=conf, plots=plots)
    if as_json:
        print_json(result.to_json())
        return
    render(result)
    for path in result.plots:
        err_console.print(f"Wrote {path}")


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
