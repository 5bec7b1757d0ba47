"""COCO panoptic reader and writer.

Format: https://cocodataset.org/#format-data ("Panoptic Segmentation": segment id = R + 256·G + 256²·B,
PNGs in the folder named like the JSON) and https://github.com/cocodataset/panopticapi
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import coco_panoptic, detect

W, H = 8, 6
PERSON_ID = 3226956  # = 76 + 256·61 + 256²·49: uses all three channels
SKY_ID = 5931152
CROWD_ID = 7


def _ids() -> np.ndarray:
    ids = np.zeros((H, W), np.uint32)
    ids[0:2, :] = SKY_ID
    ids[3:5, 1:4] = PERSON_ID
    ids[4:6, 6:8] = CROWD_ID
    return ids


def _png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)


DOC = {
    "info": {}, "licenses": [],
    "images": [
        {"id": 139, "file_name": "000000000139.jpg", "width": W, "height": H, "license": 2},
        {"id": 285, "file_name": "000000000285.jpg", "width": W, "height": H},
        {"id": 632, "file_name": "000000000632.jpg", "width": W, "height": H},
    ],
    "annotations": [
        {"image_id": 285, "file_name": "000000000285.png", "segments_info": []},
        {"image_id": 139, "file_name": "000000000139.png", "segments_info": [
            {"id": SKY_ID, "category_id": 187, "iscrowd": 0, "bbox": [0, 0, 8, 2], "area": 16},
            {"id": PERSON_ID, "category_id": 1, "iscrowd": 0, "bbox": [1, 3, 3, 2], "area": 6},
            {"id": CROWD_ID, "category_id": 1, "iscrowd": 1, "bbox": [6, 4, 2, 2], "area": 4},
        ]},
    ],
    "categories": [
        {"id": 1, "name": "person", "supercategory": "person", "isthing": 1, "color": [220, 20, 60]},
        {"id": 187, "name": "sky-other-merged", "supercategory": "sky", "isthing": 0, "color": [106, 154, 176]},
    ],
}


@pytest.fixture()
def panoptic(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(DOC))
    _png(root / "annotations" / "panoptic_val2017" / "000000000139.png", _ids())
    _png(root / "annotations" / "panoptic_val2017" / "000000000285.png", np.zeros((H, W), np.uint32))
    for im in DOC["images"]:
        (root / "val2017").mkdir(exist_ok=True)
        Image.new("RGB", (W, H)).save(root / "val2017" / im["file_name"])
    return root


def test_read_exact(panoptic: Path) -> None:
    reader = coco_panoptic.read(panoptic)
    assert [(c.id, c.name, c.supercategory, c.color) for c in reader.classes] == [
        (1, "person", "person", "#dc143c"), (187, "sky-other-merged", "sky", "#6a9ab0")]
    samples = list(reader)
    assert [(s.image.file_name, s.state, s.split) for s in samples] == [
        ("000000000285.jpg", LabelState.NULL, "val2017"),
        ("000000000139.jpg", LabelState.ANNOTATED, "val2017"),
        ("000000000632.jpg", LabelState.MISSING, "val2017"),
    ]
    s = samples[1]
    assert s.image.path == str(panoptic / "val2017" / "000000000139.jpg")
    assert s.image.metadata == {"license": 2, "coco_id": 139}
    sky, person, crowd = s.annotations
    ids = _ids()
    for ann, seg_id in ((sky, SKY_ID), (person, PERSON_ID), (crowd, CROWD_ID)):
        assert isinstance(ann.geometry, Mask)
        np.testing.assert_array_equal(ann.geometry.to_array(), (ids == seg_id).astype(np.uint8))
    assert (sky.label, sky.attributes, sky.crowd, sky.bbox, sky.area) == (
        "sky-other-merged", {"isthing": False}, False, Box(0, 0, 8, 2), 16)
    assert (person.label, person.attributes, person.crowd, person.bbox) == ("person", {"isthing": True}, False,
                                                                           Box(1, 3, 4, 5))
    assert crowd.crowd and crowd.label == "person"


def test_round_trip(panoptic: Path, tmp_path: Path) -> None:
    reader = coco_panoptic.read(panoptic)
    first = list(reader)
    out = tmp_path / "out"
    report = coco_panoptic.write(first, out, classes=reader.classes)
    assert report.images == 3 and report.annotations == {"mask": 3}
    assert report.files == 3 + 3 + 1  # images, PNGs, JSON
    assert report.converted == {"missing -> null (every image gets a PNG)": 1} and not report.dropped
    doc = json.loads((out / "annotations" / "panoptic_val2017.json").read_text())
    assert doc["categories"] == DOC["categories"]
    assert [im["id"] for im in doc["images"]] == [285, 139, 632]
    assert doc["annotations"][1]["segments_info"] == [
        {"id": 1, "category_id": 187, "iscrowd": 0, "bbox": [0, 0, 8, 2], "area": 16},
        {"id": 2, "category_id": 1, "iscrowd": 0, "bbox": [1, 3, 3, 2], "area": 6},
        {"id": 3, "category_id": 1, "iscrowd": 1, "bbox": [6, 4, 2, 2], "area": 4},
    ]
    back = list(coco_panoptic.read(out))
    assert [s.image.file_name for s in back] == [s.image.file_name for s in first]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [LabelState.NULL, LabelState.ANNOTATED, LabelState.NULL]


def test_write_paints_in_order_and_reports(tmp_path: Path) -> None:
    Image.new("RGB", (W, H)).save(tmp_path / "a.jpg")
    full = np.zeros((H, W), np.uint8)
    full[0:2, 0:2] = 1
    samples = [Sample(ImageRef("a.jpg", W, H, path=str(tmp_path / "a.jpg")), (
        Annotation("road", Mask.from_array(full), attributes={"isthing": False}),
        Annotation("car", Box(0, 0, 1, 1)),  # overlaps the road's corner
        Annotation("car", Polygon(((4, 4, 6, 4, 6, 6, 4, 6),))),
        Annotation("car", Box(1, 1, 2, 2)),
        Annotation("person", Keypoints((1, 1, 2))),
    ))]
    out = tmp_path / "out"
    report = coco_panoptic.write(samples, out)
    assert report.converted == {"box -> mask (rasterised)": 2, "polygon -> mask (rasterised)": 1,
                                "overlapping masks -> the later one wins (panoptic segments do not overlap)": 2}
    assert report.dropped == {"keypoints: COCO panoptic holds segments only": 1}
    doc = json.loads((out / "annotations" / "panoptic_default.json").read_text())
    assert [(c["name"], c["isthing"]) for c in doc["categories"]] == [("road", 0), ("car", 1), ("person", 1)]
    assert [(s["id"], s["area"]) for s in doc["annotations"][0]["segments_info"]] == [(1, 2), (2, 1), (3, 4), (4, 1)]
    back = list(coco_panoptic.read(out))
    assert back[0].split is None
    assert [a.geometry.area for a in back[0].annotations] == [2, 1, 4, 1]  # type: ignore[union-attr]


def test_bad_input(panoptic: Path) -> None:
    doc = json.loads(json.dumps(DOC))
    doc["annotations"][1]["segments_info"][1]["category_id"] = 99
    p = panoptic / "annotations" / "panoptic_val2017.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(coco_panoptic.read(panoptic))
    assert e.value.path == str(p) and e.value.where == "annotations[1].segments_info[1]"
    assert "unknown category_id 99" in e.value.message
    doc["annotations"][1]["segments_info"][1]["category_id"] = 1
    doc["annotations"][1]["segments_info"][1]["id"] = 12345
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"segments_info\[1\]\): segment id 12345 has no pixel"):
        list(coco_panoptic.read(panoptic))
    (panoptic / "annotations" / "panoptic_val2017" / "000000000139.png").unlink()
    with pytest.raises(ImageError, match="000000000139.png"):
        list(coco_panoptic.read(panoptic))


def test_detect(panoptic: Path, tmp_path: Path) -> None:
    assert coco_panoptic.detect(panoptic).score >= 0.98
    assert detect(panoptic) == "coco_panoptic"
    assert detect(panoptic / "annotations" / "panoptic_val2017.json") == "coco_panoptic"
    (panoptic / "annotations" / "instances_val2017.json").write_text(
        '{"images": [], "annotations": [], "categories": []}')
    assert detect(panoptic) == "coco"  # a full COCO folder is read as instances


def test_datumaro_reads_our_panoptic(panoptic: Path, tmp_path: Path) -> None:
    import datumaro as dm

    reader = coco_panoptic.read(panoptic)
    coco_panoptic.write(list(reader), tmp_path / "out", classes=reader.classes)
    theirs = dm.Dataset.import_from(str(tmp_path / "out"), "coco_panoptic")
    names = [c.name for c in theirs.categories()[dm.AnnotationType.label]]
    item = theirs.get("000000000139", "val2017")
    found = sorted((names[a.label], int(a.image.sum()), a.attributes["is_crowd"]) for a in item.annotations)
    assert found == [("person", 4, True), ("person", 6, False), ("sky-other-merged", 16, False)]
