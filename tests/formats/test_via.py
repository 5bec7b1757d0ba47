"""VGG Image Annotator: JSON (VIA 2 project, VIA 1 export) and CSV.

Fixtures laid out as VIA writes them (https://www.robots.ox.ac.uk/~vgg/software/via/ ; a VIA 2.0.x
"Save project" file with `_via_settings`, `_via_img_metadata`, `_via_attributes`; the VIA 1
`via_region_data.json` export with `regions` as an object, as in the Mask R-CNN balloon sample; and
the CSV export whose header and swan row follow
https://www.robots.ox.ac.uk/~vgg/software/via/docs/face_track_annotation.html and VIA's demo). Checked against
VIA's source, ox-vgg/via:via-2.x.y/src/via.js (2.0.11): `pack_via_metadata` (CSV cells: `map_to_json` without
spaces, quotes doubled by `escape_for_csv`, `,0,0,"{}","{}"` for an image without regions; JSON export =
`_via_img_metadata`), `project_save_with_confirm` (the project keys above); test_tool_sources.py writes both
exports exactly as that function does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, via, via_csv
from visionloop.formats._labeltools import ellipse_polygon
from visionloop.formats.base import ImageMode

SWAN_REGIONS = [
    {"shape_attributes": {"name": "rect", "x": 116, "y": 157, "width": 797, "height": 400},
     "region_attributes": {"name": "Swan", "type": "bird", "image_quality": {"good_illumination": True}}},
    {"shape_attributes": {"name": "polygon", "all_points_x": [10, 50, 50, 10], "all_points_y": [10, 10, 40, 40]},
     "region_attributes": {"name": "Reed", "type": "plant", "image_quality": {}}},
    {"shape_attributes": {"name": "point", "cx": 300, "cy": 200},
     "region_attributes": {"name": "Eye", "type": "", "image_quality": {}}},
    {"shape_attributes": {"name": "polyline", "all_points_x": [0, 100, 200], "all_points_y": [500, 480, 470]},
     "region_attributes": {"name": "Shore", "type": "", "image_quality": {}}},
    {"shape_attributes": {"name": "circle", "cx": 600, "cy": 300, "r": 20},
     "region_attributes": {"name": "Ripple", "type": "", "image_quality": {}}},
    {"shape_attributes": {"name": "ellipse", "cx": 700, "cy": 350, "rx": 30, "ry": 10, "theta": 0.5},
     "region_attributes": {"name": "Ripple", "type": "", "image_quality": {}}},
]

PROJECT = {
    "_via_settings": {"ui": {"annotation_editor_height": 25, "annotation_editor_fontsize": 0.8,
                             "leftsidebar_width": 18, "image_grid": {"img_height": 80},
                             "image": {"region_label": "__via_region_id__", "region_color": "__via_default_region_color__"}},
                      "core": {"buffer_size": 18, "filepath": {}, "default_filepath": ""},
                      "project": {"name": "via_project_9Mar2021_10h0m"}},
    "_via_img_metadata": {
        "swan.jpg125024": {"filename": "swan.jpg", "size": 125024, "regions": SWAN_REGIONS,
                           "file_attributes": {"caption": "Swan in lake Geneve", "class": "lake"}},
        "empty.jpg1234": {"filename": "empty.jpg", "size": 1234, "regions": [], "file_attributes": {}},
    },
    "_via_attributes": {"region": {"name": {"type": "text", "description": "", "default_value": ""},
                                   "type": {"type": "dropdown", "description": "",
                                            "options": {"bird": "", "plant": ""}, "default_options": {}},
                                   "image_quality": {"type": "checkbox", "description": "",
                                                     "options": {"good_illumination": ""}, "default_options": {}}},
                        "file": {"caption": {"type": "text", "description": "", "default_value": ""}}},
    "_via_data_format_version": "2.0.10",
    "_via_image_id_list": ["swan.jpg125024", "empty.jpg1234"],
}

VIA_CSV = (
    "filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes\n"
    'swan.jpg,125024,"{""caption"":""Swan in lake Geneve""}",2,0,'
    '"{""name"":""rect"",""x"":116,""y"":157,""width"":797,""height"":400}",'
    '"{""name"":""Swan"",""type"":""bird"",""image_quality"":{""good_illumination"":true}}"\n'
    'swan.jpg,125024,"{""caption"":""Swan in lake Geneve""}",2,1,'
    '"{""name"":""polygon"",""all_points_x"":[10,50,50,10],""all_points_y"":[10,10,40,40]}",'
    '"{""name"":""Reed"",""type"":""plant"",""image_quality"":{}}"\n'
    'empty.jpg,1234,"{}",0,0,"{}","{}"\n'
)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "via"
    root.mkdir()
    Image.new("RGB", (1000, 600)).save(root / "swan.jpg")
    Image.new("RGB", (20, 10)).save(root / "empty.jpg")
    return root


def _swan_expected() -> tuple[Annotation, ...]:
    return (
        Annotation("lake", Label()),
        Annotation("Swan", Box(116, 157, 913, 557), attributes={"type": "bird",
                                                                "image_quality": {"good_illumination": True}}),
        Annotation("Reed", Polygon(((10, 10, 50, 10, 50, 40, 10, 40),)), attributes={"type": "plant",
                                                                                      "image_quality": {}}),
        Annotation("Eye", Keypoints((300, 200, 2)), attributes={"type": "", "image_quality": {}}),
        Annotation("Shore", Polyline((0, 500, 100, 480, 200, 470)), attributes={"type": "", "image_quality": {}}),
        Annotation("Ripple", ellipse_polygon(600, 300, 20, 20), attributes={"type": "", "image_quality": {},
                                                                             "via_shape": "circle"}),
        Annotation("Ripple", ellipse_polygon(700, 350, 30, 10, np.degrees(0.5)),
                   attributes={"type": "", "image_quality": {}, "via_shape": "ellipse"}),
    )


def test_project_read_exact(folder: Path) -> None:
    (folder / "via_project.json").write_text(json.dumps(PROJECT))
    assert via.detect(folder).score >= 0.9 and detect(folder) == "via"
    reader = via.read(folder / "via_project.json")
    swan, empty = list(reader)
    assert reader.classes.names == ["lake", "Swan", "Reed", "Eye", "Shore", "Ripple"]
    assert swan.image.file_name == "swan.jpg" and swan.image.path == str(folder / "swan.jpg")
    assert swan.image.metadata == {"via_file_attributes": {"caption": "Swan in lake Geneve"}, "via_size": 125024}
    assert swan.annotations == _swan_expected()
    assert empty.state is LabelState.NULL


def test_via1_export_and_class_attribute(folder: Path) -> None:
    export = {"b.jpg1115004": {"fileref": "", "size": 1115004, "filename": "swan.jpg", "base64_img_data": "",
                               "file_attributes": {},
                               "regions": {"1": {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 3,
                                                                      "height": 4},
                                                 "region_attributes": {"kind": "b", "label": "x"}},
                                           "0": {"shape_attributes": {"name": "polygon", "all_points_x": [1, 5, 5],
                                                                      "all_points_y": [1, 1, 5]},
                                                 "region_attributes": {}}}}}
    (folder / "via_region_data.json").write_text(json.dumps(export))
    (sample,) = list(via.read(folder))
    assert [(a.label, a.geometry) for a in sample.annotations] == [
        ("unlabeled", Polygon(((1, 1, 5, 1, 5, 5),))), ("x", Box(1, 2, 4, 6))]
    (sample,) = list(via.read(folder, class_attribute="kind"))
    assert sample.annotations[1].label == "b" and sample.annotations[1].attributes == {"label": "x"}


def test_json_roundtrip(folder: Path, tmp_path: Path) -> None:
    (folder / "via_project.json").write_text(json.dumps(PROJECT))
    first = list(via.read(folder / "via_project.json"))
    out = tmp_path / "out"
    report = via.write(first, out)
    assert report.images == 2 and report.files == 2
    assert dict(report.annotations) == {"label": 1, "box": 1, "polygon": 3, "keypoints": 1, "polyline": 1}
    assert not report.converted and not report.dropped
    doc = json.loads((out / "via_region_data.json").read_text())
    assert list(doc) == [f"swan.jpg{(folder / 'swan.jpg').stat().st_size}", f"empty.jpg{(folder / 'empty.jpg').stat().st_size}"]
    back = list(via.read(out))
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.image.file_name for s in back] == ["swan.jpg", "empty.jpg"]
    assert back[0].image.metadata["via_file_attributes"] == {"caption": "Swan in lake Geneve"}


def test_csv_read_and_roundtrip(folder: Path, tmp_path: Path) -> None:
    (folder / "via_region_data.csv").write_text(VIA_CSV)
    assert via_csv.detect(folder).score >= 0.9 and detect(folder) == "via_csv"
    swan, empty = list(via_csv.read(folder))
    assert swan.annotations == _swan_expected()[1:3]
    assert swan.image.metadata["via_file_attributes"] == {"caption": "Swan in lake Geneve"}
    assert empty.annotations == () and empty.state is LabelState.NULL
    out = tmp_path / "out"
    report = via_csv.write([swan, empty], out, images=ImageMode.NONE)
    assert dict(report.annotations) == {"box": 1, "polygon": 1}
    lines = (out / "via_region_data.csv").read_text().splitlines()
    assert lines[0] == ",".join(via_csv.HEADER)
    assert lines[3] == f"empty.jpg,{(folder / 'empty.jpg').stat().st_size},{{}},0,0,{{}},{{}}"
    back = list(via_csv.read(out))
    assert [s.annotations for s in back] == [swan.annotations, ()]


def test_write_splits_and_conversions(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    ref = ImageRef("a.png", width=10, height=10, path=str(tmp_path / "a.png"))
    m = np.zeros((10, 10), np.uint8)
    m[2:5, 2:6] = 1
    sample = Sample(ref, (Annotation("r", RotatedBox(5, 5, 4, 2, 90)), Annotation("m", Mask.from_array(m)),
                          Annotation("l", Label()), Annotation("l2", Label()),
                          Annotation("k", Keypoints((1, 1, 2, 3, 3, 1)), confidence=0.9)), split="val")
    for module in (via, via_csv):
        out = tmp_path / module.FORMAT
        report = module.write([sample], out)
        assert report.converted == {"rotated_box -> polygon": 1, "mask -> polygon (tolerance 0)": 1,
                                    "keypoints visibility -> visible points": 1, "keypoints (2 points) -> 2 points": 1}
        assert report.dropped == {"confidence: VIA has no score field": 1}
        (back,) = list(module.read(out))
        assert back.split == "val" and (out / "val" / "a.png").is_file()
        labels = [a for a in back.annotations if isinstance(a.geometry, Label)]
        assert [a.label for a in labels] == ["l", "l2"]
        poly = [a.geometry for a in back.annotations if a.label == "m"][0]
        assert isinstance(poly, Polygon) and poly.bounds() == Box(2, 2, 5, 4)


def test_bad_input_names_file_and_place(folder: Path) -> None:
    bad = json.loads(json.dumps(PROJECT))
    bad["_via_img_metadata"]["swan.jpg125024"]["regions"][1]["shape_attributes"]["all_points_y"] = [1, 2]
    (folder / "p.json").write_text(json.dumps(bad))
    with pytest.raises(FormatError) as e:
        list(via.read(folder / "p.json"))
    assert "p.json" in str(e.value) and "entry 'swan.jpg125024' region 1" in str(e.value)
    (folder / "via_region_data.csv").write_text(VIA_CSV.replace('""x"":116', '""x"":""left""'))
    with pytest.raises(FormatError) as e:
        list(via_csv.read(folder / "via_region_data.csv"))
    assert "via_region_data.csv (line 2)" in str(e.value) and "`x` must be a number" in str(e.value)
