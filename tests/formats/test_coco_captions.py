"""COCO captions reader and writer. Format: https://cocodataset.org/#format-data ("Image Captioning")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import coco_captions, datumaro, detect
from visionloop.formats.base import ImageMode

DOC = {
    "info": {"description": "COCO 2017 Dataset"}, "licenses": [],
    "images": [
        {"license": 4, "file_name": "000000397133.jpg", "height": 6, "width": 8, "id": 397133},
        {"license": 1, "file_name": "000000037777.jpg", "height": 6, "width": 8, "id": 37777},
    ],
    "annotations": [
        {"image_id": 397133, "id": 370, "caption": "A man is in a kitchen making pizzas."},
        {"image_id": 37777, "id": 11, "caption": "A kitchen with a stove."},  # not grouped by image
        {"image_id": 397133, "id": 3, "caption": "Man in apron standing on front of oven with pans."},
    ],
}


@pytest.fixture()
def captions(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    doc = json.loads(json.dumps(DOC))
    doc["images"].append({"license": 1, "file_name": "000000000001.jpg", "height": 6, "width": 8, "id": 1})
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(doc))
    (root / "val2017").mkdir()
    for im in doc["images"]:
        Image.new("RGB", (8, 6)).save(root / "val2017" / im["file_name"])
    return root


def test_read_exact(captions: Path) -> None:
    reader = coco_captions.read(captions)
    samples = list(reader)
    assert len(reader.classes) == 0
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("000000397133.jpg", "val2017", LabelState.NULL), ("000000037777.jpg", "val2017", LabelState.NULL),
        ("000000000001.jpg", "val2017", LabelState.MISSING)]
    first = samples[0]
    assert first.annotations == () and first.image.size == (8, 6)
    assert first.image.metadata == {"license": 4, "coco_id": 397133, "captions": [
        "A man is in a kitchen making pizzas.", "Man in apron standing on front of oven with pans."]}
    assert first.image.path == str(captions / "val2017" / "000000397133.jpg")
    assert samples[1].image.metadata["captions"] == ["A kitchen with a stove."]


def test_round_trip(captions: Path, tmp_path: Path) -> None:
    first = list(coco_captions.read(captions))
    out = tmp_path / "out"
    report = coco_captions.write(first, out)
    assert report.images == 3 and report.annotations == {"caption": 3} and report.files == 4
    doc = json.loads((out / "annotations" / "captions_val2017.json").read_text())
    assert [(a["image_id"], a["caption"]) for a in doc["annotations"]] == [
        (397133, "A man is in a kitchen making pizzas."), (397133, "Man in apron standing on front of oven with pans."),
        (37777, "A kitchen with a stove.")]
    back = list(coco_captions.read(out))
    assert [(s.image.file_name, s.image.metadata, s.state, s.split) for s in back] == \
        [(s.image.file_name, s.image.metadata, s.state, s.split) for s in first]


def test_captions_travel_through_datumaro(captions: Path, tmp_path: Path) -> None:
    first = list(coco_captions.read(captions))
    datumaro.write(first, tmp_path / "dm", images=ImageMode.NONE)
    back = list(datumaro.read(tmp_path / "dm"))
    assert [s.image.metadata.get("captions") for s in back] == [s.image.metadata.get("captions") for s in first]


def test_write_drops_geometry(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    sample = Sample(ImageRef("a.jpg", 4, 4, path=str(tmp_path / "a.jpg"), metadata={"captions": ["hi"]}),
                    (Annotation("cat", Box(0, 0, 1, 1)),))
    report = coco_captions.write([sample], tmp_path / "out")
    assert report.dropped == {"box: COCO captions holds captions only": 1}
    assert (tmp_path / "out" / "annotations" / "captions_default.json").is_file()
    assert next(iter(coco_captions.read(tmp_path / "out"))).split is None


def test_bad_input(captions: Path) -> None:
    p = captions / "annotations" / "captions_val2017.json"
    doc = json.loads(json.dumps(DOC))
    doc["annotations"][1]["caption"] = None
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(coco_captions.read(captions))
    assert e.value.path == str(p) and e.value.where == "annotations[1] (id 11)"
    doc["annotations"][1] = {"image_id": 5, "id": 11, "caption": "x"}
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"annotations\[1\]\): refers to image_id 5"):
        list(coco_captions.read(captions))


def test_detect(captions: Path) -> None:
    assert detect(captions) == "coco_captions"
    assert detect(captions / "annotations" / "captions_val2017.json") == "coco_captions"
    (captions / "annotations" / "instances_val2017.json").write_text(
        '{"images": [], "annotations": [], "categories": []}')
    assert detect(captions) == "coco"


def test_datumaro_reads_our_captions(captions: Path, tmp_path: Path) -> None:
    import datumaro as dm

    coco_captions.write(list(coco_captions.read(captions)), tmp_path / "out")
    theirs = dm.Dataset.import_from(str(tmp_path / "out"), "coco_captions")
    found = {item.id: sorted(a.caption for a in item.annotations) for item in theirs}
    assert found["000000397133"] == ["A man is in a kitchen making pizzas.",
                                     "Man in apron standing on front of oven with pans."]
