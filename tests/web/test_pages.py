"""The pages and their JSON twins over HTTP on a real loopback server: the same objects, CSRF refusals, the
thumbnail made once and kept as a blob, a relabel and its undo as a batch."""

from __future__ import annotations

import re

import httpx

from visionloop.store import Store
from visionloop.store import evaluations as evals
from visionloop.store import models as registry

from .conftest import DOGS, NUMBERS


def _csrf(client: httpx.Client, page: str) -> str:
    html = client.get(page).text
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_dataset_twin_filters_and_pages(server, web_project):
    with httpx.Client(base_url=server.url) as c:
        all_ = c.get("/v1/ui/dataset", params={"per_page": 7}).json()
        assert all_["total"] == len(NUMBERS) + 1 and all_["pages"] == 5 and len(all_["images"]) == 7
        assert sorted(x["name"] for x in all_["classes"]) == ["dog", "raccoon"]
        dogs = c.get("/v1/ui/dataset", params={"class": "dog"}).json()
        assert sorted(i["file_name"] for i in dogs["images"]) == sorted(f"images/raccoon-{n}.jpg" for n in DOGS)
        assert all(a["class"] == "dog" for i in dogs["images"] for a in i["annotations"])
        by_objects = c.get("/v1/ui/dataset", params={"sort": "objects", "desc": "1", "per_page": 200}).json()
        counts = [len(i["annotations"]) for i in by_objects["images"]]
        assert counts == sorted(counts, reverse=True)
        page = c.get("/", params={"class": "dog"})
        assert page.status_code == 200 and page.text.count('class="tile"') == len(DOGS)
        bad = c.get("/v1/ui/dataset", params={"class": "cat"})
        assert bad.status_code == 404 and "cat" in bad.json()["message"]
        assert c.get("/", params={"class": "cat"}).status_code == 404


def test_health_finding_filter(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        report = c.get("/v1/ui/health").json()
        exact = [p for p in report["pairs"] if p["kind"] == "exact"]
        assert sorted(sorted((p["a"], p["b"])) for p in exact) == [["images/copy-of-1.jpg", "images/raccoon-1.jpg"]]
        got = c.get("/v1/ui/dataset", params={"finding": "exact"}).json()
        assert sorted(i["file_name"] for i in got["images"]) == ["images/copy-of-1.jpg", "images/raccoon-1.jpg"]


def test_thumbnail_made_once_as_a_blob(server, web_project):
    with Store.open(web_project) as store:
        sha = store.blobs and next(iter(store.samples())).image.sha256
        before = sum(1 for _ in store.blobs.walk())
    with httpx.Client(base_url=server.url) as c:
        a = c.get(f"/thumbs/{sha}.jpg")
        b = c.get(f"/thumbs/{sha}.jpg")
        assert a.status_code == 200 and a.headers["content-type"] == "image/jpeg" and a.content == b.content
        assert a.content[:2] == b"\xff\xd8"
        assert c.get("/thumbs/" + "0" * 64 + ".jpg").status_code == 404
    with Store.open(web_project) as store:
        assert sum(1 for _ in store.blobs.walk()) in (before, before + 1)
        index = web_project / "cache" / "thumbs" / sha[:2] / sha
        assert store.blobs.exists(index.read_text().strip())


def test_relabel_and_undo_as_a_batch(server, web_project):
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        im = c.get("/v1/ui/dataset", params={"class": "dog", "per_page": 1}).json()["images"][0]
        ann = im["annotations"][0]["id"]
        token = _csrf(c, f"/images/{im['id']}")
        # no token, a wrong token, a foreign Origin: refused, nothing changed
        assert c.post(f"/images/{im['id']}/relabel", data={"annotation": ann, "class": "raccoon"}).status_code == 403
        assert c.post(f"/images/{im['id']}/relabel",
                      data={"annotation": ann, "class": "raccoon", "csrf": "x" * 43}).status_code == 403
        assert c.post(f"/images/{im['id']}/relabel", data={"annotation": ann, "class": "raccoon", "csrf": token},
                      headers={"Origin": "http://evil.example"}).status_code == 403
        assert c.post(f"/v1/ui/annotations/{ann}/class", content='{"class": "raccoon"}',
                      headers={"Content-Type": "text/plain"}).status_code == 403
        assert c.get(f"/v1/ui/images/{im['id']}").json()["annotations"][0]["class"] == "dog"
        r = c.post(f"/images/{im['id']}/relabel", data={"annotation": ann, "class": "raccoon", "csrf": token})
        assert r.status_code == 303
        batch = int(re.search(r"batch\+(\d+)", r.headers["location"]).group(1))
        page = c.get(f"/v1/ui/images/{im['id']}").json()
        assert page["annotations"][0]["class"] == "raccoon"
        assert [b["kind"] for b in page["batches"] if b["id"] == batch] == ["fix"]
        undone = c.post(f"/v1/ui/batches/{batch}/undo", json={})
        assert undone.status_code == 200 and undone.json()["restored"] == {"annotation_restored": 1, "image_restored": 1}
        after = c.get(f"/v1/ui/images/{im['id']}").json()
        assert after["annotations"][0]["class"] == "dog"
        assert [b["undone"] for b in after["batches"] if b["id"] == batch] == [True]


def test_models_and_errors_twins(server, web_project):
    with Store.open(web_project) as store:
        ev = evals.latest(store, model_id=registry.get(store, "det-a").id)
        missed = evals.events(store, ev.id, error="missed")
        stage = registry.get(store, "det-a").stage  # preview, or beta once the browser test promoted it
    with httpx.Client(base_url=server.url) as c:
        models = c.get("/v1/ui/models").json()
        assert [(m["name"], m["stage"]) for m in models["models"]] == [("det-a", stage)]
        errs = c.get("/v1/ui/models/det-a/errors", params={"error": "missed"}).json()
        assert errs["total"] == len(missed) > 0 and {t["error"] for t in errs["tiles"]} == {"missed"}
        assert [t["id"] for t in errs["tiles"]] == [e.id for e in missed]
        page = c.get("/models/det-a/errors", params={"error": "missed"}).text
        assert page.count('class="tile err missed"') == len(missed)
        assert c.get("/models/nope/errors").status_code == 404
