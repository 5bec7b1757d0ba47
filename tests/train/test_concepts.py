"""Concepts: the numpy heads against independent oracles, the ONNX embedder on real crops, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.infer import concepts as heads
from visionloop.infer.embed import OnnxEmbedder
from visionloop.store import Store, lineage
from visionloop.store import concepts as registry
from visionloop.store.lineage import Kind, Ref

runner = CliRunner()


# -- heads on hand-made vectors ------------------------------------------------------------------
def test_logistic_matches_an_independent_optimiser():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    pos = np.array([1.0, 0.2, 0.0, 0.1]) + rng.normal(0, 0.1, (5, 4))
    neg = np.array([0.1, 1.0, 0.3, 0.0]) + rng.normal(0, 0.1, (3, 4))
    head = heads.fit(pos, neg)
    assert head.kind == "logistic" and head.threshold == 0.5
    x = np.concatenate([pos, neg]) / np.linalg.norm(np.concatenate([pos, neg]), axis=1, keepdims=True)
    y = np.array([1.0] * 5 + [0.0] * 3)
    sw = np.where(y == 1, 8 / 10, 8 / 6)
    lam = heads.RIDGE * 8

    def objective(theta):
        z = x @ theta[:4] + theta[4]
        return float(np.sum(sw * (np.logaddexp(0, z) - y * z)) + lam / 2 * theta[:4] @ theta[:4])

    ref = optimize.minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(head.weights, ref[:4], atol=2e-4)
    assert head.bias == pytest.approx(ref[4], abs=2e-4)
    assert head.decide(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.9, 0.1, 0, 0], [0, 0.8, 0.5, 0]])).tolist() == \
        [True, False, True, False]
    assert head.stats["train_accuracy"] == 1.0


def test_prototype_threshold_from_leave_one_out_spread():
    pos = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.8, -0.6, 0.0]])
    head = heads.fit(pos)
    assert head.kind == "prototype"
    np.testing.assert_allclose(head.weights, [1.0, 0.0, 0.0], atol=1e-7)
    loo = np.array([1.0, 1.08 / np.sqrt(3.6), 1.08 / np.sqrt(3.6)])  # by hand: x_i · unit(sum of the others)
    assert head.threshold == pytest.approx(loo.mean() - 3 * loo.std(), abs=1e-9)
    assert head.decide(np.array([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])).tolist() == \
        [True, False, False]
    assert heads.ConceptHead.from_json(json.loads(json.dumps(head.to_json()))).threshold == head.threshold
    with pytest.raises(VisionLoopError, match="at least 2 positive"):
        heads.fit(pos[:1])


def test_several_concepts_answer_independently():
    a = heads.ConceptHead("prototype", np.array([1.0, 0.0], np.float32), threshold=0.9)
    b = heads.ConceptHead("prototype", np.array([0.0, 1.0], np.float32), threshold=0.5)
    preds = heads.predict({"a": a, "b": b}, np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), ["x.png", "y.png", "z"])
    assert [p.matches for p in preds] == [["a"], ["b"], ["b"]]
    assert preds[1].to_json()["concepts"][1] == {"concept": "b", "score": 0.8, "match": True}


# -- real embeddings -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder_file(tmp_path_factory) -> Path:
    from visionloop.models.embedder import Embedder, export_embedder

    path = tmp_path_factory.mktemp("embedder") / "lite0.onnx"
    path.write_bytes(export_embedder(Embedder.create()))
    return path


def _colours(root: Path, n: int, seed: int) -> tuple[Path, Path]:
    import cv2

    rng = np.random.default_rng(seed)
    for cls in ("red", "blue"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 60, (48, 48, 3)).astype(np.uint8)
            img[..., 2 if cls == "red" else 0] += 180  # BGR on disk
            cv2.imwrite(str(root / cls / f"{cls}_{i}.png"), img)
    return root / "red", root / "blue"


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return _colours(root / "train", 4, 0), _colours(root / "held", 4, 1)


def test_red_vs_blue_exact(embedder_file, colours):
    (red, blue), (held_red, held_blue) = colours
    emb = OnnxEmbedder(embedder_file)
    files = sorted(held_red.iterdir()) + sorted(held_blue.iterdir())
    v = emb.embed_files(files)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    logistic = heads.fit(emb.embed_files(sorted(red.iterdir())), emb.embed_files(sorted(blue.iterdir())))
    proto = heads.fit(emb.embed_files(sorted(red.iterdir())))
    assert logistic.decide(v).tolist() == [True] * 4 + [False] * 4
    assert proto.decide(v).tolist() == [True] * 4 + [False] * 4


def test_user_embedder_and_lineage_to_the_batch(embedder_file, colours_project):
    from visionloop.train.concepts import train_concept

    store, _ = colours_project
    data = Path(store.root).parent / "data"
    result = train_concept(store, "reddish", [data / "red"], [data / "blue"], embedder=embedder_file)
    c = result.concept
    assert (c.kind, c.positives, c.negatives, c.dim) == ("logistic", 8, 8, 1280)
    assert c.embedder.startswith("onnx:lite0.onnx@") and not result.exported_embedder
    assert registry.get(store, "reddish").images == c.images
    with store.session() as s:
        edges = lineage.parents(s, Ref(Kind.CONCEPT, c.id))
    assert [e.parent.kind for e in edges] == [Kind.BATCH]
    assert sorted(edges[0].params["images"]) == sorted(i["sha256"] for i in c.images)
    with pytest.raises(VisionLoopError, match="both a positive and a negative"):
        train_concept(store, "bad", [data / "red"], [data / "red" / "red_00.png"], embedder=embedder_file)
    registry.delete_concept(store, "reddish")


# -- raccoon crops ------------------------------------------------------------------------------------
def _crops(raccoon: Path, out: Path, limit: int) -> tuple[list[Path], list[Path]]:
    """The first raccoon box of each photo, and the largest square (16 px grid) touching no box."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    pos: list[Path] = []
    neg: list[Path] = []
    for n in range(1, 201):
        im = cv2.imread(str(raccoon / "images" / f"raccoon-{n}.jpg"))
        bxs = [tuple(int(float(b.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax"))
               for b in ET.parse(raccoon / "annotations" / f"raccoon-{n}.xml").getroot().iter("bndbox")]
        h, w = im.shape[:2]
        if len(pos) < limit:
            x0, y0, x1, y1 = bxs[0]
            pos.append(out / f"r{n}.png")
            cv2.imwrite(str(pos[-1]), im[max(0, y0):y1, max(0, x0):x1])
        if len(neg) < limit:
            sq = next(((x, y, s) for s in range(min(w, h) // 16 * 16, 63, -16) for y in range(0, h - s + 1, 16)
                       for x in range(0, w - s + 1, 16)
                       if all(x + s <= b[0] or b[2] <= x or y + s <= b[1] or b[3] <= y for b in bxs)), None)
            if sq is not None:
                x, y, s = sq
                neg.append(out / f"b{n}.png")
                cv2.imwrite(str(neg[-1]), im[y:y + s, x:x + s])
        if len(pos) >= limit and len(neg) >= limit:
            return pos, neg
    return pos, neg


def test_raccoon_vs_background_crops(embedder_file, raccoon, tmp_path):
    pos, neg = _crops(raccoon, tmp_path, 20)
    emb = OnnxEmbedder(embedder_file)
    held = pos[10:] + neg[10:]
    truth = np.array([True] * 10 + [False] * 10)
    v = emb.embed_files(held)
    logistic = heads.fit(emb.embed_files(pos[:10]), emb.embed_files(neg[:10]))
    proto = heads.fit(emb.embed_files(pos[:10]))
    assert float((logistic.decide(v) == truth).mean()) >= 0.9  # measured 1.0 (bench: 80/80 on 40 + 40)
    assert float((proto.decide(v) == truth).mean()) >= 0.85  # measured 1.0 (bench: 79/80)


# -- CLI ----------------------------------------------------------------------------------------------
def test_cli_train_predict_list(tmp_path, colours):
    (red, blue), (held_red, held_blue) = colours
    proj = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = runner.invoke(app, ["concepts", "train", "--name", "red", "--positive", str(red), "--negative", str(blue),
                            "-p", str(proj), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["kind"], out["positives"], out["negatives"], out["exported_embedder"]) == ("logistic", 4, 4, True)
    r = runner.invoke(app, ["concepts", "train", "--name", "redp", "--positive", str(red), "-p", str(proj)])
    assert r.exit_code == 0 and "prototype of 4 positives" in r.stdout and "exported" not in r.stdout
    r = runner.invoke(app, ["concepts", "predict", "red,redp", str(held_red), str(held_blue), "-p", str(proj),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert [p["matches"] for p in json.loads(r.stdout)] == [["red", "redp"]] * 4 + [[]] * 4
    r = runner.invoke(app, ["concepts", "list", "-p", str(proj), "--json"])
    assert [(c["name"], c["kind"]) for c in json.loads(r.stdout)] == [("red", "logistic"), ("redp", "prototype")]
    r = runner.invoke(app, ["concepts", "predict", "nope", str(held_red), "-p", str(proj)])
    assert isinstance(r.exception, VisionLoopError) and "no concept named 'nope'" in str(r.exception)
    # prediction needs no torch: a fresh process
    code = ("import sys; from typer.testing import CliRunner; from visionloop.cli.main import app; "
            f"r = CliRunner().invoke(app, ['concepts', 'predict', 'all', {str(held_blue)!r}, '-p', {str(proj)!r}, "
            "'--json']); assert r.exit_code == 0, r.output; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(r.stdout)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Store.open(proj) as store:
        assert [c.name for c in registry.list_all(store)] == ["red", "redp"]
    # the same answers over HTTP: POST /v1/concepts/{name}/predict
    import httpx

    from visionloop.serve import Settings
    from visionloop.serve.background import BackgroundServer

    cli = {p["file_name"]: p for p in json.loads(runner.invoke(app, [
        "concepts", "predict", "red,redp", str(held_red), str(held_blue), "-p", str(proj), "--json"]).stdout)}
    files = sorted(held_red.glob("*.png")) + sorted(held_blue.glob("*.png"))
    with BackgroundServer(proj, Settings(refresh_s=0.2, url_allow_list=[])) as server:
        listed = httpx.get(f"{server.url}/v1/concepts").json()
        assert [(c["name"], c["kind"]) for c in listed] == [("red", "logistic"), ("redp", "prototype")]
        out = httpx.post(f"{server.url}/v1/concepts/red,redp/predict", timeout=60,
                         files=[("files", (f.name, f.read_bytes())) for f in files]).json()
        assert out["concepts"] == ["red", "redp"] and [i["name"] for i in out["images"]] == [f.name for f in files]
        for image in out["images"]:
            want = cli[image["name"]]
            assert image["matches"] == want["matches"]
            for a, b in zip(image["concepts"], want["concepts"], strict=True):
                assert a["concept"] == b["concept"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
        missing = httpx.post(f"{server.url}/v1/concepts/nope/predict", files=[("files", ("a.png", b"x"))])
        assert missing.status_code == 404 and "nope" in missing.json()["message"]
