"""Mapillary Vistas v1.2 / v2.0.

Layout: the dataset README and demo.py (https://www.mapillary.com/dataset/vistas), as datumaro
documents it (https://openvinotoolkit.github.io/datumaro/stable/docs/data-formats/formats/mapillary_vistas.html):
`config_v2.0.json` ({"labels": [{"name", "readable", "color", "instances", "evaluate"}]}),
`training/images/<id>.jpg`, `training/v2.0/labels/<id>.png` (palette index = label position),
`training/v2.0/instances/<id>.png` (uint16 = label * 256 + instance).

Oracle (issue 12): there is no tool that writes Mapillary Vistas, so the fixtures at the end of this file follow the
layout datumaro 1.13.12's importer reads (datumaro/plugins/data_formats/mapillary_vistas/base.py
`_MapillaryVistasBase._load_instances_items` / `_load_panoptic_items`, importer.py `find_sources`), and datumaro's
own import of the same folder is compared with ours mask by mask (pixel-exact); our writer's v1.2 output is read
by datumaro too. Panoptic categories follow the release JSON as facebookresearch/Mask2Former
mask2former/data/datasets/register_mapillary_vistas_panoptic.py copies it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, mapillary

W, H = 8, 6
LABELS = [
    {"color": [165, 42, 42], "instances": True, "readable": "Bird", "name": "animal--bird", "evaluate": True},
    {"color": [128, 64, 128], "instances": False, "readable": "Road", "name": "construction--flat--road",
     "evaluate": True},
    {"color": [220, 20, 60], "instances": True, "readable": "Person", "name": "human--person--individual",
     "evaluate": True},
    {"color": [70, 130, 180], "instances": False, "readable": "Sky", "name": "nature--sky", "evaluate": True},
    {"color": [0, 0, 0], "instances": False, "readable": "Unlabeled", "name": "void--unlabeled", "evaluate": False},
]
PALETTE = [v for lb in LABELS for v in lb["color"]]  # type: ignore[union-attr]


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (9, 9, 9)).save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


ROAD = _region(slice(4, 6), slice(0, 8))
SKY = _region(slice(0, 1), slice(0, 8))
P1 = _region(slice(1, 4), slice(0, 2))
P2 = _region(slice(1, 4), slice(5, 7))


def _palette_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype(np.uint8))
    im.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    im.save(path)


@pytest.fixture()
def v2(tmp_path: Path) -> Path:
    root = tmp_path / "vistas"
    root.mkdir()
    (root / "config_v2.0.json").write_text(json.dumps({"labels": LABELS, "version": "2.0"}))
    _image(root / "training/images/abc.jpg")
    labels = np.full((H, W), 4, dtype=np.uint8)  # unlabeled
    labels[ROAD] = 1
    labels[SKY] = 3
    labels[P1] = 2
    labels[P2] = 2
    _palette_png(root / "training/v2.0/labels/abc.png", labels)
    inst = labels.astype(np.uint16) * 256
    inst[P1] = 2 * 256 + 0
    inst[P2] = 2 * 256 + 1
    (root / "training/v2.0/instances").mkdir(parents=True)
    Image.fromarray(inst).save(root / "training/v2.0/instances/abc.png")
    _image(root / "validation/images/def.jpg")
    lab2 = np.full((H, W), 4, dtype=np.uint8)
    lab2[P1] = 2
    _palette_png(root / "validation/v2.0/labels/def.png", lab2)
    _image(root / "testing/images/ghi.jpg")
    return root


def test_reads_v2(v2: Path) -> None:
    reader = mapillary.read(v2)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("training/images/abc.jpg", "train", LabelState.ANNOTATED),
        ("validation/images/def.jpg", "val", LabelState.ANNOTATED),
        ("testing/images/ghi.jpg", "test", LabelState.MISSING),
    ]
    assert samples[0].annotations == (
        Annotation("construction--flat--road", Mask.from_array(ROAD), attributes={"semantic": True}),
        Annotation("human--person--individual", Mask.from_array(P1)),
        Annotation("human--person--individual", Mask.from_array(P2)),
        Annotation("nature--sky", Mask.from_array(SKY), attributes={"semantic": True}),
    )
    assert samples[1].annotations == (
        Annotation("human--person--individual", Mask.from_array(P1), attributes={"semantic": True}),)
    assert [(c.name, c.id) for c in reader.classes][:2] == [("animal--bird", 0), ("construction--flat--road", 1)]
    assert reader.classes["nature--sky"].color == "#4682b4"


def test_reads_v1_layout_and_rgb_labels(tmp_path: Path) -> None:
    root = tmp_path / "v1"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"labels": LABELS}))
    _image(root / "training/images/x.jpg")
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[ROAD] = (128, 64, 128)
    (root / "training/labels").mkdir(parents=True)
    Image.fromarray(rgb).save(root / "training/labels/x.png")
    (sample,) = list(mapillary.read(root))
    assert sample.annotations == (
        Annotation("construction--flat--road", Mask.from_array(ROAD), attributes={"semantic": True}),)
    # a config file as the path picks that version
    assert list(mapillary.read(root / "config.json"))[0].annotations == sample.annotations


@pytest.mark.parametrize("version, json_name", [("v2.0", "panoptic_2020.json"), ("v1.2", "panoptic_2018.json")])
def test_reads_panoptic_when_instances_are_missing(tmp_path: Path, version: str, json_name: str) -> None:
    """The panoptic JSON is `panoptic_2020.json` in v2.0 and `panoptic_2018.json` in v1.2 (the names datumaro's
    mapillary_vistas importer reads); a v1.2 panoptic-only dataset was read as unlabelled before."""
    root = tmp_path / "pan"
    root.mkdir()
    (root / f"config_{version}.json").write_text(json.dumps({"labels": LABELS}))
    _image(root / "training/images/abc.jpg")
    ids = np.zeros((H, W), dtype=np.int64)
    ids[ROAD] = 1001
    ids[P1] = 70000  # R + 256 G + 256² B: needs all three channels
    ids[P2] = 70001
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    (root / f"training/{version}/panoptic").mkdir(parents=True)
    Image.fromarray(rgb).save(root / f"training/{version}/panoptic/abc.png")
    (root / f"training/{version}/panoptic/{json_name}").write_text(json.dumps({
        "annotations": [{"file_name": "abc.png", "image_id": "abc", "segments_info": [
            {"id": 1001, "category_id": 1, "iscrowd": 0, "area": 16, "bbox": [0, 4, 8, 2]},
            {"id": 70000, "category_id": 2, "iscrowd": 0, "area": 6, "bbox": [0, 1, 2, 3]},
            {"id": 70001, "category_id": 2, "iscrowd": 1, "area": 6, "bbox": [5, 1, 2, 3]},
        ]}],
        "categories": [{"id": i, "name": lb["name"], "isthing": int(bool(lb["instances"]))}
                       for i, lb in enumerate(LABELS)],
    }))
    (sample,) = list(mapillary.read(root))
    assert sample.annotations == (
        Annotation("construction--flat--road", Mask.from_array(ROAD), attributes={"semantic": True}),
        Annotation("human--person--individual", Mask.from_array(P1)),
        Annotation("human--person--individual", Mask.from_array(P2), crowd=True),
    )


def test_round_trip(v2: Path, tmp_path: Path) -> None:
    reader = mapillary.read(v2)
    original = list(reader)
    out = tmp_path / "out"
    report = mapillary.write(original, out, classes=reader.classes)
    assert report.annotations["mask"] == 5 and not report.dropped
    assert report.converted == {"semantic mask -> instance (the label has instances)": 1}
    config = json.loads((out / "config_v1.2.json").read_text())
    assert [lb["name"] for lb in config["labels"]] == [lb["name"] for lb in LABELS]
    assert [lb["instances"] for lb in config["labels"]] == [False, False, True, False, False]
    assert Image.open(out / "training/v1.2/labels/abc.png").mode == "P"
    back = list(mapillary.read(out))
    assert back[0].annotations == original[0].annotations
    # the semantic person of def.jpg comes back as an instance (counted above)
    assert back[1].annotations == (Annotation("human--person--individual", Mask.from_array(P1)),)
    assert [(s.image.file_name, s.split, s.state) for s in back] == [
        (s.image.file_name, s.split, s.state) for s in original]


def test_writes_new_classes_with_unlabeled_first(tmp_path: Path) -> None:
    src = tmp_path / "s.png"
    _image(src)
    poly = Polygon(((0.0, 0.0, 4.0, 0.0, 4.0, 2.0, 0.0, 2.0),))
    sample = Sample(ImageRef("s.png", path=str(src)), (Annotation("tree", poly),))
    out = tmp_path / "out"
    report = mapillary.write([sample], out, classes=ClassMap.from_names(["tree"]))
    assert report.converted["polygon -> mask (rasterised as COCO does)"] == 1
    config = json.loads((out / "config_v1.2.json").read_text())
    assert [lb["name"] for lb in config["labels"]] == ["void--unlabeled", "tree"]
    (back,) = list(mapillary.read(out))
    assert back.split is None
    assert back.annotations == (Annotation("tree", Mask.from_array(_region(slice(0, 2), slice(0, 4)))),)


def test_label_index_outside_the_config(v2: Path) -> None:
    png = v2 / "validation/v2.0/labels/def.png"
    _palette_png(png, np.full((H, W), 9, dtype=np.uint8))
    with pytest.raises(FormatError) as e:
        list(mapillary.read(v2))
    assert "label index 9" in str(e.value) and "def.png" in str(e.value)
    assert "(pixel x=0, y=0)" in str(e.value)


def test_bad_config(v2: Path) -> None:
    (v2 / "config_v2.0.json").write_text(json.dumps({"labels": [{"name": "x", "color": [1, 2]}]}))
    with pytest.raises(FormatError) as e:
        mapillary.read(v2)
    assert "config_v2.0.json" in str(e.value) and "labels[0]" in str(e.value)


def test_detect(v2: Path, raccoon: Path) -> None:
    assert mapillary.detect(v2).score >= 0.9
    assert detect(v2) == "mapillary"
    assert mapillary.detect(raccoon).score == 0


# ------------------------------------------------------------------------------------------------ datumaro as oracle
# datumaro 1.13.12 reads Mapillary Vistas (datumaro/plugins/data_formats/mapillary_vistas/importer.py,
# base.py `_MapillaryVistasBase._load_instances_items`); it has no exporter. Its importer needs, per subset, a
# `<subset>/<version>/instances/<id>.png` for every image in `<subset>/images/` (a labels-only subset is a
# FileNotFoundError), and the config in the root or the subset folder. Each distinct instance value is one of its
# masks (`label = value >> 8`, `id = value & 255`), `void--unlabeled` included; visionloop skips that label.


def _instance_fixture(root: Path, version: str) -> Path:
    """The release layout datumaro expects: config, `<split>/images/`, `<split>/<version>/{labels,instances}/`."""
    root.mkdir()
    (root / f"config_{version}.json").write_text(json.dumps({"labels": LABELS, "version": version[1:]}))
    bird = _region(slice(0, 1), slice(6, 8))
    for split, stem, regions in (
        ("training", "abc", [(1, ROAD, 0), (3, SKY & ~bird, 0), (0, bird, 0), (2, P1, 0), (2, P2, 1)]),
        ("validation", "def", [(2, P1, 0), (2, P2, 7)]),
    ):
        _image(root / f"{split}/images/{stem}.jpg")
        labels = np.full((H, W), 4, dtype=np.uint8)
        inst = np.full((H, W), 4 * 256, dtype=np.uint16)
        for label, region, number in regions:
            labels[region] = label
            inst[region] = label * 256 + number
        _palette_png(root / f"{split}/{version}/labels/{stem}.png", labels)
        (root / f"{split}/{version}/instances").mkdir(parents=True)
        Image.fromarray(inst).save(root / f"{split}/{version}/instances/{stem}.png")
    _image(root / "testing/images/ghi.jpg")  # no annotations: datumaro finds no subset here
    return root


def _datumaro_masks(root: Path, version: str) -> tuple[list[str], dict[tuple[str, str], list[tuple[str, bytes]]]]:
    dm = pytest.importorskip("datumaro")
    ds = dm.Dataset.import_from(str(root), "mapillary_vistas_instances", format_version=version)
    names = [c.name for c in ds.categories()[dm.AnnotationType.label]]
    items = {}
    for item in ds:
        masks = [(names[a.label], np.asarray(a.image, dtype=bool)) for a in item.annotations
                 if names[a.label] != "void--unlabeled"]
        items[(item.subset, item.id)] = sorted((n, m.tobytes()) for n, m in masks)
    return names, items


def _our_masks(samples: list[Sample]) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
    folder = {"train": "training", "val": "validation"}
    return {(folder[s.split or ""], Path(s.image.file_name).stem):
            sorted((a.label, a.geometry.to_array().astype(bool).tobytes()) for a in s.annotations)  # type: ignore[union-attr]
            for s in samples if s.state is not LabelState.MISSING}


def test_datumaro_reads_the_v2_fixture_as_we_do(tmp_path: Path) -> None:
    root = _instance_fixture(tmp_path / "v2", "v2.0")
    names, theirs = _datumaro_masks(root, "v2.0")
    reader = mapillary.read(root)
    samples = list(reader)
    assert reader.classes.names == names == [lb["name"] for lb in LABELS]
    assert [(s.image.file_name, s.state) for s in samples] == [
        ("training/images/abc.jpg", LabelState.ANNOTATED), ("validation/images/def.jpg", LabelState.ANNOTATED),
        ("testing/images/ghi.jpg", LabelState.MISSING)]
    assert _our_masks(samples) == theirs
    assert [(a.label, a.geometry.area) for a in samples[0].annotations] == [  # type: ignore[union-attr]
        ("animal--bird", 2), ("construction--flat--road", 16), ("human--person--individual", 6),
        ("human--person--individual", 6), ("nature--sky", 6)]
    assert sorted(len(v) for v in theirs.values()) == [2, 5]


def test_datumaro_reads_what_we_write(tmp_path: Path) -> None:
    """Our writer's v1.2 layout (`<split>/v1.2/instances/`) read by datumaro with `format_version="v1.2"`."""
    src = _instance_fixture(tmp_path / "v2", "v2.0")
    reader = mapillary.read(src)
    samples = [s for s in reader if s.state is not LabelState.MISSING]
    mapillary.write(samples, tmp_path / "out", classes=reader.classes)
    names, theirs = _datumaro_masks(tmp_path / "out", "v1.2")
    assert names == [lb["name"] for lb in LABELS]
    assert theirs == _our_masks(samples)


