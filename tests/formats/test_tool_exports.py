"""Datasets as the tools themselves write them, read by visionloop exactly — or refused in one line where the
tool's output is not valid for the format (issue 12: "build the test fixture from the tool's own output").

Every fixture here is written in the test by a tool's own exporter, from one in-memory dataset:
- datumaro 1.13.12 (`Dataset.export(path, FORMAT, save_media=True)`; the exporters' source is
  datumaro/plugins/data_formats/<format>.py in openvinotoolkit/datumaro): `yolo_ultralytics`, `cvat` (images and,
  with `use_track=True`, tracks), `mot_seq_gt`, `wider_face`, `dota`, `coco_panoptic`, `coco_captions`, `cifar`
  (CIFAR-100: labels with parents), `mnist`, `segment_anything`;
- supervision 0.31.2 (`sv.DetectionDataset.as_yolo / as_createml / as_labelme / as_pascal_voc / as_coco`;
  supervision/dataset/formats/*.py in roboflow/supervision);
- label-studio-converter 0.0.59, scalabel 0.3.1 (BDD100K's label library) and the Supervisely SDK 6.74.51, which
  do not install into the project's venv: their output is committed under tests/formats/fixtures/labelstudio/,
  fixtures/scalabel/ and fixtures/supervisely/ (README.md there: the command; make_fixtures.py: which function
  wrote what).
The oracle is the tool's own import of the same files where it has one (datumaro's `Dataset.import_from`,
supervision's `DetectionDataset.from_*`), else the dataset that was exported. Masks are compared pixel for pixel.

Found by these tests (each was a refusal of a valid export, or exit 0 with a wrong result, before):
- CVAT XML as datumaro writes it, one `<subset>.xml` per subset beside a flat images/: refused ("no
  annotations.xml"), and each file alone listed the other subsets' images as unlabelled;
- a MOT gt.txt line with id -1 ("no identity"; datumaro writes it for a box without a track): read as track -1,
  one track shared by every such box;
- supervision's YOLO data.yaml (`nc` and `names` only, no `train:`): refused, with a hint to add
  `train: images/train` where the images were in train/images;
- datumaro's MNIST files (the image count field holds the pixel count): refused as "784 images but 1 labels";
  now the refusal names the header field and the value to write;
- label-studio-converter's COCO import marks keypoints with COCO v < 2 `hidden: true`: read as visible points,
  the not-labelled ones (v = 0) as visible points at (0, 0);
- scalabel's `io.save` writes every unset label field as null: `index`, `manualShape`, `manualAttributes` were
  read as attributes with the value None.
Tools' outputs that are not valid for the format, refused in one line (pinned below): datumaro's WIDER FACE lines
without the six attribute columns (`x y w h [label]`, or `-` for a missing attribute); datumaro's MNIST header.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vl_datumaro import box_mask, dm_image

from visionloop import formats
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox

dm = pytest.importorskip("datumaro")
from datumaro.components.annotation import (  # noqa: E402
    AnnotationType,
    Bbox,
    Caption,
    LabelCategories,
    Points,
    RotatedBbox,
)
from datumaro.components.annotation import Label as DmLabel  # noqa: E402
from datumaro.components.annotation import Mask as DmMask  # noqa: E402
from datumaro.components.annotation import Polygon as DmPolygon  # noqa: E402

sv = pytest.importorskip("supervision")


def _read(root: Path, expected_format: str) -> list:
    assert formats.detect(root) == expected_format
    return sorted(formats.read(root), key=lambda s: s.image.file_name)


def _box(a) -> tuple[float, float, float, float]:
    return (a.box.x0, a.box.y0, a.box.x1, a.box.y1)


def _stem(sample) -> str:
    return Path(sample.image.file_name).stem


def _import(root: Path, fmt: str) -> dict[str, object]:
    """datumaro's own import of `root`, item by id."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dm.Dataset.import_from(str(root), fmt)
    return {item.id: item for item in ds}, ds.categories().get(AnnotationType.label)


# ------------------------------------------------------------------------------------------------ YOLO

