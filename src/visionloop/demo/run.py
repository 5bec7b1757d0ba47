"""Run the whole loop that exists so far on the synthetic shapes, step by step."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.core.errors import ProjectError
from visionloop.demo import synthetic


@dataclass
class Step:
    name: str
    summary: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)


def run(workdir: Path | None = None, *, images: int = 60, seed: int = 0, train_seconds: float = 60.0,
        db_url: str | None = None, blob_url: str | None = None) -> Iterator[Step]:
    """Yield each stage's result as it finishes. Raises if a round trip loses anything. `db_url` and `blob_url`
    put the demo's project on a team's services (an empty PostgreSQL database, an S3 prefix); the export round
    trips re-import into throwaway local projects."""
    from visionloop import formats
    from visionloop.formats.convert import convert
    from visionloop.ingest import export_dataset, import_dataset
    from visionloop.store import Store

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="visionloop-demo-")
        workdir = Path(tmp.name)
    try:
        t = time.perf_counter()
        raw = workdir / "shapes-coco"
        report = formats.write(synthetic.shapes(images, seed=seed, folder=workdir / "render"), raw,
                               format="coco", classes=synthetic.classes())
        yield Step("render", f"rendered {report.images} synthetic images with "
                   + ", ".join(f"{v} {k}es" if k == "box" else f"{v} {k}s" for k, v in sorted(report.annotations.items()))
                   + f" (3 classes) as COCO in {raw}", time.perf_counter() - t, report.to_json())

        t = time.perf_counter()
        store = Store.init(workdir / "project", db_url=db_url, blob_url=blob_url)
        where = store.engine.url.render_as_string(hide_password=True)
        if store.engine.dialect.name != "sqlite" and (held := store.stats().images):
            store.close()
            raise ProjectError(f"the demo needs an empty database: {where} already holds a project of {held} images",
                               path=workdir / "project", hint="create a new database for it (createdb)")
        kind = ("SQLite + blob folder" if db_url is None and blob_url is None
                else f"database {where}, blobs {store.blobs.url}")
        yield Step("init", f"created project {store.root} ({kind})", time.perf_counter() - t,
                   {"database": where, "blobs": store.blobs.url})

        t = time.perf_counter()
        imp = import_dataset(store, raw)
        c = imp.counts
        yield Step("import", f"imported {c.get('images_added', 0)} images and {c.get('annotations_added', 0)} "
                   f"annotations as batch {imp.batch_id} (format detected: {imp.format})",
                   time.perf_counter() - t, imp.to_json())

        t = time.perf_counter()
        again = import_dataset(store, raw)
        yield Step("re-import", f"imported the same folder again: {again.counts.get('images_added', 0)} added, "
                   f"{again.counts.get('images_unchanged', 0)} unchanged (imports are idempotent)",
                   time.perf_counter() - t, again.to_json())

        t = time.perf_counter()
        s = store.stats()
        splits = ", ".join(f"{k} {v['images']}" for k, v in sorted(s.by_split.items()))
        yield Step("stats", f"{s.images} images ({splits}), {s.annotations} annotations: "
                   + ", ".join(f"{k} {v}" for k, v in s.by_class.items()), time.perf_counter() - t, s.to_json())

        t = time.perf_counter()
        from visionloop.health import check, fix

        report = check(store, workers=1)
        found = ", ".join(f"{f.check} {f.count}" for f in report.findings) or "nothing to report"
        dry = fix(store, dry_run=True, workers=1)
        fixable = sum(dry.counts.values())
        yield Step("health", f"health check: {found}; {fixable} fixable", time.perf_counter() - t,
                   {"findings": [f.to_json() for f in report.findings], "fix_dry_run": dry.counts})

        for fmt in ("coco", "yolo", "voc"):
            t = time.perf_counter()
            out = workdir / f"export-{fmt}"
            rep = export_dataset(store, out, format=fmt)
            back = Store.init(workdir / f"reimport-{fmt}")
            imp2 = import_dataset(back, out)
            s2 = back.stats()
            back.close()
            lost = ", ".join(f"{n} {w}" for w, n in rep.dropped.items()) or "nothing dropped"
            conv = ", ".join(f"{n} {w}" for w, n in rep.converted.items())
            yield Step(f"export {fmt}", f"exported {rep.images} images to {fmt.upper()} ({lost}"
                       + (f"; converted {conv}" if conv else "") + f"), re-imported: {s2.images} images, "
                       f"{s2.annotations} annotations", time.perf_counter() - t,
                       {"export": rep.to_json(), "reimport": imp2.to_json()})

        t = time.perf_counter()
        rep = convert(raw, workdir / "converted-yolo", to="yolo")
        yield Step("convert", f"converted COCO → YOLO without a project: {rep.images} images, "
                   + ", ".join(f"{v} {k}" for k, v in sorted(rep.annotations.items())), time.perf_counter() - t,
                   rep.to_json())
        t = time.perf_counter()
        from visionloop.versions import create_version, export_version, preview_version

        recipe = {"schema": 1, "seed": seed, "split": {"mode": "keep"},
                  "preprocess": {"resize": {"width": 160, "height": 120, "mode": "fit"}},
                  "augment": {"multiplier": 3, "flip": {"horizontal": True}, "rot90": {"clockwise": True},
                              "rotate": {"degrees": 15}, "brightness": {"percent": 20}, "mosaic": {"percent": 25}}}
        made = create_version(store, recipe, workers=0)
        again = create_version(store, recipe, workers=0)
        exported = export_version(store, made.name, workdir / "version-yolo", format="yolo")
        preview = preview_version(store, made.name, workdir / "version-preview.png")
        splits = ", ".join(f"{k} {v['images']}" for k, v in sorted(made.counts.get("by_split", {}).items()))
        yield Step("version", f"version {made.name}: {made.images} images ({splits}) from a recipe (split kept, "
                   f"resize to 160×120, ×3 augmentation: flips, 90° turns, rotation, brightness, mosaic); same "
                   f"recipe again: {'reused' if again.reused else 'generated again'}; exported {exported.images} "
                   f"images to YOLO; preview {preview.width}×{preview.height} PNG",
                   time.perf_counter() - t, {"version": made.to_json(), "reused": again.reused,
                                             "preview": preview.to_json()})
        yield from _model_steps(store, made.name, workdir, seed=seed, train_seconds=train_seconds)
        store.close()
    finally:
        if tmp is not None:
            tmp.cleanup()


def _model_steps(store: Any, version: str, workdir: Path, *, seed: int, train_seconds: float) -> Iterator[Step]:
    """Train a small detector on the version, export it to ONNX, evaluate it on the held-out split, predict,
    serve it, and pick the images to relabel first."""
    from visionloop.infer import Predictor
    from visionloop.store import models as registry
    from visionloop.train import train

    yield _gallery_step(store, workdir)
    t = time.perf_counter()
    result = train(store, version, task="detect", imgsz=128, epochs=40, time_budget=train_seconds, batch=8,
                   seed=seed, name="shapes-detector")
    m = result.metrics
    yield Step("train", f"trained detector {result.model.name} (FCOS on the offline ImageNet EfficientNet-Lite0, "
               f"128 px) for {result.epochs} epochs in {result.seconds:.0f} s (stopped: {result.stopped}): "
               f"validation mAP50 {m.get('map50', 0):.3f}, mAP50-95 {m.get('map', 0):.3f}",
               time.perf_counter() - t, result.to_json())

    t = time.perf_counter()
    info = registry.get(store, result.model.name)
    onnx = info.export("onnx", "fp32")
    assert onnx is not None, "training exports the model to ONNX"
    path = workdir / f"{info.name}.onnx"
    path.write_bytes(store.blobs.get(onnx.sha256))
    diffs = onnx.parity.get("max_abs_diff", {})
    yield Step("export", f"exported to ONNX ({onnx.size_bytes / 1e6:.1f} MB, {path.name}): max |ONNX Runtime - "
               "torch| " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()) + " (checked on export)",
               time.perf_counter() - t, onnx.to_json())

    yield _evaluate_step(store, info.name, version)

    t = time.perf_counter()
    predictor = Predictor(path)
    shown = sorted((workdir / "render").glob("*.jpg"))[-3:]
    preds = [predictor.predict_file(p, conf=0.3) for p in shown]
    found = "; ".join(f"{p.file_name}: " + (", ".join(f"{d['class']} {d['score']:.2f}"
                                                       for d in p.to_json()["detections"][:4]) or "nothing")
                      for p in preds)
    yield Step("predict", f"ONNX Runtime on {len(preds)} images: {found}", time.perf_counter() - t,
               {"predictions": [p.to_json() for p in preds]})

    t = time.perf_counter()
    yield _serve_step(store.root, info.name, shown[-1], time.perf_counter() - t)
    yield _select_step(store, info.name)


def _evaluate_step(store: Any, model: str, version: str) -> Step:
    """The exported model on the version's test split (valid when there is none): COCO metrics, TIDE, events."""
    from visionloop.evaluate.model import evaluate_model
    from visionloop.versions import VersionDataset

    t = time.perf_counter()
    split = "test" if len(VersionDataset(store, version, "test")) else "valid"
    ev = evaluate_model(store, model, version, split)
    assert ev.detection is not None
    m, tide, cm = ev.detection.metrics, ev.detection.errors.tide, ev.detection.confusion
    k = len(cm.category_ids)
    objects, right = int(cm.matrix[:k].sum()), int(cm.matrix[:k, :k].trace())
    worst = max(tide.delta.items(), key=lambda kv: kv[1], default=None)
    return Step("evaluate", f"evaluated {model}'s ONNX export on the {split} split ({ev.images} images): mAP50 "
                f"{m.map50:.3f}, mAP50-95 {m.map:.3f}; at confidence ≥ {cm.score_threshold:g}: {right} of {objects} "
                f"objects found with the right class, {int(cm.matrix[k, :k].sum())} false positives, "
                f"{int(cm.matrix[:k, k].sum())} missed" + (f"; most mAP lost to {worst[0].value} errors "
                                                             f"({worst[1]:.3f})" if worst and worst[1] > 0 else "")
                + f"; {len(ev.events)} error events stored (`visionloop errors {model}`)",
                time.perf_counter() - t, ev.to_json(events=False))


