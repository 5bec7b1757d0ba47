"""visionloop model list | show | promote | delete | export, and visionloop predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt

app = typer.Typer(help="The model registry: trained models, their stages and exports.", no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="Model name (m1), id, or `latest`.")]


def _score(metrics: dict) -> str:
    keys = [("map50", "mAP50"), ("map", "mAP50-95"), ("mask_map", "mask mAP50-95"), ("miou", "mIoU"),
            ("accuracy", "acc")]
    return "  ".join(f"{label} {metrics[k]:.3f}" for k, label in keys if isinstance(metrics.get(k), int | float))


@app.command("list")
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every model with its task, stage and metrics."""
    from visionloop.store import Store
    from visionloop.store import models as registry

    with Store.open(project) as store:
        infos = registry.list_all(store)
    if as_json:
        print_json([i.to_json() for i in infos])
        return
    table = Table("name", "task", "arch", "version", "status", "stage", "metrics", "exports", "created")
    for i in infos:
        table.add_row(i.name, i.task, i.arch, i.version, i.status, i.stage, _score(i.metrics),
                      ", ".join(f"{e.format}/{e.precision}" for e in i.exports), i.created_at[:19])
    console.print(table)


@app.command("show")
def show(model: ModelArg, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """One model: preprocessing, hyper-parameters, metrics, exports, lineage."""
    from visionloop.store import Store, lineage
    from visionloop.store import models as registry
    from visionloop.store.lineage import Kind, Ref

    with Store.open(project) as store:
        info = registry.get(store, model)
        with store.session() as s:
            edges = [e.to_json() for e in lineage.ancestors(s, Ref(Kind.MODEL, info.id))]
    if as_json:
        print_json({**info.to_json(), "lineage": edges})
        return
    console.print(f"[bold]{info.name}[/] {info.task} {info.arch} ({info.status}, {info.stage}) "
                  + (f"trained on version {info.version} from {info.weights_init}" if info.version_id is not None
                     else f"from {info.weights_init}"), highlight=False)
    shown = ", ".join(info.classes[:20]) + (f", … ({len(info.classes)} in all)" if len(info.classes) > 20 else "")
    console.print(f"classes: {shown}", highlight=False)
    console.print(f"input: {info.input_size[0]}x{info.input_size[1]} {json.dumps(info.preprocessing)}",
                  highlight=False, soft_wrap=True)
    card = info.hyper.get("card")
    if card:  # a gallery model or a user's ONNX: where it came from, its licence, its latency here
        src = card.get("source", {})
        origin = f"{src['package']} {src['version']}" if "package" in src else f"{src.get('file')} ({src.get('sha256', '')[:12]})"
        lat = card.get("latency", {})
        console.print(f"source: {origin}; licence: {card.get('licence')}", highlight=False, soft_wrap=True)
        console.print(f"{card.get('description', '')}", highlight=False, soft_wrap=True)
        console.print(f"latency on this machine (input {card.get('input')}, image {lat.get('image')}): "
                      f"p50 {lat.get('p50_ms')} ms, p95 {lat.get('p95_ms')} ms", highlight=False)
    else:
        console.print(f"metrics: {_score(info.metrics)} (best epoch {info.metrics.get('best_epoch')})",
                      highlight=False)
    for e in info.exports:
        extra = f"parity {e.parity.get('max_abs_diff')}" if e.parity else ""
        if e.metrics.get("delta"):
            extra += f" accuracy delta vs fp32 {e.metrics['delta']}"
        console.print(f"export {e.format}/{e.precision}: {e.size_bytes / 1e6:.1f} MB {extra}", highlight=False,
                      soft_wrap=True)
    for ed in edges:
        console.print(f"lineage: {ed['child']['kind']} {ed['child']['id']} ← {ed['parent']['kind']} "
                      f"{ed['parent']['id']}", highlight=False)


@app.command("promote")
def promote(model: ModelArg, stage: Annotated[str | None, typer.Option(help="preview | beta | ga")] = None,
            project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Move a model one stage on (preview → beta → ga), or to --stage."""
    from visionloop.store import Store
    from visionloop.store import models as registry

    with Store.open(project) as store:
        info = registry.promote(store, model, stage)
    if as_json:
        print_json(info.to_json())
        return
    console.print(f"Model [bold]{info.name}[/] is now {info.stage}")


@app.command("delete")
def delete(model: ModelArg, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Delete a model, its exports, lineage and checkpoints."""
    from visionloop.store import Store
    from visionloop.store import models as registry

    with Store.open(project) as store:
        info = registry.delete_model(store, model)
    if as_json:
        print_json({"deleted": info.name, "id": info.id})
        return
    console.print(f"Deleted model [bold]{info.name}[/]")


@app.command("export")
def export(model: ModelArg, to: Annotated[str, typer.Option("--to", help="onnx")] = "onnx",
           int8: Annotated[bool, typer.Option("--int8", help="Also an INT8 (static, QDQ) model.")] = False,
           out: Annotated[Path | None, typer.Option(help="Also write the file(s) into this folder.")] = None,
           project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Export to ONNX with a parity check against torch; --int8 measures the accuracy delta."""
    from visionloop.store import Store
    from visionloop.train import export_model

    with Store.open(project) as store:
        result = export_model(store, model, to=to, int8=int8)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for e in (result.fp32, result.int8):
                if e is not None:
                    (out / f"{result.model}.{e.precision}.onnx").write_bytes(store.blobs.get(e.sha256))
    if as_json:
        print_json(result.to_json())
        return
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in result.parity.items())
    console.print(f"Exported [bold]{result.model}[/] to ONNX ({result.fp32.size_bytes / 1e6:.1f} MB); "
                  f"max |onnx - torch|: {diffs}", highlight=False, soft_wrap=True)
    if result.int8 is not None:
        m = result.int8.metrics
        console.print(f"INT8: {result.int8.size_bytes / 1e6:.1f} MB; on {m.get('split')}: fp32 {m.get('fp32')} "
                      f"int8 {m.get('int8')} delta {m.get('delta')}", highlight=False, soft_wrap=True)


def predict(
    model: ModelArg,
    paths: Annotated[list[Path], typer.Argument(help="Image or video files, or folders.")],
    out: Annotated[Path | None, typer.Option(help="Write predictions into this folder.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="coco | json")] = "json",
    conf: Annotated[float, typer.Option(help="Score threshold.")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.6,
    int8: Annotated[bool, typer.Option("--int8", help="Use the INT8 export.")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N (CUDA / TensorRT execution providers on GPU N)")] = "cpu",
    tile: Annotated[str | None, typer.Option(help="Tiled inference for small objects: ROWSxCOLS, e.g. 2x2.")] = None,
    overlap: Annotated[float, typer.Option(help="With --tile: overlap of neighbouring tiles (0..1).")] = 0.2,
    full_image: Annotated[bool, typer.Option("--full-image", help="With --tile: also predict the whole image.")]
    = False,
    merge: Annotated[str, typer.Option(help="With --tile: merge across tiles by nms | wbf.")] = "nms",
    every: Annotated[str, typer.Option(help="Videos: predict a frame every this much video time (500ms, 2s); "
                                            "detections are linked into tracks.")] = "500ms",
    import_: Annotated[bool, typer.Option("--import", help="Import the images with the predictions as "
                                                           "pre-labels (source=model, with confidences): one "
                                                           "batch, undoable.")] = False,
    split: Annotated[str | None, typer.Option(help="With --import: put the images in this split.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Predict with a model's ONNX export (ONNX Runtime; the model's own preprocessing).

    --json prints a list (images, then videos: {file_name, frames, tracks}); with --import an object
    {"predictions": [...], "import": {...}}.
    """
    from visionloop.core.errors import VisionLoopError
    from visionloop.formats.base import is_image
    from visionloop.infer import Predictor, write_predictions
    from visionloop.infer.video import is_video
    from visionloop.store import Store
    from visionloop.store import models as registry

    with Store.open(project) as store:
        info = registry.get(store, model)
        e = info.export("onnx", "int8" if int8 else "fp32")
        if e is None:
            raise VisionLoopError(f"model {info.name} has no ONNX{' INT8' if int8 else ''} export",
                                  hint=f"run `visionloop model export {info.name}{' --int8' if int8 else ''}`")
        if info.task == "ocr":  # a pipeline of three ONNX files (gallery text-ocr)
            from visionloop.infer.ocr import OcrPredictor

            rec, cls = info.export("onnx-rec"), info.export("onnx-cls")
            if rec is None or tile is not None:
                raise VisionLoopError(f"model {info.name} is an OCR pipeline " +
                                      ("without its recogniser" if rec is None else "and takes no --tile"),
                                      hint="re-add it with `visionloop gallery add text-ocr`" if rec is None
                                      else "predict without --tile")
            predictor: Any = OcrPredictor(registry.blob_file(store, e.sha256), registry.blob_file(store, rec.sha256),
                                          registry.blob_file(store, cls.sha256) if cls else None, device=device)
        else:
            predictor = Predictor(registry.blob_file(store, e.sha256), device=device)
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and (is_image(f) or is_video(f)))
        elif p.exists():
            files.append(p)
        else:
            raise VisionLoopError("no such file or folder", path=p)
    videos = [f for f in files if is_video(f)]
    images = [f for f in files if not is_video(f)]
    if import_ and videos:
        raise VisionLoopError("--import takes images, not videos", path=videos[0],
                              hint="predict the video without --import")
    kw: dict = {"conf": conf, "iou": iou}
    if tile is not None:
        from visionloop.infer.tiles import MERGES, parse_tile

        if merge not in MERGES:
            raise VisionLoopError(f"unknown --merge {merge!r}", hint="use nms or wbf")
        kw.update(tile=parse_tile(tile), overlap=overlap, full=full_image, merge=merge)
    preds = [predictor.predict_file(f, **kw) for f in images]
    runs = []
    if videos:
        from visionloop.infer.video import parse_interval, predict_video

        every_ms = parse_interval(every)
        runs = [predict_video(predictor, v, every_ms=every_ms, **kw) for v in videos]
    if out is not None:
        from visionloop.infer.output import write_video

        written = [write_predictions(preds, out, format=fmt, classes=predictor.classes)] if preds else []
        written += [write_video(r, out) for r in runs]
        if not as_json:
            for w in written:
                console.print(f"Wrote {w}", highlight=False)
    report = None
    if import_:
        from visionloop.formats import Reader
        from visionloop.infer.output import common_root, prediction_classes, to_samples
        from visionloop.ingest import import_samples

        root = common_root(images)
        reader = Reader(prediction_classes(predictor.classes), lambda: to_samples(preds, images, root), source=root)
        with Store.open(project) as store:
            report = import_samples(store, reader, root, format=f"predictions:{info.name}", split=split,
                                    annotation_source="model")
    if as_json:
        listed = [p.to_json() for p in preds] + [r.to_json() for r in runs]
        print_json(listed if report is None else {"predictions": listed, "import": report.to_json()})
        return
    if out is None:
        for p in preds:
            js = p.to_json()
            if p.task == "semantic":
                console.print(f"{p.file_name}: {len(js['segments'])} classes present"
                              + "".join(f"\n  {d['class']} {100 * d['fraction']:.1f}% of the pixels"
                                        for d in js["segments"]), highlight=False)
                continue
            items = js.get("detections", js.get("classes", []))
            console.print(f"{p.file_name}: {len(items)} " + ("classes" if p.task == "classify" else "detections")
                          + "".join(f"\n  {d['class']} {d['score']:.2f} {d.get('box', '')}"
                                    + (" (mask)" if "mask" in d else "") for d in items[:20]),
                          highlight=False)
    for r in runs:
        js = r.to_json()
        console.print(f"{r.file_name}: {len(js['frames'])} frames every {r.every_ms:g} ms, "
                      f"{len(js['tracks'])} tracks", highlight=False)
        for t in js["tracks"][:50]:
            console.print(f"  track {t['track']} {t['class']}: {t['first_ms'] / 1000:.2f}s - "
                          f"{t['last_ms'] / 1000:.2f}s ({t['duration_ms'] / 1000:.2f}s, {t['frames']} frames)",
                          highlight=False)
    if report is not None:
        c = report.counts
        console.print(f"Imported the predictions as batch {report.batch_id} (pre-labels, source=model): "
                      f"{c.get('images_added', 0)} images added, {c.get('images_updated', 0)} updated, "
                      f"{c.get('annotations_added', 0)} annotations"
                      + (f"; {len(report.quarantined)} quarantined" if report.quarantined else "")
                      + (f"; undo with `visionloop undo {report.batch_id}`" if report.batch_id else ""),
                      highlight=False, soft_wrap=True)