def test_yolo_ultralytics_as_datumaro_writes_it(tmp_path: Path) -> None:
    """datumaro 1.13.12 `yolo_ultralytics` (datumaro/plugins/data_formats/yolo/exporter.py,
    `YoloUltralyticsExporter`): data.yaml, images/<split>/, labels/<split>/, `<split>.txt` lists, `%.6f`."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=dm_image(40, 60, 100),
                       annotations=[Bbox(2, 3, 10, 12, label=0), Bbox(20, 5, 30, 20, label=1)]),
        dm.DatasetItem(id="b", subset="train", media=dm_image(50, 70, 50), annotations=[Bbox(1.5, 2.5, 7, 8, label=1)]),
        dm.DatasetItem(id="c", subset="val", media=dm_image(30, 30, 10)),
    ], categories=["cat", "dog"]).export(str(tmp_path / "y"), "yolo_ultralytics", save_media=True)
    a, b, c = _read(tmp_path / "y", "yolo")
    assert [(s.image.file_name, s.split, s.state.value) for s in (a, b, c)] == [
        ("images/train/a.jpg", "train", "annotated"), ("images/train/b.jpg", "train", "annotated"),
        ("images/val/c.jpg", "val", "null")]
    assert [n.label for n in a.annotations] == ["cat", "dog"] and [n.label for n in b.annotations] == ["dog"]
    # 6 decimals of the image size: 1e-4 px here
    assert [_box(n) for n in a.annotations] == [pytest.approx((2, 3, 12, 15), abs=1e-4),
                                                pytest.approx((20, 5, 50, 25), abs=1e-4)]
    assert _box(b.annotations[0]) == pytest.approx((1.5, 2.5, 8.5, 10.5), abs=1e-4)


def _sv_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    paths = []
    for name, (h, w, v) in {"a": (40, 60, 100), "b": (50, 70, 50), "c": (30, 30, 10)}.items():
        Image.fromarray(np.full((h, w, 3), v, np.uint8)).save(folder / f"{name}.png")
        paths.append(str(folder / f"{name}.png"))
    return paths


def _sv_dataset(tmp_path: Path, *, with_mask: bool = False):
    a, b, c = _sv_images(tmp_path / "src")
    mask = np.zeros((2, 40, 60), bool)
    mask[1, 5:25, 20:50] = True  # the dog of image a as a mask too: a polygon line (YOLO segment)
    dets_a = sv.Detections(xyxy=np.array([[2, 3, 12, 15], [20, 5, 50, 25]], float), class_id=np.array([0, 1]),
                           mask=mask if with_mask else None)
    return sv.DetectionDataset(classes=["cat", "dog"], images=[a, b, c], annotations={
        a: dets_a, b: sv.Detections(xyxy=np.array([[1, 2, 8, 10]], float), class_id=np.array([1])),
        c: sv.Detections.empty()})


def test_yolo_as_supervision_writes_it(tmp_path: Path) -> None:
    """supervision 0.31.2 `as_yolo` (supervision/dataset/formats/yolo.py, `save_yolo_annotations`,
    `save_data_yaml`): its data.yaml holds `nc` and `names` only. Was refused ("the YAML names no images")."""
    out = tmp_path / "y"
    _sv_dataset(tmp_path, with_mask=True).as_yolo(str(out / "train" / "images"), str(out / "train" / "labels"),
                                                  str(out / "data.yaml"))
    assert "train" not in (out / "data.yaml").read_text()
    samples = _read(out, "yolo")
    oracle = sv.DetectionDataset.from_yolo(str(out / "train" / "images"), str(out / "train" / "labels"),
                                           str(out / "data.yaml"))
    assert [(s.image.file_name, s.split) for s in samples] == [
        ("train/images/a.png", "train"), ("train/images/b.png", "train"), ("train/images/c.png", "train")]
    assert samples[2].state.value == "null"
    for s in samples:
        _, _, theirs = next(t for t in oracle if Path(t[0]).name == Path(s.image.file_name).name)
        assert [a.label for a in s.annotations] == [oracle.classes[i] for i in theirs.class_id]
        assert [_box(a) for a in s.annotations] == [pytest.approx(tuple(x), abs=1e-6) for x in theirs.xyxy]
    # the masked dog is a YOLO segment line: a polygon around the mask
    dog = samples[0].annotations[1]
    assert isinstance(dog.geometry, Polygon) and _box(dog) == pytest.approx((20, 5, 49, 24), abs=1e-3)


def test_yolo_obb_as_supervision_writes_it(tmp_path: Path) -> None:
    """supervision 0.31.2 `as_yolo(is_obb=True)`: `class x1 y1 ... x4 y4` normalised; its data.yaml has no
    `task: obb`, so the 8 numbers are a 4-point polygon (the 8-number rule, formats/yolo.py) unless the
    caller says OBB — either way the same four corners."""
    a, b, c = _sv_images(tmp_path / "src")
    corners = np.array([[[10, 5], [30, 10], [26, 26], [6, 21]]], float)
    det = sv.Detections(xyxy=np.array([[6, 5, 30, 26]], float), class_id=np.array([0]),
                        data={"xyxyxyxy": corners})
    ds = sv.DetectionDataset(classes=["ship"], images=[a], annotations={a: det})
    out = tmp_path / "obb"
    ds.as_yolo(str(out / "images"), str(out / "labels"), str(out / "data.yaml"), is_obb=True)
    (s,) = _read(out, "yolo")
    assert np.allclose(s.annotations[0].geometry.points(), corners[0], atol=1e-3)
    from visionloop.formats import yolo

    (s,) = list(yolo.read(out, task="obb"))
    rb = s.annotations[0].geometry
    assert isinstance(rb, RotatedBox)
    assert np.allclose(sorted(rb.corners()), sorted(map(tuple, corners[0])), atol=1e-3)


# ------------------------------------------------------------------------------------------------ CVAT

def _cvat_categories():
    return {AnnotationType.label: LabelCategories.from_iterable([("car", "", ["color"]), ("person", "", [])])}


def test_cvat_subset_files_as_datumaro_writes_them(tmp_path: Path) -> None:
    """datumaro 1.13.12 `cvat` (datumaro/plugins/data_formats/cvat/exporter.py, `CvatExporter._apply_impl`): one
    `<subset>.xml` per subset, images flat in images/. Was refused ("no annotations.xml"); each file alone listed
    the other subset's images as unlabelled. Oracle: datumaro's own `cvat` import."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=dm_image(40, 60, 100), annotations=[
            Bbox(2, 3, 10, 12, label=0, attributes={"color": "red", "occluded": True}, z_order=1, group=3),
            DmPolygon([20, 5, 30, 5, 30, 20], label=1),
            Points([5, 6, 7, 8], label=1),
            DmMask(box_mask(40, 60, slice(5, 10), slice(5, 20)), label=0),
            DmLabel(1),
        ]),
        dm.DatasetItem(id="b", subset="val", media=dm_image(40, 60, 50), annotations=[Bbox(1, 2, 3, 4, label=1)]),
    ], categories=_cvat_categories()).export(str(tmp_path / "cvat"), "cvat", save_media=True)
    assert sorted(p.name for p in (tmp_path / "cvat").glob("*.xml")) == ["train.xml", "val.xml"]
    reader = formats.read(tmp_path / "cvat")
    assert formats.detect(tmp_path / "cvat") == "cvat" and reader.classes.names == ["car", "person"]
    a, b = sorted(reader, key=lambda s: s.image.file_name)
    assert [(s.image.file_name, s.split, s.image.size) for s in (a, b)] == [("a.jpg", "train", (60, 40)),
                                                                            ("b.jpg", "val", (60, 40))]
    items, names = _import(tmp_path / "cvat", "cvat")
    for s in (a, b):
        theirs = items[_stem(s)].annotations
        assert [a_.label for a_ in s.annotations] == [names[t.label].name for t in theirs]
        for ours, t in zip(s.annotations, theirs, strict=True):
            g = ours.geometry
            if t.type == AnnotationType.bbox:
                assert isinstance(g, Box) and _box(ours) == tuple(t.get_bbox()[:2]) + (
                    t.get_bbox()[0] + t.get_bbox()[2], t.get_bbox()[1] + t.get_bbox()[3])
            elif t.type == AnnotationType.polygon:
                assert isinstance(g, Polygon) and list(g.rings[0]) == t.points
            elif t.type == AnnotationType.points:
                assert isinstance(g, Keypoints) and list(g.points[0::3]) + list(g.points[1::3]) == (
                    t.points[0::2] + t.points[1::2])
            elif t.type == AnnotationType.mask:
                assert isinstance(g, Mask) and np.array_equal(g.to_array().astype(bool), t.image.astype(bool))
            else:
                assert t.type == AnnotationType.label and isinstance(g, Label)
    car = a.annotations[0]
    assert car.attributes == {"color": "red", "occluded": True, "z_order": 1, "group_id": 3}
    assert items["a"].annotations[0].attributes["color"] == "red" and items["a"].annotations[0].attributes[
        "occluded"] is True


