"""Datumaro JSON reader and writer.

Layout and fields as datumaro's own exporter writes them (format version 1.0):
https://github.com/openvinotoolkit/datumaro/blob/develop/src/datumaro/plugins/data_formats/datumaro/exporter.py
https://openvinotoolkit.github.io/datumaro/latest/docs/data-formats/formats/datumaro.html
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Caption, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import datumaro, detect
from visionloop.formats.base import ImageMode


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 200, 30)).save(path)


MASK = np.zeros((6, 8), np.uint8)
MASK[1:3, 2:5] = 1
RLE = Mask.from_array(MASK)


def _doc() -> dict:
    return {
        "dm_format_version": "1.0",
        "media_type": 2,
        "infos": {},
        "categories": {
            "label": {
                "labels": [
                    {"name": "car", "parent": "", "attributes": ["occluded"]},
                    {"name": "person", "parent": "", "attributes": []},
                    {"name": "wheel", "parent": "car", "attributes": []},
                ],
                "label_groups": [],
                "attributes": [],
            },
            "mask": {"colormap": [{"label_id": 0, "r": 255, "g": 0, "b": 16}]},
            "points": {"items": [{"label_id": 1, "labels": ["head", "foot"], "joints": [[1, 2]]}]},
        },
        "items": [
            {
                "id": "street/a",
                "annotations": [
                    {"id": 1, "type": "bbox", "attributes": {"occluded": True, "score": 0.5}, "group": 0,
                     "label_id": 0, "z_order": 0, "bbox": [1.0, 2.0, 3.0, 4.0]},
                    {"id": 2, "type": "bbox", "attributes": {"rotation": 30.0, "track_id": 7}, "group": 0,
                     "label_id": 0, "z_order": 1, "bbox": [2.0, 2.0, 4.0, 2.0]},
                    {"id": 3, "type": "polygon", "attributes": {}, "group": 5, "label_id": 1, "z_order": 0,
                     "points": [0.0, 0.0, 4.0, 0.0, 4.0, 3.0]},
                    {"id": 4, "type": "polygon", "attributes": {}, "group": 5, "label_id": 1, "z_order": 0,
                     "points": [5.0, 5.0, 7.0, 5.0, 7.0, 6.0]},
                    {"id": 5, "type": "mask", "attributes": {"is_crowd": True}, "group": 0, "label_id": 0,
                     "rle": {"counts": RLE.counts.decode(), "size": [6, 8]}, "z_order": 0},
                    {"id": 6, "type": "points", "attributes": {}, "group": 5, "label_id": 1, "z_order": 0,
                     "points": [1.0, 1.0, 0.0, 0.0], "visibility": [2, 0]},
                    {"id": 7, "type": "label", "attributes": {}, "group": 0, "label_id": 2},
                    {"id": 8, "type": "caption", "attributes": {}, "group": 0, "caption": "a red car"},
                    {"id": 9, "type": "polyline", "attributes": {}, "group": 0, "label_id": 2, "z_order": 0,
                     "points": [0.0, 0.0, 3.0, 3.0]},
                ],
                "attr": {"frame": 3},
                "image": {"path": "street/a.jpg", "size": [6, 8]},
            },
            {"id": "b", "annotations": [], "image": {"path": "b.png", "size": [4, 5]}},
        ],
    }


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "dm"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.json").write_text(json.dumps(_doc()))
    _image(root / "images" / "train" / "street" / "a.jpg", (8, 6))
    _image(root / "images" / "train" / "b.png", (5, 4))
    default = {**_doc(), "items": [{"id": "c", "annotations": [], "image": {"path": "c.jpg"}}]}
    (root / "annotations" / "default.json").write_text(json.dumps(default))
    _image(root / "images" / "c.jpg", (3, 3))  # the legacy layout: images/<path>
    return root


def test_read_exact(dataset: Path) -> None:
    reader = datumaro.read(dataset)
    assert [(c.id, c.name, c.supercategory) for c in reader.classes] == [
        (0, "car", None), (1, "person", None), (2, "wheel", "car")]
    assert reader.classes["car"].color == "#ff0010"
    assert reader.classes["person"].keypoints == ("head", "foot")
    assert reader.classes["person"].skeleton == ((1, 2),)
    samples = list(reader)
    by_name = {s.image.file_name: s for s in samples}
    assert list(by_name) == ["images/c.jpg", "images/train/street/a.jpg", "images/train/b.png"]
    c = by_name["images/c.jpg"]
    assert c.split is None and c.state is LabelState.NULL and c.image.size is None
    assert c.image.path == str(dataset / "images" / "c.jpg")
    a = by_name["images/train/street/a.jpg"]
    assert a.split == "train" and a.image.size == (8, 6)
    assert a.image.metadata["frame"] == 3 and "captions" not in a.image.metadata
    assert "datumaro_unsupported" not in a.image.metadata  # a polyline is a geometry of its own now
    assert list(a.annotations) == [
        Annotation("car", Box(1, 2, 4, 6), attributes={"occluded": True}, confidence=0.5),
        Annotation("car", RotatedBox(4, 3, 4, 2, 30), attributes={"z_order": 1}, track_id=7),
        Annotation("person", Polygon(((0, 0, 4, 0, 4, 3), (5, 5, 7, 5, 7, 6))), attributes={"group": 5}),
        Annotation("car", RLE, crowd=True),
        Annotation("person", Keypoints((1, 1, 2, 0, 0, 0)), attributes={"group": 5}),
        Annotation("wheel", Label()),
        Annotation("", Caption("a red car")),
        Annotation("wheel", Polyline((0, 0, 3, 3))),
    ]
    assert isinstance(a.annotations[3].geometry, Mask) and a.annotations[3].geometry.area == 6
    b = by_name["images/train/b.png"]
    assert b.state is LabelState.NULL and b.image.size == (5, 4)


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    reader = datumaro.read(dataset)
    first = list(reader)
    out = tmp_path / "out"
    report = datumaro.write(first, out, classes=reader.classes)
    assert report.images == 3 and report.files == 5  # 3 images, 2 JSON files
    assert dict(report.annotations) == {"box": 1, "rotated_box": 1, "polygon": 1, "mask": 1, "keypoints": 1,
                                        "label": 1, "caption": 1, "polyline": 1}
    assert not report.dropped
    assert (out / "images" / "train" / "street" / "a.jpg").is_file()
    assert (out / "images" / "default" / "c.jpg").is_file()
    doc = json.loads((out / "annotations" / "train.json").read_text())
    assert doc["dm_format_version"] == "1.0" and doc["media_type"] == 2
    assert [i["id"] for i in doc["items"]] == ["street/a", "b"]
    polys = [a for a in doc["items"][0]["annotations"] if a["type"] == "polygon"]
    assert len(polys) == 2 and {p["group"] for p in polys} == {5}
    assert doc["categories"]["label"]["labels"][0] == {"name": "car", "parent": "", "attributes": ["occluded"]}
    back = datumaro.read(out)
    assert [(c.id, c.name, c.supercategory, c.color, c.keypoints, c.skeleton) for c in back.classes] == \
        [(c.id, c.name, c.supercategory, c.color, c.keypoints, c.skeleton) for c in reader.classes]
    again = sorted(back, key=lambda s: s.image.file_name)
    first_sorted = sorted(first, key=lambda s: s.image.file_name.replace("images/c.jpg", "images/default/c.jpg"))
    assert [s.image.file_name for s in again] == ["images/default/c.jpg", "images/train/b.png",
                                                  "images/train/street/a.jpg"]
    for x, y in zip(again, first_sorted, strict=True):
        assert x.annotations == y.annotations
        assert x.split == y.split and x.state == y.state and x.image.size == y.image.size
        assert dict(x.image.metadata) == dict(y.image.metadata)


def test_write_groups_multi_ring_polygons_and_reports(tmp_path: Path) -> None:
    _image(tmp_path / "x.jpg", (10, 10))
    ref = ImageRef("x.jpg", 10, 10, path=str(tmp_path / "x.jpg"))
    samples = [
        Sample(ref, (Annotation("a", Polygon(((0, 0, 2, 0, 2, 2), (5, 5, 6, 5, 6, 6)))),
                     Annotation("b", Box(0, 0, 1, 1), attributes={"group": 1}),
                     Annotation("a", Polygon(((1, 1, 3, 1, 3, 3),)), bbox=Box(0, 0, 9, 9))), split="val"),
        Sample(ImageRef("x.jpg", 10, 10, path=str(tmp_path / "x.jpg")), (), split="val", state=LabelState.MISSING),
    ]
    out = tmp_path / "out"
    report = datumaro.write(samples, out, images=ImageMode.NONE)
    assert report.files == 1 and report.images == 2  # the JSON only
    assert report.dropped == {"bbox: a declared box beside the geometry has no place in Datumaro": 1}
    assert report.converted == {"missing -> null (Datumaro lists every item as labelled)": 1}
    doc = json.loads((out / "annotations" / "val.json").read_text())
    assert [(i["id"], i["image"]["path"]) for i in doc["items"]] == [("x", "x.jpg"), ("x_1", "x_1.jpg")]
    anns = doc["items"][0]["annotations"]
    assert [(a["type"], a["group"]) for a in anns] == [("polygon", 2), ("polygon", 2), ("bbox", 1), ("polygon", 0)]
    assert [a["id"] for a in anns] == [1, 2, 3, 4]
    back = list(datumaro.read(out))
    assert back[0].annotations[0].geometry == Polygon(((0, 0, 2, 0, 2, 2), (5, 5, 6, 5, 6, 6)))


def test_bad_label_id_names_file_item_and_annotation(dataset: Path) -> None:
    doc = _doc()
    doc["items"][0]["annotations"][1]["label_id"] = 9
    (dataset / "annotations" / "train.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(datumaro.read(dataset))
    assert "train.json" in str(e.value)
    assert e.value.where == "items[0] (id 'street/a').annotations[1]"
    assert "label_id 9" in e.value.message


def test_bad_bbox_and_malformed_json(dataset: Path) -> None:
    doc = _doc()
    doc["items"][1]["annotations"] = [{"id": 1, "type": "bbox", "label_id": 0, "bbox": [1, 2, 3]}]
    (dataset / "annotations" / "train.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"train.json \(items\[1\] \(id 'b'\).annotations\[0\]\): bad bbox"):
        list(datumaro.read(dataset))
    (dataset / "annotations" / "train.json").write_text('{"dm_format_version": "1.0",\n "items": [{"id": }]}')
    with pytest.raises(FormatError) as e:
        list(datumaro.read(dataset))
    assert "train.json" in str(e.value) and e.value.where is not None and "line 2" in e.value.where


def test_detect(dataset: Path, tmp_path: Path) -> None:
    assert datumaro.detect(dataset).score >= 0.99
    assert detect(dataset) == "datumaro"
    assert detect(dataset / "annotations" / "train.json") == "datumaro"  # not COCO, though in annotations/
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "annotations" / "instances_val.json").write_text('{"images": [], "annotations": [], "categories": []}')
    assert datumaro.detect(coco).score == 0
    assert detect(coco) == "coco"


def test_interop_with_datumaro(dataset: Path, tmp_path: Path) -> None:
    import datumaro as dm

    reader = datumaro.read(dataset)
    datumaro.write(list(reader), tmp_path / "ours", classes=reader.classes)
    theirs = dm.Dataset.import_from(str(tmp_path / "ours"), "datumaro")
    names = [c.name for c in theirs.categories()[dm.AnnotationType.label]]
    assert names == ["car", "person", "wheel"]
    item = theirs.get("street/a", "train")
    kinds = sorted(type(a).__name__ for a in item.annotations)
    assert kinds == ["Bbox", "Bbox", "Caption", "Label", "Points", "PolyLine", "Polygon", "Polygon", "RleMask"]
    box = next(a for a in item.annotations if type(a).__name__ == "Bbox" and "score" in a.attributes)
    assert box.get_bbox() == [1.0, 2.0, 3.0, 4.0] and names[box.label] == "car"
    # and what datumaro writes reads back into the same samples
    theirs.export(str(tmp_path / "theirs"), "datumaro", save_media=True)
    again = {s.image.metadata.get("datumaro_id", s.image.file_name): s for s in datumaro.read(tmp_path / "theirs")}
    assert again["street/a"].annotations == next(s for s in reader if s.split == "train" and s.annotations).annotations
