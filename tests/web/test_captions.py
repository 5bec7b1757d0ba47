"""Captions in the web UI: the image page lists them as text (not as a class), the grid carries them apart from the
shapes, a caption cannot be given a class, and deleting one keeps the image row's digest and state true."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from visionloop.core import Annotation, Caption, Sample
from visionloop.demo import synthetic
from visionloop.formats import registry
from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer
from visionloop.store import Store, codec

TEXT = 'a red square & a "disc" <on grey>'  # escaped on the page


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[BackgroundServer, Path]]:
    from visionloop.ingest import import_dataset

    root = tmp_path_factory.mktemp("captions")
    samples = list(synthetic.shapes(2, folder=root / "render", splits=(("train", 1.0),)))
    samples[0] = Sample(samples[0].image, (*samples[0].annotations, Annotation("", Caption(TEXT))), split="train")
    samples[1] = Sample(samples[1].image, (Annotation("", Caption("only a caption")),), split="train")
    registry.write(samples, root / "dm", format="datumaro", classes=synthetic.classes())
    with Store.init(root / "project") as store:
        import_dataset(store, root / "dm")
    with BackgroundServer(root / "project", Settings(refresh_s=0.5, url_allow_list=[])) as s:
        yield s, root / "project"


def test_image_page_lists_captions_as_text(server) -> None:
    s, project = server
    with httpx.Client(base_url=s.url) as c:
        grid = c.get("/v1/ui/dataset", params={"per_page": 50}).json()
        assert "" not in [k["name"] for k in grid["classes"]]
        first, second = sorted(grid["images"], key=lambda i: i["file_name"])
        assert first["captions"] == [TEXT] and all(a["kind"] != "caption" for a in first["annotations"])
        assert second["captions"] == ["only a caption"] and second["annotations"] == []
        assert second["state"] == "annotated"
        data = c.get(f"/v1/ui/images/{first['id']}").json()
        assert [x["text"] for x in data["captions"]] == [TEXT]
        page = c.get(f"/images/{first['id']}").text
        assert "<h2>Captions (1)</h2>" in page and str(escape(TEXT)) in page and TEXT not in page
        cap = data["captions"][0]["id"]
        r = c.post(f"/v1/ui/annotations/{cap}/class", json={"class": synthetic.classes().names[0]})
        assert r.status_code >= 400 and "caption" in r.text


def test_deleting_the_only_caption_keeps_digest_and_state_true(server) -> None:
    s, project = server
    with httpx.Client(base_url=s.url) as c:
        grid = c.get("/v1/ui/dataset", params={"per_page": 50}).json()
        only = next(i for i in grid["images"] if i["captions"] == ["only a caption"])
        cap = c.get(f"/v1/ui/images/{only['id']}").json()["captions"][0]["id"]
        r = c.post(f"/v1/ui/annotations/{cap}/delete", json={})
        assert r.status_code == 200, r.text
        after = c.get(f"/v1/ui/images/{only['id']}").json()
        assert after["captions"] == [] and after["state"] == "null"
        with Store.open(project) as store:
            sample = next(x for x in store.samples() if x.image.file_name == only["file_name"])
            digest = codec.annotations_digest(list(sample.annotations), sample.state.value)
            with store.session() as sess:
                from visionloop.store.schema import ImageRow

                assert sess.get(ImageRow, only["id"]).ann_digest == digest
        assert c.post(f"/v1/ui/batches/{r.json()['batch']}/undo", json={}).status_code == 200
        assert c.get(f"/v1/ui/images/{only['id']}").json()["captions"][0]["text"] == "only a caption"