def test_cvat_video_tracks_as_datumaro_writes_them(tmp_path: Path) -> None:
    """datumaro 1.13.12 `cvat` with `use_track=True` (`_SubsetWriter._write_track`): <track> of per-frame shapes
    with `frame`, `outside`, `keyframe`, <original_size> in <meta>, and no images. Oracle: datumaro's own import
    (an `outside` shape is where the object is not: neither reads it)."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id=f"frame_{i:06d}", media=dm_image(40, 60, 10 * i), attributes={"frame": i}, annotations=[
            Bbox(2 + i, 3, 10, 12, label=0, attributes={"track_id": 1, "keyframe": True, "outside": i == 2}),
            DmPolygon([20, 5, 30, 5, 30, 20 + i], label=1, attributes={"track_id": 2, "keyframe": True}),
        ]) for i in range(3)
    ], categories=_cvat_categories()).export(str(tmp_path / "v"), "cvat", save_media=True, use_track=True)
    samples = _read(tmp_path / "v", "cvat_video")
    assert [(s.image.file_name, s.image.size) for s in samples] == [
        (f"frame_{i:06d}.PNG", (60, 40)) for i in range(3)]
    got = [[(a.label, a.track_id, _box(a)) for a in s.annotations] for s in samples]
    assert got == [
        [("car", 1, (2, 3, 12, 15)), ("person", 2, (20, 5, 30, 20))],
        [("car", 1, (3, 3, 13, 15)), ("person", 2, (20, 5, 30, 21))],
        [("person", 2, (20, 5, 30, 22))]]
    items, names = _import(tmp_path / "v", "cvat")
    theirs = sorted((int(i.attributes["frame"]), names[a.label].name, int(a.attributes["track_id"]),
                     tuple(a.get_bbox())) for i in items.values() for a in i.annotations
                    if not a.attributes.get("outside"))
    ours = sorted((n, lab, tid, (b[0], b[1], b[2] - b[0], b[3] - b[1])) for n, anns in enumerate(got)
                  for lab, tid, b in anns)
    assert ours == [(f, lab, tid + 0, tuple(float(v) for v in b)) for f, lab, tid, b in theirs]


# ------------------------------------------------------------------------------------------------ MOT

def test_mot_as_datumaro_writes_it(tmp_path: Path) -> None:
    """datumaro 1.13.12 `mot_seq_gt` (datumaro/plugins/data_formats/mot.py, `MotSeqGtExporter`): img1/, gt/gt.txt
    `frame,id,x,y,w,h,1,class,visibility`, gt/labels.txt, no seqinfo.ini; a box without a track id gets id -1,
    which was read as one track -1 shared by every such box. Oracle: datumaro's own `mot_seq` import."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="1", media=dm_image(40, 60, 100), annotations=[
            Bbox(2, 3, 10, 12, label=0, attributes={"track_id": 7, "visibility": 0.5}),
            Bbox(20, 5, 30, 20, label=1)]),
        dm.DatasetItem(id="2", media=dm_image(40, 60, 50), annotations=[
            Bbox(3, 3, 10, 12, label=0, attributes={"track_id": 7}), Bbox(1, 2, 3, 4, label=1)]),
        dm.DatasetItem(id="3", media=dm_image(40, 60, 10)),
    ], categories=["pedestrian", "car"]).export(str(tmp_path / "mot"), "mot_seq_gt", save_media=True)
    assert ",-1," in (tmp_path / "mot" / "gt" / "gt.txt").read_text()
    f1, f2, f3 = _read(tmp_path / "mot", "mot")
    got = [[(a.label, a.track_id, _box(a), a.attributes.get("visibility")) for a in s.annotations]
           for s in (f1, f2)]
    tracked = next(a.track_id for a in f1.annotations if a.label == "pedestrian")
    assert got == [[("pedestrian", tracked, (2, 3, 12, 15), 0.5), ("car", None, (20, 5, 50, 25), 1)],
                   [("pedestrian", tracked, (3, 3, 13, 15), 1), ("car", None, (1, 2, 4, 6), 1)]]
    assert f3.state.value == "null" and f3.image.file_name == "img1/000003.jpg"
    items, names = _import(tmp_path / "mot", "mot_seq")
    for s in (f1, f2):
        theirs = sorted((names[a.label].name, a.attributes.get("track_id"), tuple(a.get_bbox()))
                        for a in items[str(int(_stem(s)))].annotations)
        ours = sorted((a.label, a.track_id, (a.box.x0, a.box.y0, a.box.width, a.box.height)) for a in s.annotations)
        assert [(n, t is None) for n, t, _ in ours] == [(n, t is None) for n, t, _ in theirs]
        assert [b for *_, b in ours] == [tuple(float(v) for v in b) for *_, b in theirs]


# ------------------------------------------------------------------------------------------------ WIDER FACE

