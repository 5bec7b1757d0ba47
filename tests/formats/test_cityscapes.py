"""Cityscapes reader and writer.

Layout and encodings: https://github.com/mcordts/cityscapesScripts#the-cityscapes-dataset
(labelIds = label id per pixel; instanceIds = id * 1000 + instance number, or the bare id for
crowd regions and classes without instances; polygons JSON {"imgHeight", "imgWidth",
"objects": [{"label", "polygon"}]}), cityscapesscripts/helpers/labels.py for the ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import cityscapes, detect
from visionloop.formats.base import ImageMode

W, H = 8, 6


def _image(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    # 1. train/aachen: polygons JSON (what gtFine ships), integer vertices
    _image(root / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png")
    gt = root / "gtFine/train/aachen"
    gt.mkdir(parents=True)
    (gt / "aachen_000000_000019_gtFine_polygons.json").write_text(json.dumps({
        "imgHeight": H, "imgWidth": W,
        "objects": [
            {"label": "road", "polygon": [[0, 3], [7, 3], [7, 5], [0, 5]]},
            {"label": "car", "polygon": [[1, 1], [3, 1], [3, 2], [1, 2]]},
            {"label": "cargroup", "polygon": [[5, 0], [7, 0], [7, 2]]},
            {"label": "person", "polygon": [[0, 0], [1, 0], [1, 1]], "deleted": 1},
            {"label": "out of roi", "polygon": [[0, 0], [7, 0], [7, 5], [0, 5]], "verified": 1},
        ],
    }, indent=4))
    # 2. val/frankfurt: PNGs only (instanceIds + labelIds), no JSON
    _image(root / "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png")
    gt = root / "gtFine/val/frankfurt"
    gt.mkdir(parents=True)
    inst = np.zeros((H, W), dtype=np.uint16)
    inst[4:6, :] = 7  # road, no instances
    inst[0:2, 0:2] = 26000  # car #0
    inst[0:2, 4:6] = 26001  # car #1
    inst[3, 6:8] = 24  # person crowd region (bare id of a class with instances)
    Image.fromarray(inst).save(gt / "frankfurt_000000_000294_gtFine_instanceIds.png")
    labels = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    Image.fromarray(labels).save(gt / "frankfurt_000000_000294_gtFine_labelIds.png")
    # 3. test/berlin: an image and no ground truth
    _image(root / "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png")
    return root


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


def test_reads_the_layout_cityscapes_ships(dataset: Path) -> None:
    reader = cityscapes.read(dataset)
    samples = list(reader)
    assert [s.image.file_name for s in samples] == [
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
        "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png",
        "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png",
    ]
    assert [s.split for s in samples] == ["train", "val", "test"]
    first, second, third = samples
    assert (first.image.width, first.image.height) == (W, H)
    # vertices are pixel centres: +0.5; deleted objects skipped; cargroup is a crowd car
    assert [(a.label, a.crowd) for a in first.annotations] == [
        ("road", False), ("car", False), ("car", True), ("out of roi", False)]
    assert first.annotations[0].geometry == Polygon(((0.5, 3.5, 7.5, 3.5, 7.5, 5.5, 0.5, 5.5),))
    assert first.annotations[1].geometry == Polygon(((1.5, 1.5, 3.5, 1.5, 3.5, 2.5, 1.5, 2.5),))
    assert first.annotations[3].attributes == {"verified": 1}
    # PNG-only image: masks in order of pixel value
    got = [(a.label, a.crowd, dict(a.attributes)) for a in second.annotations]
    assert got == [("road", False, {"semantic": True}), ("person", True, {}),
                   ("car", False, {}), ("car", False, {})]
    arrays = [a.geometry.to_array().astype(bool) for a in second.annotations]  # type: ignore[union-attr]
    assert (arrays[0] == _region(slice(4, 6), slice(0, 8))).all()
    assert (arrays[1] == _region(slice(3, 4), slice(6, 8))).all()
    assert (arrays[2] == _region(slice(0, 2), slice(0, 2))).all()
    assert (arrays[3] == _region(slice(0, 2), slice(4, 6))).all()
    assert third.state is LabelState.MISSING and third.annotations == ()
    # the class map is the label table: ids kept, license plate -1
    assert reader.classes["car"].id == 26 and reader.classes["license plate"].id == -1
    assert reader.classes["road"].color == "#804080"


def test_round_trip_of_the_fixture(dataset: Path, tmp_path: Path) -> None:
    reader = cityscapes.read(dataset)
    original = list(reader)
    out = tmp_path / "out"
    report = cityscapes.write(original, out, classes=reader.classes)
    assert report.images == 3
    assert report.annotations["polygon"] == 4 and report.annotations["mask"] == 4
    assert not report.dropped and not report.converted
    back = list(cityscapes.read(out))
    assert [(s.image.file_name, s.split, s.state) for s in back] == [
        (s.image.file_name, s.split, s.state) for s in original]
    for a, b in zip(original, back, strict=True):
        assert a.annotations == b.annotations
    assert not (out / cityscapes.LABEL_COLORS).exists()  # table classes only


def test_writer_draws_the_pngs_as_cityscapes_scripts(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cityscapes.write(cityscapes.read(dataset), out)
    gt = out / "gtFine/train/aachen/aachen_000000_000019_gtFine"
    labels = np.asarray(Image.open(f"{gt}_labelIds.png"))
    inst = np.asarray(Image.open(f"{gt}_instanceIds.png"))
    # 'out of roi' (3) is the last object and covers everything
    assert (labels == 3).all() and (inst == 3).all()
    # without it: road (7) at rows 3..5 (PIL includes the vertex pixels), car instance 26000
    samples = list(cityscapes.read(dataset))
    first = samples[0]
    trimmed = Sample(first.image, first.annotations[:3], split="train")
    out2 = tmp_path / "out2"
    cityscapes.write([trimmed], out2)
    gt = out2 / "gtFine/train/aachen/aachen_000000_000019_gtFine"
    labels = np.asarray(Image.open(f"{gt}_labelIds.png"))
    inst = np.asarray(Image.open(f"{gt}_instanceIds.png"))
    assert (labels[3:6, :] == 7).all() and (labels[0, 0:5] == 0).all()
    assert (inst[1:3, 1:4] == 26000).all()  # car #0, vertices (1,1)-(3,2) inclusive
    assert inst[1, 6] == 26  # cargroup: the bare label id
    assert Image.open(f"{gt}_instanceIds.png").mode == "I;16"
    colour = np.asarray(Image.open(f"{gt}_color.png"))
    assert tuple(colour[4, 0, :3]) == (128, 64, 128)


def test_round_trip_of_other_geometry(tmp_path: Path) -> None:
    src = tmp_path / "img.png"
    _image(src)
    mask = Mask.from_array(_region(slice(1, 3), slice(2, 5)))
    sky = Mask.from_array(_region(slice(0, 1), slice(0, 8)))
    vector = Sample(ImageRef("a/one.png", path=str(src)), (
        Annotation("person", Polygon(((1.25, 1.0, 4.0, 1.0, 4.0, 3.75),))),
        Annotation("tree", Box(1, 2, 3, 4), attributes={"note": "x"}),
    ), split="train")
    pixels = Sample(ImageRef("a/two.png", path=str(src)), (
        Annotation("sky", sky, attributes={"semantic": True}),
        Annotation("car", mask),
        Annotation("person", Keypoints((1, 1, 2))),
    ))
    empty = Sample(ImageRef("three.png", path=str(src)), ())
    out = tmp_path / "out"
    report = cityscapes.write([vector, pixels, empty], out, images=ImageMode.COPY)
    assert report.converted["box -> polygon (4 corners)"] == 1
    assert report.dropped == {"keypoints: Cityscapes holds polygons and pixel masks only": 1}
    assert (out / "leftImg8bit/train/a/one_leftImg8bit.png").is_file()
    assert (out / "leftImg8bit/default/default/three_leftImg8bit.png").is_file()
    lines = (out / cityscapes.LABEL_COLORS).read_text().splitlines()
    assert lines[34].endswith(" tree") and lines[0] == "0 0 0 unlabeled"
    back = {s.image.file_name: s for s in cityscapes.read(out)}
    one = back["leftImg8bit/train/a/one_leftImg8bit.png"]
    assert one.split == "train"
    assert one.annotations == (
        Annotation("person", Polygon(((1.25, 1.0, 4.0, 1.0, 4.0, 3.75),))),
        Annotation("tree", Polygon(((1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 1.0, 4.0),)), attributes={"note": "x"}),
    )
    two = back["leftImg8bit/default/a/two_leftImg8bit.png"]
    assert two.split is None
    assert two.annotations == (Annotation("sky", sky, attributes={"semantic": True}), Annotation("car", mask))
    three = back["leftImg8bit/default/default/three_leftImg8bit.png"]
    assert three.state is LabelState.NULL and three.annotations == ()


def test_label_outside_the_table_reads_back_through_label_colors(tmp_path: Path) -> None:
    src = tmp_path / "img.png"
    _image(src)
    weed = Mask.from_array(_region(slice(2, 4), slice(2, 4)))
    sample = Sample(ImageRef("x.png", path=str(src)), (Annotation("weed", weed, attributes={"semantic": True}),
                                                       Annotation("weed", weed)))
    out = tmp_path / "out"
    cityscapes.write([sample], out, classes=ClassMap.from_names(["weed"]))
    reader = cityscapes.read(out)
    (back,) = list(reader)
    assert reader.classes["weed"].id == 34
    # the instance covers the semantic region (later wins): one instance mask remains
    assert back.annotations == (Annotation("weed", weed),)


def test_bad_json_names_the_file_and_line(dataset: Path) -> None:
    bad = dataset / "gtFine/train/aachen/aachen_000000_000019_gtFine_polygons.json"
    bad.write_text('{"imgHeight": 6,\n "objects": [}')
    with pytest.raises(FormatError) as e:
        list(cityscapes.read(dataset))
    assert "aachen_000000_000019_gtFine_polygons.json" in str(e.value)
    assert "line 2" in str(e.value)


def test_bad_polygon_names_the_object(dataset: Path) -> None:
    bad = dataset / "gtFine/train/aachen/aachen_000000_000019_gtFine_polygons.json"
    bad.write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": [
        {"label": "road", "polygon": [[0, 0], [1, 0], [1, 1]]},
        {"label": "car", "polygon": [[0, 0], [1, 1]]},
    ]}))
    with pytest.raises(FormatError) as e:
        list(cityscapes.read(dataset))
    assert "objects[1]" in str(e.value) and bad.name in str(e.value)


def test_unknown_label_id_in_png(dataset: Path) -> None:
    png = dataset / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_instanceIds.png"
    Image.fromarray(np.full((H, W), 99, dtype=np.uint16)).save(png)
    with pytest.raises(FormatError) as e:
        list(cityscapes.read(dataset))
    assert "label id 99" in str(e.value) and png.name in str(e.value)
    assert "(pixel x=0, y=0)" in str(e.value)


def test_detect(dataset: Path, tmp_path: Path, raccoon: Path) -> None:
    assert cityscapes.detect(dataset).score >= 0.9
    assert detect(dataset) == "cityscapes"
    assert cityscapes.detect(raccoon).score == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cityscapes.detect(empty).score == 0
