"""Formats whose tool does not install offline, built as the tool's own source writes (or reads) them — cited per
test as repository:path and function — and, where a third-party reader is in the venv, read by it too.

Issue 12: "Where [the tool] is not [installable], follow the tool's source file that writes the format (cite it in
the test)." Each fixture here is written by a few lines of this test that do what the cited function does; the
layout, separators and quoting are the tool's, the values ours.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop import formats
from visionloop.core.geometry import Box, Label, Polygon
from visionloop.core.sample import Annotation, ImageRef, Sample
from visionloop.formats import retinanet


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _read(root: Path, expected_format: str) -> list[Sample]:
    assert formats.detect(root) == expected_format
    return sorted(formats.read(root), key=lambda s: s.image.file_name)


def _shapes(sample: Sample) -> list[tuple[str, object]]:
    return [(a.label, a.geometry) for a in sample.annotations]


# ------------------------------------------------------------------------------------------------ VIA 2

VIA_IMAGES = {
    "a.jpg1234": {"filename": "a.jpg", "size": 1234, "file_attributes": {"scene": "park"}, "regions": [
        {"shape_attributes": {"name": "rect", "x": 10, "y": 5, "width": 30, "height": 20},
         "region_attributes": {"name": "cat", "pose": "sitting"}},
        {"shape_attributes": {"name": "polygon", "all_points_x": [50, 90, 70], "all_points_y": [10, 10, 50]},
         "region_attributes": {"name": "dog", "pose": "say \"hi\""}}]},
    "b.jpg99": {"filename": "b.jpg", "size": 99, "file_attributes": {}, "regions": []},
}


def _via_map_to_json(m: dict[str, object]) -> str:
    """via.js `map_to_json`: JSON.stringify of each key and value, joined by VIA_CSV_KEYVAL_SEP (':') and
    VIA_CSV_SEP (',') — no spaces."""
    return "{" + ",".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":")) for k, v in m.items()) + "}"


def _via_csv(images: dict[str, dict]) -> str:
    """via.js `pack_via_metadata('csv')`: the header, then per region a line that starts with '\\n' (no newline
    at the end of the file); cells JSON, quoted, with `escape_for_csv` doubling the quotes; an image without
    regions is `,0,0,"{}","{}"`. `download_all_region_data` puts the parts in one Blob without separators."""
    parts = ["filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes"]
    for image in images.values():
        prefix = "\n" + image["filename"] + "," + str(image["size"]) + ',"' + _via_map_to_json(
            image["file_attributes"]).replace('"', '""') + '"'
        regions = image["regions"]
        if not regions:
            parts.append(prefix + ',0,0,"{}","{}"')
        for i, r in enumerate(regions):
            cells = [prefix, str(len(regions)), str(i),
                     '"' + _via_map_to_json(r["shape_attributes"]).replace('"', '""') + '"',
                     '"' + _via_map_to_json(r["region_attributes"]).replace('"', '""') + '"']
            parts.append(",".join(cells))
    return "".join(parts)


def _via_check(samples: list[Sample]) -> None:
    a, b = samples
    assert [(s.image.file_name, s.state.value) for s in samples] == [("a.jpg", "annotated"), ("b.jpg", "null")]
    shapes = [(x.label, x.geometry, dict(x.attributes)) for x in a.annotations if not isinstance(x.geometry, Label)]
    assert shapes == [("cat", Box(10, 5, 40, 25), {"pose": "sitting"}),
                      ("dog", Polygon(((50, 10, 90, 10, 70, 50),)), {"pose": 'say "hi"'})]


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_via2_export_as_via_js_writes_it(tmp_path: Path, kind: str) -> None:
    """VIA 2.0.11, ox-vgg/via:via-2.x.y/src/via.js — "Export Annotations (as csv / json)":
    `download_all_region_data(type)` saves `pack_via_metadata(type)` as `<project name>_<type>.<type>`, the name
    `project_get_default_project_name()` gives (`via_project_<d><Mon><yyyy>_<h>h<m>m`) unless the user set one;
    csv as `_via_csv` above, json as `JSON.stringify(_via_img_metadata)` (images keyed by filename + size, regions
    a list)."""
    root = tmp_path / "via"
    _image(root / "a.jpg", 100, 60)
    _image(root / "b.jpg", 20, 10)
    if kind == "csv":
        (root / "via_project_6Dec2026_19h50m_csv.csv").write_text(_via_csv(VIA_IMAGES))
        assert not (root / "via_project_6Dec2026_19h50m_csv.csv").read_text().endswith("\n")
        samples = _read(root, "via_csv")
    else:
        (root / "via_project_6Dec2026_19h50m_json.json").write_text(json.dumps(VIA_IMAGES, separators=(",", ":")))
        samples = _read(root, "via")
    _via_check(samples)


# ------------------------------------------------------------------------------------------------ keras-yolo3

def test_yolokeras_lines_as_keras_yolo3_voc_annotation_writes_them(tmp_path: Path) -> None:
    """qqwweee/keras-yolo3:voc_annotation.py, `convert_annotation` and its main loop: per image
    `<cwd>/VOCdevkit/VOC2007/JPEGImages/<id>.jpg` (an ABSOLUTE path), then ` x_min,y_min,x_max,y_max,class_id`
    per object (the VOC integers as they are), then '\\n'; class ids index the script's `classes` list
    (model_data/voc_classes.txt). Read as keras-yolo3's yolo3/utils.py `get_random_data` reads it: split on
    spaces, the first field the image path."""
    voc = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
           "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    jpegs = tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages"
    _image(jpegs / "000001.jpg", 100, 80)
    _image(jpegs / "000002.jpg", 100, 80)
    text = ""
    for image_id, boxes in (("000001", [(48, 24, 95, 71, 11), (8, 12, 52, 49, 14)]), ("000002", [])):
        text += f"{tmp_path}/VOCdevkit/VOC2007/JPEGImages/{image_id}.jpg"  # its "%s/VOCdevkit/VOC%s/..." % (wd, ...)
        for b in boxes:
            text += " " + ",".join(str(v) for v in b[:4]) + "," + str(b[4])
        text += "\n"
    (tmp_path / "2007_train.txt").write_text(text)
    (tmp_path / "classes.txt").write_text("\n".join(voc) + "\n")
    one, two = _read(tmp_path / "2007_train.txt", "yolokeras")
    assert (one.image.path, two.image.path) == (str(jpegs / "000001.jpg"), str(jpegs / "000002.jpg"))
    assert _shapes(one) == [("dog", Box(48, 24, 95, 71)), ("person", Box(8, 12, 52, 49))]
    assert two.state.value == "null"


# ------------------------------------------------------------------------------------------------ keras-retinanet

def _retinanet_rows_ok(annotations: str, classes: str) -> dict[str, list[tuple[int, int, int, int, str]]]:
    """The rules of fizyr/keras-retinanet:keras_retinanet/preprocessing/csv_generator.py `_read_classes`
    (`class_name,class_id`, no header, no duplicate name) and `_read_annotations` (no header; `img_file,,,,,` an
    image without objects; x1, y1, x2, y2 parsed with int(); x2 > x1 and y2 > y1; a known class), checked here on
    what our writer wrote (keras-retinanet has no writer: its reader is the format's definition)."""
    import csv

    names: dict[str, int] = {}
    for row in csv.reader(classes.splitlines()):
        name, cid = row
        assert name not in names
        names[name] = int(cid)
    out: dict[str, list[tuple[int, int, int, int, str]]] = {}
    for row in csv.reader(annotations.splitlines()):
        path, x1, y1, x2, y2, cls = row[:6]
        out.setdefault(path, [])
        if (x1, y1, x2, y2, cls) == ("", "", "", "", ""):
            continue
        box = (int(x1), int(y1), int(x2), int(y2))
        assert box[2] > box[0] and box[3] > box[1] and cls in names
        out[path].append((*box, cls))
    return out


def test_retinanet_writer_output_passes_keras_retinanets_reader_rules(tmp_path: Path) -> None:
    img = _image(tmp_path / "src" / "a.jpg", 50, 40)
    neg = _image(tmp_path / "src" / "b.jpg", 50, 40)
    samples = [
        Sample(ImageRef("a.jpg", path=str(img)), (Annotation("cat", Box(1.4, 2.5, 10.6, 20)),
                                                   Annotation("dog", Box(5.2, 5, 5.4, 6)))),
        Sample(ImageRef("b.jpg", path=str(neg)), ()),
    ]
    retinanet.write(samples, tmp_path / "out")
    rows = _retinanet_rows_ok((tmp_path / "out" / "_annotations.csv").read_text(),
                              (tmp_path / "out" / "_classes.csv").read_text())
    assert rows == {"a.jpg": [(1, 3, 11, 20, "cat"), (5, 5, 6, 6, "dog")], "b.jpg": []}  # halves round up
    assert _shapes(list(retinanet.read(tmp_path / "out"))[0]) == [("cat", Box(1, 3, 11, 20)), ("dog", Box(5, 5, 6, 6))]


# ------------------------------------------------------------------------------------------------ classification CSV

def test_clscsv_roboflow_multiclass_equals_datumaros_own_import(tmp_path: Path) -> None:
    """Roboflow's multi-label classification export (`<split>/_classes.csv`, `filename, a, b` one-hot, header
    cells after ", "): visionloop's read equals datumaro 1.13.12's `roboflow_multiclass` importer
    (datumaro/plugins/data_formats/roboflow/base.py, `RoboflowMulticlassBase`: csv.DictReader, names stripped,
    `int(value) == 1` is a label)."""
    dm = pytest.importorskip("datumaro")
    from datumaro.components.annotation import AnnotationType

    root = tmp_path / "cls"
    (root / "train").mkdir(parents=True)
    (root / "train" / "_classes.csv").write_text(
        "filename, cat, dog, outdoor\na.jpg, 1, 0, 1\nb.jpg, 0, 1, 0\nc.jpg, 0, 0, 0\n")
    for name in ("a", "b", "c"):
        _image(root / "train" / f"{name}.jpg", 8, 8)
    ours = {Path(s.image.file_name).stem: sorted(a.label for a in s.annotations) for s in _read(root, "clscsv")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_ds = dm.Dataset.import_from(str(root), "roboflow_multiclass")
    names = theirs_ds.categories()[AnnotationType.label]
    theirs = {i.id: sorted(names[a.label].name for a in i.annotations) for i in theirs_ds}
    assert ours == theirs == {"a": ["cat", "outdoor"], "b": ["dog"], "c": []}


# ------------------------------------------------------------------------------------------------ VLM JSONL

def test_paligemma_suffix_equals_supervisions_parser(tmp_path: Path) -> None:
    """PaliGemma's detection suffix (`<locYMIN><locXMIN><locYMAX><locXMAX> label`, 1024 bins, " ; " between
    objects) read as supervision 0.31.2 reads it (supervision/detection/vlm.py, `from_paligemma`: bin / 1024 ·
    size, the bin's lower edge)."""
    sv = pytest.importorskip("supervision")
    _image(tmp_path / "a.jpg", 2048, 1024)
    suffix = "<loc0100><loc0200><loc0800><loc0900> raccoon ; <loc0000><loc0000><loc1023><loc1023> dog"
    (tmp_path / "_annotations.train.jsonl").write_text(
        json.dumps({"image": "a.jpg", "prefix": "detect raccoon ; dog", "suffix": suffix}) + "\n")
    (s,) = _read(tmp_path, "vlm")
    xyxy, _, names = sv.detection.vlm.from_paligemma(suffix, (2048, 1024))
    assert [a.label for a in s.annotations] == list(names)
    assert np.allclose([[a.box.x0, a.box.y0, a.box.x1, a.box.y1] for a in s.annotations], xyxy)


def test_florence2_tokens_as_florence2s_processor_dequantizes_them(tmp_path: Path) -> None:
    """Florence-2's `<OD>` answer (`label<loc_X1><loc_Y1><loc_X2><loc_Y2>`, 1000 bins): microsoft/Florence-2's
    processing_florence2.py, `BoxQuantizer.dequantize` ('floor' mode: the bin's centre, (bin + 0.5) · size / 1000)
    and its `<OD>` pattern `([a-zA-Z0-9 ]+)<loc_(\\d+)>...`."""
    _image(tmp_path / "x.jpg", 1000, 500)
    (tmp_path / "annotations.jsonl").write_text(json.dumps(
        {"image": "x.jpg", "prefix": "<OD>", "suffix": "car<loc_52><loc_333><loc_932><loc_774>"}) + "\n")
    (s,) = _read(tmp_path, "vlm")
    want = [(b + 0.5) * size / 1000 for b, size in zip((52, 333, 932, 774), (1000, 500, 1000, 500), strict=True)]
    assert [(a.label, (a.box.x0, a.box.y0, a.box.x1, a.box.y1)) for a in s.annotations] == [("car", tuple(want))]
