"""Every finding names its images (JSON and HTML), and duplicate thumbnails show the annotations."""

from __future__ import annotations

import io
import json
import math
import re

import cv2
import numpy as np
from PIL import Image

from visionloop.health import check
from visionloop.health.report import THUMB_HEIGHT, render_html, scaled_boxes, thumbnail
from visionloop.ingest import import_dataset
from visionloop.store import Store

from .conftest import OUT_OF_BOUNDS, VARIANT_CLASS, WRONG_SIZE


def test_tiny_objects_name_their_images_and_boxes(raccoon_project):
    with Store.open(raccoon_project) as store:
        r = check(store, input_size=32, duplicates_search=False)
        sizes = {s.image.file_name: (s.image.width, s.image.height) for s in store.samples()}
    f = r.finding("tiny_objects")
    assert f.count == r.tiny_objects["count"] == len(f.examples) == 3
    assert f.images == ["images/raccoon-119.jpg", "images/raccoon-24.jpg"]
    for e in f.examples:
        x0, y0, x1, y1 = e["box"]
        w, h = sizes[e["image"]]
        side = math.sqrt((x1 - x0) * (y1 - y0)) * 32 / max(w, h)
        assert e["side_at_input_px"] == round(side, 2) and side < 8
        assert e["class"] == "raccoon"


def test_exif_rotated_names_its_images(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, orientation in (("upright.jpg", 1), ("sideways.jpg", 6), ("also-sideways.jpg", 8)):
        img = Image.fromarray(np.full((40, 60, 3), 128, np.uint8))
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        img.save(buf, "JPEG", exif=exif.tobytes())
        (data / name).write_bytes(buf.getvalue())
    doc = {"images": [{"id": i, "file_name": n, "width": w, "height": h} for i, (n, w, h) in enumerate(
        (("upright.jpg", 60, 40), ("sideways.jpg", 40, 60), ("also-sideways.jpg", 40, 60)), 1)],
        "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    (data / "annotations.json").write_text(json.dumps(doc))
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, data / "annotations.json", format="coco")
        r = check(store, duplicates_search=False)
    f = r.finding("exif_rotated")
    assert f.count == 2
    assert f.examples == [{"image": "sideways.jpg", "orientation": 6, "width": 40, "height": 60},
                          {"image": "also-sideways.jpg", "orientation": 8, "width": 40, "height": 60}]
    assert f.images == ["sideways.jpg", "also-sideways.jpg"]
    assert r.to_json()["findings"][[g["check"] for g in r.to_json()["findings"]].index("exif_rotated")][
        "images"] == ["sideways.jpg", "also-sideways.jpg"]


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_every_image_level_finding_names_images_in_json_and_html(defective):
    with Store.open(defective.project) as store:
        r = check(store)
        page = render_html(r, store)
    doc = r.to_json()
    for f in doc["findings"]:
        if f["check"] in ("unused_classes",):  # a class with no annotations has no images
            continue
        assert f["images"], f["check"]
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"<td>([a-z_]+)</td><td>\d+</td><td>[^<]*</td><td class='imgs'>(.*?)</td>", page)}
    assert sorted(_name(n) for n in rows["out_of_bounds"].split("<br>")) == sorted(
        f"raccoon-{k}.jpg" for k in OUT_OF_BOUNDS)
    assert [_name(n) for n in rows["size_mismatch"].split("<br>")] == [f"raccoon-{WRONG_SIZE}.jpg"]
    assert [_name(n) for n in rows["class_name_variants"].split("<br>")] == [
        f"raccoon-{k}.jpg" for k in VARIANT_CLASS]
    assert "dup-raccoon-30.jpg" in rows["split_leakage"]


def test_thumbnails_draw_the_boxes():
    assert scaled_boxes((280, [(10.0, 20.0, 110.0, 220.0, "cat")]), THUMB_HEIGHT) == [(5, 10, 55, 110, "cat")]
    assert scaled_boxes(None, THUMB_HEIGHT) == []
    gray = np.full((280, 400, 3), 128, np.uint8)
    data = cv2.imencode(".png", gray)[1].tobytes()
    plain = thumbnail(data)
    drawn = thumbnail(data, (280, [(10.0, 20.0, 110.0, 220.0, "cat")]))
    assert plain.shape == drawn.shape == (THUMB_HEIGHT, 200, 3)
    # the box's left edge (x = 5, y = 10..110) is red, the inside untouched
    assert drawn[60, 5].tolist() == [0, 0, 255] and drawn[60, 30].tolist() == [128, 128, 128]
    assert plain[60, 5].tolist() == [128, 128, 128]


def test_html_duplicate_pairs_show_the_annotations(defective, tmp_path):
    """"Same file, different labels": the two thumbnails of a conflicting pair differ where the boxes do."""
    import base64

    with Store.open(defective.project) as store:
        r = check(store)
        page = render_html(r, store)
    pair = next(p for p in r.pairs_of("exact") if p.same_annotations is False)
    figure = re.search(r'<div class="pair[^"]*"><div class="cap">same file[^<]*different labels</div>'
                       r'<figure><img src="data:image/jpeg;base64,([^"]+)"', page)
    assert figure is not None and pair is not None
    img = cv2.imdecode(np.frombuffer(base64.b64decode(figure.group(1)), np.uint8), cv2.IMREAD_COLOR)
    red = (img[..., 2] > 150) & (img[..., 1] < 100) & (img[..., 0] < 100)
    assert red.sum() > 50  # the box outline is drawn
