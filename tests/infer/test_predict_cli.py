"""`visionloop predict`: --tile, videos with --every, and --import as pre-labels (source=model, confidences)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core.sample import Source
from visionloop.ingest import import_dataset, undo_batch
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.versions import create_version

runner = CliRunner()
RECIPE = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 1.0, "valid": 0.0, "test": 0.0}}}


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _squares(path, corners, size=256):
    img = np.zeros((size, size, 3), np.uint8)
    for x, y in corners:
        img[y:y + 12, x:x + 12] = 255
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture()
def project(tmp_path, squares_onnx):
    """A project with one image (a folders dataset) and model `m1` whose ONNX export is the square detector."""
    seed = tmp_path / "seed"
    (seed / "square").mkdir(parents=True)
    _squares(seed / "square" / "seed.png", [(40, 40)], size=64)
    store = Store.init(tmp_path / "proj")
    import_dataset(store, seed)
    version = create_version(store, RECIPE, workers=0)
    info = registry.create(store, task="detect", arch="fake", weights_init="none", version_id=version.id,
                           classes=["square"], input_size=[64, 64],
                           preprocessing={"width": 64, "height": 64, "resize": "fit"}, hyper={})
    registry.finish(store, info.name, weights=b"fake", metrics={})
    registry.add_export(store, info.name, format="onnx", precision="fp32", data=squares_onnx)
    store.close()
    return tmp_path / "proj"


def test_predict_tiles_video_and_import(tmp_path, project):
    imgs = tmp_path / "new"
    imgs.mkdir()
    _squares(imgs / "a.png", [(8, 8), (52, 100), (200, 236)])
    _squares(imgs / "b.png", [])
    p = str(project)
    plain = _json(runner.invoke(app, ["predict", "m1", str(imgs / "a.png"), "--conf", "0.9", "-p", p, "--json"]))
    assert plain[0]["detections"] == []
    tiled = _json(runner.invoke(app, ["predict", "m1", str(imgs), "--tile", "5x5", "--overlap", "0.25",
                                      "--conf", "0.9", "-p", p, "--json"]))
    assert [d["box"] for d in tiled[0]["detections"]] == [[8, 8, 20, 20], [52, 100, 64, 112], [200, 236, 212, 248]]
    assert tiled[1]["detections"] == []
    bad = runner.invoke(app, ["predict", "m1", str(imgs), "--tile", "2by2", "-p", p])
    assert bad.exit_code != 0 and "ROWSxCOLS" in str(bad.exception)

    # pre-labels: one batch of model annotations with the exact scores, undoable
    out = _json(runner.invoke(app, ["predict", "m1", str(imgs), "--tile", "5x5", "--overlap", "0.25", "--conf",
                                    "0.9", "--import", "-p", p, "--out", str(tmp_path / "o"), "--json"]))
    rep = out["import"]
    assert (rep["images_added"], rep["annotations_added"], rep["quarantined"]) == (2, 3, [])
    with Store.open(project) as store:
        samples = {s.image.file_name: s for s in store.samples()}
        assert set(samples) == {"square/seed.png", "a.png", "b.png"}
        anns = samples["a.png"].annotations
        assert sorted((a.geometry.x0, a.geometry.y0, a.geometry.x1, a.geometry.y1) for a in anns) == [
            (8, 8, 20, 20), (52, 100, 64, 112), (200, 236, 212, 248)]
        assert {(a.source, a.confidence, a.label) for a in anns} == {(Source.MODEL, 1.0, "square")}
        assert samples["b.png"].annotations == () and samples["b.png"].state.value == "missing"
        assert all(a.source is Source.IMPORTED for a in samples["square/seed.png"].annotations)
        undo_batch(store, rep["batch"])
        assert {s.image.file_name for s in store.samples()} == {"square/seed.png"}


def test_import_coco_predictions_as_model_source(tmp_path, project):
    """`visionloop import predictions.coco.json --source model`: COCO `score` becomes the confidence."""
    data = tmp_path / "preds"
    data.mkdir()
    _squares(data / "c.png", [(10, 10)], size=64)
    doc = {"images": [{"id": 1, "file_name": "c.png", "width": 64, "height": 64}],
           "categories": [{"id": 1, "name": "square"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 12, 12], "area": 144,
                            "iscrowd": 0, "score": 0.734512},
                           {"id": 2, "image_id": 1, "category_id": 1, "bbox": [30, 30, 5.5, 6], "area": 33,
                            "iscrowd": 0, "score": 0.125}]}
    (data / "predictions.coco.json").write_bytes(orjson.dumps(doc))
    rep = _json(runner.invoke(app, ["import", str(data / "predictions.coco.json"), "--source", "model",
                                    "-p", str(project), "--json"]))
    assert rep["annotations_added"] == 2
    with Store.open(project) as store:
        (s,) = [s for s in store.samples() if s.image.file_name == "c.png"]
        assert sorted((a.confidence, a.source, a.geometry.x1) for a in s.annotations) == [
            (0.125, Source.MODEL, 35.5), (0.734512, Source.MODEL, 22)]
    wrong = runner.invoke(app, ["import", str(data), "--source", "robot", "-p", str(project)])
    assert wrong.exit_code != 0 and "use model, human or imported" in str(wrong.exception)
    # new pre-labels for an image that is already labelled never replace its labels
    doc["annotations"] = doc["annotations"][:1]
    doc["annotations"][0]["bbox"] = [11, 11, 12, 12]
    (data / "predictions.coco.json").write_bytes(orjson.dumps(doc))
    again = _json(runner.invoke(app, ["import", str(data / "predictions.coco.json"), "--source", "model",
                                      "-p", str(project), "--json"]))
    assert again.get("images_kept_labelled") == 1 and not again.get("images_updated")
    with Store.open(project) as store:
        (s,) = [s for s in store.samples() if s.image.file_name == "c.png"]
        assert len(s.annotations) == 2  # as before


def test_predict_video_tracks(tmp_path, project):
    clip = tmp_path / "square.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for i in range(20):
        f = np.zeros((64, 64, 3), np.uint8)
        f[20:32, 4 + 4 * (i // 5):16 + 4 * (i // 5)] = 255
        w.write(f)
    w.release()
    (res,) = _json(runner.invoke(app, ["predict", "m1", str(clip), "--every", "500ms", "--conf", "0.5", "--iou",
                                       "0.4", "-p", str(project), "--out", str(tmp_path / "o"), "--json"]))
    assert [f["time_ms"] for f in res["frames"]] == [0, 500, 1000, 1500]
    assert [(t["track"], t["frames"], t["duration_ms"]) for t in res["tracks"]] == [(1, 4, 1500.0)]
    assert json.loads((tmp_path / "o" / "square.mp4.video.json").read_text())["tracks"] == res["tracks"]
    text = runner.invoke(app, ["predict", "m1", str(clip), "--every", "1s", "--conf", "0.5", "--iou", "0.4",
                               "-p", str(project)])
    assert text.exit_code == 0 and "track 1 square: 0.00s - 1.00s (1.00s, 2 frames)" in text.stdout
    assert runner.invoke(app, ["predict", "m1", str(clip), "--import", "-p", str(project)]).exit_code != 0
