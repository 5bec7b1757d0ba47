"""Supervisely JSON project.

Fixture laid out as Supervisely exports a project, following
https://docs.supervisely.com/customization-and-integration/00_ann_format_navi (project structure
meta.json + <dataset>/ann/<image>.json + <dataset>/img/<image>; the image annotation example with
image tags `like` / `situated`, a bitmap `person` and a rectangle `bike`; graph classes with
nodes/edges in geometry_config). The bitmap is built here as an RGBA PNG (the SDK's 4-channel
case), independently of the module's encoder; what the writer encodes is decoded back with
OpenCV the way the SDK's `Bitmap.base64_2_data` does.
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, supervisely

W, H = 40, 30


def _rgba_bitmap(arr: np.ndarray) -> str:
    rgba = np.zeros((*arr.shape, 4), np.uint8)
    rgba[arr > 0] = (255, 255, 255, 255)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return base64.b64encode(zlib.compress(buf.getvalue())).decode()


def _sdk_decode(data: str) -> np.ndarray:
    """supervisely.geometry.bitmap.Bitmap.base64_2_data, as the SDK does it."""
    n = np.frombuffer(zlib.decompress(base64.b64decode(data)), np.uint8)
    im = cv2.imdecode(n, cv2.IMREAD_UNCHANGED)
    return (im[:, :, 3] if im.ndim == 3 and im.shape[2] >= 4 else im).astype(bool)


PERSON = np.zeros((4, 5), np.uint8)
PERSON[1:4, 1:5] = 1

META = {
    "classes": [
        {"id": 1661571, "title": "person", "shape": "bitmap", "color": "#FF0000", "geometry_config": {}, "hotkey": ""},
        {"id": 1661574, "title": "bike", "shape": "rectangle", "color": "#00FF00", "geometry_config": {}, "hotkey": ""},
        {"id": 1661575, "title": "road", "shape": "polygon", "color": "#808080", "geometry_config": {}, "hotkey": ""},
        {"id": 1661576, "title": "face", "shape": "graph", "color": "#0000FF", "hotkey": "",
         "geometry_config": {"nodes": {"n1": {"label": "left eye", "loc": [10, 10], "color": "#0000FF"},
                                       "n2": {"label": "right eye", "loc": [20, 10], "color": "#0000FF"},
                                       "n3": {"label": "nose", "loc": [15, 15], "color": "#0000FF"}},
                             "edges": [{"src": "n1", "dst": "n3", "color": "#00FF00"},
                                       {"src": "n2", "dst": "n3", "color": "#00FF00"}]}},
        {"id": 1661577, "title": "lane", "shape": "line", "color": "#FFFF00", "geometry_config": {}, "hotkey": ""},
        {"id": 1661578, "title": "spot", "shape": "point", "color": "#FF00FF", "geometry_config": {}, "hotkey": ""},
    ],
    "tags": [{"name": "like", "value_type": "none", "color": "#A0A0A0", "id": 28283797},
             {"name": "situated", "value_type": "oneof_string", "values": ["inside", "outside"], "color": "#B0B0B0"},
             {"name": "occluded", "value_type": "none", "color": "#C0C0C0"}],
    "projectType": "images",
}

ANN = {
    "description": "",
    "tags": [{"id": 86458971, "tagId": 28283797, "name": "like", "value": None, "labelerLogin": "alexxx",
              "createdAt": "2020-08-26T09:12:51.155Z", "updatedAt": "2020-08-26T09:12:51.155Z"},
             {"id": 86458968, "tagId": 28283798, "name": "situated", "value": "outside", "labelerLogin": "alexxx",
              "createdAt": "2020-08-26T09:07:26.408Z", "updatedAt": "2020-08-26T09:07:26.408Z"}],
    "size": {"height": H, "width": W},
    "objects": [
        {"id": 497521359, "classId": 1661571, "description": "", "geometryType": "bitmap", "labelerLogin": "alexxx",
         "createdAt": "2020-08-07T11:09:51.054Z", "updatedAt": "2020-08-07T11:09:51.054Z", "tags": [],
         "classTitle": "person", "bitmap": {"data": _rgba_bitmap(PERSON), "origin": [5, 6]}},
        {"id": 497521358, "classId": 1661574, "description": "", "geometryType": "rectangle", "labelerLogin": "alexxx",
         "createdAt": "2020-08-07T11:09:51.054Z", "updatedAt": "2020-08-07T11:09:51.054Z",
         "tags": [{"name": "occluded", "value": None}], "classTitle": "bike",
         "points": {"exterior": [[0, 23], [5, 27]], "interior": []}},
        {"geometryType": "polygon", "classTitle": "road", "tags": [],
         "points": {"exterior": [[0, 0], [10, 0], [10, 10], [0, 10]], "interior": [[[2, 2], [5, 2], [5, 5], [2, 5]]]}},
        {"geometryType": "polygon", "classTitle": "road", "tags": [],
         "points": {"exterior": [[20, 0], [30, 0], [25, 8]], "interior": []}},
        {"geometryType": "graph", "classTitle": "face", "tags": [],
         "nodes": {"n1": {"loc": [10, 10]}, "n3": {"loc": [12, 14], "disabled": True}}},
        {"geometryType": "line", "classTitle": "lane", "tags": [], "points": {"exterior": [[0, 29], [39, 20]], "interior": []}},
        {"geometryType": "point", "classTitle": "spot", "tags": [{"name": "score", "value": 7}],
         "points": {"exterior": [[3, 4]], "interior": []}},
    ],
}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    ds = root / "ds1"
    (ds / "img").mkdir(parents=True)
    (ds / "ann").mkdir()
    for name in ("img1.jpg", "img2.jpg", "img3.jpg"):
        Image.new("RGB", (W, H)).save(ds / "img" / name)
    (root / "meta.json").write_text(json.dumps(META, indent=4))
    (ds / "ann" / "img1.jpg.json").write_text(json.dumps(ANN, indent=4))
    (ds / "ann" / "img3.jpg.json").write_text(json.dumps({"description": "", "tags": [], "size": {"height": H, "width": W},
                                                           "objects": []}))
    return root


def test_detect(project: Path) -> None:
    assert supervisely.detect(project).score >= 0.9 and detect(project) == "supervisely"
    assert supervisely.detect(project / "ds1").score == 0


def test_read_exact(project: Path) -> None:
    reader = supervisely.read(project)
    assert [(c.id, c.name, c.color) for c in reader.classes][:2] == [(1661571, "person", "#ff0000"),
                                                                     (1661574, "bike", "#00ff00")]
    assert reader.classes["face"].keypoints == ("left eye", "right eye", "nose")
    assert reader.classes["face"].skeleton == ((1, 3), (2, 3))
    img1, img2, img3 = list(reader)
    assert (img1.image.file_name, img1.split, img1.image.size) == ("img1.jpg", "ds1", (W, H))
    assert img1.image.metadata == {"sly_tags": {"situated": "outside"}}
    like, person, bike, holed, road, face, lane, spot = img1.annotations
    assert like == Annotation("like", Label())
    assert isinstance(person.geometry, Mask)
    expected = np.zeros((H, W), np.uint8)
    expected[7:10, 6:10] = 1
    np.testing.assert_array_equal(person.geometry.to_array(), expected)
    assert bike == Annotation("bike", Box(0, 23, 6, 28), attributes={"occluded": True})
    assert isinstance(holed.geometry, Mask)
    arr = holed.geometry.to_array()
    assert arr[3, 3] == 0 and arr[7, 7] == 1 and arr[1, 1] == 1
    assert road.geometry == Polygon(((20, 0, 30, 0, 25, 8),))
    assert face.geometry == Keypoints((10, 10, 2, 0, 0, 0, 12, 14, 1))
    assert lane == Annotation("lane", Polyline((0, 29, 39, 20)))
    assert spot == Annotation("spot", Keypoints((3, 4, 2)), attributes={"score": 7})
    assert img2.state is LabelState.MISSING
    assert img3.state is LabelState.NULL


def test_roundtrip(project: Path, tmp_path: Path) -> None:
    first = list(supervisely.read(project))
    out = tmp_path / "out"
    report = supervisely.write(first, out, classes=supervisely.read(project).classes)
    assert report.images == 3 and report.files == 3
    assert dict(report.annotations) == {"label": 1, "mask": 2, "box": 1, "polygon": 1, "keypoints": 2, "polyline": 1}
    # img2 was never labelled (no annotation file); written, it gets one and reads back labelled empty: counted
    assert report.converted == {"missing -> null (every image gets an annotation file)": 1} and not report.dropped
    again = supervisely.read(out)
    assert again.classes["face"].keypoints == ("left eye", "right eye", "nose")
    assert again.classes["face"].skeleton == ((1, 3), (2, 3))
    back = list(again)
    assert [(s.image.file_name, s.split) for s in back] == [("img1.jpg", "ds1"), ("img2.jpg", "ds1"),
                                                            ("img3.jpg", "ds1")]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [LabelState.ANNOTATED, LabelState.NULL, LabelState.NULL]
    assert back[0].image.metadata == first[0].image.metadata
    doc = json.loads((out / "ds1" / "ann" / "img1.jpg.json").read_text())
    bitmap = doc["objects"][0]["bitmap"]
    assert bitmap["origin"] == [6, 7]
    np.testing.assert_array_equal(_sdk_decode(bitmap["data"]), np.ones((3, 4), bool))
    meta = json.loads((out / "meta.json").read_text())
    assert {c["title"]: c["shape"] for c in meta["classes"]}["road"] == "any"  # a bitmap and a polygon


def test_write_conversions(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    ref = ImageRef("a.png", width=10, height=10, path=str(tmp_path / "a.png"))
    sample = Sample(ref, (Annotation("r", RotatedBox(5, 5, 2, 4, 30), attributes={"ok": False}),
                          Annotation("k", Keypoints((1, 1, 2, 2, 2, 2)), confidence=0.4)))
    report = supervisely.write([sample], tmp_path / "o")
    assert report.converted == {"rotated_box -> polygon": 1, "attribute false -> absent tag": 1,
                                "keypoints (2 points) -> 2 points": 1}
    assert report.dropped == {"confidence: Supervisely objects have no score field": 1}
    (back,) = list(supervisely.read(tmp_path / "o"))
    assert back.split == "ds0" and len(back.annotations) == 3


def test_bad_input_names_file_and_object(project: Path) -> None:
    ann = project / "ds1" / "ann" / "img1.jpg.json"
    doc = json.loads(ann.read_text())
    doc["objects"][1]["points"]["exterior"] = [[0, 23]]
    ann.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(supervisely.read(project))
    assert "img1.jpg.json" in str(e.value) and "objects[1] (rectangle 'bike')" in str(e.value)
    doc["objects"][1]["points"]["exterior"] = [[0, 23], [5, 27]]
    doc["objects"][0]["bitmap"]["data"] = "not base64 zlib"
    ann.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"objects\[0\] \(bitmap 'person'\)"):
        list(supervisely.read(project))
