"""POST /v1/inputs: uploads land as one import batch through the ordinary import path."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from visionloop.serve import Settings
from visionloop.store import Store

from .conftest import Server, png


@pytest.fixture(scope="module")
def upload_server(project, tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs") / "project"
    shutil.copytree(project, root)
    with Server(root, Settings(refresh_s=0, max_images=3)) as s:
        yield s, root


def test_images_land_unlabelled_as_one_batch(upload_server):
    s, root = upload_server
    with Store.open(root) as store:
        before = store.stats().to_json()["images"]
    files = [("files", ("../../../etc/evil.png", png(seed=1))), ("files", ("b.jpg", png(seed=2)))]
    r = httpx.post(s.url + "/v1/inputs", files=files, data={"split": "train"}, timeout=60)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["images_added"] == 2 and rep["format"] == "coco" and rep["batch"] and rep["quarantined"] == []
    with Store.open(root) as store:
        assert store.stats().to_json()["images"] == before + 2
        names = {smp.image.file_name for smp in store.samples() if smp.image.file_name in ("evil.png", "b.jpg")}
    assert names == {"evil.png", "b.jpg"}  # the base name only (the import sniffs the bytes, not the name)
    assert not list((root / ".cache" / "uploads").iterdir())  # the staging folder is gone


def test_images_with_annotations(upload_server):
    s, root = upload_server
    coco = {"images": [{"id": 1, "file_name": "c.png", "width": 120, "height": 90}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, 20, 40, 40], "area": 1600,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "square"}]}
    r = httpx.post(s.url + "/v1/inputs", files=[("files", ("c.png", png(seed=3))),
                                                ("annotations", ("instances.json", json.dumps(coco).encode()))],
                   timeout=60)
    assert r.status_code == 201, r.text
    assert (r.json()["images_added"], r.json()["annotations_added"]) == (1, 1)


def test_bad_uploads(upload_server):
    s, _ = upload_server
    r = httpx.post(s.url + "/v1/inputs", files=[("files", ("x.jpg", b"%PDF-1.4 nope"))])
    assert r.status_code == 415 and r.json()["message"] == \
        "image 1 (x.jpg) is not an image this server reads: it looks like a PDF document"
    r = httpx.post(s.url + "/v1/inputs", files=[("files", (f"{i}.png", png(8, 8, seed=i))) for i in range(5)])
    assert r.status_code == 413 and r.json()["message"] == "more than 3 images in one request"
    r = httpx.post(s.url + "/v1/inputs", json={"images": []})
    assert r.status_code == 415 and r.json()["message"] == "POST /v1/inputs takes multipart/form-data"
    r = httpx.post(s.url + "/v1/inputs", files=[("annotations", ("a.json", b"{}"))])
    assert r.status_code == 400 and r.json()["message"] == "no image in the request"


def test_feedback_is_stored_for_relabelling(upload_server):
    import base64

    from visionloop.store import feedback

    s, root = upload_server
    data = png(seed=7)
    body = {"model": "detect", "version": 1, "image": {"base64": base64.b64encode(data).decode(), "name": "f.png"},
            "prediction": [{"class": "square", "confidence": 0.4, "box": {"x0": 1, "y0": 2, "x1": 3, "y1": 4}}],
            "correction": [{"class": "disc", "box": {"x0": 30, "y0": 20, "x1": 70, "y1": 60}}], "note": "a disc"}
    r = httpx.post(s.url + "/v1/feedback", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    import hashlib

    assert out["model"] == "detect" and out["model_version"] == 1 and out["status"] == "open"
    assert out["image_sha256"] == hashlib.sha256(data).hexdigest()
    with Store.open(root) as store:
        (info,) = feedback.list_all(store, status="open")
        assert store.blobs.get(info.image_sha256) == data
    assert info.correction == [{"class": "disc", "box": [30.0, 20.0, 70.0, 60.0]}]
    assert info.prediction == body["prediction"] and info.note == "a disc" and info.image_name == "f.png"


@pytest.mark.parametrize(("change", "status", "message"), [
    ({"correction": [{"class": "cat"}]}, 400, "correction[0]: unknown class 'cat' for model det-a"),
    ({"correction": [{"class": "disc", "box": {"x0": 5, "y0": 5, "x1": 5, "y1": 9}}]}, 400,
     "correction[0].box is empty or not finite: need x0 < x1 and y0 < y1"),
    ({"correction": [{"class": "disc", "box": {"x0": 5, "y0": 5, "x1": 500, "y1": 9}}]}, 400,
     "correction[0].box lies outside the 120x90 image"),
    ({"image": None}, 400, "feedback needs the image"),
    ({"model": "nope"}, 404, "no model 'nope' on this server"),
    ({"version": 7}, 404, "no version 7 of model 'detect'"),
    ({"correction": None}, 422, "correction: Input should be a valid list"),
])
def test_bad_feedback(upload_server, change, status, message):
    import base64

    s, _ = upload_server
    body = {"model": "detect", "version": 1, "image": {"base64": base64.b64encode(png()).decode()},
            "correction": [{"class": "disc"}], **change}
    r = httpx.post(s.url + "/v1/feedback", json=body)
    assert r.status_code == status and r.json()["message"] == message, r.text