_WIDER_ATTRS = {"blur": 2, "expression": 1, "illumination": 0, "occluded": 1, "pose": 0, "invalid": 0}


def _wider(tmp_path: Path, attributes: dict[str, int], categories: list[str]) -> Path:
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="0_Parade_marchingband_1_5", subset="train", media=dm_image(40, 60, 100), annotations=[
            Bbox(2, 3, 10, 12, label=0, attributes=attributes),
            Bbox(20, 5, 30, 20, label=0, attributes=dict(attributes, blur=0)), DmLabel(1)]),
        dm.DatasetItem(id="1_Handshaking_1_2", subset="train", media=dm_image(40, 60, 50), annotations=[DmLabel(2)]),
        dm.DatasetItem(id="0_Parade_2", subset="val", media=dm_image(40, 60, 50),
                       annotations=[DmLabel(1), Bbox(1, 2, 3, 4, label=0, attributes=attributes)]),
    ], categories=categories).export(str(tmp_path / "w"), "wider_face", save_media=True)
    return tmp_path / "w"


def test_wider_as_datumaro_writes_it_with_the_six_attributes(tmp_path: Path) -> None:
    """datumaro 1.13.12 `wider_face` (datumaro/plugins/data_formats/widerface.py, `WiderFaceExporter`) with all six
    attributes and the class `face`: 10 values a line, event folders `<n>--<event>/` from the image label, and no
    count line for an image without faces (read as labelled-empty). Boxes equal datumaro's own import. The
    attribute columns are read in the order of WIDER's readme (blur expression illumination invalid occlusion
    pose); datumaro writes its attributes in its own order (`WiderFacePath.BBOX_ATTRIBUTES`: blur expression
    illumination occluded pose invalid), so its `occluded` is read as WIDER's `invalid`, as the column says."""
    root = _wider(tmp_path, _WIDER_ATTRS, ["face", "Parade", "Handshaking"])
    lines = (root / "wider_face_split" / "wider_face_train_bbx_gt.txt").read_text().splitlines()
    assert lines[:3] == ["1--Parade/0_Parade_marchingband_1_5.jpg", "2", "2.0 3.0 10.0 12.0 2 1 0 1 0 0 "]
    samples = _read(root, "wider")
    assert [(s.image.file_name, s.split, s.state.value) for s in samples] == [
        ("WIDER_train/images/1--Parade/0_Parade_marchingband_1_5.jpg", "train", "annotated"),
        ("WIDER_train/images/2--Handshaking/1_Handshaking_1_2.jpg", "train", "null"),
        ("WIDER_val/images/1--Parade/0_Parade_2.jpg", "val", "annotated")]
    assert samples[0].annotations[0].attributes == {"blur": 2, "expression": 1, "illumination": 0, "invalid": 1,
                                                    "occlusion": 0, "pose": 0}
    items, _ = _import(root, "wider_face")
    for s in samples:
        theirs = [tuple(a.points) for a in items[_stem(s)].annotations if a.type == AnnotationType.bbox]
        assert [_box(a) for a in s.annotations] == theirs
        assert {a.label for a in s.annotations} <= {"face"}


@pytest.mark.parametrize(("attributes", "face", "says"), [
    ({}, "person", r"\(line 3\): expected 10 values \(x1 y1 w h blur expression illumination invalid occlusion "
                   r"pose\), got 5"),
    ({}, "face", r"\(line 3\): expected 10 values .*, got 4"),
    ({"blur": 1}, "face", r"\(line 3\): '-' is not a number"),
    (_WIDER_ATTRS, "person", r"\(line 3\): expected 10 values .*, got 11"),
], ids=["no-attributes", "no-attributes-face", "some-attributes", "class-name"])
def test_wider_lines_datumaro_writes_without_the_attributes_are_refused(tmp_path: Path, attributes, face: str,
                                                                        says: str) -> None:
    """datumaro 1.13.12 `wider_face` writes `x y w h` without attributes, `-` for each missing one, and the class
    name after them unless it is `face`: not WIDER's 10-value lines. Refused in one line naming file and line."""
    root = _wider(tmp_path, attributes, [face, "Parade", "Handshaking"])
    with pytest.raises(FormatError, match=says) as e:
        list(formats.read(root))
    assert "wider_face_train_bbx_gt.txt" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ DOTA

