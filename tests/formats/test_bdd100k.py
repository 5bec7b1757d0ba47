"""BDD100K (Scalabel) JSON reader and writer.

Format: https://doc.bdd100k.com/format.html and https://doc.scalabel.ai/format.html ; box2d corners are
inclusive pixel indices, as the toolkit's box2d_to_bbox (w = x2 - x1 + 1) shows:
https://github.com/scalabel/scalabel/blob/master/scalabel/label/transforms.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import bdd100k, detect

MASK = np.zeros((12, 16), np.uint8)
MASK[2:5, 3:9] = 1
RLE = Mask.from_array(MASK)

FRAMES = [
    {
        "name": "b1c66a42-6f7d68ca.jpg",
        "attributes": {"weather": "overcast", "scene": "city street", "timeofday": "daytime"},
        "timestamp": 10000,
        "labels": [
            {"id": "0", "category": "traffic sign",
             "attributes": {"occluded": False, "truncated": False, "trafficLightColor": "NA"},
             "box2d": {"x1": 10.69, "y1": 2.99, "x2": 14.42, "y2": 6.91}},
            {"id": "1", "category": "car", "attributes": {"occluded": True, "truncated": False, "crowd": True},
             "manualShape": True, "box2d": {"x1": 0, "y1": 0, "x2": 0, "y2": 3}},
            {"id": "2", "category": "area/drivable", "attributes": {"areaType": "direct"},
             "poly2d": [{"vertices": [[0, 8], [4, 6], [6, 6], [8, 6], [12, 8]], "types": "LLCCL", "closed": True}]},
            {"id": "3", "category": "lane/single white", "attributes": {"laneDirection": "parallel"},
             "poly2d": [{"vertices": [[0, 11], [15, 9]], "types": "LL", "closed": False}]},
            {"id": "XGs0uBvT", "category": "person", "attributes": {}, "rle": {"counts": RLE.counts.decode(), "size": [12, 16]},
             "score": 0.75},
        ],
    },
    {"name": "b1c9c847-3bda4659.jpg", "attributes": {"weather": "clear", "scene": "highway",
                                                     "timeofday": "night"}, "timestamp": 10000},
]


@pytest.fixture()
def bdd(tmp_path: Path) -> Path:
    root = tmp_path / "bdd100k"
    (root / "labels" / "det_20").mkdir(parents=True)
    (root / "labels" / "det_20" / "det_val.json").write_text(json.dumps(FRAMES, indent=2))
    (root / "images" / "100k" / "val").mkdir(parents=True)
    for f in FRAMES:
        Image.new("RGB", (16, 12)).save(root / "images" / "100k" / "val" / f["name"])
    return root


def test_read_exact(bdd: Path) -> None:
    reader = bdd100k.read(bdd)
    samples = list(reader)
    assert [(c.id, c.name) for c in reader.classes][:3] == [(1, "pedestrian"), (2, "rider"), (3, "car")]
    assert reader.classes["area/drivable"].id == 11 and reader.classes["lane/single white"].id == 12
    assert reader.classes["person"].id == 13
    a, b = samples
    assert a.split == "val" and a.image.file_name == "b1c66a42-6f7d68ca.jpg"
    assert a.image.path == str(bdd / "images" / "100k" / "val" / "b1c66a42-6f7d68ca.jpg")
    assert a.image.metadata["weather"] == "overcast" and a.image.metadata["timestamp"] == 10000
    assert "bdd100k_unsupported" not in a.image.metadata  # the open lane poly2d is a Polyline
    sign, car, area, lane, person = a.annotations
    assert sign == Annotation("traffic sign", Box(10.69, 2.99, 15.42, 7.91),
                              attributes={"occluded": False, "truncated": False, "trafficLightColor": "NA"},
                              track_id=0)
    assert car.geometry == Box(0, 0, 1, 4) and car.crowd  # one pixel column wide
    assert car.attributes == {"occluded": True, "truncated": False, "manualShape": True}
    assert area.geometry == Polygon(((0, 8, 4, 6, 6, 6, 8, 6, 12, 8),))
    assert area.attributes == {"areaType": "direct", "bdd100k_types": ["LLCCL"]}
    assert lane == Annotation("lane/single white", Polyline((0, 11, 15, 9)), attributes={"laneDirection": "parallel"},
                              track_id=3)
    assert person.geometry == RLE and person.confidence == 0.75
    assert person.track_id is None and person.attributes == {"bdd100k_id": "XGs0uBvT"}
    assert b.state is LabelState.NULL and b.annotations == ()


def test_round_trip(bdd: Path, tmp_path: Path) -> None:
    first = list(bdd100k.read(bdd))
    out = tmp_path / "out"
    report = bdd100k.write(first, out)
    assert report.images == 2 and report.files == 3
    assert report.annotations == {"box": 2, "polygon": 1, "polyline": 1, "mask": 1}
    assert not report.dropped and not report.converted
    written = json.loads((out / "labels" / "det_20" / "det_val.json").read_text())
    expected = json.loads(json.dumps(FRAMES))
    expected[1]["labels"] = []
    assert written == expected  # the lane line too, as it was
    back = list(bdd100k.read(out))
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [(s.image.file_name, s.split, dict(s.image.metadata)) for s in back] == \
        [(s.image.file_name, s.split, dict(s.image.metadata)) for s in first]


def test_write_other_sources(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    sample = Sample(ImageRef("sub/a.jpg", 8, 8, path=str(tmp_path / "a.jpg")), (
        Annotation("car", Box(1.5, 2, 4, 6)),
        Annotation("car", RotatedBox(4, 4, 2, 2, 0)),
        Annotation("person", Keypoints((1, 1, 2))),
    ), state=LabelState.ANNOTATED)
    out = tmp_path / "out"
    report = bdd100k.write([sample], out)
    assert report.converted == {"rotated_box -> polygon": 1}
    assert report.dropped == {"keypoints: BDD100K holds boxes, polygons, lines and masks only": 1}
    frame = json.loads((out / "labels" / "det_20" / "det_default.json").read_text())[0]
    assert frame["name"] == "a.jpg" and (out / "images" / "100k" / "default" / "a.jpg").is_file()
    assert frame["labels"][0] == {"id": "0", "category": "car", "attributes": {},
                                  "box2d": {"x1": 1.5, "y1": 2, "x2": 3, "y2": 5}}
    assert frame["labels"][1]["poly2d"][0]["types"] == "LLLL" and frame["labels"][1]["id"] == "1"
    back = next(iter(bdd100k.read(out)))
    assert back.split is None and back.annotations[0].geometry == Box(1.5, 2, 4, 6)


def test_bad_input(bdd: Path) -> None:
    p = bdd / "labels" / "det_20" / "det_val.json"
    frames = json.loads(json.dumps(FRAMES))
    frames[0]["labels"][2]["poly2d"][0]["types"] = "LLC"
    p.write_text(json.dumps(frames))
    with pytest.raises(FormatError) as e:
        list(bdd100k.read(bdd))
    assert e.value.path == str(p) and e.value.where == "[0] (name 'b1c66a42-6f7d68ca.jpg').labels[2]"
    assert "types 'LLC' must be one L or C per vertex (5)" in e.value.message
    frames[0]["labels"][2]["poly2d"][0]["types"] = "LLCCL"
    frames[0]["labels"][0]["box2d"]["x2"] = "wide"
    p.write_text(json.dumps(frames))
    with pytest.raises(FormatError, match=r"labels\[0\]\): bad label: box2d.x2 must be a number"):
        list(bdd100k.read(bdd))
    p.write_text('[{"name": "x.jpg",\n "labels": [}]')
    with pytest.raises(FormatError) as e:
        list(bdd100k.read(bdd))
    assert "det_val.json" in str(e.value) and "line 2" in str(e.value.where)


def test_detect(bdd: Path, raccoon: Path) -> None:
    assert bdd100k.detect(bdd).score >= 0.9
    assert detect(bdd) == "bdd100k"
    assert detect(bdd / "labels" / "det_20" / "det_val.json") == "bdd100k"
    assert bdd100k.detect(raccoon).score == 0
