"""`visionloop embed | similar | search` on 40 raccoon photos plus resized and recompressed copies of three."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.ingest import import_dataset
from visionloop.loop.similar import VectorIndex
from visionloop.store import Store
from visionloop.store import embeddings as vectors_store
from visionloop.store import tags as tag_store

NUMBERS = list(range(1, 41))
#: original → its copy: half size (JPEG 90), the same size recompressed at JPEG 40, 0.7× at JPEG 60
COPIES = {5: ("copy-5-half.jpg", 0.5, 90), 17: ("copy-17-q40.jpg", 1.0, 40), 33: ("copy-33-small.jpg", 0.7, 60)}
CONCEPT = [3, 8, 21, 29]  # the concept's positives (project images); negatives are photos outside the project
NEGATIVES = [101, 102, 103, 104, 105, 106]

runner = CliRunner()


def cli(*args: str) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory, voc_subset, raccoon):
    root = tmp_path_factory.mktemp("similar")
    voc_subset(root / "voc", NUMBERS)
    loose = root / "loose"  # YOLO layout without label files: unlabelled copies
    (loose / "images").mkdir(parents=True)
    (loose / "labels").mkdir()
    for n, (name, scale, quality) in COPIES.items():
        im = cv2.imread(str(raccoon / "images" / f"raccoon-{n}.jpg"))
        im = cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else im
        cv2.imwrite(str(loose / "images" / name), im, [cv2.IMWRITE_JPEG_QUALITY, quality])
    with Store.init(root / "project") as store:
        import_dataset(store, root / "voc", format="voc")
        import_dataset(store, loose, format="yolo")
    return root / "project"


def ids(store: Store) -> dict[str, int]:
    return {im.file_name.rsplit("/", 1)[-1]: im.id for im in tag_store.images(store)}


def test_embed_is_incremental(project):
    first = cli("embed", "-p", str(project), "--workers", "2")
    assert (first["images"], first["blobs"], first["embedded"], first["kept"]) == (43, 43, 43, 0)
    again = cli("embed", "-p", str(project))
    assert (again["embedded"], again["kept"]) == (0, 43)
    with Store.open(project) as store:
        shas, m = vectors_store.load(store, first["embedder"])
    assert m.shape == (43, 1280) and np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)


def test_similar_returns_the_copy_first(project, raccoon):
    with Store.open(project) as store:
        by_name = ids(store)
    for n, (copy, _, _) in COPIES.items():
        out = cli("similar", f"raccoon-{n}.jpg", "-k", "5", "-p", str(project))
        assert out["hits"][0]["image_id"] == by_name[copy], (n, out["hits"][:2])
        assert len(out["hits"]) == 5 and by_name[f"raccoon-{n}.jpg"] not in [h["image_id"] for h in out["hits"]]
        back = cli("similar", str(by_name[copy]), "-k", "1", "-p", str(project))  # by id, the other way round
        assert back["hits"][0]["image_id"] == by_name[f"raccoon-{n}.jpg"]
    # a file outside the project: the original's bytes find the original itself first
    out = cli("similar", str(raccoon / "images" / "raccoon-17.jpg"), "-k", "2", "-p", str(project))
    assert [h["image_id"] for h in out["hits"]] == [by_name["raccoon-17.jpg"], by_name["copy-17-q40.jpg"]]


def test_similar_refuses_an_unknown_image(project):
    r = runner.invoke(app, ["similar", "no-such.jpg", "-p", str(project)])
    assert r.exit_code == 1 and "no project image 'no-such.jpg'" in str(r.exception)


def test_concept_search_ranks_its_examples_first(project, raccoon):
    img = raccoon / "images"
    r = runner.invoke(app, ["concepts", "train", "--name", "mine", "-p", str(project),
                            *[a for n in CONCEPT for a in ("--positive", str(img / f"raccoon-{n}.jpg"))],
                            *[a for n in NEGATIVES for a in ("--negative", str(img / f"raccoon-{n}.jpg"))]])
    assert r.exit_code == 0, r.output
    out = cli("search", "--concept", "mine", "-k", "10", "-p", str(project))
    with Store.open(project) as store:
        by_name = ids(store)
    assert {h["image_id"] for h in out["hits"][:4]} == {by_name[f"raccoon-{n}.jpg"] for n in CONCEPT}
    assert out["hits"][0]["score"] >= out["hits"][4]["score"]


def test_index_recall_against_exact_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:100] + 0.05 * rng.standard_normal((100, 128)).astype(np.float32)
    exact, ann = VectorIndex(x), VectorIndex(x, exact_below=0)
    assert exact.exact and not ann.exact
    truth = [set(exact.search(v, 10)[0].tolist()) for v in q]
    found = [set(ann.search(v, 10)[0].tolist()) for v in q]
    recall = np.mean([len(t & f) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95, recall
    rows, sims = exact.search(q[0], 3)
    assert rows[0] == 0 and np.allclose(sims, np.sort(x @ q[0])[::-1][:3], atol=1e-5)