def test_dota_as_datumaro_writes_it(tmp_path: Path) -> None:
    """datumaro 1.13.12 `dota` (datumaro/plugins/data_formats/dota.py, `DotaExporter`): <subset>/images/,
    <subset>/labelTxt/<id>.txt with `x1 y1 ... x4 y4 class difficulty` (%.2f), no imagesource/gsd header. It
    writes rotated boxes only (a Bbox gives an empty file). Oracle: datumaro's own `dota` import."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="P0001", subset="train", media=dm_image(40, 60, 100), annotations=[
            RotatedBbox(7, 9, 10, 12, 0, label=0),
            RotatedBbox(35, 12, 20, 8, 30, label=1, attributes={"difficulty": 1})]),
        dm.DatasetItem(id="P0002", subset="val", media=dm_image(40, 60, 50)),
    ], categories=["plane", "ship"]).export(str(tmp_path / "dota"), "dota", save_media=True)
    p1, p2 = _read(tmp_path / "dota", "dota")
    assert [(s.image.file_name, s.split) for s in (p1, p2)] == [("train/images/P0001.png", "train"),
                                                              ("val/images/P0002.png", "val")]
    assert p2.state.value == "null" and [a.label for a in p1.annotations] == ["plane", "ship"]
    assert [a.attributes.get("difficult") for a in p1.annotations] == [0, 1]
    items, _ = _import(tmp_path / "dota", "dota")
    for ours, theirs in zip(p1.annotations, items["P0001"].annotations, strict=True):
        assert isinstance(ours.geometry, RotatedBox)
        assert np.allclose(sorted(ours.geometry.corners()), sorted(theirs.as_polygon()), atol=0.01)


# ------------------------------------------------------------------------------------------------ COCO panoptic, captions

def test_coco_panoptic_as_datumaro_writes_it(tmp_path: Path) -> None:
    """datumaro 1.13.12 `coco_panoptic` (datumaro/plugins/data_formats/coco/exporter.py,
    `_PanopticConverter`): annotations/panoptic_<split>.json + annotations/panoptic_<split>/<name>.png (id =
    R + 256 G + 256² B), every category `isthing: 0`. Oracle: datumaro's own `coco_panoptic` import."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="val", media=dm_image(20, 30, 100), attributes={"id": 1}, annotations=[
            DmMask(box_mask(20, 30, slice(2, 8), slice(3, 9)), label=0, id=7, group=7),
            DmMask(box_mask(20, 30, slice(10, 15), slice(0, 30)), label=1, id=300, group=300,
                   attributes={"is_crowd": True})]),
        dm.DatasetItem(id="b", subset="val", media=dm_image(20, 30, 50), attributes={"id": 2}),
    ], categories=["person", "sky"]).export(str(tmp_path / "p"), "coco_panoptic", save_media=True)
    a, b = _read(tmp_path / "p", "coco_panoptic")
    assert [(s.image.file_name, s.split, s.image.size) for s in (a, b)] == [("a.jpg", "val", (30, 20)),
                                                                            ("b.jpg", "val", (30, 20))]
    assert [(x.label, x.crowd) for x in a.annotations] == [("person", False), ("sky", True)]
    assert b.state.value == "missing"  # datumaro writes no annotation record for an image without segments
    items, names = _import(tmp_path / "p", "coco_panoptic")
    theirs = items["a"].annotations
    assert [names[t.label].name for t in theirs] == ["person", "sky"]
    for ours, t in zip(a.annotations, theirs, strict=True):
        assert np.array_equal(ours.geometry.to_array().astype(bool), t.image.astype(bool))
        assert ours.geometry.to_array().sum() == t.image.sum()


def _captions(sample) -> list[str]:
    """A sample's captions, as ImageRef.metadata or as caption annotations (both models stay readable here)."""
    texts = [a.geometry.text for a in sample.annotations if hasattr(a.geometry, "text")]
    return texts or list(sample.image.metadata.get("captions", []))


