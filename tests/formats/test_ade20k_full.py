"""The full ADE20K release (formats/_ade20k_full.py, read by `ade20k`).

Fixture: built like datumaro's own test asset for its ``ade20k2020`` reader (datumaro tests/assets/ade20k2020_dataset:
``training/street/1.jpg``, ``1.json`` with its fields, ``1_seg.png``, ``1_parts_1.png``, ``1/instance_NNN_*.png``;
``validation/2.jpg``...), with the JSON fields and values of the release's own sample
(CSAILVision/ADE20K dataset/ADE20K_2021_17_01/images/ADE/training/urban/street/ADE_train_00016900.json: ``name``,
``name_ndx``, ``raw_name``, ``occluded`` "yes"/"no"/[], ``crop`` "0", ``parts``, ``polygon``), the class encoded in
``_seg.png`` as ``utils/utils_ade20k.py`` decodes it (R/10*256 + G). Oracle: datumaro 1.13's own import
(``Dataset.import_from(path, "ade20k2020")``) of the same folder, object by object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import FormatError, ImageError, Mask, Polygon
from visionloop.formats import ade20k, detect, registry
from visionloop.formats.base import count_skips, images_optional, quarantine_reads

W, H = 8, 6


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[rows, cols] = True
    return m


def _obj(id: int, name: str, ndx: int, raw: str, *, level: int = 0, owner: object = None, attributes: object = (),
         occluded: object = (), polygon: tuple = ((), ()), mask: str | None = None) -> dict:
    return {"id": id, "name": name, "name_ndx": ndx, "hypernym": [name, "entity"], "raw_name": raw,
            "attributes": attributes if isinstance(attributes, str) else list(attributes),
            "depth_ordering_rank": id + 1, "occluded": occluded if isinstance(occluded, str) else list(occluded),
            "crop": "0", "parts": {"hasparts": [], "ispartof": owner if owner is not None else [], "part_level": level},
            "instance_mask": mask or "", "polygon": {"x": list(polygon[0]), "y": list(polygon[1])},
            "saved_date": "25-Sep-2005 20:19:10"}


CAR = _region(slice(1, 4), slice(1, 5))
PERSON = _region(slice(2, 6), slice(5, 7))
DOOR = _region(slice(2, 3), slice(2, 4))
WALL = _region(slice(0, 3), slice(0, 8))


def _class_pixels(arr: np.ndarray, where: np.ndarray, ndx: int, instance: int) -> None:
    arr[where] = (ndx // 256 * 10, ndx % 256, instance)


def _image(root: Path, rel: str, objects: list[dict], *, masks: dict[str, np.ndarray], seg: dict[int, np.ndarray],
           parts: dict[int, np.ndarray] | None = None, scene: tuple[str, ...] = ("outdoor", "urban", "street")) -> None:
    jpg = root / rel
    jpg.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (90, 90, 90)).save(jpg)
    doc = {"annotation": {"filename": jpg.name, "folder": str(Path(rel).parent), "imsize": [H, W, 3],
                          "source": {"folder": "", "filename": "", "origin": ""}, "scene": list(scene),
                          "object": objects}}
    jpg.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    for name, m in masks.items():
        p = jpg.parent / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((m * 255).astype(np.uint8), "L").save(p)
    for suffix, classes in (("_seg", seg), ("_parts_1", parts)):
        if classes is None:
            continue
        arr = np.zeros((H, W, 3), np.uint8)
        for n, (ndx, where) in enumerate(classes.items(), start=1):
            _class_pixels(arr, where, ndx, n)
        Image.fromarray(arr).save(jpg.with_name(f"{jpg.stem}{suffix}.png"))


@pytest.fixture()
def release(tmp_path: Path) -> Path:
    root = tmp_path / "ade20k2020_dataset"
    car_poly = ((1, 5, 5, 1), (1, 1, 4, 4))
    _image(root, "training/street/1.jpg", [
        _obj(0, "car, auto, automobile, machine, motorcar", 401, "car", polygon=car_poly,
             mask="1/instance_000_ADE_train_1.png"),
        _obj(1, "person, individual, someone, somebody, mortal, soul", 1831, "person", attributes=["walkin"],
             occluded="no", mask="1/instance_001_ADE_train_1.png"),
        _obj(2, "door", 774, "door", level=1, owner=0, occluded="yes", mask="1/instance_002_ADE_train_1.png"),
    ], masks={"1/instance_000_ADE_train_1.png": CAR, "1/instance_001_ADE_train_1.png": PERSON,
              "1/instance_002_ADE_train_1.png": DOOR},
        seg={401: CAR, 1831: PERSON}, parts={774: DOOR})
    _image(root, "validation/2.jpg", [
        _obj(1, "wall", 2978, "wall", mask="2/instance_001_ADE_val_2.png"),
        _obj(3, "floor, flooring", 936, "floor", attributes="wooden", polygon=((0, 7, 4), (5, 5, 3)),
             mask="2/instance_003_ADE_val_2.png"),
        _obj(4, "wall", 2978, "wall", mask="2/instance_004_ADE_val_2.png"),  # instance mask not there, no polygon
    ], masks={"2/instance_001_ADE_val_2.png": WALL, "2/instance_003_ADE_val_2.png": _region(slice(3, 6), slice(0, 8))},
        seg={2978: WALL, 936: _region(slice(3, 6), slice(0, 8))}, scene=("indoor", "home", "bedroom"))
    return root


def _ours(root: Path) -> tuple[list, object]:
    reader = ade20k.read(root)
    with count_skips() as skips:
        samples = list(reader)
    return samples, (reader, dict(skips))


def test_reads_the_release_layout(release: Path) -> None:
    assert detect(release) == "ade20k"
    assert ade20k.detect(release).score == 0.9
    samples, (reader, skips) = _ours(release)
    assert skips == {"object: no polygon (3 points or more) and its instance mask is missing": 1}
    assert [(s.image.file_name, s.split, s.image.size, dict(s.image.metadata)) for s in samples] == [
        ("training/street/1.jpg", "train", (W, H), {"scene": "street", "scene_path": "outdoor/urban/street"}),
        ("validation/2.jpg", "val", (W, H), {"scene": "bedroom", "scene_path": "indoor/home/bedroom"})]
    car, person, door = samples[0].annotations
    assert (car.label, car.geometry) == ("car, auto, automobile, machine, motorcar",
                                         Polygon(((1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0),)))
    assert dict(car.attributes) == {"id": 0, "raw_name": "car", "part_level": 0, "occluded": False, "crop": False,
                                    "depth_ordering_rank": 1}
    assert person.geometry == Mask.from_array(PERSON.astype(np.uint8))
    assert dict(person.attributes) == {"id": 1, "raw_name": "person", "part_level": 0, "occluded": False,
                                       "crop": False, "depth_ordering_rank": 2, "walkin": True}
    assert door.geometry == Mask.from_array(DOOR.astype(np.uint8))
    assert (door.attributes["part_level"], door.attributes["ispartof"], door.attributes["occluded"]) == (1, 0, True)
    wall, floor = samples[1].annotations
    assert (wall.label, floor.label, floor.attributes["wooden"]) == ("wall", "floor, flooring", True)
    assert [(c.name, c.id) for c in reader.classes] == [
        ("car, auto, automobile, machine, motorcar", 401), ("person, individual, someone, somebody, mortal, soul", 1831),
        ("door", 774), ("wall", 2978), ("floor, flooring", 936)]


def test_equals_datumaros_own_import(release: Path) -> None:
    dm = pytest.importorskip("datumaro")
    from datumaro.components.annotation import AnnotationType, ExtractedMask

    theirs = dm.Dataset.import_from(str(release), "ade20k2020")
    names = theirs.categories()[AnnotationType.label]
    samples, (reader, _) = _ours(release)
    ours = {Path(s.image.file_name).with_suffix("").as_posix(): s for s in samples}
    assert sorted(f"{i.subset}/{i.id}" for i in theirs) == sorted(ours)
    compared = 0
    for item in theirs:
        sample = ours[f"{item.subset}/{item.id}"]
        by_id = {a.attributes["id"]: a for a in sample.annotations}
        instances = [a for a in item.annotations if a.type == AnnotationType.mask and not isinstance(a, ExtractedMask)]
        polygons = {a.id: a for a in item.annotations if a.type == AnnotationType.polygon}
        assert sorted(by_id) == sorted(a.id for a in instances)  # the same objects, one annotation each
        for inst in instances:
            a = by_id[inst.id]
            assert a.attributes["raw_name"] == names[inst.label].name  # datumaro's class is the raw name
            assert a.attributes["part_level"] == inst.z_order
            assert {k: a.attributes[k] for k in inst.attributes} == inst.attributes
            if inst.id in polygons:
                assert list(a.geometry.rings[0]) == polygons[inst.id].points
            else:
                assert np.array_equal(a.geometry.to_array().astype(bool), inst.image.astype(bool))
            compared += 1
        # datumaro's class masks (from _seg.png / _parts_N.png, class = R/10*256+G) are at our class ids
        for cm in (a for a in item.annotations if isinstance(a, ExtractedMask)):
            ours_ids = {reader.classes[a.label].id for a in sample.annotations
                        if a.attributes["raw_name"] == names[cm.label].name}
            assert ours_ids == {cm.index} and cm.image.any()
    assert compared == 5


def test_missing_json_missing_image_and_images_none(release: Path, tmp_path: Path) -> None:
    Image.new("RGB", (W, H)).save(release / "validation" / "3.jpg")  # no JSON, no _seg.png: nobody labelled it
    samples, _ = _ours(release)
    assert [(s.image.file_name, s.state.value) for s in samples][-1] == ("validation/3.jpg", "missing")
    (release / "training/street/1.jpg").unlink()  # the JSON stays
    with pytest.raises(ImageError, match="image 1.jpg not found beside 1.json") as e:
        list(ade20k.read(release))
    assert "--images none" in str(e.value)
    with images_optional():
        samples, _ = _ours(release)
    first = samples[0]
    assert (first.image.file_name, first.image.path, first.image.size, len(first.annotations)) == (
        "training/street/1.jpg", None, (W, H), 3)
    from visionloop.formats.convert import convert

    report = convert(release, tmp_path / "coco", to="coco", images="none")
    assert report.images == 3 and report.annotations == {"polygon": 2, "mask": 3}


def test_seg_without_json_and_bad_json_are_refused(release: Path) -> None:
    Image.new("RGB", (W, H)).save(release / "validation" / "5.jpg")
    Image.new("RGB", (W, H)).save(release / "validation" / "5_seg.png")
    with pytest.raises(FormatError, match=r"5.json is missing: the objects of 5.jpg are in it"):
        list(ade20k.read(release))
    (release / "validation" / "5_seg.png").unlink()
    js = release / "validation" / "2.json"
    doc = json.loads(js.read_text())
    doc["annotation"]["object"][1]["name_ndx"] = 2978  # floor given wall's index
    js.write_text(json.dumps(doc))
    bad = []
    with quarantine_reads(bad.append):
        samples, _ = _ours(release)
    assert [(Path(e.path).name, e.where, e.message) for e in bad] == [
        ("2.json", "object 1 (id 3, floor)", "name_ndx 2978 is 'floor, flooring' here but 'wall' in an earlier image")]
    assert [s.image.file_name for s in samples] == ["training/street/1.jpg", "validation/5.jpg"]


def test_scene_parsing_layout_is_still_read_as_before(tmp_path: Path) -> None:
    root = tmp_path / "ADEChallengeData2016"
    (root / "images" / "training").mkdir(parents=True)
    (root / "annotations" / "training").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(root / "images" / "training" / "ADE_train_00000001.jpg")
    Image.fromarray(np.ones((H, W), np.uint8)).save(root / "annotations" / "training" / "ADE_train_00000001.png")
    assert ade20k.detect(root).score == 0.8
    assert [a.label for s in ade20k.read(root) for a in s.annotations] == ["1"]


def test_written_as_scene_parsing(release: Path, tmp_path: Path) -> None:
    reader = ade20k.read(release)
    report = registry.write(reader, tmp_path / "out", format="ade20k", classes=reader.classes)
    assert report.images == 2 and report.annotations == {"mask": 5}
    assert report.converted == {"polygon -> mask (rasterised as COCO does)": 2,
                                "mask -> semantic class pixels (instances of a class merge)": 3,
                                "overlapping pixels -> the later annotation's (as the format holds one value a pixel)": 1}
    arr = np.asarray(Image.open(tmp_path / "out" / "annotations" / "training" / "1.png"))
    index = {c.name: i for i, c in enumerate(ade20k.read(tmp_path / "out").classes, start=1)}
    assert (arr[DOOR] == index["door"]).all()  # the part, later in the JSON, over its car