def _select_step(store: Any, model: str, budget: int = 5) -> Step:
    """Close the loop: the images the model is least sure about, tagged for relabelling."""
    from visionloop.loop.select import select_images

    t = time.perf_counter()
    sel = select_images(store, model, budget=budget, strategy="entropy", aggregate="max", source="all",
                        tag="demo-relabel")
    names = ", ".join(p.file_name for p in sel.picked)
    return Step("select", f"picked the {len(sel.picked)} of {sel.candidates} images {model} is least sure about "
                f"(entropy, max over boxes): {names}; tagged {sel.tag} for relabelling (`visionloop label send "
                f"--tag {sel.tag} --to label-studio`)", time.perf_counter() - t, sel.to_json())


#: what the demo's label says (rendered, then read back by the gallery's OCR model)
LABEL = "LOT 4711 EXP 2027"


def _gallery_step(store: Any, workdir: Path) -> Step:
    """No training needed: add the gallery's OCR model (PP-OCRv6 inside the rapidocr wheel) and read a label."""
    import cv2
    import numpy as np

    from visionloop import gallery
    from visionloop.infer.ocr import OcrPredictor

    t = time.perf_counter()
    img = np.full((120, 640, 3), 255, np.uint8)
    cv2.putText(img, LABEL, (16, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20), 3, cv2.LINE_AA)
    path = workdir / "label.png"
    cv2.imwrite(str(path), img)
    info = gallery.add(store, "text-ocr", name="label-reader")
    files = {e.format: store.blobs.get(e.sha256) for e in info.exports}
    pred = OcrPredictor(files["onnx"], files["onnx-rec"], files.get("onnx-cls")).predict_file(path)
    read = " ".join(pred.texts or [])
    card = info.hyper["card"]
    return Step("gallery", f"no training needed: added gallery model text-ocr (PP-OCRv6 from "
                f"{card['source']['package']} {card['source']['version']}, {card['licence']}) and read "
                f"{path.name}: {read!r} (rendered {LABEL!r})", time.perf_counter() - t,
                {"model": info.name, "card": card, "prediction": pred.to_json()})


def _serve_step(project: Path, model: str, image: Path, spent: float) -> Step:
    """Start the HTTP API on loopback, call it once with an image, print the answer, stop it."""
    import httpx

    from visionloop.serve.background import BackgroundServer

    t = time.perf_counter()
    with BackgroundServer(project) as server:
        url = f"{server.url}/v1/models/{model}/predict"
        r = httpx.post(url, files={"files": (image.name, image.read_bytes(), "image/jpeg")},
                       params={"confidence": 0.3}, timeout=60)
    body = r.json()
    if r.status_code != 200:
        raise RuntimeError(f"the server answered {r.status_code}: {body}")
    (img,) = body["images"]
    top = ", ".join(f"{p['class']} {p['confidence']:.2f}" for p in img["predictions"][:3]) or "nothing"
    return Step("serve", f"served {body['model']['model']} over HTTP on loopback: POST /v1/models/{model}/predict "
                f"with {image.name} → {r.status_code}, {len(img['predictions'])} predictions ({top}); server "
                "stopped", spent + time.perf_counter() - t, {"url": url.replace(server.url, ""), "response": body})
