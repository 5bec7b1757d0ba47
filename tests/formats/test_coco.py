"""COCO reader/writer. Layout per https://cocodataset.org/#format-data ; pycocotools is the oracle."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from visionloop.core import Box, FormatError, Keypoints, LabelState, Mask, Polygon
from visionloop.formats import coco, detect
from visionloop.formats.base import ImageMode


def _rle_of(arr):
    return mask_utils.encode(np.asfortranarray(arr.astype(np.uint8)))


@pytest.fixture
def coco_dir(tmp_path: Path) -> Path:
    """A hand-written COCO file: sparse category ids, multi-part polygon, both RLE kinds, crowd, keypoints."""
    for name, size in (("a.jpg", (40, 30)), ("b.jpg", (20, 10)), ("c.jpg", (8, 8))):
        Image.new("RGB", size, (120, 20, 20)).save(tmp_path / name)
    arr = np.zeros((30, 40), np.uint8)
    arr[5:15, 10:20] = 1
    compressed = _rle_of(arr)
    crowd = np.zeros((10, 20), np.uint8)
    crowd[2:6, 3:9] = 1
    flat = crowd.flatten(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    doc = {
        "info": {"description": "fixture"},
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "b.jpg", "width": 20, "height": 10, "license": 1},
            {"id": 9, "file_name": "c.jpg", "width": 8, "height": 8},
        ],
        "annotations": [
            # deliberately not grouped by image
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0,
             "segmentation": []},
            {"id": 2, "image_id": 3, "category_id": 12, "bbox": [3, 2, 6, 4], "area": 24, "iscrowd": 1,
             "segmentation": {"size": [10, 20], "counts": runs}},
            {"id": 3, "image_id": 7, "category_id": 12, "bbox": [0, 0, 12, 12], "area": 60, "iscrowd": 0,
             "segmentation": [[0, 0, 10, 0, 10, 10], [11, 11, 12, 11, 12, 12]]},
            {"id": 4, "image_id": 7, "category_id": 5, "bbox": [10, 5, 10, 10], "area": 100, "iscrowd": 0,
             "segmentation": {"size": [30, 40], "counts": compressed["counts"].decode()}},
            {"id": 5, "image_id": 7, "category_id": 1, "bbox": [2, 2, 20, 20], "area": 400, "iscrowd": 0,
             "num_keypoints": 2, "keypoints": [5, 5, 2, 0, 0, 0, 15, 20, 1], "segmentation": []},
        ],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "human", "keypoints": ["nose", "eye", "foot"],
             "skeleton": [[1, 2], [2, 3]]},
            {"id": 5, "name": "cat", "supercategory": "animal"},
            {"id": 12, "name": "crowd of fish", "supercategory": "animal"},
        ],
    }
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    return tmp_path


def test_detect(coco_dir):
    assert coco.detect(coco_dir / "instances.json").score >= 0.8
    assert detect(coco_dir) == "coco"
    assert coco.detect(coco_dir / "a.jpg").score == 0


def test_read_exact(coco_dir):
    reader = coco.read(coco_dir / "instances.json")
    assert [(c.id, c.name) for c in reader.classes] == [(1, "person"), (5, "cat"), (12, "crowd of fish")]
    assert reader.classes["person"].keypoints == ("nose", "eye", "foot")
    samples = list(reader)
    assert [s.image.file_name for s in samples] == ["a.jpg", "b.jpg", "c.jpg"]  # the order of `images`
    a, b, c = samples
    assert a.image.size == (40, 30) and a.image.path == str(coco_dir / "a.jpg")
    assert [x.label for x in a.annotations] == ["cat", "crowd of fish", "cat", "person"]
    assert a.annotations[0].geometry == Box(1, 2, 11, 7)
    poly = a.annotations[1].geometry
    assert poly == Polygon(((0, 0, 10, 0, 10, 10), (11, 11, 12, 11, 12, 12)))
    assert a.annotations[1].bbox == Box(0, 0, 12, 12) and a.annotations[1].area == 60
    m = a.annotations[2].geometry
    assert isinstance(m, Mask) and m.area == 100
    kp = a.annotations[3].geometry
    assert kp == Keypoints((5, 5, 2, 0, 0, 0, 15, 20, 1))
    crowd = b.annotations[0]
    assert crowd.crowd and isinstance(crowd.geometry, Mask) and crowd.geometry.area == 24
    assert b.image.metadata["license"] == 1
    assert c.state is LabelState.NULL and c.annotations == ()


def test_roundtrip_keeps_ids_polygons_crowd_and_rle_bits(coco_dir, tmp_path):
    src = coco_dir / "instances.json"
    out = tmp_path / "out"
    report = coco.write(coco.read(src), out, classes=coco.read(src).classes)
    assert report.images == 3
    assert dict(report.annotations) == {"box": 1, "mask": 2, "polygon": 1, "keypoints": 1}
    written = out / "_annotations.coco.json"
    # pycocotools reads it, with the same category ids, boxes, areas and decoded masks
    ours, theirs = COCO(str(written)), COCO(str(src))
    assert sorted(ours.getCatIds()) == [1, 5, 12]
    assert {c["id"]: c["name"] for c in ours.loadCats(ours.getCatIds())} == \
        {c["id"]: c["name"] for c in theirs.loadCats(theirs.getCatIds())}
    by_name = {im["file_name"]: im["id"] for im in ours.loadImgs(ours.getImgIds())}
    for their_img in theirs.loadImgs(theirs.getImgIds()):
        mine = ours.loadAnns(ours.getAnnIds(imgIds=[by_name[their_img["file_name"]]]))
        orig = theirs.loadAnns(theirs.getAnnIds(imgIds=[their_img["id"]]))
        key = lambda a: (a["category_id"], a["bbox"])  # noqa: E731
        mine, orig = sorted(mine, key=key), sorted(orig, key=key)
        assert [(a["category_id"], a["bbox"], a["area"], a["iscrowd"]) for a in mine] == \
            [(a["category_id"], a["bbox"], a["area"], a["iscrowd"]) for a in orig]
        for x, y in zip(mine, orig, strict=True):
            if y["segmentation"]:
                np.testing.assert_array_equal(ours.annToMask(x), theirs.annToMask(y))
            if isinstance(y["segmentation"], list) and y["segmentation"]:
                assert x["segmentation"] == y["segmentation"]
    # and our reader gives back the very same samples
    again = list(coco.read(written))
    first = list(coco.read(src))
    assert [s.annotations for s in again] == [s.annotations for s in first]


def test_roboflow_split_layout(coco_dir, tmp_path):
    samples = [s for s in coco.read(coco_dir / "instances.json")]
    from dataclasses import replace
    split = [replace(s, split=k) for s, k in zip(samples, ["train", "valid", "train"], strict=True)]
    out = tmp_path / "rf"
    coco.write(split, out, images=ImageMode.COPY)
    assert (out / "train" / "_annotations.coco.json").is_file()
    assert (out / "valid" / "b.jpg").is_file()
    back = list(coco.read(out))
    assert sorted((s.split, s.image.file_name) for s in back) == [("train", "a.jpg"), ("train", "c.jpg"),
                                                                   ("valid", "b.jpg")]


def _write(tmp_path, doc, text=None):
    p = tmp_path / "bad.json"
    p.write_text(text if text is not None else json.dumps(doc))
    return p


def test_malformed_json_names_line_and_column(tmp_path):
    p = _write(tmp_path, None, '{"images": [\n {"id": 1, "file_name": "x.jpg"},\n {"id": 2 "file_name": "y.jpg"}\n]}')
    with pytest.raises(FormatError) as e:
        list(coco.read(p))
    assert "bad.json" in str(e.value) and "line 3" in str(e.value)


def test_unknown_category_and_orphan_image_id(tmp_path):
    base = {"images": [{"id": 1, "file_name": "x.jpg", "width": 4, "height": 4}],
            "categories": [{"id": 1, "name": "a"}]}
    p = _write(tmp_path, {**base, "annotations": [{"id": 9, "image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1]}]})
    with pytest.raises(FormatError, match=r"bad.json \(annotations\[0\] \(id 9\)\): unknown category_id 4"):
        list(coco.read(p))
    p = _write(tmp_path, {**base, "annotations": [{"id": 9, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]})
    with pytest.raises(FormatError, match="image_id 2, which is not in `images`"):
        list(coco.read(p))
    p = _write(tmp_path, {**base, "images": base["images"] * 2, "annotations": []})
    with pytest.raises(FormatError, match="duplicate image id 1"):
        list(coco.read(p))
    p = _write(tmp_path, {**base, "annotations": [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]})
    with pytest.raises(FormatError, match="bbox needs 4 numbers"):
        list(coco.read(p))


@pytest.mark.parametrize("given", ["folder", "file"])
def test_official_layout_finds_images_per_split(tmp_path, given):
    """annotations/instances_<split>.json + images/<split>/ (COCO's and datumaro's layout), folder or file given."""
    for split in ("val2017", "default"):
        (tmp_path / "images" / split).mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(tmp_path / "images" / split / f"{split}.jpg")
        (tmp_path / "annotations").mkdir(exist_ok=True)
        doc = {"images": [{"id": 1, "file_name": f"{split}.jpg", "width": 8, "height": 6}], "annotations": [],
               "categories": [{"id": 1, "name": "a"}]}
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    sources = [tmp_path] if given == "folder" else sorted((tmp_path / "annotations").glob("*.json"))
    got = sorted((s.split or "-", Path(s.image.path).relative_to(tmp_path).as_posix())
                 for src in sources for s in coco.read(src))
    assert got == [("-", "images/default/default.jpg"), ("val2017", "images/val2017/val2017.jpg")]


def test_grouped_annotations_out_of_image_order(tmp_path):
    """Each image's annotations contiguous, but not in `images` order: groups first, then the rest, in order."""
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 9, "height": 9} for i in (1, 2, 3, 4)],
           "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1]},
                           {"id": 2, "image_id": 3, "category_id": 1, "bbox": [1, 1, 1, 1]},
                           {"id": 3, "image_id": 1, "category_id": 1, "bbox": [2, 2, 1, 1]}],
           "categories": [{"id": 1, "name": "a"}]}
    p = tmp_path / "x.json"
    p.write_text(json.dumps(doc))
    got = [(s.image.file_name, len(s.annotations), s.state) for s in coco.read(p)]
    assert got == [("3.jpg", 2, LabelState.ANNOTATED), ("1.jpg", 1, LabelState.ANNOTATED),
                   ("2.jpg", 0, LabelState.NULL), ("4.jpg", 0, LabelState.NULL)]
    index = coco._scan(p)
    assert (index.grouped, index.in_image_order) == (True, False)
