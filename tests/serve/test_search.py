"""POST /v1/search on a real server on loopback: by project image, by upload, by concept; the CLI's answers."""

from __future__ import annotations

import base64

import cv2
import httpx
import pytest

from visionloop.ingest import import_dataset
from visionloop.serve import Settings
from visionloop.serve.schemas import SearchOut
from visionloop.store import Store
from visionloop.store import tags as tag_store

from .conftest import Server

NUMBERS = list(range(1, 13))


@pytest.fixture(scope="module")
def search_server(tmp_path_factory, voc_subset, raccoon):
    root = tmp_path_factory.mktemp("search")
    voc_subset(root / "voc", NUMBERS)
    loose = root / "loose"
    (loose / "images").mkdir(parents=True)
    (loose / "labels").mkdir()
    im = cv2.imread(str(raccoon / "images" / "raccoon-7.jpg"))
    cv2.imwrite(str(loose / "images" / "copy-7.jpg"), cv2.resize(im, None, fx=0.5, fy=0.5),
                [cv2.IMWRITE_JPEG_QUALITY, 50])
    with Store.init(root / "project") as store:
        import_dataset(store, root / "voc", format="voc")
        import_dataset(store, loose, format="yolo")
        from visionloop.train.concepts import train_concept

        img = raccoon / "images"
        train_concept(store, "mine", [img / "raccoon-2.jpg", img / "raccoon-9.jpg"],
                      [img / f"raccoon-{n}.jpg" for n in (101, 102, 103, 104)])
        ids = {i.file_name.rsplit("/", 1)[-1]: i.id for i in tag_store.images(store)}
    with Server(root / "project", Settings(refresh_s=0.2, url_allow_list=[])) as s, \
            httpx.Client(base_url=s.url, timeout=120) as c:
        yield c, ids


def test_search_by_image_id_finds_the_copy(search_server):
    client, ids = search_server
    r = client.post("/v1/search", json={"image_id": "raccoon-7.jpg", "k": 3})
    assert r.status_code == 200, r.text
    out = SearchOut.model_validate(r.json())
    assert out.embedded == 13 and [h.image_id for h in out.hits][0] == ids["copy-7.jpg"] and len(out.hits) == 3
    again = client.post("/v1/search", json={"image_id": str(ids["copy-7.jpg"]), "k": 1}).json()
    assert again["embedded"] == 0 and again["hits"][0]["image_id"] == ids["raccoon-7.jpg"]


def test_search_by_upload_and_base64(search_server, raccoon):
    client, ids = search_server
    data = (raccoon / "images" / "raccoon-11.jpg").read_bytes()
    up = client.post("/v1/search?k=2", files={"file": ("q.jpg", data, "image/jpeg")})
    assert up.status_code == 200, up.text
    assert up.json()["hits"][0]["image_id"] == ids["raccoon-11.jpg"] and up.json()["hits"][0]["score"] > 0.999
    b64 = client.post("/v1/search", json={"image": base64.b64encode(data).decode(), "k": 2}).json()
    assert [h["image_id"] for h in b64["hits"]] == [h["image_id"] for h in up.json()["hits"]]


def test_search_by_concept_ranks_its_examples_first(search_server):
    client, ids = search_server
    out = client.post("/v1/search", json={"concept": "mine", "k": 5}).json()
    assert {h["image_id"] for h in out["hits"][:2]} == {ids["raccoon-2.jpg"], ids["raccoon-9.jpg"]}


def test_search_errors(search_server):
    client, _ = search_server
    r = client.post("/v1/search", json={"concept": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["message"]
    r = client.post("/v1/search", json={"concept": "mine", "image_id": "1"})
    assert r.status_code == 400 and "exactly one" in r.json()["message"]
    r = client.post("/v1/search", json={"image_id": "no-such.jpg"})
    assert r.status_code == 404
