"""`visionloop select` on a tiny synthetic project: the exact images picked, against scores computed here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from visionloop import formats
from visionloop.cli.main import app
from visionloop.demo import synthetic
from visionloop.infer import Predictor
from visionloop.infer.embed import read_rgb
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store import tags as tag_store
from visionloop.versions import create_version

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}
CONF = 0.05


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """16 labelled shapes images (versioned, a detector trained for 2 steps) and 8 unlabelled ones."""
    from visionloop.train import train

    root = tmp_path_factory.mktemp("select")
    formats.write(synthetic.shapes(16, seed=0, size=(96, 96), folder=root / "render"), root / "coco",
                  format="coco", classes=synthetic.classes())
    store = Store.init(root / "project")
    import_dataset(store, root / "coco")
    pool = root / "pool"  # YOLO layout with no label files: nobody labelled these
    (pool / "images").mkdir(parents=True)
    (pool / "labels").mkdir()
    for s in synthetic.shapes(8, seed=1, size=(96, 96), folder=root / "render2"):
        (pool / "images" / f"u_{s.image.file_name.rsplit('/', 1)[-1]}").write_bytes(open(s.image.path, "rb").read())
    import_dataset(store, pool, format="yolo")
    version = create_version(store, SPLIT, workers=0).name
    train(store, version, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det")
    yield store, root
    store.close()


def binary_entropy(s: np.ndarray) -> np.ndarray:
    s = np.clip(s.astype(np.float64), 1e-12, 1 - 1e-12)
    return -(s * np.log(s) + (1 - s) * np.log(1 - s))


def test_unlabelled_are_the_imported_loose_images(project):
    store, _ = project
    pool = tag_store.images(store, unlabelled_only=True)
    assert len(pool) == 8 and all(im.file_name.rsplit("/", 1)[-1].startswith("u_") for im in pool)
    assert len(tag_store.images(store)) == 24


@pytest.mark.parametrize("how", ["max", "sum"])
def test_entropy_select_picks_the_independently_scored_images(project, how):
    store, _ = project
    pool = tag_store.images(store, unlabelled_only=True)
    p = Predictor(store.blobs.get(registry.get(store, "det").export("onnx", "fp32").sha256))
    agg = {"max": np.max, "sum": np.sum}[how]
    score = {}
    for im in pool:
        s = p.predict(read_rgb(registry.blob_file(store, im.sha256)), conf=CONF).scores
        score[im.id] = float(agg(binary_entropy(s))) if len(s) else 0.0
    want = sorted(score, key=lambda i: (-score[i], i))[:3]  # ties to the lower id (the pool is in id order)

    r = CliRunner().invoke(app, ["select", "--model", "det", "--budget", "3", "--strategy", "entropy",
                                 "--aggregate", how, "--conf", str(CONF), "--dry-run", "-p", str(store.root),
                                 "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [x["image_id"] for x in out["picked"]] == want
    for x in out["picked"]:
        assert x["score"] == pytest.approx(score[x["image_id"]], abs=1e-5)
    assert out["candidates"] == 8 and out["tag"] is None and out["batch_id"] is None
    assert any(v > 0 for v in score.values())  # the model said something: not a test of all-zero ties
    last = score[want[-1]]
    assert out["ties"] == sum(1 for i, v in score.items() if i not in want and abs(v - last) <= 1e-4)


def test_select_tags_in_an_undoable_batch(project):
    store, _ = project
    runner = CliRunner()
    r = runner.invoke(app, ["select", "--budget", "4", "--strategy", "random", "--seed", "3", "--from", "all",
                            "--tag", "round1", "-p", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    everything = tag_store.images(store)
    want = [everything[i].id for i in np.random.default_rng(3).permutation(len(everything))[:4]]
    assert [x["image_id"] for x in out["picked"]] == want
    assert out["tag"] == "round1" and out["batch_id"] is not None
    tagged = {im.id for im in tag_store.images(store) if "round1" in im.tags}
    assert tagged == set(want)
    # the same pick again adds nothing and writes no batch
    again = json.loads(runner.invoke(app, ["select", "--budget", "4", "--strategy", "random", "--seed", "3",
                                           "--from", "all", "--tag", "round1", "-p", str(store.root),
                                           "--json"]).stdout)
    assert again["batch_id"] is None
    r = runner.invoke(app, ["undo", str(out["batch_id"]), "-p", str(store.root)])
    assert r.exit_code == 0, r.output
    assert not any("round1" in im.tags for im in tag_store.images(store))


def test_split_and_tag_filters_narrow_the_candidates(project):
    store, _ = project
    runner = CliRunner()
    first = json.loads(runner.invoke(app, ["select", "--budget", "2", "--strategy", "random", "--from", "all",
                                           "--split", "valid", "--tag", "r1", "-p", str(store.root),
                                           "--json"]).stdout)
    valid = [im for im in tag_store.images(store) if im.split == "valid"]
    assert first["candidates"] == len(valid) == 3
    assert [x["image_id"] for x in first["picked"]] == \
        [valid[i].id for i in np.random.default_rng(0).permutation(len(valid))[:2]]
    # the next round leaves out the first round's pick; --has-tag keeps only tagged images
    rest = json.loads(runner.invoke(app, ["select", "--budget", "5", "--strategy", "random", "--from", "all",
                                          "--split", "valid", "--not-tag", "r1", "--dry-run", "-p",
                                          str(store.root), "--json"]).stdout)
    assert rest["candidates"] == 1
    assert {x["image_id"] for x in rest["picked"]} == {im.id for im in valid} - {x["image_id"] for x in
                                                                                 first["picked"]}
    tagged = json.loads(runner.invoke(app, ["select", "--budget", "9", "--strategy", "random", "--from", "all",
                                            "--has-tag", "r1", "--dry-run", "-p", str(store.root),
                                            "--json"]).stdout)
    assert sorted(x["image_id"] for x in tagged["picked"]) == sorted(x["image_id"] for x in first["picked"])
    r = runner.invoke(app, ["select", "--budget", "2", "--strategy", "random", "--split", "valid", "-p",
                            str(store.root)])  # the unlabelled images have no split
    assert r.exit_code != 0 and "none of the 8 unlabelled images match --split valid" in str(r.exception)
    r = runner.invoke(app, ["select", "--from", "predictions", "--model", "det", "--budget", "2", "--not-tag",
                            "r1", "-p", str(store.root)])
    assert r.exit_code == 2 and "--not-tag" in r.output
    runner.invoke(app, ["undo", str(first["batch_id"]), "-p", str(store.root)])


def test_class_and_metadata_filters(project):
    store, root = project
    want = set()  # the images with a disc, from the COCO files the project was imported from
    for f in sorted((root / "coco").rglob("*.json")):
        d = json.loads(f.read_text())
        disc = {c["id"] for c in d["categories"] if c["name"] == "disc"}
        names = {im["id"]: im["file_name"].rsplit("/", 1)[-1] for im in d["images"]}
        want |= {names[a["image_id"]] for a in d["annotations"] if a["category_id"] in disc}
    runner = CliRunner()
    out = json.loads(runner.invoke(app, ["select", "--budget", "99", "--strategy", "random", "--from", "all",
                                         "--class", "disc", "--dry-run", "-p", str(store.root), "--json"]).stdout)
    assert 0 < len(want) < 16 and out["candidates"] == len(want)
    assert {x["file_name"].rsplit("/", 1)[-1] for x in out["picked"]} == want
    r = runner.invoke(app, ["select", "--budget", "2", "--strategy", "random", "--from", "all", "--class", "cat",
                            "-p", str(store.root)])
    assert r.exit_code != 0 and "no class 'cat' in the project" in str(r.exception)
    r = runner.invoke(app, ["select", "--budget", "2", "--strategy", "random", "--from", "all", "--meta",
                            "camera=north", "-p", str(store.root)])
    assert r.exit_code != 0 and "none of the 24 images match --meta camera=north" in str(r.exception)
    from visionloop.store.schema import ImageRow

    ids = [im.id for im in tag_store.images(store)][:3]
    with store.session() as s, s.begin():
        for i, cam in zip(ids, ["north", "north", "south"], strict=True):
            s.get(ImageRow, i).meta = {"camera": cam, "lens": 35}
    try:
        out = json.loads(runner.invoke(app, ["select", "--budget", "9", "--strategy", "random", "--from", "all",
                                             "--meta", "camera=north", "--meta", "lens=35", "--dry-run", "-p",
                                             str(store.root), "--json"]).stdout)
        assert sorted(x["image_id"] for x in out["picked"]) == ids[:2]
    finally:
        with store.session() as s, s.begin():
            for i in ids:
                s.get(ImageRow, i).meta = {}
    r = runner.invoke(app, ["select", "--budget", "2", "--strategy", "random", "--meta", "camera", "-p",
                            str(store.root)])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output


def test_like_and_k_center_with_a_user_embedder(project, tmp_path):
    """A stand-in ONNX embedder (mean colour of 8×8 blocks), so the expected pick is computed here."""
    import onnx
    from onnx import TensorProto, helper

    store, _ = project
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[8, 8], strides=[8, 8])], "blocks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])])
    path = tmp_path / "blocks.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)

    from visionloop.infer.embed import OnnxEmbedder
    from visionloop.loop import strategies as st

    emb = OnnxEmbedder(path)
    everything = tag_store.images(store)
    pool = tag_store.images(store, unlabelled_only=True)
    vec = {im.id: emb.embed_files([registry.blob_file(store, im.sha256)])[0] for im in everything}

    target = pool[0]
    rest = [im for im in pool if im.id != target.id]
    sim = [float(vec[im.id] @ vec[target.id]) for im in rest]
    want = [rest[i].id for i in np.argsort(-np.asarray(sim), kind="stable")[:2]]
    r = CliRunner().invoke(app, ["select", "--budget", "2", "--strategy", "like", "--like", target.file_name,
                                 "--embedder", str(path), "--dry-run", "-p", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    assert [x["image_id"] for x in json.loads(r.stdout)["picked"]] == want

    # k-center: the labelled images are the centres already covered; each pick the farthest from all so far
    labelled = [vec[im.id] for im in everything if im.id not in {p.id for p in pool}]
    x = np.stack([vec[im.id] for im in pool]).astype(np.float64)
    d = np.min([[float(((a - c) ** 2).sum()) for c in labelled] for a in x], axis=1)
    picks = []
    for _ in range(3):
        i = int(np.argmax(np.where(np.isin(np.arange(len(x)), picks), -math.inf, d)))
        picks.append(i)
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
    r = CliRunner().invoke(app, ["select", "--budget", "3", "--strategy", "k-center", "--embedder", str(path),
                                 "--dry-run", "-p", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    assert [x["image_id"] for x in json.loads(r.stdout)["picked"]] == [pool[i].id for i in picks]
    assert st.k_center_greedy(x, 3, centers=np.stack(labelled)).tolist() == picks


def test_user_errors_are_one_line(project):
    store, _ = project
    r = CliRunner().invoke(app, ["select", "--budget", "2", "--strategy", "entropy", "-p", str(store.root)])
    assert r.exit_code != 0 and "needs a model" in str(r.exception)
    r = CliRunner().invoke(app, ["select", "--budget", "2", "--strategy", "nope", "-p", str(store.root)])
    assert "unknown --strategy" in str(r.exception)
