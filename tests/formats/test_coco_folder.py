"""The official COCO 2017 annotation folder: several files describe the same images.

Layout as cocodataset.org distributes it (annotations_trainval2017.zip, stuff_annotations_trainval2017.zip,
image_info_test2017.zip), and as https://cocodataset.org/#format-data documents each file:

    annotations/instances_val2017.json         images + object annotations + 80 categories (ids 1..90)
    annotations/person_keypoints_val2017.json  the same images; person annotations (same annotation ids as in
                                               instances) + `keypoints`/`num_keypoints`; category person
                                               with `keypoints` names and `skeleton`
    annotations/captions_val2017.json          the same images; {image_id, id, caption}; no `categories`
    annotations/stuff_val2017.json             the same images; stuff RLE masks, categories 92..183
    annotations/image_info_test2017.json       test images only: `images` + `categories`, no `annotations`

Files describing the same split are one set of samples: one per image, with every file's annotations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core import FormatError, Keypoints, LabelState, Mask, Polygon
from visionloop.formats import coco, detect

KP_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle"]
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
            [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
INFO = {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
        "contributor": "COCO Consortium", "date_created": "2017/09/01"}
LICENSES = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
             "name": "Attribution-NonCommercial-ShareAlike License"}]
IMAGES = [
    {"license": 4, "file_name": "000000000139.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg",
     "height": 426, "width": 640, "date_captured": "2013-11-21 01:34:01", "id": 139},
    {"license": 1, "file_name": "000000000285.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000000285.jpg",
     "height": 640, "width": 586, "date_captured": "2013-11-18 13:09:47", "id": 285},
    {"license": 4, "file_name": "000000000632.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000000632.jpg",
     "height": 483, "width": 640, "date_captured": "2013-11-20 21:14:01", "id": 632},
]
CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person"},
              {"supercategory": "animal", "id": 18, "name": "dog"},
              {"supercategory": "animal", "id": 23, "name": "bear"}]
PERSON = {"segmentation": [[412.8, 157.61, 465.85, 158.0, 464.0, 304.0, 414.0, 300.0]], "num_keypoints": 3,
          "area": 2913.1, "iscrowd": 0,
          "keypoints": [427, 170, 1, 429, 169, 2, 0, 0, 0] + [0, 0, 0] * 14,
          "image_id": 139, "bbox": [412.8, 157.61, 53.05, 138.01], "category_id": 1, "id": 230831}


def _rle(h: int, w: int, box: tuple[int, int, int, int]) -> dict:
    """A compressed RLE as pycocotools writes it (COCO-Stuff's stuff_*.json hold these)."""
    arr = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(arr))
    return {"size": [h, w], "counts": rle["counts"].decode()}


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def coco2017(root: Path) -> Path:
    """A tiny copy of COCO 2017's annotation folder: 3 val images (139: person + dog; 285: bear; 632: nothing
    but captions) and 1 test image."""
    ann = root / "annotations"
    instance_anns = [
        {k: v for k, v in PERSON.items() if k not in ("keypoints", "num_keypoints")},
        {"segmentation": [[10.0, 10.0, 60.0, 10.0, 60.0, 50.0]], "area": 1000.0, "iscrowd": 0, "image_id": 139,
         "bbox": [10.0, 10.0, 50.0, 40.0], "category_id": 18, "id": 1817255},
        {"segmentation": [[100.0, 100.0, 300.0, 100.0, 300.0, 400.0]], "area": 30000.0, "iscrowd": 0,
         "image_id": 285, "bbox": [100.0, 100.0, 200.0, 300.0], "category_id": 23, "id": 1201},
    ]
    _write(ann / "instances_val2017.json", {"info": INFO, "licenses": LICENSES, "images": IMAGES,
                                            "annotations": instance_anns, "categories": CATEGORIES})
    person_cat = {**CATEGORIES[0], "keypoints": KP_NAMES, "skeleton": SKELETON}
    _write(ann / "person_keypoints_val2017.json", {"info": INFO, "licenses": LICENSES, "images": IMAGES,
                                                   "annotations": [PERSON], "categories": [person_cat]})
    captions = [{"image_id": 139, "id": 372891, "caption": "A woman stands in the dining area at the table."},
                {"image_id": 139, "id": 376046, "caption": "A room with chairs, a table, and a woman in it."},
                {"image_id": 285, "id": 650, "caption": "A big burly grizzly bear is show with grass in the background."},
                {"image_id": 632, "id": 3501, "caption": "Bedroom scene with a bookcase, blue comforter and window."}]
    _write(ann / "captions_val2017.json", {"info": INFO, "licenses": LICENSES, "images": IMAGES,
                                           "annotations": captions})
    stuff_cats = [{"supercategory": "textile", "id": 92, "name": "banner"},
                  {"supercategory": "other", "id": 183, "name": "other"}]
    stuff = [{"segmentation": _rle(426, 640, (0, 0, 640, 100)), "area": 64000.0, "iscrowd": 0, "image_id": 139,
              "bbox": [0.0, 0.0, 640.0, 100.0], "category_id": 92, "id": 10000000},
             {"segmentation": _rle(640, 586, (0, 500, 586, 640)), "area": 82040.0, "iscrowd": 0, "image_id": 285,
              "bbox": [0.0, 500.0, 586.0, 140.0], "category_id": 183, "id": 10000001}]
    _write(ann / "stuff_val2017.json", {"info": INFO, "licenses": LICENSES, "images": IMAGES, "annotations": stuff,
                                        "categories": stuff_cats})
    test_images = [{"license": 6, "file_name": "000000466319.jpg", "coco_url": "", "height": 480, "width": 640,
                    "date_captured": "2013-11-14 11:04:33", "id": 466319}]
    _write(ann / "image_info_test2017.json", {"info": INFO, "licenses": LICENSES, "images": test_images,
                                              "categories": CATEGORIES})
    return root


