"""`visionloop select --model A --model B --model C --strategy disagreement|vote-entropy|bald`: three tiny detectors
(seeds 0, 1, 2) on one synthetic project; the exact images picked, against disagreement recomputed here from
each member's own Predictor output with a separate, loop-by-loop matcher."""

from __future__ import annotations

import json
import math

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
MEMBERS = ["d0", "d1", "d2"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """16 labelled shapes images (versioned; three detectors trained 2 steps with seeds 0, 1, 2), 8 unlabelled."""
    from visionloop.train import train

    root = tmp_path_factory.mktemp("committee")
    formats.write(synthetic.shapes(16, seed=0, size=(96, 96), folder=root / "render"), root / "coco",
                  format="coco", classes=synthetic.classes())
    store = Store.init(root / "project")
    import_dataset(store, root / "coco")
    pool = root / "pool"
    (pool / "images").mkdir(parents=True)
    (pool / "labels").mkdir()
    for s in synthetic.shapes(8, seed=1, size=(96, 96), folder=root / "render2"):
        (pool / "images" / f"u_{s.image.file_name.rsplit('/', 1)[-1]}").write_bytes(open(s.image.path, "rb").read())
    import_dataset(store, pool, format="yolo")
    version = create_version(store, SPLIT, workers=0).name
    for seed, name in enumerate(MEMBERS):
        train(store, version, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, seed=seed, name=name)
    yield store, root
    store.close()


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def clusters_here(preds) -> list[list[float]]:
    """Greedy by score (ties: lower member, lower box); each other member adds its best unused same-class box by
    IoU with the seed if ≥ 0.5. One row per object, one score per member (0: it had no box there)."""
    k = len(preds)
    boxes = [[(float(s), m, i, [float(v) for v in b], int(c))
              for i, (b, s, c) in enumerate(zip(p.boxes, p.scores, p.labels, strict=True))]
             for m, p in enumerate(preds)]
    used = set()
    rows = []
    for s, m, i, b, c in sorted((x for member in boxes for x in member), key=lambda x: (-x[0], x[1], x[2])):
        if (m, i) in used:
            continue
        used.add((m, i))
        row = [0.0] * k
        row[m] = s
        for o in range(k):
            if o == m:
                continue
            best, best_j = -1.0, None
            for _, _, j, b2, c2 in boxes[o]:
                if (o, j) not in used and c2 == c and iou(b, b2) > best:
                    best, best_j = iou(b, b2), j
            if best_j is not None and best >= 0.5:
                used.add((o, best_j))
                row[o] = boxes[o][best_j][0]
        rows.append(row)
    return rows


def disagreement(row: list[float]) -> float:
    found = [s for s in row if s > 0]
    mean = sum(found) / len(found)
    return 1 - len(found) / len(row) + sum((s - mean) ** 2 for s in found) / len(found)


def vote_entropy(row: list[float]) -> float:
    v = sum(1 for s in row if s > 0) / len(row)
    return 0.0 if v in (0.0, 1.0) else -(v * math.log(v) + (1 - v) * math.log(1 - v))


@pytest.mark.parametrize(("strategy", "how", "measure"), [("disagreement", "sum", disagreement),
                                                           ("disagreement", "mean", disagreement),
                                                           ("vote-entropy", "sum", vote_entropy)])
def test_committee_select_picks_the_independently_scored_images(project, strategy, how, measure):
    store, _ = project
    pool = tag_store.images(store, unlabelled_only=True)
    predictors = [Predictor(store.blobs.get(registry.get(store, n).export("onnx", "fp32").sha256)) for n in MEMBERS]
    score = {}
    found_by_some = 0
    for im in pool:
        image = read_rgb(registry.blob_file(store, im.sha256))
        rows = clusters_here([p.predict(image, conf=CONF) for p in predictors])
        per = [measure(r) for r in rows]
        found_by_some += sum(1 for r in rows if 0 < sum(1 for s in r if s > 0) < len(r))
        score[im.id] = (sum(per) if how == "sum" else sum(per) / len(per)) if per else 0.0
    want = sorted(score, key=lambda i: (-score[i], i))[:3]

    args = ["select", "--budget", "3", "--strategy", strategy, "--aggregate", how, "--conf", str(CONF),
            "--dry-run", "-p", str(store.root), "--json"]
    for n in MEMBERS:
        args += ["--model", n]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [x["image_id"] for x in out["picked"]] == want
    for x in out["picked"]:
        assert x["score"] == pytest.approx(score[x["image_id"]], abs=1e-5)
    assert out["members"] == MEMBERS and out["candidates"] == 8 and out["strategy"] == strategy
    # the members do disagree (objects some found and others missed), and the scores are not all one value
    assert found_by_some > 0 and len({round(v, 6) for v in score.values()}) > 1
    last = score[want[-1]]
    assert out["ties"] == sum(1 for i, v in score.items() if i not in want and abs(v - last) <= 1e-4)


def test_committee_select_tags_and_records_the_members(project):
    store, _ = project
    r = CliRunner().invoke(app, ["select", "--budget", "2", "--strategy", "bald", "--model", "d0", "--model", "d1",
                                 "--tag", "committee", "-p", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["members"] == ["d0", "d1"] and out["batch_id"] is not None
    assert {im.id for im in tag_store.images(store) if "committee" in im.tags} == {x["image_id"] for x in out["picked"]}
    assert CliRunner().invoke(app, ["undo", str(out["batch_id"]), "-p", str(store.root)]).exit_code == 0


def test_the_exported_graphs_have_no_dropout(project):
    """Why there is no MC-dropout: the exports are traced in eval mode and the networks have no dropout."""
    import onnx

    store, _ = project
    graph = onnx.load_from_string(store.blobs.get(registry.get(store, "d0").export("onnx", "fp32").sha256)).graph
    assert graph.node and not [n for n in graph.node if n.op_type == "Dropout"]


def test_committee_errors_are_one_line(project):
    store, _ = project
    def run(*args: str):
        return CliRunner().invoke(app, ["select", "--budget", "2", "--dry-run", "-p", str(store.root), *args])

    r = run("--strategy", "disagreement", "--model", "d0")
    assert r.exit_code != 0 and "at least two models" in str(r.exception)
    r = run("--strategy", "disagreement", "--model", "d0", "--model", "d0")
    assert r.exit_code != 0 and "named twice" in str(r.exception)
    r = run("--strategy", "entropy", "--model", "d0", "--model", "d1")
    assert r.exit_code != 0 and "takes one --model" in str(r.exception)
    other = registry.create(store, task="classify", arch="x", weights_init="none",
                            version_id=registry.get(store, "d0").version_id, classes=["a", "b"], input_size=[64, 64],
                            preprocessing={}, hyper={}, name="cls")
    r = run("--strategy", "vote-entropy", "--model", "d0", "--model", other.name)
    assert r.exit_code != 0 and "must share the task and class list" in str(r.exception)
    assert "model cls differs from d0 (task classify vs detect)" in str(r.exception)


def test_classifier_committee_scores_from_the_members_probabilities(tmp_path):
    """committee_uncertainty on classifiers: each image's members' probabilities, single- and multi-label."""
    import cv2
    import numpy as np

    from visionloop.loop.select import committee_uncertainty
    from visionloop.loop.strategies import Aggregate, Strategy

    files = []
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
        files.append(str(tmp_path / f"{i}.png"))

    class Member:  # answers by the image's pixel value
        task = "classify"

        def __init__(self, table):
            self.table = table

        def predict(self, image, conf):
            return type("P", (), {"probabilities": np.asarray(self.table[int(image[0, 0, 0])])})()

    a = Member({0: [1.0, 0.0], 1: [0.5, 0.5]})
    b = Member({0: [0.0, 1.0], 1: [0.5, 0.5]})
    # image 0: sure of different classes (ln 2); image 1: unsure alike (0)
    got = committee_uncertainty([a, b], files, Strategy.BALD, Aggregate.MAX)
    np.testing.assert_allclose(got, [math.log(2), 0.0], atol=1e-12)
    np.testing.assert_allclose(committee_uncertainty([a, b], files, Strategy.VOTE_ENTROPY, Aggregate.MAX),
                               [math.log(2), 0.0])
    # multi-label: each class a yes/no of its own, summed: image 0 is ln 2 for each of the two classes
    np.testing.assert_allclose(committee_uncertainty([a, b], files, Strategy.BALD, Aggregate.SUM, multi_label=True),
                               [2 * math.log(2), 0.0], atol=1e-12)