def test_coco_captions_as_datumaro_writes_them(tmp_path: Path) -> None:
    """datumaro 1.13.12 `coco_captions` (datumaro/plugins/data_formats/coco/exporter.py, `_CaptionsConverter`):
    annotations/captions_<split>.json with `category_id: 0` and `score` on each caption. Oracle: datumaro's own
    `coco_captions` import."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="val", media=dm_image(20, 30, 100), attributes={"id": 1},
                       annotations=[Caption("a cat on a mat", id=1), Caption("two cats", id=2)]),
        dm.DatasetItem(id="b", subset="val", media=dm_image(20, 30, 50), attributes={"id": 2},
                       annotations=[Caption("a dog", id=3)]),
        dm.DatasetItem(id="c", subset="val", media=dm_image(20, 30, 10), attributes={"id": 3}),
    ]).export(str(tmp_path / "c"), "coco_captions", save_media=True)
    samples = _read(tmp_path / "c", "coco_captions")
    assert [(s.image.file_name, s.split, _captions(s)) for s in samples] == [
        ("a.jpg", "val", ["a cat on a mat", "two cats"]), ("b.jpg", "val", ["a dog"]), ("c.jpg", "val", [])]
    written = json.loads((tmp_path / "c" / "annotations" / "captions_val.json").read_text())["annotations"]
    assert [a["caption"] for a in written] == ["a cat on a mat", "two cats", "a dog"]  # file order, kept
    items, _ = _import(tmp_path / "c", "coco_captions")
    for s in samples:
        assert sorted(_captions(s)) == sorted(t.caption for t in items[_stem(s)].annotations)


# ------------------------------------------------------------------------------------------------ CIFAR-100, MNIST

def test_cifar100_as_datumaro_writes_it(tmp_path: Path) -> None:
    """datumaro 1.13.12 `cifar` (datumaro/plugins/data_formats/cifar.py, `CifarExporter`) writes CIFAR-100 when
    the labels have parents: `meta` (fine_label_names, coarse_label_names sorted), `train` / `test` with
    fine_labels, coarse_labels, filenames and an object array of pixels. Oracle: the exported dataset (datumaro
    1.13.12 cannot import its own CIFAR-100 output: ConflictingCategoriesError between its subsets)."""
    cats = {AnnotationType.label: LabelCategories.from_iterable(
        [("apple", "fruit and vegetables"), ("bee", "insects"), ("maple_tree", "trees")])}
    values = {"a": 100, "b": 30, "c": 20}
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=dm_image(32, 32, 100), annotations=[DmLabel(2)]),
        dm.DatasetItem(id="b", subset="train", media=dm_image(32, 32, 30), annotations=[DmLabel(0)]),
        dm.DatasetItem(id="c", subset="test", media=dm_image(32, 32, 20), annotations=[DmLabel(1)]),
    ], categories=cats).export(str(tmp_path / "c100"), "cifar", save_media=True)
    assert sorted(p.name for p in (tmp_path / "c100").iterdir()) == ["meta", "test", "train"]
    reader = formats.read(tmp_path / "c100")
    assert formats.detect(tmp_path / "c100") == "cifar100"
    assert reader.classes.names == ["apple", "bee", "maple_tree"]
    samples = sorted(reader, key=lambda s: s.image.file_name)
    assert [(s.image.file_name, s.split, [(a.label, a.attributes.get("coarse_label")) for a in s.annotations])
            for s in samples] == [
        ("test/c.png", "test", [("bee", "insects")]),
        ("train/a.png", "train", [("maple_tree", "trees")]),
        ("train/b.png", "train", [("apple", "fruit and vegetables")])]
    for s in samples:
        pixels = np.asarray(Image.open(s.image.path).convert("RGB"))
        assert pixels.shape == (32, 32, 3) and (pixels == values[_stem(s)]).all()


def _mnist(tmp_path: Path, names: list[str], folder: str = "mnist") -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    digits = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(3)]
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="0", subset="train", media=dm.Image.from_numpy(digits[0]), annotations=[DmLabel(7)]),
        dm.DatasetItem(id="1", subset="train", media=dm.Image.from_numpy(digits[1]), annotations=[DmLabel(0)]),
        dm.DatasetItem(id="0", subset="test", media=dm.Image.from_numpy(digits[2]), annotations=[DmLabel(3)]),
    ], categories=names).export(str(tmp_path / folder), "mnist", save_media=True)
    return tmp_path / folder, digits


def _fix_count(images: Path, count: int) -> None:
    raw = bytearray(gzip.decompress(images.read_bytes()))
    raw[4:8] = count.to_bytes(4, "big")
    images.write_bytes(gzip.compress(bytes(raw)))


def test_mnist_as_datumaro_writes_it_is_refused_naming_the_header(tmp_path: Path) -> None:
    """datumaro 1.13.12 `mnist` (datumaro/plugins/data_formats/mnist.py, `MnistExporter.save_images`) writes the
    number of pixels where IDX has the number of images (`len(data)` of the flattened array): not a valid IDX
    file (torchvision's `read_image_file` cannot reshape it). Refused in one line naming the field and the fix;
    with the count fixed, the pixels and labels datumaro wrote are read exactly (oracle: the exported arrays and
    datumaro's own import of the same files)."""
    root, digits = _mnist(tmp_path, [str(i) for i in range(10)])
    images = root / "train-images-idx3-ubyte.gz"
    assert int.from_bytes(gzip.decompress(images.read_bytes())[4:8], "big") == 2 * 28 * 28
    with pytest.raises(FormatError) as e:
        list(formats.read(root))
    assert str(e.value) == (
        f"{images} (bytes 4-7): the header counts 1568 images, the number of pixels of the 2 images that "
        "train-labels-idx1-ubyte.gz labels, not the number of images — write 2 there (datumaro's MNIST exporter "
        "writes the pixel count; torchvision and the original files the image count)")
    _fix_count(images, 2)
    _fix_count(root / "t10k-images-idx3-ubyte.gz", 1)
    samples = _read(root, "mnist")
    assert [(s.image.file_name, s.split, s.annotations[0].label) for s in samples] == [
        ("test/00000.png", "test", "3"), ("train/00000.png", "train", "7"), ("train/00001.png", "train", "0")]
    for s, want in zip(samples, [digits[2], digits[0], digits[1]], strict=True):
        assert np.array_equal(np.asarray(Image.open(s.image.path)), want)
    items = dm.Dataset.import_from(str(root), "mnist")
    for s in samples:
        item = items.get(str(int(_stem(s))), s.split)
        assert np.array_equal(item.media.data.astype(np.uint8), np.asarray(Image.open(s.image.path)))


def test_fashion_mnist_as_datumaro_writes_it(tmp_path: Path) -> None:
    """The same datumaro 1.13.12 `mnist` files under FashionMNIST/raw (torchvision's folder), written with
    Fashion-MNIST's ten class names in their order: the same refusal, then the names by label number."""
    from visionloop.formats._idx import FASHION_NAMES

    root, _ = _mnist(tmp_path, list(FASHION_NAMES), folder="data/FashionMNIST/raw")
    with pytest.raises(FormatError, match=r"bytes 4-7\): the header counts 1568 images"):
        list(formats.read(tmp_path / "data"))
    _fix_count(root / "train-images-idx3-ubyte.gz", 2)
    _fix_count(root / "t10k-images-idx3-ubyte.gz", 1)
    samples = _read(tmp_path / "data", "fashion_mnist")
    assert [(s.split, s.annotations[0].label) for s in samples] == [
        ("test", "Dress"), ("train", "Sneaker"), ("train", "T-shirt/top")]
    assert (root / "labels.txt").read_text().splitlines() == list(FASHION_NAMES)


# ------------------------------------------------------------------------------------------------ SA-1B

def test_sa1b_as_datumaro_writes_it(tmp_path: Path) -> None:
    """datumaro 1.13.12 `segment_anything` (datumaro/plugins/data_formats/segment_anything/exporter.py): sa_<id>.jpg
    + sa_<id>.json with COCO RLE (pycocotools), bbox, area, predicted_iou, stability_score, point_coords,
    crop_box (0 / [[]] / [0, 0, 0, 0] where the mask has none). Oracle: datumaro's own import."""
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="sa_1", media=dm_image(20, 30, 100), annotations=[
            DmMask(box_mask(20, 30, slice(2, 8), slice(3, 9)), id=0, group=0, attributes={
                "predicted_iou": 0.9, "stability_score": 0.95, "point_coords": [[5, 4]], "crop_box": [0, 0, 30, 20]}),
            DmMask(box_mask(20, 30, slice(10, 15), slice(0, 30)), id=1, group=1)]),
    ]).export(str(tmp_path / "sa"), "segment_anything", save_media=True)
    (s,) = _read(tmp_path / "sa", "sa1b")
    assert s.image.file_name == "sa_1.jpg" and s.image.size == (30, 20)
    first, second = s.annotations
    assert {k: first.attributes[k] for k in ("predicted_iou", "stability_score", "point_coords", "crop_box")} == {
        "predicted_iou": 0.9, "stability_score": 0.95, "point_coords": [[5, 4]], "crop_box": [0, 0, 30, 20]}
    assert _box(first) == (3, 2, 9, 8) and _box(second) == (0, 10, 30, 15)
    items, _ = _import(tmp_path / "sa", "segment_anything")
    theirs = [t for t in items["sa_1"].annotations if t.type == AnnotationType.mask]  # it adds a Bbox per mask
    for ours, t in zip(s.annotations, theirs, strict=True):
        assert np.array_equal(ours.geometry.to_array().astype(bool), t.image.astype(bool))


# ------------------------------------------------------------------------------------------------ supervision: Create ML, LabelMe, VOC, COCO