def _summary(sample):
    kinds = sorted(f"{a.label}:{type(a.geometry).__name__}" for a in sample.annotations if not a.is_caption)
    assert "captions" not in sample.image.metadata
    return (sample.image.file_name, sample.split, sample.state, kinds,
            [a.geometry.text for a in sample.annotations if a.is_caption])


def test_one_sample_per_image_with_every_file_s_annotations(tmp_path):
    root = coco2017(tmp_path / "coco")
    assert detect(root) == "coco"
    reader = coco.read(root)
    got = [_summary(s) for s in reader]
    assert got == [
        ("000000000139.jpg", "val2017", LabelState.ANNOTATED,
         ["banner:Mask", "dog:Polygon", "person:Keypoints", "person:Polygon"],
         ["A woman stands in the dining area at the table.", "A room with chairs, a table, and a woman in it."]),
        ("000000000285.jpg", "val2017", LabelState.ANNOTATED, ["bear:Polygon", "other:Mask"],
         ["A big burly grizzly bear is show with grass in the background."]),
        ("000000000632.jpg", "val2017", LabelState.ANNOTATED, [],  # captioned: labelled
         ["Bedroom scene with a bookcase, blue comforter and window."]),
        ("000000466319.jpg", "test2017", LabelState.MISSING, [], []),
    ]
    # the class map is the union, with person's keypoint names from person_keypoints_*.json
    assert [(c.id, c.name) for c in reader.classes] == [(1, "person"), (18, "dog"), (23, "bear"), (92, "banner"),
                                                        (183, "other")]
    assert reader.classes["person"].keypoints == tuple(KP_NAMES)
    assert reader.classes["person"].skeleton == tuple(tuple(p) for p in SKELETON)
    first = next(iter(coco.read(root)))
    kp = next(a for a in first.annotations if isinstance(a.geometry, Keypoints))
    poly = next(a for a in first.annotations if a.label == "person" and isinstance(a.geometry, Polygon))
    assert kp.geometry.points[:6] == (427, 170, 1, 429, 169, 2) and poly.bbox == kp.bbox
    assert isinstance(next(a for a in first.annotations if a.label == "banner").geometry, Mask)


def test_convert_cli_counts(tmp_path):
    root = coco2017(tmp_path / "coco")
    r = CliRunner().invoke(app, ["convert", str(root), str(tmp_path / "out"), "--to", "datumaro", "--images", "none",
                                 "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["images"] == 4
    assert rep["annotations"] == {"keypoints": 1, "polygon": 3, "mask": 2, "caption": 4}
    val = json.loads((tmp_path / "out" / "annotations" / "val2017.json").read_text())
    assert [(i["id"], len(i["annotations"])) for i in val["items"]] == [
        ("000000000139", 6), ("000000000285", 3), ("000000000632", 1)]
    test = json.loads((tmp_path / "out" / "annotations" / "test2017.json").read_text())
    assert [i["id"] for i in test["items"]] == ["000000466319"]


def test_instances_and_keypoints_alone_do_not_duplicate(tmp_path):
    root = coco2017(tmp_path / "coco")
    for name in ("captions_val2017.json", "stuff_val2017.json", "image_info_test2017.json"):
        (root / "annotations" / name).unlink()
    got = [_summary(s)[:4] for s in coco.read(root)]
    assert got == [
        ("000000000139.jpg", "val2017", LabelState.ANNOTATED, ["dog:Polygon", "person:Keypoints", "person:Polygon"]),
        ("000000000285.jpg", "val2017", LabelState.ANNOTATED, ["bear:Polygon"]),
        ("000000000632.jpg", "val2017", LabelState.NULL, []),
    ]


def test_image_info_alone_is_unlabelled_images(tmp_path):
    root = coco2017(tmp_path / "coco")
    for f in (root / "annotations").glob("*val2017.json"):
        f.unlink()
    assert detect(root) == "coco"
    got = [_summary(s) for s in coco.read(root)]
    assert got == [("000000466319.jpg", "test2017", LabelState.MISSING, [], [])]


def test_files_disagreeing_on_an_image_refused(tmp_path):
    root = coco2017(tmp_path / "coco")
    f = root / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(f.read_text())
    doc["images"][1]["file_name"] = "elsewhere.jpg"
    f.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(coco.read(root))
    assert e.value.path == str(f) and "image id 285 is 'elsewhere.jpg' here but '000000000285.jpg'" in e.value.message


def test_caption_of_an_unknown_image_refused(tmp_path):
    root = coco2017(tmp_path / "coco")
    f = root / "annotations" / "captions_val2017.json"
    doc = json.loads(f.read_text())
    doc["annotations"].append({"image_id": 999, "id": 1, "caption": "nobody"})
    f.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(coco.read(root))
    assert e.value.path == str(f) and e.value.where == "annotations[4]" and "image_id 999" in e.value.message
