"""ADE20K SceneParsing (ADEChallengeData2016).

Layout: https://github.com/CSAILVision/sceneparsing (README): images/{training,validation}/*.jpg,
annotations/{training,validation}/*.png with class indices (0 = other), objectInfo150.csv
(`Idx,Ratio,Train,Val,Name`), sceneCategories.txt (`<image id> <scene>`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import ade20k, detect

W, H = 6, 4
OBJECT_INFO = """Idx,Ratio,Train,Val,Name
1,0.1576,11664,1172,wall
2,0.1072,6046,612,building;edifice
3,0.0878,8265,796,sky
"""


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (4, 4, 4)).save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


WALL = _region(slice(2, 4), slice(0, 3))
SKY = _region(slice(0, 1), slice(0, 6))


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ADEChallengeData2016"
    root.mkdir()
    (root / "objectInfo150.csv").write_text(OBJECT_INFO)
    (root / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\nADE_val_00000001 abbey\n")
    _image(root / "images/training/ADE_train_00000001.jpg")
    _image(root / "images/training/ADE_train_00000002.jpg")
    _image(root / "images/validation/ADE_val_00000001.jpg")
    arr = np.zeros((H, W), dtype=np.uint8)
    arr[WALL] = 1
    arr[SKY] = 3
    (root / "annotations/training").mkdir(parents=True)
    Image.fromarray(arr).save(root / "annotations/training/ADE_train_00000001.png")
    (root / "annotations/validation").mkdir(parents=True)
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(root / "annotations/validation/ADE_val_00000001.png")
    return root


def test_reads_ade20k(dataset: Path) -> None:
    reader = ade20k.read(dataset.parent)  # the folder holding ADEChallengeData2016 works too
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("images/training/ADE_train_00000001.jpg", "train", LabelState.ANNOTATED),
        ("images/training/ADE_train_00000002.jpg", "train", LabelState.MISSING),
        ("images/validation/ADE_val_00000001.jpg", "val", LabelState.NULL),
    ]
    assert samples[0].annotations == (
        Annotation("wall", Mask.from_array(WALL), attributes={"semantic": True}),
        Annotation("sky", Mask.from_array(SKY), attributes={"semantic": True}),
    )
    assert samples[0].image.metadata == {"scene": "airport_terminal"}
    assert [(c.name, c.id) for c in reader.classes] == [("wall", 1), ("building;edifice", 2), ("sky", 3)]


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    reader = ade20k.read(dataset)
    original = list(reader)
    out = tmp_path / "out"
    report = ade20k.write(original, out, classes=reader.classes)
    assert report.annotations["mask"] == 2 and not report.dropped and not report.converted
    assert (out / "objectInfo150.csv").read_text() == (
        "Idx,Ratio,Train,Val,Name\n1,0.1250,1,0,wall\n2,0.0000,0,0,building;edifice\n3,0.1250,1,0,sky\n")
    assert (out / "sceneCategories.txt").read_text() == (
        "ADE_train_00000001 airport_terminal\nADE_val_00000001 abbey\n")
    back = list(ade20k.read(out))
    assert [(s.image.file_name, s.split, s.state, s.annotations, s.image.metadata) for s in back] == [
        (s.image.file_name, s.split, s.state, s.annotations, s.image.metadata) for s in original]


def test_writer_merges_instances_and_counts(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    _image(src)
    sample = Sample(ImageRef("a.png", path=str(src)), (
        Annotation("car", Mask.from_array(WALL)),
        Annotation("car", Box(0, 0, 1, 1)),
    ), split="train")
    out = tmp_path / "out"
    report = ade20k.write([sample], out, classes=ClassMap.from_names(["road", "car"]))
    assert report.converted == {"mask -> semantic class pixels (instances of a class merge)": 1}
    assert report.dropped == {"box: ADE20K holds pixel masks only (a box is not a region outline)": 1}
    arr = np.asarray(Image.open(out / "annotations/training/a.png"))
    assert (arr[WALL] == 2).all() and (arr[~WALL] == 0).all()


def test_unknown_index(dataset: Path) -> None:
    png = dataset / "annotations/validation/ADE_val_00000001.png"
    Image.fromarray(np.full((H, W), 77, dtype=np.uint8)).save(png)
    with pytest.raises(FormatError) as e:
        list(ade20k.read(dataset))
    assert "class index 77" in str(e.value) and "ADE_val_00000001.png" in str(e.value)
    assert "(pixel x=0, y=0)" in str(e.value)


def test_bad_object_info(dataset: Path) -> None:
    (dataset / "objectInfo150.csv").write_text("Idx,Ratio,Train,Val,Name\n1,0.1,1,1,wall\nx,0,0,0,sky\n")
    with pytest.raises(FormatError) as e:
        ade20k.read(dataset)
    assert "objectInfo150.csv" in str(e.value) and "line 3" in str(e.value)


def test_detect(dataset: Path, raccoon: Path) -> None:
    assert ade20k.detect(dataset).score >= 0.9
    assert detect(dataset) == "ade20k"
    assert ade20k.detect(raccoon).score == 0