def _check_against(samples, oracle, *, abs_: float = 1e-9) -> None:
    assert len(samples) == len(oracle)
    for s in samples:
        _, _, theirs = next(t for t in oracle if Path(t[0]).name == Path(s.image.file_name).name)
        assert [a.label for a in s.annotations] == [oracle.classes[i] for i in theirs.class_id], s.image.file_name
        assert [_box(a) for a in s.annotations] == [pytest.approx(tuple(x), abs=abs_) for x in theirs.xyxy]


def test_createml_as_supervision_writes_it(tmp_path: Path) -> None:
    """supervision 0.31.2 `as_createml` (supervision/dataset/formats/createml.py): a JSON array of
    `{"image", "annotations": [{"label", "coordinates": {x, y, width, height}}]}`, x/y the box centre, in the
    Roboflow layout `<split>/_annotations.createml.json`. Oracle: supervision's `from_createml`."""
    out = tmp_path / "cm" / "train"
    _sv_dataset(tmp_path).as_createml(str(out), str(out / "_annotations.createml.json"))
    entry = json.loads((out / "_annotations.createml.json").read_text())[0]
    assert entry["annotations"][0] == {"label": "cat",
                                       "coordinates": {"x": 7.0, "y": 9.0, "width": 10.0, "height": 12.0}}
    samples = _read(tmp_path / "cm", "createml")
    assert [(s.image.file_name, s.split, s.state.value) for s in samples] == [
        ("a.png", "train", "annotated"), ("b.png", "train", "annotated"), ("c.png", "train", "null")]
    _check_against(samples, sv.DetectionDataset.from_createml(str(out), str(out / "_annotations.createml.json")))


def test_labelme_as_supervision_writes_it(tmp_path: Path) -> None:
    """supervision 0.31.2 `as_labelme` (supervision/dataset/formats/labelme.py): `<stem>.json` beside each image,
    boxes as `rectangle` shapes, a mask as a `polygon` around it. Oracle: supervision's `from_labelme`."""
    out = tmp_path / "lm"
    _sv_dataset(tmp_path, with_mask=True).as_labelme(str(out), str(out))
    samples = _read(out, "labelme")
    assert [(s.image.file_name, s.image.size) for s in samples] == [("a.png", (60, 40)), ("b.png", (70, 50)),
                                                                   ("c.png", (30, 30))]
    assert [type(a.geometry) for a in samples[0].annotations] == [Box, Polygon]
    oracle = sv.DetectionDataset.from_labelme(str(out), str(out))
    _check_against(samples, oracle, abs_=1.0)  # the polygon's bounds vs supervision's mask box: within a pixel
    assert _box(samples[0].annotations[0]) == (2, 3, 12, 15)


def test_voc_and_coco_as_supervision_writes_them(tmp_path: Path) -> None:
    """supervision 0.31.2 `as_pascal_voc` (supervision/dataset/formats/pascal_voc.py, `object_to_pascal_voc`:
    xmin, ymin 1-based, xmax, ymax as they are, rounded) and `as_coco` (coco.py, Roboflow's
    `_annotations.coco.json`). Oracles: supervision's `from_pascal_voc` and `from_coco`."""
    ds = _sv_dataset(tmp_path)
    ds.as_pascal_voc(str(tmp_path / "voc"), str(tmp_path / "voc"))
    xml = (tmp_path / "voc" / "a.xml").read_text()
    assert "<xmin>3</xmin>" in xml and "<xmax>12</xmax>" in xml  # box (2, 3, 12, 15): xmin written as 2 + 1
    samples = _read(tmp_path / "voc", "voc")
    _check_against(samples, sv.DetectionDataset.from_pascal_voc(str(tmp_path / "voc"), str(tmp_path / "voc")))
    assert _box(samples[0].annotations[0]) == (2, 3, 12, 15)
    out = tmp_path / "coco" / "train"
    ds.as_coco(str(out), str(out / "_annotations.coco.json"))
    samples = _read(tmp_path / "coco", "coco")
    _check_against(samples, sv.DetectionDataset.from_coco(str(out), str(out / "_annotations.coco.json")))


# ------------------------------------------------------------------------------------------------ Label Studio

LS_FIXTURES = Path(__file__).parent / "fixtures" / "labelstudio"


def _ls(tmp_path: Path, name: str) -> Path:
    """The committed converter output beside the images it names (drawn at make_fixtures.py's sizes)."""
    root = tmp_path / "ls"
    (root / "images").mkdir(parents=True)
    for image, (w, h) in {"a.png": (60, 40), "b.png": (70, 50), "c.png": (30, 30)}.items():
        Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(root / "images" / image)
    (root / name).write_bytes((LS_FIXTURES / name).read_bytes())
    return root


def test_labelstudio_tasks_label_studio_converter_wrote_from_yolo(tmp_path: Path) -> None:
    """label-studio-converter 0.0.59 `imports.yolo.convert_yolo_to_ls` (fixtures/labelstudio/yolo_tasks.json):
    rectanglelabels in percent of original_width/height; an image without a label file is a task without
    annotations (MISSING). Oracle: the YOLO lines make_fixtures.py gave the converter."""
    samples = _read(_ls(tmp_path, "yolo_tasks.json"), "labelstudio")
    assert [(s.image.file_name, s.image.size, s.state.value) for s in samples] == [
        ("a.png", (60, 40), "annotated"), ("b.png", (70, 50), "annotated"), ("c.png", None, "missing")]
    assert [(a.label, type(a.geometry)) for a in samples[0].annotations] == [("cat", Box), ("dog", Box)]
    assert [_box(a) for a in samples[0].annotations] == [pytest.approx((2, 3, 12, 15), abs=1e-4),
                                                         pytest.approx((20, 5, 50, 25), abs=1e-4)]
    assert [(a.label, _box(a)) for a in samples[1].annotations] == [("dog", pytest.approx((7, 10, 35, 30)))]


