"""`visionloop label-errors` on a tiny synthetic project: the held-out images scored, against scores computed
here from the model's own ONNX predictions; refusals; tagging (undoable), drawing, and --folds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from visionloop import formats
from visionloop.cli.main import app
from visionloop.demo import synthetic
from visionloop.infer import Predictor
from visionloop.infer.embed import read_rgb
from visionloop.ingest import import_dataset
from visionloop.loop.label_errors import ImageLabels, calibration, image_score
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store import tags as tag_store
from visionloop.versions import VersionDataset, create_version

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """16 labelled shapes images, versioned 12/4, a detector trained for 2 steps on the 12."""
    from visionloop.train import train

    root = tmp_path_factory.mktemp("le-cli")
    formats.write(synthetic.shapes(16, seed=0, size=(96, 96), folder=root / "render"), root / "coco",
                  format="coco", classes=synthetic.classes())
    store = Store.init(root / "project")
    import_dataset(store, root / "coco")
    version = create_version(store, SPLIT, workers=0).name
    train(store, version, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det")
    yield store, root, version
    store.close()


def run(root, *args):
    return CliRunner().invoke(app, ["label-errors", *args, "--project", str(root / "project")])


def expected(store, version, conf=0.05):
    """The held-out images' scores, recomputed here: the version's valid items' source images, predicted by the
    model's ONNX export on the project's blobs, scored against the project's annotations."""
    ds = VersionDataset(store, version, "valid")
    shas = {ds.sample(i).image.sha256 for i in range(len(ds))}
    images = [im for im in tag_store.images(store) if im.sha256 in shas]
    info = registry.get(store, "det")
    p = Predictor(registry.blob_file(store, info.export("onnx", "fp32").sha256))
    boxes = tag_store.boxes(store, [im.id for im in images])
    inputs = []
    for im in images:
        pred = p.predict(read_rgb(registry.blob_file(store, im.sha256)), conf=conf)
        anns = boxes[im.id]
        inputs.append(ImageLabels(
            im.id, im.file_name, np.asarray([b.box for b in anns], float).reshape(-1, 4), [b.label for b in anns],
            [b.id for b in anns], pred.boxes, [p.classes[int(c)] for c in pred.labels], pred.scores, im.sha256))
    scale = calibration(inputs)  # over the scored images, per class
    return {x.image_id: image_score(x, scale=scale) for x in inputs}


def test_held_out_split_scored_exactly(project):
    store, root, version = project
    r = run(root, "det", "--json", "--top", "100")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    want = expected(store, version)
    assert (data["model"], data["version"], data["split"], data["folds"], data["scored"]) == ("det", version, "valid",
                                                                                            None, 4)
    assert data["top"] == 4 and data["tag"] is None and data["batch_id"] is None
    got = {im["image_id"]: im for im in data["images"]}
    assert set(got) == set(want)
    for i, w in want.items():
        assert got[i]["score"] == pytest.approx(w.score, abs=1e-6)
        assert [f["kind"] for f in got[i]["findings"]] == [f.kind for f in w.findings]
        assert [f["annotation_id"] for f in got[i]["findings"]] == [f.annotation_id for f in w.findings]
    scores = [im["score"] for im in data["images"]]
    assert scores == sorted(scores, reverse=True)
    # every annotation of a scored image is judged once
    boxes = tag_store.boxes(store, list(want))
    for i in want:
        judged = [f["annotation_id"] for f in got[i]["findings"] if f["annotation_id"] is not None]
        assert len(judged) == len(set(judged)) and set(judged) <= {b.id for b in boxes[i]}


def test_train_split_is_refused_without_folds(project):
    _, root, _ = project
    r = run(root, "det", "--split", "train")
    assert r.exit_code != 0
    from visionloop.core.errors import VisionLoopError

    assert isinstance(r.exception, VisionLoopError)  # main() prints it as one red line
    assert "not out-of-sample" in str(r.exception) and "--folds K" in str(r.exception)


def test_tag_and_show(project, tmp_path):
    store, root, _ = project
    r = run(root, "det", "--top", "2", "--tag", "relabel", "--show", str(tmp_path / "drawn"), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    picked = [im["image_id"] for im in data["images"]]
    assert len(picked) == 2 and data["tag"] == "relabel" and data["batch_id"] is not None
    tagged = sorted(im.id for im in tag_store.images(store) if "relabel" in im.tags)
    assert tagged == sorted(picked)
    drawn = sorted(p.name for p in (tmp_path / "drawn").glob("*.png"))
    want = sorted(f"{rank * 100 + j:06d}_{f['kind']}_{im['file_name'].rsplit('/', 1)[-1].rsplit('.', 1)[0]}.png"
                  for rank, im in enumerate(data["images"], 1) for j, f in enumerate(im["findings"][:3]))
    assert drawn == want and len(want) >= 2
    u = CliRunner().invoke(app, ["undo", str(data["batch_id"]), "--project", str(root / "project")])
    assert u.exit_code == 0, u.output
    assert not [im.id for im in tag_store.images(store) if "relabel" in im.tags]


def test_folds_train_a_model_per_fold_and_score_every_image(project):
    store, root, _ = project
    before = {m.name for m in registry.list_all(store)}
    r = run(root, "det", "--folds", "2", "--epochs", "1", "--top", "100", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["folds"] == 2 and data["scored"] == 16 and len(data["fold_models"]) == 2
    assert set(data["fold_models"]) == {m.name for m in registry.list_all(store)} - before
    folds = {im["image_id"]: im["fold"] for im in data["images"]}
    assert sorted(folds.values()).count(1) == 8 and sorted(folds.values()).count(2) == 8
    # each fold model trained on the other fold only
    for k, name in enumerate(data["fold_models"], 1):
        info = registry.get(store, name)
        ds = VersionDataset(store, info.version_id, "train")
        trained_on = {ds.sample(i).image.sha256 for i in range(len(ds))}
        fold_shas = {im.sha256 for im in tag_store.images(store) if folds.get(im.id) == k}
        assert len(ds) == 8 and not trained_on & fold_shas
