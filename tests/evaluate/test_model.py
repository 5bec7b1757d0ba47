"""Model-bound evaluation: a registered model's ONNX export on a version split, stored with its error events;
predictions made elsewhere matched by the version's export ids or file names; comparisons; the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from visionloop import formats
from visionloop.cli.main import app
from visionloop.core.errors import FormatError, VisionLoopError
from visionloop.demo import synthetic
from visionloop.evaluate import classification_metrics, evaluate_detections
from visionloop.evaluate.model import compare_models, evaluate_model, evaluate_predictions, model_errors
from visionloop.formats.base import ImageMode
from visionloop.infer import Predictor
from visionloop.ingest import import_dataset
from visionloop.store import Store, lineage
from visionloop.store import evaluations as evaluation_store
from visionloop.store import models as registry
from visionloop.store.lineage import Kind, Ref
from visionloop.train import train
from visionloop.versions import VersionDataset, create_version, export_version

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}
FAST = {"imgsz": 64, "batch": 4, "lr": 3e-3, "seed": 0}
runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """16 synthetic 96 px shape images (12/4), two detectors: `a` (1 epoch) and `b` (2 epochs)."""
    root = tmp_path_factory.mktemp("evalmodel")
    formats.write(synthetic.shapes(16, seed=0, size=(96, 96), folder=root / "render"), root / "coco",
                  format="coco", classes=synthetic.classes())
    store = Store.init(root / "project")
    import_dataset(store, root / "coco")
    version = create_version(store, SPLIT, workers=0).name
    train(store, version, task="detect", epochs=1, name="a", **FAST)
    train(store, version, task="detect", epochs=2, name="b", **FAST)
    return store, version, root


@pytest.fixture(scope="module")
def evaluated(project):
    store, version, _ = project
    return evaluate_model(store, "b", version, "valid")


def _exported_gt(store, version, tmp_path) -> dict:
    export_version(store, version, tmp_path / "export", format="coco", split="valid", images=ImageMode.NONE)
    return json.loads((tmp_path / "export" / "valid" / "_annotations.coco.json").read_text())


def _own_predictions(store, version, model, gt) -> list[dict]:
    """What the model predicts, computed here: Predictor on each image of the split, ids in export order."""
    p = Predictor(store.blobs.get(registry.get(store, model).export("onnx", "fp32").sha256))
    ds = VersionDataset(store, version, "valid")
    cat = {c["name"]: c["id"] for c in gt["categories"]}
    out = []
    for k, im in enumerate(gt["images"]):
        image, target = ds[k]
        assert target["file_name"] == im["file_name"]
        pred = p.predict(image, conf=0.001, max_det=100)
        for b, s, c in zip(pred.boxes.tolist(), pred.scores.tolist(), pred.labels.tolist(), strict=True):
            out.append({"image_id": im["id"], "category_id": cat[p.classes[c]],
                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    return out


def test_model_metrics_equal_the_pure_function(project, evaluated, tmp_path):
    store, version, _ = project
    r = evaluated
    gt = _exported_gt(store, version, tmp_path)
    preds = _own_predictions(store, version, "b", gt)
    assert r.images == len(gt["images"]) == 4 and r.task == "detect" and r.export == "onnx/fp32"
    assert r.predictions == preds and len(preds) > 0
    pure = evaluate_detections(gt, preds)
    assert r.detection.to_json() == pure.to_json()
    # and pycocotools, independently
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(preds))), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert r.detection.metrics.stats == pytest.approx(list(ev.stats), abs=1e-9)
    # the stored PR curve (the web UI's) is pycocotools' precision array at IoU .5, area all, 100 dets
    curve = r.metrics_json()["pr_curve"]
    assert curve["iou"] == 0.5 and curve["recall"] == pytest.approx(list(ev.params.recThrs), abs=1e-12)
    prec = ev.eval["precision"][0, :, :, 0, -1]
    assert [c["category_id"] for c in curve["classes"]] == list(ev.params.catIds)
    defined = []
    for k, c in enumerate(curve["classes"]):
        if (prec[:, k] > -1).any():
            defined.append(k)
            assert c["precision"] == pytest.approx(list(prec[:, k].clip(0)), abs=1e-9)
            assert c["ap"] == pytest.approx(float(prec[:, k][prec[:, k] > -1].mean()), abs=1e-9)
        else:
            assert c["precision"] is None and c["ap"] is None
    assert defined and curve["mean"] == pytest.approx(list(prec[:, defined].clip(0).mean(axis=1)), abs=1e-9)


def test_evaluation_and_events_are_stored(project, evaluated):
    store, version, _ = project
    r = evaluated
    info = evaluation_store.get(store, r.evaluation_id)
    model = registry.get(store, "b")
    assert (info.model, info.version, info.split, info.task, info.images) == ("b", version, "valid", "detect", 4)
    assert info.metrics == json.loads(json.dumps(r.metrics_json()))
    pure_events = r.detection.errors.events
    stored = evaluation_store.events(store, r.evaluation_id)
    assert info.events == len(stored) == len(pure_events) > 0
    for s, e in zip(stored, pure_events, strict=True):
        assert (s.kind, s.error, s.image_id, s.file_name, s.category, s.score, s.gt_id) == \
            (e.kind.value, e.error.value, e.image_id, e.file_name, e.category, e.score, e.gt_id)
        assert s.box == list(e.bbox) and s.iou == e.iou
        assert s.pred_box == (r.predictions[e.prediction]["bbox"] if e.prediction is not None else None)
    # the image blob, for drawing
    shas = {VersionDataset(store, version, "valid").sample(k).image.file_name:
            VersionDataset(store, version, "valid").sample(k).image.sha256 for k in range(4)}
    assert all(s.sha256 == shas[s.file_name] for s in stored)
    with store.session() as s:
        parents = [(e.parent.kind, e.parent.id, e.params) for e in lineage.parents(s, Ref(Kind.EVALUATION, info.id))]
    assert parents == [(Kind.MODEL, str(model.id), {}), (Kind.VERSION, str(model.version_id), {"split": "valid"})]
    # filters
    by_type = Counter(e.error.value for e in pure_events)
    for error, n in by_type.items():
        ev, found = model_errors(store, "b", error=error)
        assert ev.id == r.evaluation_id and len(found) == n and {f.error for f in found} == {error}
    high = [e for e in pure_events if e.kind.value == "false_negative" or e.score >= 0.3]
    assert len(model_errors(store, "b", min_score=0.3)[1]) == len(high) < len(pure_events)
    cls = pure_events[0].category
    want = [e for e in pure_events if e.category == cls or
            (e.gt_category_id is not None and r.detection.metrics.per_class and
             {c.category_id: c.name for c in r.detection.metrics.per_class}[e.gt_category_id] == cls)]
    assert len(model_errors(store, "b", category=cls)[1]) == len(want)
    with pytest.raises(VisionLoopError, match="has not been evaluated"):
        model_errors(store, "a", version=version, split="test")


def test_compare_lists_the_images_that_got_worse(project, evaluated):
    store, version, _ = project
    a = evaluate_model(store, "a", version, "valid")
    c = compare_models(store, "b", "a", version)  # order of the arguments does not matter: b is newer
    assert (c.older.model, c.newer.model) == ("a", "b")
    assert c.older.id == a.evaluation_id and c.newer.id == evaluated.evaluation_id  # reused, not re-run
    assert c.min_score == 0.25

    def shown(e) -> bool:
        return e.kind.value == "false_negative" or e.score >= 0.25

    before = Counter(e.image_id for e in a.detection.errors.events if shown(e))
    after = Counter(e.image_id for e in evaluated.detection.errors.events if shown(e))
    names = {e.image_id: e.file_name for e in evaluated.detection.errors.events}
    expected = sorted(((i, names[i], before[i], after[i]) for i in after if after[i] > before[i]),
                      key=lambda t: (-(t[3] - t[2]), t[0]))
    assert [(w.image_id, w.file_name, w.errors_before, w.errors_after) for w in c.worse] == expected
    assert c.better == sum(1 for i in before if before[i] > after[i])
    rows = {n: (x, y, d) for n, x, y, d in c.rows}
    assert rows["map50"] == (a.detection.metrics.map50, evaluated.detection.metrics.map50,
                             evaluated.detection.metrics.map50 - a.detection.metrics.map50)


def test_compare_on_hand_made_events(project):
    """Stored evaluations of a and b on a split of their own: b misses x.png twice and adds a confident false
    positive on y.png; a had a low-score false positive (not counted) on z.png, which b fixed."""
    store, version, _ = project
    models = {n: registry.get(store, n) for n in ("a", "b")}

    def ev(name, events):
        m = models[name]
        rows = [{"kind": k, "error": err, "image_id": i, "file_name": f, "category": "disc", "score": sc,
                 "iou": 0.0} for k, err, i, f, sc in events]
        return evaluation_store.add(store, model_id=m.id, version_id=m.version_id, version_name=version,
                                    split="hand", task="detect", metrics={"metrics": {"map": 0.5}},
                                    params={"score_threshold": 0.25}, images=3, events=rows)

    fn, fp = "false_negative", "false_positive"
    ea = ev("a", [(fn, "missed", 1, "x.png", None), (fp, "background", 3, "z.png", 0.1), (fp, "background", 3, "z.png",
                                                                                   0.9)])
    eb = ev("b", [(fn, "missed", 1, "x.png", None), (fn, "missed", 1, "x.png", None),
             (fp, "background", 2, "y.png", 0.3), (fp, "background", 2, "y.png", 0.2)])
    c = compare_models(store, "a", "b", version, "hand")
    assert [(w.image_id, w.file_name, w.errors_before, w.errors_after) for w in c.worse] == \
        [(1, "x.png", 1, 2), (2, "y.png", 0, 1)]
    assert c.better == 1 and [r for r in c.rows if r[0] == "map"] == [("map", 0.5, 0.5, 0.0)]
    for e in (ea, eb):
        evaluation_store.delete_evaluation(store, e.id)
    assert evaluation_store.list_all(store, split="hand") == []


def test_predictions_made_elsewhere_matched_by_file_name(project, evaluated, tmp_path):
    store, version, _ = project
    r = evaluated
    names = {im["id"]: im["file_name"] for im in _exported_gt(store, version, tmp_path)["images"]}
    # a results list naming images (in a folder of their own) instead of ids, in another order
    named = [{"file_name": f"elsewhere/{names[p['image_id']]}", "category_id": p["category_id"],
              "bbox": p["bbox"], "score": p["score"]} for p in r.predictions]
    path = tmp_path / "named.json"
    path.write_bytes(orjson.dumps(named))
    ev = evaluate_predictions(store, path, version, "valid")
    assert ev.metrics.to_json() == r.detection.metrics.to_json()
    assert ev.errors.tide.to_json() == r.detection.errors.tide.to_json()
    # by the export's ids, as given
    assert evaluate_predictions(store, r.predictions, version).metrics.stats == r.detection.metrics.stats
    # a COCO file with images and scored annotations, categories by name (ids here differ from the version's)
    cats = r.detection.metrics.per_class
    remap = {c.category_id: 100 + k for k, c in enumerate(cats)}
    coco = {"images": [{"id": 1000 + i, "file_name": n} for i, n in names.items()],
            "categories": [{"id": remap[c.category_id], "name": c.name} for c in cats],
            "annotations": [{"id": k, "image_id": 1000 + p["image_id"], "category_id": remap[p["category_id"]],
                             "bbox": p["bbox"], "score": p["score"]} for k, p in enumerate(r.predictions)]}
    assert evaluate_predictions(store, coco, version).metrics.stats == r.detection.metrics.stats
    with pytest.raises(FormatError, match="match no image"):
        evaluate_predictions(store, [{**named[0], "file_name": "nope.png"}], version)
    with pytest.raises(FormatError, match="is not an image of version"):
        evaluate_predictions(store, [{**r.predictions[0], "image_id": 999}], version)


def test_cli_evaluate_errors_compare(project, evaluated, tmp_path):
    store, version, _ = project
    p = str(store.root)
    res = runner.invoke(app, ["evaluate", "b", "--dataset-version", version, "--project", p, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["metrics"] == json.loads(json.dumps(evaluated.detection.metrics.to_json()))
    assert out["evaluation_id"] > evaluated.evaluation_id and len(out["events"]) == len(evaluated.events)
    res = runner.invoke(app, ["evaluate", "b", "--project", p, "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert "COCO metrics" in res.output and (tmp_path / "plots" / "pr_curve.png").exists()
    missed = [e for e in evaluated.events if e["error"] == "missed"]
    res = runner.invoke(app, ["errors", "b", "--type", "missed", "--project", p, "--json",
                              "--show", str(tmp_path / "show")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [(e["image_id"], e["box"]) for e in out["events"]] == [(e["image_id"], e["box"]) for e in missed]
    assert len(out["drawn"]) == len(missed) == len(list((tmp_path / "show").glob("*_missed_*.png")))
    res = runner.invoke(app, ["errors", "b", "--type", "nonsense", "--project", p])
    assert res.exit_code == 2
    res = runner.invoke(app, ["errors", "b", "--project", p])
    assert res.exit_code == 0 and "error events of b" in res.output
    res = runner.invoke(app, ["evaluate", "--compare", "a", "--compare", "b", "--dataset-version", version,
                              "--project", p, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["older"]["model"] == "a" and out["newer"]["model"] == "b" and out["metrics"][0]["metric"] == "map"
    named = tmp_path / "preds.json"
    named.write_bytes(orjson.dumps(evaluated.predictions))
    res = runner.invoke(app, ["evaluate", "--predictions", str(named), "--dataset-version", version,
                              "--project", p, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["metrics"]["map"] == evaluated.detection.metrics.map


def test_draw_event_colours(project, evaluated, tmp_path):
    from visionloop.evaluate.show import GREEN, RED, draw_events

    store, _, _ = project
    ev, events = model_errors(store, "b", error="localization")
    events = events or model_errors(store, "b", error="missed")[1]
    paths = draw_events(store, events[:1], tmp_path, crop=False)
    import cv2

    img = cv2.imread(str(paths[0]))
    e = events[0]
    colours = {tuple(int(v) for v in px) for px in img.reshape(-1, 3)}
    assert (GREEN in colours) == (e.gt_box is not None or e.kind == "false_negative")
    assert (RED in colours) == (e.pred_box is not None)


def test_classifier_evaluation(tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for i in range(16):
        cls = ("red", "blue")[i % 2]
        img = rng.integers(0, 60, (48, 48, 3)).astype(np.uint8)
        img[..., 2 if cls == "red" else 0] += 180
        (root / "data" / cls).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "data" / cls / f"{cls}_{i:02d}.png"), img)
    store = Store.init(root / "project")
    import_dataset(store, root / "data")
    version = create_version(store, SPLIT, workers=0).name
    train(store, version, task="classify", epochs=1, name="c", **FAST)
    r = evaluate_model(store, "c", version)
    info = registry.get(store, "c")
    p = Predictor(store.blobs.get(info.export("onnx", "fp32").sha256))
    ds = VersionDataset(store, version, "valid")
    truth, probs = [], []
    for k in range(len(ds)):
        image, target = ds[k]
        truth.append(p.classes.index(ds.class_names[int(target["image_labels"][0])]))
        probs.append(p.predict(image).probabilities)
    want = classification_metrics(np.asarray(truth), np.stack(probs), p.classes)
    assert r.classification.to_json() == want.to_json() and r.images == len(ds) == 4
    wrong = int((np.stack(probs).argmax(1) != np.asarray(truth)).sum())
    assert len(evaluation_store.events(store, r.evaluation_id)) == wrong
    assert evaluation_store.get(store, r.evaluation_id).metrics["classification"]["accuracy"] == want.accuracy


def test_unexported_model_and_empty_split(project):
    store, version, _ = project
    with pytest.raises(VisionLoopError, match="no images in split 'test'"):
        evaluate_model(store, "a", version, "test")
    with pytest.raises(VisionLoopError, match="no ONNX int8 export"):
        evaluate_model(store, "a", version, precision="int8")
    assert Path(store.root).exists()