def test_labelstudio_tasks_label_studio_converter_wrote_from_coco(tmp_path: Path) -> None:
    """label-studio-converter 0.0.59 `imports.coco.convert_coco_to_ls` (fixtures/labelstudio/coco_tasks.json): a
    rectanglelabels, a polygonlabels and one keypointlabels region per keypoint, `hidden: true` for COCO's
    v < 2 (imports/coco.py, `create_keypoints`), image `/data/local-files/?d=/images/a.png` (os.path.join of its
    root URL). Hidden keypoints were read as visible (the not-labelled one as a visible point at (0, 0)).
    Oracle: the COCO annotations make_fixtures.py gave the converter."""
    (a,) = _read(_ls(tmp_path, "coco_tasks.json"), "labelstudio")
    assert (a.image.file_name, a.image.size) == ("a.png", (60, 40))
    got = [(x.label, x.geometry) for x in a.annotations]
    assert got == [("person", Box(2, 3, 12, 15)), ("person", Keypoints((5, 6, 2))), ("person", Keypoints((7, 8, 1))),
                   ("person", Keypoints((0, 0, 0))), ("cat", Polygon(((20, 5, 50, 5, 50, 25, 20, 25),)))]


def test_labelstudio_brush_label_studio_converter_wrote(tmp_path: Path) -> None:
    """label-studio-converter 0.0.59 `brush.image2annotation` of a mask PNG (fixtures/labelstudio/brush_tasks.json):
    brushlabels with the converter's RLE over the RGBA image. Oracle: the mask make_fixtures.py drew."""
    (a,) = _read(_ls(tmp_path, "brush_tasks.json"), "labelstudio")
    (m,) = a.annotations
    want = np.zeros((40, 60), np.uint8)
    want[5:12, 10:30] = 1
    want[20:38, 40:41] = 1
    want[39, 59] = 1
    assert m.label == "cat" and isinstance(m.geometry, Mask)
    assert np.array_equal(m.geometry.to_array().astype(np.uint8), want)


# ------------------------------------------------------------------------------------------------ BDD100K (scalabel)

def test_bdd100k_as_scalabel_writes_it(tmp_path: Path) -> None:
    """scalabel 0.3.1 `label.io.save` (fixtures/scalabel/det_val.json): `{"frames": [...], "groups": null,
    "config": null}` with every unset field null; box2d corners inclusive (scalabel/label/transforms.py,
    `box2d_to_bbox`: w = x2 - x1 + 1), the mask as `transforms.mask_to_rle` encodes it. Oracle: the Frames
    make_fixtures.py gave scalabel."""
    root = tmp_path / "bdd100k"
    (root / "labels" / "det_20").mkdir(parents=True)
    (root / "labels" / "det_20" / "det_val.json").write_bytes(
        (Path(__file__).parent / "fixtures" / "scalabel" / "det_val.json").read_bytes())
    (root / "images" / "100k" / "val").mkdir(parents=True)
    for name in ("b1c66a42-6f7d68ca.jpg", "b1c9c847-3bda4659.jpg"):
        Image.new("RGB", (16, 12)).save(root / "images" / "100k" / "val" / name)
    a, b = _read(root, "bdd100k")
    assert (a.image.file_name, a.split, b.state.value) == ("b1c66a42-6f7d68ca.jpg", "val", "null")
    assert b.image.metadata == {"weather": "clear", "scene": "highway", "timeofday": "night"}
    car, area, person = [x for x in a.annotations if x.label != "lane/single white"]
    assert (car.label, car.geometry, car.attributes) == (
        "car", Box(1, 2, 10, 7), {"occluded": True, "truncated": False, "crowd": False})
    assert area.geometry == Polygon(((0, 8, 4, 6, 6, 6, 8, 6, 12, 8),))
    assert area.attributes == {"areaType": "direct", "bdd100k_types": ["LLCCL"]}
    want = np.zeros((12, 16), np.uint8)
    want[2:5, 3:9] = 1
    want[7, 10:12] = 1
    assert person.confidence == 0.75 and person.attributes == {}
    assert np.array_equal(person.geometry.to_array().astype(np.uint8), want)
    # the open lane line is kept: as an annotation where the model holds open lines, else in the metadata
    lane = [x for x in a.annotations if x.label == "lane/single white"]
    assert lane or [x["category"] for x in a.image.metadata["bdd100k_unsupported"]] == ["lane/single white"]


# ------------------------------------------------------------------------------------------------ Supervisely (SDK)

def test_supervisely_project_as_the_sdk_writes_it() -> None:
    """Supervisely SDK 6.74.51 `Project(..., OpenMode.CREATE)`, `set_meta`, `Dataset.add_item_file`
    (fixtures/supervisely/project): a rectangle (inclusive `exterior` [[left, top], [right, bottom]], SDK
    `Rectangle`), a bitmap (zlib PNG in base64 with its `origin`, SDK `Bitmap.data_2_base64`), a polygon and a
    point as [x, y], an object tag and an image tag. Oracle: the SDK objects make_fixtures.py built."""
    root = Path(__file__).parent / "fixtures" / "supervisely" / "project"
    reader = formats.read(root)
    assert formats.detect(root) == "supervisely" and reader.classes.names[:4] == ["bike", "person", "road", "eye"]
    a, b = sorted(reader, key=lambda s: s.image.file_name)
    assert [(s.image.file_name, s.split, s.image.size, s.state.value) for s in (a, b)] == [
        ("a.png", "ds0", (40, 30), "annotated"), ("b.png", "ds0", (40, 30), "null")]
    got = {x.label: x for x in a.annotations}
    assert isinstance(got["like"].geometry, Label)
    assert (got["bike"].geometry, got["bike"].attributes) == (Box(2, 3, 12, 15), {"situated": "outside"})
    assert got["road"].geometry == Polygon(((0, 20, 39, 20, 20, 29),))
    assert got["eye"].geometry == Keypoints((12, 6, 2))
    want = np.zeros((30, 40), bool)
    want[5:15, 10:20] = True
    want[25, 30] = True
    assert np.array_equal(got["person"].geometry.to_array().astype(bool), want)
