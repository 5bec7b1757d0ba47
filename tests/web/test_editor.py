"""The image page's small editor: change a class, delete a box, add a box — each an undoable batch that keeps
the image row's annotation digest and label state true to its annotations, and whose undo restores every row
exactly (ids, digests, batch ids)."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from visionloop.store import Store, codec
from visionloop.store.batches import jsonable
from visionloop.store.schema import AnnotationRow, ImageRow

from .conftest import SPLIT


def _rows(web_project, image_id: int) -> tuple[dict, dict[int, dict]]:
    """The image row and its annotation rows, whole, as the store holds them."""
    with Store.open(web_project) as store, store.session() as s:
        img = s.get(ImageRow, image_id)
        im = {c.name: getattr(img, c.name) for c in ImageRow.__table__.columns}
        anns = {a.id: {c.name: getattr(a, c.name) for c in AnnotationRow.__table__.columns}
                for a in s.scalars(select(AnnotationRow).where(AnnotationRow.image_id == image_id))}
    return jsonable(im), {k: jsonable(v) for k, v in anns.items()}


def _reader_digest(web_project, image_id: int) -> tuple[str, str]:
    """The digest of the image's annotations as the store's own reader (`Store.samples`) returns them, and
    its label state: the independent oracle for the image row's ann_digest."""
    with Store.open(web_project) as store:
        with store.session() as s:
            name = s.scalar(select(ImageRow.file_name).where(ImageRow.id == image_id))
        sample = next(x for x in store.samples() if x.image.file_name == name)
    state = str(sample.state.value)
    return codec.annotations_digest(list(sample.annotations), state), state


def _source_digest(web_project) -> str:
    """What `version create` compares to reuse a version: the selection's digest for the fixture's recipe."""
    from visionloop.versions.recipe import load_recipe
    from visionloop.versions.selection import select_images

    with Store.open(web_project) as store:
        return select_images(store, load_recipe(SPLIT)).digest


def _csrf(c: httpx.Client, image_id: int) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', c.get(f"/images/{image_id}").text).group(1)


def _batch(location: str) -> int:
    return int(re.search(r"batch\+(\d+)", location).group(1))


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        yield c


def _image_with(client: httpx.Client, n: int) -> dict:
    items = client.get("/v1/ui/dataset", params={"per_page": 200}).json()["images"]
    return next(i for i in items if len(i["annotations"]) == n)


def test_relabel_updates_the_digest_and_undo_restores_exactly(client, web_project):
    im = _image_with(client, 1)
    before_img, before_anns = _rows(web_project, im["id"])
    assert _reader_digest(web_project, im["id"]) == (before_img["ann_digest"], before_img["state"])
    ann = next(iter(before_anns))
    source = _source_digest(web_project)
    other = next(c["name"] for c in client.get("/v1/ui/dataset").json()["classes"]
                 if c["name"] != im["annotations"][0]["class"])
    r = client.post(f"/images/{im['id']}/relabel", data={"annotation": ann, "class": other,
                                                          "csrf": _csrf(client, im["id"])})
    assert r.status_code == 303
    batch = _batch(r.headers["location"])
    img, anns = _rows(web_project, im["id"])
    # the digest follows the annotations (was: left as it was, so versions and duplicate checks missed the edit)
    assert img["ann_digest"] != before_img["ann_digest"]
    assert (img["ann_digest"], img["state"]) == _reader_digest(web_project, im["id"])
    assert anns[ann]["batch_id"] == batch and img["batch_id"] == batch
    # so `version create` with the same recipe makes a new version instead of reusing the one with the old class
    assert _source_digest(web_project) != source
    assert client.post(f"/v1/ui/batches/{batch}/undo", json={}).status_code == 200
    assert _rows(web_project, im["id"]) == (before_img, before_anns)
    assert _source_digest(web_project) == source


