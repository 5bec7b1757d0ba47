"""Segment Anything SA-1B reader and writer.

Schema from the segment-anything README, "Dataset" section:
https://github.com/facebookresearch/segment-anything#dataset
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, sa1b
from visionloop.formats.base import ImageMode


def _rle(arr: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(arr.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


A = np.zeros((6, 8), np.uint8)
A[1:4, 2:6] = 1  # bbox [2, 1, 4, 3], area 12
B = np.zeros((6, 8), np.uint8)
B[0, 0] = 1


@pytest.fixture()
def shard(tmp_path: Path) -> Path:
    root = tmp_path / "sa_000000"
    root.mkdir()
    Image.new("RGB", (8, 6), (1, 2, 3)).save(root / "sa_1.jpg")
    Image.new("RGB", (8, 6), (1, 2, 3)).save(root / "sa_2.jpg")
    (root / "sa_1.json").write_text(json.dumps({
        "image": {"image_id": 1, "width": 8, "height": 6, "file_name": "sa_1.jpg"},
        "annotations": [
            {"id": 1850012, "segmentation": _rle(A), "bbox": [2, 1, 4, 3], "area": 12, "predicted_iou": 0.983,
             "stability_score": 0.952, "crop_box": [0, 0, 8, 6], "point_coords": [[3.5, 2.25]]},
            {"id": 1850013, "segmentation": _rle(B), "bbox": [0, 0, 1, 1], "area": 1, "predicted_iou": 0.71,
             "stability_score": 0.9, "crop_box": [0, 0, 4, 3], "point_coords": [[0.5, 0.5]]},
        ],
    }))
    (root / "sa_2.json").write_text(json.dumps({
        "image": {"image_id": 2, "width": 8, "height": 6, "file_name": "sa_2.jpg"}, "annotations": []}))
    return tmp_path


def test_read_exact(shard: Path) -> None:
    reader = sa1b.read(shard)
    samples = list(reader)
    assert reader.classes.names == ["object"]
    assert [s.image.file_name for s in samples] == ["sa_000000/sa_1.jpg", "sa_000000/sa_2.jpg"]
    one, two = samples
    assert one.image.size == (8, 6) and one.image.metadata == {"sa1b_id": 1}
    assert one.image.path == str(shard / "sa_000000" / "sa_1.jpg")
    first = one.annotations[0]
    assert first.label == "object" and first.bbox == Box(2, 1, 6, 4) and first.area == 12
    assert first.attributes == {"sa1b_id": 1850012, "predicted_iou": 0.983, "stability_score": 0.952, "crop_box": [0, 0, 8, 6],
                                "point_coords": [[3.5, 2.25]]}
    assert isinstance(first.geometry, Mask) and first.geometry.counts == _rle(A)["counts"].encode()
    np.testing.assert_array_equal(first.geometry.to_array(), A)
    assert one.annotations[1].geometry.bounds() == Box(0, 0, 1, 1)  # type: ignore[union-attr]
    assert two.state is LabelState.NULL and two.annotations == ()


def test_round_trip(shard: Path, tmp_path: Path) -> None:
    first = list(sa1b.read(shard))
    out = tmp_path / "out"
    report = sa1b.write(first, out)
    assert report.images == 2 and report.files == 4 and dict(report.annotations) == {"mask": 2}
    assert not report.dropped and not report.converted
    written = json.loads((out / "sa_1.json").read_text())
    original = json.loads((shard / "sa_000000" / "sa_1.json").read_text())
    assert written == original  # byte-for-byte the same document, ids included
    back = list(sa1b.read(out))
    assert [s.image.file_name for s in back] == ["sa_1.jpg", "sa_2.jpg"]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.image.metadata for s in back] == [s.image.metadata for s in first]


def test_write_converts_and_drops(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6)).save(tmp_path / "x.jpg")
    Image.new("RGB", (8, 6)).save(tmp_path / "x.png")
    ref = ImageRef("imgs/x.jpg", 8, 6, path=str(tmp_path / "x.jpg"))
    samples = [
        Sample(ref, (Annotation("car", Box(2, 1, 6, 4), confidence=0.5),
                     Annotation("car", Polygon(((0, 0, 4, 0, 4, 4),))),
                     Annotation("person", Keypoints((1, 1, 2))))),
        Sample(ImageRef("x.png", 8, 6, path=str(tmp_path / "x.png")), (), state=LabelState.MISSING),
    ]
    out = tmp_path / "out"
    report = sa1b.write(samples, out, images=ImageMode.COPY)
    assert report.converted == {"box -> mask (rasterised)": 1, "polygon -> mask (rasterised)": 1,
                                "missing -> null (SA-1B has a JSON for every image)": 1}
    assert report.dropped == {"keypoints: SA-1B holds masks only": 1}
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg", "x.json", "x_1.json", "x_1.png"]
    doc = json.loads((out / "x.json").read_text())
    assert [a["id"] for a in doc["annotations"]] == [1, 2]
    assert doc["annotations"][0]["bbox"] == [2, 1, 4, 3] and doc["annotations"][0]["area"] == 12
    assert doc["annotations"][0]["label"] == "car" and doc["annotations"][0]["score"] == 0.5
    back = {s.image.file_name: s for s in sa1b.read(out)}
    box = back["x.jpg"].annotations[0]
    assert box.label == "car" and box.confidence == 0.5 and box.geometry.bounds() == Box(2, 1, 6, 4)  # type: ignore[union-attr]
    assert json.loads((out / "x_1.json").read_text())["image"]["file_name"] == "x_1.png"


def test_bad_input_names_file_and_annotation(shard: Path) -> None:
    p = shard / "sa_000000" / "sa_2.json"
    p.write_text(json.dumps({"image": {"image_id": 2, "width": 8, "height": 6, "file_name": "sa_2.jpg"},
                             "annotations": [{"id": 5, "segmentation": [[0, 0, 1, 0, 1, 1]]}]}))
    with pytest.raises(FormatError) as e:
        list(sa1b.read(shard))
    assert "sa_2.json" in str(e.value) and e.value.where == "annotations[0] (id 5)"
    p.write_text(json.dumps({"image": {"image_id": 2, "width": 9, "height": 6, "file_name": "sa_2.jpg"},
                             "annotations": [{"id": 6, "segmentation": _rle(A)}]}))
    with pytest.raises(FormatError, match=r"sa_2.json \(annotations\[0\] \(id 6\)\): .*8×6 differs from the image's 9×6"):
        list(sa1b.read(shard))
    p.write_text('{"image": {"image_id": 2,\n "file_name": }')
    with pytest.raises(FormatError) as e:
        list(sa1b.read(shard))
    assert "sa_2.json" in str(e.value) and "line 2" in str(e.value.where)


def test_detect(shard: Path) -> None:
    assert sa1b.detect(shard).score >= 0.97
    assert detect(shard) == "sa1b"
    assert detect(shard / "sa_000000") == "sa1b"  # beats COCO's guess on a folder of JSONs
    assert detect(shard / "sa_000000" / "sa_1.json") == "sa1b"
    (shard / "other.json").write_text('{"images": [], "annotations": [], "categories": []}')
    assert sa1b.detect(shard / "other.json").score == 0


def test_interop_with_datumaro(shard: Path, tmp_path: Path) -> None:
    import datumaro as dm

    sa1b.write(list(sa1b.read(shard)), tmp_path / "out")
    theirs = dm.Dataset.import_from(str(tmp_path / "out"), "segment_anything")
    masks = [a for item in theirs for a in item.annotations if a.type == dm.AnnotationType.mask]
    assert sorted(int(m.image.sum()) for m in masks) == [1, 12]
    theirs.export(str(tmp_path / "theirs"), "segment_anything", save_media=True)
    back = {s.image.file_name: s for s in sa1b.read(tmp_path / "theirs")}
    assert sorted(a.geometry.area for a in back["sa_1.jpg"].annotations) == [1, 12]  # type: ignore[union-attr]
