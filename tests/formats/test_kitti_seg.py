"""KITTI semantic / instance segmentation (semantics benchmark 2015).

Layout and encodings: http://www.cvlibs.net/datasets/kitti/eval_semseg.php and the readme of
devkit_semantics.zip: `training/image_2/000000_10.png`, `training/semantic/` (uint8 Cityscapes
label ids), `training/semantic_rgb/`, `training/instance/` (uint16 = label id * 256 + instance),
`testing/image_2/`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, kitti_seg

W, H = 8, 5


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (3, 3, 3)).save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


ROAD = _region(slice(3, 5), slice(0, 8))
CAR1 = _region(slice(0, 2), slice(0, 2))
CAR2 = _region(slice(0, 2), slice(3, 5))
CROWD = _region(slice(2, 3), slice(6, 8))
SKY = _region(slice(0, 1), slice(6, 8))


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data_semantics"
    _image(root / "training/image_2/000000_10.png")
    _image(root / "training/image_2/000001_10.png")
    _image(root / "testing/image_2/000000_10.png")
    inst = np.zeros((H, W), dtype=np.uint16)
    inst[ROAD] = 7 * 256
    inst[CAR1] = 26 * 256 + 1
    inst[CAR2] = 26 * 256 + 2
    inst[CROWD] = 24 * 256  # person, instance 0: a crowd region
    (root / "training/instance").mkdir(parents=True)
    Image.fromarray(inst).save(root / "training/instance/000000_10.png")
    sem = (inst >> 8).astype(np.uint8)
    (root / "training/semantic").mkdir(parents=True)
    Image.fromarray(sem).save(root / "training/semantic/000000_10.png")
    sem2 = np.zeros((H, W), dtype=np.uint8)
    sem2[SKY] = 23
    sem2[CAR1] = 26
    Image.fromarray(sem2).save(root / "training/semantic/000001_10.png")
    return root


def test_reads_kitti_semantics(dataset: Path) -> None:
    reader = kitti_seg.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("training/image_2/000000_10.png", "train", LabelState.ANNOTATED),
        ("training/image_2/000001_10.png", "train", LabelState.ANNOTATED),
        ("testing/image_2/000000_10.png", "test", LabelState.MISSING),
    ]
    assert samples[0].annotations == (
        Annotation("road", Mask.from_array(ROAD), attributes={"semantic": True}),
        Annotation("person", Mask.from_array(CROWD), crowd=True),
        Annotation("car", Mask.from_array(CAR1)),
        Annotation("car", Mask.from_array(CAR2)),
    )
    # semantic PNG only: one semantic mask per label id
    assert samples[1].annotations == (
        Annotation("sky", Mask.from_array(SKY), attributes={"semantic": True}),
        Annotation("car", Mask.from_array(CAR1), attributes={"semantic": True}),
    )
    assert (samples[0].image.width, samples[0].image.height) == (W, H)
    assert reader.classes["car"].id == 26


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    original = list(kitti_seg.read(dataset))
    out = tmp_path / "out"
    report = kitti_seg.write(original, out)
    assert report.annotations["mask"] == 6 and not report.dropped
    # a semantic car mask comes back as a crowd region: counted
    assert report.converted == {"semantic mask -> crowd region (the class has instances)": 1}
    inst = np.asarray(Image.open(out / "training/instance/000000_10.png"))
    assert inst[0, 0] == 26 * 256 + 1 and inst[0, 3] == 26 * 256 + 2 and inst[4, 0] == 7 * 256
    rgb = np.asarray(Image.open(out / "training/semantic_rgb/000000_10.png"))
    assert tuple(rgb[4, 0]) == (128, 64, 128)
    back = list(kitti_seg.read(out))
    assert back[0].annotations == original[0].annotations
    assert back[1].annotations == (original[1].annotations[0],
                                   Annotation("car", Mask.from_array(CAR1), crowd=True))
    assert [(s.image.file_name, s.split, s.state) for s in back] == [
        (s.image.file_name, s.split, s.state) for s in original]


def test_writes_other_classes_with_a_label_map(tmp_path: Path) -> None:
    src = tmp_path / "src.png"
    _image(src)
    sample = Sample(ImageRef("x.png", path=str(src)), (
        Annotation("weed", Polygon(((0.0, 0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0),))),
        Annotation("weed", Box(0, 0, 1, 1)),
    ))
    out = tmp_path / "out"
    report = kitti_seg.write([sample], out, classes=ClassMap.from_names(["weed"]))
    assert report.dropped == {"box: KITTI segmentation holds pixel masks only (a box is not a region outline)": 1}
    reader = kitti_seg.read(out)
    (back,) = list(reader)
    assert back.split is None
    assert back.annotations == (Annotation("weed", Mask.from_array(_region(slice(0, 2), slice(0, 2)))),)
    assert reader.classes["weed"].id == 34


def test_unknown_label_id(dataset: Path) -> None:
    png = dataset / "training/semantic/000001_10.png"
    Image.fromarray(np.full((H, W), 200, dtype=np.uint8)).save(png)
    with pytest.raises(FormatError) as e:
        list(kitti_seg.read(dataset))
    assert "label id 200" in str(e.value) and "000001_10.png" in str(e.value)
    assert "(pixel x=0, y=0)" in str(e.value)


def test_detect(dataset: Path, raccoon: Path) -> None:
    assert kitti_seg.detect(dataset).score >= 0.9
    assert detect(dataset) == "kitti_seg"
    assert kitti_seg.detect(raccoon).score == 0