def test_delete_the_only_box_then_undo(client, web_project):
    im = _image_with(client, 1)
    before = _rows(web_project, im["id"])
    ann = im["annotations"][0]["id"]
    token = _csrf(client, im["id"])
    assert client.post(f"/images/{im['id']}/delete", data={"annotation": ann}).status_code == 403  # no CSRF
    r = client.post(f"/images/{im['id']}/delete", data={"annotation": ann, "csrf": token})
    assert r.status_code == 303 and f"deleted+annotation+{ann}" in r.headers["location"]
    batch = _batch(r.headers["location"])
    img, anns = _rows(web_project, im["id"])
    assert anns == {} and img["state"] == "null"
    assert (img["ann_digest"], "null") == _reader_digest(web_project, im["id"])
    page = client.get(f"/images/{im['id']}").text
    assert "<h2>Annotations (0)</h2>" in page and f'<tr data-batch="{batch}">' in page
    assert client.post(f"/v1/ui/batches/{batch}/undo", json={}).json()["restored"] == \
        {"annotation_restored": 1, "image_restored": 1}
    assert _rows(web_project, im["id"]) == before  # the same annotation id, digest, state and batch ids
    assert client.post(f"/v1/ui/annotations/{ann}/delete", json={}).status_code == 200  # the twin, then undo
    last = client.get(f"/v1/ui/images/{im['id']}").json()["batches"][-1]["id"]
    client.post(f"/v1/ui/batches/{last}/undo", json={})
    assert _rows(web_project, im["id"]) == before


def test_add_a_box_then_undo(client, web_project):
    im = _image_with(client, 1)
    before = _rows(web_project, im["id"])
    token = _csrf(client, im["id"])
    # outside the image, or without an area: refused, nothing written
    for box in ([0, 0, im["width"] + 1, 10], [10, 10, 10, 20]):
        bad = client.post(f"/images/{im['id']}/boxes", data={"class": "dog", "csrf": token,
                                                             **dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))})
        assert bad.status_code == 400 and "not inside" in bad.json()["message"]
    assert client.post(f"/images/{im['id']}/boxes", data={"class": "cat", "csrf": token, "x0": 1, "y0": 1,
                                                          "x1": 5, "y1": 5}).status_code == 404
    assert _rows(web_project, im["id"]) == before
    r = client.post(f"/images/{im['id']}/boxes", data={"class": "dog", "csrf": token, "x0": "10.5", "y0": "20",
                                                       "x1": "60", "y1": "80.25"})
    assert r.status_code == 303
    batch = _batch(r.headers["location"])
    img, anns = _rows(web_project, im["id"])
    new = [a for a in anns if a not in before[1]]
    assert len(new) == 1 and len(anns) == 2
    a = anns[new[0]]
    assert (a["x0"], a["y0"], a["x1"], a["y1"], a["area"], a["kind"], a["source"], a["batch_id"]) == \
        (10.5, 20.0, 60.0, 80.25, 49.5 * 60.25, "box", "human", batch)
    assert (img["ann_digest"], img["state"]) == _reader_digest(web_project, im["id"])
    page = client.get(f"/v1/ui/images/{im['id']}").json()
    assert [(x["id"], x["class"], x["box"]) for x in page["annotations"] if x["id"] == new[0]] == \
        [(new[0], "dog", [10.5, 20.0, 60.0, 80.25])]
    assert client.post(f"/v1/ui/batches/{batch}/undo", json={}).status_code == 200
    assert _rows(web_project, im["id"]) == before
    # the JSON twin
    made = client.post(f"/v1/ui/images/{im['id']}/boxes", json={"class": "raccoon", "box": [1, 2, 3, 4]}).json()
    assert made["box"] == [1.0, 2.0, 3.0, 4.0] and made["annotation"] in _rows(web_project, im["id"])[1]
    client.post(f"/v1/ui/batches/{made['batch']}/undo", json={})
    assert _rows(web_project, im["id"]) == before
