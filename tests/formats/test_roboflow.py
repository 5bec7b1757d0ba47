"""Roboflow export quirks (issue 12, category 8).

Laid out as Roboflow's exports are (https://roboflow.com/formats : "COCO JSON", "YOLOv8 PyTorch TXT",
"Tensorflow Object Detection CSV", "Multi-Label Classification CSV"; e.g. the public Raccoon dataset's v2 exports
on universe.roboflow.com): one folder per split (`train/`, `valid/`, `test/` only when the project has one), each
with `_annotations.coco.json`, `_annotations.csv` or `_classes.csv` beside its images, `README.roboflow.txt` and
`README.dataset.txt` at the top; COCO `categories` start with the umbrella category `{"id": 0, "name": <dataset>,
"supercategory": "none"}` that is every real category's supercategory and that no annotation uses; `data.yaml`
always names `test: ../test/images`, whether or not that folder exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Label
from visionloop.formats import coco, detect, read
from visionloop.formats.base import count_skips
from visionloop.formats.convert import convert

UMBRELLA = "category: Roboflow's umbrella category (the dataset's name, supercategory none), used by no annotation"


def _readme(root: Path) -> None:
    (root / "README.roboflow.txt").write_text("\nRaccoons - v2 2023-01-01\n==============================\n\n"
                                              "This dataset was exported via roboflow.com on January 1, 2023\n")
    (root / "README.dataset.txt").write_text("# Raccoons > 416x416\nhttps://universe.roboflow.com/\n")


def _coco(root: Path, *, umbrella_used: bool = False) -> Path:
    for split, names in (("train", ["a_jpg.rf.1.jpg", "b_jpg.rf.2.jpg"]), ("valid", ["c_jpg.rf.3.jpg"])):
        (root / split).mkdir(parents=True)
        images, anns = [], []
        for i, n in enumerate(names):
            Image.new("RGB", (40, 30)).save(root / split / n)
            images.append({"id": i, "license": 1, "file_name": n, "height": 30, "width": 40,
                           "date_captured": "2023-01-01T00:00:00+00:00"})
            anns.append({"id": i, "image_id": i, "category_id": 0 if umbrella_used and i == 0 else 1,
                         "bbox": [1, 2, 10, 8], "area": 80, "segmentation": [], "iscrowd": 0})
        (root / split / "_annotations.coco.json").write_text(json.dumps({
            "info": {"year": "2023", "version": "2", "description": "Exported from roboflow.com", "contributor": "",
                     "url": "https://public.roboflow.com/object-detection/undefined",
                     "date_created": "2023-01-01T00:00:00+00:00"},
            "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
            "categories": [{"id": 0, "name": "raccoons", "supercategory": "none"},
                           {"id": 1, "name": "raccoon", "supercategory": "raccoons"}],
            "images": images, "annotations": anns}))
    _readme(root)
    return root


def test_coco_umbrella_category_is_not_a_class(tmp_path: Path) -> None:
    root = _coco(tmp_path / "rf")
    assert detect(root) == "coco"
    with count_skips() as skips:
        reader = read(root)
        samples = list(reader)
    assert [(c.id, c.name) for c in reader.classes] == [(1, "raccoon")]
    assert dict(skips) == {UMBRELLA: 2}  # one per split file
    assert [(s.split, s.image.file_name, [a.geometry for a in s.annotations]) for s in samples] == [
        ("train", "a_jpg.rf.1.jpg", [Box(1, 2, 11, 10)]), ("train", "b_jpg.rf.2.jpg", [Box(1, 2, 11, 10)]),
        ("valid", "c_jpg.rf.3.jpg", [Box(1, 2, 11, 10)])]
    # nothing of the dataset is lost: counted, and --strict converts it too
    report = convert(root, tmp_path / "out", to="coco", images="none", strict=True, workers=1)
    assert report.skipped == {UMBRELLA: 2} and report.annotations == {"box": 3}
    written = json.loads((tmp_path / "out" / "train" / "_annotations.coco.json").read_text())
    assert [c["name"] for c in written["categories"]] == ["raccoon"]


def test_coco_umbrella_category_in_use_stays_a_class(tmp_path: Path) -> None:
    root = _coco(tmp_path / "rf", umbrella_used=True)
    with count_skips() as skips:
        reader = coco.read(root)
        samples = list(reader)
    assert [c.name for c in reader.classes] == ["raccoons", "raccoon"] and not skips
    assert [a.label for s in samples for a in s.annotations] == ["raccoons", "raccoon", "raccoons"]


def test_yolo_data_yaml_whose_test_folder_is_absent(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir()
        Image.new("RGB", (40, 30)).save(root / split / "images" / "x.jpg")
        (root / split / "labels" / "x.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 1\n"
                                    "names: ['raccoon']\n\nroboflow:\n  workspace: w\n  project: raccoons\n"
                                    "  version: 2\n  license: CC BY 4.0\n  url: https://universe.roboflow.com/w/raccoons/dataset/2\n")
    _readme(root)
    samples = list(read(root))
    assert [(s.split, [a.geometry for a in s.annotations]) for s in samples] == [
        ("train", [Box(15, 7.5, 25, 22.5)]), ("val", [Box(15, 7.5, 25, 22.5)])]
    # a missing train or val folder is still refused
    (root / "data.yaml").write_text("train: ../train/images\nval: ../gone/images\nnames: ['raccoon']\n")
    with pytest.raises(FormatError, match="key 'val'"):
        read(root, format="yolo")


def test_tf_csv_and_classes_csv_per_split(tmp_path: Path) -> None:
    csv_root, cls_root = tmp_path / "csv", tmp_path / "cls"
    for split in ("train", "valid"):
        (csv_root / split).mkdir(parents=True)
        Image.new("RGB", (40, 30)).save(csv_root / split / "x.jpg")
        (csv_root / split / "_annotations.csv").write_text(
            "filename,width,height,class,xmin,ymin,xmax,ymax\nx.jpg,40,30,raccoon,1,2,11,10\n")
        (cls_root / split).mkdir(parents=True)
        for n in ("x.jpg", "y.jpg"):
            Image.new("RGB", (40, 30)).save(cls_root / split / n)
        # Roboflow's multi-label classification CSV: one-hot columns, a space after each comma in the header
        (cls_root / split / "_classes.csv").write_text("filename, cat, dog\nx.jpg,1,0\ny.jpg,1,1\n")
    _readme(csv_root)
    _readme(cls_root)
    boxes = [(s.split, s.image.file_name, [(a.label, a.geometry) for a in s.annotations]) for s in read(csv_root)]
    assert boxes == [("train", "x.jpg", [("raccoon", Box(1, 2, 11, 10))]),
                     ("valid", "x.jpg", [("raccoon", Box(1, 2, 11, 10))])]
    labels = [(s.split, s.image.file_name, [(a.label, a.geometry) for a in s.annotations]) for s in read(cls_root)]
    assert labels == [("train", "x.jpg", [("cat", Label())]), ("train", "y.jpg", [("cat", Label()), ("dog", Label())]),
                      ("valid", "x.jpg", [("cat", Label())]), ("valid", "y.jpg", [("cat", Label()), ("dog", Label())])]