def test_release_panoptic_categories_read_as_datumaro_does(tmp_path: Path) -> None:
    """panoptic_2020.json as the release writes its categories: 1-based ids, `name` the readable name and
    `supercategory` the config name (facebookresearch/Mask2Former
    mask2former/data/datasets/register_mapillary_vistas_panoptic.py `MAPILLARY_VISTAS_SEM_SEG_CATEGORIES`, copied
    from the release JSON). Old code named the masks "Person"/"Road" (not in the classes) and made the stuff label
    Road an instance. datumaro 1.13.12 `mapillary_vistas_panoptic` is the oracle for the masks."""
    dm = pytest.importorskip("datumaro")
    root = tmp_path / "pan"
    root.mkdir()
    (root / "config_v2.0.json").write_text(json.dumps({"labels": LABELS}))
    _image(root / "training/images/abc.jpg")
    ids = np.zeros((H, W), dtype=np.int64)
    ids[ROAD] = 1001
    ids[P1] = 70000
    ids[P2] = 70001
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    (root / "training/v2.0/panoptic").mkdir(parents=True)
    Image.fromarray(rgb).save(root / "training/v2.0/panoptic/abc.png")
    (root / "training/v2.0/panoptic/panoptic_2020.json").write_text(json.dumps({
        "images": [{"file_name": "abc.jpg", "id": "abc", "height": H, "width": W}],
        "annotations": [{"file_name": "abc.png", "image_id": "abc", "segments_info": [
            {"id": 1001, "category_id": 2, "iscrowd": 0, "area": 16, "bbox": [0, 4, 8, 2]},
            {"id": 70000, "category_id": 3, "iscrowd": 0, "area": 6, "bbox": [0, 1, 2, 3]},
            {"id": 70001, "category_id": 3, "iscrowd": 1, "area": 6, "bbox": [5, 1, 2, 3]},
        ]}],
        "categories": [{"id": i + 1, "name": lb["readable"], "supercategory": lb["name"], "color": lb["color"],
                        "isthing": int(bool(lb["instances"]))} for i, lb in enumerate(LABELS[:-1])],
    }))
    (sample,) = list(mapillary.read(root))
    assert sample.annotations == (
        Annotation("construction--flat--road", Mask.from_array(ROAD), attributes={"semantic": True}),
        Annotation("human--person--individual", Mask.from_array(P1)),
        Annotation("human--person--individual", Mask.from_array(P2), crowd=True),
    )
    theirs = dm.Dataset.import_from(str(root), "mapillary_vistas_panoptic")
    cats = theirs.categories()[dm.AnnotationType.label]
    (item,) = list(theirs)
    found = [(cats[a.label].parent, np.asarray(a.image, dtype=bool).tobytes(), a.attributes["is_crowd"])
             for a in item.annotations]
    assert found == [(a.label, a.geometry.to_array().astype(bool).tobytes(), a.crowd)  # type: ignore[union-attr]
                     for a in sample.annotations]
